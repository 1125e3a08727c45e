//! Every ffmpeg and ffprobe process the suite starts, and reading what they
//! say. Nothing outside this module spawns either tool.
//!
//! | file | owns |
//! |---|---|
//! | this one | [`probe`]: ffprobe's report on a file; [`gray_frame`] |
//! | `tools` | finding the tools, `-version`, `-encoders`, `-filters` |
//! | `capture` | rig-record's source grammar, command line and running capture |
//! | `progress` | parsing `-progress` blocks |
//! | [`encoders`], [`frames`] | encoder names and options; frame-accurate reads |
//! | [`raw`] | decoding to raw `yuv420p` frames on a pipe (the stitch's warp) |
//! | `run` | running a long encode with its progress, fed on stdin or not |
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

mod capture;
pub mod encoders;
pub mod frames;
mod progress;
pub mod raw;
mod run;
mod thumbnail;
mod tools;

pub use capture::{CaptureProcess, CaptureSettings, CaptureSource, capture_args};
pub use progress::{Progress, ProgressParser};
pub use run::{RunError, run_fed, run_with_progress};
pub use thumbnail::{ThumbnailError, thumbnail};
pub use tools::{ToolError, has_encoder, has_filter, tool_exists, version};

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

impl std::error::Error for ProbeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProbeError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

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
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .ok_or_else(|| ProbeError::NoVideo {
            file: file.to_path_buf(),
        })?;
    let has_audio = streams.iter().any(|s| s["codec_type"] == "audio");
    let format = &json["format"];

    let width = dimension(video, "width", file)?;
    let height = dimension(video, "height", file)?;
    let fps_exact = frame_rate(video, file)?;
    let codec = codec_name(video, file)?;
    let duration_sec =
        video_duration(video, format, fps_exact).ok_or_else(|| field_error(file, "a duration"))?;
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

/// The probe of `file` lacks `what` or has it wrong.
fn field_error(file: &Path, what: &str) -> ProbeError {
    ProbeError::Field {
        file: file.to_path_buf(),
        what: what.to_string(),
    }
}

/// The video stream's `width` or `height`: a positive `u32`.
fn dimension(video: &Value, key: &str, file: &Path) -> Result<u32, ProbeError> {
    video[key]
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|&v| v > 0)
        .ok_or_else(|| field_error(file, &format!("video {key}")))
}

/// The video stream's frame rate: `r_frame_rate`, else `avg_frame_rate`.
fn frame_rate(video: &Value, file: &Path) -> Result<f64, ProbeError> {
    parse_rate(video["r_frame_rate"].as_str().unwrap_or(""))
        .or_else(|| parse_rate(video["avg_frame_rate"].as_str().unwrap_or("")))
        .ok_or_else(|| field_error(file, "a frame rate (r_frame_rate)"))
}

/// The video stream's codec, HEVC named `h265` as in the manifest.
fn codec_name(video: &Value, file: &Path) -> Result<String, ProbeError> {
    match video["codec_name"].as_str() {
        Some("hevc") => Ok("h265".to_string()),
        Some(other) => Ok(other.to_string()),
        None => Err(field_error(file, "codec_name")),
    }
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
    fn missing_tool_says_how_to_fix() {
        let err = probe(Path::new("/nonexistent/ffprobe"), Path::new("x.mp4")).unwrap_err();
        assert!(err.to_string().contains("apt-get install ffmpeg"), "{err}");
    }
}
