//! The plan: the three inputs (manifests and probes), their alignment in time
//! (the clocks, checked by content), the output's size and length. Pure but
//! for the reading of inputs and the content check.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::base::ffmpeg::{self, Probe};
use crate::base::ids::{CameraId, SessionId};
use crate::base::layout::ServerLayout;
use crate::base::manifest::{self, Manifest, ManifestError};

use super::camera::Camera;
use super::error::StitchError;
use super::settings::StitchSettings;
use super::sync::{self, SyncReport};
use super::{calibrated, encode, output_size};
use super::{round3, round6};

/// One camera's recording, as the plan needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInput {
    /// Which camera.
    pub camera: CameraId,
    /// Its `recording.mp4`.
    pub recording: PathBuf,
    /// Start of its first frame, corrected by `sync_offset_ms`.
    pub start: jiff::Timestamp,
    /// `timing.ntp_synced` of its manifest.
    pub ntp_synced: bool,
    /// `timing.sync_offset_ms` of its manifest.
    pub sync_offset_ms: Option<f64>,
    /// What ffprobe says about the file (size, fps, duration, audio).
    pub probe: Probe,
}

/// What was done to one camera to align it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CameraOffset {
    /// `CAM_L`, `CAM_C` or `CAM_R`.
    pub camera: String,
    /// Corrected start of its first frame (RFC 3339 UTC).
    pub start_time: String,
    /// Whether its clock was NTP-synced.
    pub ntp_synced: bool,
    /// Its manifest's `sync_offset_ms`, when present.
    pub sync_offset_ms: Option<f64>,
    /// How much of its beginning the alignment wanted to skip, ms.
    pub offset_ms: f64,
    /// How much was skipped: whole frames of its own rate, ms.
    pub applied_ms: f64,
    /// Frames skipped.
    pub skipped_frames: u64,
    /// Frame size and rate of the recording.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second (exact).
    pub fps: f64,
    /// Duration of the recording, seconds.
    pub duration_sec: f64,
    /// The `-ss` given to ffmpeg for this input, seconds.
    #[serde(skip)]
    pub seek_sec: f64,
}

/// Everything decided before ffmpeg runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The session.
    pub session_id: String,
    /// The instant of panorama frame 0 (RFC 3339 UTC).
    pub common_start: String,
    /// Frames per second of the panorama (CAM_C's).
    pub fps: f64,
    /// Frames in the panorama.
    pub frames: u64,
    /// `frames / fps`.
    pub duration_sec: f64,
    /// Width of one (normalized) camera frame, CAM_C's.
    pub camera_width: u32,
    /// Height of one (normalized) camera frame, CAM_C's.
    pub camera_height: u32,
    /// Columns cross-faded between neighbours.
    pub overlap_px: u32,
    /// `3 * camera_width - 2 * overlap_px`.
    pub panorama_width: u32,
    /// Width written after the `output_width` cap.
    pub output_width: u32,
    /// Height written after the cap (aspect kept, even).
    pub output_height: u32,
    /// Why the output has that size: the codec's playable limit, the
    /// `output_width` cap, or the panorama's own size.
    pub output_rule: String,
    /// The ffmpeg video encoder (software, or the configured hardware one
    /// when it works here).
    pub encoder: String,
    /// Whether CAM_C's audio is kept.
    pub audio: bool,
    /// Per camera, left to right.
    pub cameras: Vec<CameraOffset>,
    /// Things a person should know (unsynced clocks, normalized inputs).
    pub warnings: Vec<String>,
    /// Clock and content offsets per camera, when the time alignment ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncReport>,
    /// The three recordings, left to right.
    #[serde(skip)]
    pub inputs: Vec<PathBuf>,
    /// The calibrated geometry, when stitched with one (else the
    /// translation-only stitch of `overlap_px` shared columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub geometry: Option<Box<calibrated::Geometry>>,
}

