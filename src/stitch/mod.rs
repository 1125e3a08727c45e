//! rig-stitch's logic: three camera recordings of a session become one
//! time-aligned, overlap-blended panorama, `sessions/S/stitched/panorama.mp4`,
//! and the processing queue moves as it happens.
//!
//! # Why it is built this way
//!
//! * **Time alignment from the manifests.** The three Pis never start on the
//!   same frame. Each manifest's `timing.start_time`, corrected by
//!   `sync_offset_ms` ([`Manifest::corrected_start`]), says when its first
//!   frame was taken. Frame 0 of the panorama is the latest start (the first
//!   instant all three saw); its end is the earliest end. Each input skips
//!   the whole number of its own frames nearest to its offset, so the
//!   remaining error is at most half a frame, and the offsets wanted and
//!   applied are reported. A camera whose clock was not NTP-synced makes the
//!   alignment a guess, which is said as a warning.
//! * **The clocks checked by content** ([`sync`]): before planning, each side
//!   camera's offset to CAM_C is measured from the motion both see in their
//!   shared columns; a clear answer replaces the clock's, a weak one keeps
//!   it with a warning ([`plan_aligned`]).
//! * **As large as it plays** ([`output_size`]): the panorama is scaled to the
//!   codec's playable limit (H.264 4096 wide, HEVC 8192) or `output_width`;
//!   a configured hardware encoder is probed and replaced by software with a
//!   warning when it does not work ([`encode`]).
//! * **One ffmpeg process, one filter graph.** No intermediate files: each
//!   input is seeked (`-ss` before `-i`, frame-accurate when transcoding),
//!   put on CAM_C's frame grid (`fps`), trimmed to the common span, and,
//!   when its size differs from CAM_C's, scaled to it (stretched, not
//!   letterboxed; CAM_C is the reference because it is the one a viewer
//!   looks at). Neighbours share `processing.stitch_overlap_px` columns;
//!   each shared band is cross-faded with `maskedmerge` and a static linear
//!   ramp (one frame made by `geq`, then looped), so the seam is feathered
//!   and the panorama is `3W - 2*overlap` wide. Where both cameras saw the
//!   same pixel the blend gives back exactly that pixel; only codec loss
//!   remains. The result is `hstack`ed, scaled down to
//!   `processing.output_width` if wider, and encoded with
//!   `processing.output_codec`/`output_preset`. CAM_C's audio, if any, is
//!   kept.
//! * **Nothing half-written under the final name.** ffmpeg writes
//!   `stitched/.rig-tmp-*` ([`fsx::AtomicFile`]); the file is probed (it
//!   must be a readable video of the planned width), fsynced and renamed.
//!   A crash leaves at most a temp file, removed by the next run of that
//!   session.
//! * **The queue is the truth about work.** Every transition is one locked,
//!   atomic rewrite of `processing/jobs.json` ([`JobQueue`]): claimed jobs
//!   carry our PID, so a job left `running` by a crash is re-queued once its
//!   holder is gone ([`jobs::holder_alive`]); an interrupted run (SIGINT,
//!   SIGTERM) puts its job back in the queue.

pub mod align;
pub mod calibrate;
pub mod calibrated;
pub mod camera;
pub mod canvas;
pub mod image;

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::ProcessingConfig;
use crate::ffmpeg::{self, Probe, ProbeError, ProgressParser};
use crate::fsx::{self, AtomicFile, LockFile};
use crate::ids::{CameraId, IdError, SessionId};
use crate::jobs::{self, Job, JobQueue, JobStatus, JobsError, JobsFile, Refused};
use crate::layout::ServerLayout;
use crate::manifest::{self, Manifest, ManifestError};

pub mod encode;
pub mod output_size;
pub mod progress;
pub mod sync;

use camera::Camera;
use sync::{SyncMode, SyncReport, SyncSettings};

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
        if !p.stitch_overlap_px.is_multiple_of(2) {
            return Err(StitchError::Config(format!(
                "processing.stitch_overlap_px: must be even (4:2:0 chroma has one sample \
                 per two columns), got {}",
                p.stitch_overlap_px
            )));
        }
        if !p.output_width.is_multiple_of(2) {
            return Err(StitchError::Config(format!(
                "processing.output_width: must be even (or 0 for no cap), got {}",
                p.output_width
            )));
        }
        if p.output_preset.is_empty()
            || !p
                .output_preset
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(StitchError::Config(format!(
                "processing.output_preset: must be an x264/x265 preset name such as \
                 medium or veryfast, got {:?}",
                p.output_preset
            )));
        }
        if encode::codec_family(&p.output_codec).is_none() {
            return Err(StitchError::Config(format!(
                "processing.output_codec: must be h264, h265 or a hardware encoder of \
                 either (h264_nvenc, hevc_vaapi, ...), got {:?}",
                p.output_codec
            )));
        }
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
    for (key, v) in [
        ("processing.sync_search_sec", p.sync_search_sec),
        ("processing.sync_window_sec", p.sync_window_sec),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(StitchError::Config(format!(
                "{key}: must be a number > 0, got {v}"
            )));
        }
    }
    Ok(SyncSettings {
        mode,
        search_sec: p.sync_search_sec,
        window_sec: p.sync_window_sec,
    })
}

