//! The recording manifest of PROTOCOL.md: types, validation, JSON I/O.
//!
//! Validation works on the JSON document itself, not on the typed structs, so
//! that it can report *every* problem at once, each with its field path
//! (`video.resolution.width: must be a positive integer`), where a typed
//! parse would stop at the first. [`Manifest::from_json`] validates and then
//! parses; [`Manifest::validate`] checks a manifest built in code before it is
//! written. Fields this version does not know are kept on a round trip (each
//! struct carries an `extra` map), and output keeps the key order of the
//! PROTOCOL.md example.

pub mod describe;
pub mod flat;
pub mod repair;
mod validate;
pub mod verify;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::base::checksum::Sha256;
use crate::base::ids::{CameraId, RecordingId, SessionId};

pub use validate::validate_value;

/// The manifest format version this code writes.
pub const MANIFEST_VERSION: &str = "1.0";

/// A whole manifest. Field order is the key order of PROTOCOL.md's example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version, `"1.0"`.
    pub version: String,
    /// Which recording this is.
    pub recording: RecordingInfo,
    /// The video file.
    pub file: FileInfo,
    /// Video stream properties.
    pub video: VideoInfo,
    /// When it was recorded.
    pub timing: Timing,
    /// The file's digest.
    pub checksum: ChecksumInfo,
    /// The Pi that recorded it (optional block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
    /// Recording quality figures (optional block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityInfo>,
    /// Fields this version does not know; kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `recording.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// `{session_id}_{camera_id}`.
    pub id: String,
    /// Session identifier.
    pub session_id: String,
    /// `CAM_L`, `CAM_C` or `CAM_R`.
    pub camera_id: String,
    /// `left`, `center` or `right`, matching the camera.
    pub position: String,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `file.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    /// `{recording.id}.mp4`.
    pub name: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// Always `mp4`.
    pub container: String,
    /// `h264` or `h265`.
    pub codec: String,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `video.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    /// Frame size.
    pub resolution: Resolution,
    /// Frames per second, as an integer.
    pub fps: u32,
    /// Target bitrate in Mbps.
    pub bitrate_mbps: u32,
    /// Duration in seconds.
    pub duration_sec: f64,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `video.resolution.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `timing.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// RFC 3339 UTC start, microseconds and `Z` (see [`format_time`]).
    pub start_time: String,
    /// RFC 3339 UTC end, not before `start_time`.
    pub end_time: String,
    /// Whether the clock was NTP-synchronized.
    pub ntp_synced: bool,
    /// Offset from NTP time in milliseconds, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_offset_ms: Option<f64>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `checksum.*`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChecksumInfo {
    /// Always `sha256`.
    pub algorithm: String,
    /// The digest (64 hex characters in the JSON).
    pub value: Sha256,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `device.*`, all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Pi hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Pi IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// Version of the software that wrote the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `quality.*`, all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QualityInfo {
    /// Frames the encoder dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_frames: Option<u64>,
    /// Average CPU temperature while recording, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_avg_c: Option<f64>,
    /// Highest CPU temperature while recording, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_max_c: Option<f64>,
    /// Unknown fields, kept.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One validation failure: the field's dotted path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path such as `video.resolution.width`; `(document)` for the whole.
    pub field: String,
    /// What is wrong, phrased so the fix is obvious.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why a manifest could not be read, parsed or accepted.
#[derive(Debug)]
pub enum ManifestError {
    /// The file could not be read or written.
    Io {
        /// The manifest file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The text is not JSON.
    Json(serde_json::Error),
    /// The JSON is a manifest with problems; all of them are listed.
    Invalid(Vec<Problem>),
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ManifestError::Json(e) => write!(f, "not valid JSON: {e}"),
            ManifestError::Invalid(problems) => {
                write!(f, "invalid manifest ({} problem", problems.len())?;
                if problems.len() != 1 {
                    f.write_str("s")?;
                }
                f.write_str("): ")?;
                for (i, p) in problems.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ManifestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ManifestError::Io { source, .. } => Some(source),
            ManifestError::Json(e) => Some(e),
            ManifestError::Invalid(_) => None,
        }
    }
}

/// Formats a timestamp the way manifests carry it: UTC, microseconds, `Z`
/// (`2024-03-15T14:00:00.123456Z`).
pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

