//! The calibration file: each camera's geometry, exposure gain and chroma
//! maps, and each seam's status and residuals, as `rig-stitch calibrate`
//! writes it ([`super::calibrate`]) and the stitch reads it (a hand-edited
//! or fixed file works the same): human-readable JSON, checked on reading
//! with errors that name the field.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::StitchError;
use super::camera::Camera;
use crate::base::fsx;

/// The cameras' names, left to right.
const CAM_NAMES: [&str; 3] = ["CAM_L", "CAM_C", "CAM_R"];

/// The three cameras, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cameras {
    /// CAM_L.
    #[serde(rename = "CAM_L")]
    pub left: Camera,
    /// CAM_C: yaw, pitch and roll are 0 (the reference).
    #[serde(rename = "CAM_C")]
    pub center: Camera,
    /// CAM_R.
    #[serde(rename = "CAM_R")]
    pub right: Camera,
}

impl Cameras {
    /// As an array, left to right.
    pub fn array(&self) -> [Camera; 3] {
        [self.left, self.center, self.right]
    }

    /// From an array, left to right.
    pub fn from_array(c: [Camera; 3]) -> Cameras {
        Cameras {
            left: c[0],
            center: c[1],
            right: c[2],
        }
    }
}

/// One seam's calibration result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seam {
    /// `CAM_L/CAM_C` or `CAM_C/CAM_R`.
    pub between: String,
    /// `calibrated` or `fallback_prior`.
    pub status: String,
    /// Median gradient in the overlap, gray levels per pixel.
    pub texture: f64,
    /// Rays both cameras saw.
    pub samples: usize,
    /// Normalized cross-correlation of the two views there (1 = same).
    pub ncc: f64,
    /// RMS gray-level difference after gains, with the result.
    pub rms: f64,
    /// The same with the prior.
    pub rms_prior: f64,
    /// RMS chroma difference (U and V, levels) after the colour maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uv_rms: Option<f64>,
    /// The same with chroma only following the exposure gain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uv_rms_gain_only: Option<f64>,
}

/// A calibration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Always `cylindrical` (see [`super::camera`]).
    pub projection: String,
    /// Always `CAM_C`: its axis is the panorama's centre and horizon.
    pub reference: String,
    /// Session measured, if measured.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Where the starting point came from: `nominal` or a file.
    #[serde(default)]
    pub prior: String,
    /// The geometry.
    pub cameras: Cameras,
    /// Exposure gains applied to each camera (CAM_C 1).
    #[serde(default = "unit_gains")]
    pub gains: [f64; 3],
    /// Per camera chroma maps (white balance and saturation); absent in
    /// files from before them: chroma then follows `gains`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chroma: Option<Chroma>,
    /// Per seam, left to right.
    #[serde(default)]
    pub seams: Vec<Seam>,
    /// Seams that fell back, and why.
    #[serde(default)]
    pub warnings: Vec<String>,
}

fn unit_gains() -> [f64; 3] {
    [1.0; 3]
}

impl Calibration {
    /// The nominal rig: neighbours `yaw_sep` degrees apart, all `hfov`.
    pub fn nominal(yaw_sep: f64, hfov: f64) -> Calibration {
        Calibration {
            projection: "cylindrical".into(),
            reference: "CAM_C".into(),
            session_id: None,
            prior: "nominal".into(),
            cameras: Cameras::from_array([
                Camera::nominal(-yaw_sep, hfov),
                Camera::nominal(0.0, hfov),
                Camera::nominal(yaw_sep, hfov),
            ]),
            gains: unit_gains(),
            chroma: None,
            seams: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Reads and checks a calibration file (hand-edited ones too).
    pub fn read(path: &Path) -> Result<Calibration, StitchError> {
        let bad = |m: String| StitchError::Config(format!("calibration {}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        let c: Calibration = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if c.projection != "cylindrical" {
            return Err(bad(format!(
                "projection {:?}: only cylindrical is made",
                c.projection
            )));
        }
        for (name, cam) in ["CAM_L", "CAM_C", "CAM_R"].iter().zip(c.cameras.array()) {
            if !(10.0..=170.0).contains(&cam.hfov_deg) {
                return Err(bad(format!(
                    "cameras.{name}.hfov_deg {} is not 10-170",
                    cam.hfov_deg
                )));
            }
        }
        if c.gains.iter().any(|g| !(0.2..=5.0).contains(g)) {
            return Err(bad(format!("gains {:?}: each must be 0.2-5", c.gains)));
        }
        if let Some(chroma) = &c.chroma {
            for (name, m) in CAM_NAMES.iter().zip(chroma.array()) {
                m.check(&format!("chroma.{name}")).map_err(bad)?;
            }
        }
        Ok(c)
    }

    /// Writes the file atomically, pretty-printed.
    pub fn write(&self, path: &Path) -> Result<(), StitchError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fsx::with_path(dir))?;
        }
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        fsx::atomic_write(path, text.as_bytes()).map_err(StitchError::Io)
    }

