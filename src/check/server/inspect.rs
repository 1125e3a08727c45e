//! One recording's small files (manifest, receive-time digest) and its
//! size, read through [`crate::store::Store`] before any hashing; then the
//! fresh digest compared with both.

use std::io;

use serde_json::Value;

use super::report::{Problem, RecordingReport, RecordingStatus};
use crate::base::checksum::{FileDigest, Sha256};
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::manifest::validate_value;
use crate::store::{FileState, Store, StoredDigest};

/// Largest `manifest.json` read (the largest rig-receive accepts); anything
/// bigger is not a manifest.
const MAX_MANIFEST_BYTES: u64 = crate::base::protocol::MAX_MANIFEST_BYTES as u64;

/// A recording whose small files have been read, waiting for its digest.
pub(super) struct Inspected {
    pub(super) report: RecordingReport,
    pub(super) hash: bool,
    worst: RecordingStatus,
}

impl Inspected {
    fn flag(&mut self, status: RecordingStatus, field: &str, message: String) {
        if status.rank() > self.worst.rank() {
            self.worst = status;
        }
        self.report.problems.push(Problem {
            field: field.to_string(),
            message,
        });
    }

    /// Flags a recording whose size is not the manifest's.
    fn compare_size(&mut self) {
        if let (Some(size), Some(want)) = (self.report.size_bytes, self.report.manifest_size_bytes)
            && size != want
        {
            self.flag(
                RecordingStatus::Mismatch,
                "file.size_bytes",
                format!("the manifest says {want} bytes, recording.mp4 has {size}"),
            );
        }
    }

    /// Compares a fresh digest with the stored one and the manifest's.
    fn compare(&mut self, result: io::Result<FileDigest>) {
        let digest = match result {
            Ok(d) => d,
            Err(e) => {
                self.flag(RecordingStatus::Unreadable, "recording.mp4", e.to_string());
                return;
            }
        };
        if Some(digest.size) != self.report.size_bytes {
            self.flag(
                RecordingStatus::Mismatch,
                "recording.mp4",
                format!(
                    "changed while being checked ({} bytes read, {} at start); re-run rig-check",
                    digest.size,
                    self.report.size_bytes.unwrap_or(0)
                ),
            );
        }
        self.compare_hash(digest.sha256);
        self.report.sha256 = Some(digest.sha256);
    }

    /// Flags a fresh hash that is not the stored digest or the manifest's
    /// checksum.
    fn compare_hash(&mut self, sha256: Sha256) {
        if let Some(stored) = self.report.stored_sha256
            && stored != sha256
        {
            self.flag(
                RecordingStatus::Mismatch,
                "recording.sha256",
                format!(
                    "recording.mp4 hashes to {sha256}, but the digest stored at receive time is {stored}"
                ),
            );
        }
        if let Some(expected) = self.report.manifest_sha256
            && expected != sha256
        {
            self.flag(
                RecordingStatus::Mismatch,
                "checksum.value",
                format!("recording.mp4 hashes to {sha256}, but the manifest says {expected}"),
            );
        }
    }

    fn finish(mut self) -> RecordingReport {
        self.report.status = self.worst;
        self.report.fix = self.worst.fix().map(str::to_string);
        self.report
    }
}

/// Reads a recording's manifest and digest and stats its file.
pub(super) fn inspect(
    store: &Store,
    session: &SessionId,
    camera: CameraId,
    quick: bool,
) -> Inspected {
    let rec_id = RecordingId::new(session.clone(), camera);
    let mut rec = Inspected {
        report: RecordingReport {
            camera_id: camera.to_string(),
            status: RecordingStatus::Ok,
            path: store.layout().recording(session, camera),
            size_bytes: None,
            manifest_size_bytes: None,
            sha256: None,
            stored_sha256: None,
            manifest_sha256: None,
            problems: Vec::new(),
            fix: None,
        },
        hash: false,
        worst: RecordingStatus::Ok,
    };
    rec.read_file_state(store.recording_state(&rec_id));
    rec.read_digest(store.read_digest(&rec_id));
    rec.read_manifest(
        store.manifest_text(&rec_id, MAX_MANIFEST_BYTES),
        session,
        camera,
    );
    // Sizes are compared in both modes; hashing only in full mode.
    rec.compare_size();
    rec.hash = !quick && rec.report.size_bytes.is_some();
    rec
}

