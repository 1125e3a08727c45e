//! The upload's `manifest` field, normalized: integrity strict, metadata
//! tolerant (PROTOCOL-EXTENSIONS.md "Manifests from other clients").
//!
//! * absent, `""`, `null` or `{}`: no manifest; the server describes the
//!   file with ffprobe, as for a `curl -F` upload.
//! * a valid PROTOCOL.md manifest: stored as sent.
//! * a flat manifest (the Python reference client's): translated
//!   ([`crate::base::manifest::flat`]), video fields from ffprobe.
//! * anything else (invalid, not JSON, not an object): repaired
//!   ([`crate::base::manifest::repair`]), every problem listed.
//!
//! Refused with 400 `invalid_manifest`, the field named and nothing stored:
//! a manifest whose session, camera or checksum contradicts the form's, so
//! that stored metadata never describes other bytes than the file's.
//!
//! Whenever the stored `manifest.json` is not the client's text as sent,
//! that text is kept verbatim as `manifest.client.json` and the problems go
//! to the upload reply's `manifest_warnings`, the log, and the stored
//! manifest's `normalized` block.

use serde_json::{Map, Value, json};

use super::ApiError;
use crate::base::checksum::Sha256;
use crate::base::ids::RecordingId;
use crate::base::layout::SERVER_CLIENT_MANIFEST;
use crate::base::manifest::Manifest;
use crate::base::manifest::flat::{self, ZoneRule};
use crate::base::manifest::repair;
use crate::base::protocol::code;

/// A field too bulky for `manifest.json`; it stays in the client's original.
const BULKY: &str = "snapshot_base64";

/// What the `manifest` field held.
#[derive(Debug)]
pub enum Incoming {
    /// No manifest: absent, `""`, `null` or `{}`.
    Absent,
    /// A valid PROTOCOL.md manifest and its text.
    Valid(Box<Manifest>, String),
    /// A flat manifest and its text.
    Flat(Map<String, Value>, String),
    /// Anything else and its text; `note` says why it is no JSON object.
    Repair(Value, String, Option<String>),
}

/// The manifest to store and what was found on the way.
#[derive(Debug, Default)]
pub struct Settled {
    /// `None`: no manifest came (the stored one or ffprobe's is used).
    pub manifest: Option<Manifest>,
    /// The problems found, for the reply and the log.
    pub warnings: Vec<String>,
    /// The client's text, to keep verbatim, when `manifest` differs from it.
    pub original: Option<String>,
}

impl Incoming {
    /// Reads the field; 400 when it contradicts the form's IDs or checksum.
    pub fn read(
        text: Option<&str>,
        rec: &RecordingId,
        checksum: &Sha256,
    ) -> Result<Self, ApiError> {
        let Some(text) = text.filter(|t| !matches!(t.trim(), "" | "null" | "{}")) else {
            return Ok(Incoming::Absent);
        };
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let note = format!("manifest: not valid JSON ({e}); ignored");
                return Ok(Incoming::Repair(Value::Null, text.into(), Some(note)));
            }
        };
        let Value::Object(map) = value else {
            let note = format!("manifest: not a JSON object, got {value:.40}; ignored");
            return Ok(Incoming::Repair(Value::Null, text.into(), Some(note)));
        };
        if map.is_empty() {
            return Ok(Incoming::Absent);
        }
        let value = Value::Object(map);
        let flat = flat::is_flat(&value);
        contradiction(&value, flat, rec, checksum)?;
        let value = match value {
            Value::Object(map) if flat => return Ok(Incoming::Flat(map, text.into())),
            other => other,
        };
        if value.get(BULKY).is_none()
            && let Ok(m) = Manifest::from_value(value.clone())
        {
            return Ok(Incoming::Valid(Box::new(m), text.into()));
        }
        Ok(Incoming::Repair(value, text.into(), None))
    }

    /// The manifest to store for `size` verified bytes; `describe` is the
    /// server's own description of them (ffprobe), called only when needed.
    pub fn settle(
        self,
        size: u64,
        rule: &ZoneRule,
        describe: impl FnOnce() -> Result<Manifest, ApiError>,
    ) -> Result<Settled, ApiError> {
        let (repaired, text) = match self {
            Incoming::Absent => return Ok(Settled::default()),
            Incoming::Valid(m, _) if m.file.size_bytes == size => {
                return Ok(Settled {
                    manifest: Some(*m),
                    ..Settled::default()
                });
            }
            Incoming::Valid(m, text) => {
                let value = serde_json::to_value(&m).unwrap_or(Value::Null);
                (repair::repair(&value, &describe()?, true), text)
            }
            Incoming::Flat(map, text) => {
                let base = describe()?;
                let t = flat::translate(&map, rule, &base);
                let mut r = repair::repair(&t.nested, &base, false);
                r.problems.splice(0..0, t.notes);
                (r, text)
            }
            Incoming::Repair(value, text, note) => (repair_other(value, note, &describe()?), text),
        };
        Ok(normalized(repaired, text))
    }
}