/// Why a stitch (or a queue operation around it) failed. Messages name the
/// session, camera and file, and say what to do.
#[derive(Debug)]
pub enum StitchError {
    /// A configuration value cannot work.
    Config(String),
    /// The session ID given is not one.
    InvalidSession(IdError),
    /// No folder for the session under `sessions/`.
    UnknownSession {
        /// The session.
        session: String,
        /// The folder looked for.
        dir: PathBuf,
    },
    /// A camera's recording or manifest is not there.
    MissingCamera {
        /// The session.
        session: String,
        /// The camera.
        camera: CameraId,
        /// The file that is missing.
        path: PathBuf,
    },
    /// A camera's manifest cannot be read or is invalid.
    Manifest {
        /// The camera.
        camera: CameraId,
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A camera's recording cannot be read by ffprobe.
    Input {
        /// The camera.
        camera: CameraId,
        /// What ffprobe said.
        source: ProbeError,
    },
    /// The three recordings share no instant.
    NoCommonSpan(String),
    /// The frames cannot be stitched with this overlap.
    Geometry(String),
    /// ffmpeg is not where the configuration says.
    FfmpegMissing(PathBuf),
    /// ffmpeg failed.
    Ffmpeg {
        /// Its exit status.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// ffmpeg finished but the file is not the panorama planned.
    BadOutput(String),
    /// A file operation failed.
    Io(std::io::Error),
    /// The job queue could not be read or written.
    Jobs(JobsError),
    /// Another process is stitching the session now.
    Busy {
        /// The session.
        session: String,
        /// Its job.
        job: String,
        /// The process holding it.
        pid: Option<u32>,
    },
    /// SIGINT or SIGTERM arrived; the job went back to the queue.
    Interrupted,
}

impl StitchError {
    /// The snake_case code used in `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            StitchError::Config(_) => "config_error",
            StitchError::InvalidSession(_) => "invalid_session_id",
            StitchError::UnknownSession { .. } => "unknown_session",
            StitchError::MissingCamera { .. } => "missing_camera",
            StitchError::Manifest { .. } => "invalid_manifest",
            StitchError::Input { .. } => "unreadable_input",
            StitchError::NoCommonSpan(_) => "no_common_span",
            StitchError::Geometry(_) => "bad_geometry",
            StitchError::FfmpegMissing(_) => "ffmpeg_missing",
            StitchError::Ffmpeg { .. } => "ffmpeg_failed",
            StitchError::BadOutput(_) => "bad_output",
            StitchError::Io(_) => "io_error",
            StitchError::Jobs(_) => "job_queue_error",
            StitchError::Busy { .. } => "busy",
            StitchError::Interrupted => "interrupted",
        }
    }

    /// Exit code: 2 for usage and configuration errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            StitchError::Config(_) | StitchError::InvalidSession(_) => crate::cli::EXIT_USAGE,
            _ => crate::cli::EXIT_FAILURE,
        }
    }
}

impl fmt::Display for StitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StitchError::Config(m) => write!(f, "config: {m}"),
            StitchError::InvalidSession(e) => e.fmt(f),
            StitchError::UnknownSession { session, dir } => write!(
                f,
                "no session {session}: {} does not exist (check the ID with ls, or \
                 --root/storage.sessions_path)",
                dir.display()
            ),
            StitchError::MissingCamera {
                session,
                camera,
                path,
            } => write!(
                f,
                "session {session}: camera {camera} is missing: no {}; upload it \
                 (rig-upload on the {camera} node), then run rig-stitch {session} again",
                path.display()
            ),
            StitchError::Manifest {
                camera,
                path,
                message,
            } => write!(
                f,
                "{camera} manifest {}: {message}; fix it (rig-manifest validate) and retry",
                path.display()
            ),
            StitchError::Input { camera, source } => write!(f, "{camera} recording: {source}"),
            StitchError::NoCommonSpan(m) => write!(f, "{m}"),
            StitchError::Geometry(m) => write!(f, "{m}"),
            StitchError::FfmpegMissing(p) => write!(
                f,
                "ffmpeg not found at {}: install ffmpeg (apt-get install ffmpeg) or set \
                 processing.ffmpeg_path",
                p.display()
            ),
            StitchError::Ffmpeg { status, stderr } => {
                write!(f, "ffmpeg failed ({status})")?;
                if !stderr.trim().is_empty() {
                    write!(f, ": {}", stderr.trim())?;
                }
                Ok(())
            }
            StitchError::BadOutput(m) => write!(f, "panorama not written: {m}"),
            StitchError::Io(e) => e.fmt(f),
            StitchError::Jobs(e) => e.fmt(f),
            StitchError::Busy { session, job, pid } => {
                write!(f, "session {session} is being stitched now (job {job}")?;
                if let Some(p) = pid {
                    write!(f, ", process {p}")?;
                }
                write!(f, "); wait for it, or see rig-stitch --list")
            }
            StitchError::Interrupted => {
                write!(f, "interrupted; the job is queued again for the next run")
            }
        }
    }
}

impl std::error::Error for StitchError {}

impl From<JobsError> for StitchError {
    fn from(e: JobsError) -> Self {
        StitchError::Jobs(e)
    }
}

