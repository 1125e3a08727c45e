//! The calibrated panorama's layout: the largest rectangle of the cylinder
//! every column of which some camera covers from top to bottom (no black
//! corners), at CAM_C's resolution, cut into each camera's piece;
//! neighbouring pieces share the columns both cameras cover fully (the
//! true overlap), cross-faded there with a linear ramp. The warp that
//! draws it is [`super::warp`].

use serde::{Deserialize, Serialize};

use super::camera::{Camera, Cylinder};

/// Where the three pieces sit in the panorama.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canvas {
    /// The whole panorama (before any `output_width` cap).
    pub panorama: Cylinder,
    /// Each camera's piece, left to right.
    pub pieces: [Cylinder; 3],
    /// Column of each piece's first column in the panorama.
    pub offsets: [u32; 3],
    /// Width of the L-C and C-R cross-fades, columns.
    pub seams: [u32; 2],
}

/// How far up and down from the horizon (rows, from the centre row) a
/// camera covers column `u` of `cyl` fully, 0 if not at all.
fn coverage(cam: &Camera, size: (u32, u32), cyl: &Cylinder, u: f64) -> u32 {
    let (w, h) = (size.0 as f64, size.1 as f64);
    let rot = cam.rotation();
    let inside = |v: f64| {
        cam.project(&rot, cyl.ray(u, v), w, h)
            .is_some_and(|(x, y)| x >= 0.5 && y >= 0.5 && x <= w - 1.5 && y <= h - 1.5)
    };
    let c = cyl.height as f64 / 2.0 - 0.5;
    let mut k = 0u32;
    while k < cyl.height / 2 && inside(c - k as f64 - 0.5) && inside(c + k as f64 + 0.5) {
        k += 1;
    }
    k
}

/// Lays out the panorama for `cams` recording frames of `sizes`.
pub fn plan_canvas(cams: &[Camera; 3], sizes: &[(u32, u32); 3]) -> Result<Canvas, String> {
    let (full, lo) = full_cylinder(cams, sizes);
    let cover: Vec<[u32; 3]> = (0..full.width)
        .map(|u| [0, 1, 2].map(|i| coverage(&cams[i], sizes[i], &full, u as f64)))
        .collect();
    let best: Vec<u32> = cover
        .iter()
        .map(|c| *c.iter().max().unwrap_or(&0))
        .collect();
    let centre = ((0.0 - lo).to_radians() * full.f) as usize;
    let (hh, ua, ub) = best_rectangle(&best, centre.min(best.len().saturating_sub(1)));
    if hh < 8 || ub <= ua {
        return Err("the cameras cover no common band around the horizon".into());
    }
    let edges = strip_edges(&cover, hh, ua, ub)?;
    build(full, ua, hh, edges)
}

/// The cylinder at CAM_C's focal length spanning all three cameras' views
/// (with a margin), and the azimuth of its left edge, degrees.
fn full_cylinder(cams: &[Camera; 3], sizes: &[(u32, u32); 3]) -> (Cylinder, f64) {
    let f = cams[1].focal(sizes[1].0 as f64);
    let lo = cams
        .iter()
        .map(|c| c.yaw_deg - c.hfov_deg * 0.6)
        .fold(f64::MAX, f64::min);
    let hi = cams
        .iter()
        .map(|c| c.yaw_deg + c.hfov_deg * 0.6)
        .fold(f64::MIN, f64::max);
    let width = ((hi - lo).to_radians() * f).ceil() as u32;
    let height = (2.0 * f * (cams[1].hfov_deg / 2.0).to_radians().tan()).ceil() as u32 * 2;
    let full = Cylinder {
        width,
        height,
        f,
        yaw0_deg: (lo + hi) / 2.0,
    };
    (full, lo)
}

/// Each camera's columns (even, relative to `ua`) within the band `ua..ub`
/// where it covers all `hh` rows; the outer edges are the band's.
fn strip_edges(
    cover: &[[u32; 3]],
    hh: u32,
    ua: usize,
    ub: usize,
) -> Result<[(usize, usize); 3], String> {
    let span = |i: usize| {
        let cols: Vec<usize> = (ua..ub).filter(|&u| cover[u][i] >= hh).collect();
        (cols.first().copied(), cols.last().map(|l| l + 1))
    };
    let mut edges = [(0usize, 0usize); 3];
    for (i, e) in edges.iter_mut().enumerate() {
        let (Some(a), Some(b)) = span(i) else {
            return Err(format!(
                "camera {i} covers none of the panorama's rows fully"
            ));
        };
        let a = ua + (a - ua).div_ceil(2) * 2;
        let b = ua + (b - ua) / 2 * 2;
        *e = (a - ua, b - ua);
    }
    let total = ((ub - ua) / 2 * 2).min(edges[2].1);
    edges[0].0 = 0;
    edges[2].1 = total;
    Ok(edges)
}

/// The rows' half-height and columns `[ua, ub)` of the largest rectangle
/// whose every column has `best >= half-height`, containing `centre`.
fn best_rectangle(best: &[u32], centre: usize) -> (u32, usize, usize) {
    let mut cands: Vec<u32> = best.to_vec();
    cands.sort_unstable();
    cands.dedup();
    let mut out = (0, 0, 0);
    let mut area = 0u64;
    for &hh in &cands {
        if best[centre] < hh || hh == 0 {
            continue;
        }
        let mut a = centre;
        while a > 0 && best[a - 1] >= hh {
            a -= 1;
        }
        let mut b = centre + 1;
        while b < best.len() && best[b] >= hh {
            b += 1;
        }
        let ar = hh as u64 * (b - a) as u64;
        if ar > area {
            area = ar;
            out = (hh, a, b);
        }
    }
    out
}

