//! Validation of a manifest as JSON: every field checked, every problem
//! reported at once, each naming its dotted field path.

use serde_json::Value;

use super::{MANIFEST_VERSION, Problem, parse_time};
use crate::base::checksum::Sha256;
use crate::base::ids::{CameraId, Position, RecordingId, SessionId};

/// Collects problems while walking a JSON document.
struct Checker<'a> {
    root: &'a Value,
    problems: Vec<Problem>,
}

impl<'a> Checker<'a> {
    fn report(&mut self, field: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// The value at a dotted path, `None` if any step is missing or not an object.
    fn get(&self, path: &str) -> Option<&'a Value> {
        path.split('.')
            .try_fold(self.root, |v, key| v.as_object()?.get(key))
    }

    /// A required or optional field's value; reports a missing required field.
    /// `null` counts as absent.
    fn field(&mut self, path: &str, required: bool) -> Option<&'a Value> {
        match self.get(path) {
            Some(Value::Null) | None => {
                if required {
                    self.report(path, "is required but missing");
                }
                None
            }
            Some(v) => Some(v),
        }
    }

    fn string(&mut self, path: &str, required: bool) -> Option<&'a str> {
        let v = self.field(path, required)?;
        match v.as_str() {
            Some(s) => Some(s),
            None => {
                self.report(path, "must be a string");
                None
            }
        }
    }

    /// A non-empty string from a fixed set.
    fn one_of(&mut self, path: &str, allowed: &[&str]) -> Option<&'a str> {
        let s = self.string(path, true)?;
        if allowed.contains(&s) {
            Some(s)
        } else {
            self.report(
                path,
                format!("must be one of {}, got {s:?}", allowed.join(", ")),
            );
            None
        }
    }

    /// An unsigned integer; `positive` also rules out zero.
    fn integer(&mut self, path: &str, required: bool, positive: bool, max: u64) -> Option<u64> {
        let v = self.field(path, required)?;
        let kind = if positive { "positive" } else { "non-negative" };
        match v.as_u64() {
            Some(n) if positive && n == 0 => {
                self.report(path, format!("must be a {kind} integer, got 0"));
                None
            }
            Some(n) if n > max => {
                self.report(path, format!("must be at most {max}, got {n}"));
                None
            }
            Some(n) => Some(n),
            None => {
                self.report(path, format!("must be a {kind} integer, got {v}"));
                None
            }
        }
    }

    /// A finite number; `positive` rules out zero and below, `non_negative` below zero.
    fn number(&mut self, path: &str, required: bool, min: Option<f64>, min_exclusive: bool) {
        let Some(v) = self.field(path, required) else {
            return;
        };
        match v.as_f64() {
            Some(n) if !n.is_finite() => self.report(path, "must be a finite number"),
            Some(n) => {
                if let Some(min) = min {
                    if min_exclusive && n <= min {
                        self.report(path, format!("must be greater than {min}, got {n}"));
                    } else if !min_exclusive && n < min {
                        self.report(path, format!("must be at least {min}, got {n}"));
                    }
                }
            }
            None => self.report(path, format!("must be a number, got {v}")),
        }
    }

    fn boolean(&mut self, path: &str, required: bool) {
        if let Some(v) = self.field(path, required)
            && !v.is_boolean()
        {
            self.report(path, format!("must be true or false, got {v}"));
        }
    }

    fn time(&mut self, path: &str) -> Option<jiff::Timestamp> {
        let s = self.string(path, true)?;
        match parse_time(s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.report(path, e);
                None
            }
        }
    }

    /// An optional block must be an object when present.
    fn block(&mut self, path: &str, required: bool) -> bool {
        match self.field(path, required) {
            Some(Value::Object(_)) => true,
            Some(other) => {
                self.report(path, format!("must be an object, got {other}"));
                false
            }
            None => false,
        }
    }
}

/// Every problem of a manifest document, in field order. Empty means valid.
pub fn validate_value(root: &Value) -> Vec<Problem> {
    let mut c = Checker {
        root,
        problems: Vec::new(),
    };
    if !root.is_object() {
        c.report("(document)", "must be a JSON object");
        return c.problems;
    }
    c.version();
    let (session, camera) = c.recording();
    c.file(session.as_ref(), camera);
    c.video();
    c.timing();
    c.checksum();
    c.device();
    c.quality();
    c.problems
}

