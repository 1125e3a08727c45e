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
//! | `GET /api/v1/sessions/{id}/thumb.jpg` | one frame of the session, made once |
//! | `POST /api/v1/sessions/{id}/stitch` | queue a stitch (202), 409 if it cannot |
//! | `GET /api/v1/jobs`, `GET /api/v1/jobs/{id}` | the stitch queue, one job |
//! | `GET /api/v1/stats` | totals, free space, queue depth |
//!
//! Everything is read from the disk on each request (there is no cache to go
//! stale): `sessions/` through [`ServerLayout`], digests from
//! `recording.sha256`, manifests with [`Manifest::read`], jobs with a
//! lock-free [`JobQueue::load`] snapshot. A camera counts as *present* once
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

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::PoisonError;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Serialize;

use super::upload::{Trace, header};
use super::{ApiError, Body, Reply, State, error_reply, json_reply, page};
use crate::base::checksum::Sha256;
use crate::base::config::GB;
use crate::base::fsx;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::jobs::{Job, JobQueue, JobStatus};
use crate::base::layout::{self, ServerLayout};
use crate::base::manifest::{self, Manifest};
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
/// Buffer of a download: one read and one write per this many bytes.
const DOWNLOAD_BUFFER: usize = 256 * 1024;

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
    let read = matches!(method, Get | Head);
    let wrong_method = || {
        let allowed = allow(path).unwrap_or("GET");
        ApiError::new(
            405,
            code::METHOD_NOT_ALLOWED,
            format!("{path} takes {allowed}, not {method}"),
        )
    };
    let query = req.url().split_once('?').map_or("", |(_, q)| q).to_string();
    match route {
        Route::Stitch(id) if matches!(method, Post) => {
            let session = session_param(id)?;
            trace.recording = Some(session.to_string());
            stitch(state, &session)
        }
        Route::Stitch(_) => Err(wrong_method()),
        _ if !read => Err(wrong_method()),
        Route::Page => {
            let listing = list(state, &Query::page())?;
            let stats = stats(state)?;
            Ok(Reply::new(
                200,
                Body::Html(page::render(&stats, &listing, trace.grant.may_fetch())),
            )
            .no_store())
        }
        Route::Sessions => {
            let query = Query::parse(&query)?;
            Ok(json_reply(200, &list(state, &query)?).no_store())
        }
        Route::Session(id) => {
            let session = session_param(id)?;
            Ok(json_reply(200, &detail(state, &session)?).no_store())
        }
        Route::Recording(id, cam) => {
            let session = session_param(id)?;
            let camera = CameraId::parse(&decode(cam)).map_err(|e| {
                ApiError::new(400, code::INVALID_FIELD, format!("camera in the path: {e}"))
            })?;
            let rec = RecordingId::new(session, camera);
            trace.recording = Some(rec.to_string());
            download_recording(state, req, &rec)
        }
        Route::Panorama(id) => {
            let session = session_param(id)?;
            trace.recording = Some(session.to_string());
            download_panorama(state, req, &session)
        }
        Route::Thumbnail(id) => {
            let session = session_param(id)?;
            thumbnail(state, req, &session)
        }
        Route::Jobs => {
            let jobs = JobQueue::new(&state.layout).load().map_err(jobs_error)?;
            Ok(json_reply(
                200,
                &JobsReply {
                    success: true,
                    jobs: jobs.jobs,
                },
            )
            .no_store())
        }
        Route::Job(id) => Ok(json_reply(200, &job(state, &decode(id))?).no_store()),
        Route::Stats => Ok(json_reply(200, &stats(state)?).no_store()),
    }
}

impl Reply {
    /// Status information must not be served from a cache.
    fn no_store(self) -> Reply {
        self.with_header("Cache-Control", "no-store")
    }
}

/// Percent-decodes one path segment (IDs need no encoding, but a client
/// may encode anyway); invalid escapes stay as they are.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A session ID from the path: 400 when it breaks the ID rule.
fn session_param(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(&decode(raw)).map_err(|e| {
        ApiError::new(
            400,
            code::INVALID_FIELD,
            format!("session in the path: {e}"),
        )
    })
}

fn internal(what: String) -> ApiError {
    log::error!("{what}");
    ApiError::new(500, code::INTERNAL, what)
}

fn jobs_error(e: crate::base::jobs::JobsError) -> ApiError {
    internal(format!("reading the stitch queue: {e}"))
}

// ---------------------------------------------------------------------------
// What is stored: a cheap scan (stat and digest files), then the details.

