//! A session's verdict, the queue's and the free space's.

use std::collections::{BTreeMap, BTreeSet};

use super::report::{
    JobReport, Note, PanoramaReport, QueueReport, RecordingReport, RecordingStatus, SessionReport,
    StorageReport,
};
use crate::base::config::GB;
use crate::base::fsx;
use crate::base::ids::{CameraId, SessionId};
use crate::base::jobs::{Job, JobStatus};
use crate::base::layout::ServerLayout;
use crate::check::Status;
use crate::store::Store;

/// The newest job for `session`.
pub(super) fn latest_job(jobs: &[Job], session: &SessionId) -> Option<JobReport> {
    jobs.iter()
        .rev()
        .find(|j| j.session_id == session.as_str())
        .map(|j| JobReport {
            id: j.id.clone(),
            status: j.status,
            error: j.error.clone(),
        })
}

/// Puts a session's findings together.
pub(super) fn session_report(
    store: &Store,
    session: &SessionId,
    cameras: &BTreeSet<CameraId>,
    recordings: Vec<RecordingReport>,
    job: Option<JobReport>,
) -> SessionReport {
    let (present, missing) = present_and_missing(cameras);
    let pano_size = store.panorama_file_size(session);
    let panorama = PanoramaReport {
        present: pano_size.is_some(),
        path: store.layout().panorama(session),
        size_bytes: pano_size,
    };
    let bad = recordings
        .iter()
        .filter(|r| r.status != RecordingStatus::Ok)
        .count();
    let mut notes = camera_notes(store, &recordings, bad, &present, &missing);
    let complete = missing.is_empty();
    notes.extend(stitch_note(job.as_ref(), pano_size, complete && bad == 0));
    let status = notes
        .iter()
        .fold(Status::Pass, |acc, n| acc.worst(n.status));
    SessionReport {
        session_id: session.to_string(),
        status,
        complete,
        cameras_present: present,
        cameras_missing: missing,
        recordings,
        panorama,
        job,
        notes,
    }
}

/// The names of the cameras stored (`cameras`) and of those missing.
fn present_and_missing(cameras: &BTreeSet<CameraId>) -> (Vec<String>, Vec<String>) {
    let (present, missing): (Vec<CameraId>, Vec<CameraId>) =
        CameraId::ALL.iter().partition(|c| cameras.contains(c));
    let names = |cs: Vec<CameraId>| cs.iter().map(ToString::to_string).collect::<Vec<_>>();
    (names(present), names(missing))
}

/// Findings about the recordings: how many are not OK, which are missing.
fn camera_notes(
    store: &Store,
    recordings: &[RecordingReport],
    bad: usize,
    present: &[String],
    missing: &[String],
) -> Vec<Note> {
    let mut notes = Vec::new();
    let mut note = |status: Status, message: String| notes.push(Note { status, message });
    if bad > 0 {
        note(
            Status::Fail,
            format!("{bad} of {} recordings not OK", recordings.len()),
        );
    }
    if let Some(message) = absence(store, present, missing) {
        note(Status::Fail, message);
    }
    notes
}

/// What is absent, if anything: the whole session, or some cameras.
fn absence(store: &Store, present: &[String], missing: &[String]) -> Option<String> {
    if present.is_empty() {
        Some(format!(
            "no such session under {}",
            store.layout().sessions.display()
        ))
    } else if !missing.is_empty() {
        Some(format!(
            "incomplete: {} missing; upload from {} (rig-upload on that node)",
            missing.join(", "),
            if missing.len() == 1 {
                "that camera"
            } else {
                "those cameras"
            }
        ))
    } else {
        None
    }
}

