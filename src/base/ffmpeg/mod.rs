//! Running ffprobe (and, in later modules, ffmpeg) and reading what they say.
//!
//! [`probe`] runs `ffprobe -print_format json -show_format -show_streams` and
//! extracts what a manifest needs: frame size, integer fps (from
//! `r_frame_rate`), codec in manifest spelling (`hevc` becomes `h265`),
//! bitrate, duration and container.
//!
//! The duration is the *video stream's*: a file's `format.duration` is its
//! longest stream, and a camera whose audio outlasts its video would
//! otherwise promise frames that do not exist (a stitch would plan past the
//! last frame and trim the audio longer than the picture). The container is
//! `mov` for a QuickTime file even though ffprobe names its demuxer
//! `mov,mp4,...` for both: only the `major_brand` tells them apart, and the
//! protocol wants MP4.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

pub mod encoders;
pub mod frames;
mod thumbnail;

pub use thumbnail::{ThumbnailError, thumbnail};

/// Why a probe failed. Each message says what to do.
#[derive(Debug)]
pub enum ProbeError {
    /// The ffprobe binary is not there.
    ToolMissing {
        /// The path tried.
        tool: PathBuf,
    },
    /// ffprobe ran but could not read the file.
    Unreadable {
        /// The video file.
        file: PathBuf,
        /// ffprobe's own words.
        stderr: String,
    },
    /// The file has no video stream.
    NoVideo {
        /// The file.
        file: PathBuf,
    },
    /// ffprobe's output lacked a needed field.
    Field {
        /// The file.
        file: PathBuf,
        /// The field that was missing or odd.
        what: String,
    },
    /// Starting ffprobe failed for another reason.
    Io {
        /// The tool.
        tool: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::ToolMissing { tool } => write!(
                f,
                "ffprobe not found at {}: install ffmpeg (apt-get install ffmpeg) \
                 or set processing.ffprobe_path",
                tool.display()
            ),
            ProbeError::Unreadable { file, stderr } => {
                write!(
                    f,
                    "{}: not a readable video: {}",
                    file.display(),
                    stderr.trim()
                )
            }
            ProbeError::NoVideo { file } => {
                write!(f, "{}: has no video stream", file.display())
            }
            ProbeError::Field { file, what } => {
                write!(f, "{}: ffprobe did not report {what}", file.display())
            }
            ProbeError::Io { tool, source } => {
                write!(f, "cannot run {}: {source}", tool.display())
            }
        }
    }
}

impl std::error::Error for ProbeError {}

/// What ffprobe says about a video file, in manifest terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second as the manifest's integer (rounded `r_frame_rate`).
    pub fps: u32,
    /// The exact frame rate, e.g. 29.97.
    pub fps_exact: f64,
    /// `h264`, `h265`, or ffprobe's name for anything else.
    pub codec: String,
    /// Overall bitrate in bits per second, when known.
    pub bitrate_bps: Option<u64>,
    /// Duration of the video stream in seconds (see the module docs): the
    /// stream's own duration, else its frame count over the frame rate,
    /// else the container's.
    pub duration_sec: f64,
    /// `mp4` for ISO media files, `mov` for QuickTime ones (major brand
    /// `qt  `), else ffprobe's format name.
    pub container: String,
    /// The container's `creation_time` tag, when present.
    pub creation_time: Option<String>,
    /// Whether the file has an audio stream.
    pub has_audio: bool,
}

impl Probe {
    /// Bitrate rounded to whole Mbps, as the manifest's `video.bitrate_mbps`.
    pub fn bitrate_mbps(&self) -> u32 {
        self.bitrate_bps
            .map(|b| ((b as f64) / 1e6).round() as u32)
            .unwrap_or(0)
    }
}