/// One camera's stored recording, from the cheap scan.
#[derive(Debug, Clone)]
struct Stored {
    size: u64,
    sha256: Sha256,
    uploaded: SystemTime,
}

/// One session, from the cheap scan.
#[derive(Debug, Clone)]
struct Scan {
    id: SessionId,
    cameras: [(CameraId, Option<Stored>, bool); 3],
    panorama: Option<(u64, SystemTime)>,
    /// When anything of it last changed; `None` while only uploads exist.
    newest: Option<SystemTime>,
}

impl Scan {
    fn complete(&self) -> bool {
        self.cameras.iter().all(|(_, s, _)| s.is_some())
    }

    fn uploading(&self) -> bool {
        self.cameras.iter().any(|(_, _, u)| *u)
    }
}

/// A recording is stored once its digest (the commit mark) and file exist.
fn stored(layout: &ServerLayout, s: &SessionId, c: CameraId) -> Option<Stored> {
    let digest_path = layout.digest(s, c);
    let text = std::fs::read_to_string(&digest_path).ok()?;
    let sha256 = layout::parse_digest_line(&text)?;
    let uploaded = std::fs::metadata(&digest_path).ok()?.modified().ok()?;
    let size = std::fs::metadata(layout.recording(s, c)).ok()?.len();
    Some(Stored {
        size,
        sha256,
        uploaded,
    })
}

/// Recordings with an upload in flight right now.
fn in_flight(state: &State) -> Vec<RecordingId> {
    let set = state
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut v: Vec<RecordingId> = set.iter().cloned().collect();
    v.sort();
    v
}

fn scan_one(layout: &ServerLayout, id: SessionId, flying: &[RecordingId]) -> Scan {
    let cam = |c: CameraId| {
        let up = flying.iter().any(|r| r.session == id && r.camera == c);
        (c, stored(layout, &id, c), up)
    };
    let cameras = [
        cam(CameraId::Left),
        cam(CameraId::Center),
        cam(CameraId::Right),
    ];
    let panorama = std::fs::metadata(layout.panorama(&id))
        .ok()
        .filter(|m| m.is_file())
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    let newest = cameras
        .iter()
        .filter_map(|(_, s, _)| s.as_ref().map(|s| s.uploaded))
        .chain(panorama.map(|p| p.1))
        .max()
        .or_else(|| {
            std::fs::metadata(layout.session_dir(&id))
                .and_then(|m| m.modified())
                .ok()
        });
    Scan {
        id,
        cameras,
        panorama,
        newest,
    }
}

/// Every session stored or being uploaded, newest first: those being
/// uploaded on top, then by last change; ties by ID, descending.
fn scan_all(state: &State) -> Result<Vec<Scan>, ApiError> {
    let layout = &state.layout;
    let mut ids = layout
        .session_ids()
        .map_err(|e| internal(format!("listing sessions: {e}")))?;
    let flying = in_flight(state);
    ids.extend(flying.iter().map(|r| r.session.clone()));
    ids.sort();
    ids.dedup();
    let mut scans: Vec<Scan> = ids
        .into_iter()
        .map(|id| scan_one(layout, id, &flying))
        .collect();
    // Sessions being uploaded are happening now: on top, among them by ID.
    let key = |s: &Scan| (s.uploading(), (!s.uploading()).then_some(s.newest));
    scans.sort_by(|a, b| (key(b), &b.id).cmp(&(key(a), &a.id)));
    Ok(scans)
}

fn time(t: SystemTime) -> Option<String> {
    jiff::Timestamp::try_from(t).ok().map(manifest::format_time)
}

// ---------------------------------------------------------------------------
// JSON shapes.

/// One camera of a session.
#[derive(Debug, Clone, Serialize)]
pub struct CameraSummary {
    /// `CAM_L`, `CAM_C` or `CAM_R`.
    pub camera_id: &'static str,
    /// Stored and verified (its `recording.sha256` exists).
    pub present: bool,
    /// An upload of it is in flight right now.
    pub uploading: bool,
    /// Size of the stored file.
    pub size_bytes: Option<u64>,
    /// `video.duration_sec` of its manifest.
    pub duration_sec: Option<f64>,
    /// When it was stored (mtime of `recording.sha256`).
    pub uploaded_at: Option<String>,
    /// Where to download it.
    pub url: Option<String>,
    /// `device.hostname` of its manifest: the Pi that recorded it.
    pub hostname: Option<String>,
    /// The digest computed while receiving (session details only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_sha256: Option<Sha256>,
    /// Its manifest in brief (session details only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ManifestSummary>,
    /// Why its manifest could not be read, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_error: Option<String>,
}

