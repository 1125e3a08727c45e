//! Running one long ffmpeg command (a stitch's encode): its `-progress
//! pipe:1` blocks handed over as they come, the tail of its stderr kept for
//! the error, and the process killed as soon as the caller says stop.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Progress, ProgressParser, tool_exists};

/// How much of ffmpeg's stderr is kept for an error message, bytes.
pub(super) const STDERR_TAIL: usize = 4096;

/// Why a run did not finish cleanly.
#[derive(Debug)]
pub enum RunError {
    /// The program is not there (or not executable).
    Missing(PathBuf),
    /// It could not be started or waited for.
    Io {
        /// The program.
        program: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// `cancel` was set; the process was killed.
    Interrupted,
    /// It exited unsuccessfully.
    Failed {
        /// Its exit status, as text.
        status: String,
        /// The last few KiB of its stderr.
        stderr: String,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Missing(p) => write!(f, "{}: not found or not executable", p.display()),
            RunError::Io { program, source } => write!(f, "{}: {source}", program.display()),
            RunError::Interrupted => f.write_str("interrupted"),
            RunError::Failed { status, stderr } => write!(f, "ffmpeg {status}: {stderr}"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Bytes a raw-frame pipe holds: a frame is megabytes, and a pipe's
/// default 64 KiB would wake the reader and the writer in turn dozens of
/// times a frame.
pub(super) const PIPE_BYTES: usize = 1 << 20;

/// Makes `pipe` hold [`PIPE_BYTES`] when the system allows (its
/// `fs.pipe-max-size`); a refusal only costs speed.
pub(super) fn enlarge_pipe(pipe: &impl std::os::fd::AsFd) {
    if let Err(e) = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_BYTES) {
        log::debug!("could not enlarge a raw-frame pipe: {e}");
    }
}

/// Runs `ffmpeg args` (which must include `-progress pipe:1`), calling
/// `on_progress` with each block; kills it and returns
/// [`RunError::Interrupted`] once `cancel` is set.
pub fn run_with_progress(
    ffmpeg: &Path,
    args: &[OsString],
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<(), RunError> {
    run_fed(ffmpeg, args, |_| Ok(()), cancel, on_progress)?
}

/// [`run_with_progress`] with ffmpeg's stdin given to `feed`, which runs on
/// its own thread while the progress is read (ffmpeg reads an input from
/// `pipe:0`; the input ends when `feed` returns and drops it). `feed` gets
/// `None` when there is no stdin to write to.
///
/// The outer error is ffmpeg's own (it failed, could not start, or `cancel`
/// was set): it comes first, since a feed cut off by a failed encoder only
/// sees a broken pipe. Otherwise ffmpeg finished, and the inner result is
/// the feed's: an error there means the input was cut short and the output
/// is not whole.
pub fn run_fed<E: Send>(
    ffmpeg: &Path,
    args: &[OsString],
    feed: impl FnOnce(Option<ChildStdin>) -> Result<(), E> + Send,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<Result<(), E>, RunError> {
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::NotFound => RunError::Missing(ffmpeg.to_path_buf()),
        _ => RunError::Io {
            program: ffmpeg.to_path_buf(),
            source,
        },
    };
    let mut child = spawn_piped(ffmpeg, args).map_err(io_err)?;
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let stderr_thread = std::thread::spawn(move || stderr.map(|s| tail_of(s, STDERR_TAIL)));
    let (interrupted, fed) = std::thread::scope(|s| {
        let pid = child.id();
        let feeder = s.spawn(move || {
            let fed = feed(stdin);
            if cancel.load(Ordering::Relaxed) {
                // Stopped: do not let ffmpeg finish the file (with one
                // input it prints no progress until it is done).
                kill(pid);
            }
            fed
        });
        let interrupted = child.stdout.take().is_some_and(|out| {
            let stopped = read_progress(out, cancel, on_progress);
            if stopped {
                let _ = child.kill();
            }
            stopped
        });
        (interrupted, feeder.join())
    });
    let status = child.wait().map_err(io_err)?;
    let stderr = stderr_thread.join().ok().flatten().unwrap_or_default();
    if interrupted || cancel.load(Ordering::Relaxed) {
        return Err(RunError::Interrupted);
    }
    if !status.success() {
        let status = status.to_string();
        return Err(RunError::Failed { status, stderr });
    }
    Ok(fed.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
}

/// `ffmpeg args` started with all three pipes (stdin's enlarged for raw
/// frames); `NotFound` when the program is not there.
fn spawn_piped(ffmpeg: &Path, args: &[OsString]) -> io::Result<std::process::Child> {
    if !tool_exists(ffmpeg) {
        return Err(io::ErrorKind::NotFound.into());
    }
    let child = Command::new(ffmpeg)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(pipe) = &child.stdin {
        enlarge_pipe(pipe);
    }
    Ok(child)
}

/// Kills process `pid` (a child not yet waited for, so the number is
/// still ours); a failure only means it has already gone.
fn kill(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Reads `-progress` lines until they end; true when `cancel` stopped it.
fn read_progress(
    out: impl Read,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(&Progress),
) -> bool {
    let mut parser = ProgressParser::default();
    for line in BufReader::new(out).lines() {
        if cancel.load(Ordering::Relaxed) {
            return true;
        }
        let Ok(line) = line else { break };
        if let Some(p) = parser.line(&line) {
            on_progress(&p);
        }
    }
    false
}

/// Keeps the last `cap` bytes of a stream (ffmpeg's stderr), so a chatty
/// failure cannot grow memory.
pub(super) fn tail_of(mut r: impl Read, cap: usize) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_bytes_only() {
        let text: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let tail = tail_of(&text[..], 4096);
        assert_eq!(tail.len(), 4096);
        assert_eq!(tail.as_bytes(), &text[text.len() - 4096..]);
        assert_eq!(tail_of(&b"short"[..], 4096), "short");
    }

    /// ffmpeg reading 16 x 16 gray frames on stdin and encoding them with
    /// `codec` to nowhere, with its progress on stdout.
    fn reader_args(codec: &str) -> Vec<OsString> {
        "-hide_banner -nostdin -loglevel error -f rawvideo -pix_fmt gray -video_size 16x16 \
         -framerate 10 -i pipe:0 -c:v CODEC -progress pipe:1 -nostats -f null -"
            .replace("CODEC", codec)
            .split_whitespace()
            .map(OsString::from)
            .collect()
    }

    fn feed_frames(stdin: Option<ChildStdin>, n: usize) -> std::io::Result<()> {
        let mut stdin = stdin.expect("a stdin pipe");
        for _ in 0..n {
            std::io::Write::write_all(&mut stdin, &[128u8; 256])?;
        }
        Ok(())
    }

    #[test]
    fn a_fed_run_sees_its_frames_and_keeps_the_feeds_error() {
        let ffmpeg = Path::new("/usr/bin/ffmpeg");
        let never = AtomicBool::new(false);
        let mut frames = 0;
        let mut count = |p: &Progress| frames = frames.max(p.frame);
        let fed = run_fed(
            ffmpeg,
            &reader_args("rawvideo"),
            |s| feed_frames(s, 7),
            &never,
            &mut count,
        );
        assert!(matches!(fed, Ok(Ok(()))), "{fed:?}");
        assert_eq!(frames, 7);
        // A feed that fails after a frame: ffmpeg ends cleanly on the short
        // input, the feed's error is what comes back.
        let cut = |s| {
            feed_frames(s, 1).map_err(|e| e.to_string())?;
            Err("decoder failed".to_string())
        };
        let fed = run_fed(ffmpeg, &reader_args("rawvideo"), cut, &never, &mut |_| {});
        assert_eq!(fed.unwrap(), Err("decoder failed".to_string()));
        // ffmpeg's own failure comes first, before the broken pipe the feed
        // then meets (100 000 frames are far more than a pipe holds).
        let mut broke = false;
        let until_broken = |s| {
            let r = feed_frames(s, 100_000);
            broke = r.is_err();
            r
        };
        let fed = run_fed(
            ffmpeg,
            &reader_args("no_such_codec"),
            until_broken,
            &never,
            &mut |_| {},
        );
        assert!(matches!(fed, Err(RunError::Failed { .. })), "{fed:?}");
        assert!(broke, "the feed should have met a broken pipe");
    }

    #[test]
    fn a_missing_program_is_named() {
        let never = AtomicBool::new(false);
        let err = run_with_progress(Path::new("/nonexistent/ffmpeg"), &[], &never, &mut |_| {})
            .unwrap_err();
        assert!(matches!(err, RunError::Missing(ref p) if p == Path::new("/nonexistent/ffmpeg")));
    }
}
