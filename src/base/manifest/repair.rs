//! Repairing a manifest that does not validate: the client's fields laid
//! over the server's own description of the received file (ffprobe, the
//! digest), each wrong or missing field replaced by the server's value and
//! listed, never silently.
//!
//! Identity and integrity are not repaired here: a manifest whose session,
//! camera or checksum contradicts the upload form is refused before this
//! runs (rig-receive's `incoming` step).

use serde_json::{Map, Value};

use crate::base::manifest::{Manifest, validate_value};

/// A repaired manifest and the problems found in the client's.
#[derive(Debug, Clone, PartialEq)]
pub struct Repaired {
    /// Valid, describing the received file.
    pub manifest: Manifest,
    /// `field: what was wrong; what was done`, in field order.
    pub problems: Vec<String>,
}

/// What `timing.guess` says when the timing is the server's, from the file.
pub const FILE_TIMING_GUESS: &str = "timing from the received file (its container creation \
                                     time, else its arrival), not from the recorder's clock";

/// Marks a manifest's timing as a guess: `timing.guessed: true` and
/// `timing.guess`, the rule that made it.
pub fn mark_timing_guessed(m: &mut Manifest, guess: &str) {
    m.timing.extra.insert("guessed".into(), Value::Bool(true));
    m.timing.extra.insert("guess".into(), guess.into());
}

/// Lays `client` (a partial or invalid nested manifest) over `base` (the
/// server's description of the same bytes). `report_missing` lists fields
/// the client left out (a nested manifest should have them; a translated
/// flat one never does).
pub fn repair(client: &Value, base: &Manifest, report_missing: bool) -> Repaired {
    let base_v = serde_json::to_value(base).unwrap_or(Value::Null);
    let mut problems: Vec<String> = validate_value(client)
        .into_iter()
        .filter(|p| report_missing || p.message != "is required but missing")
        .map(|p| format!("{p}; the server's value was used"))
        .collect();
    let mut merged = base_v.clone();
    if client.is_object() {
        merge(&mut merged, client);
    }
    let size = client.pointer("/file/size_bytes");
    if let Some(v) = size.filter(|v| v.as_u64() != Some(base.file.size_bytes) && v.is_u64()) {
        problems.push(format!(
            "file.size_bytes: {v}, but {} bytes were received (with the right checksum); \
             the received size was used",
            base.file.size_bytes
        ));
    }
    restore(&mut merged, &base_v, "file.size_bytes");
    restore(&mut merged, &base_v, "checksum.value");
    settle(&mut merged, &base_v);
    let from_client = client.pointer("/timing/start_time").is_some()
        && client.pointer("/timing/start_time") == merged.pointer("/timing/start_time");
    if !from_client
        && merged.pointer("/timing/guessed").is_none()
        && let Some(Value::Object(t)) = merged.get_mut("timing")
    {
        t.insert("guessed".into(), Value::Bool(true));
        t.insert("guess".into(), FILE_TIMING_GUESS.into());
    }
    let manifest = Manifest::from_value(merged).unwrap_or_else(|e| {
        problems.push(format!(
            "(document): {e}; the server's description was used"
        ));
        base.clone()
    });
    Repaired { manifest, problems }
}

/// Replaces what still fails validation: the field itself first, then its
/// top-level block, then (never expected) the whole document.
fn settle(merged: &mut Value, base: &Value) {
    for round in 0..3 {
        let problems = validate_value(merged);
        if problems.is_empty() {
            return;
        }
        for p in problems {
            if p.field == "(document)" || round == 2 {
                *merged = base.clone();
                return;
            }
            let field = if round == 0 {
                p.field.as_str()
            } else {
                p.field.split('.').next().unwrap_or_default()
            };
            restore(merged, base, field);
        }
    }
}

/// Deep-merges `over` into `into`: objects key by key, `null` skipped,
/// anything else replaces.
fn merge(into: &mut Value, over: &Value) {
    let (Value::Object(dst), Value::Object(src)) = (&mut *into, over) else {
        if !over.is_null() {
            *into = over.clone();
        }
        return;
    };
    for (k, v) in src {
        match dst.get_mut(k) {
            Some(d) if d.is_object() && v.is_object() => merge(d, v),
            _ if v.is_null() => {}
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Puts `base`'s value of a dotted field into `merged` (removing the field
/// when `base` has none).
fn restore(merged: &mut Value, base: &Value, field: &str) {
    let keys: Vec<&str> = field.split('.').collect();
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let want = parents
        .iter()
        .try_fold(base, |v, k| v.get(*k))
        .and_then(|v| v.get(*last))
        .cloned();
    let mut cur = merged;
    for k in parents {
        if !cur.get(*k).is_some_and(Value::is_object) {
            if let Value::Object(m) = cur {
                m.insert((*k).to_string(), Value::Object(Map::new()));
            } else {
                return;
            }
        }
        let Some(next) = cur.get_mut(*k) else { return };
        cur = next;
    }
    let Value::Object(m) = cur else { return };
    match want {
        Some(v) => m.insert((*last).to_string(), v),
        None => m.remove(*last),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Manifest {
        Manifest::from_json(crate::base::manifest::tests::EXAMPLE).unwrap()
    }

    #[test]
    fn wrong_fields_take_the_servers_values_and_are_listed() {
        let b = base();
        let mut client = serde_json::to_value(&b).unwrap();
        client["video"]["fps"] = json!(-3);
        client["recording"]["position"] = json!("up");
        client["file"]["size_bytes"] = json!(7);
        client["quality"] = json!({"dropped_frames": 4});
        client["note"] = json!("kept");
        let r = repair(&client, &b, true);
        assert!(r.manifest.validate().is_ok());
        assert_eq!(r.manifest.video.fps, b.video.fps);
        assert_eq!(r.manifest.recording.position, b.recording.position);
        assert_eq!(r.manifest.file.size_bytes, b.file.size_bytes);
        assert_eq!(r.manifest.quality.unwrap().dropped_frames, Some(4));
        assert_eq!(r.manifest.extra["note"], "kept");
        let fields: Vec<&str> = r
            .problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["recording.position", "video.fps", "file.size_bytes"]
        );
        assert!(r.manifest.timing.extra.get("guessed").is_none());
    }

    #[test]
    fn missing_blocks_are_filled_and_timing_marked_guessed() {
        let b = base();
        let client = json!({"version": "1.0", "recording": {"session_id": "GAME_20240315_140000"}});
        let r = repair(&client, &b, true);
        assert!(r.manifest.validate().is_ok());
        assert!(
            r.problems
                .iter()
                .any(|p| p.starts_with("video: is required"))
        );
        assert_eq!(r.manifest.timing.extra["guessed"], true);
        assert!(repair(&client, &b, false).problems.is_empty());
    }

    #[test]
    fn an_end_before_the_start_falls_back_to_the_whole_block() {
        let b = base();
        let mut client = serde_json::to_value(&b).unwrap();
        client["timing"]["start_time"] = json!("2030-01-01T00:00:00Z");
        let r = repair(&client, &b, true);
        assert!(r.manifest.validate().is_ok(), "{:?}", r.manifest.problems());
        assert_eq!(r.manifest.timing.end_time, b.timing.end_time);
    }
}
