//! Running the encode: ffmpeg with its progress read and its stderr's tail
//! kept, stopped on a signal.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::base::ffmpeg::ProgressParser;
use crate::base::fsx;

use super::error::StitchError;
use super::progress;
use super::shell_line;

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

/// Keeps the last `cap` bytes of a stream (ffmpeg's stderr), so a chatty
/// failure cannot grow memory.
fn tail_of(mut r: impl Read, cap: usize) -> String {
    let mut keep: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                keep.extend_from_slice(&buf[..n]);
                if keep.len() > 2 * cap {
                    keep.drain(..keep.len() - cap);
                }
            }
        }
    }
    if keep.len() > cap {
        keep.drain(..keep.len() - cap);
    }
    String::from_utf8_lossy(&keep).into_owned()
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
    log::debug!("running {}", shell_line(ffmpeg, args));
    if !crate::base::ffmpeg::tool_exists(ffmpeg) {
        return Err(StitchError::FfmpegMissing(ffmpeg.to_path_buf()));
    }
    let started = Instant::now();
    let mut child = Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StitchError::FfmpegMissing(ffmpeg.to_path_buf())
            } else {
                StitchError::Io(fsx::with_path(ffmpeg)(e))
            }
        })?;
    let stderr = child.stderr.take();
    let stderr_thread = std::thread::spawn(move || stderr.map(|s| tail_of(s, 4096)));
    let mut parser = ProgressParser::default();
    let mut interrupted = false;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            if cancel.load(Ordering::Relaxed) {
                interrupted = true;
                let _ = child.kill();
                break;
            }
            let Ok(line) = line else { break };
            if let Some(p) = parser.line(&line) {
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
            }
        }
    }
    let status = child.wait().map_err(StitchError::Io)?;
    let stderr = stderr_thread.join().ok().flatten().unwrap_or_default();
    if interrupted || cancel.load(Ordering::Relaxed) {
        return Err(StitchError::Interrupted);
    }
    if !status.success() {
        return Err(StitchError::Ffmpeg {
            status: status.to_string(),
            stderr,
        });
    }
    Ok(())
}
