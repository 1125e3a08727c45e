//! The colour step of `rig-stitch calibrate`: each outer camera's chroma
//! maps ([`super::calibration::ChromaMap`]) fitted against CAM_C over their
//! seam's overlap, once the geometry is known.
//!
//! Every sampled ray of the overlap gives a pair: the outer camera's U (or
//! V) and CAM_C's, read (bilinear) from the per-pixel temporal medians of
//! the sampled frames (players move, the pitch does not).
//! Per plane, `centre - 128 = gain (outer - 128) + offset` is fitted by
//! least squares, then refitted four times keeping only the pairs within 3
//! robust sigmas of the line's median residual (a player left in one
//! median, a glare). The error the stitch is judged on is CAM_C's value
//! against the mapped one, which is what that regression minimises.
//!
//! When the overlap's chroma hardly varies (robust spread under
//! [`SPREAD_MIN`] levels: a flat or gray scene) the gain cannot be told
//! from the offset: the gain then follows the camera's exposure gain and
//! only the offset is measured. The same on a seam whose geometry fell
//! back to the prior (misregistered texture drags a fitted gain toward 0).

use super::align;
use super::calibration::{Calibration, Chroma, ChromaMap, SEAM_NAMES};
use super::image::Gray;

/// Robust spread (levels) of an outer camera's chroma over the overlap
/// below which its chroma gain is not fitted.
pub const SPREAD_MIN: f64 = 2.0;
/// Pairs below which a seam's colour is not measured at all.
const PAIRS_MIN: usize = 200;
/// The cameras' names, left to right.
const CAMS: [&str; 3] = ["CAM_L", "CAM_C", "CAM_R"];

/// An `(outer - 128, centre - 128)` pair of chroma values.
type Pair = (f64, f64);

/// One camera's U and V medians at the calibration size.
pub struct Planes {
    /// U (Cb).
    pub u: Gray,
    /// V (Cr).
    pub v: Gray,
}

/// What the colour step found: the maps, and per seam the RMS chroma
/// difference (U and V pooled, levels) with them and with chroma only
/// following the exposure gains.
pub struct ColourFit {
    /// The three cameras' maps (CAM_C's the identity).
    pub chroma: Chroma,
    /// Per seam `(with the maps, with the exposure gain only)`.
    pub rms: [(f64, f64); 2],
    /// Seams whose colour could not be fully measured, and why.
    pub warnings: Vec<String>,
}

/// Fits the colour maps of `cal` from `planes` and records them in it:
/// the maps, each seam's chroma residuals, the warnings.
pub fn attach(cal: &mut Calibration, planes: &[Planes; 3]) {
    let fit = fit(planes, cal);
    cal.chroma = Some(fit.chroma);
    for (seam, (after, before)) in cal.seams.iter_mut().zip(fit.rms) {
        if after.is_finite() {
            (seam.uv_rms, seam.uv_rms_gain_only) = (Some(after), Some(before));
        }
    }
    cal.warnings.extend(fit.warnings);
}

/// Fits the outer cameras' chroma maps of `cal` (its geometry and gains
/// final) from the three cameras' `planes`.
pub fn fit(planes: &[Planes; 3], cal: &Calibration) -> ColourFit {
    let mut maps = cal.gains.map(ChromaMap::following);
    maps[1] = ChromaMap::following(1.0);
    let mut rms = [(f64::NAN, f64::NAN); 2];
    let mut warnings = Vec::new();
    for seam in 0..2 {
        let outer = if seam == 0 { 0 } else { 2 };
        match fit_seam(planes, cal, seam, outer) {
            Ok((m, r)) => (maps[outer], rms[seam]) = (m, r),
            Err(why) => warnings.push(format!(
                "seam {}: {why}; {}'s chroma follows its exposure gain",
                SEAM_NAMES[seam], CAMS[outer]
            )),
        }
    }
    ColourFit {
        chroma: Chroma::from_array(maps),
        rms,
        warnings,
    }
}

/// Camera `outer`'s map from `seam`'s overlap, and the seam's chroma RMS
/// `(with it, with the exposure gain only)`; or why not.
fn fit_seam(
    planes: &[Planes; 3],
    cal: &Calibration,
    seam: usize,
    outer: usize,
) -> Result<(ChromaMap, (f64, f64)), String> {
    let [u, v] = seam_pairs(planes, cal, seam, outer);
    if u.len() < PAIRS_MIN {
        return Err(format!(
            "{} rays in the overlap, too few to match colour",
            u.len()
        ));
    }
    let g = cal.gains[outer];
    let fixed_gain = cal
        .seams
        .get(seam)
        .is_some_and(|s| s.status != "calibrated");
    let (ug, uo) = fit_plane(&u, g, fixed_gain);
    let (vg, vo) = fit_plane(&v, g, fixed_gain);
    let m = ChromaMap {
        u_gain: round(ug, 4),
        u_offset: round(uo, 3),
        v_gain: round(vg, 4),
        v_offset: round(vo, 3),
    };
    m.check("chroma")
        .map_err(|e| format!("colour fit out of range ({e})"))?;
    let after = pooled_rms(&[(&u, m.u_gain, m.u_offset), (&v, m.v_gain, m.v_offset)]);
    let before = pooled_rms(&[(&u, g, 0.0), (&v, g, 0.0)]);
    Ok((m, (round(after, 3), round(before, 3))))
}

