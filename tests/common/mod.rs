//! Helpers shared by the integration tests: real clips from real ffmpeg,
//! reference digests from coreutils, and reference facts from ffprobe.
//!
//! Each test binary includes this with `mod common;` and uses what it needs.
#![allow(dead_code)]

pub mod clips;
pub mod curl;
pub mod pi;
pub mod proxy;
pub mod receiver;
pub mod refserver;
pub mod scene;
pub mod sync_rig;
pub mod wire;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Makes an MP4 test clip with lavfi `testsrc`: `secs` seconds of `w`x`h` at
/// `fps`, encoded with `encoder` (`libx264` or `libx265`).
pub fn make_clip(
    dir: &Path,
    name: &str,
    encoder: &str,
    secs: f64,
    w: u32,
    h: u32,
    fps: u32,
) -> PathBuf {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={w}x{h}:rate={fps}:duration={secs}"))
        .args(["-c:v", encoder, "-pix_fmt", "yuv420p"])
        .args(if encoder == "libx265" {
            &["-x265-params", "log-level=error", "-tag:v", "hvc1"][..]
        } else {
            &[][..]
        })
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg failed to make {name}");
    out
}

/// A 2 s 320x180 15 fps H.264 clip: the workhorse of most tests.
pub fn small_clip(dir: &Path, name: &str) -> PathBuf {
    make_clip(dir, name, "libx264", 2.0, 320, 180, 15)
}

/// `sha256sum FILE`'s digest: the reference our hashing is compared with.
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// ffprobe's JSON for a file (format + streams).
pub fn ffprobe_json(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs a program with args (and no config file from the machine), returning its output.
pub fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("SOCCER_RIG_CONFIG", "/dev/null")
        .env_remove("RUST_LOG")
        .output()
        .expect("run program")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs ffmpeg quietly (`-v error -nostdin -y` and `args`); panics with its
/// stderr if it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg must be installed (apt-get install ffmpeg)");
    assert!(out.status.success(), "ffmpeg {args:?}: {}", stderr(&out));
}

/// The frames each camera skips, in a stitch plan's JSON (`plan.cameras`).
pub fn skipped_frames(plan: &serde_json::Value) -> Vec<u64> {
    plan["cameras"]
        .as_array()
        .expect("plan.cameras is an array")
        .iter()
        .map(|c| c["skipped_frames"].as_u64().expect("skipped_frames"))
        .collect()
}