impl From<std::io::Error> for StitchError {
    fn from(e: std::io::Error) -> Self {
        StitchError::Io(e)
    }
}

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
        let bad = |message: String| StitchError::Manifest {
            camera,
            path: manifest_path.clone(),
            message,
        };
        let m = Manifest::read(&manifest_path).map_err(|e| match e {
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

    // Frame 0 is the latest start; every input skips the whole number of
    // its own frames nearest to its lead.
    let common_start = all.iter().map(|c| c.start).max().unwrap_or(center.start);
    let mut cameras = Vec::with_capacity(3);
    let mut remaining = f64::INFINITY;
    for c in all {
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
        remaining = remaining.min(c.probe.duration_sec - applied);
        cameras.push(CameraOffset {
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
        });
    }
    let frames = if remaining > 0.0 {
        (remaining * fps + 1e-6).floor() as u64
    } else {
        0
    };
    if frames == 0 {
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
        return Err(StitchError::NoCommonSpan(format!(
            "session {session}: the three recordings share no instant ({}); check the \
             manifests' timing.start_time",
            spans.join(", ")
        )));
    }
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

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The `-filter_complex` graph for a plan: inputs 0, 1, 2 are CAM_L, CAM_C,
/// CAM_R; outputs `[v]` and, with audio, `[a]`.
pub fn filter_graph(plan: &Plan) -> String {
    let fps = plan.fps;
    let frames = plan.frames;
    let mut g = match &plan.geometry {
        Some(geo) => calibrated::video_graph(plan, geo),
        None => Vec::new(),
    };
    if plan.geometry.is_some() {
        audio_graph(plan, &mut g);
        return g.join(";");
    }
    // Each input: own timeline from 0, CAM_C's frame grid, the common span,
    // scaled to the output's scale first (nothing is blended or stacked at
    // full resolution), one pixel format for the blend and the stack.
    let (w, o, extra) = strip_scale(plan);
    let h = plan.output_height;
    let names = ["l", "c", "r"];
    for (i, cam) in plan.cameras.iter().enumerate() {
        // After `fps` the stream starts at 0 on a 1/fps grid (gaps filled by
        // repeating the last frame), so a frame count is an exact end. (A
        // time would be rescaled and rounded by `trim`, and can lose one.)
        let mut chain = format!("[{i}:v]setpts=PTS-STARTPTS,fps={fps},trim=end_frame={frames}");
        if (cam.width, cam.height) != (w, h) {
            chain.push_str(&format!(",scale={w}:{h}"));
        }
        chain.push_str(",format=yuv420p,setsar=1");
        chain.push_str(&strip_cuts(i, names[i], w, h, o));
        g.push(chain);
    }
    let mut tail = String::new();
    if o == 0 {
        tail.push_str("[l][c][r]hstack=inputs=3:shortest=1");
    } else {
        // The mask: weight of the right-hand camera, rising linearly across
        // the band, sampled at pixel centres ((X+0.5)/W of 255) on every
        // plane (geq's W is the plane's width; the value stays below 255).
        // Made once and looped.
        let ramp = "255*(X+0.5)/W";
        g.push(format!(
            "color=c=black:s={o}x{h}:r={fps},format=yuv420p,trim=end_frame=1,\
             geq=lum='{ramp}':cb='{ramp}':cr='{ramp}',loop=loop={}:size=1,\
             setpts=N/({fps}*TB),split=2[m0][m1]",
            plan.frames.saturating_sub(1)
        ));
        g.push("[lb][cl][m0]maskedmerge[s0]".to_string());
        g.push("[cr][rb][m1]maskedmerge[s1]".to_string());
        tail.push_str("[lm][s0][cm][s1][rm]hstack=inputs=5:shortest=1");
    }
    if extra > 0 {
        // The strips' even sizes overshoot the output by `extra` columns:
        // cut them off both ends (no resampling).
        tail.push_str(&format!(
            ",crop={}:{h}:{}:0",
            plan.output_width,
            extra / 4 * 2
        ));
    }
    tail.push_str("[v]");
    g.push(tail);
    audio_graph(plan, &mut g);
    g.join(";")
}

/// The translation-only stitch at the output's scale: each camera's width
/// and the shared columns, both even, and how many columns the stack is
/// wider than `output_width` (cut off afterwards). At the panorama's own
/// size: CAM_C's width, the overlap, 0.
fn strip_scale(plan: &Plan) -> (u32, u32, u32) {
    let (w, o, ow) = (plan.camera_width, plan.overlap_px, plan.output_width);
    if ow == plan.panorama_width {
        return (w, o, 0);
    }
    let s = f64::from(ow) / f64::from(plan.panorama_width);
    let o2 = if o == 0 {
        0
    } else {
        ((f64::from(o) * s / 2.0).round() as u32 * 2).max(2)
    };
    let w2 = (ow + 2 * o2)
        .div_ceil(3)
        .next_multiple_of(2)
        .max(2 * o2 + 2);
    (w2, o2, 3 * w2 - 2 * o2 - ow)
}

/// The crops that cut camera `i`'s `w` x `h` strip into its plain part and
/// its shared bands (`o` columns), or just its label without overlap.
fn strip_cuts(i: usize, name: &str, w: u32, h: u32, o: u32) -> String {
    if o == 0 {
        return format!("[{name}]");
    }
    let m = w - o;
    match i {
        0 => format!(",split=2[l0][l1];[l0]crop={m}:{h}:0:0[lm];[l1]crop={o}:{h}:{m}:0[lb]"),
        1 => format!(
            ",split=3[c0][c1][c2];[c0]crop={o}:{h}:0:0[cl];\
             [c1]crop={}:{h}:{o}:0[cm];[c2]crop={o}:{h}:{m}:0[cr]",
            w - 2 * o
        ),
        _ => format!(",split=2[r0][r1];[r0]crop={o}:{h}:0:0[rb];[r1]crop={m}:{h}:{o}:0[rm]"),
    }
}

/// CAM_C's audio over the panorama's span, as `[a]`, when there is any.
fn audio_graph(plan: &Plan, g: &mut Vec<String>) {
    let fps = plan.fps;
    if plan.audio {
        // Input 1 was seeked to half a frame before its first kept frame;
        // start the audio at that frame.
        let center = &plan.cameras[1];
        let lead = (center.applied_ms / 1000.0 - center.seek_sec).max(0.0);
        g.push(format!(
            "[1:a]atrim=start={lead:.6}:duration={:.6},asetpts=PTS-STARTPTS[a]",
            plan.frames as f64 / fps
        ));
    }
}

/// The whole ffmpeg command line (without the program) writing the plan's
/// panorama to `output`, with `-progress pipe:1` on stdout.
pub fn ffmpeg_args(plan: &Plan, settings: &StitchSettings, output: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        .into_iter()
        .map(OsString::from)
        .collect();
    a.extend(encode::device_args(&plan.encoder));
    for (cam, input) in plan.cameras.iter().zip(&plan.inputs) {
        a.push("-ss".into());
        a.push(format!("{:.6}", cam.seek_sec).into());
        a.push("-i".into());
        a.push(input.clone().into_os_string());
    }
    // Every core for the graph (the encoder takes them all by itself).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    a.push("-filter_complex_threads".into());
    a.push(threads.to_string().into());
    a.push("-filter_complex".into());
    let mut graph = filter_graph(plan);
    let video = match encode::upload_filter(&plan.encoder) {
        Some(upload) => {
            graph.push(';');
            graph.push_str(upload);
            "[venc]"
        }
        None => "[v]",
    };
    a.push(graph.into());
    for s in ["-map", video] {
        a.push(s.into());
    }
    if plan.audio {
        for s in ["-map", "[a]", "-c:a", "aac", "-b:a", "192k"] {
            a.push(s.into());
        }
    }
    let family = encode::codec_family(&plan.encoder).unwrap_or(encode::Family::H264);
    a.extend(encode::encoder_args(
        &plan.encoder,
        family,
        &settings.preset,
    ));
    for s in ["-movflags", "+faststart", "-metadata"] {
        a.push(s.into());
    }
    a.push(format!("creation_time={}", plan.common_start).into());
    for s in ["-progress", "pipe:1", "-nostats", "-f", "mp4"] {
        a.push(s.into());
    }
    a.push(output.as_os_str().to_owned());
    a
}

/// A command line as one shell-quoted string, for logs and `--dry-run`.
pub fn shell_line(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Progress of a running encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StitchProgress {
    /// Percent of the panorama written, 0 to 100.
    pub percent: f64,
    /// Encoding speed, frames per second.
    pub fps: f64,
    /// Seconds since ffmpeg started.
    pub elapsed_sec: f64,
    /// Seconds left at the pace so far, once there is one.
    pub eta_sec: Option<f64>,
}

/// Keeps the last `cap` bytes of a stream (ffmpeg's stderr), so a chatty
/// failure cannot grow memory.
fn tail_of(mut r: impl Read, cap: usize) -> String {
    let mut keep: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                keep.extend_from_slice(&buf[..n]);
                if keep.len() > 2 * cap {
                    keep.drain(..keep.len() - cap);
                }
            }
        }
    }
    if keep.len() > cap {
        keep.drain(..keep.len() - cap);
    }
    String::from_utf8_lossy(&keep).into_owned()
}

