//! Decoding a video to raw `yuv420p` frames on a pipe, one frame at a time,
//! for rig-stitch's warp: ffmpeg decodes (and, when asked, puts the frames
//! on a rate, trims and scales them), Rust reads whole frames into buffers
//! it reuses, so memory is a frame or two however long the match is.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::thread::JoinHandle;

use super::run::{STDERR_TAIL, enlarge_pipe, tail_of};

/// Bytes of one `yuv420p` frame of `width` x `height` (chroma planes
/// rounded up, as ffmpeg's rawvideo writes them).
pub fn yuv420p_len(width: u32, height: u32) -> usize {
    let (w, h) = (width as usize, height as usize);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

/// What to decode: the file, where to start, the `-vf` chain ending in
/// frames of `size`.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSource {
    /// The video.
    pub file: PathBuf,
    /// Seek before decoding, seconds (`-ss` before `-i`: frame-accurate).
    pub seek_sec: f64,
    /// The filters; the stream must leave them as frames of `size`.
    pub filters: String,
    /// Width and height of the frames the filters leave.
    pub size: (u32, u32),
}

/// The input options that make ffmpeg read raw `yuv420p` frames of `size`
/// (`WxH`) at `rate` frames a second on its stdin.
pub fn stdin_input<'a>(size: &'a str, rate: &'a str) -> [&'a str; 10] {
    [
        "-f",
        "rawvideo",
        "-pix_fmt",
        "yuv420p",
        "-video_size",
        size,
        "-framerate",
        rate,
        "-i",
        "pipe:0",
    ]
}

/// The ffmpeg arguments that write `src`'s frames as raw `yuv420p`.
pub fn raw_args(src: &RawSource) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-loglevel", "error"]
        .into_iter()
        .map(OsString::from)
        .collect();
    if src.seek_sec > 0.0 {
        a.push("-ss".into());
        a.push(format!("{:.6}", src.seek_sec).into());
    }
    a.push("-i".into());
    a.push(src.file.as_os_str().to_owned());
    let vf = format!("{},format=yuv420p", src.filters);
    for s in ["-an", "-sn", "-dn", "-vf", &vf] {
        a.push(s.into());
    }
    for s in ["-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"] {
        a.push(s.into());
    }
    a
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

/// A running decoder. Dropped without [`RawDecoder::finish`] (a panic on
/// the thread holding it), it kills and reaps its ffmpeg.
#[derive(Debug)]
pub struct RawDecoder {
    child: Reaped,
    out: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    file: PathBuf,
    frame_len: usize,
}

impl RawDecoder {
    /// Starts `ffmpeg` decoding `src`.
    pub fn spawn(ffmpeg: &Path, src: &RawSource) -> Result<RawDecoder, FramesError> {
        let frame_len = yuv420p_len(src.size.0, src.size.1);
        RawDecoder::start(ffmpeg, &src.file, &raw_args(src), frame_len)
    }

    /// Starts `ffmpeg args`, which decode `file` to frames of `frame_len`
    /// bytes on stdout (any raw pixel format).
    pub fn start(
        ffmpeg: &Path,
        file: &Path,
        args: &[OsString],
        frame_len: usize,
    ) -> Result<RawDecoder, FramesError> {
        let spawn_err = |source| FramesError::Spawn {
            tool: ffmpeg.to_path_buf(),
            source,
        };
        let mut child = Command::new(ffmpeg)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        let out = child
            .stdout
            .take()
            .ok_or_else(|| spawn_err(io::Error::other("no stdout pipe")))?;
        enlarge_pipe(&out);
        // The end of it: a damaged file's last, fatal line comes after
        // hundreds of per-macroblock complaints.
        let stderr = child
            .stderr
            .take()
            .map(|s| std::thread::spawn(move || tail_of(s, STDERR_TAIL)));
        Ok(RawDecoder {
            child: Reaped(child),
            out,
            stderr,
            file: file.to_path_buf(),
            frame_len,
        })
    }

