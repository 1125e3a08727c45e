//! Time alignment checked by content: the clocks (manifests) are the prior,
//! what the cameras saw decides.
//!
//! # How
//!
//! Neighbouring cameras see the same players cross their shared band at the
//! same instant. For each side camera the module measures, frame by frame,
//! the *motion energy* (mean absolute difference between consecutive gray
//! frames, beyond [`NOISE`]) of the strip it shares with CAM_C and of
//! CAM_C's matching strip (the same azimuths by the calibration, see
//! [`strips`]; the frames' edges for a translation rig), in [`BANDS`]
//! horizontal bands, on frames scaled down to
//! [`ANALYSIS_WIDTH`] columns, less its moving average over half a second
//! (slow drifts correlate at every lag and would hide the peak). Energy is a high-pass signal of what moves, so
//! it is insensitive to exposure, lens and projection differences between
//! the two cameras, and its bands keep the vertical position of the motion.
//! The side camera's series is cross-correlated (normalized, per band,
//! over the frames both have) with CAM_C's at every lag within
//! `processing.sync_search_sec` of the clock's answer (four times as far
//! when either clock was not NTP-synced); the best lag, refined to a
//! sub-frame by a parabola through the peak and its neighbours, is the
//! content offset.
//!
//! # When the content is not trusted
//!
//! The peak must reach [`MIN_PEAK`] and stand clear of the best value
//! outside its own lobe (second peak at most [`MAX_SECOND_RATIO`] of it).
//! Otherwise the clock's offset is kept and a warning says why (a static
//! scene, a camera that sees nothing moving in its overlap, periodic
//! motion). A content offset half a frame or more from the clock's is used
//! (more than one frame away, with a warning: one of the clocks was wrong);
//! within half a frame the clock's offset is kept, now confirmed, since a
//! synced clock is finer than the sub-frame estimate.
//!
//! # Cost
//!
//! Up to [`SYNC_POINTS`] windows of `processing.sync_window_sec` seconds,
//! spread over the common span, are decoded per camera (the side cameras
//! with the search margin on both sides); frames arrive one at a time from
//! ffmpeg, so memory is one frame plus a few floats per frame, whatever the
//! length of the match. Decoding a few tens of seconds per camera is small
//! next to encoding the whole panorama.

mod correlate;
mod energy;
mod measure;
pub mod strips;

use serde::Serialize;

pub use correlate::{Curve, Peak, find_peak, high_pass, ncc_at};
pub use energy::{BANDS, Meter, NOISE};
pub use measure::{align, measure};
pub use strips::{SeamStrips, Strip, StripRule, edge_strips, shared_strips};

/// Width of the gray frames analysed, pixels.
pub const ANALYSIS_WIDTH: u32 = 160;
/// Windows analysed at most, spread over the common span.
pub const SYNC_POINTS: usize = 3;
/// A correlation peak below this is not trusted.
pub const MIN_PEAK: f64 = 0.3;
/// A second peak above this share of the first makes the answer ambiguous.
pub const MAX_SECOND_RATIO: f64 = 0.8;
/// How much wider the search is when a clock was not NTP-synced.
pub const UNSYNCED_SEARCH_FACTOR: f64 = 4.0;

/// How the cameras are put in time: by content (checked against the
/// clocks) or by the clocks alone (`processing.sync_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Content decides; clocks are the prior.
    Content,
    /// The manifests' clocks alone (the behaviour before content alignment).
    Clock,
}

/// What content alignment needs from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncSettings {
    /// `processing.sync_mode`.
    pub mode: SyncMode,
    /// Lags searched either side of the clock's answer, seconds
    /// (`processing.sync_search_sec`).
    pub search_sec: f64,
    /// Length of one analysed window, seconds (`processing.sync_window_sec`).
    pub window_sec: f64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            mode: SyncMode::Content,
            search_sec: 2.0,
            window_sec: 10.0,
        }
    }
}

/// Which offset a camera was aligned with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncSource {
    /// CAM_C: the others are aligned to it.
    Reference,
    /// The offset found in the pictures (it differs from the clock's by
    /// half a frame or more).
    Content,
    /// The clock's offset, which the pictures confirm to within half a frame
    /// (the clock's sub-frame precision is kept).
    Confirmed,
    /// The manifests' clocks.
    Clock,
}

/// One camera's offsets relative to CAM_C: positive when it started later.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraSync {
    /// `CAM_L`, `CAM_C` or `CAM_R`.
    pub camera: String,
    /// Start minus CAM_C's start by the manifests, ms.
    pub clock_offset_ms: f64,
    /// The same by content, ms; `None` when not measured or not trusted.
    pub content_offset_ms: Option<f64>,
    /// `(content - clock)` in CAM_C frames, when measured.
    pub difference_frames: Option<f64>,
    /// Normalized cross-correlation at the peak (1 is a perfect match).
    pub peak: Option<f64>,
    /// The best value outside the peak's lobe.
    pub second_peak: Option<f64>,
    /// Lags searched either side of the clock's answer, ms.
    pub search_ms: f64,
    /// The offset used.
    pub used: SyncSource,
}

/// One analysed window, in CAM_C's frames.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncWindow {
    /// First CAM_C frame.
    pub first_frame: u64,
    /// Frames analysed.
    pub frames: u64,
}

/// What content alignment found, for the plan and the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncReport {
    /// `content` or `clock`.
    pub mode: SyncMode,
    /// The windows analysed (empty with `clock`).
    pub windows: Vec<SyncWindow>,
    /// CAM_L, CAM_C, CAM_R.
    pub cameras: Vec<CameraSync>,
    /// What a person should know (disagreement, low confidence).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl SyncReport {
    /// The report's lines for people.
    pub fn lines(&self) -> String {
        let mut s = String::new();
        for c in self
            .cameras
            .iter()
            .filter(|c| c.used != SyncSource::Reference)
        {
            let content = match (c.content_offset_ms, c.difference_frames) {
                (Some(v), Some(d)) => format!("content {v:+.3} ms ({d:+.2} frames)"),
                _ => "content not measured".to_string(),
            };
            let peak = match (c.peak, c.second_peak) {
                (Some(p), Some(q)) => format!(", peak {p:.2} vs {q:.2}"),
                _ => String::new(),
            };
            s.push_str(&format!(
                "  sync {}  clock {:+.3} ms  {content}{peak} -> {}\n",
                c.camera,
                c.clock_offset_ms,
                match c.used {
                    SyncSource::Content => "content",
                    SyncSource::Confirmed => "clock, confirmed",
                    _ => "clock",
                }
            ));
        }
        s
    }
}