/// What [`parse_time`] says about a time it refuses.
const TIME_RULE: &str = "must be an RFC 3339 time like 2024-03-15T14:00:00.123456Z \
                         (YYYY-MM-DDTHH:MM:SS[.fraction] then Z or +HH:MM/-HH:MM)";

/// Parses an RFC 3339 timestamp as PROTOCOL.md writes it:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (manifests we write use `Z`).
///
/// jiff's own parser is lenient ISO 8601: it takes a space for `T`, the
/// basic format `20240315T140000Z`, times without minutes or seconds and
/// `[Zone]` annotations. Other readers of a manifest (the peer server, a
/// Python script) may not, so the shape is checked first and jiff only
/// judges the values (month 13, second 61).
pub fn parse_time(s: &str) -> Result<jiff::Timestamp, String> {
    check_time_shape(s).map_err(|why| format!("{TIME_RULE}; {why}, got {s:?}"))?;
    s.parse::<jiff::Timestamp>()
        .map_err(|e| format!("{TIME_RULE} ({e})"))
}

/// Checks the character shape of an RFC 3339 time, saying what is off.
fn check_time_shape(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    let date_ok = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10);
    if !date_ok {
        return Err("the date must be YYYY-MM-DD");
    }
    if b.get(10) != Some(&b'T') {
        return Err("date and time must be joined by an upper-case T");
    }
    let time_ok = digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    if !time_ok {
        return Err("the time must be HH:MM:SS");
    }
    let mut rest = &b[19..];
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Err("a fraction of a second needs digits after the dot");
        }
        rest = &frac[n..];
    }
    let offset_ok = rest == b"Z"
        || (rest.len() == 6
            && (rest[0] == b'+' || rest[0] == b'-')
            && rest[1..3].iter().all(u8::is_ascii_digit)
            && rest[3] == b':'
            && rest[4..6].iter().all(u8::is_ascii_digit));
    if !offset_ok {
        return Err("the time must end in Z or an offset +HH:MM/-HH:MM, and nothing after it");
    }
    Ok(())
}

impl Manifest {
    /// Parses and validates manifest JSON; every problem is reported at once.
    pub fn from_json(text: &str) -> Result<Manifest, ManifestError> {
        let value: Value = serde_json::from_str(text).map_err(ManifestError::Json)?;
        Manifest::from_value(value)
    }

    /// Validates a JSON value and converts it into a manifest.
    pub fn from_value(value: Value) -> Result<Manifest, ManifestError> {
        let problems = validate_value(&value);
        if !problems.is_empty() {
            return Err(ManifestError::Invalid(problems));
        }
        // Validation checked every type the structs need, so this cannot
        // fail in practice; if it ever does, report it as a problem anyway.
        serde_json::from_value(value).map_err(|e| {
            ManifestError::Invalid(vec![Problem {
                field: "(document)".into(),
                message: e.to_string(),
            }])
        })
    }