    /// Bytes of one frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// The video decoded.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Reads the next frame into `buf` (`frame_len` bytes): false when the
    /// stream ended cleanly before it. A frame cut short is an error.
    pub fn read_frame(&mut self, buf: &mut [u8]) -> Result<bool, FramesError> {
        let mut got = 0;
        while got < buf.len() {
            match self.out.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(self.read_err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("a frame cut short at {got} of {} bytes", buf.len()),
                    )));
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_err(e)),
            }
        }
        Ok(true)
    }

    fn read_err(&self, source: io::Error) -> FramesError {
        FramesError::Read {
            file: self.file.clone(),
            source,
        }
    }

    /// Waits for ffmpeg; with `stop`, kills it first (the frames are no
    /// longer wanted). An unsuccessful exit not asked for is an error with
    /// the end of its stderr.
    pub fn finish(mut self, stop: bool) -> Result<(), FramesError> {
        if stop {
            let _ = self.child.0.kill();
        }
        drop(self.out);
        let status = self.child.0.wait().map_err(|source| FramesError::Read {
            file: self.file.clone(),
            source,
        })?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if stop || status.success() {
            return Ok(());
        }
        Err(FramesError::Failed {
            file: self.file,
            status: status.to_string(),
            stderr,
        })
    }
}

/// A child process that is killed and waited for when dropped before
/// anyone waited for it: no zombie, no decoder left writing to a pipe
/// nobody reads.
#[derive(Debug)]
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // After a `wait`, `try_wait` answers from the kept status.
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real ffmpeg (Debian's package; CI installs it).
    const FFMPEG: &str = "/usr/bin/ffmpeg";

    #[test]
    fn frames_come_whole_and_in_order_then_the_stream_ends() {
        let dir = tempfile::tempdir().unwrap();
        let clip = dir.path().join("c.mkv");
        let made = std::process::Command::new(FFMPEG)
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .args(["color=c=white:s=64x36:r=10:d=1,drawbox=w=32:h=36:c=black:t=fill"])
            .args(["-c:v", "ffv1"])
            .arg(&clip)
            .status()
            .unwrap();
        assert!(made.success());
        let src = RawSource {
            file: clip,
            seek_sec: 0.0,
            filters: "trim=end_frame=4,scale=32:18".into(),
            size: (32, 18),
        };
        let mut dec = RawDecoder::spawn(Path::new(FFMPEG), &src).unwrap();
        let mut buf = vec![0u8; dec.frame_len()];
        let mut frames = 0;
        while dec.read_frame(&mut buf).unwrap() {
            frames += 1;
            // Left half black, right half white; chroma neutral.
            assert!(buf[0] < 30 && buf[31] > 220, "{:?}", &buf[..32]);
            assert!(buf[32 * 18..].iter().all(|&c| (126..=130).contains(&c)));
        }
        assert_eq!(frames, 4);
        dec.finish(false).unwrap();
    }

    /// A source whose file is not there: ffmpeg exits at once, failing.
    fn missing() -> RawSource {
        RawSource {
            file: PathBuf::from("/nonexistent/cam.mp4"),
            seek_sec: 0.0,
            filters: "null".into(),
            size: (16, 16),
        }
    }

    #[test]
    fn a_decoder_dropped_unfinished_is_reaped() {
        let mut dec = RawDecoder::spawn(Path::new(FFMPEG), &missing()).unwrap();
        let pid = dec.child.0.id();
        let mut buf = vec![0u8; dec.frame_len()];
        assert!(!dec.read_frame(&mut buf).unwrap());
        // Its ffmpeg has exited: without a wait it stays a zombie.
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        drop(dec);
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "ffmpeg {pid} left unreaped"
        );
    }

    #[test]
    fn a_decoder_that_fails_names_its_file_and_says_why() {
        let mut dec = RawDecoder::spawn(Path::new(FFMPEG), &missing()).unwrap();
        let mut buf = vec![0u8; dec.frame_len()];
        assert!(!dec.read_frame(&mut buf).unwrap());
        let e = dec.finish(false).unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/cam.mp4") && e.contains("No such file"),
            "{e}"
        );
    }

    #[test]
    fn frame_sizes_round_chroma_up() {
        assert_eq!(yuv420p_len(4, 2), 8 + 2 * 2);
        assert_eq!(yuv420p_len(5, 3), 15 + 2 * 3 * 2);
    }

    #[test]
    fn the_command_seeks_filters_and_writes_raw_frames() {
        let src = RawSource {
            file: PathBuf::from("/v/cam.mp4"),
            seek_sec: 1.5,
            filters: "fps=30".into(),
            size: (64, 36),
        };
        let line = raw_args(&src)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            line.contains("-ss 1.500000 -i /v/cam.mp4 -an -sn -dn -vf fps=30,format=yuv420p"),
            "{line}"
        );
        assert!(
            line.ends_with("-f rawvideo -pix_fmt yuv420p pipe:1"),
            "{line}"
        );
    }
}
