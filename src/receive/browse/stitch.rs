//! `POST /api/v1/sessions/{id}/stitch`: queue a stitch on request.

use super::jobs_error;
use super::scan::scan_session;
use super::sessions::JobReply;
use crate::base::ids::{CameraId, SessionId};
use crate::base::jobs::{Job, JobQueue};
use crate::base::protocol::code;
use crate::receive::reply::json_reply;
use crate::receive::state::State;
use crate::receive::{ApiError, Reply};

/// `POST /api/v1/sessions/{id}/stitch`: 202 with the new job; 409 when a
/// camera is missing or a stitch is already queued or running. A session
/// already stitched may be stitched again (say after a recording was
/// replaced): a new job is queued.
pub(super) fn stitch(state: &State, session: &SessionId) -> Result<Reply, ApiError> {
    let scan = scan_session(state, session)?;
    let absent: Vec<_> = scan
        .cameras
        .iter()
        .filter(|(_, s, _)| s.is_none())
        .map(|(c, _, up)| (*c, *up))
        .collect();
    if !absent.is_empty() {
        return Err(incomplete(session, &absent));
    }
    let (job, new) = JobQueue::new(state.store.layout())
        .enqueue(session)
        .map_err(jobs_error)?;
    if !new {
        return Err(already_queued(session, &job));
    }
    log::info!("{session}: stitch job {} queued on request", job.id);
    let location = format!("/api/v1/jobs/{}", job.id);
    Ok(json_reply(202, &JobReply { success: true, job }).with_header("Location", location))
}

/// 409 naming the cameras (and whether each is uploading now) a stitch of
/// `session` still needs.
fn incomplete(session: &SessionId, absent: &[(CameraId, bool)]) -> ApiError {
    let named: Vec<String> = absent
        .iter()
        .map(|(c, up)| {
            if *up {
                format!("{c} (uploading now)")
            } else {
                c.to_string()
            }
        })
        .collect();
    let ids: Vec<serde_json::Value> = absent.iter().map(|(c, _)| c.as_str().into()).collect();
    ApiError::new(
        409,
        code::SESSION_INCOMPLETE,
        format!(
            "session {session} is missing {}; a stitch needs all three cameras: \
             upload the missing recording(s) first",
            named.join(", ")
        ),
    )
    .with_field("cameras_missing", ids.into())
}

/// 409: a stitch of `session` is already queued or running as `job`.
fn already_queued(session: &SessionId, job: &Job) -> ApiError {
    ApiError::new(
        409,
        code::JOB_IN_PROGRESS,
        format!(
            "stitch job {} of session {session} is already {}; follow it at /api/v1/jobs/{}",
            job.id, job.status, job.id
        ),
    )
    .with_field("job_id", job.id.clone().into())
}
