//! The offload client: PROTOCOL.md's upload flow, its retry table, and the
//! Pi's offload state, for `rig-upload` and `rig-record`.
//!
//! # The flow (PROTOCOL.md "Upload Flow", steps 1-7)
//!
//! 1. The checksum comes from the manifest, hashed while the recording was
//!    written. It is computed here only when the manifest has none, or with
//!    [`OffloadOptions::rehash`], which also refuses to send a file whose
//!    bytes no longer match its manifest.
//! 2. `POST /api/v1/upload`, `multipart/form-data` with the fields in the
//!    order `session_id`, `camera_id`, `checksum`, `manifest`, `file`. The
//!    body is streamed from disk with an exact `Content-Length`; memory does
//!    not grow with file size. The request carries `Expect: 100-continue`,
//!    so a refusal made at the headers (401 no key, 403 not allowed, 413 too
//!    large, 503 shutting down) arrives before a byte of the file is sent:
//!    rig-receive stops reading a refused body after 1 MiB and closes, and
//!    without `Expect` ureq would see only that reset, retry it, and lose the
//!    server's message. A server that ignores `Expect` costs one second
//!    (ureq's `timeout_await_100`), then the body goes anyway.
//! 3. `POST /api/v1/upload/confirm` asks for the digest the server computed
//!    while receiving.
//! 4. The two digests are compared (unless `offload.verify_checksum` is
//!    false); on a match the recording is marked offloaded and, only then and
//!    only if asked, the local file is deleted.
//!
//! # Retries (PROTOCOL.md "Retry Logic")
//!
//! Attempt 1 runs at once; attempt `n > 1` waits `retry_delay_sec *
//! 2^(n-2)` (5, 10, 20, 40 s by default), up to `retry_count` attempts, then
//! the recording is failed. Retried: network timeouts, refused or reset
//! connections, 5xx, the server's 422 `checksum_mismatch`, a confirm digest
//! that differs from ours, 408 (the server's own "network timeout") and 409
//! `upload_in_progress`: after a Wi-Fi drop the server holds the recording
//! as in flight until its stall timeout (`server.stall_timeout_sec`, 60 s by
//! default) while we retry at once, so the claim is usually our own dead
//! attempt's and the backoff outlasts it. Never retried: any other 4xx
//! (other 409s included), a missing file, an invalid manifest, a file that
//! no longer matches its manifest. Every attempt and every wait is logged
//! with its reason.
//!
//! When an upload was accepted but its confirm failed on the network, the
//! next attempt only repeats the confirm: a 20 GB file is not sent twice
//! because a 200-byte request timed out. A run that finds a state left at
//! `uploading` or `failed` by an earlier run first asks confirm whether the
//! server already holds these exact bytes (a crash between the server's
//! reply and our state write), and then skips the upload.
//!
//! # State
//!
//! Each recording's [`OffloadState`] lives beside its manifest
//! ([`crate::base::layout::PiLayout::offload_state`], `S_C.offload.json`), written
//! atomically, so a reboot or a second run knows what is done. One
//! `rig-upload` at a time holds [`crate::base::layout::PiLayout::upload_lock`].
//!
//! ```no_run
//! use soccer_rig::upload::{self, OffloadOptions};
//! use soccer_rig::base::config::Config;
//! use soccer_rig::base::ids::RecordingId;
//!
//! let config = Config::load(None)?;
//! let rec = RecordingId::parse("GAME_20240315_140000_CAM_C")?;
//! let report = client::offload_recording(&config, &rec, &OffloadOptions::default())?;
//! assert!(report.is_success(), "{:?}", report.message);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::fs::{self, File};
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::base::checksum;
use crate::base::checksum::Sha256;
use crate::base::config::{Config, OffloadConfig};
use crate::base::fsx::{self, LockFile};
use crate::base::ids::RecordingId;
use crate::base::layout::PiLayout;
use crate::base::manifest::{self, Manifest};
use crate::base::protocol::{self, ConfirmRequest};
use crate::base::replies::{self, UploadReply};
use crate::base::units::human_bytes;

/// Where an offload stands, as the state file's `"status"` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffloadStatus {
    /// Not tried yet (also what a missing state file means).
    Pending,
    /// An upload is under way, or a run died during one.
    Uploading,
    /// The server holds the recording; the confirm digest matched ours
    /// (or was not compared, with `verify_checksum: false`).
    Offloaded,
    /// The last run gave up; `last_error` says why. `--all` tries again.
    Failed,
}