    /// A few lines for people.
    pub fn human(&self) -> String {
        let mut s = format!("prior: {}\n", self.prior);
        for (i, (name, (c, g))) in CAM_NAMES
            .iter()
            .zip(self.cameras.array().iter().zip(self.gains))
            .enumerate()
        {
            let m = chroma_map(self, i);
            s.push_str(&format!(
                "  {name}  yaw {:8.3}  pitch {:7.3}  roll {:7.3}  hfov {:7.3}  k1 {:7.4}  gain {:.3}\n\
                 {:7}colour  U x{:.3} {:+.1}  V x{:.3} {:+.1}\n",
                c.yaw_deg, c.pitch_deg, c.roll_deg, c.hfov_deg, c.k1, g,
                "", m.u_gain, m.u_offset, m.v_gain, m.v_offset
            ));
        }
        for seam in &self.seams {
            s.push_str(&format!(
                "  seam {}  {}  texture {:.1}  ncc {:.3}  rms {:.2} (prior {:.2})",
                seam.between, seam.status, seam.texture, seam.ncc, seam.rms, seam.rms_prior
            ));
            if let (Some(a), Some(b)) = (seam.uv_rms, seam.uv_rms_gain_only) {
                s.push_str(&format!("  chroma rms {a:.2} (gain only {b:.2})"));
            }
            s.push('\n');
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s
    }
}

/// The seams' names, left to right.
pub const SEAM_NAMES: [&str; 2] = ["CAM_L/CAM_C", "CAM_C/CAM_R"];

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

#[cfg(test)]
mod tests {
    use super::*;

    /// The nominal file as JSON, `chroma` set to `chroma` (or left out).
    fn file_with(dir: &Path, chroma: Option<serde_json::Value>) -> std::path::PathBuf {
        let mut cal = serde_json::to_value(Calibration::nominal(60.0, 73.0)).unwrap();
        cal["gains"] = serde_json::json!([1.0, 1.0, 1.25]);
        match chroma {
            Some(c) => cal["chroma"] = c,
            None => assert!(cal.as_object_mut().unwrap().remove("chroma").is_none()),
        }
        let path = dir.join("calibration.json");
        std::fs::write(&path, cal.to_string()).unwrap();
        path
    }

    #[test]
    fn a_file_without_chroma_reads_and_its_chroma_follows_the_gains() {
        let dir = tempfile::tempdir().unwrap();
        let cal = Calibration::read(&file_with(dir.path(), None)).unwrap();
        assert_eq!(cal.chroma, None);
        assert_eq!(chroma_map(&cal, 2), ChromaMap::following(1.25));
        assert!(!cal.human().is_empty());
    }

    #[test]
    fn chroma_maps_are_checked_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let unit = serde_json::json!({"u_gain": 1, "u_offset": 0, "v_gain": 1, "v_offset": 0});
        let mut bad = serde_json::json!({"CAM_L": unit, "CAM_C": unit, "CAM_R": unit});
        let cal = Calibration::read(&file_with(dir.path(), Some(bad.clone()))).unwrap();
        assert_eq!(chroma_map(&cal, 2), ChromaMap::following(1.0));
        bad["CAM_R"]["u_gain"] = serde_json::json!(9);
        let e = Calibration::read(&file_with(dir.path(), Some(bad.clone())))
            .unwrap_err()
            .to_string();
        assert!(e.contains("chroma.CAM_R.u_gain 9 is not 0.2-5"), "{e}");
        bad["CAM_R"] = serde_json::json!({"u_gain": 1, "u_offset": 0, "v_gain": 1});
        let e = Calibration::read(&file_with(dir.path(), Some(bad)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("v_offset"), "{e}");
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