/// The manifest fields a person asks about.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestSummary {
    /// `recording.id`
    pub recording_id: String,
    /// `recording.position`
    pub position: String,
    /// `file.codec`
    pub codec: String,
    /// `video.resolution.width`
    pub width: u32,
    /// `video.resolution.height`
    pub height: u32,
    /// `video.fps`
    pub fps: u32,
    /// `video.bitrate_mbps`
    pub bitrate_mbps: u32,
    /// `video.duration_sec`
    pub duration_sec: f64,
    /// `timing.start_time`
    pub start_time: String,
    /// `timing.end_time`
    pub end_time: String,
    /// `timing.ntp_synced`
    pub ntp_synced: bool,
    /// `timing.sync_offset_ms`
    pub sync_offset_ms: Option<f64>,
    /// `device.hostname`
    pub hostname: Option<String>,
    /// `device.software_version`
    pub software_version: Option<String>,
    /// `quality.dropped_frames`
    pub dropped_frames: Option<u64>,
    /// `checksum.value`: the digest the Pi computed.
    pub checksum: Sha256,
    /// The Pi's digest equals the one computed while receiving.
    pub checksum_matches: bool,
}

/// The panorama of a session.
#[derive(Debug, Clone, Serialize)]
pub struct PanoramaSummary {
    /// Its size.
    pub size_bytes: u64,
    /// When rig-stitch finished it (its mtime).
    pub created_at: Option<String>,
    /// Where to download it.
    pub url: String,
}

/// The newest stitch job of a session.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// Job ID, for `/api/v1/jobs/{id}`.
    pub id: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: JobStatus,
    /// Percent done.
    pub progress: f64,
    /// Why it failed or was re-queued.
    pub error: Option<String>,
}

impl From<&Job> for JobSummary {
    fn from(j: &Job) -> Self {
        JobSummary {
            id: j.id.clone(),
            status: j.status,
            progress: j.progress,
            error: j.error.clone(),
        }
    }
}

/// One session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    /// The session ID.
    pub session_id: String,
    /// All three cameras are stored.
    pub complete: bool,
    /// An upload for it is in flight.
    pub uploading: bool,
    /// Cameras not stored yet.
    pub cameras_missing: Vec<&'static str>,
    /// CAM_L, CAM_C, CAM_R, in that order.
    pub cameras: Vec<CameraSummary>,
    /// Bytes of its stored recordings (the panorama not included).
    pub recording_bytes: u64,
    /// When its last recording was stored.
    pub uploaded_at: Option<String>,
    /// Its panorama exists.
    pub stitched: bool,
    /// Its panorama, when stitched.
    pub panorama: Option<PanoramaSummary>,
    /// Its newest stitch job, if any.
    pub job: Option<JobSummary>,
    /// A frame of it, once there is one to extract.
    pub thumbnail_url: Option<String>,
}

/// `GET /api/v1/sessions`.
#[derive(Debug, Clone, Serialize)]
pub struct SessionList {
    /// Always true.
    pub success: bool,
    /// Sessions matching the filter, before `limit`/`offset`.
    pub total: usize,
    /// The `offset` applied.
    pub offset: usize,
    /// The `limit` applied.
    pub limit: usize,
    /// The sessions, newest first.
    pub sessions: Vec<SessionSummary>,
    /// Problems that did not stop the listing (an unreadable job queue).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `GET /api/v1/sessions/{id}`.
#[derive(Debug, Clone, Serialize)]
struct SessionDetail {
    success: bool,
    session: SessionSummary,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize)]
struct JobsReply {
    success: bool,
    jobs: Vec<Job>,
}

/// `GET /api/v1/jobs/{id}` and the 202 of a stitch request.
#[derive(Debug, Clone, Serialize)]
struct JobReply {
    success: bool,
    job: Job,
}

/// `GET /api/v1/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Always true.
    pub success: bool,
    /// Sessions stored or being uploaded.
    pub sessions: usize,
    /// Sessions with all three cameras.
    pub complete_sessions: usize,
    /// Sessions with a panorama.
    pub stitched_sessions: usize,
    /// Recordings stored.
    pub recordings: usize,
    /// Bytes of the stored recordings.
    pub recording_bytes: u64,
    /// Bytes of the panoramas.
    pub panorama_bytes: u64,
    /// Both together.
    pub bytes: u64,
    /// Free bytes on the sessions filesystem (null when unknown).
    pub storage_free_bytes: Option<u64>,
    /// The same in GB (10^9 bytes), three decimals, as `/health` has it.
    pub storage_free_gb: Option<f64>,
    /// Uploads in flight.
    pub active_uploads: u64,
    /// The recordings being uploaded, `{session}_{camera}`.
    pub uploading: Vec<String>,
    /// Stitch jobs queued or running.
    pub queue_depth: usize,
    /// Stitch jobs queued.
    pub jobs_queued: usize,
    /// Stitch jobs running.
    pub jobs_running: usize,
    /// Stitch jobs that failed (as their session's newest job).
    pub jobs_failed: usize,
    /// Problems that did not stop the count (an unreadable job queue).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------
