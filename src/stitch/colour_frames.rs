//! The chroma planes the colour step of `rig-stitch calibrate` looks at:
//! frames sampled across the match at the calibration size, as full-size
//! (4:4:4) U and V, reduced to their per-pixel temporal medians.
//!
//! Each frame is one short ffmpeg run (`-ss` before `-i`, one frame, area
//! scaling) writing raw `yuv444p` to a temporary file in the session's
//! `stitched/` directory, removed when done.

use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::StitchError;
use super::colour::Planes;
use super::image::Gray;
use crate::base::ffmpeg;
use crate::base::fsx;

/// What to sample: the recording, the instants (seconds), the size.
pub struct Sampling<'a> {
    /// ffmpeg.
    pub ffmpeg: &'a Path,
    /// The recording.
    pub file: &'a Path,
    /// Seconds into it.
    pub at: Vec<f64>,
    /// Calibration width and height (even).
    pub size: (u32, u32),
}

/// The median U and V planes of `s`'s frames, working in `dir`.
pub fn median_planes(s: &Sampling, dir: &Path) -> Result<Planes, StitchError> {
    let tmp = tempfile::Builder::new()
        .prefix(".calibration-frame-")
        .suffix(".yuv")
        .tempfile_in(dir)
        .map_err(|e| io_error(dir, e))?;
    let (w, h) = (s.size.0 as usize, s.size.1 as usize);
    let (mut us, mut vs) = (Vec::new(), Vec::new());
    for &t in &s.at {
        let frame = one_frame(s, t, tmp.path())?;
        if frame.len() < 3 * w * h {
            return Err(StitchError::Io(std::io::Error::other(format!(
                "{}: no frame at {t:.3} s",
                s.file.display()
            ))));
        }
        us.push(frame[w * h..2 * w * h].to_vec());
        vs.push(frame[2 * w * h..3 * w * h].to_vec());
    }
    Ok(Planes {
        u: Gray::median_of(w, h, &us),
        v: Gray::median_of(w, h, &vs),
    })
}

/// One `yuv444p` frame of `s.file` at `t` seconds, through `tmp`.
fn one_frame(s: &Sampling, t: f64, tmp: &Path) -> Result<Vec<u8>, StitchError> {
    let args = frame_args(s, t, tmp);
    ffmpeg::run_with_progress(s.ffmpeg, &args, &AtomicBool::new(false), &mut |_| {})
        .map_err(|e| io_error(s.file, std::io::Error::other(e)))?;
    std::fs::read(tmp).map_err(|e| io_error(tmp, e))
}

/// ffmpeg's arguments for [`one_frame`].
fn frame_args(s: &Sampling, t: f64, tmp: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        .into_iter()
        .map(OsString::from)
        .collect();
    a.push("-ss".into());
    a.push(format!("{t:.3}").into());
    a.push("-i".into());
    a.push(s.file.as_os_str().to_owned());
    let vf = format!("scale={}:{}:flags=area,format=yuv444p", s.size.0, s.size.1);
    for x in ["-frames:v", "1", "-an", "-vf", &vf, "-f", "rawvideo"] {
        a.push(x.into());
    }
    a.push(tmp.as_os_str().to_owned());
    for x in ["-progress", "pipe:1", "-nostats"] {
        a.push(x.into());
    }
    a
}

/// `e` with the path it is about (kept as its source).
fn io_error(path: &Path, e: std::io::Error) -> StitchError {
    StitchError::Io(fsx::with_path(path)(e))
}
