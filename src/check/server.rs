//! `rig-check server`: audits a server's storage.
//!
//! The walk (walkdir, sorted, never following symlinks) finds sessions,
//! cameras and everything that is not in the layout. Each recording's small
//! files (manifest, receive-time digest) are read first, serially; then every
//! `recording.mp4` is hashed once, in parallel on rayon's pool, and the digest
//! is compared with both `recording.sha256` and the manifest's
//! `checksum.value`. Paths come from [`ServerLayout`]; the walk only decides
//! which sessions and cameras exist and what is left over.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use walkdir::WalkDir;

use super::{CheckError, HashJob, Status, hash_all};
use crate::base::checksum::{FileDigest, Sha256};
use crate::base::config::{GB, StorageConfig};
use crate::base::fsx;
use crate::base::ids::{CameraId, SessionId};
use crate::base::jobs::{Job, JobQueue, JobStatus};
use crate::base::layout::{ServerLayout, parse_digest_line};
use crate::base::manifest::validate_value;
use crate::base::units::human_bytes;

/// A session directory may hold this thumbnail besides the camera and
/// `stitched/` directories.
pub const THUMBNAIL: &str = "thumb.jpg";

/// Largest `manifest.json` read (the largest rig-receive accepts); anything
/// bigger is not a manifest.
const MAX_MANIFEST_BYTES: u64 = crate::receive::upload::MAX_MANIFEST_BYTES as u64;
/// Largest `recording.sha256` read.
const MAX_DIGEST_BYTES: u64 = 4096;

