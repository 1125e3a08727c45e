//! Reading small gray frames out of a video, for analysis in Rust (the
//! content time alignment of rig-stitch).
//!
//! One ffmpeg process per call: seek (`-ss` before `-i`, frame-accurate when
//! decoding), put the frames on a given rate, scale them down, convert to
//! 8-bit gray and write raw frames to a pipe. The caller sees one frame at a
//! time, so memory is one frame however long the window is.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

/// Which frames to read and at what size.
#[derive(Debug, Clone, PartialEq)]
pub struct GrayWindow {
    /// Where to seek in the file, seconds (0 for the start).
    pub seek_sec: f64,
    /// The frame rate the frames are put on (duplicates or drops as needed).
    pub fps: f64,
    /// How many frames to read at most.
    pub frames: u64,
    /// Width of the gray frames (even).
    pub width: u32,
    /// Height of the gray frames (even).
    pub height: u32,
}

/// Why frames could not be read.
#[derive(Debug)]
pub enum FramesError {
    /// ffmpeg could not be started.
    Spawn {
        /// The binary.
        tool: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Reading its output failed.
    Read {
        /// The video.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// ffmpeg failed.
    Failed {
        /// The video.
        file: PathBuf,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
}

impl fmt::Display for FramesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramesError::Spawn { tool, source } => {
                write!(f, "cannot run {}: {source}", tool.display())
            }
            FramesError::Read { file, source } => {
                write!(f, "{}: reading decoded frames: {source}", file.display())
            }
            FramesError::Failed {
                file,
                status,
                stderr,
            } => write!(
                f,
                "{}: ffmpeg could not decode frames ({status}): {}",
                file.display(),
                stderr.trim()
            ),
        }
    }
}

impl std::error::Error for FramesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FramesError::Spawn { source, .. } | FramesError::Read { source, .. } => Some(source),
            FramesError::Failed { .. } => None,
        }
    }
}

/// The ffmpeg arguments that write `w`'s frames of `file` as raw gray.
pub fn gray_args(file: &Path, w: &GrayWindow) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .into_iter()
        .map(OsString::from)
        .collect();
    if w.seek_sec > 0.0 {
        a.push("-ss".into());
        a.push(format!("{:.6}", w.seek_sec).into());
    }
    a.push("-i".into());
    a.push(file.as_os_str().to_owned());
    let graph = format!(
        "setpts=PTS-STARTPTS,fps={},scale={}:{}:flags=area,format=gray",
        w.fps, w.width, w.height
    );
    for s in ["-an", "-vf", &graph, "-frames:v", &w.frames.to_string()] {
        a.push(s.into());
    }
    for s in ["-f", "rawvideo", "-pix_fmt", "gray", "pipe:1"] {
        a.push(s.into());
    }
    a
}

/// ffmpeg started on the window's gray frames, stdout and stderr piped.
fn spawn_gray(ffmpeg: &Path, file: &Path, w: &GrayWindow) -> Result<Child, FramesError> {
    Command::new(ffmpeg)
        .args(gray_args(file, w))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FramesError::Spawn {
            tool: ffmpeg.to_path_buf(),
            source,
        })
}

/// A thread reading the child's stderr to its end: its first 64 KiB.
fn collect_stderr(child: &mut Child) -> JoinHandle<String> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            // ffmpeg runs with -loglevel error; keep 64 KiB at most anyway.
            let _ = (&mut s).take(1 << 16).read_to_string(&mut text);
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        }
        text
    })
}

/// Hands the child's frames of `frame_len` bytes to `each` until the pipe
/// ends or `each` returns false (the child is then killed): whether there
/// was a pipe, the frames handed, whether `each` stopped.
fn feed_frames(
    child: &mut Child,
    frame_len: usize,
    each: &mut dyn FnMut(&[u8]) -> bool,
) -> (std::io::Result<()>, u64, bool) {
    let mut frame = vec![0u8; frame_len];
    let (mut count, mut stopped) = (0, false);
    let read = child
        .stdout
        .take()
        .map(|mut out| {
            while out.read_exact(&mut frame).is_ok() {
                count += 1;
                if !each(&frame) {
                    stopped = true;
                    let _ = child.kill();
                    break;
                }
            }
        })
        .ok_or_else(|| std::io::Error::other("no stdout pipe"));
    (read, count, stopped)
}

/// Reads the window's frames of `file`, calling `each` with every frame
/// (`width * height` bytes, row by row); `each` returns false to stop early
/// (ffmpeg is then killed). Returns the number of frames read, which is
/// fewer than asked when the file ends first or `each` stopped.
pub fn read_gray(
    ffmpeg: &Path,
    file: &Path,
    w: &GrayWindow,
    each: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<u64, FramesError> {
    let mut child = spawn_gray(ffmpeg, file, w)?;
    let stderr_thread = collect_stderr(&mut child);
    let frame_len = (w.width * w.height) as usize;
    let (read, count, stopped) = feed_frames(&mut child, frame_len, each);
    let status = child.wait();
    let stderr = stderr_thread.join().unwrap_or_default();
    let read_err = |source| FramesError::Read {
        file: file.to_path_buf(),
        source,
    };
    read.map_err(read_err)?;
    let status = status.map_err(read_err)?;
    if !status.success() && !stopped {
        return Err(FramesError::Failed {
            file: file.to_path_buf(),
            status: status.to_string(),
            stderr,
        });
    }
    Ok(count)
}
