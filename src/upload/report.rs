//! What an offload did for one recording: the [`OffloadReport`] rig-upload
//! prints (a line for people, or a JSON object with `--json`).

use std::path::PathBuf;

use serde::Serialize;

use super::source::Source;
use crate::base::checksum::Sha256;
use crate::base::ids::RecordingId;
use crate::base::protocol;
use crate::base::units::human_bytes;

/// What happened to one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Uploaded and confirmed by this run.
    Offloaded,
    /// The state file already said offloaded; nothing was sent.
    AlreadyOffloaded,
    /// Given up; see the report's error and message.
    Failed,
    /// `--dry-run`: prepared, not sent.
    DryRun,
}

impl Outcome {
    /// The snake_case name used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Offloaded => "offloaded",
            Outcome::AlreadyOffloaded => "already_offloaded",
            Outcome::Failed => "failed",
            Outcome::DryRun => "dry_run",
        }
    }
}

/// The result for one recording, printed by rig-upload (one JSON object
/// each with `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct OffloadReport {
    /// True unless the outcome is [`Outcome::Failed`].
    pub success: bool,
    /// `{session_id}_{camera_id}`, or the manifest path when it has no valid ID.
    pub recording_id: String,
    /// What happened.
    pub status: Outcome,
    /// Upload attempts made by this run.
    pub attempts: u32,
    /// The local video file.
    pub file: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// Its offload state file.
    pub state_file: PathBuf,
    /// The server's base URL.
    pub server_url: String,
    /// Bytes of the recording, when known.
    pub file_size: Option<u64>,
    /// The checksum sent, when known.
    pub checksum: Option<Sha256>,
    /// The digest the server's confirm returned.
    pub server_checksum: Option<Sha256>,
    /// The local recording was deleted after a matching confirm.
    pub local_deleted: bool,
    /// Seconds this recording took, waits included.
    pub elapsed_sec: f64,
    /// Upload throughput of the last attempt that sent the file, bytes/s.
    pub bytes_per_sec: Option<f64>,
    /// The byte the last attempt that sent the file started at: 0 for a
    /// whole upload, else the bytes an interrupted upload left on the
    /// server, which were not sent again.
    pub resumed_from: u64,
    /// The report of a `--dry-run` (only written when true): nothing was
    /// sent or changed, whatever `status` says.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// A snake_case error code when failed (the server's, when it sent one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What went wrong and what to do, when failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl OffloadReport {
    /// The report of a run that has not got anywhere yet: failed, no
    /// attempt, nothing known but the files and the server.
    pub(super) fn starting(src: &Source, server_url: &str, dry_run: bool) -> OffloadReport {
        let label = src
            .expect
            .as_ref()
            .map_or_else(|| src.manifest.display().to_string(), ToString::to_string);
        OffloadReport {
            success: false,
            recording_id: label,
            status: Outcome::Failed,
            attempts: 0,
            file: src.video.clone(),
            manifest: src.manifest.clone(),
            state_file: src.state.clone(),
            server_url: server_url.to_string(),
            file_size: None,
            checksum: None,
            server_checksum: None,
            local_deleted: false,
            elapsed_sec: 0.0,
            bytes_per_sec: None,
            resumed_from: 0,
            dry_run,
            error: None,
            message: None,
        }
    }

    /// True when the recording is (now or already) offloaded, or a dry run.
    pub fn is_success(&self) -> bool {
        self.success
    }

    /// One line for humans: `ID offloaded (3 attempts, 12.3 MB in 1.2 s, 10.2 MB/s)`.
    pub fn summary(&self) -> String {
        let id = &self.recording_id;
        match self.status {
            Outcome::Offloaded => self.offloaded_summary(),
            Outcome::AlreadyOffloaded if self.dry_run => {
                format!("{id} already offloaded; nothing would be sent")
            }
            Outcome::AlreadyOffloaded => format!("{id} already offloaded"),
            Outcome::DryRun => self.dry_run_summary(),
            Outcome::Failed => format!(
                "{id} failed after {} attempt{}: {}",
                self.attempts,
                plural(self.attempts),
                self.message.as_deref().unwrap_or("unknown error")
            ),
        }
    }

    /// `ID offloaded (N attempts, SIZE at RATE/s, T s[, local copy deleted])`.
    fn offloaded_summary(&self) -> String {
        let mut s = format!(
            "{} offloaded ({} attempt{}",
            self.recording_id,
            self.attempts,
            plural(self.attempts)
        );
        if let (Some(size), Some(rate)) = (self.file_size, self.bytes_per_sec) {
            s.push_str(&format!(
                ", {} at {}/s",
                human_bytes(size),
                human_bytes(rate as u64)
            ));
        }
        s.push_str(&format!(", {:.1} s", self.elapsed_sec));
        if self.local_deleted {
            s.push_str(", local copy deleted");
        }
        s.push(')');
        s
    }

    /// What a real run would send: the request line and its form fields.
    fn dry_run_summary(&self) -> String {
        let id = &self.recording_id;
        let (session, camera) = RecordingId::parse(id).map_or_else(
            |_| ("?".to_string(), "?"),
            |r| (r.session.to_string(), r.camera.as_str()),
        );
        format!(
            "{id} would be sent: POST {}{} session_id={session} camera_id={camera} \
             checksum={} manifest={} file={} ({} bytes)",
            self.server_url,
            protocol::UPLOAD_PATH,
            self.checksum
                .map_or_else(|| "?".to_string(), |d| d.to_string()),
            self.manifest.display(),
            self.file.display(),
            self.file_size.unwrap_or(0),
        )
    }
}

pub(super) fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}
