//! Interoperating with the protocol's Python reference implementation, both
//! ways (issue 15).
//!
//! * Its Pi client -> the real rig-receive: multipart bodies built the way
//!   Python `requests` builds them (data fields first, then `file` with a
//!   filename and `Content-Type`, a 32-hex boundary), with the manifests it
//!   sends: `{}`, `""`, `null`, flat (with a 1.5 MB `snapshot_base64`),
//!   nested, broken, and contradicting ones.
//! * The real rig-upload and rig-check -> a server answering like its Flask
//!   server (`common::refserver`): 201 + `size_bytes`, 400 "Checksum
//!   mismatch" without `message`, a bare health reply.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Value, json};
use soccer_rig::base::ids::{CameraId, RecordingId};
use soccer_rig::base::manifest::Manifest;
use soccer_rig::base::manifest::describe::{self, DescribeOptions};

use common::pi::Rig;
use common::receiver::{Log, Receiver};
use common::refserver::RefServer;

// ------------------------------------------------------------ fixtures

/// One 2 s clip shared by the tests, and its digest.
fn clip() -> &'static (PathBuf, String) {
    static CLIP: OnceLock<(PathBuf, String)> = OnceLock::new();
    CLIP.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let path = common::small_clip(&dir, "video.mp4");
        let sum = common::sha256sum(&path);
        (path, sum)
    })
}

impl Receiver {
    /// The real rig-receive (`common::receiver`) on a temp root, naive
    /// times read as UTC.
    fn start() -> Receiver {
        Receiver::in_temp(
            "storage:\n  min_free_space_gb: 0.001\nserver:\n  naive_time_zone: UTC\n",
            Log::Warn,
        )
    }

    fn dir(&self, rec: &RecordingId) -> PathBuf {
        self.layout.camera_dir(&rec.session, rec.camera)
    }

    fn manifest(&self, rec: &RecordingId) -> Manifest {
        Manifest::read(&self.layout.manifest(&rec.session, rec.camera)).unwrap()
    }

    fn client_manifest(&self, rec: &RecordingId) -> Option<String> {
        fs::read_to_string(self.layout.client_manifest(&rec.session, rec.camera)).ok()
    }
}

fn rec(session: &str, camera: CameraId) -> RecordingId {
    RecordingId::new(
        soccer_rig::base::ids::SessionId::parse(session).unwrap(),
        camera,
    )
}

