//! The read-mostly side of rig-receive: what the server holds, as JSON for
//! tools and as one HTML page for a coach's phone, plus the files themselves.
//!
//! | route | reply |
//! |---|---|
//! | `GET /` | the status page ([`super::page`]) |
//! | `GET /api/v1/sessions?complete=&limit=&offset=` | sessions, newest first |
//! | `GET /api/v1/sessions/{id}` | one session with manifest summaries and digests |
//! | `GET /api/v1/sessions/{id}/{camera}/recording.mp4` | the recording, with `Range` |
//! | `GET /api/v1/sessions/{id}/stitched/panorama.mp4` | the panorama, with `Range` |
//! | `GET /api/v1/sessions/{id}/thumb.jpg` | one frame of the session, made once ([`super::thumbs`]) |
//! | `POST /api/v1/sessions/{id}/stitch` | queue a stitch (202), 409 if it cannot |
//! | `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}` | the stitch queue, one job |
//! | `GET /api/v1/stats` | totals, free space, queue depth |
//!
//! Everything is read from the disk on each request (there is no cache to go
//! stale): `sessions/` through [`crate::store::Store`], digests from
//! `recording.sha256`, manifests with [`crate::base::manifest::Manifest::read`], jobs with a
//! lock-free [`crate::base::jobs::JobQueue::load`] snapshot. A camera counts as *present* once
//! its `recording.sha256` exists (it is written last at store time, the
//! commit mark), and that file's mtime is its upload time. A camera is
//! *uploading* while an upload of it is in flight (the server's claim set),
//! so a session being uploaded shows before its first byte is stored.
//!
//! Downloads stream the file through a fixed buffer with `Content-Length`
//! set, whatever its size. A recording's ETag is its stored SHA-256 (no
//! hashing per request); the panorama's is built from its size and mtime
//! (rig-stitch replaces it by rename, so both change with its bytes).
//! Single byte ranges are served as 206 per RFC 9110; several ranges, or a
//! unit other than `bytes`, get the whole file (200), which the RFC allows.

//!
//! | file | job |
//! |---|---|
//! | `mod` | the routes and their methods |
//! | `params` | path segments and query parameters |
//! | `scan` | what is stored or uploading, per session |
//! | `sessions` | the JSON of sessions, jobs and stats |
//! | `stitch` | `POST .../stitch` |
//! | `download`, `range` | files with `Range`, ETag and `If-None-Match` |
//! | `thumbnail` | `thumb.jpg` through the thumbnail worker |

mod download;
mod params;
mod range;
mod scan;
mod sessions;
mod stitch;
mod thumbnail;

use self::params::{Query, decode, session_param};
use super::page;
use super::reply::json_reply;
use super::state::State;
use super::trace::Trace;
use super::{ApiError, Body, Reply};
use crate::base::ids::{CameraId, RecordingId};
use crate::base::jobs::JobQueue;
use crate::base::protocol::code;

/// The routes of this module, for the 404 message.
pub const ROUTES: &str = "/api/v1/sessions[/ID[/CAM_X/recording.mp4|/stitched/panorama.mp4|\
                          /thumb.jpg|/stitch]], /api/v1/jobs[/ID], /api/v1/stats and /";

/// Sessions listed when `?limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

/// The largest `?limit` accepted.
pub const MAX_LIMIT: usize = 1000;

/// Sessions the status page shows (the newest).
pub const PAGE_SESSIONS: usize = 50;