impl OffloadStatus {
    /// `pending`, `uploading`, `offloaded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OffloadStatus::Pending => "pending",
            OffloadStatus::Uploading => "uploading",
            OffloadStatus::Offloaded => "offloaded",
            OffloadStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for OffloadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The offload state file of one recording (`S_C.offload.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffloadState {
    /// `{session_id}_{camera_id}`.
    pub recording_id: String,
    /// Where the offload stands.
    pub status: OffloadStatus,
    /// Attempts made by the latest run (the first included).
    pub attempts: u32,
    /// Why the latest attempt failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The server the latest run talked to.
    #[serde(default)]
    pub server_url: Option<String>,
    /// The SHA-256 we sent (from the manifest, or computed).
    #[serde(default)]
    pub checksum: Option<Sha256>,
    /// The SHA-256 the server's confirm returned.
    #[serde(default)]
    pub server_checksum: Option<Sha256>,
    /// Bytes of the recording.
    #[serde(default)]
    pub file_size: Option<u64>,
    /// When the confirm matched (RFC 3339 UTC, microseconds, `Z`).
    #[serde(default)]
    pub confirmed_at: Option<String>,
    /// True once `--delete-after-confirm` removed the local recording.
    #[serde(default)]
    pub local_deleted: bool,
    /// When this file was last written.
    pub updated_at: String,
    /// Fields a later version wrote; kept on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OffloadState {
    /// A fresh `pending` state for a recording.
    pub fn pending(recording_id: &str) -> OffloadState {
        OffloadState {
            recording_id: recording_id.to_string(),
            status: OffloadStatus::Pending,
            attempts: 0,
            last_error: None,
            server_url: None,
            checksum: None,
            server_checksum: None,
            file_size: None,
            confirmed_at: None,
            local_deleted: false,
            updated_at: now(),
            extra: Map::new(),
        }
    }
}

/// Reads an offload state file: `Ok(None)` when there is none (the
/// recording is pending), an error when it exists but cannot be read or is
/// not a state file. rig-check uses this.
pub fn read_offload_state(path: &Path) -> Result<Option<OffloadState>, ClientError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ClientError::State {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ClientError::State {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an offload state file: {e}"),
            ),
        })
}

/// Writes an offload state file atomically.
pub fn write_offload_state(path: &Path, state: &OffloadState) -> Result<(), ClientError> {
    let mut text = serde_json::to_string_pretty(state).unwrap_or_default();
    text.push('\n');
    fsx::atomic_write(path, text.as_bytes()).map_err(|source| ClientError::State {
        path: path.to_path_buf(),
        source,
    })
}

/// The state file of a manifest outside the Pi layout: beside it, `X.json`
/// -> `X.offload.json` (the same name the layout gives).
pub fn state_path_for_manifest(manifest: &Path) -> PathBuf {
    manifest.with_extension("offload.json")
}

/// Per-run choices that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct OffloadOptions {
    /// Hash the file before sending and refuse it if the manifest's checksum
    /// differs (the bytes changed since the manifest was written). By
    /// default the manifest's checksum is trusted and the file read once.
    pub rehash: bool,
    /// Prepare everything (manifest, checksum) and report what would be
    /// sent, without a lock, a state write or a network request.
    pub dry_run: bool,
    /// Show progress: a bar when stderr is a terminal, else a log line per
    /// 10%. Off by default (library callers decide).
    pub progress: bool,
    /// Wait for another rig-upload to finish instead of failing with
    /// [`ClientError::Locked`] (rig-record after a stop).
    pub wait_for_lock: bool,
    /// Never resume: no status request, every attempt sends the whole file
    /// (`--no-resume`). By default an upload continues from the bytes an
    /// interrupted one left on the server (PROTOCOL-EXTENSIONS.md).
    pub no_resume: bool,
}

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
    /// True when the recording is (now or already) offloaded, or a dry run.
    pub fn is_success(&self) -> bool {
        self.success
    }

    /// One line for humans: `ID offloaded (3 attempts, 12.3 MB in 1.2 s, 10.2 MB/s)`.
    pub fn summary(&self) -> String {
        let id = &self.recording_id;
        match self.status {
            Outcome::Offloaded => {
                let mut s = format!(
                    "{id} offloaded ({} attempt{}",
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
            Outcome::AlreadyOffloaded if self.dry_run => {
                format!("{id} already offloaded; nothing would be sent")
            }
            Outcome::AlreadyOffloaded => format!("{id} already offloaded"),
            Outcome::DryRun => {
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
            Outcome::Failed => format!(
                "{id} failed after {} attempt{}: {}",
                self.attempts,
                plural(self.attempts),
                self.message.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Why the client could not even try: these stop a run (exit 2 for
/// configuration, 1 otherwise). Failures of one recording are reports.
#[derive(Debug)]
pub enum ClientError {
    /// Another rig-upload holds the lock.
    Locked(PathBuf),
    /// The configuration cannot work (bad server URL, no storage root).
    Config(String),
    /// A state file could not be read or written: no promise can be kept.
    State {
        /// The state file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Walking or locking the storage failed.
    Io {
        /// The path involved.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Locked(p) => write!(
                f,
                "another rig-upload is running (lock {} is held); nothing done, \
                 try again when it has finished",
                p.display()
            ),
            ClientError::Config(m) => f.write_str(m),
            ClientError::State { path, source } => {
                write!(f, "offload state {}: {source}", path.display())
            }
            ClientError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl std::error::Error for ClientError {}

impl ClientError {
    /// True for configuration problems (exit 2).
    pub fn is_config(&self) -> bool {
        matches!(self, ClientError::Config(_))
    }
}

/// The files of one recording.
#[derive(Debug, Clone)]
pub struct Source {
    /// The video.
    pub video: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// Its offload state file.
    pub state: PathBuf,
    /// The recording the caller asked for; the manifest must agree.
    pub expect: Option<RecordingId>,
}

impl Source {
    /// A recording in the Pi layout.
    pub fn in_layout(layout: &PiLayout, rec: &RecordingId) -> Source {
        Source {
            video: layout.recording(rec),
            manifest: layout.manifest(rec),
            state: layout.offload_state(rec),
            expect: Some(rec.clone()),
        }
    }

    /// An arbitrary video and manifest; state beside the manifest.
    pub fn pair(video: &Path, manifest: &Path) -> Source {
        Source {
            video: video.to_path_buf(),
            manifest: manifest.to_path_buf(),
            state: state_path_for_manifest(manifest),
            expect: None,
        }
    }
}

/// Offloads one recording of the Pi layout under `node.storage_root`,
/// holding the upload lock. The entry point for rig-record and
/// `rig-upload SESSION CAMERA`.
///
/// `Ok` carries the outcome, failed or not; `Err` means nothing could be
/// tried (lock held, bad configuration, state file not writable).
pub fn offload_recording(
    config: &Config,
    rec: &RecordingId,
    opts: &OffloadOptions,
) -> Result<OffloadReport, ClientError> {
    let layout = PiLayout::new(&config.node.storage_root);
    require_root(&layout)?;
    let _lock = lock(&layout.upload_lock(), opts)?;
    Uploader::new(config, opts)?.run(&Source::in_layout(&layout, rec))
}

/// Offloads an arbitrary video + manifest pair (`rig-upload --file
/// --manifest`). The lock is the storage root's when that exists, else a
/// `.rig-upload.lock` beside the manifest.
pub fn offload_files(
    config: &Config,
    video: &Path,
    manifest: &Path,
    opts: &OffloadOptions,
) -> Result<OffloadReport, ClientError> {
    let root = &config.node.storage_root;
    let lock_path = if root.is_dir() {
        PiLayout::new(root).upload_lock()
    } else {
        manifest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join(".rig-upload.lock")
    };
    let _lock = lock(&lock_path, opts)?;
    Uploader::new(config, opts)?.run(&Source::pair(video, manifest))
}

/// Offloads every recording under `node.storage_root` that is not yet
/// offloaded, oldest first (manifest `timing.start_time`, then name).
/// Offloaded recordings are skipped without a report; failed and
/// interrupted ones are tried again.
pub fn offload_all(
    config: &Config,
    opts: &OffloadOptions,
) -> Result<Vec<OffloadReport>, ClientError> {
    let layout = PiLayout::new(&config.node.storage_root);
    require_root(&layout)?;
    let _lock = lock(&layout.upload_lock(), opts)?;
    let uploader = Uploader::new(config, opts)?;
    let mut reports = Vec::new();
    for rec in pending_recordings(&layout)? {
        let source = Source::in_layout(&layout, &rec);
        if let Some(state) = read_state_lenient(&source.state)
            && state.status == OffloadStatus::Offloaded
        {
            log::debug!("{rec}: already offloaded, skipped");
            continue;
        }
        reports.push(uploader.run(&source)?);
    }
    if reports.is_empty() {
        log::info!(
            "nothing to offload under {} (every recording is offloaded)",
            layout.root.display()
        );
    }
    Ok(reports)
}

/// Every recording with a manifest in the layout, oldest first (by
/// `timing.start_time`, then recording ID; manifests whose time cannot be
/// read come last). Only files named exactly as the layout names manifests
/// count: `manifests/S/C/S_C.json`.
pub fn pending_recordings(layout: &PiLayout) -> Result<Vec<RecordingId>, ClientError> {
    let dir = layout.manifests_dir();
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(Option<jiff::Timestamp>, RecordingId)> = Vec::new();
    for entry in walkdir::WalkDir::new(&dir).min_depth(3).max_depth(3) {
        let entry = entry.map_err(|e| ClientError::Io {
            path: e.path().unwrap_or(&dir).to_path_buf(),
            source: e.into(),
        })?;
        let name = entry.file_name().to_string_lossy();
        if !entry.file_type().is_file()
            || name.ends_with(".offload.json")
            || name.starts_with(fsx::TEMP_PREFIX)
        {
            continue;
        }
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let Ok(rec) = RecordingId::parse(stem) else {
            log::debug!("{}: not a manifest name, skipped", entry.path().display());
            continue;
        };
        if layout.manifest(&rec) != entry.path() {
            log::debug!(
                "{}: not where its manifest belongs, skipped",
                entry.path().display()
            );
            continue;
        }
        let start = Manifest::read(entry.path())
            .ok()
            .and_then(|m| manifest::parse_time(&m.timing.start_time).ok());
        found.push((start, rec));
    }
    found.sort_by(|(ta, a), (tb, b)| match (ta, tb) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.to_string().cmp(&b.to_string())),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    });
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

/// The storage root must exist: creating it (and the lock in it) on an
/// unmounted mount point would hide the real problem.
fn require_root(layout: &PiLayout) -> Result<(), ClientError> {
    if layout.root.is_dir() {
        return Ok(());
    }
    Err(ClientError::Config(format!(
        "storage root {} is not a directory (is the drive mounted?); \
         set node.storage_root or --root",
        layout.root.display()
    )))
}

fn lock(path: &Path, opts: &OffloadOptions) -> Result<Option<LockFile>, ClientError> {
    if opts.dry_run {
        return Ok(None);
    }
    let io_err = |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    };
    if opts.wait_for_lock {
        return LockFile::acquire(path).map(Some).map_err(io_err);
    }
    match LockFile::try_acquire(path).map_err(io_err)? {
        Some(l) => Ok(Some(l)),
        None => Err(ClientError::Locked(path.to_path_buf())),
    }
}

