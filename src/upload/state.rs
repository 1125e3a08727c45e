//! The offload state of one recording (`S_C.offload.json`, beside its
//! manifest): where its offload stands, so a reboot or a second run knows
//! what is done. Written atomically; unknown fields are kept on rewrite.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::OffloadError;
use crate::base::checksum::Sha256;
use crate::base::fsx;
use crate::base::manifest;

/// Where an offload stands, as the state file's `"status"` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffloadStatus {
    /// Not tried yet (also what a missing state file means).
    Pending,
    /// An upload is under way, or a run died during one.
    Uploading,
    /// The server holds the recording; the confirm digest matched ours
    /// (or was not compared, with `verify_checksum: false`).
    Offloaded,
    /// The last run gave up; `last_error` says why. `--all` tries again.
    Failed,
}

impl OffloadStatus {
    /// `pending`, `uploading`, `offloaded` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OffloadStatus::Pending => "pending",
            OffloadStatus::Uploading => "uploading",
            OffloadStatus::Offloaded => "offloaded",
            OffloadStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for OffloadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The offload state file of one recording (`S_C.offload.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffloadState {
    /// `{session_id}_{camera_id}`.
    pub recording_id: String,
    /// Where the offload stands.
    pub status: OffloadStatus,
    /// Attempts made by the latest run (the first included).
    pub attempts: u32,
    /// Why the latest attempt failed, if it did.
    #[serde(default)]
    pub last_error: Option<String>,
    /// The server the latest run talked to.
    #[serde(default)]
    pub server_url: Option<String>,
    /// The SHA-256 we sent (from the manifest, or computed).
    #[serde(default)]
    pub checksum: Option<Sha256>,
    /// The SHA-256 the server's confirm returned.
    #[serde(default)]
    pub server_checksum: Option<Sha256>,
    /// Bytes of the recording.
    #[serde(default)]
    pub file_size: Option<u64>,
    /// When the confirm matched (RFC 3339 UTC, microseconds, `Z`).
    #[serde(default)]
    pub confirmed_at: Option<String>,
    /// True once `--delete-after-confirm` removed the local recording.
    #[serde(default)]
    pub local_deleted: bool,
    /// When this file was last written.
    pub updated_at: String,
    /// Fields a later version wrote; kept on rewrite.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OffloadState {
    /// A fresh `pending` state for a recording.
    pub fn pending(recording_id: &str) -> OffloadState {
        OffloadState {
            recording_id: recording_id.to_string(),
            status: OffloadStatus::Pending,
            attempts: 0,
            last_error: None,
            server_url: None,
            checksum: None,
            server_checksum: None,
            file_size: None,
            confirmed_at: None,
            local_deleted: false,
            updated_at: now(),
            extra: Map::new(),
        }
    }
}

/// Reads an offload state file: `Ok(None)` when there is none (the
/// recording is pending), an error when it exists but cannot be read or is
/// not a state file. rig-check uses this.
pub fn read_offload_state(path: &Path) -> Result<Option<OffloadState>, OffloadError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OffloadError::State {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| OffloadError::State {
            path: path.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an offload state file: {e}"),
            ),
        })
}

/// Writes an offload state file atomically.
pub fn write_offload_state(path: &Path, state: &OffloadState) -> Result<(), OffloadError> {
    let mut text = serde_json::to_string_pretty(state).unwrap_or_default();
    text.push('\n');
    fsx::atomic_write(path, text.as_bytes()).map_err(|source| OffloadError::State {
        path: path.to_path_buf(),
        source,
    })
}

/// The state file of a manifest outside the Pi layout: beside it, `X.json`
/// -> `X.offload.json` (the same name the layout gives).
pub fn state_path_for_manifest(manifest: &Path) -> PathBuf {
    manifest.with_extension("offload.json")
}

/// A state file for deciding what to do; a corrupt one counts as absent
/// (it is rewritten by the run) but is reported.
pub(super) fn read_state_lenient(path: &Path) -> Option<OffloadState> {
    match read_offload_state(path) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("{e}; treating the recording as not offloaded");
            None
        }
    }
}

/// Now, as the state file writes times (RFC 3339 UTC, microseconds, `Z`).
pub(super) fn now() -> String {
    manifest::format_time(jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_keeps_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m/S_CAM_C.offload.json");
        assert!(read_offload_state(&p).unwrap().is_none());
        let mut s = OffloadState::pending("S_CAM_C");
        s.extra.insert("future".into(), Value::from(1));
        write_offload_state(&p, &s).unwrap();
        let back = read_offload_state(&p).unwrap().unwrap();
        assert_eq!(back, s);
        let v: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        assert_eq!(v["status"], "pending");
        fs::write(&p, "garbage").unwrap();
        assert!(read_offload_state(&p).is_err());
        assert_eq!(
            state_path_for_manifest(Path::new("/x/S_CAM_C.json")),
            Path::new("/x/S_CAM_C.offload.json")
        );
    }
}