/// One route of this module, its IDs still raw (percent-encoded) text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Page,
    Sessions,
    Session(&'a str),
    Recording(&'a str, &'a str),
    Panorama(&'a str),
    Thumbnail(&'a str),
    Stitch(&'a str),
    Jobs,
    Job(&'a str),
    Stats,
}

fn parse_route(path: &str) -> Option<Route<'_>> {
    if path == "/" {
        return Some(Route::Page);
    }
    let rest = path.strip_prefix("/api/v1/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    Some(match parts[..] {
        ["sessions"] => Route::Sessions,
        ["sessions", id] => Route::Session(id),
        ["sessions", id, "stitch"] => Route::Stitch(id),
        ["sessions", id, "thumb.jpg"] => Route::Thumbnail(id),
        ["sessions", id, "stitched", "panorama.mp4"] => Route::Panorama(id),
        ["sessions", id, cam, "recording.mp4"] => Route::Recording(id, cam),
        ["jobs"] => Route::Jobs,
        ["jobs", id] => Route::Job(id),
        ["stats"] => Route::Stats,
        _ => return None,
    })
}

/// The methods `path` takes (for `Allow`), or `None` when it is not a route
/// of this module.
pub fn allow(path: &str) -> Option<&'static str> {
    parse_route(path).map(|r| match r {
        Route::Stitch(_) => "POST",
        _ => "GET, HEAD",
    })
}

/// Answers a request for one of this module's routes ([`allow`] is `Some`).
pub fn route(
    state: &State,
    req: &mut tiny_http::Request,
    method: &tiny_http::Method,
    path: &str,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    use tiny_http::Method::{Get, Head, Post};
    let Some(route) = parse_route(path) else {
        return Err(ApiError::new(
            404,
            code::NOT_FOUND,
            format!("no such endpoint {path}"),
        ));
    };
    let wrong_method = || ApiError::method_not_allowed(path, allow(path).unwrap_or("GET"), method);
    match route {
        Route::Stitch(id) if matches!(method, Post) => {
            let session = session_param(id)?;
            trace.recording = Some(session.to_string());
            stitch::stitch(state, &session)
        }
        Route::Stitch(_) => Err(wrong_method()),
        _ if !matches!(method, Get | Head) => Err(wrong_method()),
        Route::Recording(..) | Route::Panorama(_) | Route::Thumbnail(_) => {
            read_file(state, req, route, trace)
        }
        _ => read_status(state, req, route, trace),
    }
}

/// The routes that serve a file.
fn read_file(
    state: &State,
    req: &tiny_http::Request,
    route: Route<'_>,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    match route {
        Route::Recording(id, cam) => {
            let session = session_param(id)?;
            let camera = CameraId::parse(&decode(cam)).map_err(|e| {
                ApiError::new(400, code::INVALID_FIELD, format!("camera in the path: {e}"))
            })?;
            let rec = RecordingId::new(session, camera);
            trace.recording = Some(rec.to_string());
            download::download_recording(state, req, &rec)
        }
        Route::Panorama(id) => {
            let session = session_param(id)?;
            trace.recording = Some(session.to_string());
            download::download_panorama(state, req, &session)
        }
        Route::Thumbnail(id) => thumbnail::thumbnail(state, req, &session_param(id)?),
        _ => Err(not_a_file_route(route)),
    }
}

/// The routes that answer what is stored and queued (never cached).
fn read_status(
    state: &State,
    req: &tiny_http::Request,
    route: Route<'_>,
    trace: &Trace,
) -> Result<Reply, ApiError> {
    let reply = match route {
        Route::Page => {
            let listing = sessions::list(state, &Query::page())?;
            let stats = sessions::stats(state)?;
            let html = page::render(&stats, &listing, trace.grant.may_fetch());
            Reply::new(200, Body::Html(html))
        }
        Route::Sessions => {
            let query = req.url().split_once('?').map_or("", |(_, q)| q);
            json_reply(200, &sessions::list(state, &Query::parse(query)?)?)
        }
        Route::Session(id) => json_reply(200, &sessions::detail(state, &session_param(id)?)?),
        Route::Jobs => {
            let jobs = JobQueue::new(state.store.layout())
                .load()
                .map_err(jobs_error)?;
            json_reply(200, &sessions::JobsReply::new(jobs.jobs))
        }
        Route::Job(id) => json_reply(200, &sessions::job(state, &decode(id))?),
        Route::Stats => json_reply(200, &sessions::stats(state)?),
        _ => return Err(not_a_file_route(route)),
    };
    Ok(reply.no_store())
}

/// A route handed to the wrong one of the two functions above (a bug).
fn not_a_file_route(route: Route<'_>) -> ApiError {
    internal(format!("route {route:?} went to the wrong handler"))
}

impl Reply {
    /// Status information must not be served from a cache.
    fn no_store(self) -> Reply {
        self.with_header("Cache-Control", "no-store")
    }
}

fn internal(what: String) -> ApiError {
    log::error!("{what}");
    ApiError::new(500, code::INTERNAL, what)
}

fn jobs_error(e: crate::base::jobs::JobsError) -> ApiError {
    internal(format!("reading the stitch queue: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_their_methods() {
        assert_eq!(allow("/"), Some("GET, HEAD"));
        assert_eq!(allow("/api/v1/sessions"), Some("GET, HEAD"));
        assert_eq!(allow("/api/v1/sessions/S/stitch"), Some("POST"));
        assert_eq!(
            parse_route("/api/v1/sessions/S/CAM_L/recording.mp4"),
            Some(Route::Recording("S", "CAM_L"))
        );
        assert_eq!(
            parse_route("/api/v1/sessions/S/stitched/panorama.mp4"),
            Some(Route::Panorama("S"))
        );
        assert_eq!(allow("/api/v1/sessions/S/other"), None);
        assert_eq!(allow("/api/v1/upload"), None);
        assert_eq!(allow("/index.html"), None);
    }
}
