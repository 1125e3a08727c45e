//! rig-receive's two error types: why the daemon could not start
//! ([`ServerError`]) and an HTTP error reply ([`ApiError`]).

use std::error::Error;
use std::fmt;

/// Why the daemon could not start or stopped abnormally. Its text names the
/// config key or file; [`Error::source`] is the cause, when there is one.
#[derive(Debug)]
pub struct ServerError {
    message: String,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl ServerError {
    /// An error with no underlying cause.
    pub fn new(message: impl Into<String>) -> ServerError {
        ServerError {
            message: message.into(),
            source: None,
        }
    }

    /// An error whose text already says what `source` says.
    pub fn caused(
        message: impl Into<String>,
        source: impl Error + Send + Sync + 'static,
    ) -> ServerError {
        ServerError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl From<crate::store::StoreError> for ServerError {
    fn from(e: crate::store::StoreError) -> ServerError {
        ServerError::caused(e.to_string(), e)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for ServerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// An HTTP error reply: status, snake_case code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// One of [`crate::base::protocol::code`].
    pub code: &'static str,
    /// What was wrong and what to do.
    pub message: String,
    /// Fields sent beside `success`, `error` and `message`, for scripts:
    /// `received_bytes` of a 409 `offset_mismatch`, `cameras_missing` of a
    /// 409 `session_incomplete`, `job_id` of a 409 `job_in_progress`.
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    /// An error reply.
    pub fn new(status: u16, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            code,
            message,
            fields: Vec::new(),
        }
    }

    /// 405: `path` takes `allowed`, not `method`.
    pub fn method_not_allowed(path: &str, allowed: &str, method: &tiny_http::Method) -> ApiError {
        ApiError::new(
            405,
            crate::base::protocol::code::METHOD_NOT_ALLOWED,
            format!("{path} takes {allowed}, not {method}"),
        )
    }

    /// The same error, telling the client how many bytes of a partial the
    /// server holds.
    pub fn with_received_bytes(self, n: u64) -> ApiError {
        self.with_field("received_bytes", n.into())
    }

    /// The same error with `name: value` beside its message.
    pub fn with_field(mut self, name: &'static str, value: serde_json::Value) -> ApiError {
        self.fields.push((name, value));
        self
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl Error for ApiError {}
