//! `rig-check server`: audits a server's storage.
//!
//! The walk ([`crate::store::Store::walk`]) finds sessions, cameras and
//! everything that is not in the layout. Each recording's small files
//! (manifest, receive-time digest) are read first, serially; then every
//! `recording.mp4` is hashed once, in parallel on rayon's pool, and the
//! digest is compared with both `recording.sha256` and the manifest's
//! `checksum.value`. Every file is read through [`crate::store`].
//!
//! | file | job |
//! |---|---|
//! | `mod` | the check, step by step |
//! | `report` | the report's types (its JSON) |
//! | `inspect` | one recording: small files, then its digest |
//! | `session` | a session's, the queue's and the free space's verdicts |
//! | `leftovers` | strays, temp files, partials |
//! | `text` | the report for people |

mod inspect;
mod leftovers;
mod report;
mod session;
mod text;

pub use report::{
    JobReport, Leftover, LeftoverKind, Note, PanoramaReport, PartialReport, Problem, QueueReport,
    RecordingReport, RecordingStatus, ServerReport, SessionReport, StorageReport, Summary,
};

use std::collections::BTreeMap;
use std::time::Instant;

use self::inspect::{Inspected, inspect};
use super::{CheckError, HashJob, Status, hash_all};
use crate::base::config::StorageConfig;
use crate::base::ids::SessionId;
use crate::base::jobs::JobQueue;
use crate::base::layout::ServerLayout;
use crate::store::Store;

/// What `rig-check server` should do.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Check only this session (`--session`). Temp files, the queue and free
    /// space are still checked. By default every session is checked.
    pub session: Option<SessionId>,
    /// Check presence and sizes only, no hashing (`--quick`). Off by default.
    pub quick: bool,
    /// Draw a progress line on stderr while hashing (the binary sets this
    /// when stderr is a terminal).
    pub progress: bool,
}

/// Audits the server storage described by `storage`.
///
/// Fails (a usage/config error) only when `sessions_path` does not exist or
/// is not a directory; every other problem is a finding in the report.
pub fn check_server(
    storage: &StorageConfig,
    opts: &ServerOptions,
) -> Result<ServerReport, CheckError> {
    let started = Instant::now();
    let layout = ServerLayout::from_config(storage);
    check_sessions_dir(&layout)?;
    let store = Store::new(layout.clone());
    let (found, leftovers, walk_errors) = walk(&store, opts.session.as_ref());
    let queue_file = JobQueue::new(&layout).load();
    let (sessions, bytes_hashed) = check_sessions(&store, &found, &queue_file, opts);
    let queue = session::queue_report(&store, queue_file, &found, opts.session.is_some());
    let storage_report = session::storage_report(&layout, storage.min_free_space_gb);

    let status = overall_status(
        queue.status.worst(storage_report.status),
        &sessions,
        !leftovers.is_empty(),
        !walk_errors.is_empty(),
    );
    let summary = summarize(&sessions, leftovers.len(), bytes_hashed, started);
    Ok(ServerReport {
        check: "server",
        status,
        checked_at: super::now_rfc3339(),
        mode: if opts.quick { "quick" } else { "full" },
        session_filter: opts.session.as_ref().map(ToString::to_string),
        sessions_path: layout.sessions.clone(),
        summary,
        sessions,
        leftovers,
        partials: leftovers::partial_reports(&store),
        queue,
        storage: storage_report,
        walk_errors,
    })
}

/// Walks the sessions directory (only `session`'s, when given, which is
/// then checked even if absent): the sessions and cameras found, what is
/// left over, and what could not be read.
fn walk(
    store: &Store,
    session: Option<&SessionId>,
) -> (BTreeMap<SessionId, Cameras>, Vec<Leftover>, Vec<Problem>) {
    let mut tree = store.walk(session);
    if let Some(id) = session {
        tree.sessions.entry(id.clone()).or_default();
    }
    let mut leftovers = leftovers::strays(store, &tree.strays);
    leftovers.extend(leftovers::extras(store, &mut tree.errors));
    let walk_errors = tree.errors.into_iter().map(leftovers::problem).collect();
    (tree.sessions, leftovers, walk_errors)
}

