//! rig-record's logic: capture a match into the Pi layout so that whatever
//! happens, the bytes on disk are a playable recording, and at stop write a
//! manifest whose every field comes from reality.
//!
//! # Why the recording is written under its final name
//!
//! Everywhere else in this crate a file appears under its final name only
//! when complete ([`crate::base::fsx::AtomicFile`]). A recording is the exception,
//! on purpose: it is the only copy of a match, and it must survive a power
//! cut at minute 80 as 80 playable minutes, not as an orphaned temp file
//! that nothing knows about. ffmpeg writes *fragmented* MP4
//! (`frag_keyframe+empty_moov+default_base_moof`): an `ftyp`+`moov` header
//! up front, then self-contained `moof`+`mdat` fragments of
//! `recording.fragment_sec`, each opening on a keyframe. Such a file is
//! playable at every fragment boundary, and a torn last fragment only
//! loses that fragment: ffprobe and players read everything before it.
//! So the file under `recordings/S/C/S_C.mp4` is always "the recording so
//! far", never a partial file in the forbidden sense. The target is opened
//! with `create_new`, so an existing recording is never overwritten, and
//! its directory entry is fsynced before the first byte arrives.
//!
//! # One pass over the bytes
//!
//! ffmpeg writes to a pipe; a pump thread reads it and writes through a
//! [`HashingWriter`] into the file, so the SHA-256 is ready the moment the
//! recording stops, with no second read of a 20 GB file. A separate sync
//! thread calls `fdatasync` on a clone of the file handle every
//! `recording.fsync_interval_sec`, so written data never sits unsynced longer
//! than that, and a slow fsync never stalls the pipe (a stalled pipe stalls
//! ffmpeg, and a stalled live camera drops frames). The pipe is enlarged to
//! 1 MiB where the kernel allows, for the same reason.
//!
//! # Timing
//!
//! `timing.start_time` is the instant the first frame was accepted for
//! writing: ffmpeg reports progress blocks every 0.25 s, and its `frame`
//! counter counts frames handed to the encoder. At the first block with
//! `frame >= 1`, received at wall-clock `T` with `frame = k`, the first frame
//! went in `(k - 1) / fps` seconds earlier, so `start_time = T - (k-1)/fps`
//! (never before ffmpeg was started). For a source that delivers in real
//! time this is accurate to a few milliseconds plus the source's own
//! latency. `end_time` is the instant the last byte reached the file, after
//! ffmpeg finished, or `start_time` plus the video's duration if that is
//! later (a source ffmpeg buffered, then wrote in a burst, would otherwise
//! claim N seconds of video recorded in less than N seconds). Both are UTC
//! with microseconds. Clock sync
//! ([`host::clock_sync`]) is sampled once, before the recording starts.
//!
//! # Stopping
//!
//! A recording stops when `--duration` elapses (ffmpeg's own `-t`, so the
//! file holds exactly that many frames), on SIGINT/SIGTERM, or when the
//! source ends. ffmpeg runs in its own process group, so a Ctrl-C at the
//! terminal reaches only rig-record, which then asks ffmpeg to finish
//! cleanly: `q` on its stdin, or for `cmd` sources SIGTERM to the producer's
//! process group, so ffmpeg sees the end of its input. ffmpeg gets
//! [`STOP_TIMEOUT`] to finish before it is killed; even then the file keeps
//! every complete fragment, and the manifest is still written for it.
//!
//! # Guards
//!
//! Before anything is created: the storage root exists and is writable,
//! free space covers `bitrate x duration x 1.1` (or `node.min_free_space_gb`
//! without a duration), ffmpeg runs and has the encoder (and lavfi for the
//! test source), ffprobe runs (the manifest is built from its report, so
//! without it a whole match would record and end with no manifest), the
//! source exists, and neither the recording nor its manifest exists yet.
//! Each failure is its own [`RecordError`] code.
//!
//! # The live lock
//!
//! While it records, and until the manifest is written, rig-record holds an
//! exclusive advisory lock (`File::try_lock`) on the recording file itself,
//! through a handle of its own. `rig-manifest create --recover` asks for a
//! shared lock on the same file ([`recording_is_live`]) and refuses when it
//! cannot have it, so a recording still being written is never "recovered"
//! with a digest of half a match. Locking the file, not a lock file beside
//! it, leaves nothing behind, and the kernel drops the lock when rig-record
//! dies, which is exactly when a recovery is wanted.

pub mod sustain;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::base::checksum::{self, FileDigest, HashingWriter};
use crate::base::config::{Config, GB};
use crate::base::ffmpeg::{self, CaptureSettings, CaptureSource, Progress, ProgressParser};
use crate::base::fsx;
use crate::base::host;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::layout::PiLayout;
use crate::base::manifest::describe::{self, DescribeOptions, round_to};
use crate::base::manifest::{Manifest, QualityInfo};

/// How long ffmpeg gets to finish cleanly after a stop before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A source that has produced no frame after this long is given up on.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the CPU temperature is sampled while recording.
pub const TEMPERATURE_INTERVAL: Duration = Duration::from_secs(5);

/// Free space wanted per byte a timed recording is expected to take.
pub const SPACE_MARGIN: f64 = 1.1;

/// Length of the `--test` recording unless `--duration` says otherwise.
pub const SELF_TEST_DURATION_SEC: f64 = 10.0;

/// Prefix of the scratch directory `--test` records into (under the
/// storage root, so the real disk is exercised; removed afterwards).
pub const SELF_TEST_DIR_PREFIX: &str = ".rig-record-test-";

/// Read size of the pump (the pipe rarely holds more).
const PUMP_BUF: usize = 1 << 20;

/// Lines of ffmpeg's stderr kept to explain a failure.
const STDERR_TAIL: usize = 12;

/// What to record, beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct RecordOptions {
    /// The session; `None` = automatic `GAME_YYYYMMDD_HHMMSS` from the local clock.
    pub session: Option<SessionId>,
    /// The camera; `None` = `node.camera_id`.
    pub camera: Option<CameraId>,
    /// Stop after this many seconds; `None` = until a signal or the source ends.
    pub duration_sec: Option<f64>,
    /// A source spec overriding `recording.source`.
    pub source: Option<String>,
    /// Run the pre-kick-off self test instead of recording a match.
    pub self_test: bool,
}

/// Why a recording (or its start) failed. `code` is a stable snake_case
/// identifier (the `error` of `--json` output); `message` names the file,
/// key or flag and says what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// `invalid_config`, `storage_root_missing`, `storage_not_writable`,
    /// `insufficient_space`, `ffmpeg_missing`, `ffprobe_missing`, `source_unavailable`,
    /// `target_exists`, `capture_failed` or `manifest_failed`.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// What ffmpeg had encoded when a started capture failed (for the self
    /// test's `keeps up` check: a node too slow for its settings often fails
    /// this way, ffmpeg still encoding long after the duration).
    pub encoded: Option<sustain::Measured>,
}

