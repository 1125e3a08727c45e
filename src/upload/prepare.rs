//! Step 1 of the flow: read the manifest, look at the file, settle the
//! checksum. Every failure here is final (no attempt would cure it).

use std::fs::{self, File};
use std::io;

use serde_json::{Map, Value};

use super::error::AttemptError;
use super::source::Source;
use crate::base::checksum::{self, FileDigest, Sha256};
use crate::base::ids::RecordingId;
use crate::base::manifest::Manifest;
use crate::base::units::human_bytes;

/// A recording ready to send.
pub(super) struct Prepared {
    pub(super) rec: RecordingId,
    pub(super) manifest_json: String,
    pub(super) checksum: Sha256,
    pub(super) size: u64,
}

/// Step 1: manifest, file, checksum. The checksum is the manifest's; the
/// file is hashed only when the manifest has none (it is then written into
/// the manifest sent) or with `rehash` (a mismatch refuses the file).
pub(super) fn prepare(src: &Source, rehash: bool, chunk: usize) -> Result<Prepared, AttemptError> {
    let text = read_manifest_text(src)?;
    let mut value: Value = serde_json::from_str(&text)
        .map_err(|e| invalid(src, format!("not valid JSON: {e}")).caused_by(e))?;
    let size = video_size(src)?;
    let has_checksum = value
        .pointer("/checksum/value")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    let computed = if !has_checksum || rehash {
        Some(hash_video(src, size, has_checksum, chunk)?)
    } else {
        None
    };
    let rewritten = match (&computed, has_checksum) {
        (Some(d), false) => insert_checksum(&mut value, &d.sha256),
        _ => false,
    };
    let m = Manifest::from_value(value).map_err(|e| invalid(src, e.to_string()))?;
    let rec = check_manifest(src, &m, size)?;
    if let Some(d) = &computed {
        check_digest(src, &m, d)?;
    }
    let manifest_json = if rewritten { m.to_json_pretty() } else { text };
    Ok(Prepared {
        rec,
        checksum: m.checksum.value,
        manifest_json,
        size,
    })
}

/// `invalid_manifest`, naming the manifest.
fn invalid(src: &Source, why: String) -> AttemptError {
    AttemptError::fatal(
        "invalid_manifest",
        format!("manifest {}: {why}", src.manifest.display()),
    )
}

/// The manifest's text; `manifest_not_found` or `manifest_unreadable`.
fn read_manifest_text(src: &Source) -> Result<String, AttemptError> {
    fs::read_to_string(&src.manifest).map_err(|e| {
        let code = if e.kind() == io::ErrorKind::NotFound {
            "manifest_not_found"
        } else {
            "manifest_unreadable"
        };
        AttemptError::fatal(code, format!("manifest {}: {e}", src.manifest.display())).caused_by(e)
    })
}

/// `file_not_found` / `file_unreadable` for the recording.
pub(super) fn video_error(src: &Source, e: io::Error) -> AttemptError {
    let code = if e.kind() == io::ErrorKind::NotFound {
        "file_not_found"
    } else {
        "file_unreadable"
    };
    AttemptError::fatal(code, format!("recording {}: {e}", src.video.display())).caused_by(e)
}

/// The recording's size; it must be a regular file.
fn video_size(src: &Source) -> Result<u64, AttemptError> {
    let meta = fs::metadata(&src.video).map_err(|e| video_error(src, e))?;
    if !meta.is_file() {
        return Err(AttemptError::fatal(
            "file_not_found",
            format!("recording {} is not a regular file", src.video.display()),
        ));
    }
    Ok(meta.len())
}

/// Hashes the recording (the manifest has no checksum, or `--rehash`).
fn hash_video(
    src: &Source,
    size: u64,
    has_checksum: bool,
    chunk: usize,
) -> Result<FileDigest, AttemptError> {
    log::info!(
        "{}: hashing {} ({})",
        src.video.display(),
        human_bytes(size),
        if has_checksum {
            "--rehash"
        } else {
            "the manifest has no checksum"
        }
    );
    let unreadable = |e: io::Error| {
        AttemptError::fatal(
            "file_unreadable",
            format!("recording {}: {e}", src.video.display()),
        )
        .caused_by(e)
    };
    let file = File::open(&src.video).map_err(unreadable)?;
    checksum::hash_reader(file, chunk).map_err(unreadable)
}

/// Writes `checksum: {algorithm: sha256, value}` into a manifest that has
/// none; true when it did (the manifest is then sent re-serialized).
fn insert_checksum(value: &mut Value, digest: &Sha256) -> bool {
    let Some(obj) = value.as_object_mut() else {
        return false;
    };
    let mut c = Map::new();
    c.insert("algorithm".into(), Value::from("sha256"));
    c.insert("value".into(), Value::from(digest.to_string()));
    obj.insert("checksum".into(), Value::Object(c));
    true
}

/// The manifest must describe the recording asked for, at its size.
fn check_manifest(src: &Source, m: &Manifest, size: u64) -> Result<RecordingId, AttemptError> {
    let rec = m.recording_id().map_err(|e| invalid(src, e.to_string()))?;
    if let Some(want) = &src.expect
        && want != &rec
    {
        return Err(invalid(
            src,
            format!("describes recording {rec}, but {want} was asked for"),
        ));
    }
    if m.file.size_bytes != size {
        return Err(invalid(
            src,
            format!(
                "file.size_bytes is {}, but {} is {size} bytes: the file changed since its \
                 manifest was written; check it with `rig-manifest verify` before offloading",
                m.file.size_bytes,
                src.video.display()
            ),
        ));
    }
    Ok(rec)
}

/// With a computed digest, the file's bytes must still be the manifest's.
fn check_digest(src: &Source, m: &Manifest, d: &FileDigest) -> Result<(), AttemptError> {
    if d.sha256 == m.checksum.value {
        return Ok(());
    }
    Err(AttemptError::fatal(
        "local_checksum_mismatch",
        format!(
            "{} no longer matches its manifest: SHA-256 is {}, the manifest says {}; \
             not sending it",
            src.video.display(),
            d.sha256,
            m.checksum.value
        ),
    ))
}
