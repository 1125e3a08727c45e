//! What `rig-check server` reports, as JSON (`--json`) and, through
//! [`ServerReport::human`], for people.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::base::checksum::Sha256;
use crate::base::jobs::JobStatus;
use crate::check::Status;

/// The verdict on one recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// The file hashes to the stored digest and the manifest's checksum, and
    /// the manifest is valid.
    Ok,
    /// The digest or size disagrees with `recording.sha256` or the manifest.
    Mismatch,
    /// `recording.mp4` is missing (or not a regular file).
    MissingFile,
    /// `manifest.json` is missing, not JSON, invalid, or describes another recording.
    ManifestInvalid,
    /// `recording.sha256`, the digest stored at receive time, is missing or malformed.
    DigestMissing,
    /// `recording.mp4` exists but could not be read to the end.
    Unreadable,
}

impl RecordingStatus {
    /// As printed for people: `OK`, `MISMATCH`, `MISSING FILE`, ...
    pub fn label(self) -> &'static str {
        match self {
            RecordingStatus::Ok => "OK",
            RecordingStatus::Mismatch => "MISMATCH",
            RecordingStatus::MissingFile => "MISSING FILE",
            RecordingStatus::ManifestInvalid => "MANIFEST INVALID",
            RecordingStatus::DigestMissing => "DIGEST MISSING",
            RecordingStatus::Unreadable => "UNREADABLE",
        }
    }

    /// Which status wins when a recording has several problems: the one
    /// that says most about the bytes.
    pub(super) fn rank(self) -> u8 {
        match self {
            RecordingStatus::Ok => 0,
            RecordingStatus::DigestMissing => 1,
            RecordingStatus::ManifestInvalid => 2,
            RecordingStatus::Mismatch => 3,
            RecordingStatus::Unreadable => 4,
            RecordingStatus::MissingFile => 5,
        }
    }

    /// What to do about it.
    pub(super) fn fix(self) -> Option<&'static str> {
        match self {
            RecordingStatus::Ok => None,
            RecordingStatus::Mismatch => Some(
                "the stored copy differs from what was received: re-upload it from the node \
                 (rig-upload) if the node still has it, else restore it from a backup",
            ),
            RecordingStatus::MissingFile => {
                Some("re-upload the recording from its node (rig-upload)")
            }
            RecordingStatus::ManifestInvalid => Some(
                "fix the named fields, or re-upload with the node's manifest \
                 (rig-manifest validate shows every problem)",
            ),
            RecordingStatus::DigestMissing => Some(
                "the receive-time digest is gone: compare the manifest's checksum with the \
                 node's copy, or re-upload so rig-receive stores a new digest",
            ),
            RecordingStatus::Unreadable => {
                Some("check the disk and permissions (dmesg, ls -l), then re-run rig-check")
            }
        }
    }
}

/// One finding about a file or field: where (`checksum.value`,
/// `recording.sha256`, ...) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The manifest field path, or the file name the problem is about.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// One recording: `sessions/S/C/`.
#[derive(Debug, Clone, Serialize)]
pub struct RecordingReport {
    /// `CAM_L`, `CAM_C` or `CAM_R`.
    pub camera_id: String,
    /// The verdict.
    pub status: RecordingStatus,
    /// Path of `recording.mp4`.
    pub path: PathBuf,
    /// Size of `recording.mp4`, when present.
    pub size_bytes: Option<u64>,
    /// The manifest's `file.size_bytes`, when readable.
    pub manifest_size_bytes: Option<u64>,
    /// The digest computed now (null with `--quick` or when not hashed).
    pub sha256: Option<Sha256>,
    /// The digest in `recording.sha256`, stored at receive time.
    pub stored_sha256: Option<Sha256>,
    /// The manifest's `checksum.value`.
    pub manifest_sha256: Option<Sha256>,
    /// Every problem found, with its field path or file name.
    pub problems: Vec<Problem>,
    /// What to do when the status is not OK.
    pub fix: Option<String>,
}

/// A session-level finding.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    /// How bad it is.
    pub status: Status,
    /// What it is, and what to do.
    pub message: String,
}

/// `sessions/S/stitched/panorama.mp4`.
#[derive(Debug, Clone, Serialize)]
pub struct PanoramaReport {
    /// Whether the panorama exists as a regular file.
    pub present: bool,
    /// Its path.
    pub path: PathBuf,
    /// Its size, when present.
    pub size_bytes: Option<u64>,
}

