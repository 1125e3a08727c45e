//! The recording's file: created with `create_new` under its final name,
//! and the live lock held on it while it is written (see the module docs of
//! [`crate::record`]).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use super::RecordError;
use crate::base::fsx;
use crate::base::ids::RecordingId;
use crate::base::layout::PiLayout;

/// Takes the live lock on a recording being written (see the module docs):
/// an exclusive lock through a handle of its own, held until it is dropped.
/// `Ok(None)` when the filesystem cannot lock; the recording goes on
/// unguarded rather than not at all.
pub(super) fn hold_live_lock(video: &Path) -> Result<Option<File>, RecordError> {
    let file = File::open(video).map_err(|e| {
        RecordError::new(
            "storage_not_writable",
            format!("{}: cannot open to lock ({e})", video.display()),
        )
        .because(e)
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

/// Creates the recording's file with `create_new` and makes its directory
/// entry durable.
pub(super) fn create_target(
    layout: &PiLayout,
    rec: &RecordingId,
) -> Result<(File, PathBuf), RecordError> {
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
    for dir in [layout.recording_dir(rec), layout.manifest_dir(rec)] {
        fs::create_dir_all(&dir).map_err(|e| not_writable(&dir, e))?;
    }
    let file = open_new(&video, rec)?;
    fsx::sync_dir(&layout.recording_dir(rec)).map_err(|e| not_writable(&video, e))?;
    Ok((file, video))
}

/// `path` could not be made: the storage is not writable.
fn not_writable(path: &Path, e: io::Error) -> RecordError {
    RecordError::new(
        "storage_not_writable",
        format!("{}: cannot create ({e})", path.display()),
    )
    .because(e)
}

/// Creates the recording's file, never overwriting one that exists.
fn open_new(video: &Path, rec: &RecordingId) -> Result<File, RecordError> {
    File::options()
        .write(true)
        .create_new(true)
        .open(video)
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
                not_writable(video, e)
            }
        })
}