impl RecordError {
    fn new(code: &'static str, message: impl Into<String>) -> RecordError {
        RecordError {
            code,
            message: message.into(),
            encoded: None,
        }
    }

    /// Attaches what ffmpeg had encoded (its progress log).
    fn with_encoded(mut self, log: &ProgressLog) -> RecordError {
        self.encoded = Some(sustain::Measured {
            measured_fps: log.measured_fps(),
            frames: log.last.frame,
            dropped: log.last.drop_frames,
            wall_sec: 0.0,
        });
        self
    }

    /// 2 for a configuration error, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        if self.code == "invalid_config" {
            crate::base::cli::EXIT_USAGE
        } else {
            crate::base::cli::EXIT_FAILURE
        }
    }

    /// The suite's JSON error shape.
    pub fn to_json(&self) -> Value {
        json!({"success": false, "error": self.code, "message": self.message})
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RecordError {}

/// Why the capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `--duration` elapsed.
    Duration,
    /// SIGINT or SIGTERM.
    Signal,
    /// The source ended (or ffmpeg stopped) without being asked.
    SourceEnded,
    /// Writing failed, or the source produced nothing in time.
    Failed,
}

impl StopReason {
    /// `duration`, `signal`, `source_ended` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Duration => "duration",
            StopReason::Signal => "signal",
            StopReason::SourceEnded => "source_ended",
            StopReason::Failed => "failed",
        }
    }
}

/// A finished recording: the file and manifest exist and validate.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Which recording.
    pub recording: RecordingId,
    /// `recordings/S/C/S_C.mp4`.
    pub video_path: PathBuf,
    /// `manifests/S/C/S_C.json`.
    pub manifest_path: PathBuf,
    /// The manifest as written.
    pub manifest: Manifest,
    /// SHA-256 and size of the bytes written, hashed as they were written.
    pub digest: FileDigest,
    /// Frames ffmpeg encoded.
    pub frames: u64,
    /// Frames ffmpeg dropped.
    pub dropped_frames: u64,
    /// Frames per second ffmpeg sustained while recording, when measurable.
    pub measured_fps: Option<f64>,
    /// Why it stopped.
    pub stop: StopReason,
    /// Periodic fsyncs done while recording.
    pub fsyncs: u64,
    /// What went wrong although the recording was kept (non-empty = exit 1).
    pub problems: Vec<String>,
    /// What became of `offload.upload_on_record_stop`, when it is set.
    pub offload: Option<String>,
}

impl Recorded {
    /// The `--json` summary.
    pub fn to_json(&self) -> Value {
        json!({
            "success": self.problems.is_empty(),
            "recording_id": self.recording.to_string(),
            "manifest": self.manifest_path,
            "recording": self.video_path,
            "size_bytes": self.digest.size,
            "checksum_sha256": self.digest.sha256,
            "duration_sec": self.manifest.video.duration_sec,
            "start_time": self.manifest.timing.start_time,
            "end_time": self.manifest.timing.end_time,
            "frames": self.frames,
            "dropped_frames": self.dropped_frames,
            "stop": self.stop.as_str(),
            "fsyncs": self.fsyncs,
            "problems": self.problems,
            "offload": self.offload,
        })
    }

    /// The human summary, one fact a line.
    pub fn human(&self) -> String {
        let mut s = format!(
            "recorded {}: {:.3} s, {} frames ({} dropped), {} bytes, stopped by {}\n\
             recording: {}\nmanifest:  {}\nsha256:    {}\n",
            self.recording,
            self.manifest.video.duration_sec,
            self.frames,
            self.dropped_frames,
            self.digest.size,
            self.stop.as_str(),
            self.video_path.display(),
            self.manifest_path.display(),
            self.digest.sha256
        );
        if let Some(o) = &self.offload {
            s.push_str(&format!("offload:   {o}\n"));
        }
        for p in &self.problems {
            s.push_str(&format!("problem:   {p}\n"));
        }
        s
    }
}

/// One line of the `--test` report.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `frames written`, `dropped frames`, `fps reached`, `keeps up`
    /// (see [`crate::record::sustain`]), `file playable`,
    /// `checksum ok` or `manifest valid` (or `recording` when it failed).
    pub name: &'static str,
    /// Whether it passed.
    pub pass: bool,
    /// The figures behind the verdict.
    pub detail: String,
}

/// The result of `rig-record --test`.
#[derive(Debug, Clone)]
pub struct SelfTest {
    /// Every check, in report order.
    pub checks: Vec<Check>,
}

/// The self test's checks, in report order (see [`judge`]).
pub const SELF_TEST_CHECKS: [&str; 7] = [
    "frames written",
    "dropped frames",
    "fps reached",
    "keeps up",
    "file playable",
    "checksum ok",
    "manifest valid",
];

impl SelfTest {
    /// The report of a test whose recording failed: the failure, then every
    /// check as FAIL, so a node that cannot record never looks half ready
    /// (and a script finds each check it looks for).
    /// `keeps_up`, when ffmpeg encoded something before the failure, takes
    /// the place of its "not checked" line.
    pub fn not_recorded(e: &RecordError, keeps_up: Option<Check>) -> SelfTest {
        let mut checks = vec![Check {
            name: "recording",
            pass: false,
            detail: format!("{}: {}", e.code, e.message),
        }];
        checks.extend(SELF_TEST_CHECKS.iter().map(|&name| Check {
            name,
            pass: false,
            detail: "not checked: the recording failed".to_string(),
        }));
        if let Some(k) = keeps_up {
            checks.retain(|c| c.name != k.name);
            let at = SELF_TEST_CHECKS.iter().position(|&n| n == k.name);
            checks.insert(at.map_or(checks.len(), |i| i + 1), k);
        }
        SelfTest { checks }
    }

    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.pass)
    }

    /// `PASS  name: detail` lines and a verdict.
    pub fn human(&self) -> String {
        let mut s = String::new();
        for c in &self.checks {
            let verdict = if c.pass { "PASS" } else { "FAIL" };
            s.push_str(&format!("{verdict}  {}: {}\n", c.name, c.detail));
        }
        s.push_str(if self.passed() {
            "node ready: every check passed\n"
        } else {
            "node NOT ready: fix the failed checks before kick-off\n"
        });
        s
    }

    /// The `--json` form.
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| json!({"check": c.name, "pass": c.pass, "detail": c.detail}))
            .collect();
        json!({"success": self.passed(), "checks": checks})
    }
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub enum Report {
    /// A match recording.
    Recorded(Box<Recorded>),
    /// The self test.
    SelfTest(SelfTest),
}

impl Report {
    /// 0 when everything went right, else 1.
    pub fn exit_code(&self) -> u8 {
        let ok = match self {
            Report::Recorded(r) => r.problems.is_empty(),
            Report::SelfTest(t) => t.passed(),
        };
        if ok {
            crate::base::cli::EXIT_OK
        } else {
            crate::base::cli::EXIT_FAILURE
        }
    }

