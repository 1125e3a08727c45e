//! The checks serde cannot express: ranges, names, sizes and enums of the
//! config's values, each failure naming its key and what it must be.

use std::fmt;

use super::{Config, ProcessingConfig};

/// A value the config's keys cannot take: the message names the key and
/// says what it must be (`offload.retry_count: must be at least 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidValue(pub String);

impl fmt::Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidValue {}

impl From<String> for InvalidValue {
    fn from(message: String) -> InvalidValue {
        InvalidValue(message)
    }
}

impl From<&str> for InvalidValue {
    fn from(message: &str) -> InvalidValue {
        InvalidValue(message.to_string())
    }
}

/// The zone `server.naive_time_zone` names: `local` (this machine's zone),
/// `UTC`, or an IANA name such as `Europe/Paris`.
pub fn zone_named(name: &str) -> Result<jiff::tz::TimeZone, String> {
    use jiff::tz::TimeZone;
    match name {
        "local" => Ok(TimeZone::system()),
        "UTC" | "utc" => Ok(TimeZone::UTC),
        other => TimeZone::get(other).map_err(|e| {
            format!(
                "server.naive_time_zone: {other:?} is not \"local\", \"UTC\" or a time zone \
                 name such as Europe/Paris ({e})"
            )
        }),
    }
}

impl ProcessingConfig {
    /// The values rig-stitch cannot work with, each named by its key: odd
    /// overlap or width (4:2:0), a preset or codec that is no name, an
    /// unknown sync mode, a search or window that is not positive.
    pub fn check(&self) -> Result<(), InvalidValue> {
        let bad = |m: String| Err(InvalidValue(m));
        if !self.stitch_overlap_px.is_multiple_of(2) {
            return bad(format!(
                "processing.stitch_overlap_px: must be even (4:2:0 chroma has one sample \
                 per two columns), got {}",
                self.stitch_overlap_px
            ));
        }
        if !self.output_width.is_multiple_of(2) {
            return bad(format!(
                "processing.output_width: must be even (or 0 for no cap), got {}",
                self.output_width
            ));
        }
        let preset = &self.output_preset;
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if preset.is_empty() || !preset.chars().all(word) {
            return bad(format!(
                "processing.output_preset: must be an x264/x265 preset name such as \
                 medium or veryfast, got {preset:?}"
            ));
        }
        if crate::base::ffmpeg::encoders::codec_family(&self.output_codec).is_none() {
            return bad(format!(
                "processing.output_codec: must be h264, h265 or a hardware encoder of \
                 either (h264_nvenc, hevc_vaapi, ...), got {:?}",
                self.output_codec
            ));
        }
        self.check_sync()
    }

    /// The `processing.sync_*` keys.
    fn check_sync(&self) -> Result<(), InvalidValue> {
        if !matches!(self.sync_mode.as_str(), "content" | "clock") {
            return Err(InvalidValue(format!(
                "processing.sync_mode: must be content or clock, got {:?}",
                self.sync_mode
            )));
        }
        for (key, v) in [
            ("processing.sync_search_sec", self.sync_search_sec),
            ("processing.sync_window_sec", self.sync_window_sec),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(InvalidValue(format!(
                    "{key}: must be a number > 0, got {v}"
                )));
            }
        }
        Ok(())
    }
}

impl Config {
    /// Range and enum checks serde cannot express; messages name the key.
    pub fn check(&self) -> Result<(), InvalidValue> {
        self.check_offload()?;
        self.check_sizes()?;
        zone_named(&self.server.naive_time_zone)?;
        self.check_server()?;
        let codec = &self.recording.codec;
        if codec != "h264" && codec != "h265" {
            return Err(InvalidValue(format!(
                "recording.codec: must be h264 or h265, got {codec:?}"
            )));
        }
        self.check_processing()?;
        self.node.camera().map_err(|e| InvalidValue(e.message))?;
        self.check_recording()
    }

    /// `offload.*`: retries, chunks, the server URL.
    fn check_offload(&self) -> Result<(), InvalidValue> {
        let o = &self.offload;
        if o.retry_count == 0 {
            return Err("offload.retry_count: must be at least 1".into());
        }
        if !(o.retry_delay_sec.is_finite() && o.retry_delay_sec >= 0.0) {
            return Err("offload.retry_delay_sec: must be a number >= 0".into());
        }
        if o.chunk_size_kb == 0 {
            return Err("offload.chunk_size_kb: must be at least 1".into());
        }
        if !(o.server_url.starts_with("http://") || o.server_url.starts_with("https://")) {
            return Err(InvalidValue(format!(
                "offload.server_url: must start with http:// or https://, got {:?}",
                o.server_url
            )));
        }
        Ok(())
    }

    /// The `_gb` sizes: numbers >= 0.
    fn check_sizes(&self) -> Result<(), InvalidValue> {
        for (key, v) in [
            ("storage.min_free_space_gb", self.storage.min_free_space_gb),
            ("server.max_upload_size_gb", self.server.max_upload_size_gb),
            ("node.min_free_space_gb", self.node.min_free_space_gb),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(InvalidValue(format!(
                    "{key}: must be a number >= 0, got {v}"
                )));
            }
        }
        Ok(())
    }

    /// `server.*` (and the API key both sides share): TLS pairs, workers,
    /// timeouts and limits of at least 1.
    fn check_server(&self) -> Result<(), InvalidValue> {
        let s = &self.server;
        if s.tls_cert.is_some() != s.tls_key.is_some() {
            return Err("server.tls_cert/tls_key: set both (HTTPS) or neither (HTTP)".into());
        }
        if self
            .offload
            .api_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            return Err("offload.api_key: empty; remove it or set the key".into());
        }
        if s.workers == 0 {
            return Err("server.workers: must be at least 1".into());
        }
        if s.upload_timeout_sec == 0 || s.stall_timeout_sec == 0 {
            return Err("server.upload_timeout_sec/stall_timeout_sec: must be at least 1".into());
        }
        for (key, v) in [
            ("server.header_timeout_sec", s.header_timeout_sec),
            ("server.idle_timeout_sec", s.idle_timeout_sec),
            ("server.send_timeout_sec", s.send_timeout_sec),
            ("server.small_body_timeout_sec", s.small_body_timeout_sec),
            ("server.max_connections", s.max_connections as u64),
        ] {
            if v == 0 {
                return Err(InvalidValue(format!("{key}: must be at least 1")));
            }
        }
        Ok(())
    }

    /// `recording.*`: positive sizes and rates.
    fn check_recording(&self) -> Result<(), InvalidValue> {
        let r = &self.recording;
        if r.width == 0 || r.height == 0 || r.fps == 0 || r.bitrate_mbps == 0 {
            return Err("recording.width/height/fps/bitrate_mbps: must be positive".into());
        }
        for (key, v) in [
            ("recording.fragment_sec", r.fragment_sec),
            ("recording.fsync_interval_sec", r.fsync_interval_sec),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(InvalidValue(format!(
                    "{key}: must be a number > 0, got {v}"
                )));
            }
        }
        Ok(())
    }

    /// The `processing:` keys' values ([`ProcessingConfig::check`]).
    fn check_processing(&self) -> Result<(), InvalidValue> {
        self.processing.check()
    }
}
