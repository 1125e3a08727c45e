//! One still frame of a video as a small JPEG: rig-receive's session
//! thumbnails ([`crate::store`] owns where they are kept).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Why no thumbnail was made.
#[derive(Debug)]
pub enum ThumbnailError {
    /// ffmpeg could not be started.
    Spawn {
        /// The ffmpeg binary tried.
        tool: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// ffmpeg ran but wrote no frame.
    NoFrame {
        /// The video.
        source_file: PathBuf,
        /// ffmpeg's own words.
        stderr: String,
    },
}

impl fmt::Display for ThumbnailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThumbnailError::Spawn { tool, source } => {
                write!(f, "cannot run {}: {source}", tool.display())
            }
            ThumbnailError::NoFrame {
                source_file,
                stderr,
            } => write!(
                f,
                "ffmpeg found no frame in {}: {stderr}",
                source_file.display()
            ),
        }
    }
}

impl std::error::Error for ThumbnailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThumbnailError::Spawn { source, .. } => Some(source),
            ThumbnailError::NoFrame { .. } => None,
        }
    }
}

/// Writes one frame of `video`, 320 pixels wide, as a JPEG to `out`: the
/// frame one second in, or the first frame of a shorter file. `out` is
/// overwritten; the caller makes it atomic (a temp file it renames).
pub fn thumbnail(ffmpeg: &Path, video: &Path, out: &Path) -> Result<(), ThumbnailError> {
    let written =
        |o: &Output| o.status.success() && std::fs::metadata(out).is_ok_and(|m| m.len() > 0);
    let mut output = run(ffmpeg, video, out, "1")?;
    if !written(&output) {
        output = run(ffmpeg, video, out, "0")?;
    }
    if !written(&output) {
        return Err(ThumbnailError::NoFrame {
            source_file: video.to_path_buf(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// One ffmpeg run taking the frame at `seek` seconds.
fn run(ffmpeg: &Path, video: &Path, out: &Path, seek: &str) -> Result<Output, ThumbnailError> {
    Command::new(ffmpeg)
        .args(["-v", "error", "-nostdin", "-y", "-ss", seek, "-i"])
        .arg(video)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=320:-2",
            "-q:v",
            "5",
            "-f",
            "mjpeg",
        ])
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| ThumbnailError::Spawn {
            tool: ffmpeg.to_path_buf(),
            source,
        })
}