/// A state file for deciding what to do; a corrupt one counts as absent
/// (it is rewritten by the run) but is reported.
fn read_state_lenient(path: &Path) -> Option<OffloadState> {
    match read_offload_state(path) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("{e}; treating the recording as not offloaded");
            None
        }
    }
}

fn now() -> String {
    manifest::format_time(jiff::Timestamp::now())
}

/// Why one attempt (or the preparation) failed.
#[derive(Debug, Clone)]
struct Failure {
    /// Worth another attempt.
    retry: bool,
    /// snake_case code.
    code: String,
    /// For humans.
    message: String,
}

impl Failure {
    fn fatal(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            retry: false,
            code: code.into(),
            message: message.into(),
        }
    }
    fn retry(code: &str, message: impl Into<String>) -> Failure {
        Failure {
            retry: true,
            code: code.into(),
            message: message.into(),
        }
    }
}

/// A recording ready to send.
struct Prepared {
    rec: RecordingId,
    manifest_json: String,
    checksum: Sha256,
    size: u64,
}

/// One run's HTTP agent and settings.
struct Uploader<'a> {
    offload: &'a OffloadConfig,
    opts: &'a OffloadOptions,
    base: String,
    agent: ureq::Agent,
    chunk: usize,
    /// `Authorization` value (offload.api_key); never logged.
    auth: Option<String>,
    /// The server answered 404/405 to a status request: no resuming.
    no_resume_ext: std::cell::Cell<bool>,
}