    /// The `--json` form.
    pub fn to_json(&self) -> Value {
        match self {
            Report::Recorded(r) => r.to_json(),
            Report::SelfTest(t) => t.to_json(),
        }
    }

    /// The human form.
    pub fn human(&self) -> String {
        match self {
            Report::Recorded(r) => r.human(),
            Report::SelfTest(t) => t.human(),
        }
    }
}

/// rig-record's entry point: installs the SIGINT/SIGTERM handlers, then
/// records (or runs the self test).
pub fn run(config: &Config, opts: &RecordOptions) -> Result<Report, RecordError> {
    let stop = stop_on_signals()
        .map_err(|e| RecordError::new("capture_failed", format!("cannot catch signals: {e}")))?;
    if opts.self_test {
        self_test(config, opts, &stop).map(Report::SelfTest)
    } else {
        record(config, opts, &stop).map(|r| Report::Recorded(Box::new(r)))
    }
}

/// A flag that SIGINT and SIGTERM set (instead of killing the process).
pub fn stop_on_signals() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// Bytes a recording needs free before it starts: `bitrate x duration x
/// 1.1` with a duration, else the configured floor (`node.min_free_space_gb`).
pub fn required_free_bytes(bitrate_mbps: u32, duration_sec: Option<f64>, floor_gb: f64) -> u64 {
    match duration_sec {
        Some(d) => (f64::from(bitrate_mbps) * 1e6 / 8.0 * d * SPACE_MARGIN).ceil() as u64,
        None => (floor_gb * GB).ceil() as u64,
    }
}

/// The capture settings `config` (and a duration) describe.
pub fn capture_settings(config: &Config, duration_sec: Option<f64>) -> CaptureSettings {
    let r = &config.recording;
    CaptureSettings {
        width: r.width,
        height: r.height,
        fps: r.fps,
        bitrate_mbps: r.bitrate_mbps,
        codec: r.codec.clone(),
        encoder: r.encoder.clone(),
        preset: r.preset.clone(),
        fragment_sec: r.fragment_sec,
        duration_sec,
    }
}

/// Validates a `--duration` value.
pub fn check_duration(d: f64) -> Result<f64, RecordError> {
    if d.is_finite() && d > 0.0 && d <= 86_400.0 {
        Ok(d)
    } else {
        Err(RecordError::new(
            "invalid_config",
            format!("--duration: must be seconds between 0 and 86400, got {d}"),
        ))
    }
}

/// The guards that need only the config: storage, space, ffmpeg, source.
fn preflight(
    config: &Config,
    source: &CaptureSource,
    settings: &CaptureSettings,
) -> Result<(), RecordError> {
    let root = &config.node.storage_root;
    check_storage(root)?;
    let need = required_free_bytes(
        settings.bitrate_mbps,
        settings.duration_sec,
        config.node.min_free_space_gb,
    );
    let free = fsx::free_space(root)
        .map_err(|e| RecordError::new("storage_not_writable", format!("{e}")))?;
    if free < need {
        let why = match settings.duration_sec {
            Some(d) => format!("{} Mbps x {d} s x {SPACE_MARGIN}", settings.bitrate_mbps),
            None => "node.min_free_space_gb, as no --duration was given".to_string(),
        };
        return Err(RecordError::new(
            "insufficient_space",
            format!(
                "{}: {:.2} GB free, {:.2} GB needed ({why}); offload and delete old \
                 recordings (rig-upload --delete-after-confirm) or record shorter",
                root.display(),
                free as f64 / GB,
                need as f64 / GB
            ),
        ));
    }
    check_ffmpeg(&config.processing.ffmpeg_path, source, settings)?;
    check_ffprobe(&config.processing.ffprobe_path)?;
    check_source(source)
}

/// ffprobe runs: the manifest is built from what it reports, so a missing
/// ffprobe must stop the recording before it starts, not after 90 minutes.
fn check_ffprobe(ffprobe: &Path) -> Result<(), RecordError> {
    let missing = |why: String| {
        RecordError::new(
            "ffprobe_missing",
            format!(
                "cannot run ffprobe at {} ({why}): install ffmpeg (apt-get install ffmpeg) \
                 or set processing.ffprobe_path; without it no manifest can be written",
                ffprobe.display()
            ),
        )
    };
    if !ffmpeg::tool_exists(ffprobe) {
        return Err(missing("no such program".into()));
    }
    let out = Command::new(ffprobe)
        .args(["-hide_banner", "-version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing(e.to_string()))?;
    if !out.status.success() {
        return Err(missing(format!("`-version` exited with {}", out.status)));
    }
    Ok(())
}

/// Takes the live lock on a recording being written (see the module docs):
/// an exclusive lock through a handle of its own, held until it is dropped.
/// `Ok(None)` when the filesystem cannot lock; the recording goes on
/// unguarded rather than not at all.
fn hold_live_lock(video: &Path) -> Result<Option<File>, RecordError> {
    let file = File::open(video).map_err(|e| {
        RecordError::new(
            "storage_not_writable",
            format!("{}: cannot open to lock ({e})", video.display()),
        )
    })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Err(RecordError::new(
            "target_exists",
            format!(
                "{}: another process holds this recording's lock; is a second rig-record \
                 running?",
                video.display()
            ),
        )),
        Err(fs::TryLockError::Error(e)) => {
            log::warn!(
                "{}: cannot lock ({e}); rig-manifest create --recover will not see that \
                 this recording is live",
                video.display()
            );
            Ok(None)
        }
    }
}

/// Whether rig-record is writing `video` right now: it holds the live lock
/// (see the module docs). A missing file is not live; other errors are
/// returned, so a caller never treats "could not tell" as "not live".
pub fn recording_is_live(video: &Path) -> io::Result<bool> {
    let file = match File::open(video) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(fsx::with_path(video)(e)),
    };
    // The shared lock, if granted, is released when `file` drops.
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(fs::TryLockError::WouldBlock) => Ok(true),
        Err(fs::TryLockError::Error(e)) => Err(fsx::with_path(video)(e)),
    }
}

/// The storage root exists, is a directory, and is writable.
fn check_storage(root: &Path) -> Result<(), RecordError> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RecordError::new(
                "storage_root_missing",
                format!(
                    "{}: node.storage_root is not a directory; mount the recording disk there",
                    root.display()
                ),
            ));
        }
        Err(e) => {
            return Err(RecordError::new(
                "storage_root_missing",
                format!(
                    "{}: node.storage_root: {e}; mount the recording disk or fix node.storage_root",
                    root.display()
                ),
            ));
        }
    }
    rustix::fs::access(root, rustix::fs::Access::WRITE_OK).map_err(|e| {
        RecordError::new(
            "storage_not_writable",
            format!(
                "{}: node.storage_root is not writable ({}); check the mount and permissions",
                root.display(),
                io::Error::from(e)
            ),
        )
    })
}

