//! Reading a server's replies the way other PROTOCOL.md servers write them,
//! not only the way rig-receive does (PROTOCOL-EXTENSIONS.md "Talking to
//! other servers").
//!
//! The Python reference server answers an upload with 201 and `size_bytes`
//! (rig-receive: 200 and `file_size`), a confirm with `size_bytes`, a
//! checksum mismatch with 400 `{"error": "Checksum mismatch"}` and no
//! `message`, and its health without `storage_free_gb`/`active_uploads`.
//! What decides an offload stays the same: the confirm digest equals ours.

use std::fmt;

use serde_json::Value;

use crate::base::checksum::{ParseSha256Error, Sha256};
use crate::base::protocol::code;

/// A 2xx upload reply. Every field is optional; only an explicit `false`
/// or a size other than the file's fails the attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReply {
    /// `success`.
    pub success: Option<bool>,
    /// `checksum_verified`.
    pub checksum_verified: Option<bool>,
    /// `file_size` (rig-receive) or `size_bytes` (the Python server).
    pub size: Option<u64>,
    /// `manifest_warnings`: what the server repaired in our manifest.
    pub manifest_warnings: Vec<String>,
}

/// A 2xx confirm reply: the server's digest, and its IDs and size when sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmReply {
    /// `checksum_sha256`, lowercase.
    pub checksum_sha256: Sha256,
    /// `session_id`, when sent.
    pub session_id: Option<String>,
    /// `camera_id`, when sent.
    pub camera_id: Option<String>,
    /// `file_size` or `size_bytes`, when sent.
    pub size: Option<u64>,
}

/// A health reply; the figures are optional (other servers omit them).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthReply {
    /// `healthy`, `degraded`, ...
    pub status: String,
    /// Free space of the server's storage, GB.
    pub storage_free_gb: Option<f64>,
    /// Uploads in flight.
    pub active_uploads: Option<u64>,
}

/// An error reply: a snake_case code and a message, whatever the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// `error` when it is a code, else `error` in snake_case
    /// (`"Checksum mismatch"` -> `checksum_mismatch`), else `http_<status>`.
    pub code: String,
    /// `message`, else the free-text `error`, else the body's start.
    pub message: String,
}

/// Why a 2xx body is not the reply it should be. Displays as the end of a
/// sentence ("... answered 200 but {this}").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The body is no JSON object.
    NotAnObject,
    /// A required field is absent (or not a string).
    Missing(&'static str),
    /// `checksum_sha256` is there but not a digest.
    NotADigest(ParseSha256Error),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::NotAnObject => f.write_str("the body is not a JSON object"),
            ReplyError::Missing(field) => write!(f, "it has no {field}"),
            ReplyError::NotADigest(_) => f.write_str("its checksum_sha256 is not a SHA-256 digest"),
        }
    }
}

impl std::error::Error for ReplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReplyError::NotADigest(e) => Some(e),
            _ => None,
        }
    }
}

fn object(text: &str) -> Result<serde_json::Map<String, Value>, ReplyError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(ReplyError::NotAnObject),
    }
}

fn size_of(o: &serde_json::Map<String, Value>) -> Option<u64> {
    o.get("file_size")
        .or_else(|| o.get("size_bytes"))
        .and_then(Value::as_u64)
}

/// Reads a 2xx upload reply; an error only when the body is not a JSON object.
pub fn upload_reply(text: &str) -> Result<UploadReply, ReplyError> {
    let o = object(text)?;
    let warnings = o
        .get("manifest_warnings")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(UploadReply {
        success: o.get("success").and_then(Value::as_bool),
        checksum_verified: o.get("checksum_verified").and_then(Value::as_bool),
        size: size_of(&o),
        manifest_warnings: warnings,
    })
}

/// Reads a 2xx confirm reply; the reason when it carries no digest.
pub fn confirm_reply(text: &str) -> Result<ConfirmReply, ReplyError> {
    let o = object(text)?;
    let digest = o
        .get("checksum_sha256")
        .and_then(Value::as_str)
        .ok_or(ReplyError::Missing("checksum_sha256"))?
        .parse::<Sha256>()
        .map_err(ReplyError::NotADigest)?;
    let string = |k: &str| o.get(k).and_then(Value::as_str).map(String::from);
    Ok(ConfirmReply {
        checksum_sha256: digest,
        session_id: string("session_id"),
        camera_id: string("camera_id"),
        size: size_of(&o),
    })
}

/// Reads a 2xx upload status reply (PROTOCOL-EXTENSIONS.md): the
/// `received_bytes` to resume from. Only the length matters: other
/// servers' echoes of the IDs and the checksum are metadata, and a
/// malformed one must not stop a resume.
pub fn status_reply(text: &str) -> Result<u64, ReplyError> {
    object(text)?
        .get("received_bytes")
        .and_then(Value::as_u64)
        .ok_or(ReplyError::Missing("received_bytes"))
}

