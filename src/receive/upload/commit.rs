//! A verified upload's last step: the manifest to store (the client's, the
//! stored one, or ffprobe's), the commit ([`crate::store::Store::commit`]),
//! and a stitch queued once the session's three cameras are stored.

use std::path::Path;

use tempfile::NamedTempFile;

use super::errors::internal;
use crate::base::checksum::FileDigest;
use crate::base::ids::RecordingId;
use crate::base::jobs::JobQueue;
use crate::base::manifest::Manifest;
use crate::base::manifest::describe::{self, DescribeError, DescribeOptions};
use crate::base::protocol::code;
use crate::receive::ApiError;
use crate::receive::incoming::Settled;
use crate::receive::state::State;
use crate::store::{Commit, StoreError};

/// Commits a verified upload: the manifest it comes with wins; without
/// one, an identical re-upload keeps the stored manifest (most likely the
/// Pi's own), anything else gets ffprobe's.
pub(super) fn store(
    state: &State,
    rec: &RecordingId,
    temp: NamedTempFile,
    digest: &FileDigest,
    settled: Settled,
) -> Result<(), ApiError> {
    let existing = state.store.existing(rec);
    let identical = existing.identical(digest);
    let manifest = match settled.manifest {
        Some(m) => Some(m),
        None if identical && state.store.has_valid_manifest(rec) => None,
        None => Some(describe_upload(state, rec, temp.path(), digest)?),
    };
    let changed = state
        .store
        .commit(Commit {
            rec,
            temp,
            digest,
            existing,
            manifest,
            client_manifest: settled.original.as_deref(),
        })
        .map_err(store_failure)?;
    enqueue_if_complete(state, rec, changed);
    Ok(())
}

/// The reply to a failed commit: 507 when the disk is full, else 500.
pub(super) fn store_failure(e: StoreError) -> ApiError {
    match e {
        StoreError::Io { what, source } => internal(&what, source),
        other => ApiError::new(500, code::INTERNAL, other.to_string()),
    }
}

/// A manifest for an upload that came without one: ffprobe on the temp file,
/// the digest already computed (no second read for hashing), its timing
/// marked as the guess it is (`timing.guessed`).
pub(super) fn describe_upload(
    state: &State,
    rec: &RecordingId,
    temp: &Path,
    digest: &FileDigest,
) -> Result<Manifest, ApiError> {
    let opts = DescribeOptions {
        ffprobe: state.ffprobe.clone(),
        digest: Some(digest.clone()),
        ..DescribeOptions::default()
    };
    let mut m = describe::describe(temp, rec, &opts).map_err(|e| describe_error(rec, temp, e))?;
    crate::base::manifest::repair::mark_timing_guessed(
        &mut m,
        crate::base::manifest::repair::FILE_TIMING_GUESS,
    );
    Ok(m)
}

/// 500 when the server could not run ffprobe or read the file (logged),
/// 415 when the upload is no readable recording; the temp path is not
/// shown.
fn describe_error(rec: &RecordingId, temp: &Path, e: DescribeError) -> ApiError {
    let text = e
        .to_string()
        .replace(&temp.display().to_string(), "the uploaded file");
    match e {
        DescribeError::Probe(crate::base::ffmpeg::ProbeError::ToolMissing { .. })
        | DescribeError::Probe(crate::base::ffmpeg::ProbeError::Io { .. })
        | DescribeError::Io(_) => {
            log::error!("{rec}: cannot describe the upload: {text}");
            ApiError::new(
                500,
                code::INTERNAL,
                format!("cannot describe {rec}: {text}"),
            )
        }
        _ => ApiError::new(
            415,
            code::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "{rec} came without a manifest and is not a readable recording ({text}); \
                 nothing was stored"
            ),
        ),
    }
}

/// Queues a stitch once all three cameras of the session are stored. A
/// failure here is logged, not returned: the recording itself is safe.
pub(super) fn enqueue_if_complete(state: &State, rec: &RecordingId, changed: bool) {
    let s = &rec.session;
    if !state.store.is_complete(s) {
        return;
    }
    let queue = JobQueue::new(state.store.layout());
    if !changed {
        match queue.latest_for(s) {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => {
                log::error!("{s}: all three cameras stored, but the job queue is unreadable: {e}");
                return;
            }
        }
    }
    // A replaced recording needs a stitch of what is stored now, even when
    // one is running on the old file (enqueue_fresh queues behind it).
    let queued = if changed {
        queue.enqueue_fresh(s)
    } else {
        queue.enqueue(s)
    };
    match queued {
        Ok((job, true)) => log::info!(
            "{s}: all three cameras stored; queued stitch job {}",
            job.id
        ),
        Ok((job, false)) => log::info!("{s}: stitch job {} already {}", job.id, job.status),
        Err(e) => log::error!("{s}: all three cameras stored, but queueing the stitch failed: {e}"),
    }
}