fn build(full: Cylinder, ua: usize, hh: u32, edges: [(usize, usize); 3]) -> Result<Canvas, String> {
    let height = hh / 2 * 4;
    let [l, c, r] = edges;
    if c.0 >= l.1 || r.0 >= c.1 || l.1 > r.0 || c.1 <= c.0 {
        return Err(format!(
            "the cameras' full-height columns do not overlap as L|C|R (L {l:?}, C {c:?}, R {r:?}); \
             check the calibration's yaws and FOVs"
        ));
    }
    let az = |u: f64| (u - full.width as f64 / 2.0) / full.f + full.yaw0_deg.to_radians();
    let piece = |(a, b): (usize, usize)| {
        let w = (b - a) as u32;
        Cylinder {
            width: w,
            height,
            f: full.f,
            yaw0_deg: az((ua + a) as f64 + w as f64 / 2.0).to_degrees(),
        }
    };
    let total = r.1;
    Ok(Canvas {
        panorama: Cylinder {
            width: total as u32,
            height,
            f: full.f,
            yaw0_deg: az(ua as f64 + total as f64 / 2.0).to_degrees(),
        },
        pieces: [piece(l), piece(c), piece(r)],
        offsets: [0, c.0 as u32, r.0 as u32],
        seams: [(l.1 - c.0) as u32, (c.1 - r.0) as u32],
    })
}

impl Canvas {
    /// The same layout rendered at `width` x `height` (the output size), so
    /// that each camera is warped straight to the size written and nothing
    /// is blended or stacked at full resolution. Piece boundaries are
    /// rounded to even columns; every seam keeps at least 2 columns.
    pub fn scaled(&self, width: u32, height: u32) -> Canvas {
        let p = &self.panorama;
        let s = f64::from(width) / f64::from(p.width);
        let even = |x: u32| ((f64::from(x) * s / 2.0).round() as u32 * 2).min(width);
        let [wl, wc, _] = self.pieces.map(|c| c.width);
        let c0 = even(self.offsets[1]);
        let l1 = even(wl).max(c0 + 2);
        let r0 = even(self.offsets[2]).max(l1 + 2);
        let c1 = even(self.offsets[1] + wc).max(r0 + 2);
        let f = p.f * s;
        let yaw = |a: u32, b: u32| {
            let mid = f64::from(a + b) / 2.0 - f64::from(width) / 2.0;
            p.yaw0_deg + (mid / f).to_degrees()
        };
        let piece = |a: u32, b: u32| Cylinder {
            width: b - a,
            height,
            f,
            yaw0_deg: yaw(a, b),
        };
        Canvas {
            panorama: Cylinder {
                width,
                height,
                f,
                yaw0_deg: p.yaw0_deg,
            },
            pieces: [piece(0, l1), piece(c0, c1), piece(r0, width)],
            offsets: [0, c0, r0],
            seams: [l1 - c0, c1 - r0],
        }
    }
}

/// The size to shrink a camera's `size` frames to before warping them into
/// `piece`, when the piece has under 3/4 of the camera's pixels per radian:
/// a scaler that averages (rather than the warp's bilinear samples of a
/// much larger frame) keeps fine texture from aliasing, and the warp then
/// works on a frame near the output's scale.
pub(super) fn prescale(cam: &Camera, size: (u32, u32), piece: &Cylinder) -> Option<(u32, u32)> {
    let r = piece.f / cam.focal(f64::from(size.0));
    // At least 4, so that the chroma planes are 2 x 2 or more.
    let even = |v: u32| ((f64::from(v) * r / 2.0).round() as u32 * 2).max(4);
    (r < 0.75).then(|| (even(size.0), even(size.1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nominal_rig_tiles_without_gaps() {
        let cams = [
            Camera::nominal(-60.0, 75.0),
            Camera::nominal(0.0, 75.0),
            Camera::nominal(60.0, 75.0),
        ];
        let c = plan_canvas(&cams, &[(640, 360); 3]).unwrap();
        let [wl, wc, wr] = c.pieces.map(|p| p.width);
        assert_eq!(c.offsets[1] + c.seams[0], wl, "{c:?}");
        assert_eq!(c.offsets[2] + c.seams[1], c.offsets[1] + wc);
        assert_eq!(c.offsets[2] + wr, c.panorama.width);
        assert!(
            c.seams.iter().all(|s| *s >= 2 && s.is_multiple_of(2)),
            "{c:?}"
        );
        assert!(
            c.panorama.height.is_multiple_of(2) && c.panorama.height > 200,
            "{c:?}"
        );
        // Symmetric rig: the panorama is centred on CAM_C.
        assert!(c.panorama.yaw0_deg.abs() < 0.5, "{c:?}");
        // At the output's scale the pieces still tile the panorama.
        let half = c.scaled(c.panorama.width / 2 / 2 * 2, c.panorama.height / 2);
        let [hl, hc, hr] = half.pieces.map(|p| p.width);
        assert_eq!(half.offsets[1] + half.seams[0], hl, "{half:?}");
        assert_eq!(half.offsets[2] + half.seams[1], half.offsets[1] + hc);
        assert_eq!(half.offsets[2] + hr, half.panorama.width);
        assert!((half.pieces[0].yaw0_deg - c.pieces[0].yaw0_deg).abs() < 0.2);
        assert!(half.seams.iter().all(|s| *s >= 2 && s.is_multiple_of(2)));
        // Too far apart: no overlap.
        let apart = [
            Camera::nominal(-80.0, 60.0),
            Camera::nominal(0.0, 60.0),
            Camera::nominal(80.0, 60.0),
        ];
        assert!(plan_canvas(&apart, &[(640, 360); 3]).is_err());
    }
}
