//! The audit walk of the server's directories for `rig-check server`: which
//! sessions and cameras exist, and everything that is not in the layout.
//!
//! The walk (walkdir, sorted, never following symlinks) goes three levels
//! deep under `sessions/`: session directories, camera directories (plus
//! `stitched/` and the thumbnail), and the files the layout names there.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use walkdir::WalkDir;

use super::Store;
use crate::base::fsx;
use crate::base::ids::{CameraId, SessionId};
use crate::base::layout::{
    PARTIAL_PREFIX, SERVER_CAMERA_FILES, SERVER_PANORAMA, SERVER_STITCHED, SERVER_THUMBNAIL,
};

/// A directory entry that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkProblem {
    /// The path, as far as known.
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

/// What the walk of `sessions/` found.
#[derive(Debug, Default)]
pub struct Tree {
    /// Sessions and the cameras whose directory exists.
    pub sessions: BTreeMap<SessionId, BTreeSet<CameraId>>,
    /// Entries under `sessions/` that are not in the layout (a directory
    /// is listed once, not its contents).
    pub strays: Vec<PathBuf>,
    /// Entries that could not be read.
    pub errors: Vec<WalkProblem>,
}

/// Something in `temp/` or `processing/` that is not a partial or the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// In `temp/`: an upload in flight, or one a crash left.
    Upload(PathBuf),
    /// A [`fsx::TEMP_PREFIX`] file in `processing/`: an atomic write in
    /// flight or interrupted.
    Write(PathBuf),
    /// Anything else in `processing/`.
    Stray(PathBuf),
}

/// The facts about one path that a report gives.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Its size, or the total of a directory's files.
    pub size: u64,
    /// Its mtime.
    pub modified: Option<SystemTime>,
}

impl Store {
    /// Walks `sessions/` (only `only`'s directory when given).
    pub fn walk(&self, only: Option<&SessionId>) -> Tree {
        let mut tree = Tree::default();
        let mut it = WalkDir::new(&self.layout.sessions)
            .min_depth(1)
            .max_depth(3)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = it.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tree.errors.push(WalkProblem {
                        path: e.path().map(Path::to_path_buf).unwrap_or_default(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let is_dir = entry.file_type().is_dir();
            let keep = match self.classify(&entry, only, &mut tree) {
                Some(keep) => keep,
                None => {
                    if is_dir {
                        it.skip_current_dir();
                    }
                    continue;
                }
            };
            if !keep {
                if is_dir {
                    it.skip_current_dir();
                }
                tree.strays.push(entry.path().to_path_buf());
            }
        }
        tree
    }

    /// Whether a walked entry is in the layout (recording sessions and
    /// cameras in `tree`); `None` for a session other than `only`.
    fn classify(
        &self,
        entry: &walkdir::DirEntry,
        only: Option<&SessionId>,
        tree: &mut Tree,
    ) -> Option<bool> {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ft = entry.file_type();
        // Components under sessions/: [session, camera-or-stitched, file].
        let parts = self.parts_under_sessions(entry);
        Some(match entry.depth() {
            1 => {
                let id = SessionId::parse(&name).ok().filter(|_| ft.is_dir());
                if only.is_some() && id.as_ref() != only {
                    return None;
                }
                id.map(|id| tree.sessions.entry(id).or_default()).is_some()
            }
            2 => classify_in_session(&name, ft, parts.first(), tree),
            _ => {
                let parent = parts.get(1).map(String::as_str).unwrap_or_default();
                ft.is_file() && file_allowed_in(parent, &name)
            }
        })
    }

    /// The components of a walked entry's path under `sessions/`.
    fn parts_under_sessions(&self, entry: &walkdir::DirEntry) -> Vec<String> {
        entry
            .path()
            .strip_prefix(&self.layout.sessions)
            .map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Everything in `temp/` but partials; in `processing/`, temp files
    /// and anything that is not the queue, its lock or rig-stitch's lock.
    pub fn extras(&self, errors: &mut Vec<WalkProblem>) -> Vec<Extra> {
        let mut out = Vec::new();
        for (dir, is_temp) in [(&self.layout.temp, true), (&self.layout.processing, false)] {
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    errors.push(WalkProblem {
                        path: dir.clone(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let mut paths: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            out.extend(paths.into_iter().filter_map(|p| self.extra(p, is_temp)));
        }
        out
    }

    fn extra(&self, path: PathBuf, in_temp: bool) -> Option<Extra> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if in_temp {
            // A partial kept for a resume: reported apart, not an extra.
            return (!name.starts_with(PARTIAL_PREFIX)).then_some(Extra::Upload(path));
        }
        if name.starts_with(fsx::TEMP_PREFIX) {
            return Some(Extra::Write(path));
        }
        (!self.processing_allows(&path)).then_some(Extra::Stray(path))
    }

    /// What `processing/` may hold besides temp files: the queue, its lock
    /// and rig-stitch's lock.
    fn processing_allows(&self, path: &Path) -> bool {
        let l = &self.layout;
        [l.jobs_file(), l.jobs_lock(), l.stitch_lock()]
            .iter()
            .any(|p| p == path)
            // A sessions or temp directory configured inside processing/ is
            // not a stray; it is walked on its own.
            || path == l.sessions
            || path == l.temp
    }

    /// Size and mtime of `path` (not following symlinks), a directory's
    /// size being the total of its files.
    pub fn entry(&self, path: &Path) -> Entry {
        let meta = fs::symlink_metadata(path).ok();
        let is_dir = meta.as_ref().is_some_and(|m| m.is_dir());
        let size = if is_dir {
            WalkDir::new(path)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        } else {
            meta.as_ref().map_or(0, |m| m.len())
        };
        Entry {
            is_dir,
            size,
            modified: meta.and_then(|m| m.modified().ok()),
        }
    }

    /// The panorama's size, when it is a regular file (not following symlinks).
    pub fn panorama_file_size(&self, session: &SessionId) -> Option<u64> {
        fs::symlink_metadata(self.layout.panorama(session))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }
}

/// Whether an entry directly in a session directory is in the layout: a
/// camera directory (recorded in `tree`), `stitched/`, or the thumbnail.
fn classify_in_session(
    name: &str,
    ft: std::fs::FileType,
    session: Option<&String>,
    tree: &mut Tree,
) -> bool {
    let session = session.and_then(|s| SessionId::parse(s).ok());
    match (CameraId::parse(name), session) {
        (Ok(camera), Some(session)) if ft.is_dir() => {
            tree.sessions.entry(session).or_default().insert(camera);
            true
        }
        _ => (ft.is_dir() && name == SERVER_STITCHED) || (ft.is_file() && name == SERVER_THUMBNAIL),
    }
}

/// Whether a file named `name` belongs in `parent` (a camera directory or
/// `stitched/`).
fn file_allowed_in(parent: &str, name: &str) -> bool {
    let allowed: &[&str] = if CameraId::parse(parent).is_ok() {
        &SERVER_CAMERA_FILES
    } else {
        &[SERVER_PANORAMA]
    };
    allowed.contains(&name)
}
