//! Which encoder a codec name means, and whether it works on this machine.
//!
//! `ffmpeg -encoders` lists what the build knows (Debian's lists
//! `h264_nvenc` on machines without an NVIDIA card), not what runs, so the
//! probe encodes a few frames of a lavfi colour to the null muxer. A hardware
//! encoder that needs a device (VAAPI) gets it the way the real encode does.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};

/// The two codec families a panorama can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// H.264 / AVC.
    H264,
    /// H.265 / HEVC.
    H265,
}

impl Family {
    /// The software encoder of the family.
    pub fn software(self) -> &'static str {
        match self {
            Family::H264 => "libx264",
            Family::H265 => "libx265",
        }
    }
}

/// The family of an `output_codec` value, or `None` if it is not one.
pub fn codec_family(codec: &str) -> Option<Family> {
    let named = |rest: &str| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match codec {
        "h264" | "libx264" => Some(Family::H264),
        "h265" | "hevc" | "libx265" => Some(Family::H265),
        c => match (c.strip_prefix("h264_"), c.strip_prefix("hevc_")) {
            (Some(rest), _) if named(rest) => Some(Family::H264),
            (_, Some(rest)) if named(rest) => Some(Family::H265),
            _ => None,
        },
    }
}

/// Whether `codec` names a hardware encoder rather than a family.
pub fn is_hardware(codec: &str) -> bool {
    codec_family(codec).is_some()
        && !matches!(codec, "h264" | "h265" | "hevc" | "libx264" | "libx265")
}

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
