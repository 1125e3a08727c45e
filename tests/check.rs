//! rig-check against real trees: a server tree built by uploading real clips
//! with real manifests through the real rig-receive, damaged one way at a
//! time; a Pi tree with offload states; a fake `chronyc` on PATH; the real
//! rig-receive running and stopped, and a stub health server for exact figures.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::receiver::{Log, Receiver};
use serde_json::Value;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::jobs::JobQueue;
use soccer_rig::base::layout::{PiLayout, ServerLayout};
use soccer_rig::base::manifest::describe::{DescribeOptions, describe};

const BIN: &str = env!("CARGO_BIN_EXE_rig-check");

/// Three distinct real clips (one per camera), made once per test binary.
fn clips() -> &'static [PathBuf; 3] {
    static CLIPS: OnceLock<[PathBuf; 3]> = OnceLock::new();
    let specs = [
        ("clip2.mp4", 2.0, 15),
        ("clip2.2.mp4", 2.2, 15),
        ("clip2.4.mp4", 2.4, 15),
    ];
    common::clips::three(&CLIPS, specs)
}

fn clip_for(camera: CameraId) -> &'static Path {
    &clips()[CameraId::ALL.iter().position(|&c| c == camera).unwrap()]
}

fn describe_opts() -> DescribeOptions {
    DescribeOptions {
        ffprobe: "ffprobe".into(),
        bitrate_mbps: Some(30),
        ..DescribeOptions::default()
    }
}

impl Receiver {
    /// The real rig-receive of `root` (see `common::receiver`), its config
    /// `ROOT.receive.yaml` with a floor any test machine clears.
    fn start(root: &Path) -> Receiver {
        let config = root.with_extension("receive.yaml");
        fs::write(&config, "storage:\n  min_free_space_gb: 0.001\n").unwrap();
        Receiver::spawn(&config, root, "127.0.0.1:0", Log::Warn)
    }

    /// Uploads a clip as a recording with its manifest, as rig-upload does,
    /// with curl; asserts the server verified the checksum.
    fn upload(&self, clip: &Path, rec: &RecordingId, work: &Path) {
        let manifest = describe(clip, rec, &describe_opts()).unwrap();
        let manifest_path = work.join(format!("{rec}.json"));
        fs::write(&manifest_path, manifest.to_json_pretty()).unwrap();
        let fields = [
            (
                "file",
                format!(
                    "{};filename={}",
                    common::curl::mp4(clip),
                    rec.video_file_name()
                ),
            ),
            ("session_id", rec.session.to_string()),
            ("camera_id", rec.camera.to_string()),
            ("checksum", manifest.checksum.value.to_string()),
            ("manifest", format!("<{}", manifest_path.display())),
        ];
        let (_, body) = common::curl::upload(&self.url, &fields, &["--max-time", "60"]);
        let reply: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("upload of {rec}: {e}: {body}"));
        assert_eq!(reply["success"], true, "upload of {rec}: {reply}");
        assert_eq!(reply["checksum_verified"], true, "upload of {rec}: {reply}");
    }

    /// SIGTERM, and the graceful exit 0 the contract promises.
    fn stop(self) {
        assert_eq!(self.terminate(), Some(0), "rig-receive after SIGTERM");
    }
}

/// A server tree built the way production builds it: every recording of
/// `sessions` uploaded with its manifest through the real rig-receive, which
/// stores recording.mp4, manifest.json and recording.sha256 and queues a
/// stitch job per complete session.
fn server_tree(root: &Path, sessions: &[&str]) -> ServerLayout {
    let layout = ServerLayout::under(root);
    let work = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(root);
    for s in sessions {
        let session = SessionId::parse(s).unwrap();
        for camera in CameraId::ALL {
            let rec = RecordingId::new(session.clone(), camera);
            receiver.upload(clip_for(camera), &rec, work.path());
        }
    }
    receiver.stop();
    fs::create_dir_all(&layout.temp).unwrap();
    layout
}