/// A multipart body as Python `requests` builds it for
/// `post(url, data=fields, files={"file": (name, fh, "video/mp4")})`:
/// data fields first without a Content-Type, then the file; the boundary
/// is urllib3's 32 hex characters.
fn requests_body(fields: &[(&str, &str)], file_name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("{:032x}", 0x5eed_cafe_u128 << 64 | 0x1234_5678_9abc);
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
             filename=\"{file_name}\"\r\nContent-Type: video/mp4\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// POSTs an upload with `requests`' headers; (status, JSON reply).
fn requests_upload(
    addr: SocketAddr,
    rec: &RecordingId,
    checksum: &str,
    manifest: Option<&str>,
) -> (u16, Value) {
    let (session, camera) = (rec.session.to_string(), rec.camera.to_string());
    let mut fields = vec![
        ("session_id", session.as_str()),
        ("camera_id", camera.as_str()),
        ("checksum", checksum),
    ];
    if let Some(m) = manifest {
        fields.push(("manifest", m));
    }
    let file = fs::read(&clip().0).unwrap();
    let (boundary, body) = requests_body(&fields, &rec.video_file_name(), &file);
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /api/v1/upload HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: python-requests/2.31.0\r\n\
         Accept-Encoding: gzip, deflate\r\nAccept: */*\r\nConnection: close\r\n\
         Content-Length: {}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let status = reply.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// A PROTOCOL.md manifest of the clip as `rec`.
fn nested(rec: &RecordingId) -> Manifest {
    let opts = DescribeOptions {
        ffprobe: "ffprobe".into(),
        start: Some("2024-03-15T14:00:00Z".parse().unwrap()),
        ..DescribeOptions::default()
    };
    describe::describe(&clip().0, rec, &opts).unwrap()
}

/// The reference client's flat manifest of the clip, with a snapshot of
/// `snapshot` base64 characters.
fn flat(rec: &RecordingId, checksum: &str, snapshot: usize) -> Value {
    json!({
        "session_id": rec.session.as_str(), "camera_id": rec.camera.as_str(),
        "camera_position": rec.camera.position().as_str(),
        "file_name": rec.video_file_name(),
        "start_time_local": "2024-03-15T14:00:00.400000",
        "start_time_master": "2024-03-15T14:00:00.150000",
        "offset_ms": 250.0, "duration_sec": 2.0, "resolution": "3840x2160",
        "fps": 30, "codec": "h265", "bitrate_mbps": 50, "dropped_frames": 3,
        "checksum": {"algo": "sha256", "value": checksum},
        "offloaded": false, "snapshot_base64": "A".repeat(snapshot),
        "software_version": "1.0.0", "created_at": "2024-03-15T14:00:03.000000",
    })
}

fn assert_stored_intact(r: &Receiver, rec: &RecordingId) {
    let video = r.layout.recording(&rec.session, rec.camera);
    assert_eq!(common::sha256sum(&video), clip().1);
    let m = r.manifest(rec);
    m.validate().unwrap();
    assert_eq!(m.checksum.value.to_string(), clip().1);
    assert_eq!(m.file.size_bytes, fs::metadata(&clip().0).unwrap().len());
    assert_eq!(
        (m.video.resolution.width, m.video.resolution.height),
        (320, 180)
    );
}

// ------------------------------------------------ its client -> rig-receive

#[test]
fn requests_client_without_a_manifest_gets_an_ffprobe_one() {
    let r = Receiver::start();
    for (session, text) in [
        ("PY_EMPTY_OBJ", Some("{}")),
        ("PY_EMPTY", Some("")),
        ("PY_NULL", Some("null")),
        ("PY_NONE", None),
    ] {
        let id = rec(session, CameraId::Center);
        let (status, v) = requests_upload(r.addr, &id, &clip().1, text);
        assert_eq!(status, 200, "{session}: {v}");
        assert_eq!(v["checksum_verified"], true);
        assert!(v.get("manifest_warnings").is_none(), "{v}");
        assert_stored_intact(&r, &id);
        assert_eq!(r.client_manifest(&id), None, "{session}");
        let timing = r.manifest(&id).timing;
        assert_eq!(timing.extra["guessed"], true, "{session}: {timing:?}");
    }
}

#[test]
fn requests_client_with_a_flat_manifest_and_a_big_snapshot_is_translated() {
    let r = Receiver::start();
    let id = rec("PY_FLAT", CameraId::Left);
    let text = flat(&id, &clip().1, 1_500_000).to_string();
    let (status, v) = requests_upload(r.addr, &id, &clip().1, Some(&text));
    assert_eq!(status, 200, "{v}");
    assert_stored_intact(&r, &id);
    let m = r.manifest(&id);
    assert_eq!(m.recording.position, "left");
    assert_eq!(m.timing.start_time, "2024-03-15T14:00:00.400000Z");
    assert_eq!(m.timing.end_time, "2024-03-15T14:00:02.400000Z");
    assert_eq!(m.timing.sync_offset_ms, Some(250.0));
    assert_eq!(
        soccer_rig::base::manifest::format_time(m.corrected_start().unwrap()),
        "2024-03-15T14:00:00.150000Z",
        "corrected start is the master time"
    );
    assert_eq!(m.timing.extra["guessed"], true);
    assert!(m.timing.extra["guess"].as_str().unwrap().contains("UTC"));
    assert_eq!(m.quality.as_ref().unwrap().dropped_frames, Some(3));
    assert_eq!(
        m.device.as_ref().unwrap().software_version.as_deref(),
        Some("1.0.0")
    );
    assert_eq!(m.video.bitrate_mbps, 50);
    assert_eq!(m.file.codec, "h264", "video fields come from ffprobe");
    assert!(m.extra.get("snapshot_base64").is_none());
    assert_eq!(m.extra["source_format"], "flat");
    // The client's text, byte for byte, under the layout's name.
    assert_eq!(r.client_manifest(&id).as_deref(), Some(text.as_str()));
    let warnings = v["manifest_warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("timing: naive")),
        "{v}"
    );
    assert_eq!(m.extra["normalized"]["problems"], v["manifest_warnings"]);
    // rig-check server knows the kept original: no stray, the recording ok
    // (the session fails only for its two missing cameras).
    let out = common::run(
        env!("CARGO_BIN_EXE_rig-check"),
        &["--json", "server", "--root", r.root.to_str().unwrap()],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        !common::stdout(&out).contains("manifest.client.json"),
        "{doc:#}"
    );
    assert_eq!(doc["leftovers"], json!([]), "{doc:#}");
    assert_eq!(doc["summary"]["recordings_ok"], 1, "{doc:#}");
    assert_eq!(
        doc["sessions"][0]["recordings"][0]["problems"],
        json!([]),
        "{doc:#}"
    );
}

#[test]
fn requests_client_with_a_nested_manifest_stores_it_as_sent() {
    let r = Receiver::start();
    let id = rec("PY_NESTED", CameraId::Right);
    let m = nested(&id);
    let (status, v) = requests_upload(r.addr, &id, &clip().1, Some(&m.to_json_pretty()));
    assert_eq!(status, 200, "{v}");
    assert!(v.get("manifest_warnings").is_none(), "{v}");
    assert_eq!(r.manifest(&id), m);
    assert_eq!(r.client_manifest(&id), None);
}

#[test]
fn a_wrong_manifest_is_repaired_and_its_problems_listed() {
    let r = Receiver::start();
    let id = rec("PY_BROKEN", CameraId::Center);
    let mut v = serde_json::to_value(nested(&id)).unwrap();
    v["video"]["fps"] = json!(-1);
    v["file"]["size_bytes"] = json!(12);
    v.as_object_mut().unwrap().remove("timing");
    let text = v.to_string();
    let (status, reply) = requests_upload(r.addr, &id, &clip().1, Some(&text));
    assert_eq!(status, 200, "{reply}");
    assert_stored_intact(&r, &id);
    let m = r.manifest(&id);
    assert_eq!(m.video.fps, 15);
    assert_eq!(m.timing.extra["guessed"], true);
    let warnings: Vec<String> = reply["manifest_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect();
    for field in ["video.fps", "timing", "file.size_bytes"] {
        assert!(
            warnings.iter().any(|w| w.starts_with(field)),
            "{field}: {warnings:?}"
        );
    }
    assert_eq!(r.client_manifest(&id).as_deref(), Some(text.as_str()));
    // Not JSON at all: described by ffprobe, said so.
    let id = rec("PY_NOT_JSON", CameraId::Center);
    let (status, reply) = requests_upload(r.addr, &id, &clip().1, Some("{nope"));
    assert_eq!(status, 200, "{reply}");
    assert_stored_intact(&r, &id);
    assert!(
        reply["manifest_warnings"][0]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{reply}"
    );
}

#[test]
fn contradicting_manifests_and_checksums_are_refused_and_store_nothing() {
    let r = Receiver::start();
    let id = rec("PY_LIES", CameraId::Left);
    let mut lying_flat = flat(&id, &clip().1, 10);
    lying_flat["camera_id"] = json!("CAM_R");
    let mut lying_nested = serde_json::to_value(nested(&id)).unwrap();
    lying_nested["checksum"]["value"] = json!("ab".repeat(32));
    let mut other_session = flat(&id, &clip().1, 10);
    other_session["session_id"] = json!("OTHER_GAME");
    for (text, field) in [
        (lying_flat, "camera_id"),
        (lying_nested, "checksum.value"),
        (other_session, "session_id"),
    ] {
        let (status, v) = requests_upload(r.addr, &id, &clip().1, Some(&text.to_string()));
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("invalid_manifest")),
            "{v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains(field),
            "{field}: {v}"
        );
        assert!(!r.dir(&id).exists(), "nothing stored for {field}");
    }
    // The form's checksum is still the judge of the bytes.
    let (status, v) = requests_upload(r.addr, &id, &"0".repeat(64), Some("{}"));
    assert_eq!(
        (status, v["error"].as_str()),
        (422, Some("checksum_mismatch")),
        "{v}"
    );
    assert!(!r.dir(&id).exists());
}

// -------------------------------------- rig-upload / rig-check -> its server

fn upload_json(rig: &Rig, id: &RecordingId) -> (Value, String) {
    let out = rig.upload(&[id.session.as_str(), id.camera.as_str(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", common::stdout(&out), common::stderr(&out)));
    (report, common::stderr(&out))
}

#[test]
fn rig_upload_offloads_to_it_on_the_first_attempt() {
    let server = RefServer::start(0);
    let rig = Rig::new(&server.url, "");
    let id = rig.add("REF_FIRST", CameraId::Left, "2024-03-15T14:00:00Z");
    let (report, log) = upload_json(&rig, &id);
    assert_eq!(report["status"], "offloaded", "{report:#}\n{log}");
    assert_eq!(report["attempts"], 1);
    assert_eq!(rig.state(&id)["status"], "offloaded");
    let uploads = server.uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(uploads[0].file, fs::read(&rig.clip).unwrap());
    assert_eq!(
        server.stored(&id.to_string()),
        Some((common::sha256sum(&rig.clip), uploads[0].file.len() as u64))
    );
}

#[test]
fn rig_upload_retries_its_400_checksum_mismatch_and_succeeds() {
    let server = RefServer::start(1);
    let rig = Rig::new(&server.url, "");
    let id = rig.add("REF_FLIP", CameraId::Center, "2024-03-15T14:00:00Z");
    let (report, log) = upload_json(&rig, &id);
    assert_eq!(report["status"], "offloaded", "{report:#}\n{log}");
    assert_eq!(report["attempts"], 2);
    assert_eq!(server.uploads().len(), 2);
    assert!(
        log.contains("400 checksum_mismatch: Checksum mismatch"),
        "{log}"
    );
    // Mismatches to the end fail the recording, keeping the file.
    let server = RefServer::start(9);
    let rig = Rig::with_retries(&server.url, 3, "");
    let id = rig.add("REF_BAD", CameraId::Center, "2024-03-15T14:00:00Z");
    let (report, _) = upload_json(&rig, &id);
    assert_eq!(
        (report["status"].as_str(), report["attempts"].as_u64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(report["error"], "checksum_mismatch");
    assert!(rig.video(&id).exists());
}

#[test]
fn a_rerun_the_server_already_holds_is_offloaded_without_resending() {
    let server = RefServer::start(0);
    let rig = Rig::new(&server.url, "");
    let id = rig.add("REF_RERUN", CameraId::Right, "2024-03-15T14:00:00Z");
    assert_eq!(upload_json(&rig, &id).0["status"], "offloaded");
    // As if the run had died after the upload, before writing "offloaded".
    let state_path = rig.layout().offload_state(&id);
    let mut state = rig.state(&id);
    state["status"] = json!("failed");
    fs::write(&state_path, state.to_string()).unwrap();
    let (report, log) = upload_json(&rig, &id);
    assert_eq!(report["status"], "offloaded", "{report:#}\n{log}");
    assert_eq!(server.uploads().len(), 1, "nothing sent again");
    assert!(
        log.contains("INFO") && log.contains("already holds these bytes"),
        "{log}"
    );
}

#[test]
fn file_mode_already_offloaded_reports_the_recording_id() {
    let server = RefServer::start(0);
    let rig = Rig::new(&server.url, "");
    let id = rig.add("REF_FILE", CameraId::Left, "2024-03-15T14:00:00Z");
    let video = rig.video(&id);
    let manifest = rig.layout().manifest(&id);
    let args = [
        "--file",
        video.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--json",
    ];
    for want in ["offloaded", "already_offloaded"] {
        let out = rig.upload(&args);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["status"], want, "{report:#}");
        assert_eq!(report["recording_id"], id.to_string(), "{report:#}");
    }
}

#[test]
fn rig_check_node_warns_on_its_bare_health_reply() {
    let server = RefServer::start(0);
    let rig = Rig::new(&server.url, "");
    let out = common::run(
        env!("CARGO_BIN_EXE_rig-check"),
        &[
            "--json",
            "--config",
            rig.config.to_str().unwrap(),
            "node",
            "--timeout",
            "3",
        ],
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let item = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "server")
        .unwrap();
    assert_eq!(item["status"], "warn", "{item:#}");
    assert!(
        item["message"]
            .as_str()
            .unwrap()
            .contains("free space unknown"),
        "{item:#}"
    );
    assert_eq!(item["value"]["storage_free_gb"], Value::Null, "{item:#}");
}