/// Runs ffmpeg with `args`, reporting progress against `duration_sec`.
/// Returns [`StitchError::Interrupted`] (after killing ffmpeg) once `cancel`
/// is set.
pub fn run_ffmpeg(
    ffmpeg: &Path,
    args: &[OsString],
    duration_sec: f64,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(StitchProgress),
) -> Result<(), StitchError> {
    log::debug!("running {}", shell_line(ffmpeg, args));
    if !crate::ffmpeg::tool_exists(ffmpeg) {
        return Err(StitchError::FfmpegMissing(ffmpeg.to_path_buf()));
    }
    let started = Instant::now();
    let mut child = Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StitchError::FfmpegMissing(ffmpeg.to_path_buf())
            } else {
                StitchError::Io(fsx::with_path(ffmpeg)(e))
            }
        })?;
    let stderr = child.stderr.take();
    let stderr_thread = std::thread::spawn(move || stderr.map(|s| tail_of(s, 4096)));
    let mut parser = ProgressParser::default();
    let mut interrupted = false;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            if cancel.load(Ordering::Relaxed) {
                interrupted = true;
                let _ = child.kill();
                break;
            }
            let Ok(line) = line else { break };
            if let Some(p) = parser.line(&line) {
                let percent = if p.end {
                    100.0
                } else if duration_sec > 0.0 {
                    (p.out_time_us as f64 / 1e6 / duration_sec * 100.0).clamp(0.0, 100.0)
                } else {
                    0.0
                };
                let elapsed_sec = started.elapsed().as_secs_f64();
                on_progress(StitchProgress {
                    percent,
                    fps: p.fps,
                    elapsed_sec,
                    eta_sec: progress::eta_sec(percent, elapsed_sec),
                });
            }
        }
    }
    let status = child.wait().map_err(StitchError::Io)?;
    let stderr = stderr_thread.join().ok().flatten().unwrap_or_default();
    if interrupted || cancel.load(Ordering::Relaxed) {
        return Err(StitchError::Interrupted);
    }
    if !status.success() {
        return Err(StitchError::Ffmpeg {
            status: status.to_string(),
            stderr,
        });
    }
    Ok(())
}

/// What a finished stitch produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StitchReport {
    /// The job that ran it.
    pub job_id: String,
    /// The panorama.
    pub output: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Its duration as ffprobe reads it, seconds.
    pub duration_sec: f64,
    /// Wall time of the encode, seconds.
    pub elapsed_sec: f64,
    /// The plan that was carried out (offsets, sizes, warnings).
    pub plan: Plan,
}

impl StitchReport {
    /// A few lines for people.
    pub fn human(&self) -> String {
        let p = &self.plan;
        let mut s = format!(
            "{}: {}x{} panorama, {} frames ({:.3} s at {} fps) in {:.1} s -> {}\n",
            p.session_id,
            p.output_width,
            p.output_height,
            p.frames,
            self.duration_sec,
            round3(p.fps),
            self.elapsed_sec,
            self.output
        );
        s.push_str(&plan_lines(p));
        s
    }
}

/// The alignment table of a plan.
pub fn plan_lines(p: &Plan) -> String {
    let mut s = format!("  frame 0 = {}\n", p.common_start);
    for c in &p.cameras {
        s.push_str(&camera_line(c));
    }
    if let Some(sync) = &p.sync {
        s.push_str(&sync.lines());
    }
    s.push_str(&format!("  output {} ({})\n", p.output_rule, p.encoder));
    for w in &p.warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
    s
}