/// ffmpeg runs, has the encoder, and (for `test`) lavfi's testsrc2.
fn check_ffmpeg(
    ffmpeg: &Path,
    source: &CaptureSource,
    s: &CaptureSettings,
) -> Result<(), RecordError> {
    let missing = |why: &dyn std::fmt::Display| {
        RecordError::new(
            "ffmpeg_missing",
            format!(
                "cannot run ffmpeg at {} ({why}): install ffmpeg (apt-get install ffmpeg) \
                 or set processing.ffmpeg_path",
                ffmpeg.display()
            ),
        )
    };
    if !ffmpeg::tool_exists(ffmpeg) {
        return Err(missing(&"no such program"));
    }
    let listing = |what: &str| -> Result<String, RecordError> {
        let out = Command::new(ffmpeg)
            .args(["-hide_banner", what])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| missing(&e))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let encoder = s.encoder_name();
    let encoders = listing("-encoders")?;
    if !encoders
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(encoder.as_str()))
    {
        return Err(RecordError::new(
            "ffmpeg_missing",
            format!(
                "{} has no encoder {encoder:?} (recording.encoder/recording.codec); \
                 see `ffmpeg -encoders`",
                ffmpeg.display()
            ),
        ));
    }
    if *source == CaptureSource::Test
        && !listing("-filters")?
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("testsrc2"))
    {
        return Err(RecordError::new(
            "source_unavailable",
            format!("{} lacks the lavfi testsrc2 source", ffmpeg.display()),
        ));
    }
    Ok(())
}

/// The source's device or program is there.
fn check_source(source: &CaptureSource) -> Result<(), RecordError> {
    match source {
        CaptureSource::Test => Ok(()),
        CaptureSource::V4l2(dev) => {
            use std::os::unix::fs::FileTypeExt;
            match fs::metadata(dev) {
                Ok(m) if m.file_type().is_char_device() => Ok(()),
                Ok(_) => Err(RecordError::new(
                    "source_unavailable",
                    format!("{}: not a video device (recording.source)", dev.display()),
                )),
                Err(e) => Err(RecordError::new(
                    "source_unavailable",
                    format!(
                        "{}: {e}; is the camera connected? (recording.source, `v4l2-ctl --list-devices`)",
                        dev.display()
                    ),
                )),
            }
        }
        CaptureSource::Cmd(cmd) | CaptureSource::CmdRaw(cmd) => {
            let program = cmd.split_whitespace().next().unwrap_or("");
            if program_exists(program) {
                Ok(())
            } else {
                Err(RecordError::new(
                    "source_unavailable",
                    format!(
                        "source command {program:?} not found on PATH (recording.source {cmd:?})"
                    ),
                ))
            }
        }
    }
}

/// Whether the first word of a shell command names something runnable:
/// a path that exists, a shell word we cannot judge (`exec`, `VAR=x`, `(`),
/// or a program on `$PATH`.
fn program_exists(program: &str) -> bool {
    if program.is_empty() {
        return false;
    }
    if program.contains('/') {
        return Path::new(program).exists();
    }
    if program.contains('=')
        || !program
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.+".contains(c))
    {
        return true;
    }
    if ["exec", "env", "nice", "ionice", "cd", "set"].contains(&program) {
        return true;
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// What the progress reader learned from ffmpeg's stderr.
#[derive(Debug, Default)]
struct ProgressLog {
    /// The latest block.
    last: Progress,
    /// The first block with `frame >= 1`.
    first: Option<Mark>,
    /// The latest block before `progress=end`.
    latest: Option<Mark>,
    /// The last lines that were not progress (ffmpeg's errors).
    tail: VecDeque<String>,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    wall: jiff::Timestamp,
    frame: u64,
}

impl ProgressLog {
    fn tail_text(&self) -> String {
        let lines: Vec<&str> = self.tail.iter().map(String::as_str).collect();
        if lines.is_empty() {
            "(ffmpeg said nothing)".into()
        } else {
            lines.join(" | ")
        }
    }

    /// Frames per second sustained between the first and latest blocks.
    fn measured_fps(&self) -> Option<f64> {
        let (a, b) = (self.first?, self.latest?);
        let dt = b.at.checked_duration_since(a.at)?.as_secs_f64();
        (dt >= 0.5 && b.frame > a.frame).then(|| (b.frame - a.frame) as f64 / dt)
    }
}

/// True for a `-progress` line (`key=value`, key in `[a-z0-9_]`).
fn is_progress_line(line: &str) -> bool {
    line.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Reads ffmpeg's stderr to its end: progress blocks into `log`, anything
/// else logged as a warning and kept for error messages.
fn read_progress(stderr: impl Read, log: &Mutex<ProgressLog>) {
    let mut reader = BufReader::new(stderr);
    let mut parser = ProgressParser::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if is_progress_line(line) {
            if let Some(block) = parser.line(line) {
                let mark = Mark {
                    at: Instant::now(),
                    wall: jiff::Timestamp::now(),
                    frame: block.frame,
                };
                if block.frame >= 1 && log.first.is_none() {
                    log.first = Some(mark);
                }
                if !block.end && block.frame >= 1 {
                    log.latest = Some(mark);
                }
                log.last = block;
            }
        } else {
            log::warn!("ffmpeg: {line}");
            if log.tail.len() == STDERR_TAIL {
                log.tail.pop_front();
            }
            log.tail.push_back(line.to_string());
        }
    }
}

/// What the pump leaves behind: the writer (file + running digest), the
/// error that stopped it early if any, and when the last byte was written.
struct PumpEnd {
    writer: HashingWriter<File>,
    error: Option<io::Error>,
    last_byte: Option<jiff::Timestamp>,
}

/// Copies `src` into `writer` until end of input or the first error.
fn pump(mut src: impl Read, mut writer: HashingWriter<File>) -> PumpEnd {
    let mut buf = vec![0u8; PUMP_BUF];
    let mut last_byte = None;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return PumpEnd {
                    writer,
                    error: Some(e),
                    last_byte,
                };
            }
        };
        if let Err(e) = writer.write_all(&buf[..n]) {
            return PumpEnd {
                writer,
                error: Some(e),
                last_byte,
            };
        }
        last_byte = Some(jiff::Timestamp::now());
    }
    PumpEnd {
        writer,
        error: None,
        last_byte,
    }
}

/// fdatasyncs `file` every `interval` until told to stop; returns how many
/// syncs it did and the first error.
fn sync_loop(file: File, interval: Duration, stop: mpsc::Receiver<()>) -> (u64, Option<io::Error>) {
    let mut count = 0;
    let mut first_error = None;
    loop {
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => match file.sync_data() {
                Ok(()) => count += 1,
                Err(e) => {
                    log::error!("fsync of the recording failed: {e}");
                    first_error.get_or_insert(e);
                }
            },
            _ => return (count, first_error),
        }
    }
}

