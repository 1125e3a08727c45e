//! The JSON shapes of the read side: what `/api/v1/sessions` and
//! `/api/v1/stats` answer, and what the status page ([`super::page`]) is
//! built from.

use serde::Serialize;

use crate::base::checksum::Sha256;
use crate::base::jobs::{Job, JobStatus};

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
