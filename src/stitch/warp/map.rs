//! Where every sample of the panorama comes from: per plane (luma, then
//! both chroma planes, which share a geometry), each camera's run of
//! output columns and, on every row, the source position of every
//! [`GRID`]-th column of it. The columns between are interpolated linearly
//! as they are drawn: the warp is smooth, and over [`GRID`] columns a
//! straight line is within a few hundredths of a pixel of it (see the
//! test), while the table stays at 12 bytes per 8 output pixels (a
//! position and a [`Span::win`]: about 41 MB for an 8192 x 2700 HEVC
//! panorama, 7 MB at 4096 x 930; the warp reads all of it every frame,
//! so it is kept small).
//!
//! Positions are the camera model's own ([`Camera::project`], lens
//! distortion included), so there is no separate lens-correction pass and
//! no second resampling. Chroma samples sit at the centre of their 2 x 2
//! luma block, in the output and in the source (as `v360` and `scale`
//! treat 4:2:0 planes).

use super::super::camera::{Camera, Cylinder};
use super::super::canvas::Canvas;
use super::simd;

/// Columns between two computed source positions on a row.
pub const GRID: usize = 8;

/// One fixed-point unit: positions are 16.16 pixels.
pub const ONE: i32 = 1 << 16;

/// One camera's part of one output plane.
#[derive(Debug, Clone)]
pub struct Span {
    /// First output column.
    pub first: usize,
    /// Output columns.
    pub cols: usize,
    /// The camera's plane: width, height.
    pub src: (usize, usize),
    /// Columns (relative to `first`) whose position is computed: every
    /// [`GRID`]-th, and the last.
    pub knots: Vec<usize>,
    /// Per row, per knot: the source position `[x, y]`, 16.16 fixed point.
    /// The columns between two knots step evenly from one to the next
    /// ([`steps`]).
    pub pos: Vec<[i32; 2]>,
    /// Per row, per knot: the [`simd::window`] of the [`GRID`] columns
    /// from that knot on, worked out once here rather than every frame
    /// (a fifth of the warp's time when it was); [`simd::NO_WINDOW`] for
    /// the last knot.
    pub win: Vec<u32>,
}

/// The step per column from knot `k` of a row (`row`, the row's knots
/// `knots`) to the next knot, 16.16, rounded down: `[0, 0]` after the
/// last. Over a [`GRID`]-column cell that is the difference shifted right
/// by 3, which the vector path computes the same way.
pub fn steps(row: &[[i32; 2]], knots: &[usize], k: usize) -> [i32; 2] {
    match (row.get(k + 1), knots.get(k + 1)) {
        (Some(q), Some(&next)) => {
            // Wrapping, as the vector lanes do: a knot near the edge of
            // what the lens sees may sit far out, even at `i32::MAX`.
            let (p, d) = (row[k], (next - knots[k]) as i32);
            let delta = |a: usize| q[a].wrapping_sub(p[a]).div_euclid(d);
            [delta(0), delta(1)]
        }
        _ => [0, 0],
    }
}

/// One output plane: its size, the three cameras' spans, the two seams.
#[derive(Debug, Clone)]
pub struct PlaneMap {
    /// Width, height.
    pub size: (usize, usize),
    /// CAM_L, CAM_C, CAM_R.
    pub spans: [Span; 3],
    /// First column and width of the L|C and C|R cross-fades.
    pub seams: [(usize, usize); 2],
    /// Each cross-fade's right-hand camera weight at each of its columns,
    /// out of 256: rising linearly from 0 to 1, sampled at pixel centres.
    pub fades: [Vec<u8>; 2],
}

/// The whole panorama's map: luma and chroma.
#[derive(Debug, Clone)]
pub struct WarpMap {
    /// Luma, then chroma.
    pub planes: [PlaneMap; 2],
}

impl WarpMap {
    /// The map drawing `canvas` (at the size written) from `cams`, whose
    /// frames arrive `src` pixels large.
    pub fn new(canvas: &Canvas, cams: &[Camera; 3], src: [(u32, u32); 3]) -> WarpMap {
        WarpMap {
            planes: [
                plane_map(canvas, cams, src, 1),
                plane_map(canvas, cams, src, 2),
            ],
        }
    }

    /// Bytes of one output `yuv420p` frame.
    pub fn frame_len(&self) -> usize {
        let [(w, h), (cw, ch)] = self.planes.each_ref().map(|p| p.size);
        w * h + 2 * cw * ch
    }
}

/// The plane subsampled by `sub` (1 luma, 2 chroma).
fn plane_map(canvas: &Canvas, cams: &[Camera; 3], src: [(u32, u32); 3], sub: usize) -> PlaneMap {
    let p = &canvas.panorama;
    let size = (p.width as usize / sub, p.height as usize / sub);
    let spans = [0, 1, 2].map(|i| {
        let first = canvas.offsets[i] as usize / sub;
        let cols = canvas.pieces[i].width as usize / sub;
        span(&cams[i], p, src[i], (first, cols, size.1), sub)
    });
    let seam = |k: usize| {
        let start = canvas.offsets[k + 1] as usize / sub;
        (start, canvas.seams[k] as usize / sub)
    };
    let seams = [seam(0), seam(1)];
    PlaneMap {
        size,
        spans,
        seams,
        fades: seams.map(|(_, n)| fade(n)),
    }
}

/// The right-hand weights of a cross-fade `n` columns wide, out of 256:
/// `(j + 1/2) / n` at column `j`, rounded down.
fn fade(n: usize) -> Vec<u8> {
    (0..n)
        .map(|j| ((2 * j + 1) * 256 / (2 * n)) as u8)
        .collect()
}