// Handlers.

/// Listing filters: `?complete=true`, `?limit=N`, `?offset=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Query {
    complete: Option<bool>,
    limit: usize,
    offset: usize,
}

impl Query {
    fn page() -> Query {
        Query {
            complete: None,
            limit: PAGE_SESSIONS,
            offset: 0,
        }
    }

    fn parse(query: &str) -> Result<Query, ApiError> {
        let bad = |name: &str, value: &str, want: &str| {
            ApiError::new(
                400,
                code::INVALID_FIELD,
                format!("query parameter {name}={value:?}: {want}"),
            )
        };
        let mut q = Query {
            complete: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match name {
                "complete" => {
                    q.complete = Some(match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(bad(name, &value, "must be true or false")),
                    })
                }
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            bad(
                                name,
                                &value,
                                &format!("must be a number from 1 to {MAX_LIMIT}"),
                            )
                        })?
                }
                "offset" => {
                    q.offset = value
                        .parse()
                        .map_err(|_| bad(name, &value, "must be a number, 0 or more"))?
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// The jobs file as the newest job per session; a broken queue is a warning.
fn latest_jobs(state: &State) -> (Vec<Job>, Vec<String>) {
    match JobQueue::new(&state.layout).load() {
        Ok(file) => (file.jobs, Vec::new()),
        Err(e) => {
            log::error!("reading the stitch queue: {e}");
            (
                Vec::new(),
                vec![format!("the stitch queue is unreadable: {e}")],
            )
        }
    }
}

fn newest_job<'j>(jobs: &'j [Job], session: &SessionId) -> Option<&'j Job> {
    jobs.iter().rev().find(|j| j.session_id == session.as_str())
}

fn api_path(session: &SessionId, rest: &str) -> String {
    format!("/api/v1/sessions/{session}/{rest}")
}

/// A session's summary; `details` adds digests and manifest summaries.
fn summarize(layout: &ServerLayout, scan: &Scan, jobs: &[Job], details: bool) -> SessionSummary {
    let s = &scan.id;
    let cameras: Vec<CameraSummary> = scan
        .cameras
        .iter()
        .map(|(c, stored, uploading)| {
            let mut cam = CameraSummary {
                camera_id: c.as_str(),
                present: stored.is_some(),
                uploading: *uploading,
                size_bytes: stored.as_ref().map(|s| s.size),
                duration_sec: None,
                uploaded_at: stored.as_ref().and_then(|s| time(s.uploaded)),
                url: stored
                    .as_ref()
                    .map(|_| api_path(s, &format!("{c}/recording.mp4"))),
                hostname: None,
                checksum_sha256: None,
                manifest: None,
                manifest_error: None,
            };
            let Some(stored) = stored else {
                return cam;
            };
            match Manifest::read(&layout.manifest(s, *c)) {
                Ok(m) => {
                    cam.duration_sec = Some(m.video.duration_sec);
                    cam.hostname = m.device.as_ref().and_then(|d| d.hostname.clone());
                    if details {
                        cam.manifest = Some(manifest_summary(&m, &stored.sha256));
                    }
                }
                Err(e) => {
                    log::warn!("{s} {c}: manifest: {e}");
                    cam.manifest_error = Some(e.to_string());
                }
            }
            if details {
                cam.checksum_sha256 = Some(stored.sha256);
            }
            cam
        })
        .collect();
    let newest_upload = scan
        .cameras
        .iter()
        .filter_map(|(_, s, _)| s.as_ref().map(|s| s.uploaded))
        .max();
    let thumb = layout.thumbnail(s).is_file() || scan.cameras.iter().any(|c| c.1.is_some());
    SessionSummary {
        session_id: s.to_string(),
        complete: scan.complete(),
        uploading: scan.uploading(),
        cameras_missing: scan
            .cameras
            .iter()
            .filter(|(_, s, _)| s.is_none())
            .map(|(c, _, _)| c.as_str())
            .collect(),
        cameras,
        recording_bytes: scan
            .cameras
            .iter()
            .filter_map(|(_, s, _)| s.as_ref().map(|s| s.size))
            .sum(),
        uploaded_at: newest_upload.and_then(time),
        stitched: scan.panorama.is_some(),
        panorama: scan.panorama.map(|(size, mtime)| PanoramaSummary {
            size_bytes: size,
            created_at: time(mtime),
            url: api_path(s, "stitched/panorama.mp4"),
        }),
        job: newest_job(jobs, s).map(JobSummary::from),
        thumbnail_url: thumb.then(|| api_path(s, "thumb.jpg")),
    }
}

