//! Running the encode: ffmpeg with its progress read and its stderr's tail
//! kept, stopped on a signal; fed raw frames on stdin for the calibrated
//! stitch.

use std::ffi::OsString;
use std::path::Path;
use std::process::ChildStdin;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::base::ffmpeg::{Progress, RunError, run_fed};
use crate::base::fsx;

use super::error::StitchError;
use super::graph::shell_line;
use super::progress;

/// Progress of a running encode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StitchProgress {
    /// Percent of the panorama written, 0 to 100.
    pub percent: f64,
    /// Encoding speed, frames per second.
    pub fps: f64,
    /// Seconds since ffmpeg started.
    pub elapsed_sec: f64,
    /// Seconds left at the pace so far, once there is one.
    pub eta_sec: Option<f64>,
}

/// Runs ffmpeg with `args`, reporting progress against `duration_sec`.
/// Returns [`StitchError::Interrupted`] (after killing ffmpeg) once `cancel`
/// is set.
pub fn run_ffmpeg(
    ffmpeg: &Path,
    args: &[OsString],
    duration_sec: f64,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(StitchProgress),
) -> Result<(), StitchError> {
    run_fed_ffmpeg(ffmpeg, args, |_| Ok(()), duration_sec, cancel, on_progress)
}

/// [`run_ffmpeg`] with ffmpeg's stdin handed to `feed` (on its own thread):
/// ffmpeg's failure comes first, then the feed's.
pub fn run_fed_ffmpeg(
    ffmpeg: &Path,
    args: &[OsString],
    feed: impl FnOnce(Option<ChildStdin>) -> Result<(), StitchError> + Send,
    duration_sec: f64,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(StitchProgress),
) -> Result<(), StitchError> {
    log::debug!("running {}", shell_line(ffmpeg, args));
    let started = Instant::now();
    let mut report = |p: &Progress| {
        let percent = if p.end {
            100.0
        } else if duration_sec > 0.0 {
            (p.out_time_us as f64 / 1e6 / duration_sec * 100.0).clamp(0.0, 100.0)
        } else {
            0.0
        };
        let elapsed_sec = started.elapsed().as_secs_f64();
        on_progress(StitchProgress {
            percent,
            fps: p.fps,
            elapsed_sec,
            eta_sec: progress::eta_sec(percent, elapsed_sec),
        });
    };
    run_fed(ffmpeg, args, feed, cancel, &mut report).map_err(|e| match e {
        RunError::Missing(p) => StitchError::FfmpegMissing(p),
        RunError::Io { program, source } => StitchError::Io(fsx::with_path(&program)(source)),
        RunError::Interrupted => StitchError::Interrupted,
        RunError::Failed { status, stderr } => StitchError::Ffmpeg { status, stderr },
    })?
}
