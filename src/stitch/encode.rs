//! The panorama's encoder: software (libx264/libx265) or a configured
//! hardware encoder, probed first and replaced by software, with a warning,
//! when it does not work here.
//!
//! `processing.output_codec` is `h264`, `h265`, or a hardware encoder of
//! either family (`h264_nvenc`, `hevc_vaapi`, `h264_qsv`, `h264_v4l2m2m`,
//! ...). A hardware encoder is tried on a few frames of a lavfi colour
//! before the stitch ([`crate::base::ffmpeg::encoders::try_encoder`]): an ffmpeg
//! build lists `h264_nvenc` whether or not a card is present, and finding
//! out an hour into a match is too late. The x264/x265 preset is passed to
//! software encoders only; hardware encoders take their own defaults.

pub use crate::base::ffmpeg::encoders::{Family, codec_family, is_hardware};
use std::ffi::OsString;
use std::path::Path;

use crate::base::ffmpeg::encoders;

/// The encoder a stitch will use.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderChoice {
    /// The ffmpeg encoder name.
    pub encoder: String,
    /// Its family.
    pub family: Family,
    /// Why the configured hardware encoder was not used, when it was not.
    pub fallback: Option<String>,
}

/// Picks the encoder for `codec`, probing a hardware one with `ffmpeg`.
pub fn choose(ffmpeg: &Path, codec: &str) -> EncoderChoice {
    let family = codec_family(codec).unwrap_or(Family::H264);
    if !is_hardware(codec) {
        return EncoderChoice {
            encoder: family.software().to_string(),
            family,
            fallback: None,
        };
    }
    match encoders::try_encoder(ffmpeg, codec) {
        Ok(()) => EncoderChoice {
            encoder: codec.to_string(),
            family,
            fallback: None,
        },
        Err(why) => EncoderChoice {
            encoder: family.software().to_string(),
            family,
            fallback: Some(format!(
                "processing.output_codec {codec}: the encoder does not work here ({why}); \
                 encoding with {} instead (slower)",
                family.software()
            )),
        },
    }
}

/// Global options that go before the inputs (a VAAPI device).
pub fn device_args(encoder: &str) -> Vec<OsString> {
    if encoders::needs_vaapi(encoder) {
        vec!["-vaapi_device".into(), encoders::VAAPI_DEVICE.into()]
    } else {
        Vec::new()
    }
}

/// What the filter graph's `[v]` goes through before the encoder (upload
/// to the VAAPI device), as a graph suffix from `[v]` to `[venc]`; `None`
/// when `[v]` is encoded as it is.
pub fn upload_filter(encoder: &str) -> Option<&'static str> {
    encoders::needs_vaapi(encoder).then_some("[v]format=nv12,hwupload[venc]")
}

/// The video encoder options: encoder, preset (software only), pixel format
/// and codec tags.
pub fn encoder_args(encoder: &str, family: Family, preset: &str) -> Vec<OsString> {
    let mut a: Vec<&str> = vec!["-c:v", encoder];
    let software = encoder == family.software();
    if software {
        a.extend(["-preset", preset]);
    }
    if !encoders::needs_vaapi(encoder) {
        a.extend(["-pix_fmt", "yuv420p"]);
    }
    if family == Family::H265 {
        a.extend(["-tag:v", "hvc1"]);
    }
    if encoder == "libx265" {
        a.extend(["-x265-params", "log-level=error"]);
    }
    a.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_hardware_names() {
        assert_eq!(codec_family("h264"), Some(Family::H264));
        assert_eq!(codec_family("h265"), Some(Family::H265));
        assert_eq!(codec_family("h264_nvenc"), Some(Family::H264));
        assert_eq!(codec_family("hevc_vaapi"), Some(Family::H265));
        assert_eq!(codec_family("vp9"), None);
        assert_eq!(codec_family("h264_"), None);
        assert_eq!(codec_family("hevc_x;rm"), None);
        assert!(is_hardware("h264_nvenc") && !is_hardware("h264"));
    }

    #[test]
    fn preset_only_for_software_and_upload_only_for_vaapi() {
        let s = |v: Vec<OsString>| {
            v.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(
            s(encoder_args("libx264", Family::H264, "veryfast")),
            "-c:v libx264 -preset veryfast -pix_fmt yuv420p"
        );
        assert_eq!(
            s(encoder_args("h264_nvenc", Family::H264, "veryfast")),
            "-c:v h264_nvenc -pix_fmt yuv420p"
        );
        assert_eq!(
            s(encoder_args("hevc_vaapi", Family::H265, "medium")),
            "-c:v hevc_vaapi -tag:v hvc1"
        );
        assert!(upload_filter("hevc_vaapi").is_some() && upload_filter("libx264").is_none());
        assert_eq!(
            s(device_args("h264_vaapi")),
            "-vaapi_device /dev/dri/renderD128"
        );
    }

    #[test]
    fn a_missing_hardware_encoder_falls_back_with_a_reason() {
        // No ffmpeg at this path: the probe fails, software is chosen.
        let c = choose(Path::new("/nonexistent/ffmpeg"), "h264_nvenc");
        assert_eq!(c.encoder, "libx264");
        let why = c.fallback.unwrap();
        assert!(
            why.contains("h264_nvenc") && why.contains("libx264"),
            "{why}"
        );
        assert_eq!(choose(Path::new("/nonexistent"), "h265").encoder, "libx265");
    }
}
