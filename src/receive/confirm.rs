//! `POST /api/v1/upload/confirm`: the size and the digest stored at
//! receive time (`recording.sha256`), never re-reading the file.

use std::io::{self, Read};
use std::time::Instant;

use super::ApiError;
use super::state::State;
use super::trace::Trace;
use crate::base::checksum::Sha256;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::protocol::{ConfirmResponse, code};
use crate::store::StoredDigest;

/// Largest confirm request body, bytes.
const MAX_CONFIRM_BYTES: u64 = 64 * 1024;

/// `POST /api/v1/upload/confirm`: what was stored at receive time.
pub fn confirm(
    state: &State,
    req: &mut tiny_http::Request,
    trace: &mut Trace,
) -> Result<ConfirmResponse, ApiError> {
    let body = read_body(state, req)?;
    trace.bytes = body.len() as u64;
    if body.len() as u64 > MAX_CONFIRM_BYTES {
        return Err(bad(
            code::BAD_REQUEST,
            format!("confirm body is over {MAX_CONFIRM_BYTES} bytes"),
        ));
    }
    let rec = parse_body(&body)?;
    trace.grant.camera(rec.camera)?;
    trace.recording = Some(rec.to_string());
    let digest = stored_digest(state, &rec)?;
    let size = stored_size(state, &rec)?;
    Ok(ConfirmResponse {
        success: true,
        session_id: rec.session.to_string(),
        camera_id: rec.camera.to_string(),
        file_size: size,
        checksum_sha256: digest,
    })
}

/// 404: `rec` is not stored.
fn not_found(rec: &RecordingId) -> ApiError {
    ApiError::new(
        404,
        code::RECORDING_NOT_FOUND,
        format!("{rec} is not stored on this server; upload it first"),
    )
}

/// 500 with message `m`.
fn internal(m: String) -> ApiError {
    ApiError::new(500, code::INTERNAL, m)
}

/// The digest stored at receive time; 404 without one, 500 when damaged.
fn stored_digest(state: &State, rec: &RecordingId) -> Result<Sha256, ApiError> {
    match state.store.read_digest(rec) {
        Ok(StoredDigest::Valid(d)) => Ok(d),
        Ok(StoredDigest::Missing) => Err(not_found(rec)),
        Ok(StoredDigest::Damaged) => {
            let path = state.store.layout().digest(&rec.session, rec.camera);
            log::error!("{}: not a sha256sum line", path.display());
            Err(internal(format!(
                "the stored digest of {rec} is damaged; upload it again"
            )))
        }
        Err(e) => Err(internal(format!("reading the stored digest of {rec}: {e}"))),
    }
}

/// The stored recording's size; 404 when it is not stored.
fn stored_size(state: &State, rec: &RecordingId) -> Result<u64, ApiError> {
    match state.store.recording_size(rec) {
        Ok(Some(size)) => Ok(size),
        Ok(None) => Err(not_found(rec)),
        Err(e) => Err(internal(format!("reading the stored recording {rec}: {e}"))),
    }
}

fn bad(code: &'static str, m: String) -> ApiError {
    ApiError::new(400, code, m)
}

/// The body (one byte more than [`MAX_CONFIRM_BYTES`] at most), within
/// `server.small_body_timeout_sec` (a confirm body is tiny: it gets a
/// deadline, not the stall timeout per read).
fn read_body(state: &State, req: &mut tiny_http::Request) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    req.set_read_deadline(Some(Instant::now() + state.limits.small_body_timeout));
    req.as_reader()
        .take(MAX_CONFIRM_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ApiError::new(
                408,
                code::TIMEOUT,
                format!(
                    "the confirm body did not arrive within server.small_body_timeout_sec ({} s)",
                    state.limits.small_body_timeout.as_secs()
                ),
            ),
            _ => bad(
                code::BAD_REQUEST,
                format!("reading the request failed: {e}"),
            ),
        })?;
    Ok(body)
}

/// The recording a confirm body names: `{"session_id": .., "camera_id": ..}`.
fn parse_body(body: &[u8]) -> Result<RecordingId, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        bad(
            code::BAD_REQUEST,
            format!(
                "confirm body is not JSON ({e}); send {{\"session_id\": \"...\", \"camera_id\": \"...\"}}"
            ),
        )
    })?;
    if !value.is_object() {
        return Err(bad(
            code::BAD_REQUEST,
            "confirm body must be a JSON object with session_id and camera_id".into(),
        ));
    }
    let session = SessionId::parse(&text_field(&value, "session_id")?)
        .map_err(|e| bad(code::INVALID_FIELD, format!("field session_id: {e}")))?;
    let camera = CameraId::parse(&text_field(&value, "camera_id")?)
        .map_err(|e| bad(code::INVALID_FIELD, format!("field camera_id: {e}")))?;
    Ok(RecordingId::new(session, camera))
}

/// A string field of the confirm body.
fn text_field(value: &serde_json::Value, name: &str) -> Result<String, ApiError> {
    match value.get(name) {
        None | Some(serde_json::Value::Null) => Err(bad(
            code::MISSING_FIELD,
            format!(
                "confirm needs {name}; send {{\"session_id\": \"...\", \"camera_id\": \"...\"}}"
            ),
        )),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(bad(
            code::INVALID_FIELD,
            format!("field {name}: must be a string, got {other}"),
        )),
    }
}
