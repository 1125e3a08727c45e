//! What is stored, per session: a cheap scan (stat and digest files,
//! through [`crate::store::Store`]) beside the uploads in flight.

use std::sync::PoisonError;
use std::time::SystemTime;

use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::protocol::code;
use crate::receive::ApiError;
use crate::receive::state::State;
use crate::store::{Store, Stored};

/// One session, from the cheap scan.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    pub(super) id: SessionId,
    pub(super) cameras: [(CameraId, Option<Stored>, bool); 3],
    pub(super) panorama: Option<(u64, SystemTime)>,
    /// When anything of it last changed; `None` while only uploads exist.
    pub(super) newest: Option<SystemTime>,
}

impl Scan {
    pub(super) fn complete(&self) -> bool {
        self.cameras.iter().all(|(_, s, _)| s.is_some())
    }

    pub(super) fn uploading(&self) -> bool {
        self.cameras.iter().any(|(_, _, u)| *u)
    }
}

/// Recordings with an upload in flight right now.
pub(super) fn in_flight(state: &State) -> Vec<RecordingId> {
    let set = state
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut v: Vec<RecordingId> = set.iter().cloned().collect();
    v.sort();
    v
}

fn scan_one(store: &Store, id: SessionId, flying: &[RecordingId]) -> Scan {
    let cam = |c: CameraId| {
        let up = flying.iter().any(|r| r.session == id && r.camera == c);
        (c, store.stored(&RecordingId::new(id.clone(), c)), up)
    };
    let cameras = [
        cam(CameraId::Left),
        cam(CameraId::Center),
        cam(CameraId::Right),
    ];
    let panorama = store.panorama(&id);
    let newest = cameras
        .iter()
        .filter_map(|(_, s, _)| s.as_ref().map(|s| s.uploaded))
        .chain(panorama.map(|p| p.1))
        .max()
        .or_else(|| store.session_modified(&id));
    Scan {
        id,
        cameras,
        panorama,
        newest,
    }
}

/// Every session stored or being uploaded, newest first: those being
/// uploaded on top, then by last change; ties by ID, descending.
pub(super) fn scan_all(state: &State) -> Result<Vec<Scan>, ApiError> {
    let mut ids = state
        .store
        .sessions()
        .map_err(|e| super::internal(e.to_string()))?;
    let flying = in_flight(state);
    ids.extend(flying.iter().map(|r| r.session.clone()));
    ids.sort();
    ids.dedup();
    let mut scans: Vec<Scan> = ids
        .into_iter()
        .map(|id| scan_one(&state.store, id, &flying))
        .collect();
    // Sessions being uploaded are happening now: on top, among them by ID.
    let key = |s: &Scan| (s.uploading(), (!s.uploading()).then_some(s.newest));
    scans.sort_by(|a, b| (key(b), &b.id).cmp(&(key(a), &a.id)));
    Ok(scans)
}

pub(super) fn not_found(session: &SessionId) -> ApiError {
    ApiError::new(
        404,
        code::SESSION_NOT_FOUND,
        format!(
            "session {session} is not on this server; GET /api/v1/sessions lists those that are"
        ),
    )
}

/// A session's scan, or 404 when nothing of it is stored or uploading.
pub(super) fn scan_session(state: &State, session: &SessionId) -> Result<Scan, ApiError> {
    let flying = in_flight(state);
    let known = state.store.has_session(session) || flying.iter().any(|r| &r.session == session);
    if !known {
        return Err(not_found(session));
    }
    Ok(scan_one(&state.store, session.clone(), &flying))
}
