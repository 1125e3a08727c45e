//! The backlog: recordings not offloaded yet, their size, and with
//! `--verify` whether they still match their manifests.

use std::fs;
use std::io;
use std::path::Path;

use serde_json::{Value, json};

use super::{BacklogItem, CheckItem, MAX_SMALL_BYTES, NodeOptions, item};
use crate::base::checksum::{FileDigest, Sha256};
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::layout::PiLayout;
use crate::base::manifest::Manifest;
use crate::base::units::human_bytes;
use crate::check::{HashJob, Status, hash_all};

/// What a state file says (the fields rig-check shows).
struct StateSummary {
    status: String,
    attempts: Option<u64>,
    last_error: Option<String>,
}

/// Reads an offload state file; `Ok(None)` when there is none (pending).
fn read_state(path: &Path) -> Result<Option<StateSummary>, String> {
    let text = match fs::metadata(path) {
        Ok(m) if m.len() > MAX_SMALL_BYTES => {
            return Err(format!(
                "{}: {} bytes, too large for a state file",
                path.display(),
                m.len()
            ));
        }
        Ok(_) => fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}: no \"status\" string", path.display()))?;
    Ok(Some(StateSummary {
        status: status.to_string(),
        attempts: v.get("attempts").and_then(Value::as_u64),
        last_error: v
            .get("last_error")
            .and_then(Value::as_str)
            .map(str::to_string),
    }))
}

/// Sessions and cameras found as `DIR/S/C/` directories.
fn recordings_under(dir: &Path) -> Vec<RecordingId> {
    let mut out = Vec::new();
    let Ok(sessions) = fs::read_dir(dir) else {
        return out;
    };
    for s in sessions.flatten() {
        let Some(session) = s
            .file_name()
            .to_str()
            .and_then(|n| SessionId::parse(n).ok())
        else {
            continue;
        };
        let Ok(cams) = fs::read_dir(s.path()) else {
            continue;
        };
        for c in cams.flatten() {
            if let Some(camera) = c.file_name().to_str().and_then(|n| CameraId::parse(n).ok())
                && c.path().is_dir()
            {
                out.push(RecordingId::new(session.clone(), camera));
            }
        }
    }
    out
}

/// Recordings not offloaded yet, their size, and with `--verify` their integrity.
pub(super) fn check_backlog(
    pi: &PiLayout,
    root_ok: bool,
    opts: &NodeOptions,
) -> (CheckItem, Vec<BacklogItem>) {
    let mut ids = recordings_under(&pi.manifests_dir());
    ids.extend(recordings_under(&pi.recordings_dir()));
    ids.sort();
    ids.dedup();
    let mut items = Vec::new();
    let mut manifests = Vec::new();
    let mut hard = 0usize;
    for rec in ids {
        if let Some(entry) = backlog_entry(pi, &rec) {
            hard += entry.hard;
            manifests.push(entry.sha256);
            items.push(entry.item);
        }
    }
    if opts.verify {
        hard += verify(&mut items, &manifests, opts.progress);
    }
    (verdict(pi, root_ok, opts, &items, hard), items)
}

/// One recording of the backlog, before `--verify`.
struct Entry {
    item: BacklogItem,
    /// The manifest's checksum, when the manifest reads.
    sha256: Option<Sha256>,
    /// Problems that put the recording at risk.
    hard: usize,
}

