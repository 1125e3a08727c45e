//! The processing queue, `processing/jobs.json`, shared by rig-receive
//! (which enqueues complete sessions) and rig-stitch (which runs them).
//!
//! Every change is a read-modify-write under an exclusive lock on
//! `processing/jobs.lock`, and the file is rewritten atomically, so the two
//! programs never lose each other's updates and a reader never sees half a
//! file.
//!
//! The transitions of a job (claim, finish, fail, release, re-queue) are in
//! `transitions`, with [`Refused`] and [`holder_alive`].

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::fsx::{self, LockFile};
use crate::base::ids::SessionId;
use crate::base::layout::ServerLayout;

mod transitions;

pub use transitions::{Refused, holder_alive};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for rig-stitch.
    Queued,
    /// A rig-stitch process is working on it.
    Running,
    /// The panorama is written.
    Done,
    /// Stitching failed; `error` says why.
    Failed,
}

impl JobStatus {
    /// The lowercase name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stitch job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Unique within the file: `{session_id}-{n}`.
    pub id: String,
    /// The session to stitch.
    pub session_id: String,
    /// Where it stands.
    pub status: JobStatus,
    /// When it was queued (RFC 3339 UTC).
    pub created_at: String,
    /// When a run started.
    pub started_at: Option<String>,
    /// When the last run ended.
    pub finished_at: Option<String>,
    /// Percent done, 0 to 100.
    pub progress: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// The panorama path, once done.
    pub output: Option<String>,
    /// PID of the rig-stitch process running it, so a crashed run can be told
    /// from a live one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobsFile {
    /// Jobs, oldest first.
    pub jobs: Vec<Job>,
}

impl JobsFile {
    /// Appends a new queued job for `session`, numbered after its others.
    fn push_queued(&mut self, session: &SessionId) -> (Job, bool) {
        let n = self
            .jobs
            .iter()
            .filter(|j| j.session_id == session.as_str())
            .count()
            + 1;
        let job = Job {
            id: format!("{session}-{n}"),
            session_id: session.to_string(),
            status: JobStatus::Queued,
            created_at: crate::base::manifest::format_time(jiff::Timestamp::now()),
            started_at: None,
            finished_at: None,
            progress: 0.0,
            error: None,
            output: None,
            pid: None,
        };
        self.jobs.push(job.clone());
        (job, true)
    }

    /// Whether a job of `session` is running.
    fn session_running(&self, session: &str) -> bool {
        self.jobs
            .iter()
            .any(|j| j.session_id == session && j.status == JobStatus::Running)
    }
}

/// Why the queue could not be read or written.
#[derive(Debug)]
pub enum JobsError {
    /// Reading, locking or writing failed.
    Io(io::Error),
    /// `jobs.json` does not parse as a jobs file.
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// `jobs.json` parses but does not hold what it must (a job vanished).
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl fmt::Display for JobsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobsError::Io(e) => write!(f, "job queue: {e}"),
            JobsError::Parse { path, source } => write!(
                f,
                "{}: not a valid jobs file ({source}); fix or move it aside",
                path.display()
            ),
            JobsError::Corrupt { path, message } => write!(
                f,
                "{}: not a valid jobs file ({message}); fix or move it aside",
                path.display()
            ),
        }
    }
}

impl std::error::Error for JobsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JobsError::Io(e) => Some(e),
            JobsError::Parse { source, .. } => Some(source),
            JobsError::Corrupt { .. } => None,
        }
    }
}

impl From<io::Error> for JobsError {
    fn from(e: io::Error) -> Self {
        JobsError::Io(e)
    }
}

/// Handle on a server's queue.
#[derive(Debug, Clone)]
pub struct JobQueue {
    file: PathBuf,
    lock: PathBuf,
}

impl JobQueue {
    /// The queue of a server layout.
    pub fn new(layout: &ServerLayout) -> JobQueue {
        JobQueue {
            file: layout.jobs_file(),
            lock: layout.jobs_lock(),
        }
    }

    /// Path of `jobs.json`.
    pub fn path(&self) -> &Path {
        &self.file
    }

    /// Reads the queue without locking (a consistent snapshot, thanks to
    /// atomic rewrites). A missing file is an empty queue.
    pub fn load(&self) -> Result<JobsFile, JobsError> {
        match std::fs::read_to_string(&self.file) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| JobsError::Parse {
                path: self.file.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(JobsFile::default()),
            Err(e) => Err(fsx::with_path(&self.file)(e).into()),
        }
    }

