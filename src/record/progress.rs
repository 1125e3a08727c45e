//! What ffmpeg's stderr tells while it records: progress blocks (the first
//! frame's arrival dates the recording's start) and the error lines kept to
//! explain a failure.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::sync::Mutex;
use std::time::Instant;

use crate::base::ffmpeg::{Progress, ProgressParser};

/// Lines of ffmpeg's stderr kept to explain a failure.
const STDERR_TAIL: usize = 12;

/// What the progress reader learned from ffmpeg's stderr.
#[derive(Debug, Default)]
pub(super) struct ProgressLog {
    /// The latest block.
    pub(super) last: Progress,
    /// The first block with `frame >= 1`.
    pub(super) first: Option<Mark>,
    /// The latest block before `progress=end`.
    pub(super) latest: Option<Mark>,
    /// The last lines that were not progress (ffmpeg's errors).
    pub(super) tail: VecDeque<String>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    pub(super) at: Instant,
    pub(super) wall: jiff::Timestamp,
    pub(super) frame: u64,
}

impl ProgressLog {
    pub(super) fn tail_text(&self) -> String {
        let lines: Vec<&str> = self.tail.iter().map(String::as_str).collect();
        if lines.is_empty() {
            "(ffmpeg said nothing)".into()
        } else {
            lines.join(" | ")
        }
    }

    /// Frames per second sustained between the first and latest blocks.
    pub(super) fn measured_fps(&self) -> Option<f64> {
        let (a, b) = (self.first?, self.latest?);
        let dt = b.at.checked_duration_since(a.at)?.as_secs_f64();
        (dt >= 0.5 && b.frame > a.frame).then(|| (b.frame - a.frame) as f64 / dt)
    }
}

/// True for a `-progress` line (`key=value`, key in `[a-z0-9_]`).
pub(super) fn is_progress_line(line: &str) -> bool {
    line.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

/// Reads ffmpeg's stderr to its end: progress blocks into `log`, anything
/// else logged as a warning and kept for error messages.
pub(super) fn read_progress(stderr: impl Read, log: &Mutex<ProgressLog>) {
    let mut reader = BufReader::new(stderr);
    let mut parser = ProgressParser::default();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        if is_progress_line(line) {
            if let Some(block) = parser.line(line) {
                let mark = Mark {
                    at: Instant::now(),
                    wall: jiff::Timestamp::now(),
                    frame: block.frame,
                };
                if block.frame >= 1 && log.first.is_none() {
                    log.first = Some(mark);
                }
                if !block.end && block.frame >= 1 {
                    log.latest = Some(mark);
                }
                log.last = block;
            }
        } else {
            log::warn!("ffmpeg: {line}");
            if log.tail.len() == STDERR_TAIL {
                log.tail.pop_front();
            }
            log.tail.push_back(line.to_string());
        }
    }
}

/// `start_time` from the first progress block with a frame: its arrival
/// back-dated by the frames before it (see the module docs), never before
/// ffmpeg was started.
pub(super) fn start_time(
    first: Option<Mark>,
    fps: u32,
    spawned: jiff::Timestamp,
) -> jiff::Timestamp {
    let Some(m) = first else {
        return spawned;
    };
    let before = m.frame.saturating_sub(1) as f64 / f64::from(fps.max(1));
    m.wall
        .checked_sub(jiff::SignedDuration::from_secs_f64(before))
        .unwrap_or(m.wall)
        .max(spawned)
}
