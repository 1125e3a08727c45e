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

use serde::{Deserialize, Serialize};

use super::calibrate::Calibration;

/// One camera's chroma maps: `u -> 128 + u_gain (u - 128) + u_offset`, and
/// the same for V.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChromaMap {
    /// U (Cb) gain about 128.
    pub u_gain: f64,
    /// U shift, levels.
    pub u_offset: f64,
    /// V (Cr) gain about 128.
    pub v_gain: f64,
    /// V shift, levels.
    pub v_offset: f64,
}

impl ChromaMap {
    /// The map of a camera whose chroma follows its exposure gain `g`.
    pub fn following(g: f64) -> ChromaMap {
        ChromaMap {
            u_gain: g,
            u_offset: 0.0,
            v_gain: g,
            v_offset: 0.0,
        }
    }

    /// Checks the ranges (gains 0.2-5, offsets within +-64 levels); the
    /// error names the field under `at` (`chroma.CAM_R`).
    pub fn check(&self, at: &str) -> Result<(), String> {
        for (k, v) in [("u_gain", self.u_gain), ("v_gain", self.v_gain)] {
            if !(0.2..=5.0).contains(&v) {
                return Err(format!("{at}.{k} {v} is not 0.2-5"));
            }
        }
        for (k, v) in [("u_offset", self.u_offset), ("v_offset", self.v_offset)] {
            if !(-64.0..=64.0).contains(&v) {
                return Err(format!("{at}.{k} {v} is not -64 to 64"));
            }
        }
        Ok(())
    }
}

/// The three cameras' chroma maps, as the calibration file holds them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chroma {
    /// CAM_L.
    #[serde(rename = "CAM_L")]
    pub left: ChromaMap,
    /// CAM_C: the reference (gains 1, offsets 0).
    #[serde(rename = "CAM_C")]
    pub center: ChromaMap,
    /// CAM_R.
    #[serde(rename = "CAM_R")]
    pub right: ChromaMap,
}

impl Chroma {
    /// As an array, left to right.
    pub fn array(&self) -> [ChromaMap; 3] {
        [self.left, self.center, self.right]
    }

    /// From an array, left to right.
    pub fn from_array(m: [ChromaMap; 3]) -> Chroma {
        Chroma {
            left: m[0],
            center: m[1],
            right: m[2],
        }
    }
}

/// Camera `cam`'s chroma map in `cal`: its own, or (a file from before
/// colour matching) the one following its exposure gain.
pub fn chroma_map(cal: &Calibration, cam: usize) -> ChromaMap {
    cal.chroma
        .map(|c| c.array()[cam])
        .unwrap_or_else(|| ChromaMap::following(cal.gains[cam]))
}

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
    luts.iter()
        .all(|t| t.iter().enumerate().all(|(i, &v)| usize::from(v) == i))
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

    #[test]
    fn ranges_are_checked_naming_the_field() {
        let mut m = ChromaMap::following(1.0);
        assert!(m.check("chroma.CAM_L").is_ok());
        m.v_offset = 80.0;
        let e = m.check("chroma.CAM_L").unwrap_err();
        assert!(e.contains("chroma.CAM_L.v_offset 80"), "{e}");
        m.v_offset = 0.0;
        m.u_gain = 0.1;
        assert!(m.check("x").unwrap_err().contains("x.u_gain"));
    }
}
