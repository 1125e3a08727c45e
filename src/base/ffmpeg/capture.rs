//! Capture (rig-record): the source grammar, the ffmpeg command line that
//! turns a camera into fragmented MP4 on a pipe, and the running capture
//! process (ffmpeg, and the producer of a `cmd` source).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Where rig-record's frames come from (`recording.source` / `--source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureSource {
    /// `test`: lavfi `testsrc2` at the configured size and rate, read in real
    /// time (`-re`), for benches, CI and `rig-record --test` without a camera.
    Test,
    /// `v4l2:/dev/videoN`: a V4L2 capture device.
    V4l2(PathBuf),
    /// `cmd:<shell command>`: `sh -c` runs the command; ffmpeg reads its
    /// stdout and detects the format (any container or elementary stream
    /// ffmpeg can probe, e.g. `rpicam-vid --codec libav --libav-format mpegts -o -`).
    Cmd(String),
    /// `cmd-yuv420p:<shell command>`: like `cmd:`, but the stdout is raw
    /// YUV 4:2:0 frames at the configured size and rate (a Pi 5's
    /// `rpicam-vid --codec yuv420 -o -`, which has no hardware encoder).
    CmdRaw(String),
}

impl CaptureSource {
    /// Parses a source spec; the message lists the accepted forms.
    pub fn parse(spec: &str) -> Result<CaptureSource, String> {
        let spec = spec.trim();
        let forms = "use test, v4l2:/dev/videoN, cmd:<shell command> or \
                     cmd-yuv420p:<shell command>";
        if spec == "test" {
            return Ok(CaptureSource::Test);
        }
        if let Some(dev) = spec.strip_prefix("v4l2:") {
            if dev.is_empty() {
                return Err(format!("source {spec:?} names no device; {forms}"));
            }
            return Ok(CaptureSource::V4l2(PathBuf::from(dev)));
        }
        for (prefix, raw) in [("cmd-yuv420p:", true), ("cmd:", false)] {
            if let Some(cmd) = spec.strip_prefix(prefix) {
                if cmd.trim().is_empty() {
                    return Err(format!("source {spec:?} has an empty command; {forms}"));
                }
                let cmd = cmd.to_string();
                return Ok(if raw {
                    CaptureSource::CmdRaw(cmd)
                } else {
                    CaptureSource::Cmd(cmd)
                });
            }
        }
        Err(format!("unknown source {spec:?}; {forms}"))
    }

    /// The shell command of a `cmd:`/`cmd-yuv420p:` source.
    pub fn command(&self) -> Option<&str> {
        match self {
            CaptureSource::Cmd(c) | CaptureSource::CmdRaw(c) => Some(c),
            _ => None,
        }
    }
}

/// What the capture encodes, from `recording:` (and `--duration`).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target bitrate, Mbps.
    pub bitrate_mbps: u32,
    /// `h264` or `h265`.
    pub codec: String,
    /// ffmpeg encoder; empty picks `libx264`/`libx265` from `codec`.
    pub encoder: String,
    /// Encoder preset; empty passes none (the encoder's default).
    pub preset: String,
    /// Fragment length in seconds (also the keyframe interval).
    pub fragment_sec: f64,
    /// Stop after this many seconds of video (`-t`), if set.
    pub duration_sec: Option<f64>,
}

impl CaptureSettings {
    /// The encoder ffmpeg will use.
    pub fn encoder_name(&self) -> String {
        if !self.encoder.is_empty() {
            self.encoder.clone()
        } else if self.codec == "h264" {
            "libx264".into()
        } else {
            "libx265".into()
        }
    }

    /// Frames per fragment, and so per GOP: a keyframe opens every fragment.
    pub fn gop_frames(&self) -> u32 {
        ((f64::from(self.fps) * self.fragment_sec).round() as u32).max(1)
    }
}

/// Seconds formatted for an ffmpeg time option (`-t`).
fn secs_arg(s: f64) -> String {
    format!("{s:.6}")
}

/// The arguments (after the program name) of the capture ffmpeg: read the
/// source, encode at the configured size/rate/bitrate with a keyframe every
/// fragment, and write fragmented MP4 (`frag_keyframe+empty_moov+
/// default_base_moof`, one fragment per `fragment_sec`) to stdout. Progress
/// goes to stderr as `-progress` blocks every 0.25 s; ffmpeg's own messages
/// there are errors only. For `cmd` sources ffmpeg reads its stdin.
pub fn capture_args(source: &CaptureSource, s: &CaptureSettings) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = Vec::new();
    push_args(&mut a, &["-hide_banner", "-nostats", "-v", "error"]);
    push_args(&mut a, &["-progress", "pipe:2", "-stats_period", "0.25"]);
    push_input(&mut a, source, s);
    push_encoder(&mut a, s);
    if let Some(d) = s.duration_sec {
        push_args(&mut a, &["-t", &secs_arg(d)]);
    }
    let frag_us = ((s.fragment_sec * 1e6).round() as u64).max(1).to_string();
    push_args(&mut a, &["-f", "mp4"]);
    push_args(
        &mut a,
        &["-movflags", "+frag_keyframe+empty_moov+default_base_moof"],
    );
    push_args(&mut a, &["-frag_duration", &frag_us, "pipe:1"]);
    a
}

/// Appends `items` to the argument list.
fn push_args(a: &mut Vec<std::ffi::OsString>, items: &[&str]) {
    a.extend(items.iter().map(std::ffi::OsString::from));
}

