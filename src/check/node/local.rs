//! The node itself: clock, CPU temperature, the capture source, and the
//! ffmpeg tools.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::disk::round3;
use super::{CheckItem, TEMP_FAIL_C, TEMP_WARN_C, item};
use crate::base::config::Config;
use crate::base::ffmpeg;
use crate::base::host;
use crate::check::Status;

/// NTP sync, and an offset within half a frame.
pub(super) fn check_clock(config: &Config) -> CheckItem {
    let sync = host::clock_sync();
    let fps = config.recording.fps.max(1);
    let limit_ms = 500.0 / f64::from(fps);
    let value = json!({"synced": sync.synced, "offset_ms": sync.offset_ms,
                       "source": sync.source, "limit_ms": round3(limit_ms)});
    let (status, message, fix) = clock_verdict(&sync, fps, limit_ms);
    item("clock", status, message, fix, value)
}

/// What to fix when the clock is not NTP-synchronized (or nobody says).
const FIX_UNSYNCED: &str = "start chronyd and wait until `chronyc tracking` shows Leap status \
                            Normal (check `chronyc sources`); unsynced cameras do not line up \
                            in the panorama";

/// The clock's status, message and fix: unknown or unsynced fail; more
/// than `limit_ms` off NTP time warns.
fn clock_verdict(
    sync: &host::ClockSync,
    fps: u32,
    limit_ms: f64,
) -> (Status, String, Option<&'static str>) {
    if sync.source == "none" {
        let message = "cannot tell: neither chronyc nor timedatectl answered";
        return (Status::Fail, message.into(), Some(FIX_UNSYNCED));
    }
    if !sync.synced {
        let message = format!("not NTP-synchronized (per {})", sync.source);
        return (Status::Fail, message, Some(FIX_UNSYNCED));
    }
    match sync.offset_ms {
        Some(ms) if ms.abs() > limit_ms => (
            Status::Warn,
            format!(
                "synchronized, but {ms:+.3} ms off NTP time: more than half a frame at {fps} fps ({limit_ms:.1} ms)"
            ),
            Some("wait for chrony to converge (`chronyc tracking`), or `chronyc makestep`"),
        ),
        Some(ms) => (
            Status::Pass,
            format!(
                "synchronized, {ms:+.3} ms off NTP time (per {})",
                sync.source
            ),
            None,
        ),
        None => (
            Status::Pass,
            format!("synchronized (per {}; offset unknown)", sync.source),
            None,
        ),
    }
}

/// CPU temperature against the throttling range.
pub(super) fn check_temperature(zone: &Path) -> CheckItem {
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
pub(super) fn check_source(source: &str) -> CheckItem {
    let value = |kind: &str, target: &str, found: bool| source_value(source, kind, target, found);
    if let Some(dev) = source.strip_prefix("v4l2:") {
        return v4l2_source(source, dev);
    }
    if let Some(cmd) = source.strip_prefix("cmd:") {
        return cmd_source(source, cmd);
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

/// The check's `value`: the source, its kind and target, and whether it is there.
fn source_value(source: &str, kind: &str, target: &str, found: bool) -> Value {
    json!({"source": source, "kind": kind, "target": target, "available": found})
}

/// A `v4l2:` source: the device is a character device.
fn v4l2_source(source: &str, dev: &str) -> CheckItem {
    let value = |kind: &str, target: &str, found: bool| source_value(source, kind, target, found);
    match fs::metadata(dev) {
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
    }
}

/// A `cmd:` source: its program is on PATH and executable.
fn cmd_source(source: &str, cmd: &str) -> CheckItem {
    let value = |kind: &str, target: &str, found: bool| source_value(source, kind, target, found);
    let program = cmd.split_whitespace().next().unwrap_or_default();
    match (!program.is_empty())
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
    }
}

/// An ffmpeg-family tool exists and runs; shows its version.
pub(super) fn check_tool(name: &'static str, configured: &Path) -> CheckItem {
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
    match ffmpeg::version(&path) {
        Ok(version) => item(
            name,
            Status::Pass,
            format!("{} version {version}", path.display()),
            None,
            json!({"path": path, "version": version}),
        ),
        Err(e) => item(
            name,
            Status::Fail,
            e.to_string(),
            Some(&format!("reinstall ffmpeg or set {key}")),
            json!({"path": path, "version": null}),
        ),
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
