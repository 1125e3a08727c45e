//! Which rectangle of each camera's analysis frame is metered at a seam.
//!
//! A seam's two strips must look at the same part of the world, or a player
//! crossing from one to the other shows up in them some frames apart (in
//! either direction, for players running both ways) and the correlation
//! peak smears. Two rules:
//!
//! * **Edges** (a translation rig: crops of one wide view): the shared
//!   columns are the frames' edges, `strip` of the width, all rows.
//! * **Cameras** (a rotated rig: a calibration, or the nominal prior): the
//!   azimuths both cameras see on the horizon, less a tenth at each end,
//!   and the heights both see over that band, mapped through each camera's
//!   model (rotation, focal, distortion) to the bounding box of its pixels.

use crate::stitch::camera::{Camera, Mat3};

/// A rectangle of an analysis frame: columns `x.0..x.1`, rows `y.0..y.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strip {
    /// Columns, end exclusive.
    pub x: (u32, u32),
    /// Rows, end exclusive.
    pub y: (u32, u32),
}

/// Per seam (CAM_L-CAM_C, then CAM_R-CAM_C): the side camera's strip and
/// CAM_C's.
pub type SeamStrips = [(Strip, Strip); 2];

/// How the strips are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StripRule {
    /// The frames' edges, this share of the width (a translation rig).
    Edges(f64),
    /// The band each pair of neighbours both see, by this geometry (L, C, R).
    Cameras([Camera; 3]),
}

/// Narrowest strip metered, analysis columns.
const MIN_COLUMNS: u32 = 4;
/// Narrowest shared band worth metering, degrees of azimuth.
const MIN_BAND_DEG: f64 = 2.0;
/// Share of the shared band dropped at each end (where one camera's frame
/// edge bends away from a line of constant azimuth).
const MARGIN: f64 = 0.1;
/// Grid of rays sampled across a band, each way.
const GRID: usize = 9;

/// The strips of the edges rule: `frac` of a `width` x `height` frame.
pub fn edge_strips(width: u32, height: u32, frac: f64) -> SeamStrips {
    let strip = ((frac.clamp(0.05, 0.5) * f64::from(width)).round() as u32).max(MIN_COLUMNS);
    let rows = (0, height);
    let left = Strip {
        x: (0, strip),
        y: rows,
    };
    let right = Strip {
        x: (width - strip, width),
        y: rows,
    };
    [(right, left), (left, right)]
}

/// The strips of the cameras rule on `width` x `height` frames, or `None`
/// when a pair of neighbours shares too narrow a band.
pub fn shared_strips(cams: &[Camera; 3], width: u32, height: u32) -> Option<SeamStrips> {
    let size = (f64::from(width), f64::from(height));
    let seam = |side: usize| -> Option<(Strip, Strip)> {
        let pair = [cams[side], cams[1]].map(|c| (c, c.rotation()));
        let (a0, a1) = shared_azimuths(&pair, size)?;
        let (t0, t1) = shared_heights(&pair, size, (a0, a1))?;
        let [s, c] = pair.map(|p| bounding(&p, size, (a0, a1), (t0, t1)));
        Some((s?, c?))
    };
    Some([seam(0)?, seam(2)?])
}

/// Whether a camera's frame holds the world ray at azimuth `az` (radians)
/// and height `t` (on the unit cylinder).
fn sees(cam: &(Camera, Mat3), size: (f64, f64), az: f64, t: f64) -> bool {
    let ray = [az.sin(), t, az.cos()];
    cam.0
        .project(&cam.1, ray, size.0, size.1)
        .is_some_and(|(x, y)| x >= 0.0 && y >= 0.0 && x <= size.0 - 1.0 && y <= size.1 - 1.0)
}

/// The azimuths (radians) both cameras see on the horizon, less the margin.
fn shared_azimuths(pair: &[(Camera, Mat3); 2], size: (f64, f64)) -> Option<(f64, f64)> {
    let step = 0.1f64.to_radians();
    let both: Vec<f64> = (-1800..=1800)
        .map(|i| f64::from(i) * step)
        .filter(|&az| pair.iter().all(|c| sees(c, size, az, 0.0)))
        .collect();
    let (lo, hi) = (*both.first()?, *both.last()?);
    if (hi - lo).to_degrees() < MIN_BAND_DEG {
        return None;
    }
    let m = (hi - lo) * MARGIN;
    Some((lo + m, hi - m))
}

