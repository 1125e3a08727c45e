//! What to offload: the files of one recording ([`Source`]), and the
//! recordings of a Pi layout in the order `--all` sends them.

use std::path::{Path, PathBuf};

use super::error::OffloadError;
use super::state::state_path_for_manifest;
use crate::base::fsx;
use crate::base::ids::RecordingId;
use crate::base::layout::PiLayout;
use crate::base::manifest::{self, Manifest};

/// The files of one recording.
#[derive(Debug, Clone)]
pub struct Source {
    /// The video.
    pub video: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// Its offload state file.
    pub state: PathBuf,
    /// The recording the caller asked for; the manifest must agree.
    pub expect: Option<RecordingId>,
}

impl Source {
    /// A recording in the Pi layout.
    pub fn in_layout(layout: &PiLayout, rec: &RecordingId) -> Source {
        Source {
            video: layout.recording(rec),
            manifest: layout.manifest(rec),
            state: layout.offload_state(rec),
            expect: Some(rec.clone()),
        }
    }

    /// An arbitrary video and manifest; state beside the manifest.
    pub fn pair(video: &Path, manifest: &Path) -> Source {
        Source {
            video: video.to_path_buf(),
            manifest: manifest.to_path_buf(),
            state: state_path_for_manifest(manifest),
            expect: None,
        }
    }
}

/// Every recording with a manifest in the layout, oldest first (by
/// `timing.start_time`, then recording ID; manifests whose time cannot be
/// read come last). Only files named exactly as the layout names manifests
/// count: `manifests/S/C/S_C.json`.
pub fn pending_recordings(layout: &PiLayout) -> Result<Vec<RecordingId>, OffloadError> {
    let dir = layout.manifests_dir();
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(Option<jiff::Timestamp>, RecordingId)> = Vec::new();
    for entry in walkdir::WalkDir::new(&dir).min_depth(3).max_depth(3) {
        let entry = entry.map_err(|e| OffloadError::Io {
            path: e.path().unwrap_or(&dir).to_path_buf(),
            source: e.into(),
        })?;
        if let Some(rec) = manifest_in_place(layout, &entry) {
            let start = Manifest::read(entry.path())
                .ok()
                .and_then(|m| manifest::parse_time(&m.timing.start_time).ok());
            found.push((start, rec));
        }
    }
    found.sort_by(|(ta, a), (tb, b)| match (ta, tb) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.to_string().cmp(&b.to_string())),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.to_string().cmp(&b.to_string()),
    });
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

/// The recording whose manifest `entry` is, when it is one: a `S_C.json`
/// file (not a state file, not a temp file) exactly where the layout puts
/// that recording's manifest.
fn manifest_in_place(layout: &PiLayout, entry: &walkdir::DirEntry) -> Option<RecordingId> {
    let name = entry.file_name().to_string_lossy();
    if !entry.file_type().is_file()
        || name.ends_with(".offload.json")
        || name.starts_with(fsx::TEMP_PREFIX)
    {
        return None;
    }
    let stem = name.strip_suffix(".json")?;
    let Ok(rec) = RecordingId::parse(stem) else {
        log::debug!("{}: not a manifest name, skipped", entry.path().display());
        return None;
    };
    if layout.manifest(&rec) != entry.path() {
        log::debug!(
            "{}: not where its manifest belongs, skipped",
            entry.path().display()
        );
        return None;
    }
    Some(rec)
}
