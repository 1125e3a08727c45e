//! The queue-aware runner behind the program: claims jobs with this
//! process's PID, stitches, and records every transition.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::base::ffmpeg;
use crate::base::ffmpeg::raw::raw_args;
use crate::base::fsx::LockFile;
use crate::base::ids::SessionId;
use crate::base::jobs::{self, Job, JobQueue, JobStatus, JobsError, Refused};
use crate::base::layout::ServerLayout;

use super::error::StitchError;
use super::graph::{ffmpeg_args, shell_line};
use super::plan::Plan;
use super::report::{Outcome, PendingItem, PendingReport, StitchReport};
use super::round3;
use super::run::StitchProgress;
use super::session::{plan_session, stitch_session};
use super::settings::StitchSettings;
use super::warp::Warp;
use super::{calibrate, calibration, progress};

/// The queue-aware runner behind the program: claims jobs under this
/// process's PID, stitches, and records every transition.
pub struct Runner {
    layout: ServerLayout,
    queue: JobQueue,
    settings: StitchSettings,
    pid: u32,
    cancel: Arc<AtomicBool>,
    tty: bool,
}

/// How often a running job's progress is written to `jobs.json` at most.
const PROGRESS_WRITE_EVERY: Duration = Duration::from_secs(2);

impl Runner {
    /// A runner for `layout`. `cancel` is set by the signal handlers;
    /// `tty` turns on the progress line on stderr.
    pub fn new(
        layout: ServerLayout,
        settings: StitchSettings,
        cancel: Arc<AtomicBool>,
        tty: bool,
    ) -> Runner {
        Runner {
            queue: JobQueue::new(&layout),
            layout,
            settings,
            pid: std::process::id(),
            cancel,
            tty,
        }
    }

    /// The queue this runner works on.
    pub fn queue(&self) -> &JobQueue {
        &self.queue
    }

    /// Re-queues jobs whose holder died; returns their IDs.
    fn requeue_stale(&self) -> Result<Vec<String>, StitchError> {
        let jobs = self.queue.requeue_stale(jobs::holder_alive)?;
        for j in &jobs {
            log::warn!(
                "job {} ({}) was left running by a process that is gone; queued again",
                j.id,
                j.session_id
            );
        }
        Ok(jobs.into_iter().map(|j| j.id).collect())
    }

    /// Plans a session without running anything: the plan and the ffmpeg
    /// command line that would write the panorama (`--dry-run`).
    pub fn dry_run(&self, session: &SessionId) -> Result<(Plan, String), StitchError> {
        let plan = plan_session(&self.layout, session, &self.settings, &self.cancel)?;
        let args = ffmpeg_args(&plan, &self.settings, &self.layout.panorama(session));
        let mut line = shell_line(&self.settings.ffmpeg, &args);
        if let Some(geo) = &plan.geometry {
            // The encoder reads the warp's frames; show what feeds it.
            let ffmpeg = &self.settings.ffmpeg;
            let decoders = Warp::new(&plan, geo)
                .sources
                .map(|src| shell_line(ffmpeg, &raw_args(&src)));
            line = format!(
                "{}
  | rig-stitch's warp |
{line}",
                decoders.join("\n")
            );
        }
        Ok((plan, line))
    }

    /// `rig-stitch calibrate SESSION_ID`: measures the cameras and writes
    /// the session's calibration (and the rig's); returns it and its path.
    pub fn calibrate(
        &self,
        session: &SessionId,
    ) -> Result<(calibration::Calibration, PathBuf), StitchError> {
        let cal = calibrate::calibrate_session(&self.layout, session, &self.settings)?;
        Ok((cal, self.layout.calibration(session)))
    }

    /// `rig-stitch SESSION_ID`: queue the session if needed and stitch it
    /// now. A done session with its panorama in place is left alone unless
    /// `force`.
    pub fn stitch_now(&self, session: &SessionId, force: bool) -> Result<Outcome, StitchError> {
        let dir = self.layout.session_dir(session);
        if !dir.is_dir() {
            return Err(StitchError::UnknownSession {
                session: session.to_string(),
                dir,
            });
        }
        self.requeue_stale()?;
        if let Some(done) = self.check_latest(session, force)? {
            return Ok(done);
        }
        let job = self.claim_new(session)?;
        self.run_job(&job).map(Outcome::Stitched)
    }

