//! Reading small gray frames out of a video, for analysis in Rust (the
//! content time alignment of rig-stitch).
//!
//! One ffmpeg process per call ([`RawDecoder`]): seek (`-ss` before `-i`,
//! frame-accurate when decoding), put the frames on a given rate, scale
//! them down, convert to 8-bit gray and write raw frames to a pipe. The caller sees one frame at a
//! time, so memory is one frame however long the window is.

use std::ffi::OsString;
use std::path::Path;

pub use super::raw::FramesError;
use super::raw::RawDecoder;

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
    let frame_len = (w.width * w.height) as usize;
    let mut dec = RawDecoder::start(ffmpeg, file, &gray_args(file, w), frame_len)?;
    let mut frame = vec![0u8; frame_len];
    let (mut count, mut stopped) = (0, false);
    loop {
        match dec.read_frame(&mut frame) {
            Ok(true) => {}
            Ok(false) => break,
            // A frame cut short: ffmpeg's own failure says more.
            Err(e) => return dec.finish(false).and(Err(e)),
        }
        count += 1;
        if !each(&frame) {
            stopped = true;
            break;
        }
    }
    dec.finish(stopped)?;
    Ok(count)
}