impl<'a> Uploader<'a> {
    fn new(config: &'a Config, opts: &'a OffloadOptions) -> Result<Uploader<'a>, ClientError> {
        let offload = &config.offload;
        let base = offload.server_url.trim_end_matches('/').to_string();
        let probe = format!("{base}{}", protocol::UPLOAD_PATH);
        match probe.parse::<ureq::http::Uri>() {
            Ok(uri) if uri.host().is_some() => {}
            _ => {
                return Err(ClientError::Config(format!(
                    "offload.server_url: {:?} is not a usable URL; \
                     expected e.g. http://192.168.1.200:8081",
                    offload.server_url
                )));
            }
        }
        let chunk = usize::try_from(offload.chunk_size_kb)
            .unwrap_or(1024)
            .saturating_mul(1024)
            .max(4096);
        let setup = |e: crate::base::http::HttpSetupError| ClientError::Config(e.0);
        let auth = crate::base::http::api_key(offload)
            .map_err(setup)?
            .map(|k| crate::base::http::bearer(&k));
        let agent: ureq::Agent = crate::base::http::agent_builder(offload)
            .map_err(setup)?
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(offload.connect_timeout_sec)))
            .timeout_global(Some(Duration::from_secs(offload.upload_timeout_sec)))
            .output_buffer_size(chunk)
            // A redirect would need the body sent again; report it instead.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(format!("rig-upload/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Uploader {
            offload,
            opts,
            base,
            agent,
            chunk,
            auth,
            no_resume_ext: std::cell::Cell::new(false),
        })
    }

    /// The whole flow for one recording.
    fn run(&self, src: &Source) -> Result<OffloadReport, ClientError> {
        let started = Instant::now();
        let label = src
            .expect
            .as_ref()
            .map_or_else(|| src.manifest.display().to_string(), ToString::to_string);
        let mut report = OffloadReport {
            success: false,
            recording_id: label,
            status: Outcome::Failed,
            attempts: 0,
            file: src.video.clone(),
            manifest: src.manifest.clone(),
            state_file: src.state.clone(),
            server_url: self.base.clone(),
            file_size: None,
            checksum: None,
            server_checksum: None,
            local_deleted: false,
            elapsed_sec: 0.0,
            bytes_per_sec: None,
            resumed_from: 0,
            dry_run: self.opts.dry_run,
            error: None,
            message: None,
        };
        let previous = read_state_lenient(&src.state);
        // A dry run reports this too: a real run would send nothing, so
        // "would be sent" would be false (and --all skips it the same way).
        if let Some(prev) = &previous
            && prev.status == OffloadStatus::Offloaded
        {
            report.success = true;
            report.status = Outcome::AlreadyOffloaded;
            if let Ok(rec) = RecordingId::parse(&prev.recording_id) {
                // In --file mode the label is the manifest path; the
                // state knows the ID.
                report.recording_id = rec.to_string();
            }
            report.file_size = prev.file_size;
            report.checksum = prev.checksum;
            report.server_checksum = prev.server_checksum;
            report.local_deleted = prev.local_deleted;
            log::info!(
                "{}: already offloaded, {}",
                report.recording_id,
                if self.opts.dry_run {
                    "nothing would be sent"
                } else {
                    "nothing to do"
                }
            );
            return Ok(report);
        }

        let mut state = previous
            .clone()
            .unwrap_or_else(|| OffloadState::pending(&report.recording_id));
        state.attempts = 0;
        state.server_url = Some(self.base.clone());

        let prepared = match self.prepare(src) {
            Ok(p) => p,
            Err(fail) => {
                log::error!("{}: {} (not retried)", report.recording_id, fail.message);
                if !self.opts.dry_run {
                    state.status = OffloadStatus::Failed;
                    state.last_error = Some(fail.message.clone());
                    state.updated_at = now();
                    write_offload_state(&src.state, &state)?;
                }
                report.error = Some(fail.code);
                report.message = Some(fail.message);
                report.elapsed_sec = started.elapsed().as_secs_f64();
                return Ok(report);
            }
        };
        report.recording_id = prepared.rec.to_string();
        report.file_size = Some(prepared.size);
        report.checksum = Some(prepared.checksum);
        state.recording_id = prepared.rec.to_string();
        state.checksum = Some(prepared.checksum);
        state.file_size = Some(prepared.size);

        if self.opts.dry_run {
            report.success = true;
            report.status = Outcome::DryRun;
            report.elapsed_sec = started.elapsed().as_secs_f64();
            return Ok(report);
        }

        // A run that died after the server stored the file but before we
        // wrote "offloaded": ask before sending gigabytes again.
        let interrupted = previous
            .as_ref()
            .is_some_and(|p| matches!(p.status, OffloadStatus::Uploading | OffloadStatus::Failed));
        if interrupted && self.offload.verify_checksum {
            match self.confirm(&prepared) {
                Ok(digest) if digest == prepared.checksum => {
                    log::info!(
                        "{}: the server already holds these bytes (confirm digest matches); \
                         not sending again",
                        prepared.rec
                    );
                    report.server_checksum = Some(digest);
                    self.finish_offloaded(src, &mut state, &mut report, digest, true)?;
                    report.elapsed_sec = started.elapsed().as_secs_f64();
                    return Ok(report);
                }
                Ok(_) => log::info!("{}: the server holds other bytes; uploading", prepared.rec),
                Err(f) => log::info!(
                    "{}: not on the server yet ({}); uploading",
                    prepared.rec,
                    f.message
                ),
            }
        }

        let tries = self.offload.retry_count.max(1);
        let mut uploaded = false;
        let mut last: Option<Failure> = None;
        for attempt in 1..=tries {
            if attempt > 1 {
                let delay = self.offload.retry_delay_sec * f64::from(1u32 << (attempt - 2).min(30));
                log::warn!(
                    "{}: waiting {delay:.2} s before attempt {attempt} of {tries} ({})",
                    prepared.rec,
                    last.as_ref().map_or("", |f| f.message.as_str())
                );
                std::thread::sleep(Duration::from_secs_f64(delay));
            }
            log::info!(
                "{}: attempt {attempt} of {tries}: {}",
                prepared.rec,
                if uploaded {
                    "confirm (the upload was already accepted)"
                } else {
                    "upload"
                }
            );
            state.status = OffloadStatus::Uploading;
            state.attempts = attempt;
            state.updated_at = now();
            write_offload_state(&src.state, &state)?;
            report.attempts = attempt;

            match self.attempt(src, &prepared, &mut uploaded, &mut report) {
                Ok(digest) => {
                    let verified = self.offload.verify_checksum;
                    report.server_checksum = Some(digest);
                    self.finish_offloaded(src, &mut state, &mut report, digest, verified)?;
                    report.elapsed_sec = started.elapsed().as_secs_f64();
                    return Ok(report);
                }
                Err(fail) => {
                    let again = fail.retry && attempt < tries;
                    log::warn!(
                        "{}: attempt {attempt} of {tries} failed: {} [{}]{}",
                        prepared.rec,
                        fail.message,
                        fail.code,
                        if !fail.retry {
                            "; not retried"
                        } else if !again {
                            "; no attempts left"
                        } else {
                            ""
                        }
                    );
                    state.last_error = Some(fail.message.clone());
                    if !again {
                        last = Some(fail);
                        break;
                    }
                    last = Some(fail);
                }
            }
        }
        let fail = last.unwrap_or_else(|| Failure::fatal("failed", "no attempt was made"));
        state.status = OffloadStatus::Failed;
        state.last_error = Some(fail.message.clone());
        state.updated_at = now();
        write_offload_state(&src.state, &state)?;
        log::error!(
            "{}: failed after {} attempt{}: {}; the local recording is kept",
            prepared.rec,
            report.attempts,
            plural(report.attempts),
            fail.message
        );
        report.error = Some(fail.code);
        report.message = Some(fail.message);
        report.elapsed_sec = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Records success, then (only on a compared, matching digest and when
    /// configured) deletes the local recording.
    fn finish_offloaded(
        &self,
        src: &Source,
        state: &mut OffloadState,
        report: &mut OffloadReport,
        digest: Sha256,
        verified: bool,
    ) -> Result<(), ClientError> {
        state.status = OffloadStatus::Offloaded;
        state.server_checksum = Some(digest);
        state.last_error = None;
        state.confirmed_at = Some(now());
        state.updated_at = now();
        write_offload_state(&src.state, state)?;
        report.success = true;
        report.status = Outcome::Offloaded;
        log::info!("{}: offloaded and confirmed", state.recording_id);

        if self.offload.delete_after_confirm {
            if !verified {
                log::warn!(
                    "{}: not deleting the local recording: offload.verify_checksum is false, \
                     so the server's digest was not compared",
                    state.recording_id
                );
            } else {
                match fs::remove_file(&src.video) {
                    Ok(()) => {
                        if let Some(dir) = src.video.parent() {
                            let _ = fsx::sync_dir(dir);
                        }
                        log::info!(
                            "{}: deleted local {} after the confirm digest matched",
                            state.recording_id,
                            src.video.display()
                        );
                        state.local_deleted = true;
                        state.updated_at = now();
                        write_offload_state(&src.state, state)?;
                        report.local_deleted = true;
                    }
                    Err(e) => log::warn!(
                        "{}: could not delete {}: {e}",
                        state.recording_id,
                        src.video.display()
                    ),
                }
            }
        }
        Ok(())
    }

    /// Step 1: manifest, file, checksum. Every failure here is final.
    fn prepare(&self, src: &Source) -> Result<Prepared, Failure> {
        let text = fs::read_to_string(&src.manifest).map_err(|e| {
            let code = if e.kind() == io::ErrorKind::NotFound {
                "manifest_not_found"
            } else {
                "manifest_unreadable"
            };
            Failure::fatal(code, format!("manifest {}: {e}", src.manifest.display()))
        })?;
        let invalid = |m: String| {
            Failure::fatal(
                "invalid_manifest",
                format!("manifest {}: {m}", src.manifest.display()),
            )
        };
        let mut value: Value =
            serde_json::from_str(&text).map_err(|e| invalid(format!("not valid JSON: {e}")))?;

        let meta = fs::metadata(&src.video).map_err(|e| {
            let code = if e.kind() == io::ErrorKind::NotFound {
                "file_not_found"
            } else {
                "file_unreadable"
            };
            Failure::fatal(code, format!("recording {}: {e}", src.video.display()))
        })?;
        if !meta.is_file() {
            return Err(Failure::fatal(
                "file_not_found",
                format!("recording {} is not a regular file", src.video.display()),
            ));
        }
        let size = meta.len();

        let has_checksum = value
            .pointer("/checksum/value")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let computed = if !has_checksum || self.opts.rehash {
            log::info!(
                "{}: hashing {} ({})",
                src.video.display(),
                human_bytes(size),
                if has_checksum {
                    "--rehash"
                } else {
                    "the manifest has no checksum"
                }
            );
            let file = File::open(&src.video).map_err(|e| {
                Failure::fatal(
                    "file_unreadable",
                    format!("recording {}: {e}", src.video.display()),
                )
            })?;
            let d = checksum::hash_reader(file, self.chunk).map_err(|e| {
                Failure::fatal(
                    "file_unreadable",
                    format!("recording {}: {e}", src.video.display()),
                )
            })?;
            Some(d)
        } else {
            None
        };
        let mut rewritten = false;
        if let (false, Some(d), Some(obj)) = (has_checksum, &computed, value.as_object_mut()) {
            let mut c = Map::new();
            c.insert("algorithm".into(), Value::from("sha256"));
            c.insert("value".into(), Value::from(d.sha256.to_string()));
            obj.insert("checksum".into(), Value::Object(c));
            rewritten = true;
        }

        let m = Manifest::from_value(value).map_err(|e| invalid(e.to_string()))?;
        let rec = m.recording_id().map_err(|e| invalid(e.to_string()))?;
        if let Some(want) = &src.expect
            && want != &rec
        {
            return Err(invalid(format!(
                "describes recording {rec}, but {want} was asked for"
            )));
        }
        if m.file.size_bytes != size {
            return Err(invalid(format!(
                "file.size_bytes is {}, but {} is {size} bytes: the file changed since its \
                 manifest was written; check it with `rig-manifest verify` before offloading",
                m.file.size_bytes,
                src.video.display()
            )));
        }
        if let Some(d) = &computed
            && d.sha256 != m.checksum.value
        {
            return Err(Failure::fatal(
                "local_checksum_mismatch",
                format!(
                    "{} no longer matches its manifest: SHA-256 is {}, the manifest says {}; \
                     not sending it",
                    src.video.display(),
                    d.sha256,
                    m.checksum.value
                ),
            ));
        }
        let manifest_json = if rewritten { m.to_json_pretty() } else { text };
        Ok(Prepared {
            rec,
            checksum: m.checksum.value,
            manifest_json,
            size,
        })
    }

    /// Steps 2-7 once: upload (unless already accepted), confirm, compare.
    fn attempt(
        &self,
        src: &Source,
        p: &Prepared,
        uploaded: &mut bool,
        report: &mut OffloadReport,
    ) -> Result<Sha256, Failure> {
        if !*uploaded {
            let (reply, rate, resumed_from) = self.upload(src, p)?;
            report.bytes_per_sec = Some(rate);
            report.resumed_from = resumed_from;
            if reply.success == Some(false) || reply.checksum_verified == Some(false) {
                return Err(Failure::retry(
                    protocol::code::CHECKSUM_MISMATCH,
                    format!(
                        "the server accepted the upload but did not verify its checksum \
                         (success {:?}, checksum_verified {:?})",
                        reply.success, reply.checksum_verified
                    ),
                ));
            }
            if let Some(size) = reply.size.filter(|&n| n != p.size) {
                return Err(Failure::retry(
                    "size_mismatch",
                    format!("the server stored {size} bytes, the file has {}", p.size),
                ));
            }
            for w in &reply.manifest_warnings {
                log::warn!("{}: the server repaired our manifest: {w}", p.rec);
            }
            *uploaded = true;
        }
        let digest = self.confirm(p)?;
        if self.offload.verify_checksum && digest != p.checksum {
            // The server holds other bytes: send the file again.
            *uploaded = false;
            return Err(Failure::retry(
                protocol::code::CHECKSUM_MISMATCH,
                format!(
                    "the server's confirm digest {digest} differs from ours {}",
                    p.checksum
                ),
            ));
        }
        Ok(digest)
    }

    /// How many bytes of this recording the server already holds from an
    /// interrupted upload: 0 with `--no-resume`, when the server does not
    /// know the extension (404/405, remembered for the run) or answers
    /// anything unexpected. A network failure fails the attempt.
    fn resume_point(&self, p: &Prepared) -> Result<u64, Failure> {
        if self.opts.no_resume || self.no_resume_ext.get() {
            return Ok(0);
        }
        let url = format!(
            "{}{}?session_id={}&camera_id={}&checksum={}",
            self.base,
            protocol::UPLOAD_STATUS_PATH,
            p.rec.session.as_str(),
            p.rec.camera.as_str(),
            p.checksum
        );
        let mut req = self.agent.get(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let response = req
            .call()
            .map_err(|e| transport_failure("upload status", &url, e))?;
        let (status, text) = read_reply(response);
        if status == 401 || status == 403 {
            // The upload would be refused the same way: say so now, not retried.
            return Err(status_failure("upload status", status, &text));
        }
        if status == 404 || status == 405 {
            log::info!(
                "{}: the server does not resume uploads ({status} on status); sending whole files",
                p.rec
            );
            self.no_resume_ext.set(true);
            return Ok(0);
        }
        // Only the length matters: other servers' echoes of the IDs and the
        // checksum are metadata, and a malformed one must not stop a resume.
        let parsed = (200..300)
            .contains(&status)
            .then(|| serde_json::from_str::<Value>(&text).ok())
            .flatten()
            .and_then(|v| v["received_bytes"].as_u64());
        match parsed {
            Some(n) if n <= p.size => Ok(n),
            Some(n) => {
                log::warn!(
                    "{}: the server holds {n} bytes, more than the file's {}; sending it whole",
                    p.rec,
                    p.size
                );
                Ok(0)
            }
            None => {
                log::warn!(
                    "{}: upload status answered {status} {:.200}; sending the whole file",
                    p.rec,
                    text.trim()
                );
                Ok(0)
            }
        }
    }

    /// Step 2: the streamed multipart upload, resumed when the server holds
    /// a prefix; a 409 `offset_mismatch` is followed once by a resume from
    /// the length the server names. Returns the reply, the rate and the
    /// byte the upload started at.
    fn upload(&self, src: &Source, p: &Prepared) -> Result<(UploadReply, f64, u64), Failure> {
        let mut offset = self.resume_point(p)?;
        let mut corrected = false;
        loop {
            match self.upload_from(src, p, offset) {
                Err((fail, Some(have))) if !corrected && have <= p.size => {
                    log::warn!(
                        "{}: {}; resuming from byte {have} instead",
                        p.rec,
                        fail.message
                    );
                    corrected = true;
                    offset = have;
                }
                Err((fail, _)) => return Err(fail),
                Ok((reply, rate)) => return Ok((reply, rate, offset)),
            }
        }
    }

    /// One upload request sending the file from `offset` on. On a 409
    /// `offset_mismatch` the error carries the server's `received_bytes`.
    fn upload_from(
        &self,
        src: &Source,
        p: &Prepared,
        offset: u64,
    ) -> Result<(UploadReply, f64), (Failure, Option<u64>)> {
        let fail = |f: Failure| (f, None);
        let mut file = File::open(&src.video).map_err(|e| {
            let code = if e.kind() == io::ErrorKind::NotFound {
                "file_not_found"
            } else {
                "file_unreadable"
            };
            fail(Failure::fatal(
                code,
                format!("recording {}: {e}", src.video.display()),
            ))
        })?;
        let offset_text = offset.to_string();
        let checksum_text = p.checksum.to_string();
        let mut fields = vec![
            (protocol::field::SESSION_ID, p.rec.session.as_str()),
            (protocol::field::CAMERA_ID, p.rec.camera.as_str()),
            (protocol::field::CHECKSUM, checksum_text.as_str()),
            (protocol::field::MANIFEST, p.manifest_json.as_str()),
        ];
        if offset > 0 {
            io::Seek::seek(&mut file, io::SeekFrom::Start(offset)).map_err(|e| {
                fail(Failure::fatal(
                    "file_unreadable",
                    format!("recording {}: {e}", src.video.display()),
                ))
            })?;
            fields.push((protocol::field::OFFSET, offset_text.as_str()));
            log::info!(
                "{}: the server holds {offset} of {} bytes; sending the rest",
                p.rec,
                p.size
            );
        }
        let progress = Progress::new(&p.rec.to_string(), p.size, self.opts.progress);
        let mut body =
            MultipartBody::new(&fields, &p.rec.video_file_name(), file, p.size, progress);
        body.resume_at(offset);
        let url = format!("{}{}", self.base, protocol::UPLOAD_PATH);
        let started = Instant::now();
        let result = self
            .post(&url)
            .header("Content-Type", body.content_type())
            .header("Content-Length", body.len().to_string())
            .header("Expect", "100-continue")
            .send(ureq::SendBody::from_reader(&mut body));
        let secs = started.elapsed().as_secs_f64();
        body.progress.finish();
        if let Some(local) = body.local_error.take() {
            return Err(fail(local));
        }
        let response = result.map_err(|e| fail(transport_failure("upload", &url, e)))?;
        let (status, text) = read_reply(response);
        if (200..300).contains(&status) {
            let reply = replies::upload_reply(&text).ok_or_else(|| {
                fail(Failure::retry(
                    "bad_response",
                    format!(
                        "{url} answered {status} with a body that is no JSON object: {text:.200}"
                    ),
                ))
            })?;
            let rate = if secs > 0.0 {
                (p.size - offset) as f64 / secs
            } else {
                0.0
            };
            return Ok((reply, rate));
        }
        let have = (status == 409)
            .then(|| serde_json::from_str::<serde_json::Value>(&text).ok())
            .flatten()
            .filter(|v| v["error"] == protocol::code::OFFSET_MISMATCH)
            .and_then(|v| v["received_bytes"].as_u64());
        Err((status_failure("upload", status, &text), have))
    }

    /// A POST with the API key, when one is configured.
    fn post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let req = self.agent.post(url);
        match &self.auth {
            Some(a) => req.header("Authorization", a),
            None => req,
        }
    }

    /// Step 5: the server's digest of what it stored.
    fn confirm(&self, p: &Prepared) -> Result<Sha256, Failure> {
        let url = format!("{}{}", self.base, protocol::CONFIRM_PATH);
        let req = ConfirmRequest {
            session_id: p.rec.session.to_string(),
            camera_id: p.rec.camera.to_string(),
        };
        let body = serde_json::to_string(&req).unwrap_or_default();
        let response = self
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_str())
            .map_err(|e| transport_failure("confirm", &url, e))?;
        let (status, text) = read_reply(response);
        if !(200..300).contains(&status) {
            return Err(status_failure("confirm", status, &text));
        }
        let reply = replies::confirm_reply(&text).map_err(|why| {
            Failure::retry(
                "bad_response",
                format!("{url} answered {status} but {why}: {text:.200}"),
            )
        })?;
        let other = |got: &Option<String>, want: &str| got.as_deref().is_some_and(|g| g != want);
        if other(&reply.session_id, &req.session_id) || other(&reply.camera_id, &req.camera_id) {
            return Err(Failure::retry(
                "bad_response",
                format!(
                    "confirm answered for {}_{} instead of {}",
                    reply.session_id.as_deref().unwrap_or("?"),
                    reply.camera_id.as_deref().unwrap_or("?"),
                    p.rec
                ),
            ));
        }
        Ok(reply.checksum_sha256)
    }
}