/// The blocks of a manifest, one method each.
impl Checker<'_> {
    /// `version`: 1.x.
    fn version(&mut self) {
        if let Some(version) = self.string("version", true)
            && version != MANIFEST_VERSION
            && !version.starts_with("1.")
        {
            self.report(
                "version",
                format!("unsupported manifest version {version:?}; this software reads 1.x"),
            );
        }
    }

    /// `recording.*`; returns the session and camera when they parse.
    fn recording(&mut self) -> (Option<SessionId>, Option<CameraId>) {
        let mut session = None;
        let mut camera = None;
        if !self.block("recording", true) {
            return (session, camera);
        }
        if let Some(s) = self.string("recording.session_id", true) {
            match SessionId::parse(s) {
                Ok(id) => session = Some(id),
                Err(e) => self.report("recording.session_id", e.to_string()),
            }
        }
        if let Some(s) = self.string("recording.camera_id", true) {
            match CameraId::parse(s) {
                Ok(id) => camera = Some(id),
                Err(e) => self.report("recording.camera_id", e.to_string()),
            }
        }
        let id = self.string("recording.id", true);
        if let (Some(id), Some(session), Some(camera)) = (id, &session, camera) {
            let want = RecordingId::new(session.clone(), camera).to_string();
            if id != want {
                self.report(
                    "recording.id",
                    format!("must be session_id + \"_\" + camera_id = {want:?}, got {id:?}"),
                );
            }
        }
        self.position(camera);
        (session, camera)
    }

    /// `recording.position`: a position, and the camera's.
    fn position(&mut self, camera: Option<CameraId>) {
        let Some(p) = self.string("recording.position", true) else {
            return;
        };
        match (Position::parse(p), camera) {
            (Err(e), _) => self.report("recording.position", e.to_string()),
            (Ok(pos), Some(cam)) if pos != cam.position() => self.report(
                "recording.position",
                format!(
                    "{cam} is mounted {}, but position says {pos:?}",
                    cam.position().as_str()
                ),
            ),
            _ => {}
        }
    }

    /// `file.*`: the name the IDs give, size, container, codec.
    fn file(&mut self, session: Option<&SessionId>, camera: Option<CameraId>) {
        if !self.block("file", true) {
            return;
        }
        if let Some(name) = self.string("file.name", true)
            && let (Some(session), Some(camera)) = (session, camera)
        {
            let want = RecordingId::new(session.clone(), camera).video_file_name();
            if name != want {
                self.report("file.name", format!("must be {want:?}, got {name:?}"));
            }
        }
        self.integer("file.size_bytes", true, true, u64::MAX);
        self.one_of("file.container", &["mp4"]);
        self.one_of("file.codec", &["h264", "h265"]);
    }

    /// `video.*`.
    fn video(&mut self) {
        if !self.block("video", true) {
            return;
        }
        if self.block("video.resolution", true) {
            self.integer("video.resolution.width", true, true, u64::from(u32::MAX));
            self.integer("video.resolution.height", true, true, u64::from(u32::MAX));
        }
        self.integer("video.fps", true, true, u64::from(u32::MAX));
        self.integer("video.bitrate_mbps", true, false, u64::from(u32::MAX));
        self.number("video.duration_sec", true, Some(0.0), true);
    }

    /// `timing.*`: the end not before the start.
    fn timing(&mut self) {
        if !self.block("timing", true) {
            return;
        }
        let start = self.time("timing.start_time");
        let end = self.time("timing.end_time");
        if let (Some(start), Some(end)) = (start, end)
            && end < start
        {
            self.report("timing.end_time", "must not be before timing.start_time");
        }
        self.boolean("timing.ntp_synced", true);
        self.number("timing.sync_offset_ms", false, None, false);
    }

    /// `checksum.*`: SHA-256, as 64 hex characters.
    fn checksum(&mut self) {
        if !self.block("checksum", true) {
            return;
        }
        self.one_of("checksum.algorithm", &["sha256"]);
        if let Some(v) = self.string("checksum.value", true)
            && v.parse::<Sha256>().is_err()
        {
            self.report(
                "checksum.value",
                "must be 64 hex characters (a SHA-256 digest)",
            );
        }
    }

    /// `device.*` (optional block, optional fields).
    fn device(&mut self) {
        if !self.block("device", false) {
            return;
        }
        self.string("device.hostname", false);
        if let Some(ip) = self.string("device.ip_address", false)
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            self.report(
                "device.ip_address",
                format!("must be an IPv4 or IPv6 address, got {ip:?}"),
            );
        }
        self.string("device.software_version", false);
    }

    /// `quality.*` (optional block, optional fields).
    fn quality(&mut self) {
        if !self.block("quality", false) {
            return;
        }
        self.integer("quality.dropped_frames", false, false, u64::MAX);
        self.number("quality.temperature_avg_c", false, None, false);
        self.number("quality.temperature_max_c", false, None, false);
    }
}
