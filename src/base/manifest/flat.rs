//! The *flat* manifest other PROTOCOL.md implementations send (the Python
//! reference client), translated into PROTOCOL.md's nested manifest.
//!
//! A flat manifest is one object of `session_id, camera_id, camera_position,
//! file_name, start_time_local, start_time_master, offset_ms, duration_sec,
//! resolution ("3840x2160"), fps, codec, bitrate_mbps, dropped_frames,
//! checksum {"algo", "value"}, offloaded, snapshot_base64, software_version,
//! created_at`. [`translate`] turns it into a *partial* nested manifest: the
//! fields a file cannot tell (identity, timing, quality, device). The video
//! fields come from ffprobe (the caller's base manifest), so a flat
//! manifest's `resolution`, `fps`, `codec` and `duration_sec` are only read
//! for the end time.
//!
//! Its times are naive ISO 8601 (`2024-03-15T14:00:00.123456`, no zone).
//! They are read in the zone of `server.naive_time_zone` and the timing is
//! then marked as a guess (`timing.guessed: true`, `timing.guess`).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use crate::base::manifest::{self, Manifest};

/// Keys only a flat manifest has at its top level.
const FLAT_KEYS: [&str; 6] = [
    "session_id",
    "camera_id",
    "start_time_local",
    "start_time_master",
    "camera_position",
    "file_name",
];

/// Flat keys [`translate`] maps or deliberately leaves to ffprobe; any other
/// key is kept as a top-level extra field. `snapshot_base64` (a JPEG of up
/// to megabytes) stays only in the client's original text.
const HANDLED_KEYS: [&str; 17] = [
    "session_id",
    "camera_id",
    "camera_position",
    "file_name",
    "start_time_local",
    "start_time_master",
    "offset_ms",
    "duration_sec",
    "resolution",
    "fps",
    "codec",
    "bitrate_mbps",
    "dropped_frames",
    "checksum",
    "snapshot_base64",
    "software_version",
    "offloaded",
];

/// Whether `v` is a flat manifest: an object without PROTOCOL.md's
/// `recording` block but with one of the flat identity or timing keys.
pub fn is_flat(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        !o.contains_key("recording") && FLAT_KEYS.iter().any(|k| o.contains_key(*k))
    })
}

/// A flat manifest as a partial nested one, and what the translation noted.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// Nested fields, to be laid over the ffprobe description.
    pub nested: Value,
    /// Translation notes: values dropped or guessed, each naming its flat field.
    pub notes: Vec<String>,
}

/// How the zone rule is described in the manifest and the notes.
#[derive(Debug, Clone)]
pub struct ZoneRule {
    /// The zone naive times are read in.
    pub zone: TimeZone,
    /// Its configured name (`local`, `UTC`, `Europe/Paris`).
    pub name: String,
}

/// Translates a flat manifest; `base` is the ffprobe description of the
/// received file (its duration ends a recording whose `duration_sec` is
/// missing).
pub fn translate(flat: &Map<String, Value>, rule: &ZoneRule, base: &Manifest) -> Translated {
    let mut notes = Vec::new();
    let mut out = json!({
        "version": manifest::MANIFEST_VERSION,
        "recording": {},
        "checksum": {"algorithm": "sha256"},
    });
    copy(flat, "session_id", &mut out, "/recording/session_id");
    copy(flat, "camera_id", &mut out, "/recording/camera_id");
    copy(flat, "camera_position", &mut out, "/recording/position");
    if let Some(c) = flat.get("checksum").and_then(Value::as_object) {
        if let Some(algo) = c.get("algo").or_else(|| c.get("algorithm")) {
            set(&mut out, "/checksum/algorithm", algo.clone());
        }
        if let Some(v) = c.get("value") {
            set(&mut out, "/checksum/value", v.clone());
        }
    }
    copy(flat, "bitrate_mbps", &mut out, "/video/bitrate_mbps");
    copy(flat, "dropped_frames", &mut out, "/quality/dropped_frames");
    copy(
        flat,
        "software_version",
        &mut out,
        "/device/software_version",
    );
    set(&mut out, "/timing", timing(flat, rule, base, &mut notes));
    for (k, v) in flat {
        if !HANDLED_KEYS.contains(&k.as_str()) && out.get(k).is_none() {
            set(&mut out, &format!("/{k}"), v.clone());
        }
    }
    set(&mut out, "/source_format", Value::from("flat"));
    Translated { nested: out, notes }
}