/// Status code and body text (at most 64 KiB) of a reply.
fn read_reply(mut response: ureq::http::Response<ureq::Body>) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    (status, text)
}

/// Classifies a non-2xx reply: 5xx, 408, a 400/422 checksum mismatch
/// (however the server words it, [`replies::is_mismatch`]) and 409
/// `upload_in_progress` are retried, every other status is final. The server's message is kept.
fn status_failure(step: &str, status: u16, text: &str) -> Failure {
    let replies::ErrorReply { code, message } = replies::error_reply(status, text);
    // 409 `upload_in_progress` is the server's claim on the recording, most
    // often held by our own attempt that died with the Wi-Fi: the server
    // lets it go at its stall timeout, so waiting (like a 503) succeeds
    // where giving up would fail a resumable run. Other 409s stay final.
    let retry = status >= 500
        || status == 408
        || ((status == 400 || status == 422) && code == protocol::code::CHECKSUM_MISMATCH)
        || (status == 409 && code == protocol::code::UPLOAD_IN_PROGRESS);
    let message = format!("{step}: server answered {status} {code}: {message}");
    Failure {
        retry,
        code,
        message,
    }
}

/// Classifies a transport error: network trouble is retried, a request we
/// could not even form is not.
fn transport_failure(step: &str, url: &str, e: ureq::Error) -> Failure {
    if crate::base::http::is_tls_failure(&e) {
        return Failure::fatal(
            "tls_error",
            format!("{step}: {} ({e})", crate::base::http::tls_hint(url)),
        );
    }
    match e {
        ureq::Error::Timeout(t) => {
            Failure::retry("timeout", format!("{step} {url}: timed out ({t})"))
        }
        ureq::Error::Io(io) => {
            let code = match io.kind() {
                io::ErrorKind::ConnectionRefused => "connection_refused",
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => "connection_reset",
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout",
                _ => "network_error",
            };
            Failure::retry(code, format!("{step} {url}: {io}"))
        }
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            Failure::retry("connection_failed", format!("{step} {url}: {e}"))
        }
        ureq::Error::Protocol(_) => Failure::retry("bad_response", format!("{step} {url}: {e}")),
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            Failure::fatal("invalid_request", format!("{step} {url}: {e}"))
        }
        other => Failure::retry("network_error", format!("{step} {url}: {other}")),
    }
}

