//! `GET /api/v1/sessions/{id}/thumb.jpg`.

use super::download::{file_tag, serve_file};
use super::internal;
use crate::base::ids::SessionId;
use crate::base::protocol::code;
use crate::receive::state::State;
use crate::receive::thumbs::ThumbWait;
use crate::receive::{ApiError, Reply};
use crate::store::ThumbnailError;

/// `GET /api/v1/sessions/{id}/thumb.jpg`: a frame of the panorama if there
/// is one, else of CAM_C (else any camera), made once by the thumbnail
/// worker and kept as `sessions/S/thumb.jpg`; made again when its source is
/// newer.
pub(super) fn thumbnail(
    state: &State,
    req: &tiny_http::Request,
    session: &SessionId,
) -> Result<Reply, ApiError> {
    refresh(state, session)?;
    let file = match state.store.open_thumbnail(session) {
        Ok(Some(f)) => f,
        _ => return Err(no_source(session)),
    };
    let tag = file_tag(&file).map_err(|e| internal(format!("thumbnail of {session}: {e}")))?;
    Ok(
        serve_file(req, file, &tag, "image/jpeg", &format!("{session}.jpg"))?
            .with_header("Cache-Control", "no-cache"),
    )
}

/// Makes the thumbnail of `session` again if its source is newer, waiting
/// (a while) for the worker; 503 when it is not ready in time.
fn refresh(state: &State, session: &SessionId) -> Result<(), ApiError> {
    match state.thumbs.refresh(session) {
        Ok(()) => Ok(()),
        Err(ThumbWait::Failed(ThumbnailError::NoSource)) => Err(no_source(session)),
        Err(ThumbWait::Failed(e)) => Err(internal(format!(
            "making the thumbnail of session {session}: {e}"
        ))),
        Err(wait) => Err(ApiError::new(
            503,
            code::TIMEOUT,
            format!("the thumbnail of session {session} is not ready ({wait}); try again shortly"),
        )),
    }
}

/// 404: no recording of `session` to take a frame from.
fn no_source(session: &SessionId) -> ApiError {
    ApiError::new(
        404,
        code::RECORDING_NOT_FOUND,
        format!("session {session} has no recording to take a frame from yet"),
    )
}
