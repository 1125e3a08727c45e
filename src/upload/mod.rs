//! rig-upload's logic (also used by rig-record after a stop): PROTOCOL.md's
//! upload flow, its retry table, and the Pi's offload state.
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
//! # The module
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the entry points: one recording, a file pair, `--all`; the lock |
//! | `options.rs` | [`OffloadOptions`], per-run choices |
//! | `source.rs` | [`Source`]: the files of one recording; [`pending_recordings`] |
//! | `state.rs` | [`OffloadState`], the `S_C.offload.json` file |
//! | `prepare.rs` | step 1: manifest, file, checksum |
//! | `flow.rs` | the flow for one recording: attempts, backoff, outcome, delete |
//! | `transport.rs` | the HTTP agent and the status, upload and confirm requests |
//! | `multipart.rs` | the streamed `multipart/form-data` body |
//! | `progress.rs` | the progress bar / log lines of one upload |
//! | `retry.rs` | which failures are retried, and the backoff |
//! | `report.rs` | [`OffloadReport`], what a run did for one recording |
//! | `error.rs` | [`OffloadError`] (stops a run) and the per-attempt error |
//!
//! ```no_run
//! use soccer_rig::upload::{self, OffloadOptions};
//! use soccer_rig::base::config::Config;
//! use soccer_rig::base::ids::RecordingId;
//!
//! let config = Config::load(None)?;
//! let rec = RecordingId::parse("GAME_20240315_140000_CAM_C")?;
//! let report = upload::offload_recording(&config, &rec, &OffloadOptions::default())?;
//! assert!(report.is_success(), "{:?}", report.message);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod flow;
mod multipart;
mod options;
mod prepare;
mod progress;
mod report;
mod retry;
mod source;
mod state;
mod transport;

use std::path::Path;

pub use error::{ConfigProblem, OffloadError};
pub use options::OffloadOptions;
pub use report::{OffloadReport, Outcome};
pub use source::{Source, pending_recordings};
pub use state::{
    OffloadState, OffloadStatus, read_offload_state, state_path_for_manifest, write_offload_state,
};

use crate::base::config::Config;
use crate::base::fsx::LockFile;
use crate::base::ids::RecordingId;
use crate::base::layout::PiLayout;
use flow::Uploader;
use state::read_state_lenient;

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
) -> Result<OffloadReport, OffloadError> {
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
) -> Result<OffloadReport, OffloadError> {
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
) -> Result<Vec<OffloadReport>, OffloadError> {
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

/// The storage root must exist: creating it (and the lock in it) on an
/// unmounted mount point would hide the real problem.
fn require_root(layout: &PiLayout) -> Result<(), OffloadError> {
    if layout.root.is_dir() {
        return Ok(());
    }
    Err(OffloadError::Config(ConfigProblem::NoStorageRoot(
        layout.root.clone(),
    )))
}

/// The upload lock at `path` (none on a dry run): waited for with
/// `wait_for_lock`, else [`OffloadError::Locked`] when another run holds it.
fn lock(path: &Path, opts: &OffloadOptions) -> Result<Option<LockFile>, OffloadError> {
    if opts.dry_run {
        return Ok(None);
    }
    let io_err = |source| OffloadError::Io {
        path: path.to_path_buf(),
        source,
    };
    if opts.wait_for_lock {
        return LockFile::acquire(path).map(Some).map_err(io_err);
    }
    match LockFile::try_acquire(path).map_err(io_err)? {
        Some(l) => Ok(Some(l)),
        None => Err(OffloadError::Locked(path.to_path_buf())),
    }
}