/// Reads the three cameras' manifests and probes their recordings.
pub fn load_inputs(
    layout: &ServerLayout,
    session: &SessionId,
    settings: &StitchSettings,
) -> Result<Vec<CameraInput>, StitchError> {
    let mut out = Vec::with_capacity(3);
    for camera in CameraId::ALL {
        let recording = layout.recording(session, camera);
        let manifest_path = layout.manifest(session, camera);
        for path in [&recording, &manifest_path] {
            if !path.exists() {
                return Err(StitchError::MissingCamera {
                    session: session.to_string(),
                    camera,
                    path: path.clone(),
                });
            }
        }
        let (m, start) = read_manifest(session, camera, &manifest_path)?;
        let probe = ffmpeg::probe(&settings.ffprobe, &recording)
            .map_err(|source| StitchError::Input { camera, source })?;
        out.push(CameraInput {
            camera,
            recording,
            start,
            ntp_synced: m.timing.ntp_synced,
            sync_offset_ms: m.timing.sync_offset_ms,
            probe,
        });
    }
    Ok(out)
}

/// A camera's manifest, checked to describe that camera of that session,
/// and its corrected start.
fn read_manifest(
    session: &SessionId,
    camera: CameraId,
    manifest_path: &Path,
) -> Result<(Manifest, jiff::Timestamp), StitchError> {
    let bad = |message: String| StitchError::Manifest {
        camera,
        path: manifest_path.to_path_buf(),
        message,
    };
    let m = Manifest::read(manifest_path).map_err(|e| match e {
        ManifestError::Io { source, .. } => bad(format!("cannot read: {source}")),
        other => bad(other.to_string()),
    })?;
    if m.recording.session_id != session.as_str() || m.recording.camera_id != camera.as_str() {
        return Err(bad(format!(
            "describes {}/{}, but sits in the folder of {session}/{camera}",
            m.recording.session_id, m.recording.camera_id
        )));
    }
    let start = m
        .corrected_start()
        .map_err(|e| bad(format!("timing.start_time: {e}")))?;
    Ok((m, start))
}

/// Seconds from `a` to `b` (negative if `b` is earlier).
fn secs_between(a: jiff::Timestamp, b: jiff::Timestamp) -> f64 {
    (b.as_nanosecond() - a.as_nanosecond()) as f64 / 1e9
}

/// Decides alignment, size and length. Pure: `inputs` are CAM_L, CAM_C,
/// CAM_R in that order.
pub fn plan(
    session: &SessionId,
    inputs: &[CameraInput],
    settings: &StitchSettings,
) -> Result<Plan, StitchError> {
    let [left, center, right] = inputs else {
        return Err(StitchError::Geometry(format!(
            "session {session}: need exactly three cameras, got {}",
            inputs.len()
        )));
    };
    let all = [left, center, right];
    let (w, h, fps) = (
        center.probe.width,
        center.probe.height,
        center.probe.fps_exact,
    );
    let overlap = settings.overlap_px;
    check_frame(session, w, h, overlap)?;
    let warnings = input_warnings(&all, w, h, fps);
    let (common_start, cameras, frames) = common_span(session, &all, fps)?;
    let panorama_width = 3 * w - 2 * overlap;
    let family = encode::codec_family(&settings.codec).unwrap_or(encode::Family::H264);
    let (output_width, output_height, output_rule) =
        output_size::fit(panorama_width, h, settings.output_width, family);
    Ok(Plan {
        session_id: session.to_string(),
        common_start: manifest::format_time(common_start),
        fps,
        frames,
        duration_sec: round6(frames as f64 / fps),
        camera_width: w,
        camera_height: h,
        overlap_px: overlap,
        panorama_width,
        output_width,
        output_height,
        output_rule,
        encoder: family.software().to_string(),
        audio: center.probe.has_audio,
        cameras,
        warnings,
        sync: None,
        inputs: all.iter().map(|c| c.recording.clone()).collect(),
        geometry: None,
    })
}

