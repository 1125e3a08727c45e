//! Watching a running capture until it should stop: a signal, ffmpeg's
//! exit, a failed write, a source that never delivers, or an overrun
//! `--duration`. Samples the CPU temperature on the way and, on a terminal,
//! shows a status line.

use std::fs;
use std::io::{self, IsTerminal};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::capture::Running;
use super::{FIRST_FRAME_TIMEOUT, StopReason, TEMPERATURE_INTERVAL};
use crate::base::config::GB;
use crate::base::host;
use crate::base::ids::RecordingId;
use crate::base::manifest::describe::round_to;

/// Running CPU temperature statistics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TemperatureStats {
    sum: f64,
    count: u32,
    max: Option<f64>,
}

impl TemperatureStats {
    /// Adds a sample, if there is one.
    pub fn add(&mut self, celsius: Option<f64>) {
        if let Some(c) = celsius.filter(|c| c.is_finite()) {
            self.sum += c;
            self.count += 1;
            self.max = Some(self.max.map_or(c, |m| m.max(c)));
        }
    }

    /// Average, rounded to 0.1 °C; `None` without samples.
    pub fn average(&self) -> Option<f64> {
        (self.count > 0).then(|| round_to(self.sum / f64::from(self.count), 1))
    }

    /// Maximum, rounded to 0.1 °C; `None` without samples.
    pub fn max(&self) -> Option<f64> {
        self.max.map(|m| round_to(m, 1))
    }
}

/// What watching a capture found.
pub(super) struct Watched {
    /// Why it stopped.
    pub reason: StopReason,
    /// ffmpeg's status when it exited on its own.
    pub exited: Option<ExitStatus>,
    /// What went wrong (the recording may still be kept).
    pub problems: Vec<String>,
    /// CPU temperatures sampled while recording.
    pub temps: TemperatureStats,
    /// When watching began.
    pub started: Instant,
}

/// Watches `run` every 50 ms until it should stop.
pub(super) fn watch(
    run: &mut Running,
    stop: &AtomicBool,
    duration: Option<f64>,
    rec: &RecordingId,
    video: &Path,
) -> Watched {
    let started = Instant::now();
    let mut w = Watched {
        reason: StopReason::Failed,
        exited: None,
        problems: Vec::new(),
        temps: TemperatureStats::default(),
        started,
    };
    let mut next_sample = started;
    // A status line on a terminal only; logs and --json stay clean.
    let mut status = io::stderr().is_terminal().then(|| StatusLine::new(started));
    w.reason = loop {
        let now = Instant::now();
        if now >= next_sample {
            w.temps.add(host::cpu_temperature_c());
            next_sample = now + TEMPERATURE_INTERVAL;
        }
        if let Some(reason) = should_stop(run, stop, duration, &mut w, now) {
            break reason;
        }
        if let Some(line) = status.as_mut() {
            line.show(now, run, rec, video);
        }
        thread::sleep(Duration::from_millis(50));
    };
    if status.is_some() {
        eprintln!();
    }
    w
}

/// One look at the capture: `Some(reason)` when it should stop now.
fn should_stop(
    run: &mut Running,
    stop: &AtomicBool,
    duration: Option<f64>,
    w: &mut Watched,
    now: Instant,
) -> Option<StopReason> {
    if stop.load(Ordering::SeqCst) {
        log::info!("stop requested by signal");
        return Some(StopReason::Signal);
    }
    match run.capture.try_wait() {
        Ok(Some(status)) => {
            w.exited = Some(status);
            return Some(if status.success() && duration.is_some() {
                StopReason::Duration
            } else {
                StopReason::SourceEnded
            });
        }
        Ok(None) => {}
        Err(e) => {
            w.problems.push(format!("cannot watch ffmpeg: {e}"));
            return Some(StopReason::Failed);
        }
    }
    if run.pump.is_finished() {
        // The pump ends before ffmpeg only when writing failed.
        return Some(StopReason::Failed);
    }
    overdue(run, duration, w, now)
}

/// A source with no frame after [`FIRST_FRAME_TIMEOUT`], or ffmpeg running
/// well past `--duration`.
fn overdue(
    run: &Running,
    duration: Option<f64>,
    w: &mut Watched,
    now: Instant,
) -> Option<StopReason> {
    let first = run.log.lock().unwrap_or_else(|e| e.into_inner()).first;
    match (first, duration) {
        (None, _) if now.duration_since(w.started) > FIRST_FRAME_TIMEOUT => {
            w.problems.push(format!(
                "the source produced no frame in {} s",
                FIRST_FRAME_TIMEOUT.as_secs()
            ));
            Some(StopReason::Failed)
        }
        // Backstop only: ffmpeg's own -t normally ends a timed recording.
        (Some(m), Some(d)) if now.duration_since(m.at) > Duration::from_secs_f64(d + 10.0) => {
            log::warn!("ffmpeg overran --duration {d}; stopping it");
            Some(StopReason::Duration)
        }
        _ => None,
    }
}

/// The once-a-second status line on a terminal.
struct StatusLine {
    next: Instant,
}

impl StatusLine {
    fn new(started: Instant) -> StatusLine {
        StatusLine { next: started }
    }

    /// Rewrites the line when a second has passed since the last.
    fn show(&mut self, now: Instant, run: &Running, rec: &RecordingId, video: &Path) {
        if now < self.next {
            return;
        }
        self.next = now + Duration::from_secs(1);
        let last = run
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last
            .clone();
        let bytes = fs::metadata(video).map(|m| m.len()).unwrap_or(0);
        let secs = last.out_time_us / 1_000_000;
        eprint!(
            "\r{rec}: {:02}:{:02}:{:02}  {:.2} GB  {} frames  {} dropped ",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            bytes as f64 / GB,
            last.frame,
            last.drop_frames
        );
    }
}
