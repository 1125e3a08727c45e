//! The processing queue, `processing/jobs.json`, shared by rig-receive
//! (which enqueues complete sessions) and rig-stitch (which runs them).
//!
//! Every change is a read-modify-write under an exclusive lock on
//! `processing/jobs.lock`, and the file is rewritten atomically, so the two
//! programs never lose each other's updates and a reader never sees half a
//! file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsx::{self, LockFile};
use crate::ids::SessionId;
use crate::layout::ServerLayout;

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

/// Why the queue could not be read or written.
#[derive(Debug)]
pub enum JobsError {
    /// Reading, locking or writing failed.
    Io(io::Error),
    /// `jobs.json` is not a jobs file.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
}

impl fmt::Display for JobsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobsError::Io(e) => write!(f, "job queue: {e}"),
            JobsError::Corrupt { path, message } => write!(
                f,
                "{}: not a valid jobs file ({message}); fix or move it aside",
                path.display()
            ),
        }
    }
}

impl std::error::Error for JobsError {}

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
            Ok(text) => serde_json::from_str(&text).map_err(|e| JobsError::Corrupt {
                path: self.file.clone(),
                message: e.to_string(),
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
            let n = file
                .jobs
                .iter()
                .filter(|j| j.session_id == session.as_str())
                .count()
                + 1;
            let job = Job {
                id: format!("{session}-{n}"),
                session_id: session.to_string(),
                status: JobStatus::Queued,
                created_at: crate::manifest::format_time(jiff::Timestamp::now()),
                started_at: None,
                finished_at: None,
                progress: 0.0,
                error: None,
                output: None,
                pid: None,
            };
            file.jobs.push(job.clone());
            (job, true)
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
    fn corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let layout = ServerLayout::under(dir.path());
        std::fs::create_dir_all(&layout.processing).unwrap();
        std::fs::write(layout.jobs_file(), "{not json").unwrap();
        let err = JobQueue::new(&layout).load().unwrap_err().to_string();
        assert!(err.contains("jobs.json"), "{err}");
    }
}
