//! One request from arrival to log line: the shutdown gate, the access
//! check, routing to the endpoint, draining what an admitted client still
//! sends after an error, the reply and its log line.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::reply::{error_reply, json_reply, response_of};
use super::state::{Counted, State};
use super::trace::Trace;
use super::{ApiError, Reply, access, browse, confirm, health, status, upload};
use crate::base::protocol::{CONFIRM_PATH, HEALTH_PATH, UPLOAD_PATH, UPLOAD_STATUS_PATH, code};

/// Longest a status request waits for an upload of its recording in flight.
const STATUS_WAIT: Duration = Duration::from_secs(10);

pub(super) fn handle(state: &State, mut req: tiny_http::Request) {
    state.busy.fetch_add(1, Ordering::SeqCst);
    let _busy = Counted(&state.busy);
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let mut trace = Trace::default();
    let mut admitted = false;
    let result = if state.stopping.load(Ordering::SeqCst) {
        Err(ApiError::new(
            503,
            code::SHUTTING_DOWN,
            "rig-receive is shutting down; try again shortly".into(),
        ))
    } else {
        admit(state, &req, &method, &path).and_then(|grant| {
            admitted = true;
            trace.grant = grant;
            route(state, &mut req, &method, &path, &mut trace)
        })
    };
    let (reply, failure) = match result {
        Ok(reply) => (reply, None),
        Err(e) => (error_reply(&e), Some(e)),
    };
    let status = reply.status;
    if admitted && status >= 400 && !matches!(status, 408 | 503) {
        drain_rest(state, &mut req, started);
    }
    let mut response = response_of(reply);
    add_status_headers(&mut response, status, &path);
    if let Err(e) = req.respond(response) {
        log::debug!("{method} {path}: sending the reply failed: {e}");
    }
    log_line(&method, &path, status, &trace, failure.as_ref(), started);
}

/// Lets the rest of an admitted client's body be read after an error.
///
/// An error decided in the middle of an admitted client's body (409
/// where to resume or come back later, 507 the disk is full, 400 a
/// manifest this server rejects, 403 a camera the key is not bound
/// to) must reach that client: ureq reads no reply before it has sent
/// its whole body, and a reset would be retried without the reason.
/// So the rest of the body is read, as much as a real upload may
/// send in the time one may take. Refusals at the headers cost
/// nothing here: a client waiting for `100 Continue` has sent no body
/// and is not drained (tiny_http patch 7). A request refused by the
/// allowlist or the keys, a stalled one (408) or one met by shutdown
/// (503) reads at most 1 MiB and is closed: a refused client cannot
/// push gigabytes.
fn drain_rest(state: &State, req: &mut tiny_http::Request, started: Instant) {
    let cap = state
        .limits
        .max_upload_bytes
        .saturating_add(upload::FORM_OVERHEAD);
    req.set_drain_limit(
        usize::try_from(cap).unwrap_or(usize::MAX),
        state
            .limits
            .upload_timeout
            .saturating_sub(started.elapsed()),
    );
}

/// The request's log line: method, path, status, body bytes, duration,
/// recording, and what went wrong (the message of a server error, the
/// code of a client's).
fn log_line(
    method: &tiny_http::Method,
    path: &str,
    status: u16,
    trace: &Trace,
    failure: Option<&ApiError>,
    started: Instant,
) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let rec = trace.recording.as_deref().unwrap_or("-");
    match failure {
        Some(e) if e.status >= 500 && e.status != 507 => log::error!(
            "{method} {path} {status} {} bytes {ms:.1} ms {rec}: {}",
            trace.bytes,
            e.message
        ),
        Some(e) => log::info!(
            "{method} {path} {status} {} bytes {ms:.1} ms {rec}: {}",
            trace.bytes,
            e.code
        ),
        None => log::info!(
            "{method} {path} {status} {} bytes {ms:.1} ms {rec}",
            trace.bytes
        ),
    }
}

/// `Allow` on a 405 and `WWW-Authenticate` on a 401.
fn add_status_headers(response: &mut tiny_http::ResponseBox, status: u16, path: &str) {
    if status == 405 {
        let allow = match path {
            HEALTH_PATH | UPLOAD_STATUS_PATH => "GET",
            UPLOAD_PATH | CONFIRM_PATH => "POST",
            other => browse::allow(other).unwrap_or("POST"),
        };
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Allow"[..], allow.as_bytes()) {
            response.add_header(h);
        }
    }
    if status == 401
        && let Ok(h) = tiny_http::Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..])
    {
        response.add_header(h);
    }
}

/// The access check of issue 10 ([`access`]), before any body byte is read.
fn admit(
    state: &State,
    req: &tiny_http::Request,
    method: &tiny_http::Method,
    path: &str,
) -> Result<access::Grant, ApiError> {
    let authorization = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str());
    state
        .access
        .check(req.remote_addr(), method, path, authorization)
}

fn route(
    state: &State,
    req: &mut tiny_http::Request,
    method: &tiny_http::Method,
    path: &str,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    use tiny_http::Method::{Get, Head, Post};
    let wrong_method = |allowed: &str| ApiError::method_not_allowed(path, allowed, method);
    match path {
        UPLOAD_PATH => match method {
            Post => upload::upload(state, req, trace).map(|r| json_reply(200, &r)),
            _ => Err(wrong_method("POST")),
        },
        CONFIRM_PATH => match method {
            Post => confirm::confirm(state, req, trace).map(|r| json_reply(200, &r)),
            _ => Err(wrong_method("POST")),
        },
        HEALTH_PATH => match method {
            Get | Head => Ok(json_reply(200, &health::health(state))),
            _ => Err(wrong_method("GET")),
        },
        UPLOAD_STATUS_PATH => match method {
            Get | Head => upload_status(state, req, trace),
            _ => Err(wrong_method("GET")),
        },
        _ if browse::allow(path).is_some() => browse::route(state, req, method, path, trace),
        _ => Err(no_such_endpoint(path)),
    }
}

/// `GET /api/v1/upload/status`: what the server holds of an upload,
/// waiting (a while) for one in flight.
fn upload_status(
    state: &State,
    req: &tiny_http::Request,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    status::status(
        &state.partials,
        req.url(),
        trace,
        |rec| state.in_flight(rec),
        state.limits.stall_timeout.min(STATUS_WAIT),
    )
    .map(|r| json_reply(200, &r))
}

/// 404 listing the API's endpoints.
fn no_such_endpoint(path: &str) -> ApiError {
    ApiError::new(
        404,
        code::NOT_FOUND,
        format!(
            "no such endpoint {path}; the API is {UPLOAD_PATH}, {CONFIRM_PATH}, {HEALTH_PATH}, \
             {}",
            browse::ROUTES
        ),
    )
}