fn manifest_summary(m: &Manifest, server_sha256: &Sha256) -> ManifestSummary {
    let device = m.device.clone().unwrap_or_default();
    ManifestSummary {
        recording_id: m.recording.id.clone(),
        position: m.recording.position.clone(),
        codec: m.file.codec.clone(),
        width: m.video.resolution.width,
        height: m.video.resolution.height,
        fps: m.video.fps,
        bitrate_mbps: m.video.bitrate_mbps,
        duration_sec: m.video.duration_sec,
        start_time: m.timing.start_time.clone(),
        end_time: m.timing.end_time.clone(),
        ntp_synced: m.timing.ntp_synced,
        sync_offset_ms: m.timing.sync_offset_ms,
        hostname: device.hostname,
        software_version: device.software_version,
        dropped_frames: m.quality.as_ref().and_then(|q| q.dropped_frames),
        checksum: m.checksum.value,
        checksum_matches: m.checksum.value == *server_sha256,
    }
}

/// `GET /api/v1/sessions`: manifests are read only for the page asked for.
fn list(state: &State, query: &Query) -> Result<SessionList, ApiError> {
    let scans: Vec<Scan> = scan_all(state)?
        .into_iter()
        .filter(|s| query.complete.is_none_or(|want| s.complete() == want))
        .collect();
    let (jobs, warnings) = latest_jobs(state);
    let sessions = scans
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|scan| summarize(&state.layout, scan, &jobs, false))
        .collect();
    Ok(SessionList {
        success: true,
        total: scans.len(),
        offset: query.offset,
        limit: query.limit,
        sessions,
        warnings,
    })
}

fn not_found(session: &SessionId) -> ApiError {
    ApiError::new(
        404,
        code::SESSION_NOT_FOUND,
        format!(
            "session {session} is not on this server; GET /api/v1/sessions lists those that are"
        ),
    )
}

/// A session's scan, or 404 when nothing of it is stored or uploading.
fn scan_session(state: &State, session: &SessionId) -> Result<Scan, ApiError> {
    let flying = in_flight(state);
    let known =
        state.layout.session_dir(session).is_dir() || flying.iter().any(|r| &r.session == session);
    if !known {
        return Err(not_found(session));
    }
    Ok(scan_one(&state.layout, session.clone(), &flying))
}

/// `GET /api/v1/sessions/{id}`.
fn detail(state: &State, session: &SessionId) -> Result<SessionDetail, ApiError> {
    let scan = scan_session(state, session)?;
    let (jobs, _) = latest_jobs(state);
    Ok(SessionDetail {
        success: true,
        session: summarize(&state.layout, &scan, &jobs, true),
    })
}

/// `POST /api/v1/sessions/{id}/stitch`: 202 with the new job; 409 when a
/// camera is missing or a stitch is already queued or running. A session
/// already stitched may be stitched again (say after a recording was
/// replaced): a new job is queued.
fn stitch(state: &State, session: &SessionId) -> Result<Reply, ApiError> {
    let scan = scan_session(state, session)?;
    let absent: Vec<_> = scan
        .cameras
        .iter()
        .filter(|(_, s, _)| s.is_none())
        .collect();
    if !absent.is_empty() {
        let named: Vec<String> = absent
            .iter()
            .map(|(c, _, up)| {
                if *up {
                    format!("{c} (uploading now)")
                } else {
                    c.to_string()
                }
            })
            .collect();
        let ids: Vec<serde_json::Value> =
            absent.iter().map(|(c, _, _)| c.as_str().into()).collect();
        return Err(ApiError::new(
            409,
            code::SESSION_INCOMPLETE,
            format!(
                "session {session} is missing {}; a stitch needs all three cameras: \
                 upload the missing recording(s) first",
                named.join(", ")
            ),
        )
        .with_field("cameras_missing", ids.into()));
    }
    let (job, new) = JobQueue::new(&state.layout)
        .enqueue(session)
        .map_err(jobs_error)?;
    if !new {
        return Err(ApiError::new(
            409,
            code::JOB_IN_PROGRESS,
            format!(
                "stitch job {} of session {session} is already {}; follow it at /api/v1/jobs/{}",
                job.id, job.status, job.id
            ),
        )
        .with_field("job_id", job.id.clone().into()));
    }
    log::info!("{session}: stitch job {} queued on request", job.id);
    let location = format!("/api/v1/jobs/{}", job.id);
    Ok(json_reply(202, &JobReply { success: true, job }).with_header("Location", location))
}