/// Copies `flat[key]` (when present and not null) to the pointer `to`.
fn copy(flat: &Map<String, Value>, key: &str, out: &mut Value, to: &str) {
    if let Some(v) = flat.get(key).filter(|v| !v.is_null()) {
        set(out, to, v.clone());
    }
}

/// Sets the value at a JSON pointer of objects, creating the objects.
fn set(out: &mut Value, pointer: &str, v: Value) {
    let mut cur = out;
    let keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, key) in keys.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i + 1 == keys.len() {
            map.insert((*key).to_string(), v);
            return;
        }
        cur = map
            .entry((*key).to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// A flat time: exact when it carries a zone, else read in the rule's zone
/// (`Some(true)` = guessed). `None` when it is no time at all.
fn read_time(s: &str, rule: &ZoneRule) -> Option<(jiff::Timestamp, bool)> {
    if let Ok(t) = manifest::parse_time(s) {
        return Some((t, false));
    }
    let civil: DateTime = s.trim().parse().ok()?;
    let t = rule.zone.to_ambiguous_timestamp(civil).compatible().ok()?;
    Some((t, true))
}

/// `timing` from `start_time_local`/`start_time_master`, `offset_ms` and
/// `duration_sec`.
///
/// The start is the local clock's; `sync_offset_ms` is local minus master
/// when both times are given (so [`Manifest::corrected_start`] is the master
/// time), else `offset_ms` as sent. A start from the master time alone
/// needs no correction.
/// The start (the local clock's, else the master's), `sync_offset_ms`, and
/// whether a naive time was read in the rule's zone.
fn start_and_offset(
    flat: &Map<String, Value>,
    rule: &ZoneRule,
    notes: &mut Vec<String>,
) -> (Option<jiff::Timestamp>, Option<f64>, bool) {
    let mut time = |key: &str| -> Option<(jiff::Timestamp, bool)> {
        let s = flat.get(key).filter(|v| !v.is_null())?.as_str();
        let got = s.and_then(|s| read_time(s, rule));
        if got.is_none() {
            notes.push(format!(
                "{key}: not an ISO 8601 time, got {}; ignored",
                flat[key]
            ));
        }
        got
    };
    let local = time("start_time_local");
    let master = time("start_time_master");
    let offset = flat.get("offset_ms").and_then(Value::as_f64);
    match (local, master) {
        (Some((l, gl)), Some((m, gm))) => {
            let diff = l.duration_since(m).as_secs_f64() * 1000.0;
            if let Some(o) = offset.filter(|o| (o - diff).abs() > 1.0) {
                notes.push(format!(
                    "offset_ms: {o} differs from start_time_local - start_time_master ({diff:.3} ms); \
                     the times were used"
                ));
            }
            (Some(l), Some(diff), gl || gm)
        }
        (Some((l, g)), None) => (Some(l), offset, g),
        (None, Some((m, g))) => (Some(m), None, g),
        (None, None) => (None, None, false),
    }
}

fn timing(
    flat: &Map<String, Value>,
    rule: &ZoneRule,
    base: &Manifest,
    notes: &mut Vec<String>,
) -> Value {
    let (start, offset_ms, naive) = start_and_offset(flat, rule, notes);
    let mut t = Map::new();
    t.insert("ntp_synced".into(), Value::Bool(false));
    for key in ["start_time_local", "start_time_master", "offset_ms"] {
        if let Some(v) = flat.get(key) {
            t.insert(key.into(), v.clone());
        }
    }
    let Some(start) = start else {
        notes.push("timing: no usable start_time_local or start_time_master; timing is the server's guess from the file".into());
        return Value::Object(t);
    };
    let duration = flat
        .get("duration_sec")
        .and_then(Value::as_f64)
        .filter(|d| d.is_finite() && *d > 0.0)
        .unwrap_or(base.video.duration_sec);
    let end = start
        .checked_add(jiff::SignedDuration::from_secs_f64(duration))
        .unwrap_or(start);
    t.insert("start_time".into(), manifest::format_time(start).into());
    t.insert("end_time".into(), manifest::format_time(end).into());
    if let Some(o) = offset_ms {
        t.insert(
            "sync_offset_ms".into(),
            json!(crate::base::manifest::describe::round_to(o, 3)),
        );
    }
    if naive {
        let guess = format!(
            "naive start times read as {} time (server.naive_time_zone)",
            rule.name
        );
        notes.push(format!("timing: {guess}"));
        t.insert("guessed".into(), Value::Bool(true));
        t.insert("guess".into(), guess.into());
    }
    Value::Object(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::config::zone_named;

    fn base() -> Manifest {
        Manifest::from_json(crate::base::manifest::tests::EXAMPLE).unwrap()
    }

    fn utc() -> ZoneRule {
        ZoneRule {
            zone: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    fn flat(extra: Value) -> Map<String, Value> {
        let mut v = json!({
            "session_id": "GAME_1", "camera_id": "CAM_L", "camera_position": "left",
            "start_time_local": "2024-03-15T14:00:00.500000",
            "start_time_master": "2024-03-15T14:00:00.250000",
            "offset_ms": 250.0, "duration_sec": 10.0, "resolution": "3840x2160",
            "fps": 30, "codec": "h265", "bitrate_mbps": 50, "dropped_frames": 2,
            "checksum": {"algo": "sha256", "value": "ab"},
            "snapshot_base64": "AAAA", "software_version": "py-1.2", "created_at": "x",
        });
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v.as_object().unwrap().clone()
    }

    #[test]
    fn flat_is_told_from_nested() {
        assert!(is_flat(&Value::Object(flat(json!({})))));
        assert!(!is_flat(&json!({"recording": {}, "session_id": "x"})));
        assert!(!is_flat(&json!({})));
        assert!(!is_flat(&json!([1])));
    }

    #[test]
    fn naive_times_are_read_in_the_zone_and_marked_guessed() {
        let t = translate(&flat(json!({})), &utc(), &base());
        let timing = &t.nested["timing"];
        assert_eq!(timing["start_time"], "2024-03-15T14:00:00.500000Z");
        assert_eq!(timing["end_time"], "2024-03-15T14:00:10.500000Z");
        assert_eq!(timing["sync_offset_ms"], 250.0);
        assert_eq!(timing["guessed"], true);
        assert_eq!(t.nested["recording"]["position"], "left");
        assert_eq!(t.nested["checksum"]["algorithm"], "sha256");
        assert_eq!(t.nested["quality"]["dropped_frames"], 2);
        assert_eq!(t.nested["created_at"], "x");
        assert!(t.nested.get("snapshot_base64").is_none());
        let paris = ZoneRule {
            zone: TimeZone::get("Europe/Paris").unwrap(),
            name: "Europe/Paris".into(),
        };
        let t = translate(&flat(json!({})), &paris, &base());
        assert_eq!(
            t.nested["timing"]["start_time"],
            "2024-03-15T13:00:00.500000Z"
        );
    }

    #[test]
    fn zoned_times_are_exact_and_a_bad_offset_is_noted() {
        let t = translate(
            &flat(json!({"start_time_local": "2024-03-15T14:00:01Z",
                         "start_time_master": "2024-03-15T14:00:00Z", "offset_ms": 5})),
            &utc(),
            &base(),
        );
        assert_eq!(t.nested["timing"]["sync_offset_ms"], 1000.0);
        assert!(t.nested["timing"].get("guessed").is_none());
        assert!(t.notes[0].starts_with("offset_ms:"), "{:?}", t.notes);
    }

    #[test]
    fn unusable_times_leave_timing_to_the_file() {
        let t = translate(
            &flat(json!({"start_time_local": "soon", "start_time_master": null})),
            &utc(),
            &base(),
        );
        assert!(t.nested["timing"].get("start_time").is_none());
        assert!(t.notes.iter().any(|n| n.starts_with("start_time_local:")));
    }

    #[test]
    fn zone_names() {
        assert!(zone_named("UTC").is_ok());
        assert!(zone_named("local").is_ok());
        assert!(zone_named("Europe/Paris").is_ok());
        let e = zone_named("Mars/Olympus").unwrap_err();
        assert!(e.contains("server.naive_time_zone"), "{e}");
    }
}