/// Camera `cam`'s span of columns `first..first + cols`, `rows` high, of
/// the panorama `pano`'s plane subsampled by `sub`.
fn span(
    cam: &Camera,
    pano: &Cylinder,
    src: (u32, u32),
    (first, cols, rows): (usize, usize, usize),
    sub: usize,
) -> Span {
    let mut knots: Vec<usize> = (0..cols).step_by(GRID).collect();
    if knots.last() != Some(&(cols - 1)) {
        knots.push(cols - 1);
    }
    let rot = cam.rotation();
    let (sw, sh) = (f64::from(src.0), f64::from(src.1));
    let s = sub as f64;
    let mut pos = Vec::with_capacity(rows * knots.len());
    let mut at = Vec::with_capacity(knots.len());
    for row in 0..rows {
        let v = (row as f64 + 0.5) * s - 0.5;
        at.clear();
        for &k in &knots {
            let u = ((first + k) as f64 + 0.5) * s - 0.5;
            // A ray the camera cannot see (beyond the lens's fold; the
            // canvas keeps such columns out of a piece, so only a corner
            // knot can be one) takes its neighbour's position.
            let Some((x, y)) = cam.project(&rot, pano.ray(u, v), sw, sh) else {
                let last = at.last().copied().unwrap_or([-1.0, -1.0]);
                at.push(last);
                continue;
            };
            // From luma pixels to this plane's (centres of 2 x 2 blocks).
            at.push([(x + 0.5) / s - 0.5, (y + 0.5) / s - 0.5]);
        }
        let fixed = |v: f64| (v * f64::from(ONE)).round() as i32;
        pos.extend(at.iter().map(|p| [fixed(p[0]), fixed(p[1])]));
    }
    let (w, h) = (src.0 as usize, src.1 as usize);
    let plane = (w.div_ceil(sub), h.div_ceil(sub));
    Span {
        first,
        cols,
        src: plane,
        win: windows(&pos, knots.len(), plane),
        knots,
        pos,
    }
}

/// The [`Span::win`] of the positions `pos`, `nk` knots a row, on a
/// `plane`-sized source plane: each cell's start and step as the vector
/// path derives them (the difference to the next knot over [`GRID`]
/// columns, rounded down).
pub fn windows(pos: &[[i32; 2]], nk: usize, plane: (usize, usize)) -> Vec<u32> {
    let cell = |p: [i32; 2], q: [i32; 2]| {
        let step = [0, 1].map(|a| q[a].wrapping_sub(p[a]) >> 3);
        simd::window(plane, p, step)
    };
    pos.chunks(nk)
        .flat_map(|row| {
            let cells = row.windows(2).map(|pq| cell(pq[0], pq[1]));
            cells.chain([simd::NO_WINDOW])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::super::canvas::plan_canvas;
    use super::*;

    fn rig() -> ([Camera; 3], [(u32, u32); 3], Canvas) {
        let mut cams = [-60.0, 0.0, 60.0].map(|y| Camera::nominal(y, 75.0));
        cams[2].pitch_deg = 1.5;
        cams[0].k1 = -0.03;
        let src = [(640, 360); 3];
        let canvas = plan_canvas(&cams, &src).unwrap();
        (cams, src, canvas)
    }

    #[test]
    fn straight_lines_between_knots_stay_within_a_twentieth_of_a_pixel() {
        let (cams, src, canvas) = rig();
        let map = WarpMap::new(&canvas, &cams, src);
        let pano = &canvas.panorama;
        let mut worst = 0.0f64;
        for (i, span) in map.planes[0].spans.iter().enumerate() {
            let rot = cams[i].rotation();
            for row in [0, pano.height as usize / 2, pano.height as usize - 1] {
                let nk = span.knots.len();
                let knots = &span.pos[row * nk..(row + 1) * nk];
                for k in 0..nk - 1 {
                    let (a, b) = (span.knots[k], span.knots[k + 1]);
                    let c = (a + b) / 2;
                    let step = steps(knots, &span.knots, k);
                    let lerp =
                        |d: usize| f64::from(knots[k][d]) + f64::from(step[d]) * (c - a) as f64;
                    let ray = pano.ray((span.first + c) as f64, row as f64);
                    let (x, y) = cams[i].project(&rot, ray, 640.0, 360.0).unwrap();
                    let one = f64::from(ONE);
                    worst = worst.max((lerp(0) / one - x).hypot(lerp(1) / one - y));
                }
            }
        }
        assert!(worst < 0.05, "worst {worst} px");
    }

    #[test]
    fn the_spans_tile_the_panorama_and_seams_sit_where_neighbours_overlap() {
        let (cams, src, canvas) = rig();
        let map = WarpMap::new(&canvas, &cams, src);
        for plane in &map.planes {
            let [l, c, r] = &plane.spans;
            assert_eq!(l.first, 0);
            assert_eq!(r.first + r.cols, plane.size.0);
            let [(s0, n0), (s1, n1)] = plane.seams;
            assert_eq!((s0, s0 + n0), (c.first, l.first + l.cols));
            assert_eq!((s1, s1 + n1), (r.first, c.first + c.cols));
        }
        assert_eq!(map.planes[1].size.0 * 2, map.planes[0].size.0);
        let (w, h) = map.planes[0].size;
        assert_eq!(map.frame_len(), w * h * 3 / 2);
    }
}
