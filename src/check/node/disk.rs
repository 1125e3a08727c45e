//! The storage root: there, writable, and with room for a match.

use std::fs;
use std::path::Path;

use serde_json::json;

use super::{CheckItem, NodeOptions, item};
use crate::base::config::{Config, GB};
use crate::base::fsx;
use crate::check::Status;
use crate::check::human_minutes;

/// The storage root exists, is a directory, and takes a file.
pub(super) fn check_root(root: &Path, checks: &mut Vec<CheckItem>) -> bool {
    let fix = "mount the recording disk, or set node.storage_root (or --root) to where it is";
    let value = |exists: bool, writable: bool| json!({"path": root, "exists": exists, "writable": writable});
    let (status, message, ok) = match fs::metadata(root) {
        Ok(m) if m.is_dir() => match tempfile::Builder::new()
            .prefix(fsx::TEMP_PREFIX)
            .tempfile_in(root)
        {
            Ok(_probe) => (
                Status::Pass,
                format!("{} exists and is writable", root.display()),
                true,
            ),
            Err(e) => (
                Status::Fail,
                format!("{} is not writable: {e}", root.display()),
                false,
            ),
        },
        Ok(_) => (
            Status::Fail,
            format!("{} is not a directory", root.display()),
            false,
        ),
        Err(e) => (Status::Fail, format!("{}: {e}", root.display()), false),
    };
    let exists = root.is_dir();
    checks.push(item(
        "storage_root",
        status,
        message,
        Some(fix),
        value(exists, ok),
    ));
    ok
}

/// Free space, and the recording time it buys at the configured bitrate.
pub(super) fn check_free_space(config: &Config, opts: &NodeOptions, root: &Path) -> CheckItem {
    let unknown = |message: String, fix: &str| {
        item(
            "free_space",
            Status::Fail,
            message,
            Some(fix),
            json!({"free_bytes": null, "free_gb": null, "minutes": null,
                   "bitrate_mbps": config.recording.bitrate_mbps,
                   "min_free_space_gb": config.node.min_free_space_gb,
                   "match_minutes": opts.match_minutes}),
        )
    };
    if !root.is_dir() {
        return unknown(
            "storage root missing; free space unknown".into(),
            "fix the storage root first",
        );
    }
    match fsx::free_space(root) {
        Ok(free) => free_space_item(config, opts, free),
        Err(e) => unknown(
            format!("cannot tell free space: {e}"),
            "check the storage root's filesystem",
        ),
    }
}

/// The verdict on `free` bytes: FAIL under `node.min_free_space_gb`, WARN
/// when they record less than a match.
fn free_space_item(config: &Config, opts: &NodeOptions, free: u64) -> CheckItem {
    let bitrate = config.recording.bitrate_mbps;
    let min_gb = config.node.min_free_space_gb;
    let bytes_per_min = f64::from(bitrate) * 1e6 / 8.0 * 60.0;
    let minutes = free as f64 / bytes_per_min;
    let free_gb = free as f64 / GB;
    let status = if free_gb < min_gb {
        Status::Fail
    } else if minutes < opts.match_minutes {
        Status::Warn
    } else {
        Status::Pass
    };
    let message = format!(
        "{free_gb:.1} GB free: {} of recording at {bitrate} Mbps{}",
        human_minutes(minutes),
        free_space_advice(status, min_gb, opts.match_minutes)
    );
    item(
        "free_space",
        status,
        message,
        Some(
            "offload recordings (rig-upload) and delete confirmed ones \
             (rig-upload --delete-after-confirm)",
        ),
        json!({"free_bytes": free, "free_gb": round3(free_gb),
               "minutes": round3(minutes), "bitrate_mbps": bitrate,
               "min_free_space_gb": min_gb, "match_minutes": opts.match_minutes}),
    )
}

/// What a failing or warning free space means: rig-record refuses to start
/// under `min_gb`; a match needs `match_minutes`.
fn free_space_advice(status: Status, min_gb: f64, match_minutes: f64) -> String {
    match status {
        Status::Fail => format!(
            "; below node.min_free_space_gb ({min_gb:.1} GB), rig-record will refuse to start"
        ),
        Status::Warn => format!("; a match needs {}", human_minutes(match_minutes)),
        Status::Pass => String::new(),
    }
}

pub(super) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
