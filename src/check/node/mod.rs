//! `rig-check node`: the pre-flight of a camera node before kick-off.
//!
//! Each check answers one question with a figure (free GB and the minutes
//! they buy, clock offset, °C, the server's free space, the backlog's size)
//! and, when it is not PASS, what to do. Nothing here changes the node: the
//! only write is a temp file in the storage root, removed at once, to prove
//! it is writable.

mod backlog;
mod disk;
mod health;
mod local;
mod text;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{CheckError, Status};
use crate::base::checksum::Sha256;
use crate::base::config::{Config, GB};
use crate::base::host;
use crate::base::layout::PiLayout;
use crate::base::units::human_bytes;

use backlog::check_backlog;
use disk::{check_free_space, check_root};
use health::check_server;
use local::{check_clock, check_source, check_temperature, check_tool};

pub use local::find_program;

/// Minutes of recording a match needs by default: 90 minutes of play, half
/// time, stoppage time and a margin.
pub const DEFAULT_MATCH_MINUTES: f64 = 120.0;

/// CPU temperature at which a WARN is given (a Pi throttles from 80 °C).
pub const TEMP_WARN_C: f64 = 70.0;
/// CPU temperature at which the check fails.
pub const TEMP_FAIL_C: f64 = 80.0;

/// Longest the health request may take by default.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest health reply or offload state file read.
const MAX_SMALL_BYTES: u64 = 64 * 1024;

/// What `rig-check node` should do.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Hash every recording not yet offloaded against its manifest
    /// (`--verify`). Off by default: it reads every backlog byte.
    pub verify: bool,
    /// Draw a progress line on stderr while hashing.
    pub progress: bool,
    /// Recording time a match needs; less free space than this buys is a
    /// WARN (`--minutes`). Default [`DEFAULT_MATCH_MINUTES`].
    pub match_minutes: f64,
    /// The sysfs file with the CPU temperature in m°C. Default
    /// [`host::THERMAL_ZONE`].
    pub thermal_zone: PathBuf,
    /// Longest the health request may take. Default [`DEFAULT_HEALTH_TIMEOUT`].
    pub health_timeout: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            verify: false,
            progress: false,
            match_minutes: DEFAULT_MATCH_MINUTES,
            thermal_zone: PathBuf::from(host::THERMAL_ZONE),
            health_timeout: DEFAULT_HEALTH_TIMEOUT,
        }
    }
}

/// One pre-flight check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckItem {
    /// Stable name: `storage_root`, `free_space`, `clock`, `temperature`,
    /// `source`, `ffmpeg`, `ffprobe`, `server`, `backlog`.
    pub name: &'static str,
    /// PASS, WARN or FAIL.
    pub status: Status,
    /// The figure behind the verdict, in words.
    pub message: String,
    /// What to do when not PASS.
    pub fix: Option<String>,
    /// The figures as numbers, for scripts (keys fixed per check).
    pub value: Value,
}

/// A recording on the node that is not yet offloaded.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogItem {
    /// `{session}_{camera}`.
    pub recording_id: String,
    /// The offload state: `pending` (also when no state file exists),
    /// `uploading`, `failed`, or `no_manifest` for a recording without one.
    pub state: String,
    /// The recording file.
    pub path: PathBuf,
    /// Its size, when present.
    pub size_bytes: Option<u64>,
    /// Upload attempts so far, from the state file.
    pub attempts: Option<u64>,
    /// The last upload error, from the state file.
    pub last_error: Option<String>,
    /// With `--verify`: whether the file matched its manifest (null when not checked).
    pub verified: Option<bool>,
    /// The computed digest, with `--verify`.
    pub sha256: Option<Sha256>,
    /// Everything wrong with it (missing file, invalid manifest, mismatch).
    pub problems: Vec<String>,
}

/// The whole node pre-flight.
#[derive(Debug, Clone, Serialize)]
pub struct NodeReport {
    /// Always `node`.
    pub check: &'static str,
    /// The worst check.
    pub status: Status,
    /// When the check ran.
    pub checked_at: String,
    /// This node's host name.
    pub hostname: Option<String>,
    /// The configured camera.
    pub camera_id: String,
    /// The storage root checked.
    pub storage_root: PathBuf,
    /// The checks, in a fixed order.
    pub checks: Vec<CheckItem>,
    /// Recordings not yet offloaded.
    pub backlog: Vec<BacklogItem>,
}

fn item(
    name: &'static str,
    status: Status,
    message: String,
    fix: Option<&str>,
    value: Value,
) -> CheckItem {
    CheckItem {
        name,
        status,
        message,
        fix: if status == Status::Pass {
            None
        } else {
            fix.map(str::to_string)
        },
        value,
    }
}

/// Runs the node pre-flight with a loaded configuration (flags applied).
///
/// Fails only on a configuration the checks cannot interpret (a bad
/// `node.camera_id`); everything else is a finding.
pub fn check_node(config: &Config, opts: &NodeOptions) -> Result<NodeReport, CheckError> {
    let camera = config.node.camera().map_err(CheckError::Config)?;
    let root = config.node.storage_root.clone();
    let pi = PiLayout::new(&root);

    let mut checks = Vec::new();
    let root_ok = check_root(&root, &mut checks);
    checks.push(check_free_space(config, opts, &root));
    checks.push(check_clock(config));
    checks.push(check_temperature(&opts.thermal_zone));
    checks.push(check_source(&config.recording.source));
    checks.push(check_tool("ffmpeg", &config.processing.ffmpeg_path));
    checks.push(check_tool("ffprobe", &config.processing.ffprobe_path));
    let (mut server, server_free) = check_server(&config.offload.server_url, config, opts);
    let (backlog_check, backlog) = check_backlog(&pi, root_ok, opts);
    let backlog_bytes: u64 = backlog.iter().filter_map(|b| b.size_bytes).sum();
    warn_if_server_short(&mut server, server_free, backlog_bytes);
    checks.push(server);
    checks.push(backlog_check);

    let status = checks
        .iter()
        .fold(Status::Pass, |acc, c| acc.worst(c.status));
    Ok(NodeReport {
        check: "node",
        status,
        checked_at: super::now_rfc3339(),
        hostname: host::hostname(),
        camera_id: camera.to_string(),
        storage_root: root,
        checks,
        backlog,
    })
}

/// Turns a passing server check into a warning when the server's free
/// space (`server_free`, GB) is less than this node's backlog.
fn warn_if_server_short(server: &mut CheckItem, server_free: Option<f64>, backlog_bytes: u64) {
    if let Some(free_gb) = server_free
        && server.status == Status::Pass
        && free_gb * GB < backlog_bytes as f64
    {
        server.status = Status::Warn;
        server.message.push_str(&format!(
            "; less than the {} backlog of this node",
            human_bytes(backlog_bytes)
        ));
        server.fix = Some("free space on the server before offloading".into());
    }
}
