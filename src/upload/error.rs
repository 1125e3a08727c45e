//! The two kinds of failure of an offload: [`OffloadError`] stops a run
//! before or between recordings; [`AttemptError`] fails one attempt (or the
//! preparation) of one recording and says whether another is worth it.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::base::http::HttpSetupError;

/// Why the client could not even try: these stop a run (exit 2 for
/// configuration, 1 otherwise). Failures of one recording are reports.
#[derive(Debug)]
pub enum OffloadError {
    /// Another rig-upload holds the lock.
    Locked(PathBuf),
    /// The configuration cannot work (bad server URL, no storage root).
    Config(ConfigProblem),
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

/// A configuration an offload cannot work with.
#[derive(Debug)]
pub enum ConfigProblem {
    /// `node.storage_root` is not a directory (an unmounted drive?).
    NoStorageRoot(PathBuf),
    /// `offload.server_url` is not a URL with a host.
    ServerUrl(String),
    /// The API key or the TLS roots could not be set up.
    Http(HttpSetupError),
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigProblem::NoStorageRoot(root) => write!(
                f,
                "storage root {} is not a directory (is the drive mounted?); \
                 set node.storage_root or --root",
                root.display()
            ),
            ConfigProblem::ServerUrl(url) => write!(
                f,
                "offload.server_url: {url:?} is not a usable URL; \
                 expected e.g. http://192.168.1.200:8081"
            ),
            ConfigProblem::Http(e) => e.fmt(f),
        }
    }
}

impl Error for ConfigProblem {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ConfigProblem::Http(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffloadError::Locked(p) => write!(
                f,
                "another rig-upload is running (lock {} is held); nothing done, \
                 try again when it has finished",
                p.display()
            ),
            OffloadError::Config(problem) => problem.fmt(f),
            OffloadError::State { path, source } => {
                write!(f, "offload state {}: {source}", path.display())
            }
            OffloadError::Io { path, source } => write!(f, "{}: {source}", path.display()),
        }
    }
}

impl Error for OffloadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            OffloadError::Locked(_) => None,
            OffloadError::Config(problem) => Some(problem),
            OffloadError::State { source, .. } | OffloadError::Io { source, .. } => Some(source),
        }
    }
}

impl OffloadError {
    /// True for configuration problems (exit 2).
    pub fn is_config(&self) -> bool {
        matches!(self, OffloadError::Config(_))
    }

    /// The snake_case code `rig-upload --json` prints for it.
    pub fn code(&self) -> &'static str {
        match self {
            OffloadError::Locked(_) => "locked",
            OffloadError::Config(_) => "config_error",
            OffloadError::State { .. } => "state_error",
            OffloadError::Io { .. } => "io_error",
        }
    }
}

/// Why one attempt (or the preparation) of one recording failed: a
/// snake_case code for reports, a message for people, whether another
/// attempt is worth it, and the error underneath when there is one.
#[derive(Debug, Clone)]
pub(crate) struct AttemptError {
    /// Worth another attempt.
    pub(crate) retry: bool,
    /// snake_case code.
    pub(crate) code: String,
    /// For humans (it already names the cause).
    pub(crate) message: String,
    /// The error underneath (I/O, transport), for [`Error::source`].
    cause: Option<Arc<dyn Error + Send + Sync>>,
}

impl AttemptError {
    /// A failure another attempt would not cure.
    pub(crate) fn fatal(code: &str, message: impl Into<String>) -> AttemptError {
        AttemptError {
            retry: false,
            code: code.into(),
            message: message.into(),
            cause: None,
        }
    }

    /// A failure worth another attempt after the backoff.
    pub(crate) fn retry(code: &str, message: impl Into<String>) -> AttemptError {
        AttemptError {
            retry: true,
            ..AttemptError::fatal(code, message)
        }
    }

    /// The same failure, keeping `cause` as its source.
    pub(crate) fn caused_by(mut self, cause: impl Error + Send + Sync + 'static) -> AttemptError {
        self.cause = Some(Arc::new(cause));
        self
    }
}

impl fmt::Display for AttemptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for AttemptError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_cause_and_their_text() {
        let io = || io::Error::new(io::ErrorKind::PermissionDenied, "denied");
        let e = OffloadError::State {
            path: "/x/S_C.offload.json".into(),
            source: io(),
        };
        assert_eq!(e.to_string(), "offload state /x/S_C.offload.json: denied");
        assert_eq!(e.source().unwrap().to_string(), "denied");
        assert_eq!(e.code(), "state_error");
        let root = OffloadError::Config(ConfigProblem::NoStorageRoot("/mnt/nvme".into()));
        assert!(root.is_config());
        assert!(
            root.to_string()
                .starts_with("storage root /mnt/nvme is not a directory")
        );
        let a = AttemptError::fatal("file_unreadable", "recording v.mp4: denied").caused_by(io());
        assert!(!a.retry);
        assert_eq!(a.to_string(), "recording v.mp4: denied");
        assert_eq!(a.source().unwrap().to_string(), "denied");
        assert!(AttemptError::retry("timeout", "t").retry);
        assert!(AttemptError::retry("timeout", "t").source().is_none());
    }
}