/// The finding about stitching, if any: a done job without its panorama, a
/// failed one, a complete good session never queued, an empty panorama.
fn stitch_note(job: Option<&JobReport>, pano_size: Option<u64>, ready: bool) -> Option<Note> {
    let note = |status: Status, message: String| Some(Note { status, message });
    match (job, pano_size) {
        (Some(j), None) if j.status == JobStatus::Done => note(
            Status::Fail,
            format!(
                "job {} is done but the panorama is missing; queue the session again (rig-stitch)",
                j.id
            ),
        ),
        (Some(j), None) if j.status == JobStatus::Failed => note(
            Status::Warn,
            format!(
                "stitching failed ({}); fix the cause and run rig-stitch again",
                j.error.as_deref().unwrap_or("no reason recorded")
            ),
        ),
        (None, None) if ready => note(
            Status::Warn,
            "complete but not queued for stitching; queue it with rig-stitch".to_string(),
        ),
        (_, Some(0)) => note(
            Status::Warn,
            "the panorama is empty (0 bytes); stitch the session again".to_string(),
        ),
        _ => None,
    }
}

/// Summarises the queue file.
pub(super) fn queue_report(
    store: &Store,
    file: Result<crate::base::jobs::JobsFile, crate::base::jobs::JobsError>,
    sessions: &BTreeMap<SessionId, BTreeSet<CameraId>>,
    filtered: bool,
) -> QueueReport {
    let path = store.layout().jobs_file();
    let present = path.exists();
    let mut jobs = zero_job_counts();
    match file {
        Ok(file) => {
            let mut orphans = BTreeSet::new();
            for j in &file.jobs {
                *jobs.entry(j.status.as_str().to_string()).or_insert(0) += 1;
                if !filtered && !job_session_stored(store, sessions, &j.session_id) {
                    orphans.insert(j.session_id.clone());
                }
            }
            QueueReport {
                path,
                status: if orphans.is_empty() {
                    Status::Pass
                } else {
                    Status::Warn
                },
                present,
                jobs,
                orphans: orphans.into_iter().collect(),
                error: None,
            }
        }
        Err(e) => QueueReport {
            path,
            status: Status::Fail,
            present,
            jobs,
            orphans: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// A count of 0 for every job status, so that each is reported.
fn zero_job_counts() -> BTreeMap<String, u64> {
    [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Done,
        JobStatus::Failed,
    ]
    .iter()
    .map(|s| (s.as_str().to_string(), 0))
    .collect()
}

/// Whether the session a job names is on disk (seen by the walk, or in the
/// store); a job naming no valid session is not.
fn job_session_stored(
    store: &Store,
    sessions: &BTreeMap<SessionId, BTreeSet<CameraId>>,
    session_id: &str,
) -> bool {
    SessionId::parse(session_id)
        .map(|id| sessions.contains_key(&id) || store.has_session(&id))
        .unwrap_or(false)
}

/// Free space against the floor.
pub(super) fn storage_report(layout: &ServerLayout, min_gb: f64) -> StorageReport {
    let path = fsx::existing_ancestor(&layout.sessions).to_path_buf();
    match fsx::free_space(&path) {
        Ok(free) => {
            let free_gb = free as f64 / GB;
            let (status, advice) = free_space_verdict(free_gb, min_gb);
            StorageReport {
                message: format!(
                    "{free_gb:.1} GB free on {} (floor {min_gb:.1} GB){advice}",
                    path.display()
                ),
                path,
                status,
                free_bytes: Some(free),
                free_gb: Some((free_gb * 1000.0).round() / 1000.0),
                min_free_space_gb: min_gb,
            }
        }
        Err(e) => StorageReport {
            message: format!("cannot tell free space: {e}"),
            path,
            status: Status::Fail,
            free_bytes: None,
            free_gb: None,
            min_free_space_gb: min_gb,
        },
    }
}

/// The status of `free_gb` against the floor `min_gb`, and the advice to
/// add to the message.
fn free_space_verdict(free_gb: f64, min_gb: f64) -> (Status, &'static str) {
    if free_gb < min_gb {
        (
            Status::Fail,
            "; below storage.min_free_space_gb, so rig-receive refuses uploads: \
             move finished sessions off this disk",
        )
    } else if free_gb < 2.0 * min_gb {
        (
            Status::Warn,
            "; less than twice the floor: move finished sessions off this disk soon",
        )
    } else {
        (Status::Pass, "")
    }
}