    /// Reads, parses and validates a manifest file.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let text = fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::from_json(&text)
    }

    /// Every problem of this manifest (empty when valid).
    pub fn problems(&self) -> Vec<Problem> {
        match serde_json::to_value(self) {
            Ok(v) => validate_value(&v),
            Err(e) => vec![Problem {
                field: "(document)".into(),
                message: e.to_string(),
            }],
        }
    }

    /// Ok when valid, else all problems.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Invalid(problems))
        }
    }

    /// Pretty JSON with a trailing newline, in the example's key order.
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain structs, strings and numbers cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Validates, then writes atomically (temp, fsync, rename) to `path`,
    /// creating parent directories.
    pub fn write_atomic(&self, path: &Path) -> Result<(), ManifestError> {
        self.validate()?;
        crate::base::fsx::atomic_write(path, self.to_json_pretty().as_bytes()).map_err(|source| {
            ManifestError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// The recording ID, parsed from the validated fields.
    pub fn recording_id(&self) -> Result<RecordingId, crate::base::ids::IdError> {
        let session = SessionId::parse(&self.recording.session_id)?;
        let camera = CameraId::parse(&self.recording.camera_id)?;
        Ok(RecordingId::new(session, camera))
    }

    /// `timing.start_time` corrected by `sync_offset_ms` when present: the
    /// best estimate of the true instant the first frame was written.
    ///
    /// The offset is that of the local clock from NTP time (chrony's "system
    /// time" sign: positive means the local clock is ahead), so the true time
    /// is local minus offset.
    pub fn corrected_start(&self) -> Result<jiff::Timestamp, String> {
        let start = parse_time(&self.timing.start_time)?;
        let offset_us = (self.timing.sync_offset_ms.unwrap_or(0.0) * 1000.0).round() as i64;
        start
            .checked_sub(jiff::SignedDuration::from_micros(offset_us))
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md's example, with a real-looking digest in place of "abc123def456...".
    pub(crate) const EXAMPLE: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/protocol-example.json"
    ));

    #[test]
    fn example_is_valid_and_round_trips_byte_for_byte() {
        let m = Manifest::from_json(EXAMPLE).unwrap();
        assert_eq!(m.recording.position, "center");
        assert_eq!(m.to_json_pretty(), EXAMPLE);
    }

    #[test]
    fn an_uppercase_digest_is_the_same_digest_and_is_written_lowercase() {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        let lower = "ab".repeat(32);
        v["checksum"]["value"] = Value::from(lower.to_uppercase());
        let m = Manifest::from_json(&v.to_string()).unwrap();
        assert_eq!(m.checksum.value.to_string(), lower);
        assert!(m.to_json_pretty().contains(&lower));
    }

    #[test]
    fn unknown_fields_survive() {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["video"]["hdr"] = Value::Bool(true);
        v["zz_top"] = Value::from("kept");
        let m = Manifest::from_value(v).unwrap();
        let out: Value = serde_json::from_str(&m.to_json_pretty()).unwrap();
        assert_eq!(out["video"]["hdr"], Value::Bool(true));
        assert_eq!(out["zz_top"], Value::from("kept"));
    }

    #[test]
    fn reports_all_problems_at_once() {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["video"]["fps"] = Value::from(-1);
        v["file"]["codec"] = Value::from("vp9");
        v["checksum"].as_object_mut().unwrap().remove("value");
        let fields: Vec<String> = match Manifest::from_value(v) {
            Err(ManifestError::Invalid(p)) => p.into_iter().map(|p| p.field).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(fields, ["file.codec", "video.fps", "checksum.value"]);
    }

    #[test]
    fn time_format() {
        let t: jiff::Timestamp = "2024-03-15T14:00:00.123456789Z".parse().unwrap();
        assert_eq!(format_time(t), "2024-03-15T14:00:00.123456Z");
        let t: jiff::Timestamp = "2024-03-15T14:00:00Z".parse().unwrap();
        assert_eq!(format_time(t), "2024-03-15T14:00:00.000000Z");
    }

    #[test]
    fn parse_time_takes_rfc3339_only() {
        for ok in [
            "2024-03-15T14:00:00Z",
            "2024-03-15T14:00:00.123456Z",
            "2024-03-15T14:00:00.1Z",
            "2024-03-15T16:00:00+02:00",
            "2024-03-15T09:00:00.5-05:00",
        ] {
            assert!(parse_time(ok).is_ok(), "{ok}: {:?}", parse_time(ok));
        }
        assert_eq!(
            parse_time("2024-03-15T16:00:00+02:00").unwrap(),
            parse_time("2024-03-15T14:00:00Z").unwrap()
        );
        for (bad, why) in [
            ("2024-03-15 14:00:00Z", "upper-case T"),
            ("2024-03-15t14:00:00Z", "upper-case T"),
            ("20240315T140000Z", "YYYY-MM-DD"),
            ("2024-03-15T14Z", "HH:MM:SS"),
            ("2024-03-15T14:00Z", "HH:MM:SS"),
            ("2024-03-15T14:00:00Z[Europe/Paris]", "nothing after it"),
            (
                "2024-03-15T14:00:00+02:00[Europe/Paris]",
                "nothing after it",
            ),
            ("2024-03-15T14:00:00", "end in Z"),
            ("2024-03-15T14:00:00+0200", "end in Z"),
            ("2024-03-15T14:00:00.Z", "digits after the dot"),
            ("2024-03-15T14:00:00z", "end in Z"),
            ("2024-13-15T14:00:00Z", "RFC 3339"),
            ("", "YYYY-MM-DD"),
            ("2024-03-15T14:00:0\u{e9}Z", "HH:MM:SS"),
        ] {
            let err = parse_time(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn corrected_start_subtracts_offset() {
        let mut m = Manifest::from_json(EXAMPLE).unwrap();
        m.timing.sync_offset_ms = Some(500.0);
        assert_eq!(
            format_time(m.corrected_start().unwrap()),
            "2024-03-15T13:59:59.623456Z"
        );
    }
}
