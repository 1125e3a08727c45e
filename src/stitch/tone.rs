//! Exposure and colour matching: the per-plane level maps that bring a
//! camera's recording to CAM_C's levels, estimated by `rig-stitch
//! calibrate` and applied by the stitch after the warp.
//!
//! A map works on the 8-bit YUV planes the stitch blends: luma is scaled
//! about black (16), chroma about neutral (128), as a gain on linear-ish
//! RGB does. It is given as a 256-entry table per plane, so that any level
//! map costs one lookup a sample.

use super::calibrate::Calibration;

/// The Y, U and V level tables of camera `cam` (0 = CAM_L, 1 = CAM_C,
/// 2 = CAM_R) of `cal`.
pub fn plane_luts(cal: &Calibration, cam: usize) -> [[u8; 256]; 3] {
    let g = cal.gains[cam];
    [gain_lut(g, 16.0), gain_lut(g, 128.0), gain_lut(g, 128.0)]
}

/// True when every table of `luts` is the identity (nothing to apply).
pub fn is_identity(luts: &[[u8; 256]; 3]) -> bool {
    luts.iter()
        .all(|t| t.iter().enumerate().all(|(i, &v)| usize::from(v) == i))
}

/// `v -> pivot + (v - pivot) * gain`, rounded and clipped to 0-255.
fn gain_lut(gain: f64, pivot: f64) -> [u8; 256] {
    let mut t = [0u8; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = (pivot + (i as f64 - pivot) * gain)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_gain_is_the_identity_and_a_gain_pivots_on_black_and_neutral() {
        let mut cal = Calibration::nominal(60.0, 75.0);
        assert!(is_identity(&plane_luts(&cal, 1)));
        cal.gains[2] = 1.25;
        let [y, u, v] = plane_luts(&cal, 2);
        assert!(!is_identity(&[y, u, v]));
        assert_eq!((y[16], y[116], y[255]), (16, 141, 255));
        assert_eq!((u[128], u[168], u[88]), (128, 178, 78));
        assert_eq!(v[0], 0);
    }
}
