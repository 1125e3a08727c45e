//! Commit of a verified upload into `sessions/S/C/`.
//!
//! The commit order is what makes a crash at any instant safe for the
//! confirm step, which reads `recording.sha256`:
//!
//! 1. the old `recording.sha256` is removed (a replacement is coming);
//! 2. the verified temp file is fsynced and renamed over `recording.mp4`;
//! 3. `manifest.json` is written atomically;
//! 4. `recording.sha256` is written atomically, last: it is the commit mark.
//!
//! So `recording.sha256` never names bytes other than those of
//! `recording.mp4`; when it is missing, confirm answers 404 and the client
//! uploads again.

use std::fs;
use std::io;

use tempfile::NamedTempFile;

use super::{Store, StoreError, digest_line};
use crate::base::checksum::{FileDigest, Sha256};
use crate::base::fsx;
use crate::base::ids::RecordingId;
use crate::base::manifest::Manifest;

/// What is stored under a recording's name before a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    /// The valid stored digest, if any.
    pub digest: Option<Sha256>,
    /// The size of the stored `recording.mp4`, if any.
    pub size: Option<u64>,
}

impl Existing {
    /// Whether the stored recording has exactly these bytes.
    pub fn identical(&self, new: &FileDigest) -> bool {
        self.digest == Some(new.sha256) && self.size == Some(new.size)
    }
}

/// A verified upload, ready to be committed.
pub struct Commit<'a> {
    /// Whose it is.
    pub rec: &'a RecordingId,
    /// Its bytes, in `temp/` ([`Store::upload_temp`]).
    pub temp: NamedTempFile,
    /// Their digest, computed while receiving.
    pub digest: &'a FileDigest,
    /// What was stored before ([`Store::existing`]).
    pub existing: Existing,
    /// The manifest to store; `None` keeps the stored one.
    pub manifest: Option<Manifest>,
    /// The client's manifest text, kept verbatim beside a translated or
    /// repaired `manifest.json`.
    pub client_manifest: Option<&'a str>,
}

impl Store {
    /// What is stored under `rec`'s name now.
    pub fn existing(&self, rec: &RecordingId) -> Existing {
        Existing {
            digest: self.digest(rec),
            size: self.recording_size(rec).ok().flatten(),
        }
    }

    /// Whether `rec`'s stored `manifest.json` is a valid manifest.
    pub fn has_valid_manifest(&self, rec: &RecordingId) -> bool {
        Manifest::read(&self.layout.manifest(&rec.session, rec.camera)).is_ok()
    }

    /// Commits a verified upload (see the module docs for the order).
    /// Returns whether the stored bytes changed (an identical re-upload
    /// keeps the stored file and drops the temp file).
    pub fn commit(&self, c: Commit<'_>) -> Result<bool, StoreError> {
        let rec = c.rec;
        let what = |w: &str| format!("storing {rec}: {w}");
        c.temp
            .as_file()
            .sync_all()
            .map_err(StoreError::io(what("fsync of the temp file")))?;
        let identical = c.existing.identical(c.digest);
        if identical {
            drop(c.temp);
            log::info!("{rec}: identical to the stored recording; kept it");
        } else {
            self.replace_recording(rec, c.temp, c.digest, &c.existing)?;
        }
        if let Some(m) = &c.manifest {
            self.keep_client_manifest(rec, c.client_manifest)?;
            let path = self.layout.manifest(&rec.session, rec.camera);
            m.write_atomic(&path)
                .map_err(|source| StoreError::Manifest {
                    what: format!("storing {rec}"),
                    source,
                })?;
        }
        if !(identical && c.existing.digest.is_some()) {
            let path = self.layout.digest(&rec.session, rec.camera);
            fsx::atomic_write(&path, digest_line(&c.digest.sha256).as_bytes())
                .map_err(StoreError::io(what("writing recording.sha256")))?;
        }
        Ok(!identical)
    }