/// Whether `program` names something that can be run: a path that is a
/// file, or a bare name found in `PATH`. Asked before spawning because
/// under user-mode emulation (qemu-aarch64 running an arm64 build) a
/// missing program does not fail to spawn: the child "starts" and exits 127.
pub fn tool_exists(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Runs ffprobe on `file`.
pub fn probe(ffprobe: &Path, file: &Path) -> Result<Probe, ProbeError> {
    if !tool_exists(ffprobe) {
        return Err(ProbeError::ToolMissing {
            tool: ffprobe.to_path_buf(),
        });
    }
    let output = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file)
        .output()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ProbeError::ToolMissing {
                    tool: ffprobe.to_path_buf(),
                }
            } else {
                ProbeError::Io {
                    tool: ffprobe.to_path_buf(),
                    source,
                }
            }
        })?;
    if !output.status.success() {
        return Err(ProbeError::Unreadable {
            file: file.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let json: Value =
        serde_json::from_slice(&output.stdout).map_err(|e| ProbeError::Unreadable {
            file: file.to_path_buf(),
            stderr: format!("ffprobe printed no JSON ({e})"),
        })?;
    parse_probe_json(&json, file)
}

/// Interprets ffprobe's JSON (separate from [`probe`] so it can be tested on text).
pub fn parse_probe_json(json: &Value, file: &Path) -> Result<Probe, ProbeError> {
    let field = |what: &str| ProbeError::Field {
        file: file.to_path_buf(),
        what: what.to_string(),
    };
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .ok_or_else(|| ProbeError::NoVideo {
            file: file.to_path_buf(),
        })?;
    let has_audio = streams.iter().any(|s| s["codec_type"] == "audio");
    let format = &json["format"];

    let dim = |key: &str| {
        video[key]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v > 0)
            .ok_or_else(|| field(&format!("video {key}")))
    };
    let width = dim("width")?;
    let height = dim("height")?;

    let fps_exact = parse_rate(video["r_frame_rate"].as_str().unwrap_or(""))
        .or_else(|| parse_rate(video["avg_frame_rate"].as_str().unwrap_or("")))
        .ok_or_else(|| field("a frame rate (r_frame_rate)"))?;

    let codec = match video["codec_name"].as_str() {
        Some("hevc") => "h265".to_string(),
        Some(other) => other.to_string(),
        None => return Err(field("codec_name")),
    };

    let duration_sec =
        video_duration(video, format, fps_exact).ok_or_else(|| field("a duration"))?;
    // Fragmented MP4 often lacks a per-stream bitrate; the format-level
    // value is the reliable one.
    let bitrate_bps = number(&format["bit_rate"])
        .or_else(|| number(&video["bit_rate"]))
        .map(|b| b as u64);
    let container = container_name(format);
    let creation_time = format["tags"]["creation_time"].as_str().map(str::to_string);

    Ok(Probe {
        width,
        height,
        fps: fps_exact.round() as u32,
        fps_exact,
        codec,
        bitrate_bps,
        duration_sec,
        container,
        creation_time,
        has_audio,
    })
}

/// A number ffprobe printed as a string (`"3.000000"`) or, rarely, as one.
fn number(v: &Value) -> Option<f64> {
    v.as_str()
        .and_then(|s| s.parse::<f64>().ok())
        .or_else(|| v.as_f64())
}

/// The video stream's duration: its own `duration`, else `nb_frames / fps`
/// (streams of some muxers carry only the count), else the container's as
/// a last resort (all a stream-less report offers).
fn video_duration(video: &Value, format: &Value, fps: f64) -> Option<f64> {
    let valid = |d: &f64| d.is_finite() && *d >= 0.0;
    number(&video["duration"])
        .filter(valid)
        .or_else(|| {
            number(&video["nb_frames"])
                .filter(|n| *n > 0.0)
                .map(|n| n / fps)
        })
        .or_else(|| number(&format["duration"]))
        .filter(valid)
}

/// `mp4`, `mov` or ffprobe's format name. ffprobe's one demuxer reads ISO
/// MP4 and QuickTime alike (`mov,mp4,m4a,3gp,3g2,mj2`); a QuickTime file
/// says so with the major brand `qt  `.
fn container_name(format: &Value) -> String {
    let format_name = format["format_name"].as_str().unwrap_or("");
    if !format_name.split(',').any(|f| f == "mp4") {
        return format_name.to_string();
    }
    let brand = format["tags"]["major_brand"].as_str().unwrap_or("");
    if brand.trim() == "qt" {
        "mov".to_string()
    } else {
        "mp4".to_string()
    }
}

/// Parses `30/1` or `30000/1001`; `None` for `0/0` and junk.
fn parse_rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

/// One block of ffmpeg's `-progress` output (key=value lines ending with
/// `progress=continue` or `progress=end`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Frames written so far.
    pub frame: u64,
    /// Current encoding speed in frames per second.
    pub fps: f64,
    /// Output timestamp reached, microseconds.
    pub out_time_us: u64,
    /// Frames dropped so far.
    pub drop_frames: u64,
    /// Frames duplicated so far.
    pub dup_frames: u64,
    /// Bytes written so far.
    pub total_size: u64,
    /// Speed relative to real time (`1.0` = real time), when known.
    pub speed: Option<f64>,
    /// This was the last block (`progress=end`).
    pub end: bool,
}