/// Progress of one upload: a bar on a terminal, else a log line per 10%.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    total: u64,
    next_tenth: u64,
    enabled: bool,
}

impl Progress {
    fn new(label: &str, total: u64, enabled: bool) -> Progress {
        let bar = (enabled && io::stderr().is_terminal()).then(|| {
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            indicatif::ProgressBar::new(total)
                .with_style(style)
                .with_message(label.to_string())
        });
        Progress {
            bar,
            label: label.to_string(),
            total,
            next_tenth: 1,
            enabled,
        }
    }

    fn update(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if !self.enabled || self.total == 0 {
            return;
        }
        // One line per tenth, also when one read crosses several (a small
        // file, a large chunk): a log reader counts ten lines per upload.
        let tenth = self.tenth_of(done);
        while self.next_tenth <= tenth {
            log::info!(
                "{}: sent {}% ({done} of {} bytes)",
                self.label,
                self.next_tenth * 10,
                self.total
            );
            self.next_tenth += 1;
        }
    }

    /// Starts counting at `done` (a resume): the bytes the server already
    /// holds were not sent now, so their tenths get no lines.
    fn skip_to(&mut self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
        if self.total > 0 {
            self.next_tenth = self.tenth_of(done) + 1;
        }
    }

    /// How many whole tenths of the file `done` bytes are (0 to 10).
    fn tenth_of(&self, done: u64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        (u128::from(done) * 10 / u128::from(self.total)).min(10) as u64
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The upload request body: multipart/form-data with the text fields first
/// and the file part last, streamed from disk. Its length is exact before a
/// byte is sent (the head and tail are built in memory, the file's size is
/// known), so the request carries a `Content-Length`.
///
/// The file part yields exactly `size` bytes: a file that shrinks while
/// being sent fails the attempt (it is no longer the recording the manifest
/// describes) instead of sending a short body; one that grows is cut at the
/// manifest's size.
struct MultipartBody {
    boundary: String,
    head: io::Cursor<Vec<u8>>,
    file: File,
    remaining: u64,
    tail: io::Cursor<Vec<u8>>,
    size: u64,
    /// The byte of the file the file part starts at (a resume).
    start: u64,
    sent: u64,
    progress: Progress,
    local_error: Option<Failure>,
}

impl MultipartBody {
    fn new(
        fields: &[(&str, &str)],
        file_name: &str,
        file: File,
        size: u64,
        progress: Progress,
    ) -> MultipartBody {
        let boundary = make_boundary(fields);
        let mut head = Vec::new();
        for (name, value) in fields {
            head.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: video/mp4\r\n\r\n",
                protocol::field::FILE
            )
            .as_bytes(),
        );
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        MultipartBody {
            boundary,
            head: io::Cursor::new(head),
            file,
            remaining: size,
            tail: io::Cursor::new(tail),
            size,
            start: 0,
            sent: 0,
            progress,
            local_error: None,
        }
    }

    fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Makes the file part carry the bytes from `offset` on (the file is
    /// already positioned there); progress counts the skipped bytes as done.
    fn resume_at(&mut self, offset: u64) {
        let offset = offset.min(self.size);
        self.start = offset;
        self.remaining = self.size - offset;
        self.sent = offset;
        self.progress.skip_to(offset);
    }

    /// Exact body length in bytes.
    fn len(&self) -> u64 {
        self.head.get_ref().len() as u64
            + (self.size - self.start)
            + self.tail.get_ref().len() as u64
    }
}

/// A boundary no text field contains: 32 hex digits from the clock, the
/// process and the fields, re-derived in the (theoretical) case of a clash.
fn make_boundary(fields: &[(&str, &str)]) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut salt = 0u32;
    loop {
        let mut seed = Vec::new();
        seed.extend(nanos.to_le_bytes());
        seed.extend(std::process::id().to_le_bytes());
        seed.extend(salt.to_le_bytes());
        for (n, v) in fields {
            seed.extend(n.as_bytes());
            seed.extend(v.as_bytes());
        }
        let hex = Sha256::of(&seed).to_string();
        let boundary = format!("rig-upload-{}", &hex[..32]);
        if !fields.iter().any(|(_, v)| v.contains(&boundary)) {
            return boundary;
        }
        salt += 1;
    }
}

impl Read for MultipartBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        if self.remaining > 0 {
            let want = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = loop {
                match self.file.read(&mut buf[..want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let n = match n {
                Ok(0) => {
                    let msg = format!(
                        "the recording shrank while being sent: {} bytes missing of {}",
                        self.remaining, self.size
                    );
                    self.local_error = Some(Failure::fatal("file_changed", msg.clone()));
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
                }
                Ok(n) => n,
                Err(e) => {
                    self.local_error = Some(Failure::fatal(
                        "file_unreadable",
                        format!("reading the recording: {e}"),
                    ));
                    return Err(e);
                }
            };
            self.remaining -= n as u64;
            self.sent += n as u64;
            self.progress.update(self.sent);
            return Ok(n);
        }
        self.tail.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_bytes(fields: &[(&str, &str)], data: &[u8]) -> (MultipartBody, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        fs::write(&p, data).unwrap();
        let f = File::open(&p).unwrap();
        let mut body = MultipartBody::new(
            fields,
            "S_CAM_C.mp4",
            f,
            data.len() as u64,
            Progress::new("x", data.len() as u64, false),
        );
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        (body, out)
    }

    #[test]
    fn a_resumed_body_carries_the_rest_and_its_length_is_exact() {
        use std::io::Seek;
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        fs::write(&p, &data).unwrap();
        let mut f = File::open(&p).unwrap();
        f.seek(io::SeekFrom::Start(7_000)).unwrap();
        let fields = [("session_id", "S"), ("offset", "7000")];
        let mut body = MultipartBody::new(
            &fields,
            "S_CAM_C.mp4",
            f,
            data.len() as u64,
            Progress::new("x", data.len() as u64, false),
        );
        body.resume_at(7_000);
        let len = body.len();
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, len);
        assert_eq!(
            body.sent,
            data.len() as u64,
            "progress counts resumed bytes"
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("name=\"offset\"\r\n\r\n7000\r\n"));
        let start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let file_start = out[start + 4..]
            .windows(4)
            .rposition(|w| w == b"\r\n\r\n")
            .unwrap()
            + start
            + 8;
        assert_eq!(&out[file_start..file_start + 3_000], &data[7_000..]);
    }

    #[test]
    fn multipart_length_is_exact_and_fields_in_order() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let fields = [
            ("session_id", "S"),
            ("camera_id", "CAM_C"),
            ("checksum", "c"),
            ("manifest", "{}"),
        ];
        let (body, out) = body_bytes(&fields, &data);
        assert_eq!(out.len() as u64, body.len());
        let text = String::from_utf8_lossy(&out);
        let pos: Vec<usize> = [
            "\"session_id\"",
            "\"camera_id\"",
            "\"checksum\"",
            "\"manifest\"",
            "\"file\"",
        ]
        .iter()
        .map(|n| text.find(n).unwrap())
        .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
        let b = body.boundary.clone();
        assert!(text.ends_with(&format!("\r\n--{b}--\r\n")));
        // the file bytes sit intact between the file part's headers and the tail
        let head_len = body.head.get_ref().len();
        assert_eq!(&out[head_len..head_len + data.len()], &data[..]);
    }