/// What `rig-check server` should do.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Check only this session (`--session`). Temp files, the queue and free
    /// space are still checked. By default every session is checked.
    pub session: Option<SessionId>,
    /// Check presence and sizes only, no hashing (`--quick`). Off by default.
    pub quick: bool,
    /// Draw a progress line on stderr while hashing (the binary sets this
    /// when stderr is a terminal).
    pub progress: bool,
}

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
    fn rank(self) -> u8 {
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
    fn fix(self) -> Option<&'static str> {
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
    /// In `temp/`, or named with [`fsx::TEMP_PREFIX`]: a write in flight or
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

fn partial_reports(layout: &ServerLayout) -> Vec<PartialReport> {
    let store = crate::receive::partial::PartialStore::in_dir(layout.temp_dir());
    let now = jiff::Timestamp::now();
    let mut out: Vec<PartialReport> = store
        .list()
        .into_iter()
        .map(|(path, info)| {
            let age_hours = info
                .updated_at
                .parse::<jiff::Timestamp>()
                .map(|t| ((now.as_second() - t.as_second()) as f64 / 360.0).round() / 10.0)
                .unwrap_or(0.0);
            PartialReport {
                path,
                recording_id: format!("{}_{}", info.session_id, info.camera_id),
                received_bytes: info.received_bytes,
                updated_at: info.updated_at,
                age_hours,
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
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

/// What the walk found.
#[derive(Default)]
struct Walk {
    sessions: BTreeMap<SessionId, BTreeSet<CameraId>>,
    leftovers: Vec<Leftover>,
    errors: Vec<Problem>,
}

/// Audits the server storage described by `storage`.
///
/// Fails (a usage/config error) only when `sessions_path` does not exist or
/// is not a directory; every other problem is a finding in the report.
pub fn check_server(
    storage: &StorageConfig,
    opts: &ServerOptions,
) -> Result<ServerReport, CheckError> {
    let started = Instant::now();
    let layout = ServerLayout::from_config(storage);
    match fs::metadata(&layout.sessions) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(CheckError::Setup(format!(
                "{} is not a directory; check storage.sessions_path or --root",
                layout.sessions.display()
            )));
        }
        Err(e) => {
            return Err(CheckError::Setup(format!(
                "sessions directory {}: {e}; check storage.sessions_path or --root",
                layout.sessions.display()
            )));
        }
    }

    let mut walk = walk_sessions(&layout, opts.session.as_ref());
    if let Some(id) = &opts.session {
        walk.sessions.entry(id.clone()).or_default();
    }
    walk.leftovers
        .extend(temp_leftovers(&layout, &mut walk.errors));

    let queue_file = JobQueue::new(&layout).load();

    // Inspect the small files of every recording, then hash all at once.
    let mut pending: Vec<(SessionId, Vec<Inspected>)> = Vec::new();
    for (session, cameras) in &walk.sessions {
        let recs = cameras
            .iter()
            .map(|&camera| inspect(&layout, session, camera, opts.quick))
            .collect();
        pending.push((session.clone(), recs));
    }
    let jobs: Vec<HashJob> = pending
        .iter()
        .flat_map(|(_, recs)| recs.iter())
        .filter(|r| r.hash)
        .map(|r| HashJob {
            path: r.report.path.clone(),
            size: r.report.size_bytes.unwrap_or(0),
        })
        .collect();
    let bytes_hashed = jobs.iter().map(|j| j.size).sum();
    let mut digests = hash_all(&jobs, opts.progress).into_iter();

    let mut sessions = Vec::new();
    for (session, recs) in pending {
        let mut reports = Vec::new();
        for mut rec in recs {
            if rec.hash {
                match digests.next() {
                    Some(result) => rec.compare(result),
                    None => rec.flag(
                        RecordingStatus::Unreadable,
                        "recording.mp4",
                        "was not hashed (internal error); re-run rig-check".into(),
                    ),
                }
            }
            reports.push(rec.finish());
        }
        let job = match &queue_file {
            Ok(file) => latest_job(&file.jobs, &session),
            Err(_) => None,
        };
        sessions.push(session_report(
            &layout,
            &session,
            &walk.sessions[&session],
            reports,
            job,
        ));
    }

    let queue = queue_report(&layout, queue_file, &walk.sessions, opts.session.is_some());
    let storage_report = storage_report(&layout, storage.min_free_space_gb);

    let mut status = queue.status.worst(storage_report.status);
    for s in &sessions {
        status = status.worst(s.status);
    }
    if !walk.leftovers.is_empty() {
        status = status.worst(Status::Warn);
    }
    if !walk.errors.is_empty() {
        status = status.worst(Status::Fail);
    }

    let mut not_ok = BTreeMap::new();
    let mut recordings = 0;
    let mut recordings_ok = 0;
    for r in sessions.iter().flat_map(|s| &s.recordings) {
        recordings += 1;
        if r.status == RecordingStatus::Ok {
            recordings_ok += 1;
        } else {
            let key = serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *not_ok.entry(key).or_insert(0) += 1;
        }
    }
    let summary = Summary {
        sessions: sessions.len() as u64,
        sessions_complete: sessions.iter().filter(|s| s.complete).count() as u64,
        recordings,
        recordings_ok,
        recordings_not_ok: not_ok,
        leftovers: walk.leftovers.len() as u64,
        bytes_hashed,
        elapsed_sec: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    };

    Ok(ServerReport {
        check: "server",
        status,
        checked_at: super::now_rfc3339(),
        mode: if opts.quick { "quick" } else { "full" },
        session_filter: opts.session.as_ref().map(ToString::to_string),
        sessions_path: layout.sessions.clone(),
        summary,
        sessions,
        leftovers: walk.leftovers,
        partials: partial_reports(&layout),
        queue,
        storage: storage_report,
        walk_errors: walk.errors,
    })
}

/// Walks `sessions/` three levels deep, sorting entries by name.
fn walk_sessions(layout: &ServerLayout, only: Option<&SessionId>) -> Walk {
    let mut walk = Walk::default();
    let mut it = WalkDir::new(&layout.sessions)
        .min_depth(1)
        .max_depth(3)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = it.next() {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e.path().map(Path::to_path_buf).unwrap_or_default();
                walk.errors.push(Problem {
                    field: path.display().to_string(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type();
        // Components under sessions/: [session, camera-or-stitched, file].
        let parts: Vec<String> = entry
            .path()
            .strip_prefix(&layout.sessions)
            .map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let expected = match entry.depth() {
            1 => {
                let id = SessionId::parse(&name).ok().filter(|_| ft.is_dir());
                if let Some(only) = only
                    && id.as_ref() != Some(only)
                {
                    if ft.is_dir() {
                        it.skip_current_dir();
                    }
                    continue;
                }
                match id {
                    Some(id) => {
                        walk.sessions.entry(id).or_default();
                        true
                    }
                    None => false,
                }
            }
            2 => {
                let session = parts.first().and_then(|s| SessionId::parse(s).ok());
                match (CameraId::parse(&name), session) {
                    (Ok(camera), Some(session)) if ft.is_dir() => {
                        walk.sessions.entry(session).or_default().insert(camera);
                        true
                    }
                    _ => (ft.is_dir() && name == "stitched") || (ft.is_file() && name == THUMBNAIL),
                }
            }
            _ => {
                let parent = parts.get(1).map(String::as_str).unwrap_or_default();
                let allowed: &[&str] = if CameraId::parse(parent).is_ok() {
                    &crate::base::layout::SERVER_CAMERA_FILES
                } else {
                    &["panorama.mp4"]
                };
                ft.is_file() && allowed.contains(&name.as_str())
            }
        };
        if !expected {
            if ft.is_dir() {
                it.skip_current_dir();
            }
            walk.leftovers.push(leftover(entry.path(), &name, None));
        }
    }
    walk
}

/// What `processing/` may hold besides [`fsx::TEMP_PREFIX`] files: the
/// queue, its lock and rig-stitch's lock. Anything else there is read by
/// nothing, so it is reported as a stray.
fn processing_allows(layout: &ServerLayout, path: &Path) -> bool {
    [layout.jobs_file(), layout.jobs_lock(), layout.stitch_lock()]
        .iter()
        .any(|p| p == path)
        // A sessions or temp directory configured inside processing/ is
        // not a stray; it is walked on its own.
        || path == layout.sessions
        || path == layout.temp
}

/// What to do about a stray in `processing/`.
const PROCESSING_STRAY_HINT: &str = "not part of the processing layout (jobs.json, jobs.lock, \
                                     stitch.lock) and read by nothing: move it out of \
                                     processing/";

/// Everything in `temp/` but partials; in `processing/`, [`fsx::TEMP_PREFIX`]
/// files and anything [`processing_allows`] does not.
fn temp_leftovers(layout: &ServerLayout, errors: &mut Vec<Problem>) -> Vec<Leftover> {
    let mut out = Vec::new();
    for (dir, all) in [
        (layout.temp_dir(), true),
        (layout.processing.as_path(), false),
    ] {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(Problem {
                    field: dir.display().to_string(),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for path in names {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if all && name.starts_with(crate::receive::partial::PARTIAL_PREFIX) {
                // A partial kept for a resume: reported apart, not a leftover.
                continue;
            }
            if all || name.starts_with(fsx::TEMP_PREFIX) {
                let hint = all.then_some(
                    "an upload in flight, or left by a crash: remove it once rig-receive \
                     is idle (no upload running)",
                );
                out.push(leftover(&path, &name, hint));
            } else if !processing_allows(layout, &path) {
                let mut stray = leftover(&path, &name, None);
                stray.hint = PROCESSING_STRAY_HINT.to_string();
                out.push(stray);
            }
        }
    }
    out
}

/// Describes one leftover, summing a directory's files.
fn leftover(path: &Path, name: &str, hint: Option<&str>) -> Leftover {
    let meta = fs::symlink_metadata(path).ok();
    let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
    let size_bytes = if is_dir {
        WalkDir::new(path)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    } else {
        meta.as_ref().map_or(0, |m| m.len())
    };
    let modified = meta
        .and_then(|m| m.modified().ok())
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(crate::base::manifest::format_time);
    let temp = hint.is_some() || name.starts_with(fsx::TEMP_PREFIX);
    let hint = match hint {
        Some(h) => h.to_string(),
        None if temp => "a write interrupted by a crash (or in progress right now): remove it \
                         once no rig-* program is writing there"
            .to_string(),
        None => "not part of the layout and read by nothing: move it out of the sessions \
                 directory"
            .to_string(),
    };
    Leftover {
        path: path.to_path_buf(),
        kind: if temp {
            LeftoverKind::Temp
        } else {
            LeftoverKind::Stray
        },
        is_dir,
        size_bytes,
        modified,
        hint,
    }
}

/// A recording whose small files have been read, waiting for its digest.
struct Inspected {
    report: RecordingReport,
    hash: bool,
    worst: RecordingStatus,
}

impl Inspected {
    fn flag(&mut self, status: RecordingStatus, field: &str, message: String) {
        if status.rank() > self.worst.rank() {
            self.worst = status;
        }
        self.report.problems.push(Problem {
            field: field.to_string(),
            message,
        });
    }

    /// Compares a fresh digest with the stored one and the manifest's.
    fn compare(&mut self, result: io::Result<FileDigest>) {
        let digest = match result {
            Ok(d) => d,
            Err(e) => {
                self.flag(RecordingStatus::Unreadable, "recording.mp4", e.to_string());
                return;
            }
        };
        if Some(digest.size) != self.report.size_bytes {
            self.flag(
                RecordingStatus::Mismatch,
                "recording.mp4",
                format!(
                    "changed while being checked ({} bytes read, {} at start); re-run rig-check",
                    digest.size,
                    self.report.size_bytes.unwrap_or(0)
                ),
            );
        }
        if let Some(stored) = self.report.stored_sha256
            && stored != digest.sha256
        {
            self.flag(
                RecordingStatus::Mismatch,
                "recording.sha256",
                format!(
                    "recording.mp4 hashes to {}, but the digest stored at receive time is {stored}",
                    digest.sha256
                ),
            );
        }
        if let Some(expected) = self.report.manifest_sha256
            && expected != digest.sha256
        {
            self.flag(
                RecordingStatus::Mismatch,
                "checksum.value",
                format!(
                    "recording.mp4 hashes to {}, but the manifest says {expected}",
                    digest.sha256
                ),
            );
        }
        self.report.sha256 = Some(digest.sha256);
    }

    fn finish(mut self) -> RecordingReport {
        self.report.status = self.worst;
        self.report.fix = self.worst.fix().map(str::to_string);
        self.report
    }
}

/// Reads a small file, refusing anything larger than `max` bytes.
fn read_small(path: &Path, max: u64) -> io::Result<String> {
    let meta = fs::metadata(path)?;
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "is {} bytes, more than the {max} a valid file has",
                meta.len()
            ),
        ));
    }
    fs::read_to_string(path)
}

/// Reads a recording's manifest and digest and stats its file.
fn inspect(layout: &ServerLayout, session: &SessionId, camera: CameraId, quick: bool) -> Inspected {
    let path = layout.recording(session, camera);
    let mut rec = Inspected {
        report: RecordingReport {
            camera_id: camera.to_string(),
            status: RecordingStatus::Ok,
            path: path.clone(),
            size_bytes: None,
            manifest_size_bytes: None,
            sha256: None,
            stored_sha256: None,
            manifest_sha256: None,
            problems: Vec::new(),
            fix: None,
        },
        hash: false,
        worst: RecordingStatus::Ok,
    };

    // recording.mp4
    match fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => rec.report.size_bytes = Some(m.len()),
        Ok(_) => rec.flag(
            RecordingStatus::MissingFile,
            "recording.mp4",
            "is not a regular file".into(),
        ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => rec.flag(
            RecordingStatus::MissingFile,
            "recording.mp4",
            "is missing".into(),
        ),
        Err(e) => rec.flag(RecordingStatus::Unreadable, "recording.mp4", e.to_string()),
    }

    // recording.sha256
    match read_small(&layout.digest(session, camera), MAX_DIGEST_BYTES) {
        Ok(text) => match parse_digest_line(&text) {
            Some(d) => rec.report.stored_sha256 = Some(d),
            None => rec.flag(
                RecordingStatus::DigestMissing,
                "recording.sha256",
                "is not a sha256sum line (64 lowercase hex digits, two spaces, recording.mp4)"
                    .into(),
            ),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => rec.flag(
            RecordingStatus::DigestMissing,
            "recording.sha256",
            "is missing: the digest computed at receive time is gone".into(),
        ),
        Err(e) => rec.flag(
            RecordingStatus::DigestMissing,
            "recording.sha256",
            e.to_string(),
        ),
    }

    // manifest.json
    match read_small(&layout.manifest(session, camera), MAX_MANIFEST_BYTES) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(value) => check_manifest(&mut rec, &value, session, camera),
            Err(e) => rec.flag(
                RecordingStatus::ManifestInvalid,
                "manifest.json",
                format!("is not valid JSON: {e}"),
            ),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => rec.flag(
            RecordingStatus::ManifestInvalid,
            "manifest.json",
            "is missing".into(),
        ),
        Err(e) => rec.flag(
            RecordingStatus::ManifestInvalid,
            "manifest.json",
            e.to_string(),
        ),
    }

    // Sizes are compared in both modes; hashing only in full mode.
    if let (Some(size), Some(want)) = (rec.report.size_bytes, rec.report.manifest_size_bytes)
        && size != want
    {
        rec.flag(
            RecordingStatus::Mismatch,
            "file.size_bytes",
            format!("the manifest says {want} bytes, recording.mp4 has {size}"),
        );
    }
    rec.hash = !quick && rec.report.size_bytes.is_some();
    rec
}

/// Validates a manifest document and checks it describes this recording.
fn check_manifest(rec: &mut Inspected, value: &Value, session: &SessionId, camera: CameraId) {
    for p in validate_value(value) {
        rec.flag(RecordingStatus::ManifestInvalid, &p.field, p.message);
    }
    let at = |path: &str| {
        path.split('.')
            .try_fold(value, |v, key| v.as_object()?.get(key))
    };
    for (field, want) in [
        ("recording.session_id", session.as_str()),
        ("recording.camera_id", camera.as_str()),
    ] {
        if let Some(got) = at(field).and_then(Value::as_str)
            && got != want
        {
            rec.flag(
                RecordingStatus::ManifestInvalid,
                field,
                format!(
                    "is {got:?}, but the manifest is stored under {}/{} (expected {want:?})",
                    session,
                    camera.as_str()
                ),
            );
        }
    }
    rec.report.manifest_sha256 = at("checksum.value")
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<Sha256>().ok());
    rec.report.manifest_size_bytes = at("file.size_bytes").and_then(Value::as_u64);
}

/// The newest job for `session`.
fn latest_job(jobs: &[Job], session: &SessionId) -> Option<JobReport> {
    jobs.iter()
        .rev()
        .find(|j| j.session_id == session.as_str())
        .map(|j| JobReport {
            id: j.id.clone(),
            status: j.status,
            error: j.error.clone(),
        })
}

/// Puts a session's findings together.
fn session_report(
    layout: &ServerLayout,
    session: &SessionId,
    cameras: &BTreeSet<CameraId>,
    recordings: Vec<RecordingReport>,
    job: Option<JobReport>,
) -> SessionReport {
    let present: Vec<String> = CameraId::ALL
        .iter()
        .filter(|c| cameras.contains(c))
        .map(ToString::to_string)
        .collect();
    let missing: Vec<String> = CameraId::ALL
        .iter()
        .filter(|c| !cameras.contains(c))
        .map(ToString::to_string)
        .collect();
    let pano_path = layout.panorama(session);
    let pano_size = fs::symlink_metadata(&pano_path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let panorama = PanoramaReport {
        present: pano_size.is_some(),
        path: pano_path,
        size_bytes: pano_size,
    };

    let mut notes = Vec::new();
    let mut note = |status: Status, message: String| notes.push(Note { status, message });
    let bad = recordings
        .iter()
        .filter(|r| r.status != RecordingStatus::Ok)
        .count();
    if bad > 0 {
        note(
            Status::Fail,
            format!("{bad} of {} recordings not OK", recordings.len()),
        );
    }
    if present.is_empty() {
        note(
            Status::Fail,
            format!("no such session under {}", layout.sessions.display()),
        );
    } else if !missing.is_empty() {
        note(
            Status::Fail,
            format!(
                "incomplete: {} missing; upload from {} (rig-upload on that node)",
                missing.join(", "),
                if missing.len() == 1 {
                    "that camera"
                } else {
                    "those cameras"
                }
            ),
        );
    }
    let complete = missing.is_empty();
    match (&job, panorama.size_bytes) {
        (Some(j), None) if j.status == JobStatus::Done => note(
            Status::Fail,
            format!(
                "job {} is done but the panorama is missing; queue the session again (rig-stitch)",
                j.id
            ),
        ),
        (Some(j), None) if j.status == JobStatus::Failed => note(
            Status::Warn,
            format!(
                "stitching failed ({}); fix the cause and run rig-stitch again",
                j.error.as_deref().unwrap_or("no reason recorded")
            ),
        ),
        (None, None) if complete && bad == 0 => note(
            Status::Warn,
            "complete but not queued for stitching; queue it with rig-stitch".to_string(),
        ),
        (_, Some(0)) => note(
            Status::Warn,
            "the panorama is empty (0 bytes); stitch the session again".to_string(),
        ),
        _ => {}
    }
    let status = notes
        .iter()
        .fold(Status::Pass, |acc, n| acc.worst(n.status));
    SessionReport {
        session_id: session.to_string(),
        status,
        complete,
        cameras_present: present,
        cameras_missing: missing,
        recordings,
        panorama,
        job,
        notes,
    }
}

/// Summarises the queue file.
fn queue_report(
    layout: &ServerLayout,
    file: Result<crate::base::jobs::JobsFile, crate::base::jobs::JobsError>,
    sessions: &BTreeMap<SessionId, BTreeSet<CameraId>>,
    filtered: bool,
) -> QueueReport {
    let path = layout.jobs_file();
    let present = path.exists();
    let mut jobs: BTreeMap<String, u64> = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Failed,
    ]
    .iter()
    .map(|s| (s.as_str().to_string(), 0))
    .collect();
    match file {
        Ok(file) => {
            let mut orphans = BTreeSet::new();
            for j in &file.jobs {
                *jobs.entry(j.status.as_str().to_string()).or_insert(0) += 1;
                let on_disk = SessionId::parse(&j.session_id)
                    .map(|id| sessions.contains_key(&id) || layout.session_dir(&id).is_dir())
                    .unwrap_or(false);
                if !filtered && !on_disk {
                    orphans.insert(j.session_id.clone());
                }
            }
            QueueReport {
                path,
                status: if orphans.is_empty() {
                    Status::Pass
                } else {
                    Status::Warn
                },
                present,
                jobs,
                orphans: orphans.into_iter().collect(),
                error: None,
            }
        }
        Err(e) => QueueReport {
            path,
            status: Status::Fail,
            present,
            jobs,
            orphans: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// Free space against the floor.
fn storage_report(layout: &ServerLayout, min_gb: f64) -> StorageReport {
    let path = fsx::existing_ancestor(&layout.sessions).to_path_buf();
    match fsx::free_space(&path) {
        Ok(free) => {
            let free_gb = free as f64 / GB;
            let (status, advice) = if free_gb < min_gb {
                (
                    Status::Fail,
                    "; below storage.min_free_space_gb, so rig-receive refuses uploads: \
                     move finished sessions off this disk",
                )
            } else if free_gb < 2.0 * min_gb {
                (
                    Status::Warn,
                    "; less than twice the floor: move finished sessions off this disk soon",
                )
            } else {
                (Status::Pass, "")
            };
            StorageReport {
                message: format!(
                    "{free_gb:.1} GB free on {} (floor {min_gb:.1} GB){advice}",
                    path.display()
                ),
                path,
                status,
                free_bytes: Some(free),
                free_gb: Some((free_gb * 1000.0).round() / 1000.0),
                min_free_space_gb: min_gb,
            }
        }
        Err(e) => StorageReport {
            message: format!("cannot tell free space: {e}"),
            path,
            status: Status::Fail,
            free_bytes: None,
            free_gb: None,
            min_free_space_gb: min_gb,
        },
    }
}

impl ServerReport {
    /// The report for people: one block per session, then leftovers, queue,
    /// storage and a one-line verdict.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let s = &self.summary;
        let _ = writeln!(
            out,
            "rig-check server: {} ({} check{}): {} sessions, {} recordings, {} hashed in {:.1} s",
            self.sessions_path.display(),
            self.mode,
            self.session_filter
                .as_deref()
                .map(|f| format!(", session {f}"))
                .unwrap_or_default(),
            s.sessions,
            s.recordings,
            human_bytes(s.bytes_hashed),
            s.elapsed_sec
        );
        for session in &self.sessions {
            let pano = match session.panorama.size_bytes {
                Some(n) => format!("panorama {}", human_bytes(n)),
                None => "no panorama".to_string(),
            };
            let job = match &session.job {
                Some(j) => format!("job {} {}", j.id, j.status),
                None => "no job".to_string(),
            };
            let cams = if session.complete {
                format!("complete ({})", session.cameras_present.join(" "))
            } else {
                format!("INCOMPLETE, missing {}", session.cameras_missing.join(" "))
            };
            let _ = writeln!(
                out,
                "\n{}  {}  {cams}; {pano}; {job}",
                session.status, session.session_id
            );
            for r in &session.recordings {
                let size = r.size_bytes.map(human_bytes).unwrap_or_else(|| "-".into());
                let digest = r
                    .sha256
                    .map(|d| format!("  sha256 {}", &d.to_string()[..16]))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "  {}  {:<16}  {size:>10}{digest}",
                    r.camera_id,
                    r.status.label()
                );
                for p in &r.problems {
                    let _ = writeln!(out, "      {}: {}", p.field, p.message);
                }
                if let Some(fix) = &r.fix {
                    let _ = writeln!(out, "      fix: {fix}");
                }
            }
            for n in &session.notes {
                let _ = writeln!(out, "  {}  {}", n.status, n.message);
            }
        }
        if !self.partials.is_empty() {
            let _ = writeln!(
                out,
                "\npartials of interrupted uploads, kept for a resume ({}):",
                self.partials.len()
            );
            for p in &self.partials {
                let _ = writeln!(
                    out,
                    "  OK    {} partial, {} bytes, age {:.1} h",
                    p.recording_id, p.received_bytes, p.age_hours
                );
            }
        }
        if !self.leftovers.is_empty() {
            let _ = writeln!(out, "\nleftovers ({}):", self.leftovers.len());
            for l in &self.leftovers {
                let kind = match l.kind {
                    LeftoverKind::Temp => "temp",
                    LeftoverKind::Stray => "stray",
                };
                let _ = writeln!(
                    out,
                    "  WARN  {kind:<5} {}{} ({}{}): {}",
                    l.path.display(),
                    if l.is_dir { "/" } else { "" },
                    human_bytes(l.size_bytes),
                    l.modified
                        .as_deref()
                        .map(|m| format!(", modified {m}"))
                        .unwrap_or_default(),
                    l.hint
                );
            }
        }
        for e in &self.walk_errors {
            let _ = writeln!(out, "  FAIL  cannot read {}: {}", e.field, e.message);
        }
        let q = &self.queue;
        let queue_text = match &q.error {
            Some(e) => e.clone(),
            None if !q.present => "absent (nothing queued yet)".to_string(),
            None => q
                .jobs
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "\n{}  queue    {}: {queue_text}",
            q.status,
            q.path.display()
        );
        if !q.orphans.is_empty() {
            let _ = writeln!(
                out,
                "      jobs for sessions not on disk: {}",
                q.orphans.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "{}  storage  {}",
            self.storage.status, self.storage.message
        );
        let _ = writeln!(out, "\n{}", self.verdict());
        out
    }

    /// The last line: status and what it rests on.
    fn verdict(&self) -> String {
        let s = &self.summary;
        let mut parts = vec![format!(
            "{} of {} recordings OK",
            s.recordings_ok, s.recordings
        )];
        for (k, v) in &s.recordings_not_ok {
            parts.push(format!("{v} {}", k.replace('_', " ")));
        }
        let incomplete = s.sessions - s.sessions_complete;
        if incomplete > 0 {
            parts.push(format!("{incomplete} incomplete session(s)"));
        }
        if s.leftovers > 0 {
            parts.push(format!("{} leftover(s)", s.leftovers));
        }
        format!("{}: {}", self.status, parts.join(", "))
    }
}