/// A config whose floors any test machine clears.
fn config_file(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    fs::write(
        &path,
        format!("storage:\n  min_free_space_gb: 0.001\n{extra}"),
    )
    .unwrap();
    path
}

fn rig_check(args: &[&str], path_prefix: Option<&Path>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env("SOCCER_RIG_CONFIG", "/dev/null")
        .env_remove("RUST_LOG");
    if let Some(dir) = path_prefix {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir.to_path_buf()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    }
    cmd.output().unwrap()
}

/// Runs `rig-check --json server` on a root; exit code and the document.
fn server_json(root: &Path, config: &Path, extra: &[&str]) -> (i32, Value) {
    let root = root.to_str().unwrap();
    let config = config.to_str().unwrap();
    let mut args = vec!["--json", "--config", config, "server", "--root", root];
    args.extend_from_slice(extra);
    let out = rig_check(&args, None);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            common::stdout(&out),
            common::stderr(&out)
        )
    });
    (out.status.code().unwrap(), doc)
}

fn recording<'a>(doc: &'a Value, session: &str, camera: &str) -> &'a Value {
    let s = doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == session)
        .unwrap_or_else(|| panic!("no session {session} in {doc:#}"));
    s["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["camera_id"] == camera)
        .unwrap_or_else(|| panic!("no {camera} in {s:#}"))
}

