//! Whether an ffmpeg encoder works on this machine.
//!
//! `ffmpeg -encoders` lists what the build knows (Debian's lists
//! `h264_nvenc` on machines without an NVIDIA card), not what runs, so the
//! probe encodes a few frames of a lavfi colour to the null muxer. A hardware
//! encoder that needs a device (VAAPI) gets it the way the real encode does.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

/// The default VAAPI render node.
pub const VAAPI_DEVICE: &str = "/dev/dri/renderD128";

/// Whether `encoder` needs frames uploaded to a VAAPI device.
pub fn needs_vaapi(encoder: &str) -> bool {
    encoder.ends_with("_vaapi")
}

/// The arguments of the probe encode.
pub fn probe_args(encoder: &str) -> Vec<OsString> {
    let mut a: Vec<&str> = vec!["-hide_banner", "-nostdin", "-loglevel", "error"];
    if needs_vaapi(encoder) {
        a.extend(["-vaapi_device", VAAPI_DEVICE]);
    }
    a.extend(["-f", "lavfi", "-i", "color=c=gray:s=640x360:r=30:d=0.2"]);
    if needs_vaapi(encoder) {
        a.extend(["-vf", "format=nv12,hwupload"]);
    }
    a.extend(["-frames:v", "3", "-c:v", encoder, "-f", "null", "-"]);
    a.into_iter().map(OsString::from).collect()
}

/// Encodes a few frames with `encoder`; `Err` carries why it cannot be used
/// (ffmpeg's own words, or why ffmpeg did not start).
pub fn try_encoder(ffmpeg: &Path, encoder: &str) -> Result<(), String> {
    let out = Command::new(ffmpeg)
        .args(probe_args(encoder))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", ffmpeg.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .collect::<Vec<_>>()
        .join("; ");
    Err(if last.is_empty() {
        format!("ffmpeg exited with {}", out.status)
    } else {
        last
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vaapi_probe_uploads_and_others_do_not() {
        let joined = |e: &str| {
            probe_args(e)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(joined("hevc_vaapi").contains("-vaapi_device /dev/dri/renderD128"));
        assert!(joined("hevc_vaapi").contains("hwupload"));
        assert!(!joined("h264_nvenc").contains("hwupload"));
        assert!(joined("h264_nvenc").ends_with("-c:v h264_nvenc -f null -"));
    }
}