/// `GET /api/v1/jobs/{id}`. Job IDs are `{session}-{n}`.
fn job(state: &State, id: &str) -> Result<JobReply, ApiError> {
    let valid = id
        .rsplit_once('-')
        .is_some_and(|(s, n)| SessionId::parse(s).is_ok() && n.parse::<u64>().is_ok());
    if !valid {
        return Err(ApiError::new(
            400,
            code::INVALID_FIELD,
            format!(
                "job {id:?} in the path: job IDs are SESSION_ID-N, e.g. GAME_20240315_140000-1"
            ),
        ));
    }
    let jobs = JobQueue::new(&state.layout).load().map_err(jobs_error)?;
    let job = jobs.jobs.into_iter().find(|j| j.id == id).ok_or_else(|| {
        ApiError::new(
            404,
            code::JOB_NOT_FOUND,
            format!("job {id} is not in the stitch queue; GET /api/v1/jobs lists it"),
        )
    })?;
    Ok(JobReply { success: true, job })
}

/// `GET /api/v1/stats` (also the head of the page).
pub(super) fn stats(state: &State) -> Result<Stats, ApiError> {
    let scans = scan_all(state)?;
    let (jobs, warnings) = latest_jobs(state);
    let stored = || {
        scans
            .iter()
            .flat_map(|s| s.cameras.iter().filter_map(|c| c.1.as_ref()))
    };
    let recording_bytes = stored().map(|s| s.size).sum();
    let panorama_bytes = scans.iter().filter_map(|s| s.panorama.map(|p| p.0)).sum();
    let free = fsx::free_space(fsx::existing_ancestor(&state.layout.sessions));
    if let Err(e) = &free {
        log::error!(
            "stats: free space of {}: {e}",
            state.layout.sessions.display()
        );
    }
    let free = free.ok();
    let count = |st: JobStatus| jobs.iter().filter(|j| j.status == st).count();
    let failed = scans
        .iter()
        .filter(|s| newest_job(&jobs, &s.id).is_some_and(|j| j.status == JobStatus::Failed))
        .count();
    Ok(Stats {
        success: true,
        sessions: scans.len(),
        complete_sessions: scans.iter().filter(|s| s.complete()).count(),
        stitched_sessions: scans.iter().filter(|s| s.panorama.is_some()).count(),
        recordings: stored().count(),
        recording_bytes,
        panorama_bytes,
        bytes: recording_bytes + panorama_bytes,
        storage_free_bytes: free,
        storage_free_gb: free.map(|f| (f as f64 / GB * 1000.0).round() / 1000.0),
        active_uploads: state.active.load(Ordering::SeqCst),
        uploading: in_flight(state).iter().map(|r| r.to_string()).collect(),
        queue_depth: count(JobStatus::Queued) + count(JobStatus::Running),
        jobs_queued: count(JobStatus::Queued),
        jobs_running: count(JobStatus::Running),
        jobs_failed: failed,
        warnings,
    })
}

// ---------------------------------------------------------------------------
// Downloads.

/// `GET /api/v1/sessions/{id}/{camera}/recording.mp4`.
fn download_recording(
    state: &State,
    req: &tiny_http::Request,
    rec: &RecordingId,
) -> Result<Reply, ApiError> {
    let (s, c) = (&rec.session, rec.camera);
    let missing = || {
        ApiError::new(
            404,
            code::RECORDING_NOT_FOUND,
            format!("{rec} is not stored on this server (or its upload is not finished)"),
        )
    };
    let digest = || -> Option<Sha256> {
        let text = std::fs::read_to_string(state.layout.digest(s, c)).ok()?;
        layout::parse_digest_line(&text)
    };
    // Digest, open, digest again: an upload replacing the file removes the
    // digest before the rename and writes the new one after it, so two equal
    // reads around the open prove the open file has that digest.
    let before = digest().ok_or_else(missing)?;
    let file = open(&state.layout.recording(s, c)).map_err(|e| match e {
        None => missing(),
        Some(e) => internal(format!("opening the recording {rec}: {e}")),
    })?;
    if digest() != Some(before) {
        return Err(ApiError::new(
            409,
            code::UPLOAD_IN_PROGRESS,
            format!("{rec} is being replaced by a new upload right now; try again shortly"),
        ));
    }
    let name = format!("{rec}.mp4");
    serve_file(req, file, &format!("\"{before}\""), "video/mp4", &name)
}

