//! Why a storage operation failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A failed storage operation. Its text is what rig-receive and rig-check
/// have always said; [`std::error::Error::source`] is the I/O cause.
#[derive(Debug)]
pub enum StoreError {
    /// An I/O operation failed; `what` names it and the file it was about.
    Io {
        /// What was being done, e.g. `fsync of the temp file`.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A manifest could not be stored.
    Manifest {
        /// What was being stored, e.g. `storing GAME_1_CAM_L`.
        what: String,
        /// Why it failed.
        source: crate::base::manifest::ManifestError,
    },
    /// `temp/` and `sessions/` are on different filesystems, so a verified
    /// upload cannot be moved into place by rename.
    SplitFilesystems {
        /// `storage.temp_path`.
        temp: PathBuf,
        /// `storage.sessions_path`.
        sessions: PathBuf,
    },
}

impl StoreError {
    /// An I/O failure while doing `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
        let what = what.into();
        move |source| StoreError::Io { what, source }
    }

    /// What was being done (for a message that adds its own context).
    pub fn what(&self) -> String {
        match self {
            StoreError::Io { what, .. } | StoreError::Manifest { what, .. } => what.clone(),
            StoreError::SplitFilesystems { .. } => self.to_string(),
        }
    }

    /// The I/O cause, if it is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Manifest { .. } | StoreError::SplitFilesystems { .. } => None,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io { what, source } => write!(f, "{what}: {source}"),
            StoreError::Manifest { what, source } => write!(f, "{what}: {source}"),
            StoreError::SplitFilesystems { temp, sessions } => write!(
                f,
                "storage.temp_path {} and storage.sessions_path {} are on different \
                 filesystems; verified uploads are moved by rename, which needs one \
                 filesystem: put temp_path beside sessions_path",
                temp.display(),
                sessions.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
            StoreError::Manifest { source, .. } => Some(source),
            StoreError::SplitFilesystems { .. } => None,
        }
    }
}
