//! Exposure and colour matching: the per-plane level maps that bring a
//! camera's recording to CAM_C's levels, estimated by `rig-stitch
//! calibrate` and applied by the stitch after the warp.
//!
//! A map works on the 8-bit YUV planes the stitch blends, each plane on its
//! own: luma is scaled about black (16) by the camera's exposure gain;
//! each chroma plane is scaled about neutral (128) by its own gain (a
//! saturation difference, and the exposure's share of it) and shifted by an
//! offset (a colour cast: a white balance off toward blue moves U up and V
//! down). It is given as a 256-entry table per plane, so that any level map
//! costs one lookup a sample. What one table per plane cannot hold: the
//! part of a cast that grows with brightness (a 3x3 colour matrix moves a
//! bright gray's chroma more than a dark one's); the offset is the mean of
//! it over the overlap.

use super::calibration::{Calibration, chroma_map};

/// The Y, U and V level tables of camera `cam` (0 = CAM_L, 1 = CAM_C,
/// 2 = CAM_R) of `cal`.
pub fn plane_luts(cal: &Calibration, cam: usize) -> [[u8; 256]; 3] {
    let m = chroma_map(cal, cam);
    [
        level_lut(cal.gains[cam], 16.0, 0.0),
        level_lut(m.u_gain, 128.0, m.u_offset),
        level_lut(m.v_gain, 128.0, m.v_offset),
    ]
}

/// True when every table of `luts` is the identity (nothing to apply).
pub fn is_identity(luts: &[[u8; 256]; 3]) -> bool {
    luts.iter().all(table_is_identity)
}

/// True when the level table `t` maps every value to itself.
pub fn table_is_identity(t: &[u8; 256]) -> bool {
    t.iter().enumerate().all(|(i, &v)| usize::from(v) == i)
}

/// `v -> pivot + (v - pivot) * gain + offset`, rounded and clipped to
/// 0-255.
fn level_lut(gain: f64, pivot: f64, offset: f64) -> [u8; 256] {
    let mut t = [0u8; 256];
    for (i, v) in t.iter_mut().enumerate() {
        *v = (pivot + offset + (i as f64 - pivot) * gain)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::super::calibration::{Chroma, ChromaMap};
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

    #[test]
    fn chroma_maps_shift_and_scale_each_plane_on_its_own() {
        let mut cal = Calibration::nominal(60.0, 75.0);
        cal.gains[0] = 1.1;
        let mut maps = [ChromaMap::following(1.0); 3];
        maps[0] = ChromaMap {
            u_gain: 1.2,
            u_offset: -6.0,
            v_gain: 0.9,
            v_offset: 4.0,
        };
        cal.chroma = Some(Chroma::from_array(maps));
        let [y, u, v] = plane_luts(&cal, 0);
        assert_eq!((y[16], y[116]), (16, 126));
        assert_eq!((u[128], u[138], u[118]), (122, 134, 110));
        assert_eq!((v[128], v[138]), (132, 141));
    }
}
