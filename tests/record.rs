//! rig-record end to end: real ffmpeg capturing lavfi's testsrc2 (and a
//! `cmd` producer), real ffprobe, sha256sum as the reference digest, real
//! signals. Every test asserts on content: bytes, digests, fields, exit
//! codes and messages.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::receiver::{Log, Receiver};
use common::{ffprobe_json, sha256sum, stderr, stdout};
use serde_json::Value;
use soccer_rig::base::manifest::Manifest;

const BIN: &str = env!("CARGO_BIN_EXE_rig-record");
const MANIFEST_BIN: &str = env!("CARGO_BIN_EXE_rig-manifest");
const FPS: f64 = 15.0;

/// A temp dir with `root/` (the Pi storage root) and `config.yaml`.
struct Rig {
    dir: tempfile::TempDir,
}

impl Rig {
    fn new(codec: &str, extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        let rig = Rig { dir };
        let config = format!(
            "node:\n  storage_root: {}\n  camera_id: CAM_L\n{extra}\
             recording:\n  source: test\n  codec: {codec}\n  width: 320\n  height: 180\n  \
             fps: 15\n  bitrate_mbps: 1\n  preset: ultrafast\n  fsync_interval_sec: 0.5\n",
            rig.root().display()
        );
        fs::write(rig.config(), config).unwrap();
        rig
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    fn video(&self, session: &str) -> PathBuf {
        self.root()
            .join(format!("recordings/{session}/CAM_L/{session}_CAM_L.mp4"))
    }

    fn manifest(&self, session: &str) -> PathBuf {
        self.root()
            .join(format!("manifests/{session}/CAM_L/{session}_CAM_L.json"))
    }

    fn args<'a>(&'a self, more: &[&'a str]) -> Vec<String> {
        let mut a = vec!["--config".to_string(), self.config().display().to_string()];
        a.extend(more.iter().map(|s| s.to_string()));
        a
    }

    fn run(&self, more: &[&str]) -> Output {
        Command::new(BIN)
            .args(self.args(more))
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    }

    fn spawn(&self, more: &[&str]) -> Child {
        Command::new(BIN)
            .args(self.args(more))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The top-level MP4 boxes of a file, as (type, size).
fn boxes(path: &Path) -> Vec<(String, u64)> {
    let data = fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let mut size = u64::from(u32::from_be_bytes(data[at..at + 4].try_into().unwrap()));
        let kind = String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned();
        if size == 1 && at + 16 <= data.len() {
            size = u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap());
        } else if size == 0 {
            size = (data.len() - at) as u64;
        }
        out.push((kind, size));
        if size < 8 {
            break;
        }
        at += size as usize;
    }
    out
}

/// ffmpeg decodes every frame without a single error message.
fn decodes_cleanly(path: &Path) -> String {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn probe_duration(path: &Path) -> f64 {
    ffprobe_json(path)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The checks every finished recording must pass: layout paths, manifest
/// valid, digest = sha256sum, fields = ffprobe, fragmented structure.
fn assert_recording(rig: &Rig, session: &str, codec: &str) -> Manifest {
    let video = rig.video(session);
    let manifest_path = rig.manifest(session);
    let m = Manifest::read(&manifest_path).expect("manifest validates");
    let bytes = fs::metadata(&video).unwrap().len();
    assert_eq!(m.checksum.value.to_string(), sha256sum(&video));
    assert_eq!(m.file.size_bytes, bytes);
    assert_eq!(m.recording.id, format!("{session}_CAM_L"));
    assert_eq!(m.recording.position, "left");
    assert_eq!(m.file.name, format!("{session}_CAM_L.mp4"));

    let probe = ffprobe_json(&video);
    let v = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap();
    assert_eq!(
        u64::from(m.video.resolution.width),
        v["width"].as_u64().unwrap()
    );
    assert_eq!(
        u64::from(m.video.resolution.height),
        v["height"].as_u64().unwrap()
    );
    assert_eq!(v["r_frame_rate"], "15/1");
    assert_eq!(m.video.fps, 15);
    let want_codec = if codec == "h265" { "hevc" } else { "h264" };
    assert_eq!(v["codec_name"], want_codec);
    assert_eq!(m.file.codec, codec);
    assert_eq!(m.file.container, "mp4");
    assert_eq!(m.video.bitrate_mbps, 1, "the configured target bitrate");
    assert!((m.video.duration_sec - probe_duration(&video)).abs() < 1e-5);
    assert_eq!(m.quality.as_ref().unwrap().dropped_frames, Some(0));

    let start: jiff::Timestamp = m.timing.start_time.parse().unwrap();
    let end: jiff::Timestamp = m.timing.end_time.parse().unwrap();
    assert!(m.timing.start_time.ends_with('Z') && m.timing.start_time.len() == 27);
    let span = end.duration_since(start).as_secs_f64();
    assert!(
        span >= m.video.duration_sec - 0.3,
        "start..end {span} s covers the {} s of video",
        m.video.duration_sec
    );

    // Crash-safe structure: header up front, then self-contained fragments.
    let kinds: Vec<String> = boxes(&video).into_iter().map(|(k, _)| k).collect();
    assert_eq!(&kinds[..2], ["ftyp", "moov"], "{kinds:?}");
    let fragments = kinds.iter().filter(|k| *k == "moof").count();
    assert!(
        fragments as f64 >= m.video.duration_sec.floor(),
        "one fragment per second at least: {kinds:?}"
    );
    assert_eq!(decodes_cleanly(&video), "", "clean decode");

    // Nothing else beside the manifest (no temp files left).
    let names: Vec<_> = fs::read_dir(manifest_path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    m
}

fn timed_recording(codec: &str) {
    let rig = Rig::new(codec, "");
    let o = rig.run(&["--session", "JVvsRivals_Home", "--duration", "3", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = assert_recording(&rig, "JVvsRivals_Home", codec);
    assert!(
        (m.video.duration_sec - 3.0).abs() <= 2.0 / FPS + 1e-6,
        "duration {} within two frames of 3 s",
        m.video.duration_sec
    );
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["success"], true);
    assert_eq!(j["stop"], "duration");
    assert_eq!(j["frames"], 45);
    assert_eq!(j["checksum_sha256"], m.checksum.value.to_string().as_str());
    assert_eq!(j["size_bytes"], m.file.size_bytes);
    assert_eq!(
        j["manifest"].as_str().map(PathBuf::from),
        Some(rig.manifest("JVvsRivals_Home"))
    );
}

#[test]
fn records_h264_with_a_manifest_from_reality() {
    timed_recording("h264");
}

#[test]
fn records_h265_with_a_manifest_from_reality() {
    timed_recording("h265");
}

/// Waits until the recording holds at least `bytes` (a failure bound, not a
/// speed assertion).
fn wait_for_bytes(path: &Path, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::metadata(path).map(|m| m.len()).unwrap_or(0) < bytes {
        assert!(Instant::now() < deadline, "{} never grew", path.display());
        thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_child(child);
    rustix::process::kill_process(pid, sig).unwrap();
}

#[test]
fn sigint_stops_cleanly_with_file_and_manifest() {
    let rig = Rig::new("h264", "");
    let child = rig.spawn(&["--session", "S_INT", "--json"]);
    wait_for_bytes(&rig.video("S_INT"), 1000);
    thread::sleep(Duration::from_secs(2));
    signal(&child, rustix::process::Signal::INT);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["stop"], "signal");
    assert_eq!(j["problems"], Value::Array(vec![]));
    assert!(
        j["fsyncs"].as_u64().unwrap() >= 1,
        "synced while recording: {j}"
    );
    let m = assert_recording(&rig, "S_INT", "h264");
    assert!(m.video.duration_sec > 0.5, "{}", m.video.duration_sec);
}

#[test]
fn cmd_source_stops_on_sigint() {
    let producer = "ffmpeg -v error -nostdin -re -f lavfi -i testsrc2=size=320x180:rate=15 \
                    -f rawvideo -pix_fmt yuv420p -";
    let rig = Rig::new("h264", "");
    let source = format!("cmd-yuv420p:{producer}");
    let child = rig.spawn(&["--session", "S_CMD", "--source", &source, "--json"]);
    wait_for_bytes(&rig.video("S_CMD"), 1000);
    thread::sleep(Duration::from_secs(1));
    signal(&child, rustix::process::Signal::TERM);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["stop"], "signal");
    let m = assert_recording(&rig, "S_CMD", "h264");
    assert!(m.video.duration_sec > 0.5);
}

#[test]
fn cmd_source_with_a_probed_stream() {
    // ffmpeg probes the MPEG-TS input, buffers it, then writes in a burst:
    // the manifest's times must still span the whole video.
    let producer = "ffmpeg -v error -nostdin -re -f lavfi -i testsrc2=size=320x180:rate=15 \
                    -c:v mpeg2video -q:v 3 -f mpegts -";
    let rig = Rig::new("h264", "");
    let source = format!("cmd:{producer}");
    let o = rig.run(&["--session", "S_TS", "--source", &source, "--duration", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = assert_recording(&rig, "S_TS", "h264");
    assert!((m.video.duration_sec - 2.0).abs() <= 2.0 / FPS + 1e-6);
}

#[test]
fn sigkill_leaves_a_playable_file_that_recover_describes() {
    let rig = Rig::new("h264", "");
    let mut child = rig.spawn(&["--session", "S_KILL"]);
    let video = rig.video("S_KILL");
    // Two fragments of ~125 kB each at 1 Mbps.
    wait_for_bytes(&video, 200_000);
    signal(&child, rustix::process::Signal::KILL);
    child.wait().unwrap();
    assert!(
        !rig.manifest("S_KILL").exists(),
        "no manifest after a crash"
    );
    let d = probe_duration(&video);
    assert!(d > 0.0, "ffprobe reads {d} s");

    let cfg = rig.config();
    let o = common::run(
        MANIFEST_BIN,
        &[
            "create",
            "--config",
            cfg.to_str().unwrap(),
            "--session",
            "S_KILL",
            "--camera",
            "CAM_L",
            "--recover",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let path = rig.manifest("S_KILL");
    let o = common::run(MANIFEST_BIN, &["validate", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let m = Manifest::read(&path).unwrap();
    assert_eq!(m.extra.get("recovered"), Some(&Value::Bool(true)));
    assert!(!m.timing.ntp_synced);
    assert_eq!(m.checksum.value.to_string(), sha256sum(&video));
    assert_eq!(m.file.size_bytes, fs::metadata(&video).unwrap().len());
    assert!((m.video.duration_sec - d).abs() < 1e-5);
}

/// `create --recover` is for a recording whose rig-record died: while
/// rig-record is still writing, it refuses and writes nothing; once
/// rig-record has stopped (and written its own manifest), the file is no
/// longer live.
#[test]
fn recover_refuses_a_recording_that_is_still_live() {
    let rig = Rig::new("h264", "");
    let child = rig.spawn(&["--session", "S_LIVE"]);
    let video = rig.video("S_LIVE");
    wait_for_bytes(&video, 1000);
    let cfg = rig.config();
    let recover = |out: &str| {
        common::run(
            MANIFEST_BIN,
            &[
                "--config",
                cfg.to_str().unwrap(),
                "create",
                "--session",
                "S_LIVE",
                "--camera",
                "CAM_L",
                "--recover",
                "--out",
                out,
            ],
        )
    };
    let o = recover("-");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&video.display().to_string()) && err.contains("still recording"),
        "{err}"
    );
    assert!(o.stdout.is_empty(), "no manifest printed");
    // Without --out, it would have written the Pi layout's manifest.
    let o = recover(rig.manifest("S_LIVE").to_str().unwrap());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));

    signal(&child, rustix::process::Signal::INT);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // rig-record's own manifest, not one from the refused recoveries.
    let m = assert_recording(&rig, "S_LIVE", "h264");
    assert_eq!(m.extra.get("recovered"), None);
    let o = recover("-");
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        r["checksum"]["value"],
        m.checksum.value.to_string().as_str()
    );
}

#[test]
fn refuses_an_existing_recording_and_leaves_it_alone() {
    let rig = Rig::new("h264", "");
    let video = rig.video("S_OLD");
    fs::create_dir_all(video.parent().unwrap()).unwrap();
    fs::write(&video, b"the only copy of a match").unwrap();
    let o = rig.run(&["--session", "S_OLD", "--duration", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["error"], "target_exists");
    assert!(stderr(&o).contains("never overwritten"), "{}", stderr(&o));
    assert_eq!(fs::read(&video).unwrap(), b"the only copy of a match");
    assert!(!rig.manifest("S_OLD").exists());
}

#[test]
fn refuses_when_free_space_is_short() {
    // Without a duration: the configured floor, far above any disk.
    let rig = Rig::new("h264", "  min_free_space_gb: 1000000000\n");
    let o = rig.run(&["--session", "S_FULL"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("GB free") && err.contains("node.min_free_space_gb"),
        "{err}"
    );
    assert!(!rig.root().join("recordings").exists(), "nothing created");

    // With a duration: bitrate x duration x 1.1 (1 Mbps for 24 h is 11.9 GB:
    // use a bitrate no disk here can hold for a day).
    let rig = Rig::new("h264", "");
    let cfg = fs::read_to_string(rig.config())
        .unwrap()
        .replace("bitrate_mbps: 1", "bitrate_mbps: 4000000");
    fs::write(rig.config(), cfg).unwrap();
    let o = rig.run(&["--session", "S_FULL", "--duration", "86400", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["error"], "insufficient_space");
    assert!(
        j["message"].as_str().unwrap().contains("x 86400 s x 1.1"),
        "{j}"
    );
}

#[test]
fn guards_name_what_is_wrong() {
    let rig = Rig::new("h264", "");
    let gone = rig.dir.path().join("not-mounted");
    let cfg = fs::read_to_string(rig.config()).unwrap();
    fs::write(
        rig.config(),
        cfg.replace(
            &rig.root().display().to_string(),
            &gone.display().to_string(),
        ),
    )
    .unwrap();
    let o = rig.run(&["--duration", "1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("node.storage_root"), "{}", stderr(&o));
    assert!(!gone.exists());

    let rig = Rig::new("h264", "processing:\n  ffmpeg_path: /nonexistent/ffmpeg\n");
    let o = rig.run(&["--duration", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["error"], "ffmpeg_missing");
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("apt-get install ffmpeg")
    );

    // ffprobe builds the manifest: without it nothing may start.
    let rig = Rig::new(
        "h264",
        "processing:\n  ffprobe_path: /nonexistent/ffprobe\n",
    );
    let o = rig.run(&["--duration", "1", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["error"], "ffprobe_missing", "{j}");
    let msg = j["message"].as_str().unwrap();
    assert!(
        msg.contains("/nonexistent/ffprobe") && msg.contains("processing.ffprobe_path"),
        "{msg}"
    );
    assert!(!rig.root().join("recordings").exists(), "nothing created");

    let rig = Rig::new("h264", "");
    let o = rig.run(&["--duration", "1", "--source", "v4l2:/dev/video-none"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/dev/video-none"), "{}", stderr(&o));
    let o = rig.run(&[
        "--duration",
        "1",
        "--source",
        "cmd:no-such-camera-tool -o -",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no-such-camera-tool"), "{}", stderr(&o));
    assert!(!rig.root().join("recordings").exists(), "nothing created");

    for (args, needle) in [
        (&["--duration", "-1"][..], "--duration"),
        (&["--camera", "CAM_Z"][..], "--camera"),
        (&["--session", "../x"][..], "--session"),
        (&["--source", "rtsp://cam"][..], "recording.source"),
        (&["--bogus"][..], "--bogus"),
    ] {
        let o = rig.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn self_test_reports_every_check_and_cleans_up() {
    let rig = Rig::new("h264", "");
    let o = rig.run(&["--test", "--duration", "2"]);
    let out = stdout(&o);
    let names = [
        "frames written",
        "dropped frames",
        "fps reached",
        "keeps up",
        "file playable",
        "checksum ok",
        "manifest valid",
    ];
    for name in names {
        assert!(
            out.lines()
                .any(|l| (l.starts_with("PASS  ") || l.starts_with("FAIL  "))
                    && l[6..].starts_with(&format!("{name}:"))),
            "{name} missing:\n{out}"
        );
    }
    // Content, not timing: these cannot fail on a slow machine.
    for name in [
        "frames written",
        "file playable",
        "checksum ok",
        "manifest valid",
    ] {
        assert!(
            out.contains(&format!("PASS  {name}:")),
            "{out}\n{}",
            stderr(&o)
        );
    }
    assert!(out.contains("30 frames, 30 expected"), "{out}");
    let failed = out.lines().any(|l| l.starts_with("FAIL"));
    assert_eq!(o.status.code(), Some(if failed { 1 } else { 0 }), "{out}");
    // The scratch session is gone; the layout was never touched.
    let left: Vec<_> = fs::read_dir(rig.root()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A self test whose recording cannot even start still reports every
/// check, each as FAIL, and exits 1.
#[test]
fn self_test_fails_every_check_when_the_recording_fails() {
    let rig = Rig::new("h264", "");
    let o = rig.run(&[
        "--test",
        "--duration",
        "2",
        "--source",
        "v4l2:/dev/video-none",
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    let recording = out
        .lines()
        .find(|l| l.starts_with("FAIL  recording: "))
        .unwrap_or_else(|| panic!("no recording line:\n{out}"));
    assert!(
        recording.contains("source_unavailable") && recording.contains("/dev/video-none"),
        "{recording}"
    );
    for name in [
        "frames written",
        "dropped frames",
        "fps reached",
        "keeps up",
        "file playable",
        "checksum ok",
        "manifest valid",
    ] {
        assert!(
            out.contains(&format!("FAIL  {name}: not checked")),
            "{name}:\n{out}"
        );
    }
    assert!(!out.contains("PASS"), "{out}");
    assert!(out.contains("node NOT ready"), "{out}");

    let o = rig.run(&[
        "--test",
        "--duration",
        "2",
        "--source",
        "v4l2:/dev/video-none",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["success"], false);
    let checks = j["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 8, "{j}");
    assert!(checks.iter().all(|c| c["pass"] == false), "{j}");
    let left: Vec<_> = fs::read_dir(rig.root()).unwrap().collect();
    assert!(left.is_empty(), "scratch removed: {left:?}");
}

/// A setting no machine encodes in real time (x264's slowest preset at
/// 640x360 and 240 fps): the test FAILs `keeps up`, gives the encode speed
/// against real time and names the setting to change first. On a slow
/// machine ffmpeg overruns the duration and the recording itself fails;
/// `keeps up` still reports what was encoded.
#[test]
fn self_test_fails_a_setting_too_slow_for_real_time_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let config = dir.path().join("config.yaml");
    let yaml = format!(
        "node:\n  storage_root: {}\n  camera_id: CAM_L\nrecording:\n  source: test\n  \
         codec: h264\n  preset: placebo\n  width: 640\n  height: 360\n  fps: 240\n  \
         bitrate_mbps: 1\n",
        root.display()
    );
    fs::write(&config, yaml).unwrap();
    let o = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--test", "--duration", "0.5"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", stderr(&o));
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL  keeps up: encodes at "))
        .unwrap_or_else(|| panic!("no failed keeps up:\n{out}\n{}", stderr(&o)));
    for needle in [
        "x real time (",
        "of 240 fps)",
        "libx264 (preset placebo) at 640x360 240 fps is too slow for real time",
        "set recording.preset: ultrafast, or recording.fps: 30",
    ] {
        assert!(line.contains(needle), "{needle}: {line}");
    }
    assert!(out.contains("node NOT ready"), "{out}");
}

#[test]
fn help_and_version() {
    let o = common::run(BIN, &["--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("--duration SECS"));
    let o = common::run(BIN, &["--version"]);
    assert_eq!(
        stdout(&o).trim(),
        format!("rig-record {}", env!("CARGO_PKG_VERSION"))
    );
}

/// `offload.upload_on_record_stop`: the recording goes to the server right
/// after its manifest is written, through the same client as rig-upload.
#[test]
fn upload_on_record_stop_offloads_to_a_real_server() {
    let server_dir = tempfile::tempdir().unwrap();
    let server_cfg = server_dir.path().join("server.yaml");
    fs::write(&server_cfg, "storage:\n  min_free_space_gb: 0.01\n").unwrap();
    let server_root = server_dir.path().join("root");
    let server = Receiver::spawn(&server_cfg, &server_root, "127.0.0.1:0", Log::Warn);
    let addr = server.addr;

    let rig = Rig::new(
        "h264",
        &format!("offload:\n  server_url: \"http://{addr}\"\n  upload_on_record_stop: true\n"),
    );
    let o = rig.run(&["--session", "AUTOUP", "--duration", "2", "--json"]);
    drop(server);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        report["offload"]
            .as_str()
            .unwrap_or("")
            .contains("offloaded"),
        "{report}"
    );
    let stored = server_root.join("sessions/AUTOUP/CAM_L/recording.mp4");
    assert_eq!(
        fs::read(stored).unwrap(),
        fs::read(rig.video("AUTOUP")).unwrap()
    );
    let state_path = rig
        .root()
        .join("manifests/AUTOUP/CAM_L/AUTOUP_CAM_L.offload.json");
    let state: Value = serde_json::from_str(&fs::read_to_string(state_path).unwrap()).unwrap();
    assert_eq!(state["status"], "offloaded", "{state}");
}