/// The heights both cameras see over the whole band, less the margin.
fn shared_heights(
    pair: &[(Camera, Mat3); 2],
    size: (f64, f64),
    band: (f64, f64),
) -> Option<(f64, f64)> {
    let azs = spread(band);
    let inside = |t: f64| {
        azs.iter()
            .all(|&az| pair.iter().all(|c| sees(c, size, az, t)))
    };
    let step = 0.002;
    let mut lo = 0.0;
    while inside(lo - step) && lo > -2.0 {
        lo -= step;
    }
    let mut hi = 0.0;
    while inside(hi + step) && hi < 2.0 {
        hi += step;
    }
    if !inside(0.0) || hi - lo < 10.0 * step {
        return None;
    }
    let m = (hi - lo) * MARGIN;
    Some((lo + m, hi - m))
}

/// `GRID` values from `r.0` to `r.1`.
fn spread(r: (f64, f64)) -> Vec<f64> {
    (0..GRID)
        .map(|i| r.0 + (r.1 - r.0) * i as f64 / (GRID - 1) as f64)
        .collect()
}

/// The bounding box of a camera's pixels over the band and heights.
fn bounding(
    cam: &(Camera, Mat3),
    size: (f64, f64),
    band: (f64, f64),
    heights: (f64, f64),
) -> Option<Strip> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for az in spread(band) {
        for t in spread(heights) {
            let (x, y) = cam
                .0
                .project(&cam.1, [az.sin(), t, az.cos()], size.0, size.1)?;
            (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
        }
    }
    let clamp = |v: f64, max: f64| v.clamp(0.0, max) as u32;
    let w = size.0 as u32;
    let mut x = (clamp(x0.floor(), size.0), clamp(x1.ceil() + 1.0, size.0));
    if x.1 - x.0 < MIN_COLUMNS {
        x.0 = x.0.min(w - MIN_COLUMNS);
        x.1 = x.0 + MIN_COLUMNS;
    }
    let y = (clamp(y0.floor(), size.1), clamp(y1.ceil() + 1.0, size.1));
    (y.1 >= y.0 + super::BANDS as u32).then_some(Strip { x, y })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_are_the_shared_columns() {
        let s = edge_strips(160, 90, 0.25);
        assert_eq!(s[0].0.x, (120, 160));
        assert_eq!(s[0].1.x, (0, 40));
        assert_eq!(s[1].0.x, (0, 40));
        assert_eq!(s[1].1.x, (120, 160));
        assert_eq!(s[0].0.y, (0, 90));
    }

    #[test]
    fn rotated_strips_see_the_same_azimuths() {
        // CAM_L -58 deg, 70 deg FOV: its right edge at -23 deg; CAM_C 72 deg:
        // its left edge at -36 deg. Shared: -36..-23, metered -34.7..-24.3.
        let cams = [
            Camera::nominal(-58.0, 70.0),
            Camera::nominal(0.0, 72.0),
            Camera::nominal(60.0, 76.0),
        ];
        let s = shared_strips(&cams, 160, 90).unwrap();
        let col = |c: &Camera, az: f64| {
            let ray = [az.to_radians().sin(), 0.0, az.to_radians().cos()];
            c.project(&c.rotation(), ray, 160.0, 90.0).unwrap().0
        };
        for (side, (a, b)) in [(0, (-34.7, -24.3)), (2, (23.4, 34.6))] {
            let seam = s[side / 2];
            for (strip, cam) in [(seam.0, &cams[side]), (seam.1, &cams[1])] {
                let (x0, x1) = (col(cam, a), col(cam, b));
                assert!((f64::from(strip.x.0) - x0).abs() < 2.0, "{strip:?} {x0}");
                assert!((f64::from(strip.x.1) - x1).abs() < 3.0, "{strip:?} {x1}");
            }
        }
        // Cameras that share nothing have no strips.
        let apart = [cams[0], cams[1], Camera::nominal(90.0, 60.0)];
        assert_eq!(shared_strips(&apart, 160, 90), None);
    }
}