/// The backlog entry of `rec`; `None` when it is offloaded or nothing is
/// there (an empty directory).
fn backlog_entry(pi: &PiLayout, rec: &RecordingId) -> Option<Entry> {
    let manifest_path = pi.manifest(rec);
    let path = pi.recording(rec);
    let size = fs::metadata(&path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let mut problems = Vec::new();
    let (state, attempts, last_error) = if !manifest_path.is_file() {
        size?; // an empty directory: nothing to offload
        problems.push(
            "no manifest: still recording, or the recorder died \
             (rig-manifest create --recover builds one)"
                .to_string(),
        );
        ("no_manifest".to_string(), None, None)
    } else {
        offload_progress(pi, rec, &mut problems)?
    };
    let manifest = (state != "no_manifest")
        .then(|| read_manifest(&manifest_path, &mut problems))
        .flatten();
    let mut hard = usize::from(state != "no_manifest" && manifest.is_none());
    hard += file_problems(&path, size, manifest.as_ref(), &mut problems);
    let item = BacklogItem {
        recording_id: rec.to_string(),
        state,
        path,
        size_bytes: size,
        attempts,
        last_error,
        verified: None,
        sha256: None,
        problems,
    };
    Some(Entry {
        item,
        sha256: manifest.map(|m| m.checksum.value),
        hard,
    })
}

/// The offload state of a recording with a manifest: (state, attempts,
/// last error); `None` when it is offloaded.
fn offload_progress(
    pi: &PiLayout,
    rec: &RecordingId,
    problems: &mut Vec<String>,
) -> Option<(String, Option<u64>, Option<String>)> {
    Some(match read_state(&pi.offload_state(rec)) {
        Ok(Some(s)) if s.status == "offloaded" => return None,
        Ok(Some(s)) => (s.status, s.attempts, s.last_error),
        Ok(None) => ("pending".to_string(), None, None),
        Err(e) => {
            problems.push(format!("offload state unreadable: {e}"));
            ("unknown".to_string(), None, None)
        }
    })
}

/// The manifest, or a problem saying why rig-upload will not send it.
fn read_manifest(path: &Path, problems: &mut Vec<String>) -> Option<Manifest> {
    match Manifest::read(path) {
        Ok(m) => Some(m),
        Err(e) => {
            problems.push(format!(
                "{}: {e}; rig-upload will not send it",
                path.display()
            ));
            None
        }
    }
}

/// A missing file, or one whose size is not the manifest's; returns how
/// many such problems were added.
fn file_problems(
    path: &Path,
    size: Option<u64>,
    manifest: Option<&Manifest>,
    problems: &mut Vec<String>,
) -> usize {
    let Some(size) = size else {
        problems.push(format!(
            "{} is missing but was never offloaded",
            path.display()
        ));
        return 1;
    };
    match manifest {
        Some(m) if m.file.size_bytes != size => {
            problems.push(format!(
                "file.size_bytes: the manifest says {} bytes, the file has {size}",
                m.file.size_bytes
            ));
            1
        }
        _ => 0,
    }
}

/// `--verify`: hashes every file that has a manifest and compares; returns
/// how many failed.
fn verify(items: &mut [BacklogItem], manifests: &[Option<Sha256>], progress: bool) -> usize {
    let idx: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].size_bytes.is_some() && manifests[i].is_some())
        .collect();
    let jobs: Vec<HashJob> = idx
        .iter()
        .map(|&i| HashJob {
            path: items[i].path.clone(),
            size: items[i].size_bytes.unwrap_or(0),
        })
        .collect();
    let mut hard = 0;
    for (&i, result) in idx.iter().zip(hash_all(&jobs, progress)) {
        let Some(want) = manifests[i] else { continue };
        if !record_hash(&mut items[i], want, result) {
            hard += 1;
        }
    }
    hard
}

/// Records on `it` whether the file hashes to the manifest's `want`;
/// `false` (a problem noted) when it does not or cannot be read.
fn record_hash(it: &mut BacklogItem, want: Sha256, result: io::Result<FileDigest>) -> bool {
    match result {
        Ok(d) if d.sha256 == want => {
            it.verified = Some(true);
            it.sha256 = Some(d.sha256);
            true
        }
        Ok(d) => {
            it.problems.push(format!(
                "checksum.value: the file hashes to {}, the manifest says {want}",
                d.sha256
            ));
            it.verified = Some(false);
            it.sha256 = Some(d.sha256);
            false
        }
        Err(e) => {
            it.problems.push(format!("cannot read: {e}"));
            it.verified = Some(false);
            false
        }
    }
}

/// The backlog check's verdict: FAIL with problems (or no storage root),
/// PASS when empty, else WARN with the count and size.
fn verdict(
    pi: &PiLayout,
    root_ok: bool,
    opts: &NodeOptions,
    items: &[BacklogItem],
    hard: usize,
) -> CheckItem {
    let bytes: u64 = items.iter().filter_map(|b| b.size_bytes).sum();
    let failed = items.iter().filter(|b| b.state == "failed").count();
    let value = json!({"recordings": items.len(), "bytes": bytes, "failed": failed,
                       "problems": hard, "verified": opts.verify});
    let backlog =
        |status, message: String, fix: Option<&str>| item("backlog", status, message, fix, value);
    if !root_ok && !pi.root.is_dir() {
        let fix = Some("fix the storage root first");
        return backlog(
            Status::Fail,
            "storage root missing; backlog unknown".into(),
            fix,
        );
    }
    let (n, size) = (items.len(), human_bytes(bytes));
    if hard > 0 {
        let fix =
            "see the backlog list; re-create broken manifests (rig-manifest create --recover)";
        let message =
            format!("{n} recording(s), {size} not offloaded; {hard} problem(s) put them at risk");
        return backlog(Status::Fail, message, Some(fix));
    }
    if items.is_empty() {
        return backlog(Status::Pass, "every recording is offloaded".into(), None);
    }
    let message = pending_message(n, &size, failed, opts.verify);
    backlog(
        Status::Warn,
        message,
        Some("run rig-upload to offload them"),
    )
}

/// The message of a backlog that is only waiting: how much, how many
/// failed, and whether all were verified.
fn pending_message(n: usize, size: &str, failed: usize, verified: bool) -> String {
    let verified = if verified {
        ", all match their manifests"
    } else {
        ""
    };
    let failed = if failed > 0 {
        format!(" ({failed} failed)")
    } else {
        String::new()
    };
    format!("{n} recording(s), {size} not offloaded yet{failed}{verified}")
}