fn statuses(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for s in doc["sessions"].as_array().unwrap() {
        for r in s["recordings"].as_array().unwrap() {
            out.push((
                s["session_id"].as_str().unwrap().to_string(),
                r["camera_id"].as_str().unwrap().to_string(),
                r["status"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

#[test]
fn clean_tree_passes_with_every_digest_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv");
    let layout = server_tree(&root, &["GAME_20240315_140000", "JVvsRivals_Home"]);
    let config = config_file(dir.path(), "");

    let (code, doc) = server_json(&root, &config, &[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["check"], "server");
    assert_eq!(doc["status"], "pass");
    assert_eq!(doc["mode"], "full");
    assert_eq!(doc["summary"]["sessions"], 2);
    assert_eq!(doc["summary"]["sessions_complete"], 2);
    assert_eq!(doc["summary"]["recordings"], 6);
    assert_eq!(doc["summary"]["recordings_ok"], 6);
    assert_eq!(doc["leftovers"].as_array().unwrap().len(), 0);
    assert_eq!(doc["queue"]["jobs"]["queued"], 2);
    let bytes: u64 = CameraId::ALL
        .iter()
        .map(|&c| fs::metadata(clip_for(c)).unwrap().len())
        .sum();
    assert_eq!(doc["summary"]["bytes_hashed"], 2 * bytes);
    for s in ["GAME_20240315_140000", "JVvsRivals_Home"] {
        let session = SessionId::parse(s).unwrap();
        for c in CameraId::ALL {
            let r = recording(&doc, s, c.as_str());
            let want = common::sha256sum(&layout.recording(&session, c));
            assert_eq!(r["status"], "ok", "{r:#}");
            assert_eq!(r["sha256"], want.as_str());
            assert_eq!(r["stored_sha256"], want.as_str());
            assert_eq!(r["manifest_sha256"], want.as_str());
            assert_eq!(r["problems"].as_array().unwrap().len(), 0);
        }
    }

    let out = rig_check(
        &[
            "--config",
            config.to_str().unwrap(),
            "server",
            "--root",
            root.to_str().unwrap(),
        ],
        None,
    );
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("PASS  GAME_20240315_140000  complete (CAM_L CAM_C CAM_R)"),
        "{text}"
    );
    assert!(text.ends_with("PASS: 6 of 6 recordings OK\n"), "{text}");
}

#[test]
fn one_flipped_byte_is_exactly_that_recording_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv");
    let layout = server_tree(&root, &["S1", "S2"]);
    let config = config_file(dir.path(), "");
    let s2 = SessionId::parse("S2").unwrap();
    let victim = layout.recording(&s2, CameraId::Center);
    let size = fs::metadata(&victim).unwrap().len();
    flip_byte(&victim, size / 2);

    let (code, doc) = server_json(&root, &config, &[]);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(doc["status"], "fail");
    let bad: Vec<_> = statuses(&doc)
        .into_iter()
        .filter(|(_, _, st)| st != "ok")
        .collect();
    assert_eq!(
        bad,
        [(
            "S2".to_string(),
            "CAM_C".to_string(),
            "mismatch".to_string()
        )]
    );
    let r = recording(&doc, "S2", "CAM_C");
    assert_eq!(r["sha256"], common::sha256sum(&victim).as_str());
    assert_ne!(r["sha256"], r["stored_sha256"]);
    let fields: Vec<&str> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["recording.sha256", "checksum.value"]);
    assert!(r["fix"].as_str().unwrap().contains("re-upload"));
    assert_eq!(doc["summary"]["recordings_not_ok"]["mismatch"], 1);

    // --quick checks sizes only: a flipped byte keeps the size, so it passes,
    // and nothing is hashed.
    let (code, doc) = server_json(&root, &config, &["--quick"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["mode"], "quick");
    assert_eq!(doc["summary"]["bytes_hashed"], 0);
    assert_eq!(recording(&doc, "S2", "CAM_C")["sha256"], Value::Null);

    // --session limits the audit to one session.
    let (code, doc) = server_json(&root, &config, &["--session", "S1"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["summary"]["sessions"], 1);
    assert_eq!(doc["session_filter"], "S1");
    let (code, _) = server_json(&root, &config, &["--session", "S2"]);
    assert_eq!(code, 1);
    let (code, doc) = server_json(&root, &config, &["--session", "NOPE"]);
    assert_eq!(code, 1, "a session that is not there fails: {doc:#}");
    assert_eq!(
        doc["sessions"][0]["cameras_missing"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!(
        doc["sessions"][0]["notes"]
            .to_string()
            .contains("no such session")
    );

    // Truncation changes the size: --quick catches that.
    let f = fs::OpenOptions::new().write(true).open(&victim).unwrap();
    f.set_len(size - 100).unwrap();
    let (code, doc) = server_json(&root, &config, &["--quick"]);
    assert_eq!(code, 1);
    let r = recording(&doc, "S2", "CAM_C");
    assert_eq!(r["status"], "mismatch");
    assert_eq!(r["problems"][0]["field"], "file.size_bytes");
}

#[test]
fn deleted_camera_makes_the_session_incomplete() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv");
    let layout = server_tree(&root, &["S1", "S2"]);
    let config = config_file(dir.path(), "");
    let s1 = SessionId::parse("S1").unwrap();
    fs::remove_dir_all(layout.camera_dir(&s1, CameraId::Right)).unwrap();
    // A camera directory without its recording is a missing file.
    fs::remove_file(layout.recording(&SessionId::parse("S2").unwrap(), CameraId::Left)).unwrap();

    let (code, doc) = server_json(&root, &config, &[]);
    assert_eq!(code, 1, "{doc:#}");
    let s = &doc["sessions"][0];
    assert_eq!(s["session_id"], "S1");
    assert_eq!(s["complete"], false);
    assert_eq!(s["status"], "fail");
    assert_eq!(s["cameras_present"], serde_json::json!(["CAM_L", "CAM_C"]));
    assert_eq!(s["cameras_missing"], serde_json::json!(["CAM_R"]));
    assert_eq!(s["recordings"].as_array().unwrap().len(), 2);
    assert!(
        s["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "ok")
    );
    assert_eq!(doc["summary"]["sessions_complete"], 1);
    let r = recording(&doc, "S2", "CAM_L");
    assert_eq!(r["status"], "missing_file");
    assert_eq!(r["problems"][0]["field"], "recording.mp4");

    let out = rig_check(
        &[
            "--config",
            config.to_str().unwrap(),
            "server",
            "--root",
            root.to_str().unwrap(),
        ],
        None,
    );
    let text = common::stdout(&out);
    assert!(
        text.contains("FAIL  S1  INCOMPLETE, missing CAM_R"),
        "{text}"
    );
    assert!(text.contains("CAM_L  MISSING FILE"), "{text}");
}

#[test]
fn broken_manifest_field_is_manifest_invalid_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv");
    let layout = server_tree(&root, &["S1"]);
    let config = config_file(dir.path(), "");
    let s1 = SessionId::parse("S1").unwrap();
    let path = layout.manifest(&s1, CameraId::Left);
    let mut m: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    m["video"]["fps"] = Value::from("thirty");
    fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    // A manifest stored under the wrong camera describes another recording.
    let path = layout.manifest(&s1, CameraId::Right);
    let mut m: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    m["recording"]["session_id"] = Value::from("OTHER");
    m["recording"]["id"] = Value::from("OTHER_CAM_R");
    m["file"]["name"] = Value::from("OTHER_CAM_R.mp4");
    fs::write(&path, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    fs::write(layout.manifest(&s1, CameraId::Center), "{not json").unwrap();

    let (code, doc) = server_json(&root, &config, &[]);
    assert_eq!(code, 1, "{doc:#}");
    let l = recording(&doc, "S1", "CAM_L");
    assert_eq!(l["status"], "manifest_invalid");
    assert_eq!(l["problems"][0]["field"], "video.fps");
    assert!(
        l["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("positive integer")
    );
    assert_eq!(l["problems"].as_array().unwrap().len(), 1);
    // The digest still matched: the bytes are fine, the manifest is not.
    assert_eq!(l["sha256"], l["stored_sha256"]);
    let r = recording(&doc, "S1", "CAM_R");
    assert_eq!(r["status"], "manifest_invalid");
    assert_eq!(r["problems"][0]["field"], "recording.session_id");
    assert!(
        r["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("S1/CAM_R")
    );
    let c = recording(&doc, "S1", "CAM_C");
    assert_eq!(c["status"], "manifest_invalid");
    assert_eq!(c["problems"][0]["field"], "manifest.json");

    let out = rig_check(
        &[
            "--config",
            config.to_str().unwrap(),
            "server",
            "--root",
            root.to_str().unwrap(),
        ],
        None,
    );
    let text = common::stdout(&out);
    assert!(text.contains("CAM_L  MANIFEST INVALID"), "{text}");
    assert!(
        text.contains("video.fps: must be a positive integer"),
        "{text}"
    );
}

#[test]
fn leftovers_are_reported_and_warn() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv");
    let layout = server_tree(&root, &["S1"]);
    let config = config_file(dir.path(), "");
    let s1 = SessionId::parse("S1").unwrap();
    fs::write(layout.temp.join("upload-7f3a.part"), vec![0u8; 1234]).unwrap();
    fs::write(
        layout.camera_dir(&s1, CameraId::Center).join(".rig-tmp-x1"),
        b"half",
    )
    .unwrap();
    fs::write(layout.session_dir(&s1).join("notes.txt"), b"stray").unwrap();
    fs::create_dir_all(layout.sessions.join("not a session")).unwrap();
    fs::write(layout.sessions.join("not a session/big"), vec![1u8; 300]).unwrap();
    // processing/: the queue and both locks belong there, nothing else.
    assert!(layout.jobs_file().exists() && layout.jobs_lock().exists());
    fs::write(layout.stitch_lock(), b"").unwrap();
    fs::write(layout.processing.join(".rig-tmp-q1"), b"tmp").unwrap();
    fs::write(layout.processing.join("jobs.json.bak"), b"old queue").unwrap();
    fs::create_dir_all(layout.processing.join("scratch")).unwrap();
    fs::write(layout.processing.join("scratch/frame.png"), vec![2u8; 77]).unwrap();
    // Allowed: a thumbnail, and a stitched panorama.
    fs::write(layout.session_dir(&s1).join("thumb.jpg"), b"jpg").unwrap();
    fs::create_dir_all(layout.stitched_dir(&s1)).unwrap();
    fs::copy(clip_for(CameraId::Left), layout.panorama(&s1)).unwrap();

    let (code, doc) = server_json(&root, &config, &[]);
    assert_eq!(code, 0, "WARN alone exits 0: {doc:#}");
    assert_eq!(doc["status"], "warn");
    let found: Vec<(String, String, u64)> = doc["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let p = PathBuf::from(l["path"].as_str().unwrap());
            (
                p.strip_prefix(&root).unwrap().display().to_string(),
                l["kind"].as_str().unwrap().to_string(),
                l["size_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("processing/.rig-tmp-q1", "temp", 3),
        ("processing/jobs.json.bak", "stray", 9),
        ("processing/scratch", "stray", 77),
        ("sessions/S1/CAM_C/.rig-tmp-x1", "temp", 4),
        ("sessions/S1/notes.txt", "stray", 5),
        ("sessions/not a session", "stray", 300),
        ("temp/upload-7f3a.part", "temp", 1234),
    ];
    let want: Vec<(String, String, u64)> = want
        .iter()
        .map(|(p, k, n)| (p.to_string(), k.to_string(), *n))
        .collect();
    let mut found_sorted = found.clone();
    found_sorted.sort();
    assert_eq!(found_sorted, want);
    let bak = doc["leftovers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("jobs.json.bak"))
        .unwrap();
    assert!(
        bak["hint"]
            .as_str()
            .unwrap()
            .contains("move it out of processing/"),
        "{bak}"
    );
    assert_eq!(doc["summary"]["leftovers"], want.len());
    // The stable keys rig-check(1) lists for `server`, no more, no fewer.
    let mut keys: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut documented = [
        "check",
        "status",
        "checked_at",
        "mode",
        "session_filter",
        "sessions_path",
        "summary",
        "sessions",
        "leftovers",
        "partials",
        "queue",
        "storage",
        "walk_errors",
    ];
    documented.sort_unstable();
    assert_eq!(keys, documented);
    let man = include_str!("../man/rig-check.1");
    assert!(man.contains(".Cm partials"), "rig-check(1) lists partials");
    assert_eq!(doc["sessions"][0]["panorama"]["present"], true);
    assert_eq!(doc["summary"]["recordings_ok"], 3);

    let (code, _) = server_json(&root, &config, &["--strict"]);
    assert_eq!(code, 1, "--strict fails on WARN");

    // --quiet: silent when the exit status is 0, the whole report otherwise.
    let base = [
        "--config",
        config.to_str().unwrap(),
        "server",
        "--root",
        root.to_str().unwrap(),
    ];
    let out = rig_check(&[&base[..], &["--quiet"]].concat(), None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(common::stdout(&out), "");
    let out = rig_check(&[&base[..], &["--quiet", "--strict"]].concat(), None);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stdout(&out).contains("temp/upload-7f3a.part"));
}

#[test]
fn queue_and_storage_problems() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("srv");
    let layout = server_tree(&root, &["S1"]);
    let q = JobQueue::new(&layout);
    q.update(|f| {
        f.jobs[0].status = soccer_rig::base::jobs::JobStatus::Done;
    })
    .unwrap();
    let config = config_file(dir.path(), "");
    let (code, doc) = server_json(&root, &config, &[]);
    assert_eq!(code, 1, "{doc:#}");
    let notes = doc["sessions"][0]["notes"].to_string();
    assert!(
        notes.contains("done but the panorama is missing"),
        "{notes}"
    );
    assert_eq!(doc["sessions"][0]["job"]["status"], "done");

    fs::write(layout.jobs_file(), "{broken").unwrap();
    let (code, doc) = server_json(&root, &config, &["--session", "S1"]);
    assert_eq!(code, 1);
    assert_eq!(doc["queue"]["status"], "fail");
    assert!(
        doc["queue"]["error"]
            .as_str()
            .unwrap()
            .contains("jobs.json")
    );

    // A floor no disk clears: storage fails, naming the key.
    fs::remove_file(layout.jobs_file()).unwrap();
    let huge = dir.path().join("huge");
    fs::create_dir_all(&huge).unwrap();
    let config = huge.join("config.yaml");
    fs::write(&config, "storage:\n  min_free_space_gb: 1000000000\n").unwrap();
    let (code, doc) = server_json(&root, &config, &[]);
    assert_eq!(code, 1);
    assert_eq!(doc["storage"]["status"], "fail");
    assert!(
        doc["storage"]["message"]
            .as_str()
            .unwrap()
            .contains("min_free_space_gb")
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    for args in [
        vec!["server", "--root", missing.to_str().unwrap()],
        vec![
            "server",
            "--root",
            dir.path().to_str().unwrap(),
            "--session",
            "../etc",
        ],
        vec!["server", "--verify"],
        vec!["node", "--quick"],
        vec!["explode"],
        vec![],
        vec!["server", "extra"],
        vec!["node", "--server", "ftp://x"],
        vec!["--config", missing.to_str().unwrap(), "server"],
    ] {
        let out = rig_check(&args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            common::stderr(&out)
        );
        assert!(common::stderr(&out).starts_with("rig-check: "), "{args:?}");
    }
    let out = rig_check(
        &["--json", "server", "--root", missing.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["success"], false);
    assert_eq!(doc["error"], "usage_error");
    assert!(doc["message"].as_str().unwrap().contains("nowhere"));
    let out = rig_check(&["--help"], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(common::stdout(&out).contains("rig-check [OPTIONS] server"));
}

// ---------------------------------------------------------------- node

const CHRONY_SYNCED: &str = "Reference ID    : C0A80101 (192.168.1.1)\n\
Stratum         : 3\n\
System time     : 0.000412000 seconds fast of NTP time\n\
Leap status     : Normal\n";

/// A directory with a fake `chronyc` that prints `tracking`.
fn fake_chronyc(dir: &Path, tracking: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = bin.join("chronyc");
    fs::write(
        &script,
        format!("#!/bin/sh\n[ \"$1\" = tracking ] || exit 1\ncat <<'END'\n{tracking}END\n"),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// A stub rig-receive answering the health check; returns its base URL.
fn stub_health_server() -> String {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let addr = server.server_addr().to_ip().unwrap();
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            let resp = if req.url() == "/api/v1/health" {
                tiny_http::Response::from_string(
                    r#"{"status": "healthy", "storage_free_gb": 123.4, "active_uploads": 1}"#,
                )
            } else {
                tiny_http::Response::from_string("{}").with_status_code(404)
            };
            let _ = req.respond(resp);
        }
    });
    format!("http://{addr}")
}

fn node_config(dir: &Path, storage_root: &Path) -> PathBuf {
    let path = dir.join("node.yaml");
    fs::write(
        &path,
        format!(
            "node:\n  storage_root: {}\n  camera_id: CAM_R\n  min_free_space_gb: 0.001\n\
             recording:\n  source: \"cmd:sh -c cat\"\n  bitrate_mbps: 30\n\
             processing:\n  ffmpeg_path: ffmpeg\n  ffprobe_path: ffprobe\n",
            storage_root.display()
        ),
    )
    .unwrap();
    path
}

fn node_json(config: &Path, server: &str, bin: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "--json",
        "--config",
        config.to_str().unwrap(),
        "node",
        "--server",
        server,
        "--minutes",
        "1",
        "--timeout",
        "3",
    ];
    args.extend_from_slice(extra);
    let out = rig_check(&args, Some(bin));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            common::stdout(&out),
            common::stderr(&out)
        )
    });
    (out.status.code().unwrap(), doc)
}

fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {doc:#}"))
}

#[test]
fn node_synced_with_running_server_passes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nvme");
    fs::create_dir_all(&root).unwrap();
    let config = node_config(dir.path(), &root);
    let bin = fake_chronyc(dir.path(), CHRONY_SYNCED);
    let receiver = Receiver::start(&dir.path().join("srv"));
    let (code, doc) = node_json(&config, &receiver.url, &bin, &[]);
    receiver.stop();
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["check"], "node");
    assert_eq!(doc["camera_id"], "CAM_R");
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "storage_root",
            "free_space",
            "clock",
            "temperature",
            "source",
            "ffmpeg",
            "ffprobe",
            "server",
            "backlog"
        ]
    );
    for name in [
        "storage_root",
        "free_space",
        "clock",
        "source",
        "ffmpeg",
        "ffprobe",
        "server",
        "backlog",
    ] {
        assert_eq!(check(&doc, name)["status"], "pass", "{name}: {doc:#}");
    }
    let clock = check(&doc, "clock");
    assert_eq!(clock["value"]["source"], "chronyc");
    assert!((clock["value"]["offset_ms"].as_f64().unwrap() - 0.412).abs() < 1e-9);
    let server = check(&doc, "server");
    assert_eq!(server["value"]["status"], "healthy");
    assert_eq!(server["value"]["http_status"], 200);
    assert_eq!(server["value"]["active_uploads"], 0);
    assert!(server["value"]["storage_free_gb"].as_f64().unwrap() > 0.0);
    // Free space and the time it buys at 30 Mbps agree with each other.
    let free = &check(&doc, "free_space")["value"];
    let minutes = free["free_bytes"].as_f64().unwrap() / (30e6 / 8.0 * 60.0);
    assert!(
        (free["minutes"].as_f64().unwrap() - minutes).abs() < 0.01,
        "{free}"
    );
    // No temp file is left in the storage root by the writability probe.
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
}

#[test]
fn node_unsynced_clock_and_stopped_server_fail() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nvme");
    fs::create_dir_all(&root).unwrap();
    let config = node_config(dir.path(), &root);
    let bin = fake_chronyc(
        dir.path(),
        &CHRONY_SYNCED.replace("Normal", "Not synchronised"),
    );
    let receiver = Receiver::start(&dir.path().join("srv"));
    let url = receiver.url.clone();
    let (code, doc) = node_json(&config, &url, &bin, &[]);
    assert_eq!(code, 1, "{doc:#}");
    let clock = check(&doc, "clock");
    assert_eq!(clock["status"], "fail");
    assert_eq!(clock["value"]["synced"], false);
    assert!(clock["fix"].as_str().unwrap().contains("chronyd"));
    assert_eq!(check(&doc, "server")["status"], "pass");

    // The same rig-receive, stopped: nothing listens on its port any more.
    receiver.stop();
    let bin = fake_chronyc(dir.path(), CHRONY_SYNCED);
    let (code, doc) = node_json(&config, &url, &bin, &[]);
    assert_eq!(code, 1, "{doc:#}");
    let server = check(&doc, "server");
    assert_eq!(server["status"], "fail");
    assert_eq!(server["value"]["reachable"], false);
    assert!(server["message"].as_str().unwrap().contains("unreachable"));
    assert!(server["fix"].as_str().unwrap().contains("rig-receive"));
    assert_eq!(check(&doc, "clock")["status"], "pass");

    // Text output names the failure and the fix.
    let out = rig_check(
        &[
            "--config",
            config.to_str().unwrap(),
            "node",
            "--server",
            &url,
            "--minutes",
            "1",
        ],
        Some(&bin),
    );
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("FAIL  server"), "{text}");
    assert!(text.contains("fix: start rig-receive"), "{text}");

    // A missing storage root fails the root, space and backlog checks.
    let config = node_config(dir.path(), &dir.path().join("unmounted"));
    let (code, doc) = node_json(&config, &stub_health_server(), &bin, &[]);
    assert_eq!(code, 1);
    for name in ["storage_root", "free_space", "backlog"] {
        assert_eq!(check(&doc, name)["status"], "fail", "{name}");
    }
}

/// A recording on the Pi with a real manifest; `state` writes its offload state.
fn pi_recording(pi: &PiLayout, id: &str, camera: CameraId, state: Option<&str>) -> PathBuf {
    let rec = RecordingId::parse(id).unwrap();
    let file = pi.recording(&rec);
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    fs::copy(clip_for(camera), &file).unwrap();
    describe(&file, &rec, &describe_opts())
        .unwrap()
        .write_atomic(&pi.manifest(&rec))
        .unwrap();
    if let Some(state) = state {
        fs::write(pi.offload_state(&rec), state).unwrap();
    }
    file
}

#[test]
fn node_backlog_counts_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nvme");
    let pi = PiLayout::new(&root);
    pi_recording(
        &pi,
        "G1_CAM_R",
        CameraId::Right,
        Some(r#"{"status": "offloaded", "attempts": 1}"#),
    );
    let pending = pi_recording(&pi, "G2_CAM_R", CameraId::Right, None);
    let failed = pi_recording(
        &pi,
        "G3_CAM_R",
        CameraId::Center,
        Some(r#"{"status": "failed", "attempts": 5, "last_error": "connection refused"}"#),
    );
    let config = node_config(dir.path(), &root);
    let bin = fake_chronyc(dir.path(), CHRONY_SYNCED);
    let server = stub_health_server();

    let (code, doc) = node_json(&config, &server, &bin, &[]);
    assert_eq!(code, 0, "a backlog warns: {doc:#}");
    let health = check(&doc, "server");
    assert_eq!(health["status"], "pass");
    assert_eq!(health["value"]["storage_free_gb"], 123.4);
    assert_eq!(health["value"]["active_uploads"], 1);
    assert!(
        health["message"]
            .as_str()
            .unwrap()
            .contains("123.4 GB free, 1 upload(s) active")
    );
    let backlog = check(&doc, "backlog");
    assert_eq!(backlog["status"], "warn");
    let bytes = fs::metadata(&pending).unwrap().len() + fs::metadata(&failed).unwrap().len();
    assert_eq!(backlog["value"]["recordings"], 2);
    assert_eq!(backlog["value"]["bytes"], bytes);
    assert_eq!(backlog["value"]["failed"], 1);
    let items = doc["backlog"].as_array().unwrap();
    assert_eq!(items[0]["recording_id"], "G2_CAM_R");
    assert_eq!(items[0]["state"], "pending");
    assert_eq!(items[1]["recording_id"], "G3_CAM_R");
    assert_eq!(items[1]["state"], "failed");
    assert_eq!(items[1]["attempts"], 5);
    assert_eq!(items[1]["last_error"], "connection refused");
    assert_eq!(items[0]["verified"], Value::Null);

    let (code, doc) = node_json(&config, &server, &bin, &["--verify"]);
    assert_eq!(code, 0, "{doc:#}");
    let items = doc["backlog"].as_array().unwrap();
    assert!(items.iter().all(|i| i["verified"] == true), "{doc:#}");
    assert_eq!(items[0]["sha256"], common::sha256sum(&pending).as_str());

    flip_byte(&failed, 1000);
    let (code, doc) = node_json(&config, &server, &bin, &["--verify"]);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(check(&doc, "backlog")["status"], "fail");
    let item = &doc["backlog"][1];
    assert_eq!(item["verified"], false);
    assert!(
        item["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("checksum.value")
    );
    assert_eq!(doc["backlog"][0]["verified"], true);

    // A recording without a manifest is backlog too, named as such.
    let orphan = pi.recording(&RecordingId::parse("G4_CAM_R").unwrap());
    fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    fs::write(&orphan, b"partial").unwrap();
    let (_, doc) = node_json(&config, &server, &bin, &[]);
    let last = doc["backlog"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["recording_id"], "G4_CAM_R");
    assert_eq!(last["state"], "no_manifest");
    assert!(last["problems"][0].as_str().unwrap().contains("--recover"));
}
