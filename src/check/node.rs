//! `rig-check node`: the pre-flight of a camera node before kick-off.
//!
//! Each check answers one question with a figure (free GB and the minutes
//! they buy, clock offset, °C, the server's free space, the backlog's size)
//! and, when it is not PASS, what to do. Nothing here changes the node: the
//! only write is a temp file in the storage root, removed at once, to prove
//! it is writable.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use super::{CheckError, HashJob, Status, hash_all, human_bytes, human_minutes};
use crate::base::checksum::Sha256;
use crate::base::config::{Config, GB};
use crate::base::fsx;
use crate::base::host;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::layout::PiLayout;
use crate::base::manifest::Manifest;
use crate::base::protocol::HEALTH_PATH;
use crate::base::replies::HealthReply;

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
    let camera = config
        .node
        .camera()
        .map_err(|e| CheckError::Setup(e.to_string()))?;
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

/// The storage root exists, is a directory, and takes a file.
fn check_root(root: &Path, checks: &mut Vec<CheckItem>) -> bool {
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
fn check_free_space(config: &Config, opts: &NodeOptions, root: &Path) -> CheckItem {
    let bitrate = config.recording.bitrate_mbps;
    let min_gb = config.node.min_free_space_gb;
    if !root.is_dir() {
        return item(
            "free_space",
            Status::Fail,
            "storage root missing; free space unknown".into(),
            Some("fix the storage root first"),
            json!({"free_bytes": null, "free_gb": null, "minutes": null,
                   "bitrate_mbps": bitrate, "min_free_space_gb": min_gb,
                   "match_minutes": opts.match_minutes}),
        );
    }
    match fsx::free_space(root) {
        Ok(free) => {
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
            let mut message = format!(
                "{free_gb:.1} GB free: {} of recording at {bitrate} Mbps",
                human_minutes(minutes)
            );
            match status {
                Status::Fail => message.push_str(&format!(
                    "; below node.min_free_space_gb ({min_gb:.1} GB), rig-record will refuse to start"
                )),
                Status::Warn => message.push_str(&format!(
                    "; a match needs {}",
                    human_minutes(opts.match_minutes)
                )),
                Status::Pass => {}
            }
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
        Err(e) => item(
            "free_space",
            Status::Fail,
            format!("cannot tell free space: {e}"),
            Some("check the storage root's filesystem"),
            json!({"free_bytes": null, "free_gb": null, "minutes": null,
                   "bitrate_mbps": bitrate, "min_free_space_gb": min_gb,
                   "match_minutes": opts.match_minutes}),
        ),
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// NTP sync, and an offset within half a frame.
fn check_clock(config: &Config) -> CheckItem {
    let sync = host::clock_sync();
    let fps = config.recording.fps.max(1);
    let limit_ms = 500.0 / f64::from(fps);
    let value = json!({"synced": sync.synced, "offset_ms": sync.offset_ms,
                       "source": sync.source, "limit_ms": round3(limit_ms)});
    let fix_unsynced = "start chronyd and wait until `chronyc tracking` shows Leap status Normal \
                        (check `chronyc sources`); unsynced cameras do not line up in the panorama";
    if sync.source == "none" {
        return item(
            "clock",
            Status::Fail,
            "cannot tell: neither chronyc nor timedatectl answered".into(),
            Some(fix_unsynced),
            value,
        );
    }
    if !sync.synced {
        return item(
            "clock",
            Status::Fail,
            format!("not NTP-synchronized (per {})", sync.source),
            Some(fix_unsynced),
            value,
        );
    }
    match sync.offset_ms {
        Some(ms) if ms.abs() > limit_ms => item(
            "clock",
            Status::Warn,
            format!(
                "synchronized, but {ms:+.3} ms off NTP time: more than half a frame at {fps} fps ({limit_ms:.1} ms)"
            ),
            Some("wait for chrony to converge (`chronyc tracking`), or `chronyc makestep`"),
            value,
        ),
        Some(ms) => item(
            "clock",
            Status::Pass,
            format!(
                "synchronized, {ms:+.3} ms off NTP time (per {})",
                sync.source
            ),
            None,
            value,
        ),
        None => item(
            "clock",
            Status::Pass,
            format!("synchronized (per {}; offset unknown)", sync.source),
            None,
            value,
        ),
    }
}

/// CPU temperature against the throttling range.
fn check_temperature(zone: &Path) -> CheckItem {
    let value =
        |c: Option<f64>| json!({"celsius": c, "warn_c": TEMP_WARN_C, "fail_c": TEMP_FAIL_C});
    match host::read_millidegrees(zone) {
        None => item(
            "temperature",
            Status::Warn,
            format!("unknown: cannot read {}", zone.display()),
            Some("on a Pi this file exists; check the kernel's thermal driver"),
            value(None),
        ),
        Some(c) => {
            let status = if c >= TEMP_FAIL_C {
                Status::Fail
            } else if c >= TEMP_WARN_C {
                Status::Warn
            } else {
                Status::Pass
            };
            item(
                "temperature",
                status,
                format!("CPU at {c:.1} °C (warn {TEMP_WARN_C} °C, fail {TEMP_FAIL_C} °C)"),
                Some("shade the Pi and check its fan/heatsink: a throttled encoder drops frames"),
                value(Some(c)),
            )
        }
    }
}

/// Finds a program: a path with `/` as given, else the first match on PATH.
pub fn find_program(program: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() > 1 || program.is_absolute() {
        return executable(program).then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

/// The configured capture source is there.
fn check_source(source: &str) -> CheckItem {
    let value = |kind: &str, target: &str, found: bool| json!({"source": source, "kind": kind, "target": target, "available": found});
    if let Some(dev) = source.strip_prefix("v4l2:") {
        use std::os::unix::fs::FileTypeExt;
        return match fs::metadata(dev) {
            Ok(m) if m.file_type().is_char_device() => item(
                "source",
                Status::Pass,
                format!("V4L2 device {dev} present"),
                None,
                value("v4l2", dev, true),
            ),
            Ok(_) => item(
                "source",
                Status::Fail,
                format!("{dev} exists but is not a character device"),
                Some("set recording.source to the camera's /dev/videoN (v4l2-ctl --list-devices)"),
                value("v4l2", dev, false),
            ),
            Err(e) => item(
                "source",
                Status::Fail,
                format!("V4L2 device {dev}: {e}"),
                Some(
                    "connect the camera and check `ls /dev/video*` / `v4l2-ctl --list-devices`, \
                     then set recording.source",
                ),
                value("v4l2", dev, false),
            ),
        };
    }
    if let Some(cmd) = source.strip_prefix("cmd:") {
        let program = cmd.split_whitespace().next().unwrap_or_default();
        return match (!program.is_empty())
            .then(|| find_program(Path::new(program)))
            .flatten()
        {
            Some(found) => item(
                "source",
                Status::Pass,
                format!("command {program} found at {}", found.display()),
                None,
                value("cmd", program, true),
            ),
            None => item(
                "source",
                Status::Fail,
                format!("command {program:?} not found on PATH or not executable"),
                Some("install the capture program (e.g. rpicam-vid) or fix recording.source"),
                value("cmd", program, false),
            ),
        };
    }
    if source == "test" {
        return item(
            "source",
            Status::Warn,
            "test pattern (lavfi testsrc), not a camera".into(),
            Some("set recording.source to v4l2:/dev/videoN or cmd:<capture command> for a match"),
            value("test", "", true),
        );
    }
    item(
        "source",
        Status::Fail,
        format!("recording.source {source:?} is not v4l2:<device>, cmd:<command> or test"),
        Some("fix recording.source in the config"),
        value("unknown", "", false),
    )
}

/// An ffmpeg-family tool exists and runs; shows its version.
fn check_tool(name: &'static str, configured: &Path) -> CheckItem {
    let key = format!("processing.{name}_path");
    let Some(path) = find_program(configured) else {
        return item(
            name,
            Status::Fail,
            format!("{} not found or not executable", configured.display()),
            Some(&format!("install ffmpeg (apt install ffmpeg) or set {key}")),
            json!({"path": configured, "version": null}),
        );
    };
    match Command::new(&path).arg("-version").output() {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let version = text
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(2))
                .unwrap_or("unknown")
                .to_string();
            item(
                name,
                Status::Pass,
                format!("{} version {version}", path.display()),
                None,
                json!({"path": path, "version": version}),
            )
        }
        Ok(out) => item(
            name,
            Status::Fail,
            format!("{} -version exited with {}", path.display(), out.status),
            Some(&format!("reinstall ffmpeg or set {key}")),
            json!({"path": path, "version": null}),
        ),
        Err(e) => item(
            name,
            Status::Fail,
            format!("{} does not run: {e}", path.display()),
            Some(&format!("reinstall ffmpeg or set {key}")),
            json!({"path": path, "version": null}),
        ),
    }
}

/// `GET /api/v1/health`; returns the check and the server's free GB.
fn check_server(url: &str, config: &Config, opts: &NodeOptions) -> (CheckItem, Option<f64>) {
    let health = format!("{}{HEALTH_PATH}", url.trim_end_matches('/'));
    let fix =
        "start rig-receive on the server, check the network and offload.server_url (or --server)";
    let connect =
        Duration::from_secs(config.offload.connect_timeout_sec.max(1)).min(opts.health_timeout);
    let fail = |message: String, http: Option<u16>| {
        (
            item(
                "server",
                Status::Fail,
                message,
                Some(fix),
                json!({"url": health, "reachable": http.is_some(), "http_status": http,
                       "status": null, "storage_free_gb": null, "active_uploads": null}),
            ),
            None,
        )
    };
    let builder = match crate::base::http::agent_builder(&config.offload) {
        Ok(b) => b,
        Err(e) => return fail(e.to_string(), None),
    };
    let agent: ureq::Agent = builder
        .timeout_connect(Some(connect))
        .timeout_global(Some(opts.health_timeout))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut req = agent.get(&health);
    match crate::base::http::api_key(&config.offload) {
        Ok(Some(key)) => req = req.header("Authorization", crate::base::http::bearer(&key)),
        Ok(None) => {}
        Err(e) => return fail(e.to_string(), None),
    }
    let mut resp = match req.call() {
        Ok(r) => r,
        Err(e) if crate::base::http::is_tls_failure(&e) => {
            return fail(
                format!("{} ({e})", crate::base::http::tls_hint(&health)),
                None,
            );
        }
        Err(e) => return fail(format!("{health} unreachable: {e}"), None),
    };
    let code = resp.status().as_u16();
    let mut body = String::new();
    if let Err(e) = resp
        .body_mut()
        .as_reader()
        .take(MAX_SMALL_BYTES)
        .read_to_string(&mut body)
    {
        return fail(
            format!("{health}: reading the reply failed: {e}"),
            Some(code),
        );
    }
    if code != 200 {
        return fail(format!("{health} answered HTTP {code}"), Some(code));
    }
    let h = match crate::base::replies::health_reply(&body) {
        Ok(h) => h,
        Err(why) => {
            return fail(
                format!("{health} answered 200 but not a health reply: {why}"),
                Some(code),
            );
        }
    };
    let value = json!({"url": health, "reachable": true, "http_status": code,
                       "status": h.status, "storage_free_gb": h.storage_free_gb,
                       "active_uploads": h.active_uploads});
    (health_item(&health, &h, value), h.storage_free_gb)
}

/// The check a health reply makes: PASS when healthy with its figures,
/// WARN when not healthy or when it does not tell its free space (another
/// PROTOCOL.md server, e.g. the Python reference).
fn health_item(health: &str, h: &HealthReply, value: serde_json::Value) -> CheckItem {
    let uploads = h.active_uploads.map_or_else(
        || "upload count unknown".into(),
        |n| format!("{n} upload(s) active"),
    );
    let (free, figure) = match h.storage_free_gb {
        Some(gb) => (true, format!("{gb:.1} GB free, {uploads}")),
        None => (false, format!("free space unknown, {uploads}")),
    };
    if h.status != "healthy" {
        return item(
            "server",
            Status::Warn,
            format!("{health} reports {:?}: {figure}", h.status),
            Some("free space on the server (rig-check server shows what is there)"),
            value,
        );
    }
    if !free {
        return item(
            "server",
            Status::Warn,
            format!("{health} healthy: {figure} (the server does not report it)"),
            Some("check the server's free space there; the backlog check is skipped"),
            value,
        );
    }
    item(
        "server",
        Status::Pass,
        format!("{health} healthy: {figure}"),
        None,
        value,
    )
}

/// What a state file says (the fields rig-check shows).
struct StateSummary {
    status: String,
    attempts: Option<u64>,
    last_error: Option<String>,
}

/// Reads an offload state file; `Ok(None)` when there is none (pending).
fn read_state(path: &Path) -> Result<Option<StateSummary>, String> {
    let text = match fs::metadata(path) {
        Ok(m) if m.len() > MAX_SMALL_BYTES => {
            return Err(format!(
                "{}: {} bytes, too large for a state file",
                path.display(),
                m.len()
            ));
        }
        Ok(_) => fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let status = v
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{}: no \"status\" string", path.display()))?;
    Ok(Some(StateSummary {
        status: status.to_string(),
        attempts: v.get("attempts").and_then(Value::as_u64),
        last_error: v
            .get("last_error")
            .and_then(Value::as_str)
            .map(str::to_string),
    }))
}

/// Sessions and cameras found as `DIR/S/C/` directories.
fn recordings_under(dir: &Path) -> Vec<RecordingId> {
    let mut out = Vec::new();
    let Ok(sessions) = fs::read_dir(dir) else {
        return out;
    };
    for s in sessions.flatten() {
        let Some(session) = s
            .file_name()
            .to_str()
            .and_then(|n| SessionId::parse(n).ok())
        else {
            continue;
        };
        let Ok(cams) = fs::read_dir(s.path()) else {
            continue;
        };
        for c in cams.flatten() {
            if let Some(camera) = c.file_name().to_str().and_then(|n| CameraId::parse(n).ok())
                && c.path().is_dir()
            {
                out.push(RecordingId::new(session.clone(), camera));
            }
        }
    }
    out
}

/// Recordings not offloaded yet, their size, and with `--verify` their integrity.
fn check_backlog(
    pi: &PiLayout,
    root_ok: bool,
    opts: &NodeOptions,
) -> (CheckItem, Vec<BacklogItem>) {
    let fix = "run rig-upload to offload them";
    let mut ids = recordings_under(&pi.manifests_dir());
    ids.extend(recordings_under(&pi.recordings_dir()));
    ids.sort();
    ids.dedup();

    let mut items = Vec::new();
    let mut manifests = Vec::new();
    let mut hard = 0usize;
    for rec in ids {
        let manifest_path = pi.manifest(&rec);
        let path = pi.recording(&rec);
        let size = fs::metadata(&path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len());
        let mut problems = Vec::new();
        let (state, attempts, last_error) = if !manifest_path.is_file() {
            if size.is_none() {
                continue; // an empty directory: nothing to offload
            }
            problems.push(
                "no manifest: still recording, or the recorder died \
                 (rig-manifest create --recover builds one)"
                    .to_string(),
            );
            ("no_manifest".to_string(), None, None)
        } else {
            match read_state(&pi.offload_state(&rec)) {
                Ok(Some(s)) if s.status == "offloaded" => continue,
                Ok(Some(s)) => (s.status, s.attempts, s.last_error),
                Ok(None) => ("pending".to_string(), None, None),
                Err(e) => {
                    problems.push(format!("offload state unreadable: {e}"));
                    ("unknown".to_string(), None, None)
                }
            }
        };
        let mut manifest = None;
        if state != "no_manifest" {
            match Manifest::read(&manifest_path) {
                Ok(m) => manifest = Some(m),
                Err(e) => {
                    hard += 1;
                    problems.push(format!(
                        "{}: {e}; rig-upload will not send it",
                        manifest_path.display()
                    ));
                }
            }
        }
        if size.is_none() {
            hard += 1;
            problems.push(format!(
                "{} is missing but was never offloaded",
                path.display()
            ));
        }
        if let (Some(m), Some(size)) = (&manifest, size)
            && m.file.size_bytes != size
        {
            hard += 1;
            problems.push(format!(
                "file.size_bytes: the manifest says {} bytes, the file has {size}",
                m.file.size_bytes
            ));
        }
        manifests.push(manifest.map(|m| m.checksum.value));
        items.push(BacklogItem {
            recording_id: rec.to_string(),
            state,
            path,
            size_bytes: size,
            attempts,
            last_error,
            verified: None,
            sha256: None,
            problems,
        });
    }

    if opts.verify {
        let idx: Vec<usize> = (0..items.len())
            .filter(|&i| items[i].size_bytes.is_some() && manifests[i].is_some())
            .collect();
        let jobs: Vec<HashJob> = idx
            .iter()
            .map(|&i| HashJob {
                path: items[i].path.clone(),
                size: items[i].size_bytes.unwrap_or(0),
            })
            .collect();
        for (&i, result) in idx.iter().zip(hash_all(&jobs, opts.progress)) {
            let Some(want) = manifests[i] else { continue };
            let it = &mut items[i];
            match result {
                Ok(d) if d.sha256 == want => {
                    it.verified = Some(true);
                    it.sha256 = Some(d.sha256);
                }
                Ok(d) => {
                    hard += 1;
                    it.problems.push(format!(
                        "checksum.value: the file hashes to {}, the manifest says {want}",
                        d.sha256
                    ));
                    it.verified = Some(false);
                    it.sha256 = Some(d.sha256);
                }
                Err(e) => {
                    hard += 1;
                    it.problems.push(format!("cannot read: {e}"));
                    it.verified = Some(false);
                }
            }
        }
    }

    let bytes: u64 = items.iter().filter_map(|b| b.size_bytes).sum();
    let failed = items.iter().filter(|b| b.state == "failed").count();
    let value = json!({"recordings": items.len(), "bytes": bytes, "failed": failed,
                       "problems": hard, "verified": opts.verify});
    let check = if !root_ok && !pi.root.is_dir() {
        item(
            "backlog",
            Status::Fail,
            "storage root missing; backlog unknown".into(),
            Some("fix the storage root first"),
            value,
        )
    } else if hard > 0 {
        item(
            "backlog",
            Status::Fail,
            format!(
                "{} recording(s), {} not offloaded; {hard} problem(s) put them at risk",
                items.len(),
                human_bytes(bytes)
            ),
            Some(
                "see the backlog list; re-create broken manifests (rig-manifest create --recover)",
            ),
            value,
        )
    } else if items.is_empty() {
        item(
            "backlog",
            Status::Pass,
            "every recording is offloaded".into(),
            None,
            value,
        )
    } else {
        let verified = if opts.verify {
            ", all match their manifests"
        } else {
            ""
        };
        item(
            "backlog",
            Status::Warn,
            format!(
                "{} recording(s), {} not offloaded yet{}{verified}",
                items.len(),
                human_bytes(bytes),
                if failed > 0 {
                    format!(" ({failed} failed)")
                } else {
                    String::new()
                }
            ),
            Some(fix),
            value,
        )
    };
    (check, items)
}

impl NodeReport {
    /// The report for people: one line per check, fixes under failures,
    /// the backlog, and a one-line verdict.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rig-check node: {} ({}), storage {}",
            self.hostname.as_deref().unwrap_or("unknown host"),
            self.camera_id,
            self.storage_root.display()
        );
        for c in &self.checks {
            let _ = writeln!(out, "{}  {:<12}  {}", c.status, c.name, c.message);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
        if !self.backlog.is_empty() {
            let _ = writeln!(out, "\nbacklog ({}):", self.backlog.len());
            for b in &self.backlog {
                let mut line = format!(
                    "  {}  {}  {}",
                    b.recording_id,
                    b.state,
                    b.size_bytes.map(human_bytes).unwrap_or_else(|| "-".into())
                );
                if let Some(a) = b.attempts {
                    line.push_str(&format!(", {a} attempt(s)"));
                }
                if let Some(e) = &b.last_error {
                    line.push_str(&format!(", last error: {e}"));
                }
                match b.verified {
                    Some(true) => line.push_str(", verified"),
                    Some(false) => line.push_str(", VERIFY FAILED"),
                    None => {}
                }
                let _ = writeln!(out, "{line}");
                for p in &b.problems {
                    let _ = writeln!(out, "      {p}");
                }
            }
        }
        let fails = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .count();
        let warns = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Warn)
            .count();
        let _ = writeln!(
            out,
            "\n{}: {} checks, {fails} failed, {warns} warned",
            self.status,
            self.checks.len()
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(check_source("test").status, Status::Warn);
        assert_eq!(
            check_source("v4l2:/nonexistent/video9").status,
            Status::Fail
        );
        assert_eq!(
            check_source("v4l2:/dev/null").status,
            Status::Pass,
            "a char device"
        );
        assert_eq!(check_source("v4l2:/etc/hostname").status, Status::Fail);
        assert_eq!(check_source("cmd:sh -c true").status, Status::Pass);
        let missing = check_source("cmd:no-such-capture-tool --x");
        assert_eq!(missing.status, Status::Fail);
        assert!(
            missing.message.contains("no-such-capture-tool"),
            "{}",
            missing.message
        );
        assert_eq!(check_source("rtsp://x").status, Status::Fail);
    }

    #[test]
    fn temperatures() {
        let dir = tempfile::tempdir().unwrap();
        let zone = dir.path().join("temp");
        for (milli, want) in [
            ("55000\n", Status::Pass),
            ("72500", Status::Warn),
            ("81000", Status::Fail),
        ] {
            fs::write(&zone, milli).unwrap();
            let c = check_temperature(&zone);
            assert_eq!(c.status, want, "{milli}");
            assert_eq!(
                c.value["celsius"].as_f64().unwrap() * 1000.0,
                milli.trim().parse::<f64>().unwrap()
            );
        }
        assert_eq!(
            check_temperature(&dir.path().join("none")).status,
            Status::Warn
        );
    }

    #[test]
    fn tools() {
        assert_eq!(
            check_tool("ffmpeg", Path::new("/nonexistent/ffmpeg")).status,
            Status::Fail
        );
        let sh = check_tool("ffmpeg", Path::new("false"));
        assert_eq!(sh.status, Status::Fail, "{}", sh.message);
    }
}
