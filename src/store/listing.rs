//! What is stored: sessions, recordings (stored iff their digest file, the
//! commit mark, exists), panoramas, and opening them to serve.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::SystemTime;

use super::{Store, StoreError};
use crate::base::checksum::Sha256;
use crate::base::ids::{CameraId, RecordingId, SessionId};

/// One camera's stored recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Size of `recording.mp4`.
    pub size: u64,
    /// The digest stored at receive time.
    pub sha256: Sha256,
    /// When it was stored: the mtime of `recording.sha256`.
    pub uploaded: SystemTime,
}

/// What is at a recording's path, not following symlinks.
#[derive(Debug)]
pub enum FileState {
    /// A regular file of this many bytes.
    Regular(u64),
    /// Something that is not a regular file.
    NotRegular,
    /// Nothing.
    Missing,
}

/// Why a recording cannot be served.
#[derive(Debug)]
pub enum OpenError {
    /// It is not stored (or its upload is not finished).
    Missing,
    /// An upload is replacing it right now.
    Replacing,
    /// Opening it failed.
    Io(io::Error),
}

impl Store {
    /// `rec` as stored: its digest (the commit mark) and file both exist.
    pub fn stored(&self, rec: &RecordingId) -> Option<Stored> {
        let digest_path = self.layout.digest(&rec.session, rec.camera);
        let sha256 = self.digest(rec)?;
        let uploaded = fs::metadata(&digest_path).ok()?.modified().ok()?;
        let size = fs::metadata(self.layout.recording(&rec.session, rec.camera))
            .ok()?
            .len();
        Some(Stored {
            size,
            sha256,
            uploaded,
        })
    }

    /// Whether `rec`'s digest file and recording both exist.
    pub fn is_stored(&self, session: &SessionId, camera: CameraId) -> bool {
        self.layout.digest(session, camera).is_file()
            && self.layout.recording(session, camera).is_file()
    }

    /// Whether all three cameras of `session` are stored.
    pub fn is_complete(&self, session: &SessionId) -> bool {
        CameraId::ALL.iter().all(|&c| self.is_stored(session, c))
    }

    /// The sessions under `sessions/`, sorted.
    pub fn sessions(&self) -> Result<Vec<SessionId>, StoreError> {
        self.layout
            .session_ids()
            .map_err(StoreError::io("listing sessions"))
    }

    /// Whether `session` has a directory.
    pub fn has_session(&self, session: &SessionId) -> bool {
        self.layout.session_dir(session).is_dir()
    }

    /// When `session`'s directory last changed.
    pub fn session_modified(&self, session: &SessionId) -> Option<SystemTime> {
        fs::metadata(self.layout.session_dir(session))
            .and_then(|m| m.modified())
            .ok()
    }

    /// The panorama's size and mtime, when it exists as a file.
    pub fn panorama(&self, session: &SessionId) -> Option<(u64, SystemTime)> {
        fs::metadata(self.layout.panorama(session))
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| Some((m.len(), m.modified().ok()?)))
    }

    /// The size of `rec`'s `recording.mp4`; `None` when there is none.
    pub fn recording_size(&self, rec: &RecordingId) -> io::Result<Option<u64>> {
        match fs::metadata(self.layout.recording(&rec.session, rec.camera)) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What is at `rec`'s `recording.mp4`, not following symlinks.
    pub fn recording_state(&self, rec: &RecordingId) -> io::Result<FileState> {
        match fs::symlink_metadata(self.layout.recording(&rec.session, rec.camera)) {
            Ok(m) if m.is_file() => Ok(FileState::Regular(m.len())),
            Ok(_) => Ok(FileState::NotRegular),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(FileState::Missing),
            Err(e) => Err(e),
        }
    }

    /// `rec`'s `manifest.json` text, refusing more than `max` bytes.
    pub fn manifest_text(&self, rec: &RecordingId, max: u64) -> io::Result<String> {
        read_small(&self.layout.manifest(&rec.session, rec.camera), max)
    }

    /// `rec`'s stored manifest, parsed and validated.
    pub fn manifest(
        &self,
        rec: &RecordingId,
    ) -> Result<crate::base::manifest::Manifest, crate::base::manifest::ManifestError> {
        crate::base::manifest::Manifest::read(&self.layout.manifest(&rec.session, rec.camera))
    }

    /// Opens `rec`'s recording to serve it, with the digest it has.
    ///
    /// Digest, open, digest again: an upload replacing the file removes the
    /// digest before the rename and writes the new one after it, so two
    /// equal reads around the open prove the open file has that digest.
    /// (A local file: an object-storage backend would hand out a ranged
    /// reader here.)
    pub fn open_recording(&self, rec: &RecordingId) -> Result<(File, Sha256), OpenError> {
        let before = self.digest(rec).ok_or(OpenError::Missing)?;
        let file = match open_regular(&self.layout.recording(&rec.session, rec.camera)) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(OpenError::Missing),
            Err(e) => return Err(OpenError::Io(e)),
        };
        if self.digest(rec) != Some(before) {
            return Err(OpenError::Replacing);
        }
        Ok((file, before))
    }

    /// Opens `session`'s panorama to serve it; `None` when there is none.
    pub fn open_panorama(&self, session: &SessionId) -> io::Result<Option<File>> {
        open_regular(&self.layout.panorama(session))
    }
}

/// Opens a regular file; `None` when there is none.
pub(super) fn open_regular(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(Some(f)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a small file, refusing anything larger than `max` bytes.
pub(super) fn read_small(path: &Path, max: u64) -> io::Result<String> {
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