/// Running CPU temperature statistics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TemperatureStats {
    sum: f64,
    count: u32,
    max: Option<f64>,
}

impl TemperatureStats {
    /// Adds a sample, if there is one.
    pub fn add(&mut self, celsius: Option<f64>) {
        if let Some(c) = celsius.filter(|c| c.is_finite()) {
            self.sum += c;
            self.count += 1;
            self.max = Some(self.max.map_or(c, |m| m.max(c)));
        }
    }

    /// Average, rounded to 0.1 °C; `None` without samples.
    pub fn average(&self) -> Option<f64> {
        (self.count > 0).then(|| round_to(self.sum / f64::from(self.count), 1))
    }

    /// Maximum, rounded to 0.1 °C; `None` without samples.
    pub fn max(&self) -> Option<f64> {
        self.max.map(|m| round_to(m, 1))
    }
}

/// The running capture: ffmpeg, and the producer of a `cmd` source.
struct Capture {
    ffmpeg: Child,
    stdin: Option<ChildStdin>,
    producer: Option<Child>,
}

impl Capture {
    /// Starts the producer (for `cmd` sources) and ffmpeg, each in its own
    /// process group so a terminal's Ctrl-C reaches only rig-record.
    fn spawn(
        ffmpeg_path: &Path,
        source: &CaptureSource,
        settings: &CaptureSettings,
    ) -> io::Result<Capture> {
        use std::os::unix::process::CommandExt;
        let mut producer = None;
        let mut cmd = Command::new(ffmpeg_path);
        cmd.args(ffmpeg::capture_args(source, settings))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(shell) = source.command() {
            let mut p = Command::new("sh")
                .arg("-c")
                .arg(shell)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .process_group(0)
                .spawn()?;
            let out = p
                .stdout
                .take()
                .ok_or_else(|| io::Error::other("producer stdout not captured"))?;
            cmd.stdin(Stdio::from(out));
            producer = Some(p);
        } else {
            cmd.stdin(Stdio::piped());
        }
        log::debug!("capture: {cmd:?}");
        let mut ffmpeg = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                if let Some(p) = producer.as_mut() {
                    signal_group(p, rustix::process::Signal::KILL);
                    let _ = p.wait();
                }
                return Err(e);
            }
        };
        let stdin = ffmpeg.stdin.take();
        Ok(Capture {
            ffmpeg,
            stdin,
            producer,
        })
    }

    /// Asks ffmpeg to finish cleanly.
    fn request_stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            // ffmpeg may already be gone: a failed write changes nothing.
            let _ = stdin.write_all(b"q").and_then(|()| stdin.flush());
        }
        if let Some(p) = self.producer.as_mut() {
            signal_group(p, rustix::process::Signal::TERM);
        }
    }

    /// Waits up to `timeout` for ffmpeg; kills it after that. Returns its
    /// status and whether it had to be killed.
    fn wait_bounded(&mut self, timeout: Duration) -> io::Result<(ExitStatus, bool)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.ffmpeg.try_wait()? {
                return Ok((status, false));
            }
            if Instant::now() >= deadline {
                log::error!("ffmpeg did not finish within {timeout:?}; killing it");
                self.ffmpeg.kill()?;
                return Ok((self.ffmpeg.wait()?, true));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the producer: SIGTERM to its group, then SIGKILL after 3 s.
    fn reap_producer(&mut self) {
        let Some(p) = self.producer.as_mut() else {
            return;
        };
        signal_group(p, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match p.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    signal_group(p, rustix::process::Signal::KILL);
                    let _ = p.wait();
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
        // Anything else left in the group (a pipeline's other members).
        signal_group(p, rustix::process::Signal::KILL);
    }
}

/// Signals the process group a child leads (never anything else).
fn signal_group(child: &Child, sig: rustix::process::Signal) {
    if let Ok(raw) = i32::try_from(child.id())
        && raw > 1
        && let Some(pid) = rustix::process::Pid::from_raw(raw)
    {
        let _ = rustix::process::kill_process_group(pid, sig);
    }
}

/// Creates the recording's file with `create_new` and makes its directory
/// entry durable.
fn create_target(layout: &PiLayout, rec: &RecordingId) -> Result<(File, PathBuf), RecordError> {
    let video = layout.recording(rec);
    let manifest = layout.manifest(rec);
    if manifest.exists() {
        return Err(RecordError::new(
            "target_exists",
            format!(
                "{}: a manifest for {rec} already exists; choose another --session",
                manifest.display()
            ),
        ));
    }
    let not_writable = |path: &Path, e: io::Error| {
        RecordError::new(
            "storage_not_writable",
            format!("{}: cannot create ({e})", path.display()),
        )
    };
    for dir in [layout.recording_dir(rec), layout.manifest_dir(rec)] {
        fs::create_dir_all(&dir).map_err(|e| not_writable(&dir, e))?;
    }
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&video)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                RecordError::new(
                    "target_exists",
                    format!(
                        "{}: recording {rec} already exists and is never overwritten; \
                         choose another --session",
                        video.display()
                    ),
                )
            } else {
                not_writable(&video, e)
            }
        })?;
    fsx::sync_dir(&layout.recording_dir(rec)).map_err(|e| not_writable(&video, e))?;
    Ok((file, video))
}

