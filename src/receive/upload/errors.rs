//! What can go wrong with an upload, as the replies the client gets.

use std::io;

use super::super::multipart::FormError;
use crate::base::checksum::{FileDigest, Sha256};
use crate::base::ids::{CameraId, SessionId};
use crate::base::protocol::{code, field};
use crate::receive::ApiError;
use crate::receive::state::Limits;

/// Errors while reading the form: the form's own, or the upload's rules.
pub(super) enum ReadError {
    Form(FormError),
    Api(ApiError),
}

impl From<FormError> for ReadError {
    fn from(e: FormError) -> Self {
        ReadError::Form(e)
    }
}

impl From<ApiError> for ReadError {
    fn from(e: ApiError) -> Self {
        ReadError::Api(e)
    }
}

impl ReadError {
    pub(super) fn into_api(self, limits: &Limits) -> ApiError {
        match self {
            ReadError::Api(e) => e,
            ReadError::Form(FormError::Malformed(m)) => ApiError::new(400, code::BAD_REQUEST, m),
            ReadError::Form(FormError::Truncated { received }) => ApiError::new(
                400,
                code::BAD_REQUEST,
                format!(
                    "the body ended after {received} bytes, before the multipart closing \
                     boundary: the upload was cut off; send it again"
                ),
            ),
            ReadError::Form(FormError::TooLarge { .. }) => too_large(limits.max_upload_bytes, None),
            ReadError::Form(FormError::Deadline) => ApiError::new(
                408,
                code::TIMEOUT,
                format!(
                    "the upload took longer than server.upload_timeout_sec ({} s); \
                     nothing was stored",
                    limits.upload_timeout.as_secs()
                ),
            ),
            ReadError::Form(FormError::Stalled) => ApiError::new(
                408,
                code::TIMEOUT,
                format!(
                    "the upload stalled: nothing for server.stall_timeout_sec ({} s), or less \
                     than server.upload_min_kib_per_sec ({} KiB/s) over that time; nothing \
                     was stored",
                    limits.stall_timeout.as_secs(),
                    limits.upload_min_rate / 1024
                ),
            ),
            ReadError::Form(FormError::Io(e)) => ApiError::new(
                400,
                code::BAD_REQUEST,
                format!("reading the upload failed: {e}; nothing was stored"),
            ),
        }
    }
}

pub(super) fn too_large(max: u64, announced: Option<u64>) -> ApiError {
    let what = match announced {
        Some(n) => format!("the body is {n} bytes"),
        None => "the body grew".to_string(),
    };
    ApiError::new(
        413,
        code::TOO_LARGE,
        format!(
            "{what}, over server.max_upload_size_gb ({max} bytes of file plus form fields); \
             nothing was stored"
        ),
    )
}

pub(super) fn not_mp4() -> ApiError {
    ApiError::new(
        415,
        code::UNSUPPORTED_MEDIA_TYPE,
        "the file part is not an MP4 file (no ftyp box at its start); only MP4 recordings \
         are accepted"
            .into(),
    )
}

pub(super) fn invalid(name: &str, what: &str) -> ApiError {
    ApiError::new(400, code::INVALID_FIELD, format!("field {name}: {what}"))
}

/// A failed storage operation: 507 when the filesystem is full (the temp
/// file goes with the error, the daemon keeps serving), 500 otherwise.
pub(super) fn internal(what: &str, e: io::Error) -> ApiError {
    if is_disk_full(&e) {
        log::warn!("{what}: {e}");
        return ApiError::new(
            507,
            code::INSUFFICIENT_STORAGE,
            format!("{what}: the server's disk is full ({e}); nothing was stored, free space"),
        );
    }
    log::error!("{what}: {e}");
    ApiError::new(500, code::INTERNAL, format!("{what}: {e}"))
}

/// Whether `e` is "no space left on device" or "disk quota exceeded".
pub(super) fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(n) if n == rustix::io::Errno::NOSPC.raw_os_error() || n == rustix::io::Errno::DQUOT.raw_os_error())
}

pub(super) fn parse_session(s: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(s).map_err(|e| invalid(field::SESSION_ID, &e.to_string()))
}

pub(super) fn parse_camera(s: &str) -> Result<CameraId, ApiError> {
    CameraId::parse(s).map_err(|e| invalid(field::CAMERA_ID, &e.to_string()))
}

/// The form's checksum: 64 hex characters, either case.
pub(super) fn parse_checksum(s: &str) -> Result<Sha256, ApiError> {
    s.parse()
        .map_err(|e: crate::base::checksum::ParseSha256Error| {
            invalid(field::CHECKSUM, &e.to_string())
        })
}

/// 422 unless the received bytes' digest is the form's checksum.
pub(super) fn check_digest(digest: &FileDigest, expected: &Sha256) -> Result<(), ApiError> {
    if digest.sha256 == *expected {
        return Ok(());
    }
    Err(ApiError::new(
        422,
        code::CHECKSUM_MISMATCH,
        format!(
            "received {} bytes with SHA-256 {}, but the form's checksum is {expected}; \
             the file changed or was damaged in transit: upload it again",
            digest.size, digest.sha256
        ),
    ))
}
