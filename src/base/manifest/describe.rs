//! Describing a video file as a manifest: ffprobe for the video fields,
//! SHA-256 for the checksum, the clock or file metadata for timing, the host
//! for `device.*`.
//!
//! Used by `rig-manifest create`, by rig-receive when an upload comes without
//! a manifest, and by the recovery of a recording whose recorder died.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::base::checksum::{self, FileDigest};
use crate::base::ffmpeg::{self, Probe, ProbeError};
use crate::base::host;
use crate::base::ids::RecordingId;
use crate::base::manifest::{
    self, ChecksumInfo, DeviceInfo, FileInfo, Manifest, ManifestError, RecordingInfo, Resolution,
    Timing, VideoInfo,
};

/// How to fill the fields that the file alone cannot tell.
#[derive(Debug, Clone, Default)]
pub struct DescribeOptions {
    /// The ffprobe binary.
    pub ffprobe: PathBuf,
    /// Recording start, if known; else derived from the file (see [`timing_for`]).
    pub start: Option<jiff::Timestamp>,
    /// Recording end, if known.
    pub end: Option<jiff::Timestamp>,
    /// Clock sync at recording time, if known; else `ntp_synced: false`.
    pub clock: Option<host::ClockSync>,
    /// A digest already computed while the bytes moved; else the file is hashed.
    pub digest: Option<FileDigest>,
    /// Fill `device.*` from this host.
    pub device_from_host: bool,
    /// Target bitrate to record instead of the measured one.
    pub bitrate_mbps: Option<u32>,
}

/// `recording.*`: what the IDs say.
fn recording_info(rec: &RecordingId) -> RecordingInfo {
    RecordingInfo {
        id: rec.to_string(),
        session_id: rec.session.to_string(),
        camera_id: rec.camera.to_string(),
        position: rec.camera.position().to_string(),
        extra: Map::new(),
    }
}

/// `video.*`: what ffprobe says; the bitrate as configured when given.
fn video_info(probe: &Probe, bitrate_mbps: Option<u32>) -> VideoInfo {
    VideoInfo {
        resolution: Resolution {
            width: probe.width,
            height: probe.height,
            extra: Map::new(),
        },
        fps: probe.fps,
        bitrate_mbps: bitrate_mbps.unwrap_or_else(|| probe.bitrate_mbps()),
        duration_sec: round_to(probe.duration_sec, 6),
        extra: Map::new(),
    }
}

/// `device.*`: this host.
fn device_info() -> DeviceInfo {
    DeviceInfo {
        hostname: host::hostname(),
        ip_address: host::ip_address(),
        software_version: Some(host::SOFTWARE_VERSION.into()),
        extra: Map::new(),
    }
}

/// Why a file could not be described.
#[derive(Debug)]
pub enum DescribeError {
    /// ffprobe failed.
    Probe(ProbeError),
    /// Hashing or stat failed.
    Io(std::io::Error),
    /// The result does not validate (e.g. an h263 file is not a valid recording).
    Invalid(ManifestError),
}

impl fmt::Display for DescribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescribeError::Probe(e) => e.fmt(f),
            DescribeError::Io(e) => e.fmt(f),
            DescribeError::Invalid(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DescribeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DescribeError::Probe(e) => Some(e),
            DescribeError::Io(e) => Some(e),
            DescribeError::Invalid(e) => Some(e),
        }
    }
}

/// Start and end of a recording: given values win; a missing one is derived
/// from the other and the duration; with neither, the container's
/// `creation_time` is the start, else the file's mtime is the end.
pub fn timing_for(
    probe: &Probe,
    file_mtime: Option<jiff::Timestamp>,
    start: Option<jiff::Timestamp>,
    end: Option<jiff::Timestamp>,
) -> (jiff::Timestamp, jiff::Timestamp) {
    let duration = jiff::SignedDuration::from_secs_f64(probe.duration_sec.max(0.0));
    let plus = |t: jiff::Timestamp| t.checked_add(duration).unwrap_or(t);
    let minus = |t: jiff::Timestamp| t.checked_sub(duration).unwrap_or(t);
    match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, plus(s)),
        (None, Some(e)) => (minus(e), e),
        (None, None) => {
            let created = probe
                .creation_time
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                // ffmpeg writes 1970 or 1904 when it knows no time; ignore those.
                .filter(|t| t.as_second() > 86_400 * 365);
            match (created, file_mtime) {
                (Some(s), _) => (s, plus(s)),
                (None, Some(e)) => (minus(e), e),
                (None, None) => {
                    let now = jiff::Timestamp::now();
                    (minus(now), now)
                }
            }
        }
    }
}

