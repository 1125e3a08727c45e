//! Job transitions, owned by rig-stitch: claim, progress, finish, fail,
//! release and re-queue, each one [`JobQueue::update`] that happens whole or
//! is [`Refused`]; and [`holder_alive`], which tells a crashed holder's job
//! from a running one.

use std::fmt;
use std::path::Path;

use super::{Job, JobQueue, JobStatus, JobsError, JobsFile, now};

/// Why a job transition was refused (the queue itself was fine).
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// No job with that ID.
    NoSuchJob(String),
    /// The job is not in the state the transition starts from.
    WrongState {
        /// The job.
        id: String,
        /// Where it stands.
        status: JobStatus,
    },
    /// The job is running under another process.
    NotOurs {
        /// The job.
        id: String,
        /// The process that holds it, if any.
        pid: Option<u32>,
    },
}

impl std::error::Error for Refused {}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NoSuchJob(id) => write!(f, "job {id} is not in the queue"),
            Refused::WrongState { id, status } => write!(f, "job {id} is {status}"),
            Refused::NotOurs { id, pid: Some(p) } => {
                write!(f, "job {id} is held by process {p}")
            }
            Refused::NotOurs { id, pid: None } => write!(f, "job {id} is held by no process"),
        }
    }
}

/// Job transitions, owned by rig-stitch. Each one is a single
/// [`JobQueue::update`]: read, check, change, atomic rewrite, all under the
/// lock, so a transition either happens whole or is refused.
///
/// ```text
///            claim              finish
///  queued ----------> running ---------> done
///    ^                  |  \     fail
///    |   requeue_stale  |   `----------> failed
///    `------------------'  (holder died, or interrupted)
/// ```
impl JobQueue {
    /// Takes job `id` for process `pid`: `queued` becomes `running` with
    /// `started_at` now, progress 0 and no error. Refused unless queued.
    pub fn claim(&self, id: &str, pid: u32) -> Result<Result<Job, Refused>, JobsError> {
        self.update(|file| {
            let job = find_in(file, id, JobStatus::Queued)?;
            start_running(job, pid);
            Ok(job.clone())
        })
    }

    /// Takes the oldest queued job (file order is queue order) for `pid`, if any.
    pub fn claim_next(&self, pid: u32) -> Result<Option<Job>, JobsError> {
        self.update(|file| {
            // A session whose stitch is still running waits: its queued job
            // (a recording replaced meanwhile) must not race the running one
            // to the same panorama and lose to the older inputs.
            let index = (0..file.jobs.len()).find(|&i| {
                let j = &file.jobs[i];
                j.status == JobStatus::Queued && !file.session_running(&j.session_id)
            })?;
            let job = &mut file.jobs[index];
            start_running(job, pid);
            Some(job.clone())
        })
    }

    /// Applies `f` to job `id` if it is `running` under `pid`.
    fn with_own_running(
        &self,
        id: &str,
        pid: u32,
        f: impl FnOnce(&mut Job),
    ) -> Result<Result<Job, Refused>, JobsError> {
        self.update(|file| {
            let job = find_in(file, id, JobStatus::Running)?;
            if job.pid != Some(pid) {
                return Err(Refused::NotOurs {
                    id: id.to_string(),
                    pid: job.pid,
                });
            }
            f(job);
            Ok(job.clone())
        })
    }

    /// Records progress (0 to 100, clamped) of a job `pid` is running.
    pub fn set_progress(
        &self,
        id: &str,
        pid: u32,
        percent: f64,
    ) -> Result<Result<Job, Refused>, JobsError> {
        let percent = if percent.is_finite() {
            (percent.clamp(0.0, 100.0) * 10.0).round() / 10.0
        } else {
            0.0
        };
        self.with_own_running(id, pid, |job| job.progress = percent)
    }

    /// `running` becomes `done`: progress 100, `finished_at` now, `output` set,
    /// pid cleared.
    pub fn finish(
        &self,
        id: &str,
        pid: u32,
        output: &Path,
    ) -> Result<Result<Job, Refused>, JobsError> {
        self.with_own_running(id, pid, |job| {
            job.status = JobStatus::Done;
            job.progress = 100.0;
            job.finished_at = Some(now());
            job.output = Some(output.display().to_string());
            job.error = None;
            job.pid = None;
        })
    }

    /// `running` becomes `failed` with `error`, `finished_at` now, pid cleared.
    pub fn fail(&self, id: &str, pid: u32, error: &str) -> Result<Result<Job, Refused>, JobsError> {
        self.with_own_running(id, pid, |job| {
            job.status = JobStatus::Failed;
            job.finished_at = Some(now());
            job.error = Some(error.to_string());
            job.pid = None;
        })
    }

    /// `running` goes back to `queued` (an interrupted run), noting `why` in
    /// `error` so `--list` tells the story; the next claim clears it.
    pub fn release(
        &self,
        id: &str,
        pid: u32,
        why: &str,
    ) -> Result<Result<Job, Refused>, JobsError> {
        self.with_own_running(id, pid, |job| requeue(job, why.to_string()))
    }