/// One camera's row of the alignment table.
fn camera_line(c: &CameraOffset) -> String {
    format!(
        "  {}  start {}  skip {:>9.3} ms (wanted {:.3} ms, {} frames){}\n",
        c.camera,
        c.start_time,
        c.applied_ms,
        c.offset_ms,
        c.skipped_frames,
        if c.ntp_synced { "" } else { "  NOT NTP-SYNCED" }
    )
}

/// Stitches a session's panorama now, with no queue involved: plan, encode
/// to a temp name in `stitched/`, verify, rename. `on_progress` sees the
/// encode's progress.
pub fn stitch_session(
    layout: &ServerLayout,
    session: &SessionId,
    settings: &StitchSettings,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(StitchProgress),
) -> Result<(PathBuf, Plan, f64), StitchError> {
    let plan = plan_session(layout, session, settings, cancel)?;
    for w in &plan.warnings {
        log::warn!("{session}: {w}");
    }
    log::info!(
        "{session}: aligning to {}; {}",
        plan.common_start,
        plan.cameras
            .iter()
            .map(|c| format!("{} skips {:.3} ms", c.camera, c.applied_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let target = layout.panorama(session);
    remove_stale_temps(&layout.stitched_dir(session));
    let temp = AtomicFile::create(&target)?;
    let args = ffmpeg_args(&plan, settings, temp.temp_path());
    let started = Instant::now();
    run_ffmpeg(
        &settings.ffmpeg,
        &args,
        plan.duration_sec,
        cancel,
        on_progress,
    )?;
    let elapsed = started.elapsed().as_secs_f64();
    let made = ffmpeg::probe(&settings.ffprobe, temp.temp_path())
        .map_err(|e| StitchError::BadOutput(e.to_string()))?;
    if (made.width, made.height) != (plan.output_width, plan.output_height) {
        return Err(StitchError::BadOutput(format!(
            "ffmpeg wrote {}x{}, the plan was {}x{}",
            made.width, made.height, plan.output_width, plan.output_height
        )));
    }
    if (made.duration_sec - plan.duration_sec).abs() > 1.5 / plan.fps {
        log::warn!(
            "{session}: panorama lasts {:.3} s, planned {:.3} s (an input may end early or \
             be damaged)",
            made.duration_sec,
            plan.duration_sec
        );
    }
    temp.commit()?;
    if let Some(geo) = &plan.geometry {
        calibrated::write_record(&layout.panorama_record(session), &plan, geo)?;
    }
    Ok((target, plan, elapsed))
}

/// Loads the inputs, aligns them in time ([`plan_aligned`]) and plans the
/// session's stitch, calibrated when a
/// calibration applies ([`calibrated::calibration_for`]).
pub fn plan_session(
    layout: &ServerLayout,
    session: &SessionId,
    settings: &StitchSettings,
    cancel: &AtomicBool,
) -> Result<Plan, StitchError> {
    let inputs = load_inputs(layout, session, settings)?;
    let calibration = match calibrated::calibration_for(layout, session, settings) {
        Some(path) => {
            let cal = calibrate::Calibration::read(&path)?;
            Some((path, cal))
        }
        None => None,
    };
    let rig = calibration.as_ref().map(|(_, cal)| cal.cameras.array());
    let mut plan = plan_aligned(session, &inputs, settings, rig.as_ref(), cancel)?;
    if let Some((path, cal)) = calibration {
        log::info!("{session}: stitching with calibration {}", path.display());
        calibrated::apply(&mut plan, &path, cal, settings)?;
    }
    Ok(plan)
}

/// Removes `.rig-tmp-*` leftovers of a crashed run from a session's
/// `stitched/` folder. Only called by the holder of the session's job.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(fsx::TEMP_PREFIX)
        {
            match std::fs::remove_file(e.path()) {
                Ok(()) => log::info!("removed {} left by an earlier run", e.path().display()),
                Err(err) => log::warn!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}

/// What `rig-stitch SESSION_ID` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The panorama was made.
    Stitched(StitchReport),
    /// The session's last job is done and its panorama exists; nothing was
    /// run (use `--force`).
    AlreadyDone {
        /// That job.
        job: Job,
    },
}

/// One job of a `--pending` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingItem {
    /// The job.
    pub job_id: String,
    /// Its session.
    pub session_id: String,
    /// `done` or `failed` (or `queued` when interrupted).
    pub status: JobStatus,
    /// The panorama, when done.
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Per camera, left to right, the offsets the plan applied, when the
    /// stitch got as far as a plan. Cron runs `--pending`, so this is where
    /// a misaligned panorama can be explained without the logs.
    pub cameras: Vec<CameraOffset>,
    /// The plan's warnings (unsynced clocks, normalized inputs, clock and
    /// content disagreeing).
    pub warnings: Vec<String>,
    /// Clock and content offsets per camera, when the plan got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncReport>,
}

impl PendingItem {
    /// The item's lines for people: the verdict, then each camera's offset
    /// and each warning.
    pub fn human(&self) -> String {
        let detail = self
            .output
            .as_deref()
            .or(self.error.as_deref())
            .unwrap_or("");
        let mut s = format!(
            "{} {}: {} {detail}\n",
            self.job_id, self.session_id, self.status
        );
        for c in &self.cameras {
            s.push_str(&camera_line(c));
        }
        if let Some(sync) = &self.sync {
            s.push_str(&sync.lines());
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s
    }
}

/// What `rig-stitch --pending` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PendingReport {
    /// Jobs run, in order.
    pub jobs: Vec<PendingItem>,
    /// Jobs found `running` with no live holder and queued again.
    pub requeued: Vec<String>,
    /// Set when another `--pending` run held the lock and nothing was done.
    pub skipped_locked: bool,
}

impl PendingReport {
    /// Whether every job run succeeded.
    pub fn all_ok(&self) -> bool {
        self.jobs.iter().all(|j| j.status == JobStatus::Done)
    }
}

/// The queue-aware runner behind the program: claims jobs under this
/// process's PID, stitches, and records every transition.
pub struct Runner {
    layout: ServerLayout,
    queue: JobQueue,
    settings: StitchSettings,
    pid: u32,
    cancel: Arc<AtomicBool>,
    tty: bool,
}

/// How often a running job's progress is written to `jobs.json` at most.
const PROGRESS_WRITE_EVERY: Duration = Duration::from_secs(2);

impl Runner {
    /// A runner for `layout`. `cancel` is set by the signal handlers;
    /// `tty` turns on the progress line on stderr.
    pub fn new(
        layout: ServerLayout,
        settings: StitchSettings,
        cancel: Arc<AtomicBool>,
        tty: bool,
    ) -> Runner {
        Runner {
            queue: JobQueue::new(&layout),
            layout,
            settings,
            pid: std::process::id(),
            cancel,
            tty,
        }
    }

    /// The queue this runner works on.
    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    /// Re-queues jobs whose holder died; returns their IDs.
    fn requeue_stale(&self) -> Result<Vec<String>, StitchError> {
        let jobs = self.queue.requeue_stale(jobs::holder_alive)?;
        for j in &jobs {
            log::warn!(
                "job {} ({}) was left running by a process that is gone; queued again",
                j.id,
                j.session_id
            );
        }
        Ok(jobs.into_iter().map(|j| j.id).collect())
    }

    /// Plans a session without running anything: the plan and the ffmpeg
    /// command line that would write the panorama (`--dry-run`).
    pub fn dry_run(&self, session: &SessionId) -> Result<(Plan, String), StitchError> {
        let plan = plan_session(&self.layout, session, &self.settings, &self.cancel)?;
        let args = ffmpeg_args(&plan, &self.settings, &self.layout.panorama(session));
        let line = shell_line(&self.settings.ffmpeg, &args);
        Ok((plan, line))
    }

    /// `rig-stitch calibrate SESSION_ID`: measures the cameras and writes
    /// the session's calibration (and the rig's); returns it and its path.
    pub fn calibrate(
        &self,
        session: &SessionId,
    ) -> Result<(calibrate::Calibration, PathBuf), StitchError> {
        let cal = calibrate::calibrate_session(&self.layout, session, &self.settings)?;
        Ok((cal, self.layout.calibration(session)))
    }

    /// `rig-stitch SESSION_ID`: queue the session if needed and stitch it
    /// now. A done session with its panorama in place is left alone unless
    /// `force`.
    pub fn stitch_now(&self, session: &SessionId, force: bool) -> Result<Outcome, StitchError> {
        let dir = self.layout.session_dir(session);
        if !dir.is_dir() {
            return Err(StitchError::UnknownSession {
                session: session.to_string(),
                dir,
            });
        }
        self.requeue_stale()?;
        if let Some(last) = self.queue.latest_for(session)? {
            match last.status {
                JobStatus::Running => {
                    return Err(StitchError::Busy {
                        session: session.to_string(),
                        job: last.id,
                        pid: last.pid,
                    });
                }
                JobStatus::Done if !force => {
                    if self.layout.panorama(session).exists() {
                        return Ok(Outcome::AlreadyDone { job: last });
                    }
                    log::warn!(
                        "{session}: job {} is done but {} is gone; stitching again",
                        last.id,
                        self.layout.panorama(session).display()
                    );
                }
                _ => {}
            }
        }
        let (job, _) = self.queue.enqueue(session)?;
        let job = match self.queue.claim(&job.id, self.pid)? {
            Ok(job) => job,
            Err(Refused::WrongState { .. } | Refused::NotOurs { .. }) => {
                let pid = self.queue.latest_for(session)?.and_then(|j| j.pid);
                return Err(StitchError::Busy {
                    session: session.to_string(),
                    job: job.id,
                    pid,
                });
            }
            Err(Refused::NoSuchJob(id)) => {
                return Err(StitchError::Jobs(JobsError::Corrupt {
                    path: self.queue.path().to_path_buf(),
                    message: format!("job {id} vanished while being claimed"),
                }));
            }
        };
        self.run_job(&job).map(Outcome::Stitched)
    }

    /// `rig-stitch --pending`: every queued job, oldest first, until none is
    /// left or a signal arrives. Only one such run at a time
    /// (`processing/stitch.lock`); a second one returns at once.
    pub fn run_pending(&self) -> Result<PendingReport, StitchError> {
        let lock_path = self.layout.stitch_lock();
        let Some(_lock) = LockFile::try_acquire(&lock_path)? else {
            log::info!(
                "another rig-stitch --pending holds {}; leaving the queue to it",
                lock_path.display()
            );
            return Ok(PendingReport {
                skipped_locked: true,
                ..PendingReport::default()
            });
        };
        let mut report = PendingReport {
            requeued: self.requeue_stale()?,
            ..PendingReport::default()
        };
        while !self.cancel.load(Ordering::Relaxed) {
            let Some(job) = self.queue.claim_next(self.pid)? else {
                break;
            };
            let result = self.run_job(&job);
            let item = |status, output, error, plan: Option<Plan>| {
                let (cameras, warnings, sync) = plan
                    .map(|p| (p.cameras, p.warnings, p.sync))
                    .unwrap_or_default();
                PendingItem {
                    job_id: job.id.clone(),
                    session_id: job.session_id.clone(),
                    status,
                    output,
                    error,
                    cameras,
                    warnings,
                    sync,
                }
            };
            let item = match result {
                Ok(r) => item(JobStatus::Done, Some(r.output), None, Some(r.plan)),
                Err(StitchError::Interrupted) => {
                    let e = Some(StitchError::Interrupted.to_string());
                    report.jobs.push(item(JobStatus::Queued, None, e, None));
                    return Err(StitchError::Interrupted);
                }
                // A failed job has no plan to show: the failure came before
                // one (an input missing or unreadable) or the error says why.
                Err(e) => item(JobStatus::Failed, None, Some(e.to_string()), None),
            };
            report.jobs.push(item);
        }
        Ok(report)
    }

    /// Runs a job this process has claimed and records how it ended.
    fn run_job(&self, job: &Job) -> Result<StitchReport, StitchError> {
        log::info!("job {}: stitching session {}", job.id, job.session_id);
        let result = SessionId::parse(&job.session_id)
            .map_err(StitchError::InvalidSession)
            .and_then(|session| self.stitch_claimed(job, &session));
        let recorded = match &result {
            Ok(r) => self.queue.finish(&job.id, self.pid, Path::new(&r.output))?,
            Err(StitchError::Interrupted) => {
                self.queue
                    .release(&job.id, self.pid, "interrupted by a signal; queued again")?
            }
            Err(e) => {
                log::error!("job {}: {e}", job.id);
                self.queue.fail(&job.id, self.pid, &e.to_string())?
            }
        };
        if let Err(refused) = recorded {
            log::warn!("job {}: could not record the outcome: {refused}", job.id);
        }
        result
    }

    fn stitch_claimed(&self, job: &Job, session: &SessionId) -> Result<StitchReport, StitchError> {
        let mut last_write = Instant::now();
        let mut last_written = 0.0f64;
        let mut log_throttle = progress::Throttle::new(progress::LOG_EVERY);
        let mut on_progress = |p: StitchProgress| {
            let line = progress::line(session.as_str(), &p);
            if self.tty {
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r{line}  \x1b[K");
                let _ = err.flush();
            } else if p.percent < 100.0 && log_throttle.ready() {
                log::info!("{line}");
            }
            if p.percent > last_written
                && (last_write.elapsed() >= PROGRESS_WRITE_EVERY || p.percent >= 100.0)
            {
                match self.queue.set_progress(&job.id, self.pid, p.percent) {
                    Ok(Ok(_)) => {}
                    Ok(Err(r)) => log::warn!("job {}: progress not recorded: {r}", job.id),
                    Err(e) => log::warn!("job {}: progress not recorded: {e}", job.id),
                }
                last_write = Instant::now();
                last_written = p.percent;
            }
        };
        let result = stitch_session(
            &self.layout,
            session,
            &self.settings,
            &self.cancel,
            &mut on_progress,
        );
        if self.tty {
            eprintln!();
        }
        let (output, plan, elapsed) = result?;
        let made = ffmpeg::probe(&self.settings.ffprobe, &output).ok();
        let size_bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
        Ok(StitchReport {
            job_id: job.id.clone(),
            output: output.display().to_string(),
            size_bytes,
            duration_sec: made.map(|m| m.duration_sec).unwrap_or(plan.duration_sec),
            elapsed_sec: round3(elapsed),
            plan,
        })
    }
}

/// The queue as a table for `--list`. A `running` job whose holder is gone
/// is shown as `running?` (the next run re-queues it).
pub fn list_table(file: &JobsFile) -> String {
    if file.jobs.is_empty() {
        return "no jobs\n".to_string();
    }
    let mut rows = vec![[
        "JOB".to_string(),
        "STATUS".to_string(),
        "PROGRESS".to_string(),
        "CREATED".to_string(),
        "FINISHED".to_string(),
        "OUTPUT / ERROR".to_string(),
    ]];
    for j in &file.jobs {
        let status = if j.status == JobStatus::Running && !jobs::holder_alive(j) {
            "running?".to_string()
        } else {
            j.status.to_string()
        };
        let detail = match (&j.output, &j.error) {
            (_, Some(e)) => e.clone(),
            (Some(o), None) => o.clone(),
            (None, None) => match j.pid {
                Some(p) => format!("pid {p}"),
                None => String::new(),
            },
        };
        rows.push([
            j.id.clone(),
            status,
            format!("{:.1}%", j.progress),
            short_time(&j.created_at),
            j.finished_at.as_deref().map(short_time).unwrap_or_default(),
            detail,
        ]);
    }
    let mut widths = [0usize; 6];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i == 5 {
                line.push_str(c);
            } else if i == 2 {
                line.push_str(&format!("{c:>w$}  "));
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `2024-03-15T14:00:00.123456Z` as `2024-03-15 14:00:00Z`.
fn short_time(t: &str) -> String {
    match t.split_once('.') {
        Some((head, _)) if t.ends_with('Z') => format!("{}Z", head.replacen('T', " ", 1)),
        _ => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(camera: CameraId, start: &str, w: u32, fps: f64, dur: f64) -> CameraInput {
        CameraInput {
            camera,
            recording: PathBuf::from(format!("/s/{camera}/recording.mp4")),
            start: start.parse().unwrap(),
            ntp_synced: true,
            sync_offset_ms: None,
            probe: Probe {
                width: w,
                height: 180,
                fps: fps.round() as u32,
                fps_exact: fps,
                codec: "h264".into(),
                bitrate_bps: None,
                duration_sec: dur,
                container: "mp4".into(),
                creation_time: None,
                has_audio: false,
            },
        }
    }

    fn settings(overlap: u32, output_width: u32) -> StitchSettings {
        let mut p = ProcessingConfig {
            stitch_overlap_px: overlap,
            output_width,
            ..ProcessingConfig::default()
        };
        p.output_preset = "ultrafast".into();
        StitchSettings::from_config(&p).unwrap()
    }

    fn session() -> SessionId {
        SessionId::parse("GAME_20240315_140000").unwrap()
    }

    #[test]
    fn offsets_round_to_frames_and_span_ends_at_the_earliest_end() {
        let inputs = [
            input(
                CameraId::Left,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Center,
                "2024-03-15T14:00:00.510000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Right,
                "2024-03-15T14:00:00.800000Z",
                320,
                30.0,
                9.0,
            ),
        ];
        let p = plan(&session(), &inputs, &settings(64, 0)).unwrap();
        assert_eq!(p.common_start, "2024-03-15T14:00:00.800000Z");
        let skipped: Vec<u64> = p.cameras.iter().map(|c| c.skipped_frames).collect();
        // 0.8 s = 24 frames; 0.29 s = 8.7 frames -> 9; 0.
        assert_eq!(skipped, [24, 9, 0]);
        assert_eq!(p.cameras[1].offset_ms, 290.0);
        assert_eq!(p.cameras[1].applied_ms, 300.0);
        assert!((p.cameras[0].seek_sec - 23.5 / 30.0).abs() < 1e-9);
        assert_eq!(p.cameras[2].seek_sec, 0.0);
        // Ends: L 10.0 (9.2 left), C 10.51 (9.7 left), R 9.8 (9.0 left).
        assert_eq!(p.frames, 270);
        assert_eq!(p.panorama_width, 3 * 320 - 2 * 64);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn sync_offset_and_unsynced_clocks() {
        let mut inputs = vec![
            input(
                CameraId::Left,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Center,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Right,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
        ];
        inputs[2].ntp_synced = false;
        let p = plan(&session(), &inputs, &settings(64, 0)).unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].starts_with("CAM_R: clock was not NTP-synced"));
        assert!(p.cameras.iter().all(|c| c.skipped_frames == 0));
    }

    #[test]
    fn no_common_instant_is_an_error_naming_the_starts() {
        let inputs = [
            input(CameraId::Left, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Center, "2024-03-15T14:00:10Z", 320, 30.0, 5.0),
            input(CameraId::Right, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
        ];
        let err = plan(&session(), &inputs, &settings(64, 0)).unwrap_err();
        assert_eq!(err.code(), "no_common_span");
        assert!(
            err.to_string().contains("CAM_C 2024-03-15T14:00:10"),
            "{err}"
        );
    }

    #[test]
    fn overlap_too_wide_and_odd_overlap_are_refused() {
        let inputs = [
            input(CameraId::Left, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Center, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Right, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
        ];
        let err = plan(&session(), &inputs, &settings(160, 0)).unwrap_err();
        assert!(err.to_string().contains("must be below 160"), "{err}");
        let odd = ProcessingConfig {
            stitch_overlap_px: 101,
            ..ProcessingConfig::default()
        };
        let err = StitchSettings::from_config(&odd).unwrap_err();
        assert_eq!(err.exit_code(), crate::cli::EXIT_USAGE);
        assert!(err.to_string().contains("stitch_overlap_px"));
    }

    #[test]
    fn graph_normalizes_odd_inputs_and_caps_width() {
        let inputs = [
            input(CameraId::Left, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Center, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Right, "2024-03-15T14:00:00Z", 640, 25.0, 5.0),
        ];
        let p = plan(&session(), &inputs, &settings(64, 416)).unwrap();
        assert_eq!((p.output_width, p.output_height), (416, 90));
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let g = filter_graph(&p);
        // Every camera is brought to the output's scale before the blend
        // (416 = 3 x 160 - 2 x 32): nothing is scaled after the stack.
        assert_eq!(g.matches("scale=160:90").count(), 3, "{g}");
        assert_eq!(g.matches("crop=32:90").count(), 4, "{g}");
        assert_eq!(g.matches("fps=30").count(), 3, "{g}");
        assert!(g.contains("hstack=inputs=5:shortest=1[v]"), "{g}");
        // Sizes that do not divide evenly overshoot and are cut at both ends.
        let p2 = plan(&session(), &inputs, &settings(64, 400)).unwrap();
        let (w2, o2, extra) = strip_scale(&p2);
        assert_eq!(
            3 * w2 - 2 * o2 - extra,
            p2.output_width,
            "{w2} {o2} {extra}"
        );
        assert!(w2 % 2 == 0 && o2 % 2 == 0 && extra < 6, "{w2} {o2} {extra}");
        assert_eq!(g.matches("maskedmerge").count(), 2);
        // Without overlap, a plain stack.
        let p0 = plan(&session(), &inputs, &settings(0, 0)).unwrap();
        assert!(filter_graph(&p0).contains("[l][c][r]hstack=inputs=3"));
    }

    #[test]
    fn shell_line_quotes_what_needs_it() {
        let line = shell_line(
            Path::new("/usr/bin/ffmpeg"),
            &["-i".into(), "a b.mp4".into(), "[v]".into(), "it's".into()],
        );
        assert_eq!(line, r"/usr/bin/ffmpeg -i 'a b.mp4' '[v]' 'it'\''s'");
    }

    #[test]
    fn table_lists_jobs() {
        let file = JobsFile {
            jobs: vec![Job {
                id: "S-1".into(),
                session_id: "S".into(),
                status: JobStatus::Failed,
                created_at: "2024-03-15T14:00:00.123456Z".into(),
                started_at: None,
                finished_at: Some("2024-03-15T14:01:00.000000Z".into()),
                progress: 12.5,
                error: Some("CAM_R is missing".into()),
                output: None,
                pid: None,
            }],
        };
        let t = list_table(&file);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("JOB"));
        assert!(lines[1].starts_with("S-1  failed"), "{t}");
        assert!(lines[1].contains("12.5%") && lines[1].contains("2024-03-15 14:00:00Z"));
        assert!(lines[1].ends_with("CAM_R is missing"));
        assert_eq!(list_table(&JobsFile::default()), "no jobs\n");
    }
}