/// The span all inputs cover: its start, each input's offset into it, its
/// length in frames at `fps`.
fn common_span(
    session: &SessionId,
    all: &[&CameraInput; 3],
    fps: f64,
) -> Result<(jiff::Timestamp, Vec<CameraOffset>, u64), StitchError> {
    // Frame 0 is the latest start; every input skips the whole number of
    // its own frames nearest to its lead.
    let common_start = all.iter().map(|c| c.start).max().unwrap_or(all[1].start);
    let cameras: Vec<CameraOffset> = all.iter().map(|c| offset_of(c, common_start)).collect();
    let remaining = all
        .iter()
        .zip(&cameras)
        .map(|(c, o)| c.probe.duration_sec - o.skipped_frames as f64 / c.probe.fps_exact)
        .fold(f64::INFINITY, f64::min);
    let frames = common_frames(session, all, remaining, fps)?;
    Ok((common_start, cameras, frames))
}

/// CAM_C's frame must be even-sized (4:2:0) and wider than two overlaps.
fn check_frame(session: &SessionId, w: u32, h: u32, overlap: u32) -> Result<(), StitchError> {
    if !w.is_multiple_of(2) || !h.is_multiple_of(2) {
        return Err(StitchError::Geometry(format!(
            "session {session}: CAM_C frames are {w}x{h}; 4:2:0 video needs even sizes"
        )));
    }
    if 2 * overlap >= w {
        return Err(StitchError::Geometry(format!(
            "session {session}: processing.stitch_overlap_px {overlap} leaves nothing of \
             CAM_C's {w} columns between the two bands; it must be below {}",
            w / 2
        )));
    }
    Ok(())
}

/// Warnings about the inputs: clocks not NTP-synced, sizes or rates
/// normalized to CAM_C's.
fn input_warnings(all: &[&CameraInput; 3], w: u32, h: u32, fps: f64) -> Vec<String> {
    let mut warnings = Vec::new();
    for c in all {
        if !c.ntp_synced {
            warnings.push(format!(
                "{}: clock was not NTP-synced while recording; the time alignment is only \
                 as good as that clock",
                c.camera
            ));
        }
        let p = &c.probe;
        if (p.width, p.height) != (w, h) || (p.fps_exact - fps).abs() > 1e-6 {
            warnings.push(format!(
                "{}: {}x{} at {} fps, normalized to CAM_C's {w}x{h} at {} fps",
                c.camera,
                p.width,
                p.height,
                round3(p.fps_exact),
                round3(fps)
            ));
        }
    }
    warnings
}

/// How one camera is put on the common start: the whole number of its own
/// frames nearest to its lead is skipped.
fn offset_of(c: &CameraInput, common_start: jiff::Timestamp) -> CameraOffset {
    let own_fps = c.probe.fps_exact;
    let offset = secs_between(c.start, common_start).max(0.0);
    let skipped = (offset * own_fps).round() as u64;
    let applied = skipped as f64 / own_fps;
    // Seek half a frame before the first frame kept, so the frame
    // boundary never depends on float rounding.
    let seek = if skipped == 0 {
        0.0
    } else {
        (skipped as f64 - 0.5) / own_fps
    };
    CameraOffset {
        camera: c.camera.to_string(),
        start_time: manifest::format_time(c.start),
        ntp_synced: c.ntp_synced,
        sync_offset_ms: c.sync_offset_ms,
        offset_ms: round3(offset * 1000.0),
        applied_ms: round3(applied * 1000.0),
        skipped_frames: skipped,
        width: c.probe.width,
        height: c.probe.height,
        fps: c.probe.fps_exact,
        duration_sec: c.probe.duration_sec,
        seek_sec: seek,
    }
}