/// `GET /api/v1/sessions/{id}/stitched/panorama.mp4`.
fn download_panorama(
    state: &State,
    req: &tiny_http::Request,
    session: &SessionId,
) -> Result<Reply, ApiError> {
    let file = open(&state.layout.panorama(session)).map_err(|e| match e {
        None => ApiError::new(
            404,
            code::RECORDING_NOT_FOUND,
            format!(
                "session {session} has no panorama yet; POST /api/v1/sessions/{session}/stitch \
                 queues one once all three cameras are stored"
            ),
        ),
        Some(e) => internal(format!("opening the panorama of {session}: {e}")),
    })?;
    let tag =
        file_tag(&file).map_err(|e| internal(format!("reading the panorama of {session}: {e}")))?;
    serve_file(
        req,
        file,
        &tag,
        "video/mp4",
        &format!("{session}_panorama.mp4"),
    )
}

/// Opens a regular file; `Err(None)` when there is none.
fn open(path: &Path) -> Result<File, Option<io::Error>> {
    match File::open(path) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(f),
        Ok(_) => Err(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(None),
        Err(e) => Err(Some(e)),
    }
}

/// A strong ETag from the open file's size and mtime (nanoseconds): files
/// replaced by rename get a new one.
fn file_tag(file: &File) -> io::Result<String> {
    let m = file.metadata()?;
    Ok(format!(
        "\"{:x}-{:x}.{:x}\"",
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// Which part of a file of `len` bytes a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send it all (no Range, or one to ignore: other unit, several ranges,
    /// bad syntax).
    Full,
    /// Send bytes `start..=end` as 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416: no byte of the file is in the range.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a file of `len` bytes (RFC 9110
/// 14.1.2): `bytes=a-b`, `bytes=a-` and `bytes=-n`.
pub fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeAnswer::Full,
        // Suffix: the last n bytes.
        (true, false) => match num(last) {
            None => RangeAnswer::Full,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        (false, _) => {
            let Some(start) = num(first) else {
                return RangeAnswer::Full;
            };
            let end = if last.is_empty() {
                None
            } else {
                match num(last) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeAnswer::Full,
                }
            };
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial {
                start,
                end: end.map_or(len - 1, |e| e.min(len - 1)),
            }
        }
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison).
fn none_match(value: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    value
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// Streams `file` (or the range asked for) with its validators; 304 when
/// the client's copy is current.
fn serve_file(
    req: &tiny_http::Request,
    mut file: File,
    etag: &str,
    content_type: &'static str,
    name: &str,
) -> Result<Reply, ApiError> {
    let len = file
        .metadata()
        .map_err(|e| internal(format!("reading {name}: {e}")))?
        .len();
    let with_validators = |r: Reply| {
        r.with_header("ETag", etag)
            .with_header("Accept-Ranges", "bytes")
            .with_header(
                "Content-Disposition",
                format!("inline; filename=\"{name}\""),
            )
    };
    if header(req, "If-None-Match").is_some_and(|v| none_match(&v, etag)) {
        // No body is sent with 304; Content-Length says what a 200 would carry.
        let body = Body::Stream {
            reader: Box::new(io::empty()),
            len,
            content_type,
        };
        return Ok(with_validators(Reply::new(304, body)));
    }
    // If-Range with another validator (or a date: we send no Last-Modified)
    // means the client's partial copy is stale: send everything.
    let range_applies = header(req, "If-Range").is_none_or(|v| v.trim() == etag);
    let answer = match header(req, "Range") {
        Some(v) if range_applies => parse_range(&v, len),
        _ => RangeAnswer::Full,
    };
    let (status, start, count) = match answer {
        RangeAnswer::Full => (200, 0, len),
        RangeAnswer::Partial { start, end } => (206, start, end - start + 1),
        RangeAnswer::Unsatisfiable => {
            let e = ApiError::new(
                416,
                code::RANGE_NOT_SATISFIABLE,
                format!("{name} has {len} bytes; the Range asked for none of them"),
            );
            return Ok(error_reply(&e)
                .with_header("Content-Range", format!("bytes */{len}"))
                .with_header("Accept-Ranges", "bytes"));
        }
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| internal(format!("seeking in {name}: {e}")))?;
    }
    let reader = BufReader::with_capacity(DOWNLOAD_BUFFER, file).take(count);
    let body = Body::Stream {
        reader: Box::new(reader),
        len: count,
        content_type,
    };
    let mut reply = with_validators(Reply::new(status, body));
    if status == 206 {
        reply = reply.with_header(
            "Content-Range",
            format!("bytes {start}-{}/{len}", start + count - 1),
        );
    }
    Ok(reply)
}

// ---------------------------------------------------------------------------
// Thumbnails.

/// `GET /api/v1/sessions/{id}/thumb.jpg`: a frame of the panorama if there
/// is one, else of CAM_C (else any camera), extracted once with ffmpeg and
/// kept as `sessions/S/thumb.jpg`; made again when its source is newer.
fn thumbnail(
    state: &State,
    req: &tiny_http::Request,
    session: &SessionId,
) -> Result<Reply, ApiError> {
    let layout = &state.layout;
    let none = || {
        ApiError::new(
            404,
            code::RECORDING_NOT_FOUND,
            format!("session {session} has no recording to take a frame from yet"),
        )
    };
    let panorama = layout.panorama(session);
    let source = std::iter::once(panorama)
        .chain(
            [CameraId::Center, CameraId::Left, CameraId::Right]
                .into_iter()
                .filter(|&c| layout.digest(session, c).is_file())
                .map(|c| layout.recording(session, c)),
        )
        .find(|p| p.is_file())
        .ok_or_else(none)?;
    let target = layout.thumbnail(session);
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let fresh = matches!((mtime(&target), mtime(&source)), (Some(t), Some(s)) if t >= s);
    if !fresh {
        make_thumbnail(&state.ffmpeg, &source, &target, layout.temp_dir())
            .map_err(|e| internal(format!("making the thumbnail of session {session}: {e}")))?;
    }
    let file = open(&target).map_err(|_| none())?;
    let tag = file_tag(&file).map_err(|e| internal(format!("thumbnail of {session}: {e}")))?;
    Ok(
        serve_file(req, file, &tag, "image/jpeg", &format!("{session}.jpg"))?
            .with_header("Cache-Control", "no-cache"),
    )
}

/// One frame, 320 pixels wide, from one second in (or the first frame of a
/// shorter file), written atomically: made in `temp/` (same filesystem as
/// `sessions/`, with the prefix start-up cleans), then renamed into place,
/// so `sessions/` never holds a partial or stray file.
fn make_thumbnail(ffmpeg: &Path, source: &Path, target: &Path, dir: &Path) -> Result<(), String> {
    let temp = tempfile::Builder::new()
        .prefix(&format!("{}thumb-", super::UPLOAD_TEMP_PREFIX))
        .suffix(".jpg")
        .tempfile_in(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let run = |seek: &str| {
        Command::new(ffmpeg)
            .args(["-v", "error", "-nostdin", "-y", "-ss", seek, "-i"])
            .arg(source)
            .args([
                "-frames:v",
                "1",
                "-vf",
                "scale=320:-2",
                "-q:v",
                "5",
                "-f",
                "mjpeg",
            ])
            .arg(temp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", ffmpeg.display()))
    };
    let written = |out: &std::process::Output| {
        out.status.success() && std::fs::metadata(temp.path()).is_ok_and(|m| m.len() > 0)
    };
    let mut out = run("1")?;
    if !written(&out) {
        out = run("0")?;
    }
    if !written(&out) {
        return Err(format!(
            "ffmpeg found no frame in {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    temp.persist(target)
        .map_err(|e| format!("{}: {}", target.display(), e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeAnswer::*;
        let p = |s, e| Partial { start: s, end: e };
        assert_eq!(parse_range("bytes=0-99", 1000), p(0, 99));
        assert_eq!(parse_range("bytes=100-", 1000), p(100, 999));
        assert_eq!(parse_range("bytes=-100", 1000), p(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), p(0, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), p(900, 999));
        assert_eq!(parse_range("BYTES=1-1", 1000), p(1, 1));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "nonsense",
        ] {
            assert_eq!(parse_range(ignored, 1000), Full, "{ignored}");
        }
    }

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

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("GAME%5F1"), "GAME_1");
        assert_eq!(decode("%3Cscript%3E"), "<script>");
        assert_eq!(decode("50%"), "50%");
        assert_eq!(decode("%zz"), "%zz");
    }

    #[test]
    fn if_none_match_lists() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"b\""));
        assert!(!none_match("\"a\"", "\"b\""));
    }
}
