//! Start-up and the temp files of uploads in flight.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tempfile::NamedTempFile;

use super::{Store, StoreError};
use crate::base::layout::UPLOAD_TEMP_PREFIX;

impl Store {
    /// Creates the three directories, checks that `temp/` and `sessions/`
    /// share a filesystem (a verified upload moves by rename), and removes
    /// upload temp files a crash left in `temp/`.
    pub fn prepare(&self) -> Result<(), StoreError> {
        let layout = &self.layout;
        for dir in [&layout.sessions, &layout.processing, &layout.temp] {
            fs::create_dir_all(dir)
                .map_err(StoreError::io(format!("cannot create {}", dir.display())))?;
        }
        let dev = |p: &Path| {
            fs::metadata(p)
                .map(|m| m.dev())
                .map_err(StoreError::io(p.display().to_string()))
        };
        if dev(&layout.sessions)? != dev(&layout.temp)? {
            return Err(StoreError::SplitFilesystems {
                temp: layout.temp.clone(),
                sessions: layout.sessions.clone(),
            });
        }
        let removed = self.remove_upload_leftovers();
        if removed > 0 {
            log::warn!(
                "removed {removed} unfinished upload(s) left in {} by a crash",
                layout.temp.display()
            );
        }
        Ok(())
    }

    /// Removes upload temp files from `temp/`; returns how many.
    pub fn remove_upload_leftovers(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.layout.temp) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(UPLOAD_TEMP_PREFIX) {
                match fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) => log::error!("cannot remove {}: {e}", entry.path().display()),
                }
            }
        }
        removed
    }

    /// A new temp file in `temp/` for an upload's bytes (or a thumbnail
    /// being made, with `kind` after the prefix and `suffix` at the end):
    /// on the sessions filesystem, named so start-up removes it if a crash
    /// leaves it.
    pub fn upload_temp(&self, kind: &str, suffix: &str) -> io::Result<NamedTempFile> {
        tempfile::Builder::new()
            .prefix(&format!("{UPLOAD_TEMP_PREFIX}{kind}"))
            .suffix(suffix)
            .tempfile_in(&self.layout.temp)
    }

    /// Free bytes on the sessions filesystem.
    pub fn free_bytes(&self) -> io::Result<u64> {
        crate::base::fsx::free_space(crate::base::fsx::existing_ancestor(&self.layout.sessions))
    }
}
