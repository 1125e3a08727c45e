//! `GET /api/v1/upload/status?session_id=S&camera_id=C&checksum=H`: how
//! many bytes of an interrupted upload the server holds as a partial
//! (PROTOCOL-EXTENSIONS.md, "Resumable uploads"; the files are
//! [`crate::store::PartialStore`]'s).

use std::time::{Duration, Instant};

use super::ApiError;
use super::trace::Trace;
use crate::base::checksum::Sha256;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::protocol::{UPLOAD_STATUS_PATH, UploadStatusResponse, code, field};
use crate::store::PartialStore;

/// Answers a status request.
///
/// While an upload of the recording is in flight (`busy`), the answer waits
/// for it to end, up to `wait`: a client retrying after a drop usually asks
/// before the server has finished closing the dropped upload, and the
/// partial it is about to keep is the answer the client needs.
pub fn status(
    store: &PartialStore,
    url: &str,
    trace: &mut Trace,
    busy: impl Fn(&RecordingId) -> bool,
    wait: Duration,
) -> Result<UploadStatusResponse, ApiError> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let session = SessionId::parse(&param(query, field::SESSION_ID)?)
        .map_err(|e| bad(field::SESSION_ID, e.to_string()))?;
    let camera = CameraId::parse(&param(query, field::CAMERA_ID)?)
        .map_err(|e| bad(field::CAMERA_ID, e.to_string()))?;
    // The same camera binding as the upload it prepares: a key bound to
    // CAM_L learns here, not after sending 20 GB, that it may not be CAM_C.
    trace.grant.camera(camera)?;
    let checksum: Sha256 = param(query, field::CHECKSUM)?.parse().map_err(|_| {
        bad(
            field::CHECKSUM,
            "must be a SHA-256 digest, 64 hex characters".into(),
        )
    })?;
    let rec = RecordingId::new(session, camera);
    trace.recording = Some(rec.to_string());
    let until = Instant::now() + wait;
    while busy(&rec) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(UploadStatusResponse {
        received_bytes: store.received(&rec, &checksum),
        session_id: rec.session.to_string(),
        camera_id: rec.camera.to_string(),
        checksum,
    })
}

/// The query parameter `name`; 400 `missing_field` when absent.
fn param(query: &str, name: &str) -> Result<String, ApiError> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| {
            ApiError::new(
                400,
                code::MISSING_FIELD,
                format!(
                    "status needs the query parameter {name}: \
                     {UPLOAD_STATUS_PATH}?session_id=S&camera_id=C&checksum=H"
                ),
            )
        })
}

fn bad(name: &str, e: String) -> ApiError {
    ApiError::new(400, code::INVALID_FIELD, format!("parameter {name}: {e}"))
}