    /// Re-queues every `running` job whose process is gone (`alive` says
    /// no), e.g. after a crash or a power cut. Returns the re-queued jobs.
    /// Use [`holder_alive`] as `alive` outside tests.
    pub fn requeue_stale(&self, alive: impl Fn(&Job) -> bool) -> Result<Vec<Job>, JobsError> {
        self.update(|file| {
            let mut out = Vec::new();
            for job in file.jobs.iter_mut() {
                if job.status == JobStatus::Running && !alive(job) {
                    let why = match job.pid {
                        Some(p) => format!(
                            "re-queued: the rig-stitch run (pid {p}) that started it is gone"
                        ),
                        None => "re-queued: it was running with no process recorded".to_string(),
                    };
                    requeue(job, why);
                    out.push(job.clone());
                }
            }
            out
        })
    }
}

/// Job `id` of `file` if it stands in `status`.
fn find_in<'f>(
    file: &'f mut JobsFile,
    id: &str,
    status: JobStatus,
) -> Result<&'f mut Job, Refused> {
    let Some(job) = file.jobs.iter_mut().find(|j| j.id == id) else {
        return Err(Refused::NoSuchJob(id.to_string()));
    };
    if job.status != status {
        return Err(Refused::WrongState {
            id: id.to_string(),
            status: job.status,
        });
    }
    Ok(job)
}

/// `job` is now `running` under `pid`, started now, no progress or outcome yet.
fn start_running(job: &mut Job, pid: u32) {
    job.status = JobStatus::Running;
    job.pid = Some(pid);
    job.started_at = Some(now());
    job.finished_at = None;
    job.progress = 0.0;
    job.error = None;
    job.output = None;
}

/// Puts a job back in the queue with a note.
fn requeue(job: &mut Job, why: String) {
    job.status = JobStatus::Queued;
    job.pid = None;
    job.progress = 0.0;
    job.error = Some(why);
}

/// Clock ticks per second of `/proc/PID/stat` times. USER_HZ is 100 in the
/// Linux ABI on every architecture the rig runs on.
const USER_HZ: f64 = 100.0;

/// Slack allowed between a process's start and the job's `started_at`,
/// seconds (both clocks are read on one machine; this absorbs rounding).
const START_SLACK_SEC: f64 = 5.0;

/// Whether the process recorded in a running job still holds it: `/proc/PID`
/// exists, is not a zombie, and started no later than the job did (a later
/// start means the PID was reused by an unrelated process after a crash).
/// Where `/proc` is not mounted nothing can be known, and every holder counts
/// as alive: a job is never taken from a process that might be running it.
pub fn holder_alive(job: &Job) -> bool {
    let Some(pid) = job.pid else {
        return false;
    };
    if !Path::new("/proc/self/stat").exists() {
        return true;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    match stat_fields(&stat) {
        None => true,
        Some(("Z" | "X", _)) => false,
        Some((_, started_ticks)) => started_no_later(started_ticks, job),
    }
}

/// The state and the start time in clock ticks (if it parses) of a
/// `/proc/PID/stat` line: the fields after the command name, which is in
/// parentheses and may hold spaces (state is the first, starttime the 20th).
fn stat_fields(stat: &str) -> Option<(&str, Option<f64>)> {
    let rest = stat.rsplit_once(')').map(|(_, r)| r)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(19).and_then(|s| s.parse::<f64>().ok());
    Some((fields.first().copied().unwrap_or(""), ticks))
}

/// Whether a process that started `started_ticks` after boot started no
/// later than `job` did (true when anything is unknown).
fn started_no_later(started_ticks: Option<f64>, job: &Job) -> bool {
    let job_started = job
        .started_at
        .as_deref()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok());
    match (started_ticks, job_started, boot_time()) {
        (Some(ticks), Some(job_started), Some(boot)) => {
            let proc_start = boot + ticks / USER_HZ;
            let job_start = job_started.as_millisecond() as f64 / 1000.0;
            proc_start <= job_start + START_SLACK_SEC
        }
        _ => true,
    }
}