    /// The session's latest job: running is busy; done (without `force`,
    /// and the panorama still there) needs no stitch.
    fn check_latest(
        &self,
        session: &SessionId,
        force: bool,
    ) -> Result<Option<Outcome>, StitchError> {
        let Some(last) = self.queue.latest_for(session)? else {
            return Ok(None);
        };
        match last.status {
            JobStatus::Running => Err(StitchError::Busy {
                session: session.to_string(),
                job: last.id,
                pid: last.pid,
            }),
            JobStatus::Done if !force => {
                if self.layout.panorama(session).exists() {
                    return Ok(Some(Outcome::AlreadyDone { job: last }));
                }
                log::warn!(
                    "{session}: job {} is done but {} is gone; stitching again",
                    last.id,
                    self.layout.panorama(session).display()
                );
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Queues a job for the session and claims it for this process.
    fn claim_new(&self, session: &SessionId) -> Result<Job, StitchError> {
        let (job, _) = self.queue.enqueue(session)?;
        match self.queue.claim(&job.id, self.pid)? {
            Ok(job) => Ok(job),
            Err(Refused::WrongState { .. } | Refused::NotOurs { .. }) => {
                let pid = self.queue.latest_for(session)?.and_then(|j| j.pid);
                Err(StitchError::Busy {
                    session: session.to_string(),
                    job: job.id,
                    pid,
                })
            }
            Err(Refused::NoSuchJob(id)) => Err(StitchError::Jobs(JobsError::Corrupt {
                path: self.queue.path().to_path_buf(),
                message: format!("job {id} vanished while being claimed"),
            })),
        }
    }

    /// `rig-stitch --pending`: every queued job, oldest first, until none is
    /// left or a signal arrives. Only one such run at a time
    /// (`processing/stitch.lock`); a second one returns at once.
    pub fn run_pending(&self) -> Result<PendingReport, StitchError> {
        let lock_path = self.layout.stitch_lock();
        let Some(_lock) = LockFile::try_acquire(&lock_path)? else {
            log::info!(
                "another rig-stitch --pending holds {}; leaving the queue to it",
                lock_path.display()
            );
            return Ok(PendingReport {
                skipped_locked: true,
                ..PendingReport::default()
            });
        };
        let mut report = PendingReport {
            requeued: self.requeue_stale()?,
            ..PendingReport::default()
        };
        while !self.cancel.load(Ordering::Relaxed) {
            let Some(job) = self.queue.claim_next(self.pid)? else {
                break;
            };
            let result = self.run_job(&job);
            let item = match result {
                Ok(r) => pending_item(&job, JobStatus::Done, Some(r.output), None, Some(r.plan)),
                Err(StitchError::Interrupted) => {
                    let e = Some(StitchError::Interrupted.to_string());
                    let item = pending_item(&job, JobStatus::Queued, None, e, None);
                    report.jobs.push(item);
                    return Err(StitchError::Interrupted);
                }
                // A failed job has no plan to show: the failure came before
                // one (an input missing or unreadable) or the error says why.
                Err(e) => pending_item(&job, JobStatus::Failed, None, Some(e.to_string()), None),
            };
            report.jobs.push(item);
        }
        Ok(report)
    }

    /// Runs a job this process has claimed and records how it ended.
    fn run_job(&self, job: &Job) -> Result<StitchReport, StitchError> {
        log::info!("job {}: stitching session {}", job.id, job.session_id);
        let result = SessionId::parse(&job.session_id)
            .map_err(StitchError::InvalidSession)
            .and_then(|session| self.stitch_claimed(job, &session));
        let recorded = match &result {
            Ok(r) => self.queue.finish(&job.id, self.pid, Path::new(&r.output))?,
            Err(StitchError::Interrupted) => {
                self.queue
                    .release(&job.id, self.pid, "interrupted by a signal; queued again")?
            }
            Err(e) => {
                log::error!("job {}: {e}", job.id);
                self.queue.fail(&job.id, self.pid, &e.to_string())?
            }
        };
        if let Err(refused) = recorded {
            log::warn!("job {}: could not record the outcome: {refused}", job.id);
        }
        result
    }

    fn stitch_claimed(&self, job: &Job, session: &SessionId) -> Result<StitchReport, StitchError> {
        let mut last_write = Instant::now();
        let mut last_written = 0.0f64;
        let mut log_throttle = progress::Throttle::new(progress::LOG_EVERY);
        let mut on_progress = |p: StitchProgress| {
            self.show_progress(session, &p, &mut log_throttle);
            if p.percent > last_written
                && (last_write.elapsed() >= PROGRESS_WRITE_EVERY || p.percent >= 100.0)
            {
                self.record_progress(job, p.percent);
                last_write = Instant::now();
                last_written = p.percent;
            }
        };
        let result = stitch_session(
            &self.layout,
            session,
            &self.settings,
            &self.cancel,
            &mut on_progress,
        );
        if self.tty {
            eprintln!();
        }
        let (output, plan, elapsed) = result?;
        Ok(self.report(job, &output, plan, elapsed))
    }

    /// The progress line: rewritten in place on a terminal, else logged
    /// now and then (not at 100 %).
    fn show_progress(
        &self,
        session: &SessionId,
        p: &StitchProgress,
        throttle: &mut progress::Throttle,
    ) {
        let line = progress::line(session.as_str(), p);
        if self.tty {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{line}  \x1b[K");
            let _ = err.flush();
        } else if p.percent < 100.0 && throttle.ready() {
            log::info!("{line}");
        }
    }

    /// The job's progress in the queue; a failure is only logged.
    fn record_progress(&self, job: &Job, percent: f64) {
        match self.queue.set_progress(&job.id, self.pid, percent) {
            Ok(Ok(_)) => {}
            Ok(Err(r)) => log::warn!("job {}: progress not recorded: {r}", job.id),
            Err(e) => log::warn!("job {}: progress not recorded: {e}", job.id),
        }
    }

    /// The report of a finished stitch: the output's probed length when it
    /// can be probed, else the plan's.
    fn report(&self, job: &Job, output: &Path, plan: Plan, elapsed: f64) -> StitchReport {
        let made = ffmpeg::probe(&self.settings.ffprobe, output).ok();
        let size_bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
        StitchReport {
            job_id: job.id.clone(),
            output: output.display().to_string(),
            size_bytes,
            duration_sec: made.map(|m| m.duration_sec).unwrap_or(plan.duration_sec),
            elapsed_sec: round3(elapsed),
            plan,
        }
    }
}

/// One line of the `--pending` report: the job, how it ended, and its
/// plan's cameras, warnings and sync when there was a plan.
fn pending_item(
    job: &Job,
    status: JobStatus,
    output: Option<String>,
    error: Option<String>,
    plan: Option<Plan>,
) -> PendingItem {
    let (cameras, warnings, sync) = plan
        .map(|p| (p.cameras, p.warnings, p.sync))
        .unwrap_or_default();
    PendingItem {
        job_id: job.id.clone(),
        session_id: job.session_id.clone(),
        status,
        output,
        error,
        cameras,
        warnings,
        sync,
    }
}