/// Accumulates `-progress` lines into [`Progress`] blocks.
///
/// ```
/// use soccer_rig::base::ffmpeg::ProgressParser;
/// let mut p = ProgressParser::default();
/// assert!(p.line("frame=30").is_none());
/// let block = p.line("progress=continue").unwrap();
/// assert_eq!(block.frame, 30);
/// ```
#[derive(Debug, Default)]
pub struct ProgressParser {
    current: Progress,
}

impl ProgressParser {
    /// Feeds one line; returns a finished block at each `progress=` line.
    /// Unknown keys and unparsable values (ffmpeg prints `N/A`) are ignored.
    pub fn line(&mut self, line: &str) -> Option<Progress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        let int = || value.parse::<u64>().ok();
        let c = &mut self.current;
        match key {
            "frame" => c.frame = int().unwrap_or(c.frame),
            "fps" => c.fps = value.parse().unwrap_or(c.fps),
            // `out_time_ms` is, despite its name, also microseconds.
            "out_time_us" | "out_time_ms" => c.out_time_us = int().unwrap_or(c.out_time_us),
            "drop_frames" => c.drop_frames = int().unwrap_or(c.drop_frames),
            "dup_frames" => c.dup_frames = int().unwrap_or(c.dup_frames),
            "total_size" => c.total_size = int().unwrap_or(c.total_size),
            "speed" => c.speed = value.trim_end_matches('x').parse().ok(),
            "progress" => {
                c.end = value == "end";
                return Some(c.clone());
            }
            _ => {}
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Capture (rig-record): the source grammar and the ffmpeg command line that
// turns a camera into fragmented MP4 on a pipe. Kept together, here at the end.
// ---------------------------------------------------------------------------

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
    let mut push = |items: &[&str]| a.extend(items.iter().map(std::ffi::OsString::from));
    push(&["-hide_banner", "-nostats", "-v", "error"]);
    push(&["-progress", "pipe:2", "-stats_period", "0.25"]);
    let size = format!("{}x{}", s.width, s.height);
    let fps = s.fps.to_string();
    match source {
        CaptureSource::Test => {
            let graph = format!("testsrc2=size={size}:rate={fps}");
            push(&["-re", "-f", "lavfi", "-i", &graph]);
        }
        CaptureSource::V4l2(dev) => {
            let dev = dev.to_string_lossy();
            push(&["-f", "v4l2", "-framerate", &fps, "-video_size", &size]);
            push(&["-i", &dev]);
        }
        CaptureSource::Cmd(_) => push(&["-i", "pipe:0"]),
        CaptureSource::CmdRaw(_) => push(&[
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-video_size",
            &size,
            "-framerate",
            &fps,
            "-i",
            "pipe:0",
        ]),
    }
    let encoder = s.encoder_name();
    let gop = s.gop_frames().to_string();
    let rate = format!("{}M", s.bitrate_mbps);
    let bufsize = format!("{}M", u64::from(s.bitrate_mbps) * 2);
    push(&[
        "-map", "0:v:0", "-an", "-c:v", &encoder, "-pix_fmt", "yuv420p",
    ]);
    if !s.preset.is_empty() {
        push(&["-preset", &s.preset]);
    }
    push(&["-g", &gop, "-keyint_min", &gop, "-sc_threshold", "0"]);
    push(&["-b:v", &rate, "-maxrate", &rate, "-bufsize", &bufsize]);
    if encoder == "libx265" {
        push(&["-x265-params", "log-level=error"]);
    }
    if s.codec == "h265" {
        push(&["-tag:v", "hvc1"]);
    }
    if let Some(d) = s.duration_sec {
        push(&["-t", &secs_arg(d)]);
    }
    let frag_us = ((s.fragment_sec * 1e6).round() as u64).max(1).to_string();
    push(&["-f", "mp4"]);
    push(&["-movflags", "+frag_keyframe+empty_moov+default_base_moof"]);
    push(&["-frag_duration", &frag_us, "pipe:1"]);
    a
}

/// One frame of `file` at `at_sec`, scaled to `width` x `height` (area
/// averaging) as 8-bit gray, row after row: what rig-stitch's calibration
/// looks at. One short ffmpeg process per frame.
pub fn gray_frame(
    ffmpeg: &Path,
    file: &Path,
    at_sec: f64,
    width: u32,
    height: u32,
) -> std::io::Result<Vec<u8>> {
    let output = Command::new(ffmpeg)
        .args([
            "-v",
            "error",
            "-nostdin",
            "-ss",
            &format!("{at_sec:.3}"),
            "-i",
        ])
        .arg(file)
        .args([
            "-frames:v",
            "1",
            "-vf",
            &format!("scale={width}:{height}:flags=area,format=gray"),
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", ffmpeg.display())))?;
    let want = width as usize * height as usize;
    if !output.status.success() || output.stdout.len() < want {
        return Err(std::io::Error::other(format!(
            "{}: no frame at {at_sec:.3} s: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let mut frame = output.stdout;
    frame.truncate(want);
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_blocks() {
        let mut p = ProgressParser::default();
        let text = "frame=10\nfps=5.0\nout_time_us=666666\ndrop_frames=2\nspeed=N/A\n\
                    progress=continue\nframe=45\nout_time_us=N/A\nspeed=1.02x\nprogress=end\n";
        let blocks: Vec<Progress> = text.lines().filter_map(|l| p.line(l)).collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].frame, blocks[0].drop_frames, blocks[0].end),
            (10, 2, false)
        );
        assert_eq!(blocks[0].speed, None);
        assert_eq!((blocks[1].frame, blocks[1].out_time_us), (45, 666666));
        assert_eq!((blocks[1].speed, blocks[1].end), (Some(1.02), true));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("30/1"), Some(30.0));
        assert_eq!(parse_rate("30000/1001").map(|r| r.round()), Some(30.0));
        assert_eq!(parse_rate("0/0"), None);
        assert_eq!(parse_rate("x"), None);
    }

    #[test]
    fn parses_fragmented_mp4_json() {
        let json: Value = serde_json::from_str(
            r#"{"streams":[{"codec_type":"video","codec_name":"hevc","width":320,
               "height":180,"r_frame_rate":"15/1"}],
               "format":{"format_name":"mov,mp4,m4a,3gp,3g2,mj2","duration":"3.000000",
               "bit_rate":"123456"}}"#,
        )
        .unwrap();
        let p = parse_probe_json(&json, Path::new("x.mp4")).unwrap();
        assert_eq!((p.width, p.height, p.fps), (320, 180, 15));
        assert_eq!((p.codec.as_str(), p.container.as_str()), ("h265", "mp4"));
        assert_eq!(p.duration_sec, 3.0);
        assert_eq!(p.bitrate_bps, Some(123456));
        assert!(!p.has_audio);
    }