    /// Steps 1 and 2: the old commit mark goes, the new bytes move in.
    fn replace_recording(
        &self,
        rec: &RecordingId,
        temp: NamedTempFile,
        digest: &FileDigest,
        existing: &Existing,
    ) -> Result<(), StoreError> {
        let (s, c) = (&rec.session, rec.camera);
        let what = |w: &str| format!("storing {rec}: {w}");
        let dir = self.layout.camera_dir(s, c);
        fs::create_dir_all(&dir).map_err(StoreError::io(what("creating its directory")))?;
        match fs::remove_file(self.layout.digest(s, c)) {
            Ok(()) => fsx::sync_dir(&dir).map_err(StoreError::io(what("syncing its directory")))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io(what("removing the old recording.sha256"))(e)),
        }
        if existing.size.is_some() {
            log::warn!(
                "{rec}: replacing the stored recording (digest {}) with a verified new one ({})",
                existing
                    .digest
                    .map_or_else(|| "unknown".to_string(), |d| d.to_string()),
                digest.sha256
            );
        }
        temp.persist(self.layout.recording(s, c))
            .map_err(|e| StoreError::io(what("moving it into sessions/"))(e.error))?;
        fsx::sync_dir(&dir).map_err(StoreError::io(what("syncing its directory")))
    }

    /// Keeps the client's manifest text verbatim beside a translated or
    /// repaired `manifest.json`; removes an older one otherwise, so it never
    /// sits beside a manifest it is not the source of.
    fn keep_client_manifest(
        &self,
        rec: &RecordingId,
        text: Option<&str>,
    ) -> Result<(), StoreError> {
        let path = self.layout.client_manifest(&rec.session, rec.camera);
        let err = StoreError::io(format!("storing {rec}: {}", path.display()));
        match text {
            Some(t) => fsx::atomic_write(&path, t.as_bytes()).map_err(err),
            None => match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(e)),
                _ => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::base::checksum::hash_reader;
    use crate::base::layout::ServerLayout;
    use crate::store::StoredDigest;

    fn upload(store: &Store, bytes: &[u8]) -> (NamedTempFile, FileDigest) {
        let mut temp = store.upload_temp("", "").unwrap();
        temp.write_all(bytes).unwrap();
        (temp, hash_reader(bytes, 4096).unwrap())
    }

    #[test]
    fn a_commit_stores_the_bytes_and_writes_the_digest_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(ServerLayout::under(dir.path()));
        store.prepare().unwrap();
        let rec = RecordingId::parse("GAME_1_CAM_L").unwrap();
        assert_eq!(
            store.existing(&rec),
            Existing {
                digest: None,
                size: None
            }
        );
        let (temp, digest) = upload(&store, b"first bytes");
        fn commit<'a>(
            rec: &'a RecordingId,
            temp: NamedTempFile,
            digest: &'a FileDigest,
            existing: Existing,
        ) -> Commit<'a> {
            Commit {
                rec,
                temp,
                digest,
                existing,
                manifest: None,
                client_manifest: None,
            }
        }
        assert!(
            store
                .commit(commit(&rec, temp, &digest, store.existing(&rec)))
                .unwrap()
        );
        let path = store.layout().recording(&rec.session, rec.camera);
        assert_eq!(std::fs::read(&path).unwrap(), b"first bytes");
        assert_eq!(
            store.read_digest(&rec).unwrap(),
            StoredDigest::Valid(digest.sha256)
        );
        assert!(store.is_stored(&rec.session, rec.camera));
        assert!(!store.is_complete(&rec.session));
        // The same bytes again: nothing changes, the temp file goes.
        let (temp, again) = upload(&store, b"first bytes");
        let temp_path = temp.path().to_path_buf();
        let existing = store.existing(&rec);
        assert!(existing.identical(&again));
        assert!(!store.commit(commit(&rec, temp, &again, existing)).unwrap());
        assert!(!temp_path.exists());
        // Other bytes replace them, digest and all.
        let (temp, other) = upload(&store, b"other bytes, longer");
        assert!(
            store
                .commit(commit(&rec, temp, &other, store.existing(&rec)))
                .unwrap()
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"other bytes, longer");
        assert_eq!(store.digest(&rec), Some(other.sha256));
        assert_eq!(store.remove_upload_leftovers(), 0);
    }
}
