//! [`RecordError`]: why a recording, or its start, failed.

use std::error::Error;
use std::sync::Arc;

use serde_json::{Value, json};

use super::progress::ProgressLog;
use super::sustain;

/// Why a recording (or its start) failed. `code` is a stable snake_case
/// identifier (the `error` of `--json` output); `message` names the file,
/// key or flag and says what to do; [`Error::source`] is the cause, when
/// one underlies it (an `io::Error`, a probe or manifest error).
#[derive(Debug, Clone)]
pub struct RecordError {
    /// `invalid_config`, `storage_root_missing`, `storage_not_writable`,
    /// `insufficient_space`, `ffmpeg_missing`, `ffprobe_missing`, `source_unavailable`,
    /// `target_exists`, `capture_failed` or `manifest_failed`.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// What ffmpeg had encoded when a started capture failed (for the self
    /// test's `keeps up` check: a node too slow for its settings often fails
    /// this way, ffmpeg still encoding long after the duration).
    pub encoded: Option<sustain::Measured>,
    /// The underlying error, if any.
    cause: Option<Arc<dyn Error + Send + Sync>>,
}

/// Two errors are equal when they say the same; the cause is not compared.
impl PartialEq for RecordError {
    fn eq(&self, other: &RecordError) -> bool {
        (self.code, &self.message, &self.encoded) == (other.code, &other.message, &other.encoded)
    }
}

impl RecordError {
    pub(super) fn new(code: &'static str, message: impl Into<String>) -> RecordError {
        RecordError {
            code,
            message: message.into(),
            encoded: None,
            cause: None,
        }
    }

    /// Keeps `cause` as this error's [`Error::source`].
    pub(super) fn because(mut self, cause: impl Error + Send + Sync + 'static) -> RecordError {
        self.cause = Some(Arc::new(cause));
        self
    }

    /// Attaches what ffmpeg had encoded (its progress log).
    pub(super) fn with_encoded(mut self, log: &ProgressLog) -> RecordError {
        self.encoded = Some(sustain::Measured {
            measured_fps: log.measured_fps(),
            frames: log.last.frame,
            dropped: log.last.drop_frames,
            wall_sec: 0.0,
        });
        self
    }

    /// 2 for a configuration error, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        if self.code == "invalid_config" {
            crate::base::cli::EXIT_USAGE
        } else {
            crate::base::cli::EXIT_FAILURE
        }
    }

    /// The suite's JSON error shape.
    pub fn to_json(&self) -> Value {
        json!({"success": false, "error": self.code, "message": self.message})
    }
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for RecordError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_and_the_message_unchanged() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = RecordError::new("storage_not_writable", "/x: cannot create (denied)").because(io);
        assert_eq!(e.to_string(), "/x: cannot create (denied)");
        assert_eq!(e.source().map(|s| s.to_string()).as_deref(), Some("denied"));
        assert_eq!(
            e,
            RecordError::new("storage_not_writable", "/x: cannot create (denied)")
        );
    }
}
