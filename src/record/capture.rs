//! Starting and stopping a capture: what to record ([`Plan`]), the running
//! ffmpeg with its three threads (pump, progress reader, sync) as
//! [`Running`], and what is left once they are all done ([`Ended`]).

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::process::{ChildStderr, ExitStatus};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::guards::{check_duration, preflight};
use super::progress::{ProgressLog, read_progress};
use super::pump::{PUMP_BUF, PumpEnd, pump, sync_loop};
use super::{RecordError, RecordOptions, STOP_TIMEOUT, capture_settings};
use crate::base::checksum::HashingWriter;
use crate::base::config::Config;
use crate::base::ffmpeg::{CaptureProcess, CaptureSettings, CaptureSource};
use crate::base::ids::{RecordingId, SessionId};

/// What to record: the configuration and options resolved and checked.
pub(super) struct Plan {
    /// The source spec as given (for messages).
    pub spec: String,
    pub source: CaptureSource,
    pub settings: CaptureSettings,
    pub duration: Option<f64>,
    pub rec: RecordingId,
}

impl Plan {
    /// Resolves source, camera, duration and session, then runs the guards
    /// that need only the config ([`preflight`]).
    pub fn resolve(config: &Config, opts: &RecordOptions) -> Result<Plan, RecordError> {
        let invalid = |m: String| RecordError::new("invalid_config", m);
        let spec = opts.source.as_deref().unwrap_or(&config.recording.source);
        let source =
            CaptureSource::parse(spec).map_err(|e| invalid(format!("recording.source: {e}")))?;
        let camera = match opts.camera {
            Some(c) => c,
            None => config
                .node
                .camera()
                .map_err(|e| invalid(e.to_string()).because(e))?,
        };
        let duration = opts.duration_sec.map(check_duration).transpose()?;
        let settings = capture_settings(config, duration);
        preflight(config, &source, &settings)?;
        let session = opts.session.clone().unwrap_or_else(SessionId::auto_now);
        Ok(Plan {
            spec: spec.to_string(),
            source,
            settings,
            duration,
            rec: RecordingId::new(session, camera),
        })
    }
}

/// The thread reading ffmpeg's progress from its stderr into a shared log.
fn start_progress(stderr: ChildStderr) -> (Arc<Mutex<ProgressLog>>, JoinHandle<()>) {
    let log = Arc::new(Mutex::new(ProgressLog::default()));
    let reader_log = Arc::clone(&log);
    let progress = thread::spawn(move || read_progress(stderr, &reader_log));
    (log, progress)
}

/// The thread syncing the file every `interval` until told to stop; its
/// stop channel.
fn start_sync(file: File, interval: Duration) -> (mpsc::Sender<()>, SyncThread) {
    let (sync_stop, sync_rx) = mpsc::channel();
    let sync = thread::spawn(move || sync_loop(file, interval, sync_rx));
    (sync_stop, sync)
}

/// The sync thread: how many fsyncs it made and the first error.
type SyncThread = JoinHandle<(u64, Option<io::Error>)>;

/// A capture under way: ffmpeg (and a `cmd` source's producer), the pump
/// writing its output into the file, the reader of its progress, and the
/// sync thread.
pub(super) struct Running {
    pub capture: CaptureProcess,
    pub pump: JoinHandle<PumpEnd>,
    progress: JoinHandle<()>,
    pub log: Arc<Mutex<ProgressLog>>,
    sync_stop: mpsc::Sender<()>,
    sync: SyncThread,
    /// When ffmpeg was started (the earliest possible start time).
    pub spawned: jiff::Timestamp,
}

impl Running {
    /// Starts ffmpeg writing into `file` (the recording at `video`). On
    /// failure to start, the empty file is removed.
    pub fn start(
        config: &Config,
        plan: &Plan,
        file: File,
        video: &Path,
    ) -> Result<Running, RecordError> {
        let sync_file = file.try_clone().map_err(|e| {
            RecordError::new("capture_failed", format!("{}: {e}", video.display())).because(e)
        })?;
        let spawned = jiff::Timestamp::now();
        let ffmpeg = &config.processing.ffmpeg_path;
        let mut capture = match CaptureProcess::spawn(ffmpeg, &plan.source, &plan.settings) {
            Ok(c) => c,
            Err(e) => {
                drop(file);
                // The file is empty and ours; removing it loses nothing.
                let _ = fs::remove_file(video);
                let msg = format!("cannot start ffmpeg at {}: {e}", ffmpeg.display());
                return Err(RecordError::new("capture_failed", msg).because(e));
            }
        };
        log::info!("recording {} to {}", plan.rec, video.display());
        let Some((stdout, stderr)) = capture.take_pipes() else {
            return Err(RecordError::new("capture_failed", "ffmpeg pipes missing"));
        };
        if let Err(e) = rustix::pipe::fcntl_setpipe_size(&stdout, PUMP_BUF) {
            log::debug!("could not enlarge the capture pipe: {e}");
        }
        let writer = HashingWriter::new(file);
        let pump = thread::spawn(move || pump(stdout, writer));
        let (log, progress) = start_progress(stderr);
        let interval = Duration::from_secs_f64(config.recording.fsync_interval_sec);
        let (sync_stop, sync) = start_sync(sync_file, interval);
        Ok(Running {
            capture,
            pump,
            progress,
            log,
            sync_stop,
            sync,
            spawned,
        })
    }

    /// Ends the capture: asks ffmpeg to finish unless it already exited,
    /// then joins every thread and reaps the producer. `exited` is ffmpeg's
    /// status if the watch saw it end; what went wrong on the way is added
    /// to `problems`.
    pub fn stop(
        mut self,
        exited: Option<ExitStatus>,
        problems: &mut Vec<String>,
    ) -> Result<Ended, RecordError> {
        let status = match exited {
            Some(s) => Some(s),
            None => self.stop_ffmpeg(problems),
        };
        let pump = self
            .pump
            .join()
            .map_err(|_| RecordError::new("capture_failed", "the pump thread panicked"))?;
        let _ = self.progress.join();
        drop(self.sync_stop);
        let (fsyncs, sync_error) = self.sync.join().unwrap_or((0, None));
        self.capture.reap_producer();
        let log = std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Ended {
            status,
            pump,
            fsyncs,
            sync_error,
            log,
            spawned: self.spawned,
        })
    }

    /// Asks ffmpeg to finish and waits [`STOP_TIMEOUT`] for it, then kills it.
    fn stop_ffmpeg(&mut self, problems: &mut Vec<String>) -> Option<ExitStatus> {
        self.capture.request_stop();
        match self.capture.wait_bounded(STOP_TIMEOUT) {
            Ok((s, killed)) => {
                if killed {
                    problems.push(format!(
                        "ffmpeg did not finish within {} s and was killed; the file ends \
                         at its last complete fragment",
                        STOP_TIMEOUT.as_secs()
                    ));
                }
                Some(s)
            }
            Err(e) => {
                problems.push(format!("cannot stop ffmpeg: {e}"));
                None
            }
        }
    }
}

/// A capture after its end: everything its processes and threads left.
pub(super) struct Ended {
    /// ffmpeg's exit status, when it could be had.
    pub status: Option<ExitStatus>,
    /// The file with its digest, and how the pump ended.
    pub pump: PumpEnd,
    /// Periodic fsyncs done.
    pub fsyncs: u64,
    /// The first periodic fsync that failed.
    pub sync_error: Option<io::Error>,
    /// What ffmpeg's stderr said.
    pub log: ProgressLog,
    /// When ffmpeg was started.
    pub spawned: jiff::Timestamp,
}