/// The input options and `-i` for the source.
fn push_input(a: &mut Vec<std::ffi::OsString>, source: &CaptureSource, s: &CaptureSettings) {
    let size = format!("{}x{}", s.width, s.height);
    let fps = s.fps.to_string();
    match source {
        CaptureSource::Test => {
            let graph = format!("testsrc2=size={size}:rate={fps}");
            push_args(a, &["-re", "-f", "lavfi", "-i", &graph]);
        }
        CaptureSource::V4l2(dev) => {
            let dev = dev.to_string_lossy();
            push_args(a, &["-f", "v4l2", "-framerate", &fps, "-video_size", &size]);
            push_args(a, &["-i", &dev]);
        }
        CaptureSource::Cmd(_) => push_args(a, &["-i", "pipe:0"]),
        CaptureSource::CmdRaw(_) => push_args(a, &super::raw::stdin_input(&size, &fps)),
    }
}

/// The video encoder and its rate control: constant bitrate, a keyframe
/// every GOP and nowhere else.
fn push_encoder(a: &mut Vec<std::ffi::OsString>, s: &CaptureSettings) {
    let encoder = s.encoder_name();
    let gop = s.gop_frames().to_string();
    let rate = format!("{}M", s.bitrate_mbps);
    let bufsize = format!("{}M", u64::from(s.bitrate_mbps) * 2);
    push_args(
        a,
        &[
            "-map", "0:v:0", "-an", "-c:v", &encoder, "-pix_fmt", "yuv420p",
        ],
    );
    if !s.preset.is_empty() {
        push_args(a, &["-preset", &s.preset]);
    }
    push_args(a, &["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"]);
    push_args(a, &["-b:v", &rate, "-maxrate", &rate, "-bufsize", &bufsize]);
    if encoder == "libx265" {
        push_args(a, &["-x265-params", "log-level=error"]);
    }
    if s.codec == "h265" {
        push_args(a, &["-tag:v", "hvc1"]);
    }
}

/// The running capture: ffmpeg, and the producer of a `cmd` source.
#[derive(Debug)]
pub struct CaptureProcess {
    ffmpeg: Child,
    stdin: Option<ChildStdin>,
    producer: Option<Child>,
}

/// The `cmd` source's producer, `sh -c` in its own process group, and its
/// stdout (ffmpeg's stdin).
fn spawn_producer(shell: &str) -> io::Result<(Child, ChildStdout)> {
    use std::os::unix::process::CommandExt;
    let mut p = Command::new("sh")
        .arg("-c")
        .arg(shell)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let out = p
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("producer stdout not captured"))?;
    Ok((p, out))
}

impl CaptureProcess {
    /// Starts the producer (for `cmd` sources) and ffmpeg, each in its own
    /// process group so a terminal's Ctrl-C reaches only rig-record.
    pub fn spawn(
        ffmpeg_path: &Path,
        source: &CaptureSource,
        settings: &CaptureSettings,
    ) -> io::Result<CaptureProcess> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(ffmpeg_path);
        cmd.args(capture_args(source, settings))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut producer = match source.command() {
            Some(shell) => {
                let (p, out) = spawn_producer(shell)?;
                cmd.stdin(Stdio::from(out));
                Some(p)
            }
            None => {
                cmd.stdin(Stdio::piped());
                None
            }
        };
        log::debug!("capture: {cmd:?}");
        let mut ffmpeg = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                if let Some(p) = producer.as_mut() {
                    signal_group(p, rustix::process::Signal::KILL);
                    let _ = p.wait();
                }
                return Err(e);
            }
        };
        let stdin = ffmpeg.stdin.take();
        Ok(CaptureProcess {
            ffmpeg,
            stdin,
            producer,
        })
    }

    /// ffmpeg's stdout (the recording) and stderr (progress and errors),
    /// once: `None` when they were taken already.
    pub fn take_pipes(&mut self) -> Option<(ChildStdout, ChildStderr)> {
        let stdout = self.ffmpeg.stdout.take()?;
        let stderr = self.ffmpeg.stderr.take()?;
        Some((stdout, stderr))
    }

    /// ffmpeg's exit status, if it has exited.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.ffmpeg.try_wait()
    }

    /// Asks ffmpeg to finish cleanly.
    pub fn request_stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            // ffmpeg may already be gone: a failed write changes nothing.
            let _ = stdin.write_all(b"q").and_then(|()| stdin.flush());
        }
        if let Some(p) = self.producer.as_mut() {
            signal_group(p, rustix::process::Signal::TERM);
        }
    }

    /// Waits up to `timeout` for ffmpeg; kills it after that. Returns its
    /// status and whether it had to be killed.
    pub fn wait_bounded(&mut self, timeout: Duration) -> io::Result<(ExitStatus, bool)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.ffmpeg.try_wait()? {
                return Ok((status, false));
            }
            if Instant::now() >= deadline {
                log::error!("ffmpeg did not finish within {timeout:?}; killing it");
                self.ffmpeg.kill()?;
                return Ok((self.ffmpeg.wait()?, true));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the producer: SIGTERM to its group, then SIGKILL after 3 s.
    pub fn reap_producer(&mut self) {
        let Some(p) = self.producer.as_mut() else {
            return;
        };
        signal_group(p, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match p.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() >= deadline => {
                    signal_group(p, rustix::process::Signal::KILL);
                    let _ = p.wait();
                    break;
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
        // Anything else left in the group (a pipeline's other members).
        signal_group(p, rustix::process::Signal::KILL);
    }
}

/// Signals the process group a child leads (never anything else).
fn signal_group(child: &Child, sig: rustix::process::Signal) {
    if let Ok(raw) = i32::try_from(child.id())
        && raw > 1
        && let Some(pid) = rustix::process::Pid::from_raw(raw)
    {
        let _ = rustix::process::kill_process_group(pid, sig);
    }
}
