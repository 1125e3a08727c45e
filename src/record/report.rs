//! What rig-record reports: a finished [`Recorded`], or the self test's
//! [`SelfTest`] checks; both as `--json` and for people.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::RecordError;
use crate::base::checksum::FileDigest;
use crate::base::ids::RecordingId;
use crate::base::manifest::Manifest;

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

/// The self test's checks, in report order (see `selftest::judge`).
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

/// What [`run`](super::run) did.
#[derive(Debug, Clone)]
pub enum RecordReport {
    /// A match recording.
    Recorded(Box<Recorded>),
    /// The self test.
    SelfTest(SelfTest),
}

impl RecordReport {
    /// 0 when everything went right, else 1.
    pub fn exit_code(&self) -> u8 {
        let ok = match self {
            RecordReport::Recorded(r) => r.problems.is_empty(),
            RecordReport::SelfTest(t) => t.passed(),
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
            RecordReport::Recorded(r) => r.to_json(),
            RecordReport::SelfTest(t) => t.to_json(),
        }
    }

    /// The human form.
    pub fn human(&self) -> String {
        match self {
            RecordReport::Recorded(r) => r.human(),
            RecordReport::SelfTest(t) => t.human(),
        }
    }
}
