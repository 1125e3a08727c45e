//! The JSON of what is stored: session lists and details, jobs, stats.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Serialize;

use super::jobs_error;
use super::params::Query;
use super::scan::{Scan, in_flight, scan_all, scan_session};
use crate::base::checksum::Sha256;
use crate::base::config::GB;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::jobs::{Job, JobQueue, JobStatus};
use crate::base::manifest::{self, Manifest};
use crate::base::protocol::code;
use crate::receive::ApiError;
use crate::receive::state::State;
use crate::receive::summary::{
    CameraSummary, JobSummary, ManifestSummary, PanoramaSummary, SessionList, SessionSummary, Stats,
};
use crate::store::{Store, Stored};

/// `GET /api/v1/sessions/{id}`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct SessionDetail {
    success: bool,
    session: SessionSummary,
}

/// `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct JobsReply {
    success: bool,
    jobs: Vec<Job>,
}

impl JobsReply {
    pub(super) fn new(jobs: Vec<Job>) -> JobsReply {
        JobsReply {
            success: true,
            jobs,
        }
    }
}

/// `GET /api/v1/jobs/{id}` and the 202 of a stitch request.
#[derive(Debug, Clone, Serialize)]
pub(super) struct JobReply {
    pub(super) success: bool,
    pub(super) job: Job,
}

pub(super) fn time(t: SystemTime) -> Option<String> {
    jiff::Timestamp::try_from(t).ok().map(manifest::format_time)
}

/// The jobs file as the newest job per session; a broken queue is a warning.
pub(super) fn latest_jobs(state: &State) -> (Vec<Job>, Vec<String>) {
    match JobQueue::new(state.store.layout()).load() {
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

pub(super) fn newest_job<'j>(jobs: &'j [Job], session: &SessionId) -> Option<&'j Job> {
    jobs.iter().rev().find(|j| j.session_id == session.as_str())
}

pub(super) fn api_path(session: &SessionId, rest: &str) -> String {
    format!("/api/v1/sessions/{session}/{rest}")
}

/// A session's summary; `details` adds digests and manifest summaries.
pub(super) fn summarize(store: &Store, scan: &Scan, jobs: &[Job], details: bool) -> SessionSummary {
    let s = &scan.id;
    let stored = || scan.cameras.iter().filter_map(|(_, st, _)| st.as_ref());
    let any_stored = stored().next().is_some();
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
        cameras: scan
            .cameras
            .iter()
            .map(|(c, st, up)| camera_summary(store, s, *c, st.as_ref(), *up, details))
            .collect(),
        recording_bytes: stored().map(|s| s.size).sum(),
        uploaded_at: stored().map(|s| s.uploaded).max().and_then(time),
        stitched: scan.panorama.is_some(),
        panorama: scan.panorama.map(|(size, mtime)| PanoramaSummary {
            size_bytes: size,
            created_at: time(mtime),
            url: api_path(s, "stitched/panorama.mp4"),
        }),
        job: newest_job(jobs, s).map(JobSummary::from),
        thumbnail_url: store
            .may_have_thumbnail(s, any_stored)
            .then(|| api_path(s, "thumb.jpg")),
    }
}

/// One camera of a session's summary, its manifest read when stored.
fn camera_summary(
    store: &Store,
    s: &SessionId,
    c: CameraId,
    stored: Option<&Stored>,
    uploading: bool,
    details: bool,
) -> CameraSummary {
    let mut cam = CameraSummary {
        camera_id: c.as_str(),
        present: stored.is_some(),
        uploading,
        size_bytes: stored.map(|s| s.size),
        duration_sec: None,
        uploaded_at: stored.and_then(|s| time(s.uploaded)),
        url: stored.map(|_| api_path(s, &format!("{c}/recording.mp4"))),
        hostname: None,
        checksum_sha256: None,
        manifest: None,
        manifest_error: None,
    };
    let Some(stored) = stored else {
        return cam;
    };
    add_manifest(
        &mut cam,
        store,
        &RecordingId::new(s.clone(), c),
        stored,
        details,
    );
    if details {
        cam.checksum_sha256 = Some(stored.sha256);
    }
    cam
}

/// Fills in what the stored manifest of `rec` says (or why it cannot be
/// read); its summary too with `details`.
fn add_manifest(
    cam: &mut CameraSummary,
    store: &Store,
    rec: &RecordingId,
    stored: &Stored,
    details: bool,
) {
    match store.manifest(rec) {
        Ok(m) => {
            cam.duration_sec = Some(m.video.duration_sec);
            cam.hostname = m.device.as_ref().and_then(|d| d.hostname.clone());
            if details {
                cam.manifest = Some(manifest_summary(&m, &stored.sha256));
            }
        }
        Err(e) => {
            log::warn!("{} {}: manifest: {e}", rec.session, rec.camera);
            cam.manifest_error = Some(e.to_string());
        }
    }
}

pub(super) fn manifest_summary(m: &Manifest, server_sha256: &Sha256) -> ManifestSummary {
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
pub(super) fn list(state: &State, query: &Query) -> Result<SessionList, ApiError> {
    let scans: Vec<Scan> = scan_all(state)?
        .into_iter()
        .filter(|s| query.complete.is_none_or(|want| s.complete() == want))
        .collect();
    let (jobs, warnings) = latest_jobs(state);
    let sessions = scans
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|scan| summarize(&state.store, scan, &jobs, false))
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

/// `GET /api/v1/sessions/{id}`.
pub(super) fn detail(state: &State, session: &SessionId) -> Result<SessionDetail, ApiError> {
    let scan = scan_session(state, session)?;
    let (jobs, _) = latest_jobs(state);
    Ok(SessionDetail {
        success: true,
        session: summarize(&state.store, &scan, &jobs, true),
    })
}

/// `GET /api/v1/jobs/{id}`. Job IDs are `{session}-{n}`.
pub(super) fn job(state: &State, id: &str) -> Result<JobReply, ApiError> {
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
    let jobs = JobQueue::new(state.store.layout())
        .load()
        .map_err(jobs_error)?;
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
    let free = free_bytes_logged(state);
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

/// The free space of the sessions' filesystem; `None` (logged) when it
/// cannot be read.
fn free_bytes_logged(state: &State) -> Option<u64> {
    let free = state.store.free_bytes();
    if let Err(e) = &free {
        log::error!(
            "stats: free space of {}: {e}",
            state.store.layout().sessions.display()
        );
    }
    free.ok()
}