/// Reads a health reply; the reason when it has no `status`.
pub fn health_reply(text: &str) -> Result<HealthReply, ReplyError> {
    let o = object(text)?;
    let status = o
        .get("status")
        .and_then(Value::as_str)
        .ok_or(ReplyError::Missing("status"))?;
    Ok(HealthReply {
        status: status.to_string(),
        storage_free_gb: o.get("storage_free_gb").and_then(Value::as_f64),
        active_uploads: o.get("active_uploads").and_then(Value::as_u64),
    })
}

/// Reads an error reply of any shape.
pub fn error_reply(status: u16, text: &str) -> ErrorReply {
    let o = object(text).ok();
    let field = |k: &str| {
        o.as_ref()
            .and_then(|o| o.get(k))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let error = field("error");
    let code = match error {
        Some(e) if is_mismatch(e) => code::CHECKSUM_MISMATCH.to_string(),
        Some(e) if e.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => e.to_string(),
        Some(e) => snake(e),
        None => format!("http_{status}"),
    };
    let message = match (field("message"), error) {
        (Some(m), _) => m.to_string(),
        (None, Some(e)) => e.to_string(),
        (None, None) => text.trim().chars().take(200).collect(),
    };
    ErrorReply { code, message }
}

/// Free text in snake_case: lowercase, runs of anything but letters and
/// digits become one `_`.
fn snake(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').chars().take(64).collect()
}

/// Whether an `error` names a checksum mismatch, however it is written
/// (`checksum_mismatch`, `Checksum mismatch`, `CHECKSUM-MISMATCH: ...`).
pub fn is_mismatch(error: &str) -> bool {
    snake(error).contains("checksum_mismatch")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_replies_of_both_servers() {
        let ours = upload_reply(
            r#"{"success":true,"recording_id":"A_1_CAM_L","file_size":5,"checksum_verified":true}"#,
        )
        .unwrap();
        assert_eq!(ours.size, Some(5));
        assert_eq!(ours.checksum_verified, Some(true));
        let python = upload_reply(r#"{"success": true, "size_bytes": 7}"#).unwrap();
        assert_eq!(python.size, Some(7));
        assert_eq!(python.checksum_verified, None);
        assert_eq!(upload_reply("{}").unwrap(), UploadReply::default());
        assert_eq!(upload_reply("created"), Err(ReplyError::NotAnObject));
    }

    #[test]
    fn confirm_needs_only_the_digest() {
        let upper = "AB".repeat(32);
        let text = format!(r#"{{"checksum_sha256": "{upper}", "size_bytes": 3}}"#);
        let r = confirm_reply(&text).unwrap();
        assert_eq!(
            (r.checksum_sha256.to_string(), r.size),
            ("ab".repeat(32), Some(3))
        );
        let short = confirm_reply(r#"{"checksum_sha256": "AB"}"#).unwrap_err();
        assert_eq!(
            short.to_string(),
            "its checksum_sha256 is not a SHA-256 digest"
        );
        assert!(std::error::Error::source(&short).is_some());
        assert_eq!(r.session_id, None);
        let none = confirm_reply(r#"{"size_bytes": 3}"#).unwrap_err();
        assert_eq!(none.to_string(), "it has no checksum_sha256");
        assert_eq!(
            confirm_reply("[1]").unwrap_err().to_string(),
            "the body is not a JSON object"
        );
    }

    #[test]
    fn status_needs_the_resume_point_only() {
        let text =
            r#"{"received_bytes": 7, "session_id": "x", "camera_id": "CAM_C", "checksum": "x"}"#;
        assert_eq!(status_reply(text), Ok(7));
        assert_eq!(status_reply(r#"{"received_bytes": 7}"#), Ok(7));
        assert_eq!(
            status_reply(r#"{"received_bytes": -1}"#)
                .unwrap_err()
                .to_string(),
            "it has no received_bytes"
        );
        assert_eq!(status_reply("7"), Err(ReplyError::NotAnObject));
    }

    #[test]
    fn health_without_figures() {
        let h = health_reply(r#"{"status":"healthy","service":"x","version":"1"}"#).unwrap();
        assert_eq!((h.storage_free_gb, h.active_uploads), (None, None));
        assert_eq!(health_reply("[]"), Err(ReplyError::NotAnObject));
        assert_eq!(
            health_reply("{}").unwrap_err().to_string(),
            "it has no status"
        );
    }

    #[test]
    fn errors_of_any_shape() {
        for (status, body, code, message) in [
            (
                422,
                r#"{"success":false,"error":"checksum_mismatch","message":"m"}"#,
                "checksum_mismatch",
                "m",
            ),
            (
                400,
                r#"{"success":false,"error":"Checksum mismatch","expected":"a","calculated":"b"}"#,
                "checksum_mismatch",
                "Checksum mismatch",
            ),
            (
                400,
                r#"{"error":"CHECKSUM-MISMATCH: try again"}"#,
                "checksum_mismatch",
                "CHECKSUM-MISMATCH: try again",
            ),
            (
                400,
                r#"{"error":"Missing session_id"}"#,
                "missing_session_id",
                "Missing session_id",
            ),
            (502, "Bad Gateway", "http_502", "Bad Gateway"),
        ] {
            let e = error_reply(status, body);
            assert_eq!(
                (e.code.as_str(), e.message.as_str()),
                (code, message),
                "{body}"
            );
        }
    }
}