/// Boot time in seconds since the epoch (`btime` of `/proc/stat`).
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::ids::SessionId;
    use crate::base::layout::ServerLayout;

    fn queue() -> (tempfile::TempDir, JobQueue) {
        let dir = tempfile::tempdir().unwrap();
        let q = JobQueue::new(&ServerLayout::under(dir.path()));
        (dir, q)
    }

    #[test]
    fn transitions_queued_running_done_and_failed() {
        let (_dir, q) = queue();
        let s = SessionId::parse("GAME_1").unwrap();
        let (job, _) = q.enqueue(&s).unwrap();
        let running = q.claim(&job.id, 42).unwrap().unwrap();
        assert_eq!(
            (running.status, running.pid),
            (JobStatus::Running, Some(42))
        );
        assert!(running.started_at.is_some());
        // A second claimant is refused, and so is a stranger's update.
        assert_eq!(
            q.claim(&job.id, 43).unwrap().unwrap_err(),
            Refused::WrongState {
                id: job.id.clone(),
                status: JobStatus::Running
            }
        );
        assert!(matches!(
            q.set_progress(&job.id, 43, 50.0).unwrap(),
            Err(Refused::NotOurs { pid: Some(42), .. })
        ));
        assert_eq!(
            q.set_progress(&job.id, 42, 37.26)
                .unwrap()
                .unwrap()
                .progress,
            37.3
        );
        let done = q
            .finish(&job.id, 42, Path::new("/x/panorama.mp4"))
            .unwrap()
            .unwrap();
        assert_eq!(done.status, JobStatus::Done);
        assert_eq!((done.progress, done.pid), (100.0, None));
        assert_eq!(done.output.as_deref(), Some("/x/panorama.mp4"));
        assert!(done.finished_at.is_some());
        // A done session gets a fresh job when queued again.
        let (again, new) = q.enqueue(&s).unwrap();
        assert!(new);
        assert_eq!(again.id, "GAME_1-2");
        let claimed = q.claim_next(7).unwrap().unwrap();
        assert_eq!(claimed.id, "GAME_1-2");
        let failed = q.fail(&claimed.id, 7, "CAM_R missing").unwrap().unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.as_deref(), Some("CAM_R missing"));
        assert!(q.claim_next(7).unwrap().is_none());
        let on_disk = q.load().unwrap();
        assert_eq!(on_disk.jobs.len(), 2);
        assert_eq!(on_disk.jobs[0].status, JobStatus::Done);
        assert_eq!(on_disk.jobs[1].status, JobStatus::Failed);
    }

    #[test]
    fn claim_next_takes_the_oldest() {
        let (_dir, q) = queue();
        for name in ["B", "A", "C"] {
            q.enqueue(&SessionId::parse(name).unwrap()).unwrap();
        }
        let order: Vec<String> = std::iter::from_fn(|| q.claim_next(1).unwrap())
            .map(|j| j.session_id)
            .collect();
        assert_eq!(order, ["B", "A", "C"]);
    }

    #[test]
    fn stale_running_jobs_are_requeued_live_ones_kept() {
        let (_dir, q) = queue();
        let dead_pid = {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            pid
        };
        let me = std::process::id();
        let a = q.enqueue(&SessionId::parse("A").unwrap()).unwrap().0;
        let b = q.enqueue(&SessionId::parse("B").unwrap()).unwrap().0;
        q.claim(&a.id, dead_pid).unwrap().unwrap();
        q.claim(&b.id, me).unwrap().unwrap();
        let requeued = q.requeue_stale(holder_alive).unwrap();
        assert_eq!(requeued.len(), 1);
        assert_eq!(requeued[0].id, a.id);
        let file = q.load().unwrap();
        assert_eq!(file.jobs[0].status, JobStatus::Queued);
        assert!(
            file.jobs[0]
                .error
                .as_deref()
                .unwrap()
                .contains(&dead_pid.to_string())
        );
        assert_eq!(file.jobs[1].status, JobStatus::Running);
    }

    #[test]
    fn a_reused_pid_does_not_hold_a_job() {
        // Our own process, but the job claims to have started long before
        // this process did: the PID was reused, the holder is gone.
        let job = Job {
            id: "S-1".into(),
            session_id: "S".into(),
            status: JobStatus::Running,
            created_at: "2000-01-01T00:00:00.000000Z".into(),
            started_at: Some("2000-01-01T00:00:00.000000Z".into()),
            finished_at: None,
            progress: 0.0,
            error: None,
            output: None,
            pid: Some(std::process::id()),
        };
        assert!(!holder_alive(&job));
        let mut live = job.clone();
        live.started_at = Some(now());
        assert!(holder_alive(&live));
        live.pid = None;
        assert!(!holder_alive(&live));
    }

    #[test]
    fn release_requeues_with_a_note() {
        let (_dir, q) = queue();
        let j = q.enqueue(&SessionId::parse("S").unwrap()).unwrap().0;
        q.claim(&j.id, 9).unwrap().unwrap();
        let back = q
            .release(&j.id, 9, "interrupted by SIGTERM")
            .unwrap()
            .unwrap();
        assert_eq!((back.status, back.pid), (JobStatus::Queued, None));
        assert_eq!(back.error.as_deref(), Some("interrupted by SIGTERM"));
        assert!(q.claim(&j.id, 10).unwrap().unwrap().error.is_none());
    }

    #[test]
    fn stat_fields_read_state_and_start_after_a_command_with_spaces() {
        let tail = (4..=21)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        let stat = format!("4242 (rig stitch) (x)) S {tail} 98765 0 0\n");
        assert_eq!(stat_fields(&stat), Some(("S", Some(98765.0))));
        assert_eq!(stat_fields("4242 (zombie) Z"), Some(("Z", None)));
        assert_eq!(stat_fields("garbage"), None);
    }
}