    #[test]
    fn duration_is_the_video_streams() {
        let probe = |streams: &str, format: &str| {
            let json: Value = serde_json::from_str(&format!(
                r#"{{"streams":[{{"codec_type":"video","codec_name":"h264","width":320,
                   "height":180,"r_frame_rate":"15/1"{streams}}},
                   {{"codec_type":"audio","duration":"3.000000"}}],
                   "format":{{"format_name":"mov,mp4,m4a,3gp,3g2,mj2"{format}}}}}"#
            ))
            .unwrap();
            parse_probe_json(&json, Path::new("x.mp4"))
                .unwrap()
                .duration_sec
        };
        // Audio 3 s, video 2 s: the video's, not the container's 3 s.
        assert_eq!(
            probe(r#","duration":"2.000000""#, r#","duration":"3.0""#),
            2.0
        );
        assert_eq!(probe(r#","nb_frames":"30""#, r#","duration":"3.0""#), 2.0);
        assert_eq!(probe("", r#","duration":"3.0""#), 3.0);
    }

    #[test]
    fn quicktime_is_mov_not_mp4() {
        let container = |brand: &str| {
            container_name(&serde_json::json!({
                "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
                "tags": {"major_brand": brand}
            }))
        };
        assert_eq!(container("qt  "), "mov");
        assert_eq!(container("isom"), "mp4");
        assert_eq!(container("iso5"), "mp4");
        assert_eq!(
            container_name(&serde_json::json!({"format_name": "matroska,webm"})),
            "matroska,webm"
        );
    }

    #[test]
    fn no_video_stream_is_an_error() {
        let json: Value = serde_json::from_str(r#"{"streams":[{"codec_type":"audio"}]}"#).unwrap();
        let err = parse_probe_json(&json, Path::new("a.mp4")).unwrap_err();
        assert!(err.to_string().contains("no video stream"));
    }

    #[test]
    fn tools_are_found_by_path_or_in_path() {
        assert!(tool_exists(Path::new("sh")));
        assert!(tool_exists(Path::new("/bin/sh")));
        assert!(!tool_exists(Path::new("/nonexistent/ffprobe")));
        assert!(!tool_exists(Path::new("no-such-tool-soccer-rig")));
        assert!(!tool_exists(Path::new("/tmp")), "a directory is no program");
    }

    #[test]
    fn missing_tool_says_how_to_fix() {
        let err = probe(Path::new("/nonexistent/ffprobe"), Path::new("x.mp4")).unwrap_err();
        assert!(err.to_string().contains("apt-get install ffmpeg"), "{err}");
    }
}