/// The newest job of a session in `processing/jobs.json`.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// The job's ID.
    pub id: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: JobStatus,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// One session: `sessions/S/`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    /// The session ID.
    pub session_id: String,
    /// The worst finding of the session and its recordings.
    pub status: Status,
    /// All three cameras' directories are present.
    pub complete: bool,
    /// Cameras whose directory exists, left to right.
    pub cameras_present: Vec<String>,
    /// Cameras whose directory does not exist.
    pub cameras_missing: Vec<String>,
    /// The present cameras' recordings.
    pub recordings: Vec<RecordingReport>,
    /// The stitched panorama.
    pub panorama: PanoramaReport,
    /// The newest processing job for the session, if any.
    pub job: Option<JobReport>,
    /// Session-level findings (incompleteness, stitching state).
    pub notes: Vec<Note>,
}

/// Whether a leftover is a temp file or something else out of place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeftoverKind {
    /// In `temp/`, or named with [`crate::base::fsx::TEMP_PREFIX`]: a write in flight or
    /// interrupted by a crash.
    Temp,
    /// Anything else that is not part of the layout.
    Stray,
}

/// A file or directory that is not part of the layout.
#[derive(Debug, Clone, Serialize)]
pub struct Leftover {
    /// Its path.
    pub path: PathBuf,
    /// Temp or stray.
    pub kind: LeftoverKind,
    /// Whether it is a directory (its size is then the total of its files).
    pub is_dir: bool,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Last modification, RFC 3339 UTC, when known.
    pub modified: Option<String>,
    /// What to do about it.
    pub hint: String,
}

/// One partial of an interrupted upload (rig-receive's resume extension).
#[derive(Debug, Clone, Serialize)]
pub struct PartialReport {
    /// Its data file.
    pub path: PathBuf,
    /// `{session}_{camera}`.
    pub recording_id: String,
    /// Bytes kept, which a resume does not send again.
    pub received_bytes: u64,
    /// When it was last written, RFC 3339 UTC.
    pub updated_at: String,
    /// Hours since then.
    pub age_hours: f64,
}

/// `processing/jobs.json`.
#[derive(Debug, Clone, Serialize)]
pub struct QueueReport {
    /// The queue file.
    pub path: PathBuf,
    /// FAIL when the file cannot be read or parsed; WARN for jobs of
    /// sessions that are not on disk.
    pub status: Status,
    /// Whether the file exists (absent means nothing was ever queued).
    pub present: bool,
    /// Jobs per status: `queued`, `running`, `done`, `failed`.
    pub jobs: BTreeMap<String, u64>,
    /// Sessions with jobs but no directory under `sessions/`.
    pub orphans: Vec<String>,
    /// Why the file could not be read, if it could not.
    pub error: Option<String>,
}

/// Free space on the sessions filesystem.
#[derive(Debug, Clone, Serialize)]
pub struct StorageReport {
    /// The directory asked (sessions path, or its nearest existing ancestor).
    pub path: PathBuf,
    /// FAIL below `storage.min_free_space_gb` (uploads are refused), WARN
    /// below twice that.
    pub status: Status,
    /// Bytes available.
    pub free_bytes: Option<u64>,
    /// The same in decimal GB.
    pub free_gb: Option<f64>,
    /// The configured floor.
    pub min_free_space_gb: f64,
    /// The figure in words, and what to do when not PASS.
    pub message: String,
}

/// Counts over the whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Sessions checked.
    pub sessions: u64,
    /// Sessions with all three cameras.
    pub sessions_complete: u64,
    /// Recordings checked.
    pub recordings: u64,
    /// Recordings with status `ok`.
    pub recordings_ok: u64,
    /// Recordings per non-OK status (`mismatch`, `missing_file`, ...).
    pub recordings_not_ok: BTreeMap<String, u64>,
    /// Leftovers found.
    pub leftovers: u64,
    /// Bytes hashed (0 with `--quick`).
    pub bytes_hashed: u64,
    /// Wall-clock seconds the check took.
    pub elapsed_sec: f64,
}

/// The whole server audit.
#[derive(Debug, Clone, Serialize)]
pub struct ServerReport {
    /// Always `server`.
    pub check: &'static str,
    /// The worst finding.
    pub status: Status,
    /// When the check ran.
    pub checked_at: String,
    /// `full` (hashing) or `quick` (presence and sizes).
    pub mode: &'static str,
    /// The session checked with `--session`, else null.
    pub session_filter: Option<String>,
    /// The sessions directory.
    pub sessions_path: PathBuf,
    /// Counts.
    pub summary: Summary,
    /// Every session checked, sorted by ID.
    pub sessions: Vec<SessionReport>,
    /// Temp and stray files.
    pub leftovers: Vec<Leftover>,
    /// Partials of interrupted uploads in `temp/`, kept by rig-receive for
    /// a resume: expected, not problems.
    pub partials: Vec<PartialReport>,
    /// The processing queue.
    pub queue: QueueReport,
    /// Free space.
    pub storage: StorageReport,
    /// Directory entries that could not be read during the walk.
    pub walk_errors: Vec<Problem>,
}
