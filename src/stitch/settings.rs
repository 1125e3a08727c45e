//! How panoramas are made: the `processing:` keys rig-stitch uses, checked.

use std::path::PathBuf;

use crate::base::config::ProcessingConfig;

use super::error::StitchError;
use super::sync::{SyncMode, SyncSettings};

/// How panoramas are made: the `processing:` keys rig-stitch uses.
#[derive(Debug, Clone, PartialEq)]
pub struct StitchSettings {
    /// The ffmpeg binary (`processing.ffmpeg_path`).
    pub ffmpeg: PathBuf,
    /// The ffprobe binary (`processing.ffprobe_path`).
    pub ffprobe: PathBuf,
    /// `h264`, `h265` or a hardware encoder (`processing.output_codec`).
    pub codec: String,
    /// x264/x265 preset (`processing.output_preset`).
    pub preset: String,
    /// Columns shared by neighbouring cameras (`processing.stitch_overlap_px`);
    /// even, because 4:2:0 chroma has one sample per two columns.
    pub overlap_px: u32,
    /// Widest panorama written, 0 for no cap (`processing.output_width`).
    pub output_width: u32,
    /// How the cameras are put in time (`processing.sync_*`).
    pub sync: SyncSettings,
    /// Nominal yaw between neighbouring cameras, degrees
    /// (`processing.nominal_yaw_deg`): calibration's prior with no earlier
    /// calibration of the rig.
    pub nominal_yaw_deg: f64,
    /// Nominal horizontal FOV, degrees (`processing.nominal_hfov_deg`).
    pub nominal_hfov_deg: f64,
    /// A fixed calibration to stitch with (`processing.calibration_file`
    /// or `--calibration`) instead of the session's own.
    pub calibration_file: Option<PathBuf>,
}

impl StitchSettings {
    /// Takes the settings from the configuration, checking what ffmpeg
    /// would otherwise reject late.
    pub fn from_config(p: &ProcessingConfig) -> Result<StitchSettings, StitchError> {
        p.check().map_err(|e| StitchError::Config(e.to_string()))?;
        Ok(StitchSettings {
            sync: sync_settings(p)?,
            ffmpeg: p.ffmpeg_path.clone(),
            ffprobe: p.ffprobe_path.clone(),
            codec: p.output_codec.clone(),
            preset: p.output_preset.clone(),
            overlap_px: p.stitch_overlap_px,
            output_width: p.output_width,
            nominal_yaw_deg: p.nominal_yaw_deg,
            nominal_hfov_deg: p.nominal_hfov_deg,
            calibration_file: (!p.calibration_file.as_os_str().is_empty())
                .then(|| p.calibration_file.clone()),
        })
    }
}

/// The `processing.sync_*` keys, checked.
fn sync_settings(p: &ProcessingConfig) -> Result<SyncSettings, StitchError> {
    let mode = match p.sync_mode.as_str() {
        "content" => SyncMode::Content,
        "clock" => SyncMode::Clock,
        other => {
            return Err(StitchError::Config(format!(
                "processing.sync_mode: must be content or clock, got {other:?}"
            )));
        }
    };
    Ok(SyncSettings {
        mode,
        search_sec: p.sync_search_sec,
        window_sec: p.sync_window_sec,
    })
}
