//! Stitching with a calibration: which calibration a session uses, the plan
//! it makes, and the record written beside the panorama. (The pixels are
//! drawn by [`super::warp`].)
//!
//! Which calibration: `--calibration FILE`, else
//! `processing.calibration_file`, else the session's own
//! `stitched/calibration.json` (from `rig-stitch calibrate`); with none,
//! the translation-only stitch of shared columns is made.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::calibration::Calibration;
use super::canvas::{self, Canvas};
use super::{Plan, StitchError, StitchSettings, encode, output_size};
use crate::base::fsx;
use crate::base::ids::SessionId;
use crate::base::layout::ServerLayout;

/// The geometry a plan stitches with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Geometry {
    /// The calibration file used.
    pub calibration_file: String,
    /// Its content.
    pub calibration: Calibration,
    /// The panorama's layout.
    pub canvas: Canvas,
}

/// The calibration file a session's stitch uses, if any.
pub fn calibration_for(
    layout: &ServerLayout,
    session: &SessionId,
    settings: &StitchSettings,
) -> Option<PathBuf> {
    if let Some(p) = &settings.calibration_file {
        return Some(p.clone());
    }
    let own = layout.calibration(session);
    own.exists().then_some(own)
}

/// Turns a translation-only plan into a calibrated one, by `cal` (read
/// from `path`).
pub fn apply(
    plan: &mut Plan,
    path: &Path,
    cal: Calibration,
    settings: &StitchSettings,
) -> Result<(), StitchError> {
    let sizes = [0, 1, 2].map(|i| (plan.cameras[i].width, plan.cameras[i].height));
    let canvas = canvas::plan_canvas(&cal.cameras.array(), &sizes).map_err(|m| {
        StitchError::Geometry(format!(
            "session {}: calibration {}: {m}",
            plan.session_id,
            path.display()
        ))
    })?;
    for s in cal.seams.iter().filter(|s| s.status != "calibrated") {
        plan.warnings.push(format!(
            "seam {}: {} (see {})",
            s.between,
            s.status,
            path.display()
        ));
    }
    let (w, h) = (canvas.panorama.width, canvas.panorama.height);
    plan.panorama_width = w;
    plan.camera_height = h;
    let family = encode::codec_family(&settings.codec).unwrap_or(encode::Family::H264);
    (plan.output_width, plan.output_height, plan.output_rule) =
        output_size::fit(w, h, settings.output_width, family);
    plan.overlap_px = 0;
    plan.geometry = Some(Box::new(Geometry {
        calibration_file: path.display().to_string(),
        calibration: cal,
        canvas,
    }));
    Ok(())
}

/// What `stitched/panorama.json` says: how to read the panorama's pixels.
#[derive(Debug, Serialize)]
struct Record<'a> {
    projection: &'static str,
    /// Columns and rows of the file written.
    width: u32,
    height: u32,
    /// Horizontal and vertical angle covered, degrees.
    hfov_deg: f64,
    vfov_deg: f64,
    /// Azimuth of the centre column, degrees right of CAM_C's axis.
    yaw0_deg: f64,
    /// Pixels per radian of the file written.
    pixels_per_radian: f64,
    /// The calibration's file and content.
    calibration_file: &'a str,
    calibration: &'a Calibration,
    /// The layout before any scaling.
    canvas: &'a Canvas,
}

/// Writes `stitched/panorama.json` for a calibrated plan, atomically.
pub fn write_record(path: &Path, plan: &Plan, geo: &Geometry) -> Result<(), StitchError> {
    let p = &geo.canvas.panorama;
    let scale = plan.output_width as f64 / p.width as f64;
    let record = Record {
        projection: "cylindrical",
        width: plan.output_width,
        height: plan.output_height,
        hfov_deg: p.hfov_deg(),
        vfov_deg: p.vfov_deg(),
        yaw0_deg: p.yaw0_deg,
        pixels_per_radian: p.f * scale,
        calibration_file: &geo.calibration_file,
        calibration: &geo.calibration,
        canvas: &geo.canvas,
    };
    let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
    text.push('\n');
    fsx::atomic_write(path, text.as_bytes()).map_err(StitchError::Io)
}
