//! What is not in the layout (strays, temp files) and the partials kept
//! for a resume, from [`crate::store::Store`]'s walk.

use std::path::Path;

use super::report::{Leftover, LeftoverKind, PartialReport, Problem};
use crate::base::fsx;
use crate::store::{Extra, Store, WalkProblem};

pub(super) fn partial_reports(store: &Store) -> Vec<PartialReport> {
    let store = store.partials();
    let now = jiff::Timestamp::now();
    let mut out: Vec<PartialReport> = store
        .list()
        .into_iter()
        .map(|(path, info)| {
            let age_hours = info
                .updated_at
                .parse::<jiff::Timestamp>()
                .map(|t| ((now.as_second() - t.as_second()) as f64 / 360.0).round() / 10.0)
                .unwrap_or(0.0);
            PartialReport {
                path,
                recording_id: format!("{}_{}", info.session_id, info.camera_id),
                received_bytes: info.received_bytes,
                updated_at: info.updated_at,
                age_hours,
            }
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// What to do about a stray in `processing/`.
const PROCESSING_STRAY_HINT: &str = "not part of the processing layout (jobs.json, jobs.lock, \
                                     stitch.lock) and read by nothing: move it out of \
                                     processing/";

/// The hint of an upload temp file in `temp/`.
const UPLOAD_TEMP_HINT: &str = "an upload in flight, or left by a crash: remove it once rig-receive \
                                is idle (no upload running)";

/// The strays under `sessions/`.
pub(super) fn strays(store: &Store, paths: &[std::path::PathBuf]) -> Vec<Leftover> {
    paths.iter().map(|p| leftover(store, p, None)).collect()
}

/// Everything in `temp/` but partials; in `processing/`, temp files and
/// strays.
pub(super) fn extras(store: &Store, errors: &mut Vec<WalkProblem>) -> Vec<Leftover> {
    store
        .extras(errors)
        .into_iter()
        .map(|extra| match extra {
            Extra::Upload(p) => leftover(store, &p, Some(UPLOAD_TEMP_HINT)),
            Extra::Write(p) => leftover(store, &p, None),
            Extra::Stray(p) => {
                let mut stray = leftover(store, &p, None);
                stray.hint = PROCESSING_STRAY_HINT.to_string();
                stray
            }
        })
        .collect()
}

/// A walk problem as the report gives it.
pub(super) fn problem(p: WalkProblem) -> Problem {
    Problem {
        field: p.path.display().to_string(),
        message: p.message,
    }
}

/// Describes one leftover, summing a directory's files.
fn leftover(store: &Store, path: &Path, hint: Option<&str>) -> Leftover {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let entry = store.entry(path);
    let modified = entry
        .modified
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .map(crate::base::manifest::format_time);
    let temp = hint.is_some() || name.starts_with(fsx::TEMP_PREFIX);
    let hint = match hint {
        Some(h) => h.to_string(),
        None if temp => "a write interrupted by a crash (or in progress right now): remove it \
                         once no rig-* program is writing there"
            .to_string(),
        None => "not part of the layout and read by nothing: move it out of the sessions \
                 directory"
            .to_string(),
    };
    Leftover {
        path: path.to_path_buf(),
        kind: if temp {
            LeftoverKind::Temp
        } else {
            LeftoverKind::Stray
        },
        is_dir: entry.is_dir,
        size_bytes: entry.size,
        modified,
        hint,
    }
}