/// Builds a validated manifest for `file` as recording `rec`.
pub fn describe(
    file: &Path,
    rec: &RecordingId,
    opts: &DescribeOptions,
) -> Result<Manifest, DescribeError> {
    let probe = ffmpeg::probe(&opts.ffprobe, file).map_err(DescribeError::Probe)?;
    let meta = std::fs::metadata(file)
        .map_err(|e| DescribeError::Io(crate::base::fsx::with_path(file)(e)))?;
    let digest = match &opts.digest {
        Some(d) => d.clone(),
        None => checksum::hash_file(file).map_err(DescribeError::Io)?,
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok());
    let (start, end) = timing_for(&probe, mtime, opts.start, opts.end);

    let manifest = Manifest {
        version: manifest::MANIFEST_VERSION.into(),
        recording: recording_info(rec),
        file: file_info(rec, &digest, &probe),
        video: video_info(&probe, opts.bitrate_mbps),
        timing: timing_info(start, end, opts.clock.clone()),
        checksum: ChecksumInfo {
            algorithm: "sha256".into(),
            value: digest.sha256,
            extra: Map::new(),
        },
        device: opts.device_from_host.then(device_info),
        quality: None,
        extra: Map::new(),
    };
    manifest.validate().map_err(DescribeError::Invalid)?;
    Ok(manifest)
}

/// The manifest's `file`: the recording's own name, what was hashed, what
/// was probed.
fn file_info(rec: &RecordingId, digest: &FileDigest, probe: &Probe) -> FileInfo {
    FileInfo {
        name: rec.video_file_name(),
        size_bytes: digest.size,
        container: probe.container.clone(),
        codec: probe.codec.clone(),
        extra: Map::new(),
    }
}

/// The manifest's `timing`: the span, and the clock's sync state if known.
fn timing_info(
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    clock: Option<host::ClockSync>,
) -> Timing {
    Timing {
        start_time: manifest::format_time(start),
        end_time: manifest::format_time(end),
        ntp_synced: clock.as_ref().is_some_and(|c| c.synced),
        sync_offset_ms: clock.and_then(|c| c.offset_ms).map(|v| round_to(v, 3)),
        extra: Map::new(),
    }
}

/// Rounds to `digits` decimals, so manifests do not carry float noise.
pub fn round_to(v: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (v * scale).round() / scale
}

/// Marks a manifest as rebuilt after a crash: `"recovered": true` at the top
/// level (an extra field, kept by every reader).
pub fn mark_recovered(m: &mut Manifest) {
    m.extra.insert("recovered".into(), Value::Bool(true));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(duration: f64, created: Option<&str>) -> Probe {
        Probe {
            width: 320,
            height: 180,
            fps: 15,
            fps_exact: 15.0,
            codec: "h264".into(),
            bitrate_bps: Some(100_000),
            duration_sec: duration,
            container: "mp4".into(),
            creation_time: created.map(str::to_string),
            has_audio: false,
        }
    }

    fn t(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn timing_rules() {
        let p = probe(10.0, None);
        let (s, e) = timing_for(&p, Some(t("2024-01-01T00:00:10Z")), None, None);
        assert_eq!(
            (s, e),
            (t("2024-01-01T00:00:00Z"), t("2024-01-01T00:00:10Z"))
        );
        let (s, e) = timing_for(&p, None, Some(t("2024-01-01T00:00:00Z")), None);
        assert_eq!(e, t("2024-01-01T00:00:10Z"));
        assert_eq!(s, t("2024-01-01T00:00:00Z"));
        let p = probe(10.0, Some("2023-05-05T10:00:00.000000Z"));
        let (s, _) = timing_for(&p, Some(t("2024-01-01T00:00:10Z")), None, None);
        assert_eq!(s, t("2023-05-05T10:00:00Z"));
        let p = probe(10.0, Some("1970-01-01T00:00:00.000000Z"));
        let (_, e) = timing_for(&p, Some(t("2024-01-01T00:00:10Z")), None, None);
        assert_eq!(
            e,
            t("2024-01-01T00:00:10Z"),
            "epoch creation_time is ignored"
        );
    }
}