/// The `(outer - 128, centre - 128)` pairs of U and of V over `seam`'s
/// overlap, where both cameras see the ray.
fn seam_pairs(
    planes: &[Planes; 3],
    cal: &Calibration,
    seam: usize,
    outer: usize,
) -> [Vec<(f64, f64)>; 2] {
    let cams = cal.cameras.array();
    let img = &planes[1].u;
    let f = cams[1].focal(img.w as f64);
    let aspect = img.h as f64 / img.w as f64;
    let rays = align::seam_rays(&cams, seam, f, aspect, 2.0, 0.0);
    let rots = cams.map(|c| c.rotation());
    let (mut u, mut v) = (Vec::new(), Vec::new());
    for ray in &rays {
        let at = |i: usize| {
            let p = &planes[i];
            let (x, y) = cams[i].project(&rots[i], *ray, p.u.w as f64, p.u.h as f64)?;
            Some((p.u.sample(x, y)? - 128.0, p.v.sample(x, y)? - 128.0))
        };
        if let (Some(o), Some(c)) = (at(outer), at(1)) {
            u.push((o.0, c.0));
            v.push((o.1, c.1));
        }
    }
    [u, v]
}

/// `(gain, offset)` of `y = gain x + offset` over `pairs`, trimmed least
/// squares; the gain stays `fallback` when `fixed` or when `x` hardly
/// varies.
fn fit_plane(pairs: &[(f64, f64)], fallback: f64, fixed: bool) -> (f64, f64) {
    let xs: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let fixed = fixed || robust_sigma(&xs) < SPREAD_MIN;
    let mut keep: Vec<(f64, f64)> = pairs.to_vec();
    let mut line = (fallback, 0.0);
    for _ in 0..5 {
        line = if fixed {
            (
                fallback,
                median(keep.iter().map(|(x, y)| y - fallback * x).collect()),
            )
        } else {
            least_squares(&keep).unwrap_or(line)
        };
        let res = |&(x, y): &(f64, f64)| y - line.0 * x - line.1;
        let all: Vec<f64> = pairs.iter().map(res).collect();
        let (mid, limit) = (median(all.clone()), 3.0 * robust_sigma(&all).max(0.5));
        keep = pairs
            .iter()
            .copied()
            .filter(|p| (res(p) - mid).abs() <= limit)
            .collect();
    }
    line
}

/// Ordinary least squares `y = a x + b`, or `None` when `x` is constant.
fn least_squares(pairs: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = pairs.len() as f64;
    let (mx, my) = pairs
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in pairs {
        sxx += (x - mx) * (x - mx);
        sxy += (x - mx) * (y - my);
    }
    (sxx > 1e-9).then(|| (sxy / sxx, my - sxy / sxx * mx))
}

/// RMS of `y - (gain x + offset)` over the planes' pairs together.
fn pooled_rms(planes: &[(&[Pair], f64, f64)]) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (pairs, g, o) in planes {
        for (x, y) in pairs.iter() {
            sum += (y - g * x - o).powi(2);
            n += 1;
        }
    }
    (sum / n.max(1) as f64).sqrt()
}

/// 1.4826 times the median absolute deviation from the median.
fn robust_sigma(v: &[f64]) -> f64 {
    let m = median(v.to_vec());
    1.4826 * median(v.iter().map(|x| (x - m).abs()).collect())
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_found_through_outliers_and_a_flat_plane_keeps_the_gain() {
        // y = 1.2 x - 5 with a "player": 10% of the pairs far off.
        let pairs: Vec<(f64, f64)> = (0..1000)
            .map(|i| {
                let x = ((i * 37) % 61) as f64 - 30.0;
                let y = 1.2 * x - 5.0 + if i % 10 == 0 { 40.0 } else { 0.0 };
                (x, y)
            })
            .collect();
        let (g, o) = fit_plane(&pairs, 1.0, false);
        assert!((g - 1.2).abs() < 1e-6 && (o + 5.0).abs() < 1e-6, "{g} {o}");
        // A gray overlap: only the offset is measured.
        let flat: Vec<(f64, f64)> = (0..500).map(|i| (0.5 * (i % 2) as f64, 3.0)).collect();
        let (g, o) = fit_plane(&flat, 1.25, false);
        assert_eq!(g, 1.25);
        assert!((o - 3.0).abs() < 0.7, "{o}");
        let (g, _) = fit_plane(&pairs, 0.9, true);
        assert_eq!(g, 0.9);
    }
}
