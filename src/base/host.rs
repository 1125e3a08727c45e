//! Facts about the machine we run on: name, address, clock sync, temperature.
//!
//! Used to fill a manifest's `device.*`, `timing.ntp_synced`,
//! `timing.sync_offset_ms` and `quality.temperature_*`, and by the node
//! pre-flight. Every fact is optional: a missing tool or file means "unknown",
//! never an error.

use std::path::Path;
use std::process::Command;

/// Where a Pi (and most Linux boards) report the SoC temperature, in m°C.
pub const THERMAL_ZONE: &str = "/sys/class/thermal/thermal_zone0/temp";

/// This software's version, for `device.software_version`.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The host name, from the kernel.
pub fn hostname() -> Option<String> {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_string();
    (!name.is_empty()).then_some(name)
}

/// The first non-loopback address `hostname -I` lists, if any.
pub fn ip_address() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_string)
}

/// Clock synchronisation as far as this machine knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockSync {
    /// Whether the clock is NTP-synchronized.
    pub synced: bool,
    /// Offset of the local clock from NTP time, ms; positive = local is ahead.
    pub offset_ms: Option<f64>,
    /// Which tool said so: `chronyc`, `timedatectl`, or `none`.
    pub source: &'static str,
}

/// Asks `chronyc tracking`, then `timedatectl`, else reports unsynced.
pub fn clock_sync() -> ClockSync {
    if let Some(text) = run_stdout("chronyc", &["tracking"])
        && let Some(sync) = parse_chronyc_tracking(&text)
    {
        return sync;
    }
    if let Some(text) = run_stdout("timedatectl", &["show", "-p", "NTPSynchronized", "--value"]) {
        let synced = text.trim() == "yes";
        return ClockSync {
            synced,
            offset_ms: None,
            source: "timedatectl",
        };
    }
    ClockSync {
        synced: false,
        offset_ms: None,
        source: "none",
    }
}

/// Reads `chronyc tracking` output: "Leap status" tells sync, "System time"
/// the offset ("N seconds fast of NTP time" means the local clock is ahead).
pub fn parse_chronyc_tracking(text: &str) -> Option<ClockSync> {
    let value = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let leap = value("Leap status")?;
    let synced = leap != "Not synchronised";
    let offset_ms = value("System time").and_then(|v| {
        let mut words = v.split_whitespace();
        let secs: f64 = words.next()?.parse().ok()?;
        let sign = if v.contains("slow") { -1.0 } else { 1.0 };
        Some(sign * secs * 1000.0)
    });
    Some(ClockSync {
        synced,
        offset_ms: if synced { offset_ms } else { None },
        source: "chronyc",
    })
}

/// The CPU temperature in °C, if the thermal zone file exists.
pub fn cpu_temperature_c() -> Option<f64> {
    read_millidegrees(Path::new(THERMAL_ZONE))
}

/// Reads a sysfs temperature file (millidegrees Celsius).
pub fn read_millidegrees(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse::<f64>().ok().map(|m| m / 1000.0)
}

/// Runs a command found on PATH; its stdout when it succeeded.
fn run_stdout(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHRONY_SYNCED: &str = "Reference ID    : C0A80101 (192.168.1.1)\n\
        Stratum         : 3\n\
        System time     : 0.000002300 seconds slow of NTP time\n\
        Leap status     : Normal\n";

    #[test]
    fn chronyc_synced_and_offset_sign() {
        let s = parse_chronyc_tracking(CHRONY_SYNCED).unwrap();
        assert!(s.synced);
        let ms = s.offset_ms.unwrap();
        assert!((ms + 0.0023).abs() < 1e-9, "{ms}");
        let fast = CHRONY_SYNCED.replace("slow", "fast");
        assert!(parse_chronyc_tracking(&fast).unwrap().offset_ms.unwrap() > 0.0);
    }

    #[test]
    fn chronyc_unsynced() {
        let text = CHRONY_SYNCED.replace("Normal", "Not synchronised");
        let s = parse_chronyc_tracking(&text).unwrap();
        assert!(!s.synced);
        assert_eq!(s.offset_ms, None);
        assert!(parse_chronyc_tracking("garbage").is_none());
    }

    #[test]
    fn hostname_is_known() {
        assert!(hostname().is_some());
    }
}