/// Records one recording into the Pi layout and writes its manifest.
/// `stop` ends the recording early (set by SIGINT/SIGTERM in rig-record).
pub fn record(
    config: &Config,
    opts: &RecordOptions,
    stop: &AtomicBool,
) -> Result<Recorded, RecordError> {
    let invalid = |m: String| RecordError::new("invalid_config", m);
    let spec = opts.source.as_deref().unwrap_or(&config.recording.source);
    let source =
        CaptureSource::parse(spec).map_err(|e| invalid(format!("recording.source: {e}")))?;
    let camera = match opts.camera {
        Some(c) => c,
        None => config.node.camera().map_err(|e| invalid(e.to_string()))?,
    };
    let duration = opts.duration_sec.map(check_duration).transpose()?;
    let settings = capture_settings(config, duration);
    preflight(config, &source, &settings)?;

    let session = opts.session.clone().unwrap_or_else(SessionId::auto_now);
    let rec = RecordingId::new(session, camera);
    let layout = PiLayout::new(&config.node.storage_root);
    let (file, video) = create_target(&layout, &rec)?;
    // Held to the end of this function, past the manifest's write.
    let _live = hold_live_lock(&video)?;
    let clock = host::clock_sync();
    if !clock.synced {
        log::warn!(
            "clock not NTP-synchronized (asked {}): the three cameras may not line up; \
             timing.ntp_synced will be false",
            clock.source
        );
    }
    let sync_file = file
        .try_clone()
        .map_err(|e| RecordError::new("capture_failed", format!("{}: {e}", video.display())))?;
    let spawn_wall = jiff::Timestamp::now();
    let mut capture = match Capture::spawn(&config.processing.ffmpeg_path, &source, &settings) {
        Ok(c) => c,
        Err(e) => {
            drop(file);
            // The file is empty and ours; removing it loses nothing.
            let _ = fs::remove_file(&video);
            return Err(RecordError::new(
                "capture_failed",
                format!(
                    "cannot start ffmpeg at {}: {e}",
                    config.processing.ffmpeg_path.display()
                ),
            ));
        }
    };
    log::info!("recording {rec} to {}", video.display());

    let stdout = capture.ffmpeg.stdout.take();
    let stderr = capture.ffmpeg.stderr.take();
    let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
        return Err(RecordError::new("capture_failed", "ffmpeg pipes missing"));
    };
    if let Err(e) = rustix::pipe::fcntl_setpipe_size(&stdout, PUMP_BUF) {
        log::debug!("could not enlarge the capture pipe: {e}");
    }
    let writer = HashingWriter::new(file);
    let pump_thread = thread::spawn(move || pump(stdout, writer));
    let log = Arc::new(Mutex::new(ProgressLog::default()));
    let progress_thread = {
        let log = Arc::clone(&log);
        thread::spawn(move || read_progress(stderr, &log))
    };
    let (sync_stop, sync_rx) = mpsc::channel();
    let interval = Duration::from_secs_f64(config.recording.fsync_interval_sec);
    let sync_thread = thread::spawn(move || sync_loop(sync_file, interval, sync_rx));

    let mut problems = Vec::new();
    let mut temps = TemperatureStats::default();
    let started = Instant::now();
    let mut next_sample = started;
    let mut exited: Option<ExitStatus> = None;
    // A status line on a terminal only; logs and --json stay clean.
    let mut next_status = io::stderr().is_terminal().then_some(started);
    let reason = loop {
        let now = Instant::now();
        if now >= next_sample {
            temps.add(host::cpu_temperature_c());
            next_sample = now + TEMPERATURE_INTERVAL;
        }
        if stop.load(Ordering::SeqCst) {
            log::info!("stop requested by signal");
            break StopReason::Signal;
        }
        match capture.ffmpeg.try_wait() {
            Ok(Some(status)) => {
                exited = Some(status);
                break if status.success() && duration.is_some() {
                    StopReason::Duration
                } else {
                    StopReason::SourceEnded
                };
            }
            Ok(None) => {}
            Err(e) => {
                problems.push(format!("cannot watch ffmpeg: {e}"));
                break StopReason::Failed;
            }
        }
        if pump_thread.is_finished() {
            // The pump ends before ffmpeg only when writing failed.
            break StopReason::Failed;
        }
        let first = log.lock().unwrap_or_else(|e| e.into_inner()).first;
        match (first, duration) {
            (None, _) if now.duration_since(started) > FIRST_FRAME_TIMEOUT => {
                problems.push(format!(
                    "the source produced no frame in {} s",
                    FIRST_FRAME_TIMEOUT.as_secs()
                ));
                break StopReason::Failed;
            }
            // Backstop only: ffmpeg's own -t normally ends a timed recording.
            (Some(m), Some(d)) if now.duration_since(m.at) > Duration::from_secs_f64(d + 10.0) => {
                log::warn!("ffmpeg overran --duration {d}; stopping it");
                break StopReason::Duration;
            }
            _ => {}
        }
        if let Some(next) = next_status.as_mut()
            && now >= *next
        {
            *next = now + Duration::from_secs(1);
            let last = log.lock().unwrap_or_else(|e| e.into_inner()).last.clone();
            let bytes = fs::metadata(&video).map(|m| m.len()).unwrap_or(0);
            let secs = last.out_time_us / 1_000_000;
            eprint!(
                "\r{rec}: {:02}:{:02}:{:02}  {:.2} GB  {} frames  {} dropped ",
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                bytes as f64 / GB,
                last.frame,
                last.drop_frames
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    if next_status.is_some() {
        eprintln!();
    }

    let status = match exited {
        Some(s) => Some(s),
        None => {
            capture.request_stop();
            match capture.wait_bounded(STOP_TIMEOUT) {
                Ok((s, killed)) => {
                    if killed {
                        problems.push(format!(
                            "ffmpeg did not finish within {} s and was killed; the file ends \
                             at its last complete fragment",
                            STOP_TIMEOUT.as_secs()
                        ));
                    }
                    Some(s)
                }
                Err(e) => {
                    problems.push(format!("cannot stop ffmpeg: {e}"));
                    None
                }
            }
        }
    };
    let PumpEnd {
        writer,
        error: write_error,
        last_byte,
    } = pump_thread
        .join()
        .map_err(|_| RecordError::new("capture_failed", "the pump thread panicked"))?;
    let _ = progress_thread.join();
    drop(sync_stop);
    let (fsyncs, sync_error) = sync_thread.join().unwrap_or((0, None));
    capture.reap_producer();
    temps.add(host::cpu_temperature_c());

    let (file, digest) = writer.finish();
    let final_sync = file
        .sync_all()
        .and_then(|()| fsx::sync_dir(&layout.recording_dir(&rec)));
    drop(file);

    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = write_error {
        problems.push(format!(
            "writing {} failed after {} bytes: {e}",
            video.display(),
            digest.size
        ));
    }
    if let Some(e) = sync_error.or(final_sync.err()) {
        problems.push(format!("fsync of {} failed: {e}", video.display()));
    }
    if let Some(s) = status
        && !s.success()
        && reason != StopReason::Failed
    {
        problems.push(format!("ffmpeg exited with {s}: {}", log.tail_text()));
    }
    if reason == StopReason::SourceEnded && duration.is_none() {
        problems.push(format!(
            "the source ended on its own after {:.1} s, before a stop was asked",
            started.elapsed().as_secs_f64()
        ));
    }

    if digest.size == 0 {
        // Nothing was recorded: the empty file is ours and holds nothing.
        let _ = fs::remove_file(&video);
        let mut why = problems.join("; ");
        if why.is_empty() {
            why = log.tail_text();
        }
        return Err(RecordError::new(
            "capture_failed",
            format!("ffmpeg wrote no video for source {spec:?}: {why}"),
        )
        .with_encoded(&log));
    }
    let on_disk = fs::metadata(&video).map(|m| m.len()).ok();
    if on_disk != Some(digest.size) {
        return Err(RecordError::new(
            "capture_failed",
            format!(
                "{}: holds {on_disk:?} bytes but {} were written; something else wrote \
                 to it. Kept as is; check it with rig-manifest create --recover",
                video.display(),
                digest.size
            ),
        ));
    }

    let start = start_time(log.first, settings.fps, spawn_wall);
    let end = last_byte.unwrap_or_else(jiff::Timestamp::now).max(start);
    let describe_opts = DescribeOptions {
        ffprobe: config.processing.ffprobe_path.clone(),
        start: Some(start),
        end: Some(end),
        clock: Some(clock),
        digest: Some(digest.clone()),
        device_from_host: true,
        bitrate_mbps: Some(settings.bitrate_mbps),
    };
    let mut manifest = describe::describe(&video, &rec, &describe_opts).map_err(|e| {
        RecordError::with_encoded(
            RecordError::new(
                "manifest_failed",
                format!(
                    "{} ({} bytes) is kept, but no valid manifest could be built: {e}{}",
                    video.display(),
                    digest.size,
                    if problems.is_empty() {
                        String::new()
                    } else {
                        format!(" (earlier: {})", problems.join("; "))
                    }
                ),
            ),
            &log,
        )
    })?;
    // A live source cannot deliver N seconds of video in less than N
    // seconds: when ffmpeg buffered its input (probing a `cmd:` stream) and
    // wrote it in a burst, the last byte lands early; the end is then the
    // start plus the video's duration.
    let by_duration = start
        .checked_add(jiff::SignedDuration::from_secs_f64(
            manifest.video.duration_sec,
        ))
        .unwrap_or(end);
    if by_duration > end {
        manifest.timing.end_time = crate::base::manifest::format_time(by_duration);
    }
    manifest.quality = Some(QualityInfo {
        dropped_frames: Some(log.last.drop_frames),
        temperature_avg_c: temps.average(),
        temperature_max_c: temps.max(),
        extra: Default::default(),
    });
    if let Some(d) = duration {
        let got = manifest.video.duration_sec;
        let frame = 1.0 / f64::from(settings.fps);
        if got < d - 2.0 * frame {
            problems.push(format!(
                "recorded {got:.3} s of the {d} s asked for (stopped by {})",
                reason.as_str()
            ));
        }
    }
    let manifest_path = layout.manifest(&rec);
    write_manifest_new(&manifest, &manifest_path)?;
    log::info!("manifest {}", manifest_path.display());

    let offload = config
        .offload
        .upload_on_record_stop
        .then(|| offload_after_stop(config, &rec));
    Ok(Recorded {
        recording: rec,
        video_path: video,
        manifest_path,
        manifest,
        digest,
        frames: log.last.frame,
        dropped_frames: log.last.drop_frames,
        measured_fps: log.measured_fps(),
        stop: reason,
        fsyncs,
        problems,
        offload,
    })
}

/// `start_time` from the first progress block with a frame: its arrival
/// back-dated by the frames before it (see the module docs), never before
/// ffmpeg was started.
fn start_time(first: Option<Mark>, fps: u32, spawned: jiff::Timestamp) -> jiff::Timestamp {
    let Some(m) = first else {
        return spawned;
    };
    let before = m.frame.saturating_sub(1) as f64 / f64::from(fps.max(1));
    m.wall
        .checked_sub(jiff::SignedDuration::from_secs_f64(before))
        .unwrap_or(m.wall)
        .max(spawned)
}

/// Validates and writes a manifest atomically, refusing to replace one.
fn write_manifest_new(m: &Manifest, path: &Path) -> Result<(), RecordError> {
    let fail = |e: String| {
        RecordError::new(
            "manifest_failed",
            format!("{}: {e}; the recording is kept", path.display()),
        )
    };
    m.validate().map_err(|e| fail(e.to_string()))?;
    let mut f = fsx::AtomicFile::create(path).map_err(|e| fail(e.to_string()))?;
    f.write_all(m.to_json_pretty().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    f.commit_new().map_err(|e| fail(e.to_string()))
}

/// Offloads the recording just made (`offload.upload_on_record_stop`) with
/// the same code as rig-upload. Its outcome is reported, not fatal: the
/// recording and its manifest are safe on disk either way, and the offload
/// state file tells the next `rig-upload --all` what is left to do.
fn offload_after_stop(config: &Config, rec: &RecordingId) -> String {
    let opts = crate::upload::OffloadOptions {
        wait_for_lock: true,
        progress: true,
        ..Default::default()
    };
    match crate::upload::offload_recording(config, rec, &opts) {
        Ok(report) => {
            let summary = report.summary();
            if report.is_success() {
                log::info!("{summary}");
            } else {
                log::warn!("{summary}; rig-upload --all will try again");
            }
            summary
        }
        Err(e) => {
            let msg = format!("not offloaded: {e}; run rig-upload for {rec}");
            log::warn!("{msg}");
            msg
        }
    }
}

/// `rig-record --test`: records `--duration` (default 10 s) from the
/// configured source into a scratch directory under the storage root,
/// checks the result, and removes the scratch directory.
pub fn self_test(
    config: &Config,
    opts: &RecordOptions,
    stop: &AtomicBool,
) -> Result<SelfTest, RecordError> {
    let duration = check_duration(opts.duration_sec.unwrap_or(SELF_TEST_DURATION_SEC))?;
    check_storage(&config.node.storage_root)?;
    let scratch = tempfile::Builder::new()
        .prefix(SELF_TEST_DIR_PREFIX)
        .tempdir_in(&config.node.storage_root)
        .map_err(|e| {
            RecordError::new(
                "storage_not_writable",
                format!(
                    "{}: cannot make a scratch directory: {e}",
                    config.node.storage_root.display()
                ),
            )
        })?;
    let mut cfg = config.clone();
    cfg.node.storage_root = scratch.path().to_path_buf();
    cfg.offload.upload_on_record_stop = false;
    let session = SessionId::parse(&format!(
        "RIGTEST_{}",
        jiff::Zoned::now().strftime("%Y%m%d_%H%M%S")
    ))
    .map_err(|e| RecordError::new("capture_failed", e.to_string()))?;
    let test_opts = RecordOptions {
        session: Some(session),
        camera: opts.camera,
        duration_sec: Some(duration),
        source: opts.source.clone(),
        self_test: false,
    };
    let started = Instant::now();
    let recorded = match record(&cfg, &test_opts, stop) {
        Ok(r) => r,
        Err(e) if e.code == "invalid_config" => return Err(e),
        Err(e) => {
            let keeps_up = e.encoded.filter(|m| m.frames > 0).map(|mut m| {
                m.wall_sec = started.elapsed().as_secs_f64();
                let encoder = capture_settings(&cfg, Some(duration)).encoder_name();
                sustain::keeps_up(&cfg.recording, &encoder, &m)
            });
            return Ok(SelfTest::not_recorded(&e, keeps_up));
        }
    };
    let wall_sec = started.elapsed().as_secs_f64();
    Ok(SelfTest {
        checks: judge(&cfg, &recorded, duration, wall_sec),
    })
}

/// The self test's checks on a finished scratch recording.
fn judge(config: &Config, r: &Recorded, duration: f64, wall_sec: f64) -> Vec<Check> {
    let fps = config.recording.fps;
    let expected = (duration * f64::from(fps)).round() as u64;
    let mut checks = vec![
        Check {
            name: "frames written",
            pass: r.frames + 2 >= expected && r.frames > 0,
            detail: format!("{} frames, {expected} expected", r.frames),
        },
        Check {
            name: "dropped frames",
            pass: r.dropped_frames == 0,
            detail: format!("{} dropped", r.dropped_frames),
        },
    ];
    checks.push(match r.measured_fps {
        Some(m) => Check {
            name: "fps reached",
            pass: m >= 0.95 * f64::from(fps),
            detail: format!("{m:.2} fps sustained, {fps} configured"),
        },
        None => Check {
            name: "fps reached",
            pass: false,
            detail: "too few progress reports to measure".into(),
        },
    });
    let measured = sustain::Measured {
        measured_fps: r.measured_fps,
        frames: r.frames,
        dropped: r.dropped_frames,
        wall_sec,
    };
    let encoder = capture_settings(config, Some(duration)).encoder_name();
    checks.push(sustain::keeps_up(&config.recording, &encoder, &measured));
    let frame = 1.0 / f64::from(fps);
    checks.push(
        match ffmpeg::probe(&config.processing.ffprobe_path, &r.video_path) {
            Ok(p) => {
                let r_cfg = &config.recording;
                let ok = p.width == r_cfg.width
                    && p.height == r_cfg.height
                    && p.fps == fps
                    && p.codec == r_cfg.codec
                    && (p.duration_sec - duration).abs() <= 2.0 * frame + 1e-6;
                Check {
                    name: "file playable",
                    pass: ok,
                    detail: format!(
                        "{} {}x{} {} fps {:.3} s (configured {} {}x{} {fps} fps {duration} s)",
                        p.codec,
                        p.width,
                        p.height,
                        p.fps,
                        p.duration_sec,
                        r_cfg.codec,
                        r_cfg.width,
                        r_cfg.height
                    ),
                }
            }
            Err(e) => Check {
                name: "file playable",
                pass: false,
                detail: e.to_string(),
            },
        },
    );
    checks.push(match checksum::hash_file(&r.video_path) {
        Ok(d) => Check {
            name: "checksum ok",
            pass: d == r.digest && d.sha256 == r.manifest.checksum.value,
            detail: format!(
                "re-read {} bytes: {}, written: {}",
                d.size, d.sha256, r.manifest.checksum.value
            ),
        },
        Err(e) => Check {
            name: "checksum ok",
            pass: false,
            detail: e.to_string(),
        },
    });
    checks.push(match Manifest::read(&r.manifest_path) {
        Ok(_) => Check {
            name: "manifest valid",
            pass: r.problems.is_empty(),
            detail: if r.problems.is_empty() {
                r.manifest_path.display().to_string()
            } else {
                r.problems.join("; ")
            },
        },
        Err(e) => Check {
            name: "manifest valid",
            pass: false,
            detail: e.to_string(),
        },
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_rule() {
        // 30 Mbps for 90 minutes: 20.25 GB, plus 10 %.
        assert_eq!(required_free_bytes(30, Some(5400.0), 10.0), 22_275_000_000);
        assert_eq!(required_free_bytes(30, None, 10.0), 10_000_000_000);
    }

    #[test]
    fn source_specs() {
        assert_eq!(CaptureSource::parse("test"), Ok(CaptureSource::Test));
        assert_eq!(
            CaptureSource::parse("v4l2:/dev/video0"),
            Ok(CaptureSource::V4l2("/dev/video0".into()))
        );
        assert_eq!(
            CaptureSource::parse("cmd:rpicam-vid -o -"),
            Ok(CaptureSource::Cmd("rpicam-vid -o -".into()))
        );
        assert_eq!(
            CaptureSource::parse("cmd-yuv420p:rpicam-vid --codec yuv420 -o -"),
            Ok(CaptureSource::CmdRaw(
                "rpicam-vid --codec yuv420 -o -".into()
            ))
        );
        for bad in ["", "v4l2:", "cmd:  ", "rtsp://x", "TEST"] {
            let e = CaptureSource::parse(bad).unwrap_err();
            assert!(e.contains("v4l2:/dev/videoN"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn capture_args_fragment_and_gop() {
        let mut s = capture_settings(&Config::default(), Some(3.0));
        s.fps = 15;
        s.fragment_sec = 2.0;
        let args: Vec<String> = ffmpeg::capture_args(&CaptureSource::Test, &s)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("-g"), "30");
        assert_eq!(after("-frag_duration"), "2000000");
        assert_eq!(
            after("-movflags"),
            "+frag_keyframe+empty_moov+default_base_moof"
        );
        assert_eq!(after("-c:v"), "libx264");
        assert_eq!(after("-preset"), "ultrafast");
        assert_eq!(after("-t"), "3.000000");
        assert_eq!(after("-b:v"), "16M");
        assert_eq!(args.last().map(String::as_str), Some("pipe:1"));
        assert!(
            !args.contains(&"-nostdin".to_string()),
            "q on stdin stops it"
        );
    }

    #[test]
    fn progress_lines_are_told_from_errors() {
        assert!(is_progress_line("frame=12"));
        assert!(is_progress_line("stream_0_0_q=28.0"));
        assert!(!is_progress_line("[h264 @ 0x55] error=bad"));
        assert!(!is_progress_line("Conversion failed!"));
    }

    #[test]
    fn start_is_back_dated_by_frames_before_the_report() {
        let spawned: jiff::Timestamp = "2024-03-15T14:00:00Z".parse().unwrap();
        let wall: jiff::Timestamp = "2024-03-15T14:00:01Z".parse().unwrap();
        let m = Mark {
            at: Instant::now(),
            wall,
            frame: 4,
        };
        // frame 4 reported at 14:00:01 at 30 fps: frame 1 went in 0.1 s earlier.
        assert_eq!(
            start_time(Some(m), 30, spawned).to_string(),
            "2024-03-15T14:00:00.9Z"
        );
        // Never before ffmpeg started.
        let m = Mark { frame: 300, ..m };
        assert_eq!(start_time(Some(m), 30, spawned), spawned);
        assert_eq!(start_time(None, 30, spawned), spawned);
    }

    #[test]
    fn temperature_stats() {
        let mut t = TemperatureStats::default();
        assert_eq!((t.average(), t.max()), (None, None));
        t.add(None);
        t.add(Some(50.04));
        t.add(Some(60.0));
        assert_eq!((t.average(), t.max()), (Some(55.0), Some(60.0)));
    }

    #[test]
    fn pump_hashes_exactly_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        let file = File::create(&path).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let end = pump(&data[..], HashingWriter::new(file));
        assert!(end.error.is_none());
        let (_, digest) = end.writer.finish();
        assert_eq!(digest, checksum::hash_file(&path).unwrap());
        assert_eq!(digest.size, 3_000_000);
    }

    #[test]
    fn bad_duration_is_a_usage_error() {
        for d in [0.0, -1.0, f64::NAN, 1e9] {
            let e = check_duration(d).unwrap_err();
            assert_eq!(e.exit_code(), crate::base::cli::EXIT_USAGE);
            assert!(e.message.contains("--duration"));
        }
    }
}