/// The worst of the queue and storage status (`base`), the sessions',
/// a warning for leftovers and a failure for walk errors.
fn overall_status(
    base: Status,
    sessions: &[SessionReport],
    leftovers: bool,
    walk_errors: bool,
) -> Status {
    let mut status = sessions.iter().fold(base, |st, s| st.worst(s.status));
    if leftovers {
        status = status.worst(Status::Warn);
    }
    if walk_errors {
        status = status.worst(Status::Fail);
    }
    status
}

/// The one setup error: no sessions directory to check.
fn check_sessions_dir(layout: &ServerLayout) -> Result<(), CheckError> {
    match std::fs::metadata(&layout.sessions) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CheckError::Setup(format!(
            "{} is not a directory; check storage.sessions_path or --root",
            layout.sessions.display()
        ))),
        Err(e) => Err(CheckError::Setup(format!(
            "sessions directory {}: {e}; check storage.sessions_path or --root",
            layout.sessions.display()
        ))),
    }
}

type Cameras = std::collections::BTreeSet<crate::base::ids::CameraId>;
type QueueFile = Result<crate::base::jobs::JobsFile, crate::base::jobs::JobsError>;

/// Inspects the small files of every recording, then hashes all at once;
/// returns the session reports and the bytes hashed.
fn check_sessions(
    store: &Store,
    found: &BTreeMap<SessionId, Cameras>,
    queue_file: &QueueFile,
    opts: &ServerOptions,
) -> (Vec<SessionReport>, u64) {
    let pending = inspect_all(store, found, opts.quick);
    let jobs = hash_jobs(&pending);
    let bytes_hashed = jobs.iter().map(|j| j.size).sum();
    let mut digests = hash_all(&jobs, opts.progress).into_iter();
    let sessions = pending
        .into_iter()
        .map(|(session, recs)| {
            let reports = recs.into_iter().map(|r| r.settle(&mut digests)).collect();
            let job = match queue_file {
                Ok(file) => session::latest_job(&file.jobs, session),
                Err(_) => None,
            };
            session::session_report(store, session, &found[session], reports, job)
        })
        .collect();
    (sessions, bytes_hashed)
}

/// The small files of every recording found, inspected, by session.
fn inspect_all<'a>(
    store: &Store,
    found: &'a BTreeMap<SessionId, Cameras>,
    quick: bool,
) -> Vec<(&'a SessionId, Vec<Inspected>)> {
    found
        .iter()
        .map(|(session, cameras)| {
            let recs = cameras
                .iter()
                .map(|&camera| inspect(store, session, camera, quick))
                .collect();
            (session, recs)
        })
        .collect()
}

/// The recordings to hash, in the order of `pending`.
fn hash_jobs(pending: &[(&SessionId, Vec<Inspected>)]) -> Vec<HashJob> {
    pending
        .iter()
        .flat_map(|(_, recs)| recs.iter())
        .filter(|r| r.hash)
        .map(|r| HashJob {
            path: r.report.path.clone(),
            size: r.report.size_bytes.unwrap_or(0),
        })
        .collect()
}

/// Counts over the whole report.
fn summarize(
    sessions: &[SessionReport],
    leftovers: usize,
    bytes_hashed: u64,
    started: Instant,
) -> Summary {
    let mut not_ok = BTreeMap::new();
    let mut recordings = 0;
    let mut recordings_ok = 0;
    for r in sessions.iter().flat_map(|s| &s.recordings) {
        recordings += 1;
        if r.status == RecordingStatus::Ok {
            recordings_ok += 1;
        } else {
            let key = serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *not_ok.entry(key).or_insert(0) += 1;
        }
    }
    Summary {
        sessions: sessions.len() as u64,
        sessions_complete: sessions.iter().filter(|s| s.complete).count() as u64,
        recordings,
        recordings_ok,
        recordings_not_ok: not_ok,
        leftovers: leftovers as u64,
        bytes_hashed,
        elapsed_sec: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    }
}