    #[test]
    fn shrinking_file_is_a_local_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        fs::write(&p, b"short").unwrap();
        let mut body = MultipartBody::new(
            &[("a", "b")],
            "f.mp4",
            File::open(&p).unwrap(),
            10,
            Progress::new("x", 10, false),
        );
        let mut out = Vec::new();
        let err = body.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(body.local_error.unwrap().code, "file_changed");
    }

    #[test]
    fn status_classification_follows_the_table() {
        let e = |code: &str| format!(r#"{{"success":false,"error":"{code}","message":"m"}}"#);
        assert!(status_failure("upload", 503, "").retry);
        assert!(status_failure("upload", 500, &e("internal_error")).retry);
        assert!(status_failure("upload", 422, &e("checksum_mismatch")).retry);
        assert!(status_failure("upload", 408, &e("request_timeout")).retry);
        assert!(!status_failure("upload", 422, &e("other")).retry);
        assert!(status_failure("upload", 409, &e("upload_in_progress")).retry);
        assert!(!status_failure("upload", 409, &e("offset_mismatch")).retry);
        assert!(!status_failure("upload", 409, &e("job_in_progress")).retry);
        assert!(!status_failure("upload", 409, "not json").retry);
        let f = status_failure("upload", 400, &e("missing_field"));
        assert!(!f.retry);
        assert_eq!(f.code, "missing_field");
        assert!(f.message.contains("400 missing_field: m"), "{}", f.message);
        assert!(!status_failure("upload", 413, &e("payload_too_large")).retry);
        assert!(!status_failure("upload", 404, "nope").retry);
        // Other servers' words for a mismatch (the Python reference's 400).
        let python = r#"{"success": false, "error": "Checksum mismatch", "expected": "a", "calculated": "b"}"#;
        let f = status_failure("upload", 400, python);
        assert!(f.retry);
        assert_eq!(f.code, "checksum_mismatch");
        assert!(f.message.contains("Checksum mismatch"), "{}", f.message);
        assert!(status_failure("upload", 422, r#"{"error": "CHECKSUM-MISMATCH"}"#).retry);
        assert!(!status_failure("upload", 403, python).retry);
    }

    #[test]
    fn state_round_trip_keeps_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m/S_CAM_C.offload.json");
        assert!(read_offload_state(&p).unwrap().is_none());
        let mut s = OffloadState::pending("S_CAM_C");
        s.extra.insert("future".into(), Value::from(1));
        write_offload_state(&p, &s).unwrap();
        let back = read_offload_state(&p).unwrap().unwrap();
        assert_eq!(back, s);
        let v: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["status"], "pending");
        fs::write(&p, "garbage").unwrap();
        assert!(read_offload_state(&p).is_err());
        assert_eq!(
            state_path_for_manifest(Path::new("/x/S_CAM_C.json")),
            Path::new("/x/S_CAM_C.offload.json")
        );
    }

    #[test]
    fn boundary_avoids_field_text() {
        let b = make_boundary(&[("a", "b")]);
        assert!(b.starts_with("rig-upload-") && b.len() == "rig-upload-".len() + 32);
    }
}