/// Frames all three cameras have after their skips (`remaining` seconds of
/// the shortest); none is an error naming the spans.
fn common_frames(
    session: &SessionId,
    all: &[&CameraInput; 3],
    remaining: f64,
    fps: f64,
) -> Result<u64, StitchError> {
    let frames = if remaining > 0.0 {
        (remaining * fps + 1e-6).floor() as u64
    } else {
        0
    };
    if frames > 0 {
        return Ok(frames);
    }
    let spans: Vec<String> = all
        .iter()
        .map(|c| {
            format!(
                "{} {} + {:.3} s",
                c.camera,
                manifest::format_time(c.start),
                c.probe.duration_sec
            )
        })
        .collect();
    Err(StitchError::NoCommonSpan(format!(
        "session {session}: the three recordings share no instant ({}); check the \
         manifests' timing.start_time",
        spans.join(", ")
    )))
}

/// The plan rig-stitch carries out: [`plan`] on the inputs after their
/// time alignment was checked by content ([`sync::align`]), with the
/// encoder probed ([`encode::choose`]). Runs ffmpeg (a few decodes and, for
/// a hardware encoder, a probe encode); [`StitchError::Interrupted`] once
/// `cancel` is set.
pub fn plan_aligned(
    session: &SessionId,
    inputs: &[CameraInput],
    settings: &StitchSettings,
    rig: Option<&[Camera; 3]>,
    cancel: &AtomicBool,
) -> Result<Plan, StitchError> {
    if inputs.len() != 3 {
        return plan(session, inputs, settings);
    }
    let rule = strip_rule(inputs, settings, rig);
    let (aligned, report) = sync::align(&settings.ffmpeg, inputs, &rule, &settings.sync, cancel);
    if cancel.load(Ordering::Relaxed) {
        return Err(StitchError::Interrupted);
    }
    let mut p = plan(session, &aligned, settings)?;
    sync_warnings(&mut p, report);
    let choice = encode::choose(&settings.ffmpeg, &settings.codec);
    p.warnings.extend(choice.fallback);
    p.encoder = choice.encoder;
    Ok(p)
}

/// Which strips the time alignment meters: where the calibration `rig`
/// says neighbours see the same azimuths; with none, a translation rig's
/// shared edges (`processing.stitch_overlap_px`); with that 0, where the
/// nominal rig (`processing.nominal_*`) says they overlap.
fn strip_rule(
    inputs: &[CameraInput],
    settings: &StitchSettings,
    rig: Option<&[Camera; 3]>,
) -> sync::StripRule {
    if let Some(cams) = rig {
        return sync::StripRule::Cameras(*cams);
    }
    if settings.overlap_px > 0 {
        let frac = f64::from(settings.overlap_px) / f64::from(inputs[1].probe.width.max(1));
        return sync::StripRule::Edges(frac.max(0.1));
    }
    let (yaw, hfov) = (settings.nominal_yaw_deg, settings.nominal_hfov_deg);
    sync::StripRule::Cameras([
        Camera::nominal(-yaw, hfov),
        Camera::nominal(0.0, hfov),
        Camera::nominal(yaw, hfov),
    ])
}

/// Puts the time alignment's report and warnings in the plan. A camera
/// aligned by its pictures no longer depends on its clock, so the plan's
/// "not NTP-synced" warning for it says so instead.
fn sync_warnings(p: &mut Plan, report: SyncReport) {
    let checked = |c: &sync::CameraSync| c.used != sync::SyncSource::Clock;
    let by_content = |cam: &str| {
        report.cameras.iter().any(|c| c.camera == cam && checked(c))
            && (cam != "CAM_C" || report.cameras.iter().all(checked))
    };
    for w in &mut p.warnings {
        if let Some((cam, _)) = w.split_once(": clock was not NTP-synced")
            && by_content(cam)
        {
            *w = format!(
                "{cam}: clock was not NTP-synced while recording; aligned by the pictures \
                 instead"
            );
        }
    }
    p.warnings.extend(report.warnings.iter().cloned());
    p.sync = Some(report);
}