impl Inspected {
    /// `recording.mp4`: its size, or why there is none.
    fn read_file_state(&mut self, state: io::Result<FileState>) {
        const FILE: &str = "recording.mp4";
        match state {
            Ok(FileState::Regular(size)) => self.report.size_bytes = Some(size),
            Ok(FileState::NotRegular) => self.flag(
                RecordingStatus::MissingFile,
                FILE,
                "is not a regular file".into(),
            ),
            Ok(FileState::Missing) => {
                self.flag(RecordingStatus::MissingFile, FILE, "is missing".into())
            }
            Err(e) => self.flag(RecordingStatus::Unreadable, FILE, e.to_string()),
        }
    }

    /// `recording.sha256`: the digest stored at receive time.
    fn read_digest(&mut self, digest: io::Result<StoredDigest>) {
        const FILE: &str = "recording.sha256";
        match digest {
            Ok(StoredDigest::Valid(d)) => self.report.stored_sha256 = Some(d),
            Ok(StoredDigest::Damaged) => self.flag(
                RecordingStatus::DigestMissing,
                FILE,
                "is not a sha256sum line (64 lowercase hex digits, two spaces, recording.mp4)"
                    .into(),
            ),
            Ok(StoredDigest::Missing) => self.flag(
                RecordingStatus::DigestMissing,
                FILE,
                "is missing: the digest computed at receive time is gone".into(),
            ),
            Err(e) => self.flag(RecordingStatus::DigestMissing, FILE, e.to_string()),
        }
    }

    /// `manifest.json`: valid, and about this recording.
    fn read_manifest(&mut self, text: io::Result<String>, session: &SessionId, camera: CameraId) {
        const FILE: &str = "manifest.json";
        match text {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(value) => check_manifest(self, &value, session, camera),
                Err(e) => self.flag(
                    RecordingStatus::ManifestInvalid,
                    FILE,
                    format!("is not valid JSON: {e}"),
                ),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.flag(RecordingStatus::ManifestInvalid, FILE, "is missing".into())
            }
            Err(e) => self.flag(RecordingStatus::ManifestInvalid, FILE, e.to_string()),
        }
    }

    /// The recording's verdict, with its fresh digest when it was hashed.
    pub(super) fn settle(
        mut self,
        digests: &mut impl Iterator<Item = io::Result<FileDigest>>,
    ) -> RecordingReport {
        if self.hash {
            match digests.next() {
                Some(result) => self.compare(result),
                None => self.flag(
                    RecordingStatus::Unreadable,
                    "recording.mp4",
                    "was not hashed (internal error); re-run rig-check".into(),
                ),
            }
        }
        self.finish()
    }
}

/// Validates a manifest document and checks it describes this recording.
fn check_manifest(rec: &mut Inspected, value: &Value, session: &SessionId, camera: CameraId) {
    for p in validate_value(value) {
        rec.flag(RecordingStatus::ManifestInvalid, &p.field, p.message);
    }
    let at = |path: &str| {
        path.split('.')
            .try_fold(value, |v, key| v.as_object()?.get(key))
    };
    for (field, want) in [
        ("recording.session_id", session.as_str()),
        ("recording.camera_id", camera.as_str()),
    ] {
        if let Some(got) = at(field).and_then(Value::as_str)
            && got != want
        {
            rec.flag(
                RecordingStatus::ManifestInvalid,
                field,
                format!(
                    "is {got:?}, but the manifest is stored under {}/{} (expected {want:?})",
                    session,
                    camera.as_str()
                ),
            );
        }
    }
    rec.report.manifest_sha256 = at("checksum.value")
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<Sha256>().ok());
    rec.report.manifest_size_bytes = at("file.size_bytes").and_then(Value::as_u64);
}