    /// Runs `f` on the queue under the lock and writes the result back
    /// atomically (only if `f` changed something).
    pub fn update<T>(&self, f: impl FnOnce(&mut JobsFile) -> T) -> Result<T, JobsError> {
        let _lock = LockFile::acquire(&self.lock)?;
        let mut jobs = self.load()?;
        let before = jobs.clone();
        let out = f(&mut jobs);
        if jobs != before {
            let mut text = serde_json::to_string_pretty(&jobs).unwrap_or_default();
            text.push('\n');
            fsx::atomic_write(&self.file, text.as_bytes())?;
        }
        Ok(out)
    }

    /// Queues a stitch of `session` unless one is already queued or running.
    /// Returns the job and whether it is new.
    pub fn enqueue(&self, session: &SessionId) -> Result<(Job, bool), JobsError> {
        self.update(|file| {
            if let Some(job) = file.jobs.iter().find(|j| {
                j.session_id == session.as_str()
                    && matches!(j.status, JobStatus::Queued | JobStatus::Running)
            }) {
                return (job.clone(), false);
            }
            file.push_queued(session)
        })
    }

    /// Queues a stitch of `session`'s recordings as they are now, after one
    /// of them was replaced: a queued job serves (it has not read its inputs
    /// yet), a running one does not (it is stitching the old file), so a new
    /// job is queued behind it and the panorama ends up made of what is
    /// stored. Returns the job and whether it is new.
    pub fn enqueue_fresh(&self, session: &SessionId) -> Result<(Job, bool), JobsError> {
        self.update(|file| {
            if let Some(job) = file
                .jobs
                .iter()
                .find(|j| j.session_id == session.as_str() && j.status == JobStatus::Queued)
            {
                return (job.clone(), false);
            }
            file.push_queued(session)
        })
    }

    /// The newest job for `session`, if any.
    pub fn latest_for(&self, session: &SessionId) -> Result<Option<Job>, JobsError> {
        Ok(self
            .load()?
            .jobs
            .into_iter()
            .rev()
            .find(|j| j.session_id == session.as_str()))
    }
}

/// Now, as the queue's timestamps carry it.
fn now() -> String {
    crate::base::manifest::format_time(jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enqueue_has_no_duplicates_and_survives_threads() {
        let dir = tempfile::tempdir().unwrap();
        let q = JobQueue::new(&ServerLayout::under(dir.path()));
        let sessions: Vec<SessionId> = (0..8)
            .map(|i| SessionId::parse(&format!("S{i}")).unwrap())
            .collect();
        std::thread::scope(|s| {
            for id in &sessions {
                for _ in 0..3 {
                    let q = q.clone();
                    s.spawn(move || q.enqueue(id).unwrap());
                }
            }
        });
        let file = q.load().unwrap();
        assert_eq!(file.jobs.len(), 8, "one job per session, none lost");
        assert!(file.jobs.iter().all(|j| j.status == JobStatus::Queued));
        let (again, new) = q.enqueue(&sessions[0]).unwrap();
        assert!(!new);
        assert_eq!(again.id, "S0-1");
    }

    #[test]
    fn a_replaced_recording_queues_behind_a_running_stitch_which_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let q = JobQueue::new(&ServerLayout::under(dir.path()));
        let s = SessionId::parse("S").unwrap();
        let other = SessionId::parse("T").unwrap();
        let (first, _) = q.enqueue(&s).unwrap();
        // Queued, not started: it will read the new file, no second job.
        let (same, new) = q.enqueue_fresh(&s).unwrap();
        assert_eq!((same.id.as_str(), new), (first.id.as_str(), false));
        let running = q.claim_next(7).unwrap().unwrap();
        assert_eq!(running.id, "S-1");
        // Running on the old file: a new job is queued behind it ...
        let (behind, new) = q.enqueue_fresh(&s).unwrap();
        assert_eq!((behind.id.as_str(), new), ("S-2", true));
        // ... and plain enqueue still sees the running one.
        assert!(!q.enqueue(&s).unwrap().1);
        // S-2 waits while S-1 runs; another session's job does not.
        q.enqueue(&other).unwrap();
        assert_eq!(q.claim_next(8).unwrap().unwrap().id, "T-1");
        assert!(q.claim_next(8).unwrap().is_none(), "S-2 must wait for S-1");
        q.finish(&running.id, 7, Path::new("out")).unwrap().unwrap();
        assert_eq!(q.claim_next(8).unwrap().unwrap().id, "S-2");
    }

    #[test]
    fn corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ServerLayout::under(dir.path());
        std::fs::create_dir_all(&layout.processing).unwrap();
        std::fs::write(layout.jobs_file(), "{not json").unwrap();
        let err = JobQueue::new(&layout).load().unwrap_err();
        let source = std::error::Error::source(&err).expect("the parse error");
        assert!(source.is::<serde_json::Error>(), "{source}");
        let err = err.to_string();
        assert!(err.contains("jobs.json"), "{err}");
        assert!(
            err.contains("not a valid jobs file (key must be a string"),
            "{err}"
        );
    }
}