/// Repairs a manifest that is neither valid nor flat against the server's
/// description; `note` (why it is no JSON object) leads its problems.
fn repair_other(mut value: Value, note: Option<String>, base: &Manifest) -> repair::Repaired {
    match &mut value {
        Value::Object(m) => drop(m.remove(BULKY)),
        // Not an object: nothing of it is used (`note` says why).
        other => *other = Value::Object(Map::new()),
    }
    let mut r = repair::repair(&value, base, note.is_none());
    r.problems.splice(0..0, note);
    r
}

/// The repaired manifest to store, marked `normalized` with its problems,
/// and the client's `text` to keep beside it.
fn normalized(repaired: repair::Repaired, text: String) -> Settled {
    let mut m = repaired.manifest;
    m.extra.remove(BULKY);
    m.extra.insert(
        "normalized".into(),
        json!({"client_manifest": SERVER_CLIENT_MANIFEST, "problems": repaired.problems}),
    );
    Settled {
        manifest: Some(m),
        warnings: repaired.problems,
        original: Some(text),
    }
}

/// 400 when the manifest's session, camera or checksum is not the form's
/// (absent, `null` or empty ones are missing, not contradicting).
fn contradiction(
    v: &Value,
    flat: bool,
    rec: &RecordingId,
    checksum: &Sha256,
) -> Result<(), ApiError> {
    let (session, camera) = if flat {
        ("/session_id", "/camera_id")
    } else {
        ("/recording/session_id", "/recording/camera_id")
    };
    let mut found: Vec<String> = [
        (session, "session_id", rec.session.as_str()),
        (camera, "camera_id", rec.camera.as_str()),
    ]
    .into_iter()
    .filter_map(|(pointer, form_name, want)| id_mismatch(v, pointer, form_name, want))
    .collect();
    found.extend(checksum_mismatch(v, checksum));
    if found.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        400,
        code::INVALID_MANIFEST,
        format!(
            "the manifest describes another recording than this upload: {}; nothing was stored",
            found.join("; ")
        ),
    ))
}

/// What contradicts the form's `want` at `pointer`, if anything (absent,
/// `null` or empty is no contradiction).
fn id_mismatch(v: &Value, pointer: &str, form_name: &str, want: &str) -> Option<String> {
    match v.pointer(pointer) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) if s == want => None,
        Some(other) => Some(format!(
            "{} is {other} but the form's {form_name} is {want:?}",
            pointer.trim_start_matches('/').replace('/', ".")
        )),
    }
}

/// What contradicts the form's checksum in `checksum.value`, if anything.
fn checksum_mismatch(v: &Value, checksum: &Sha256) -> Option<String> {
    match v.pointer("/checksum/value") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) if s.parse::<Sha256>().as_ref() == Ok(checksum) => None,
        Some(other) => Some(format!(
            "checksum.value is {other} but the form's checksum is \"{checksum}\""
        )),
    }
}
