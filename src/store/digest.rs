//! The stored digest: `sessions/S/C/recording.sha256`, the SHA-256 computed
//! while receiving, in `sha256sum -c` format, written last at commit (the
//! commit mark), so confirm never re-reads a 20 GB file and an admin can
//! check it with coreutils.

use std::io;

use super::Store;
use crate::base::checksum::Sha256;
use crate::base::ids::RecordingId;
use crate::base::layout::SERVER_RECORDING;

/// Largest `recording.sha256` read; a valid one is 82 bytes.
const MAX_DIGEST_BYTES: u64 = 4096;

/// The line `recording.sha256` holds: `sha256sum` format.
pub fn digest_line(sha256: &Sha256) -> String {
    format!("{sha256}  {SERVER_RECORDING}\n")
}

/// The digest from a `recording.sha256` line, if it is well-formed.
pub fn parse_digest_line(text: &str) -> Option<Sha256> {
    text.split_whitespace().next()?.parse().ok()
}

/// What `recording.sha256` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDigest {
    /// There is none: the recording is not stored (or was never committed).
    Missing,
    /// It exists but is not a `sha256sum` line.
    Damaged,
    /// The digest stored at receive time.
    Valid(Sha256),
}

impl StoredDigest {
    /// The digest, when there is a valid one.
    pub fn valid(self) -> Option<Sha256> {
        match self {
            StoredDigest::Valid(d) => Some(d),
            _ => None,
        }
    }
}

impl Store {
    /// Reads `rec`'s `recording.sha256`. An error is a failed read (or a
    /// file too large to be one), not a missing file.
    pub fn read_digest(&self, rec: &RecordingId) -> io::Result<StoredDigest> {
        let path = self.layout.digest(&rec.session, rec.camera);
        match super::listing::read_small(&path, MAX_DIGEST_BYTES) {
            Ok(text) => {
                Ok(parse_digest_line(&text).map_or(StoredDigest::Damaged, StoredDigest::Valid))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(StoredDigest::Missing),
            Err(e) => Err(e),
        }
    }

    /// The valid stored digest of `rec`, if any (errors count as none).
    pub fn digest(&self, rec: &RecordingId) -> Option<Sha256> {
        self.read_digest(rec).ok().and_then(StoredDigest::valid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_line_round_trip() {
        let h: Sha256 = "ab".repeat(32).parse().unwrap();
        assert_eq!(parse_digest_line(&digest_line(&h)), Some(h));
        assert_eq!(parse_digest_line("nonsense  recording.mp4"), None);
    }

    #[test]
    fn a_stored_digest_is_missing_damaged_or_valid() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(crate::base::layout::ServerLayout::under(dir.path()));
        let rec = RecordingId::parse("GAME_1_CAM_L").unwrap();
        assert_eq!(store.read_digest(&rec).unwrap(), StoredDigest::Missing);
        let path = store.layout().digest(&rec.session, rec.camera);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "not a digest\n").unwrap();
        assert_eq!(store.read_digest(&rec).unwrap(), StoredDigest::Damaged);
        let h: Sha256 = "cd".repeat(32).parse().unwrap();
        std::fs::write(&path, digest_line(&h)).unwrap();
        assert_eq!(store.digest(&rec), Some(h));
    }
}
