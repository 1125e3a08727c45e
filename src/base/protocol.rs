//! The offload protocol's messages (PROTOCOL.md "API Endpoints") as types.
//!
//! Field names and order are exactly the seed's; server and client both use
//! these, so they cannot drift apart.

use crate::base::checksum::Sha256;
use serde::{Deserialize, Serialize};

/// Largest `manifest` field rig-receive accepts, and the largest stored
/// manifest rig-check reads, bytes: room for a flat manifest's
/// `snapshot_base64` JPEG. It is held in memory (with its parsed JSON, about
/// three times this) for one upload at a time per worker.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// `POST /api/v1/upload`
pub const UPLOAD_PATH: &str = "/api/v1/upload";
/// `POST /api/v1/upload/confirm`
pub const CONFIRM_PATH: &str = "/api/v1/upload/confirm";
/// `GET /api/v1/health`
pub const HEALTH_PATH: &str = "/api/v1/health";
/// `GET /api/v1/upload/status?session_id=S&camera_id=C&checksum=H`: how many
/// bytes of an interrupted upload the server holds (PROTOCOL-EXTENSIONS.md).
pub const UPLOAD_STATUS_PATH: &str = "/api/v1/upload/status";

/// Multipart field names of the upload request.
pub mod field {
    /// The video file part.
    pub const FILE: &str = "file";
    /// Session identifier.
    pub const SESSION_ID: &str = "session_id";
    /// Camera identifier.
    pub const CAMERA_ID: &str = "camera_id";
    /// SHA-256 of the file, 64 hex digits ([`crate::base::checksum::Sha256`]'s text: rig-upload
    /// sends lowercase, rig-receive reads either case).
    pub const CHECKSUM: &str = "checksum";
    /// The manifest as JSON text (optional).
    pub const MANIFEST: &str = "manifest";
    /// Resume extension (optional, before the file part): the byte of the
    /// file the file part starts at.
    pub const OFFSET: &str = "offset";
}

/// `200` reply of `GET /api/v1/upload/status` (PROTOCOL-EXTENSIONS.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadStatusResponse {
    /// Bytes of the file the server holds for this key: the `offset` to
    /// resume from; 0 when there is nothing to resume.
    pub received_bytes: u64,
    /// Session identifier.
    pub session_id: String,
    /// Camera identifier.
    pub camera_id: String,
    /// The checksum asked about.
    pub checksum: Sha256,
}

/// `200` reply to an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadResponse {
    /// Always true in a 200.
    pub success: bool,
    /// `{session_id}_{camera_id}`.
    pub recording_id: String,
    /// Bytes stored.
    pub file_size: u64,
    /// The received bytes' digest equalled the form's `checksum`.
    pub checksum_verified: bool,
    /// What rig-receive found wrong with the client's manifest and repaired
    /// (PROTOCOL-EXTENSIONS.md); absent when there was nothing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifest_warnings: Vec<String>,
}

/// Body of a confirm request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmRequest {
    /// Session identifier.
    pub session_id: String,
    /// Camera identifier.
    pub camera_id: String,
}

/// `200` reply to a confirm: what the server stored at receive time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmResponse {
    /// Always true in a 200.
    pub success: bool,
    /// Session identifier.
    pub session_id: String,
    /// Camera identifier.
    pub camera_id: String,
    /// Size of the stored file.
    pub file_size: u64,
    /// SHA-256 computed while receiving, lowercase hex.
    pub checksum_sha256: Sha256,
}

/// Reply to a health check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthResponse {
    /// `healthy`, or `degraded` when free space is under the floor.
    pub status: String,
    /// Free space of the sessions filesystem, GB.
    pub storage_free_gb: f64,
    /// Uploads in flight right now.
    pub active_uploads: u64,
}

/// Every error reply: `{"success": false, "error": "<code>", "message": "<text>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// Always false.
    pub success: bool,
    /// A snake_case code from [`code`].
    pub error: String,
    /// Human text saying what was wrong and, where possible, what to do.
    pub message: String,
}

/// The error codes the server sends, one per failure kind.
pub mod code {
    /// 400: a required field is missing.
    pub const MISSING_FIELD: &str = "missing_field";
    /// 400: a field is present but invalid (bad ID, bad checksum syntax, ...).
    pub const INVALID_FIELD: &str = "invalid_field";
    /// 400: the manifest does not parse, validate or agree with the form.
    pub const INVALID_MANIFEST: &str = "invalid_manifest";
    /// 400: the request body is malformed (broken multipart, bad JSON).
    pub const BAD_REQUEST: &str = "bad_request";
    /// 404: no such route.
    pub const NOT_FOUND: &str = "not_found";
    /// 404: no such recording.
    pub const RECORDING_NOT_FOUND: &str = "recording_not_found";
    /// 405: the route exists, the method is wrong.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 404: no such session.
    pub const SESSION_NOT_FOUND: &str = "session_not_found";
    /// 404: no such stitch job.
    pub const JOB_NOT_FOUND: &str = "job_not_found";
    /// 409: a stitch was asked of a session without all three cameras.
    pub const SESSION_INCOMPLETE: &str = "session_incomplete";
    /// 409: a stitch of the session is already queued or running.
    pub const JOB_IN_PROGRESS: &str = "job_in_progress";
    /// 416: the `Range` asked for lies outside the file.
    pub const RANGE_NOT_SATISFIABLE: &str = "range_not_satisfiable";
    /// 409: a resumed upload's `offset` is not the length of the server's
    /// partial; the reply's `received_bytes` says where to resume.
    pub const OFFSET_MISMATCH: &str = "offset_mismatch";
    /// 409: the same recording is being uploaded right now.
    pub const UPLOAD_IN_PROGRESS: &str = "upload_in_progress";
    /// 413: the body is larger than `max_upload_size_gb`.
    pub const TOO_LARGE: &str = "payload_too_large";
    /// 415: not multipart, or the file is not MP4.
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    /// 422: the received bytes' digest differs from `checksum`. Clients retry.
    pub const CHECKSUM_MISMATCH: &str = "checksum_mismatch";
    /// 507: storing it would leave less than `min_free_space_gb`.
    pub const INSUFFICIENT_STORAGE: &str = "insufficient_storage";
    /// 408: the upload took longer than `upload_timeout_sec` or stalled.
    pub const TIMEOUT: &str = "request_timeout";
    /// 500: the server failed (disk error, ...). Clients retry.
    pub const INTERNAL: &str = "internal_error";
    /// 503: the server is shutting down and takes no new work. Clients retry.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// 401: no API key, or not one of the server's.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: the API key may not upload as this camera.
    pub const CAMERA_NOT_ALLOWED: &str = "camera_not_allowed";
    /// 403: the client's address is not in `server.allow_ips`.
    pub const IP_NOT_ALLOWED: &str = "ip_not_allowed";
}
