//! rig-receive end to end: the real binary on a free loopback port with a
//! temp root, driven by curl, ureq (the project's client library) and raw
//! TCP for the bodies no polite client sends.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::curl::json as curl;
use common::receiver::{Log, Receiver};
use serde_json::Value;
use soccer_rig::base::checksum::hash_file;
use soccer_rig::base::ids::RecordingId;
use soccer_rig::base::jobs::{JobQueue, JobStatus};
use soccer_rig::base::layout::ServerLayout;
use soccer_rig::base::manifest::Manifest;

const BIN: &str = env!("CARGO_BIN_EXE_rig-receive");
const SESSION: &str = "GAME_20240315_140000";

/// Three distinct real clips, made once for the whole file.
fn clips() -> &'static [PathBuf; 3] {
    static CLIPS: OnceLock<[PathBuf; 3]> = OnceLock::new();
    let specs = [("l.mp4", 2.0, 15), ("c.mp4", 3.0, 15), ("r.mp4", 2.0, 10)];
    common::clips::three(&CLIPS, specs)
}

fn clip() -> &'static Path {
    &clips()[1]
}

/// A running rig-receive (`common::receiver`) on a temp root.
struct Daemon {
    server: Receiver,
    port: u16,
    root: tempfile::TempDir,
    _config: tempfile::NamedTempFile,
}

impl Daemon {
    fn start() -> Daemon {
        Daemon::with_config("")
    }

    /// Starts with extra YAML for the `server:` and `storage:` sections.
    fn with_config(yaml: &str) -> Daemon {
        let root = tempfile::tempdir().unwrap();
        Daemon::start_in(root, yaml)
    }

    fn start_in(root: tempfile::TempDir, yaml: &str) -> Daemon {
        let mut config = tempfile::NamedTempFile::new().unwrap();
        // The default 50 GB floor would make these tests depend on the
        // machine's free disk; a test that wants a floor sets its own.
        let yaml = if yaml.contains("storage:") {
            yaml.to_string()
        } else {
            format!("storage:\n  min_free_space_gb: 0.001\n{yaml}")
        };
        config.write_all(yaml.as_bytes()).unwrap();
        let server = Receiver::spawn(config.path(), root.path(), "127.0.0.1:0", Log::Warn);
        Daemon {
            port: server.port(),
            server,
            root,
            _config: config,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn layout(&self) -> ServerLayout {
        ServerLayout::under(self.root.path())
    }

    /// Every file under the root, relative, sorted (jobs.lock excluded).
    fn files(&self) -> Vec<String> {
        let mut out: Vec<String> = walkdir::WalkDir::new(self.root.path())
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                e.path()
                    .strip_prefix(self.root.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .filter(|p| p != "processing/jobs.lock")
            .collect();
        out.sort();
        out
    }

    fn health(&self) -> Value {
        let (status, v) = curl(&[&self.url("/api/v1/health")]);
        assert_eq!(status, 200);
        v
    }

    /// Waits until no upload is in flight (the server finished the request).
    fn wait_idle(&self) {
        let until = Instant::now() + Duration::from_secs(20);
        while self.health()["active_uploads"] != 0 {
            assert!(Instant::now() < until, "an upload never ended");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and returns at once.
    fn signal_term(&self) {
        self.server.signal_term();
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    fn wait_exit(&mut self, limit: Duration) -> i32 {
        self.server.wait_exit(limit)
    }

    /// Waits until `n` uploads are in flight.
    fn wait_active(&self, n: u64) {
        let until = Instant::now() + Duration::from_secs(10);
        while self.health()["active_uploads"] != n {
            assert!(Instant::now() < until, "never {n} upload(s) in flight");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn terminate(self) -> i32 {
        self.server.terminate().unwrap_or(-1)
    }
}

/// curl -F upload of `file` with the given fields.
fn curl_upload(
    d: &Daemon,
    file: &Path,
    session: &str,
    camera: &str,
    checksum: &str,
) -> (u16, Value) {
    let fields = [
        ("session_id", session.to_string()),
        ("camera_id", camera.to_string()),
        ("checksum", checksum.to_string()),
        ("file", format!("@{}", file.display())),
    ];
    common::curl::upload_json(&d.url(""), &fields, &[])
}

fn sha(path: &Path) -> String {
    common::sha256sum(path)
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn assert_error(reply: &(u16, Value), status: u16, code: &str) {
    assert_eq!(reply.0, status, "{:?}", reply.1);
    assert_eq!(
        keys(&reply.1),
        ["success", "error", "message"],
        "{:?}",
        reply.1
    );
    assert_eq!(reply.1["success"], false);
    assert_eq!(reply.1["error"], code, "{:?}", reply.1);
    assert!(!reply.1["message"].as_str().unwrap().is_empty());
}

/// A multipart body from (name, filename, bytes) parts.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, filename, data) in parts {
        b.extend_from_slice(b"--BOUNDARYxyz\r\n");
        let fname = filename
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        b.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"{fname}\r\n\r\n").as_bytes(),
        );
        b.extend_from_slice(data);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"--BOUNDARYxyz--\r\n");
    b
}

fn form(session: &str, camera: &str, checksum: &str, file: &[u8]) -> Vec<u8> {
    multipart(&[
        ("session_id", None, session.as_bytes()),
        ("camera_id", None, camera.as_bytes()),
        ("checksum", None, checksum.as_bytes()),
        ("file", Some("x.mp4"), file),
    ])
}

fn request_head(path: &str, content_length: Option<u64>) -> String {
    let len = match content_length {
        Some(n) => format!("Content-Length: {n}\r\n"),
        None => "Transfer-Encoding: chunked\r\n".into(),
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary=BOUNDARYxyz\r\n{len}\r\n"
    )
}

/// Reads one HTTP response (status, JSON body) by its Content-Length.
fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Sends `head` + `body` raw and reads the reply.
fn raw(d: &Daemon, head: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer (and stop reading) before the body is all sent.
    let _ = s.write_all(body);
    read_response(&mut s)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// Upload with ureq's multipart form (what rig-upload uses).
fn ureq_upload(
    d: &Daemon,
    file: &Path,
    session: &str,
    camera: &str,
    checksum: &str,
    manifest: Option<&str>,
) -> (u16, Value) {
    use ureq::unversioned::multipart::Form;
    let mut f = Form::new()
        .text("session_id", session)
        .text("camera_id", camera)
        .text("checksum", checksum);
    if let Some(m) = manifest {
        f = f.text("manifest", m);
    }
    let f = f.file("file", file).unwrap();
    let mut resp = agent().post(&d.url("/api/v1/upload")).send(f).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, body)
}

fn confirm(d: &Daemon, session: &str, camera: &str) -> (u16, Value) {
    let body = format!(r#"{{"session_id": "{session}", "camera_id": "{camera}"}}"#);
    curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        &body,
        &d.url("/api/v1/upload/confirm"),
    ])
}

#[test]
fn curl_upload_stores_byte_identical_and_confirm_answers_from_receive_time() {
    let d = Daemon::start();
    let sum = sha(clip());
    let (status, v) = curl_upload(&d, clip(), SESSION, "CAM_C", &sum);
    assert_eq!(status, 200, "{v}");
    let size = std::fs::metadata(clip()).unwrap().len();
    assert_eq!(
        v,
        serde_json::json!({"success": true, "recording_id": "GAME_20240315_140000_CAM_C",
                           "file_size": size, "checksum_verified": true})
    );
    assert_eq!(
        keys(&v),
        ["success", "recording_id", "file_size", "checksum_verified"]
    );

    let layout = d.layout();
    let rec = RecordingId::parse("GAME_20240315_140000_CAM_C").unwrap();
    let stored = layout.recording(&rec.session, rec.camera);
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        std::fs::read(clip()).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(layout.digest(&rec.session, rec.camera)).unwrap(),
        format!("{sum}  recording.mp4\n")
    );
    let m = Manifest::read(&layout.manifest(&rec.session, rec.camera)).unwrap();
    assert_eq!(m.checksum.value.to_string(), sum);
    assert_eq!(m.file.size_bytes, size);
    assert_eq!(
        (m.video.resolution.width, m.video.resolution.height),
        (320, 180)
    );
    assert_eq!(m.recording.id, "GAME_20240315_140000_CAM_C");
    assert_eq!(
        d.files(),
        [
            "sessions/GAME_20240315_140000/CAM_C/manifest.json",
            "sessions/GAME_20240315_140000/CAM_C/recording.mp4",
            "sessions/GAME_20240315_140000/CAM_C/recording.sha256",
        ]
    );

    // confirm reads recording.sha256: prove it by changing it behind the server's back.
    let c = confirm(&d, SESSION, "CAM_C");
    assert_eq!(c.0, 200);
    assert_eq!(
        c.1,
        serde_json::json!({"success": true, "session_id": SESSION, "camera_id": "CAM_C",
                           "file_size": size, "checksum_sha256": sum})
    );
    let other = "ab".repeat(32);
    std::fs::write(
        layout.digest(&rec.session, rec.camera),
        format!("{other}  recording.mp4\n"),
    )
    .unwrap();
    assert_eq!(
        confirm(&d, SESSION, "CAM_C").1["checksum_sha256"],
        other.as_str()
    );

    let h = d.health();
    assert_eq!(keys(&h), ["status", "storage_free_gb", "active_uploads"]);
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["active_uploads"], 0);
    let free = soccer_rig::base::fsx::free_space(d.root.path()).unwrap() as f64 / 1e9;
    assert!(
        (h["storage_free_gb"].as_f64().unwrap() - free).abs() < 1.0,
        "{h} vs {free}"
    );
    assert_eq!(d.terminate(), 0);
}

#[test]
fn a_file_of_many_reads_arrives_byte_identical_via_curl_and_ureq() {
    // 24 MiB: a real clip padded with pseudo-random bytes, so every read
    // size and the 1 MiB chunking are exercised, not just one small read.
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.mp4");
    let mut bytes = std::fs::read(clip()).unwrap();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    bytes.extend((0..24 << 20).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    std::fs::write(&big, &bytes).unwrap();
    let sum = sha(&big);
    let r = curl_upload(&d, &big, SESSION, "CAM_C", &sum);
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(r.1["file_size"], bytes.len() as u64);
    let r = ureq_upload(&d, &big, SESSION, "CAM_R", &sum, None);
    assert_eq!(r.0, 200, "{}", r.1);
    for cam in ["CAM_C", "CAM_R"] {
        let rec = RecordingId::parse(&format!("{SESSION}_{cam}")).unwrap();
        let stored = d.layout().recording(&rec.session, rec.camera);
        assert!(std::fs::read(&stored).unwrap() == bytes, "{cam} differs");
    }
}

#[test]
fn ureq_upload_with_manifest_stores_that_manifest() {
    let d = Daemon::start();
    let rec = RecordingId::parse("JVvsRivals_Home_CAM_L").unwrap();
    let opts = soccer_rig::base::manifest::describe::DescribeOptions {
        ffprobe: "ffprobe".into(),
        ..Default::default()
    };
    let mut m = soccer_rig::base::manifest::describe::describe(&clips()[0], &rec, &opts).unwrap();
    m.extra
        .insert("note".into(), Value::String("from the Pi".into()));
    let text = m.to_json_pretty();
    let sum = sha(&clips()[0]);
    let (status, v) = ureq_upload(
        &d,
        &clips()[0],
        "JVvsRivals_Home",
        "CAM_L",
        &sum,
        Some(&text),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["recording_id"], "JVvsRivals_Home_CAM_L");
    let stored = Manifest::read(&d.layout().manifest(&rec.session, rec.camera)).unwrap();
    assert_eq!(stored, m);

    // A manifest that disagrees with the form is refused.
    let mut wrong = m.clone();
    wrong.recording.camera_id = "CAM_R".into();
    let r = ureq_upload(
        &d,
        &clips()[0],
        "JVvsRivals_Home",
        "CAM_L",
        &sum,
        Some(&wrong.to_json_pretty()),
    );
    assert_error(&r, 400, "invalid_manifest");
    assert!(
        r.1["message"].as_str().unwrap().contains("camera_id"),
        "{}",
        r.1
    );
    // (Manifests that are merely wrong are repaired, not refused: tests/interop.rs.)
    // An identical re-upload without a manifest keeps the Pi's manifest.
    let again = curl_upload(&d, &clips()[0], "JVvsRivals_Home", "CAM_L", &sum);
    assert_eq!(again.0, 200, "{}", again.1);
    // The stored manifest survived the refused uploads and the re-upload.
    assert_eq!(
        Manifest::read(&d.layout().manifest(&rec.session, rec.camera)).unwrap(),
        m
    );
}

#[test]
fn bad_fields_ids_and_traversal_are_400_and_store_nothing() {
    let d = Daemon::start();
    let sum = sha(clip());
    for bad in ["../x", "a/b", "%2e%2e", "/abs", "..", "a b", ""] {
        let r = curl_upload(&d, clip(), bad, "CAM_C", &sum);
        assert_error(&r, 400, "invalid_field");
        assert!(
            r.1["message"].as_str().unwrap().contains("session_id"),
            "{}",
            r.1
        );
    }
    for bad in ["CAM_X", "../CAM_C", "cam_c"] {
        assert_error(
            &curl_upload(&d, clip(), SESSION, bad, &sum),
            400,
            "invalid_field",
        );
    }
    for bad in ["abc", &sum[1..], &format!("{}g", &sum[1..])] {
        assert_error(
            &curl_upload(&d, clip(), SESSION, "CAM_C", bad),
            400,
            "invalid_field",
        );
    }
    // Missing fields, named.
    let url = d.url("/api/v1/upload");
    let file = format!("file=@{}", clip().display());
    let r = curl(&["-F", &format!("session_id={SESSION}"), "-F", &file, &url]);
    assert_error(&r, 400, "missing_field");
    let msg = r.1["message"].as_str().unwrap();
    assert!(
        msg.contains("camera_id") && msg.contains("checksum"),
        "{msg}"
    );
    let r = curl(&[
        "-F",
        &format!("session_id={SESSION}"),
        "-F",
        "camera_id=CAM_C",
        "-F",
        &format!("checksum={sum}"),
        &url,
    ]);
    assert_error(&r, 400, "missing_field");
    assert!(r.1["message"].as_str().unwrap().contains("file"));
    // Raw bodies: duplicate field, IDs after the file (checked at the end).
    let bytes = std::fs::read(clip()).unwrap();
    let body = multipart(&[
        ("session_id", None, SESSION.as_bytes()),
        ("session_id", None, b"OTHER"),
    ]);
    assert_error(
        &raw(
            &d,
            &request_head("/api/v1/upload", Some(body.len() as u64)),
            &body,
        ),
        400,
        "invalid_field",
    );
    let body = multipart(&[
        ("file", Some("x.mp4"), &bytes),
        ("checksum", None, sum.as_bytes()),
        ("camera_id", None, b"CAM_C"),
        ("session_id", None, b"../../etc"),
    ]);
    assert_error(
        &raw(
            &d,
            &request_head("/api/v1/upload", Some(body.len() as u64)),
            &body,
        ),
        400,
        "invalid_field",
    );
    d.wait_idle();
    assert_eq!(
        d.files(),
        Vec::<String>::new(),
        "nothing stored, no temp left"
    );
    // Traversal in confirm too.
    assert_error(&confirm(&d, "../x", "CAM_C"), 400, "invalid_field");
}

#[test]
fn ids_after_the_file_are_accepted() {
    let d = Daemon::start();
    let bytes = std::fs::read(clip()).unwrap();
    let sum = sha(clip());
    let body = multipart(&[
        ("file", Some("x.mp4"), &bytes),
        ("checksum", None, sum.to_uppercase().as_bytes()),
        ("camera_id", None, b"CAM_R"),
        ("unknown_extra", None, b"ignored"),
        ("session_id", None, SESSION.as_bytes()),
    ]);
    let r = raw(
        &d,
        &request_head("/api/v1/upload", Some(body.len() as u64)),
        &body,
    );
    assert_eq!(r.0, 200, "{}", r.1);
    let rec = RecordingId::parse("GAME_20240315_140000_CAM_R").unwrap();
    assert_eq!(
        std::fs::read(d.layout().recording(&rec.session, rec.camera)).unwrap(),
        bytes
    );
    // Chunked transfer encoding works too.
    let mut chunked = Vec::new();
    for piece in body.chunks(3000) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw(&d, &request_head("/api/v1/upload", None), &chunked);
    assert_eq!(r.0, 200, "{}", r.1);
}

#[test]
fn routes_methods_media_types_and_unknown_recordings() {
    let d = Daemon::start();
    assert_error(&curl(&[&d.url("/api/v1/nope")]), 404, "not_found");
    assert_error(&curl(&[&d.url("/index.html")]), 404, "not_found");
    assert_error(
        &curl(&[&d.url("/api/v1/upload")]),
        405,
        "method_not_allowed",
    );
    assert_error(
        &curl(&["-X", "PUT", &d.url("/api/v1/upload/confirm")]),
        405,
        "method_not_allowed",
    );
    assert_error(
        &curl(&["-X", "POST", &d.url("/api/v1/health")]),
        405,
        "method_not_allowed",
    );
    assert_error(&confirm(&d, SESSION, "CAM_L"), 404, "recording_not_found");
    let r = curl(&["-d", "not json", &d.url("/api/v1/upload/confirm")]);
    assert_error(&r, 400, "bad_request");
    let r = curl(&[
        "-d",
        r#"{"session_id": "S"}"#,
        &d.url("/api/v1/upload/confirm"),
    ]);
    assert_error(&r, 400, "missing_field");
    // Not multipart.
    let r = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        "{}",
        &d.url("/api/v1/upload"),
    ]);
    assert_error(&r, 415, "unsupported_media_type");
    // Multipart, but the file is not MP4, whatever its Content-Type says.
    let dir = tempfile::tempdir().unwrap();
    let txt = dir.path().join("x.mp4");
    std::fs::write(&txt, b"this is a text file, not a video at all").unwrap();
    let sum = sha(&txt);
    let url = d.url("/api/v1/upload");
    let r = curl(&[
        "-F",
        &format!("session_id={SESSION}"),
        "-F",
        "camera_id=CAM_C",
        "-F",
        &format!("checksum={sum}"),
        "-F",
        &format!("file=@{};type=video/mp4", txt.display()),
        &url,
    ]);
    assert_error(&r, 415, "unsupported_media_type");
    let tiny = dir.path().join("tiny.mp4");
    std::fs::write(&tiny, b"\0\0\0").unwrap();
    assert_error(
        &curl_upload(&d, &tiny, SESSION, "CAM_C", &sha(&tiny)),
        415,
        "unsupported_media_type",
    );
    // ftyp but not a readable video, and no manifest to go by: 415 too.
    let fake = dir.path().join("fake.mp4");
    let mut bytes = b"\0\0\0\x18ftypisom\0\0\0\0isommp41".to_vec();
    bytes.extend(std::iter::repeat_n(7u8, 5000));
    std::fs::write(&fake, &bytes).unwrap();
    let r = curl_upload(&d, &fake, SESSION, "CAM_C", &sha(&fake));
    assert_error(&r, 415, "unsupported_media_type");
    d.wait_idle();
    assert_eq!(d.files(), Vec::<String>::new());
}

#[test]
fn checksum_mismatch_is_422_and_stores_nothing() {
    let d = Daemon::start();
    let wrong = "0".repeat(64);
    let r = curl_upload(&d, clip(), SESSION, "CAM_C", &wrong);
    assert_error(&r, 422, "checksum_mismatch");
    assert!(
        r.1["message"].as_str().unwrap().contains(&sha(clip())),
        "{}",
        r.1
    );
    assert_eq!(d.files(), Vec::<String>::new());
    assert_error(&confirm(&d, SESSION, "CAM_C"), 404, "recording_not_found");
}

#[test]
fn too_large_by_content_length_by_file_and_by_chunked_stream() {
    // 5000-byte file cap; the body may add the form overhead.
    let d = Daemon::with_config("server:\n  max_upload_size_gb: 0.000005\n");
    let size = std::fs::metadata(clip()).unwrap().len();
    assert!(size > 5000);
    // Declared far over the cap: refused before a body byte is read (the
    // reply comes although no body is sent).
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(request_head("/api/v1/upload", Some(60_000_000_000)).as_bytes())
        .unwrap();
    assert_error(&read_response(&mut s), 413, "payload_too_large");
    drop(s);
    // The file part grows over the cap while streaming.
    assert_error(
        &curl_upload(&d, clip(), SESSION, "CAM_C", &sha(clip())),
        413,
        "payload_too_large",
    );
    // A chunked body (no length announced) is cut off at the cap while it streams.
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(request_head("/api/v1/upload", None).as_bytes())
        .unwrap();
    let mut start = format!(
        "--BOUNDARYxyz\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\n{SESSION}\r\n"
    )
    .into_bytes();
    start.extend_from_slice(
        b"--BOUNDARYxyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n",
    );
    start.extend_from_slice(b"\0\0\0\x18ftypisom");
    let chunk = [b'z'; 4096];
    let mut ok = s
        .write_all(format!("{:x}\r\n", start.len()).as_bytes())
        .is_ok();
    ok &= s.write_all(&start).is_ok() && s.write_all(b"\r\n").is_ok();
    let mut sent = 0u64;
    while ok && sent < 8 << 20 {
        ok = s.write_all(b"1000\r\n").is_ok()
            && s.write_all(&chunk).is_ok()
            && s.write_all(b"\r\n").is_ok();
        sent += chunk.len() as u64;
    }
    assert_error(&read_response(&mut s), 413, "payload_too_large");
    drop(s);
    d.wait_idle();
    assert_eq!(d.files(), Vec::<String>::new());
}

#[test]
fn huge_declared_bodies_cut_short_do_not_bring_the_server_down() {
    // Declared sizes beyond RAM: upstream tiny_http 0.12 allocated the
    // undelivered remainder in one piece and aborted (see vendor/tiny_http).
    let d = Daemon::with_config("storage:\n  min_free_space_gb: 0\n");
    let bytes = std::fs::read(clip()).unwrap();
    let body = form(SESSION, "CAM_C", &sha(clip()), &bytes);
    for declared in [40_000_000_000u64, 49_000_000_000] {
        let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        s.write_all(request_head("/api/v1/upload", Some(declared)).as_bytes())
            .unwrap();
        s.write_all(&body[..body.len() / 2]).unwrap();
        // More than the disk holds is refused 507 at the headers, even with
        // a floor of 0, and the body is drained instead: the declared length
        // must not be allocated on that path either.
        let free = soccer_rig::base::fsx::free_space(d.root.path()).unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while declared < free && d.health()["active_uploads"] != 1 {
            assert!(Instant::now() < until);
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(s);
        d.wait_idle();
    }
    // Early reply to a declared 60 GB body (over the cap), client gone after it.
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(request_head("/api/v1/upload", Some(60_000_000_000)).as_bytes())
        .unwrap();
    assert_error(&read_response(&mut s), 413, "payload_too_large");
    drop(s);
    assert_eq!(
        curl_upload(&d, clip(), SESSION, "CAM_C", &sha(clip())).0,
        200
    );
    assert_eq!(d.files().len(), 3);
}

#[test]
fn not_enough_space_is_507_and_health_degraded() {
    let d = Daemon::with_config("storage:\n  min_free_space_gb: 1000000000.0\n");
    let r = curl_upload(&d, clip(), SESSION, "CAM_C", &sha(clip()));
    assert_error(&r, 507, "insufficient_storage");
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("min_free_space_gb")
    );
    assert_eq!(d.health()["status"], "degraded");
    assert_eq!(d.files(), Vec::<String>::new());
}

#[test]
fn truncated_and_malformed_bodies_are_400_and_leave_nothing() {
    let d = Daemon::start();
    let bytes = std::fs::read(clip()).unwrap();
    let sum = sha(clip());
    let full = form(SESSION, "CAM_C", &sum, &bytes);
    // Cut before the closing boundary, Content-Length telling the truth.
    let cut = &full[..full.len() - 20];
    let r = raw(
        &d,
        &request_head("/api/v1/upload", Some(cut.len() as u64)),
        cut,
    );
    assert_error(&r, 400, "bad_request");
    assert!(
        r.1["message"].as_str().unwrap().contains("cut off"),
        "{}",
        r.1
    );
    // No boundary at all; a bad boundary suffix; a part without a name.
    let junk = vec![b'q'; 5000];
    assert_error(
        &raw(
            &d,
            &request_head("/api/v1/upload", Some(junk.len() as u64)),
            &junk,
        ),
        400,
        "bad_request",
    );
    let bad = b"--BOUNDARYxyzXX\r\n".to_vec();
    assert_error(
        &raw(
            &d,
            &request_head("/api/v1/upload", Some(bad.len() as u64)),
            &bad,
        ),
        400,
        "bad_request",
    );
    let noname = b"--BOUNDARYxyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--BOUNDARYxyz--\r\n";
    assert_error(
        &raw(
            &d,
            &request_head("/api/v1/upload", Some(noname.len() as u64)),
            noname,
        ),
        400,
        "bad_request",
    );
    // Multipart without a boundary parameter.
    let r = raw(
        &d,
        "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data\r\nContent-Length: 2\r\n\r\n",
        b"xx",
    );
    assert_error(&r, 400, "bad_request");
    d.wait_idle();
    // Only the cut-off upload's bytes are kept, as a partial to resume
    // (PROTOCOL-EXTENSIONS.md); the malformed bodies left nothing.
    assert_eq!(d.files(), partial_files(&sum));
}

/// The two files of the partial of SESSION_CAM_C with `sum`.
fn partial_files(sum: &str) -> Vec<String> {
    let data = format!("temp/.rig-partial-{SESSION}_CAM_C-{sum}");
    vec![data.clone(), format!("{data}.json")]
}

#[test]
fn client_disconnecting_mid_file_leaves_nothing_and_server_still_serves() {
    let d = Daemon::start();
    let bytes = std::fs::read(clip()).unwrap();
    let sum = sha(clip());
    let body = form(SESSION, "CAM_C", &sum, &bytes);
    {
        let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
        s.write_all(request_head("/api/v1/upload", Some(body.len() as u64)).as_bytes())
            .unwrap();
        s.write_all(&body[..body.len() / 2]).unwrap();
        // Wait until the server holds the upload, then vanish.
        let until = Instant::now() + Duration::from_secs(10);
        while d.health()["active_uploads"] != 1 {
            assert!(Instant::now() < until);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    d.wait_idle();
    assert_eq!(
        d.files(),
        partial_files(&sum),
        "no temp file, nothing in sessions, only the partial kept for a resume"
    );
    // The same recording can be uploaded right away (the claim was released),
    // and storing it uses up the partial.
    let (status, v) = curl_upload(&d, clip(), SESSION, "CAM_C", &sum);
    assert_eq!(status, 200, "{v}");
    assert!(
        d.files().iter().all(|f| f.starts_with("sessions/")),
        "{:?}",
        d.files()
    );
}

#[test]
fn silent_client_gets_408_after_the_stall_timeout() {
    let d = Daemon::with_config("server:\n  stall_timeout_sec: 1\n");
    let bytes = std::fs::read(clip()).unwrap();
    let body = form(SESSION, "CAM_C", &sha(clip()), &bytes);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(request_head("/api/v1/upload", Some(body.len() as u64)).as_bytes())
        .unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    let r = read_response(&mut s);
    assert_error(&r, 408, "request_timeout");
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("stall_timeout_sec")
    );
    d.wait_idle();
    // A stall is how a dropped Wi-Fi link looks: the bytes are kept to resume.
    assert_eq!(d.files(), partial_files(&sha(clip())));
}

#[test]
fn same_recording_twice_at_once_is_409_and_the_first_completes() {
    let d = Daemon::start();
    let bytes = std::fs::read(clip()).unwrap();
    let sum = sha(clip());
    let body = form(SESSION, "CAM_C", &sum, &bytes);
    let mut slow = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    slow.write_all(request_head("/api/v1/upload", Some(body.len() as u64)).as_bytes())
        .unwrap();
    let half = body.len() / 2;
    slow.write_all(&body[..half]).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while d.health()["active_uploads"] != 1 {
        assert!(Instant::now() < until);
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = curl_upload(&d, clip(), SESSION, "CAM_C", &sum);
    assert_error(&r, 409, "upload_in_progress");
    // A different camera is not blocked by it, and health answers meanwhile.
    let (status, _) = ureq_upload(&d, &clips()[0], SESSION, "CAM_L", &sha(&clips()[0]), None);
    assert_eq!(status, 200);
    slow.write_all(&body[half..]).unwrap();
    let r = read_response(&mut slow);
    assert_eq!(r.0, 200, "{}", r.1);
    let rec = RecordingId::parse("GAME_20240315_140000_CAM_C").unwrap();
    assert_eq!(
        std::fs::read(d.layout().recording(&rec.session, rec.camera)).unwrap(),
        bytes
    );
}

#[test]
fn three_cameras_at_once_are_all_stored_and_queue_one_job() {
    let d = Daemon::start();
    let cams = ["CAM_L", "CAM_C", "CAM_R"];
    std::thread::scope(|s| {
        for (i, cam) in cams.iter().enumerate() {
            let d = &d;
            s.spawn(move || {
                let (status, v) =
                    ureq_upload(d, &clips()[i], SESSION, cam, &sha(&clips()[i]), None);
                assert_eq!(status, 200, "{cam}: {v}");
            });
        }
    });
    let layout = d.layout();
    for (i, cam) in cams.iter().enumerate() {
        let rec = RecordingId::parse(&format!("{SESSION}_{cam}")).unwrap();
        let stored = layout.recording(&rec.session, rec.camera);
        assert_eq!(
            hash_file(&stored).unwrap().sha256.to_string(),
            sha(&clips()[i]),
            "{cam}"
        );
        let c = confirm(&d, SESSION, cam);
        assert_eq!(c.1["checksum_sha256"], sha(&clips()[i]).as_str());
    }
    let queue = JobQueue::new(&layout);
    let jobs = queue.load().unwrap().jobs;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].session_id, SESSION);
    assert_eq!(jobs[0].status, JobStatus::Queued);
    // An identical re-upload changes nothing and queues nothing new.
    let (status, _) = curl_upload(&d, &clips()[0], SESSION, "CAM_L", &sha(&clips()[0]));
    assert_eq!(status, 200);
    assert_eq!(queue.load().unwrap().jobs.len(), 1);
}

#[test]
fn reupload_with_another_digest_replaces_only_once_verified() {
    let d = Daemon::start();
    let (a, b) = (&clips()[0], &clips()[2]);
    assert_eq!(curl_upload(&d, a, SESSION, "CAM_L", &sha(a)).0, 200);
    // A damaged replacement (wrong checksum) leaves the stored one alone.
    assert_error(
        &curl_upload(&d, b, SESSION, "CAM_L", &sha(a)),
        422,
        "checksum_mismatch",
    );
    let rec = RecordingId::parse("GAME_20240315_140000_CAM_L").unwrap();
    let stored = d.layout().recording(&rec.session, rec.camera);
    assert_eq!(std::fs::read(&stored).unwrap(), std::fs::read(a).unwrap());
    // A verified one replaces it, manifest and digest included.
    assert_eq!(curl_upload(&d, b, SESSION, "CAM_L", &sha(b)).0, 200);
    assert_eq!(std::fs::read(&stored).unwrap(), std::fs::read(b).unwrap());
    assert_eq!(
        confirm(&d, SESSION, "CAM_L").1["checksum_sha256"],
        sha(b).as_str()
    );
    let m = Manifest::read(&d.layout().manifest(&rec.session, rec.camera)).unwrap();
    assert_eq!(m.checksum.value.to_string(), sha(b));
    assert_eq!(d.files().len(), 3);
}

#[test]
fn startup_removes_crash_leftovers_and_sigterm_exits_0() {
    let root = tempfile::tempdir().unwrap();
    let temp = root.path().join("temp");
    std::fs::create_dir_all(&temp).unwrap();
    std::fs::write(temp.join(".rig-tmp-upload-crashed"), b"partial").unwrap();
    std::fs::write(temp.join("keep-me"), b"not ours").unwrap();
    let d = Daemon::start_in(root, "");
    assert_eq!(d.files(), ["temp/keep-me"]);
    assert_eq!(d.terminate(), 0);
}

#[test]
fn help_version_and_usage_errors() {
    let o = common::run(BIN, &["--help"]);
    assert!(o.status.success());
    assert!(common::stdout(&o).contains("--listen HOST:PORT"));
    let o = common::run(BIN, &["--version"]);
    assert_eq!(
        common::stdout(&o),
        format!("rig-receive {}\n", env!("CARGO_PKG_VERSION"))
    );
    let o = common::run(BIN, &["--bogus"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::stderr(&o).contains("--bogus"));
    let o = common::run(BIN, &["--listen", "nonsense"]);
    assert_eq!(o.status.code(), Some(2));
    let o = common::run(BIN, &["--config", "/nonexistent/config.yaml"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn example_server_config_is_the_defaults() {
    let text = include_str!("../scripts/server-config.example.yaml");
    let c = soccer_rig::base::config::Config::from_yaml(text, None).unwrap();
    assert_eq!(c, soccer_rig::base::config::Config::default());
}

/// Writes `body` in `chunk`-byte pieces every `pause`, from a thread, until
/// it is all sent or the server stops taking it; returns the bytes sent.
fn trickle(
    stream: &TcpStream,
    body: Vec<u8>,
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<usize> {
    let mut out = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut sent = 0;
        for piece in body.chunks(chunk) {
            if out.write_all(piece).is_err() {
                break;
            }
            sent += piece.len();
            std::thread::sleep(pause);
        }
        sent
    })
}

/// Everything the server sends until it closes (EOF or reset).
fn read_until_close(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The JSON body of a raw reply read by [`read_until_close`].
fn reply_json(reply: &str) -> Value {
    let body = reply.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Files under temp/ that are upload temp files (not partials).
fn upload_temps(d: &Daemon) -> Vec<String> {
    d.files()
        .into_iter()
        .filter(|f| f.starts_with("temp/.rig-tmp-upload-"))
        .collect()
}

#[test]
fn a_slow_but_steady_client_is_cut_off_at_the_upload_timeout() {
    let d = Daemon::with_config("server:\n  upload_timeout_sec: 1\n  stall_timeout_sec: 5\n");
    let bytes = std::fs::read(clip()).unwrap();
    let sum = sha(clip());
    let body = form(SESSION, "CAM_C", &sum, &bytes);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(request_head("/api/v1/upload", Some(body.len() as u64)).as_bytes())
        .unwrap();
    // Never silent (a piece every 50 ms, far inside the stall timeout), but
    // the whole body would take 5 s, far longer than the 1 s allowed.
    let started = Instant::now();
    let writer = trickle(
        &s,
        body.clone(),
        body.len() / 100,
        Duration::from_millis(50),
    );
    let reply = read_until_close(&mut s);
    let took = started.elapsed();
    let sent = writer.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 408 "), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("connection: close"),
        "{reply}"
    );
    let v = reply_json(&reply);
    assert_eq!(v["error"], "request_timeout", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("upload_timeout_sec"),
        "{v}"
    );
    assert!(took < Duration::from_secs(4), "cut off after {took:?}");
    assert!(sent < body.len(), "the whole body went in: {sent} bytes");
    d.wait_idle();
    assert!(upload_temps(&d).is_empty(), "{:?}", d.files());
    assert!(
        !d.files().iter().any(|f| f.starts_with("sessions/")),
        "{:?}",
        d.files()
    );
    // Still serving: the same recording uploads right away.
    let (status, v) = curl_upload(&d, clip(), SESSION, "CAM_C", &sum);
    assert_eq!(status, 200, "{v}");
}

/// An upload of the clip as CAM_C whose first half of the body is sent and
/// being received: (connection, whole body, the clip's bytes, its digest).
fn half_an_upload(d: &Daemon) -> (TcpStream, Vec<u8>, Vec<u8>, String) {
    let bytes = std::fs::read(clip()).unwrap();
    let sum = sha(clip());
    let body = form(SESSION, "CAM_C", &sum, &bytes);
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    s.write_all(request_head("/api/v1/upload", Some(body.len() as u64)).as_bytes())
        .unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    d.wait_active(1);
    (s, body, bytes, sum)
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish_within_the_grace_time() {
    let mut d = Daemon::with_config("server:\n  shutdown_grace_sec: 10\n");
    let (mut s, body, bytes, _) = half_an_upload(&d);
    d.signal_term();
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(&body[body.len() / 2..]).unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.0, 200, "{:?}", r.1);
    assert_eq!(r.1["checksum_verified"], true);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0);
    let stored = d.layout().recording(
        &soccer_rig::base::ids::SessionId::parse(SESSION).unwrap(),
        soccer_rig::base::ids::CameraId::Center,
    );
    assert_eq!(std::fs::read(stored).unwrap(), bytes);
    assert!(upload_temps(&d).is_empty(), "{:?}", d.files());
}

#[test]
fn sigterm_grace_running_out_stops_the_upload_and_keeps_a_partial() {
    let mut d = Daemon::with_config("server:\n  shutdown_grace_sec: 1\n");
    let (mut s, body, _, sum) = half_an_upload(&d);
    let half = body.len() / 2;
    d.signal_term();
    // Still sending, too slowly to finish within the grace second (2.5 s).
    let piece = (body.len() - half) / 50;
    let writer = trickle(&s, body[half..].to_vec(), piece, Duration::from_millis(50));
    let started = Instant::now();
    let reply = read_until_close(&mut s);
    assert_eq!(d.wait_exit(Duration::from_secs(10)), 0);
    assert!(started.elapsed() < Duration::from_secs(6));
    let sent = half + writer.join().unwrap();
    assert!(reply.starts_with("HTTP/1.1 503 "), "{reply}");
    assert_eq!(reply_json(&reply)["error"], "shutting_down", "{reply}");
    // Nothing stored, no upload temp file: only the partial, for a resume.
    assert_eq!(d.files(), partial_files(&sum));
    // After the restart the client is told to resume from what arrived.
    let root = std::mem::replace(&mut d.root, tempfile::tempdir().unwrap());
    let d = Daemon::start_in(root, "");
    let (status, v) = curl(&[&d.url(&format!(
        "/api/v1/upload/status?session_id={SESSION}&camera_id=CAM_C&checksum={sum}"
    ))]);
    assert_eq!(status, 200, "{v}");
    let kept = v["received_bytes"].as_u64().unwrap();
    assert!(
        kept > (half as u64) / 2 && kept < sent as u64,
        "kept {kept} of {sent} sent"
    );
}

/// Two uploads that each fit above the free-space floor but not both: the
/// second is refused with 507 at its headers while the first is in flight
/// (the first reserved its announced bytes), and admitted once the first is
/// gone. Admission is seen without sending gigabytes: the client sends
/// `Expect: 100-continue`, and the server answers `100 Continue` only to an
/// upload it admits. Sizes follow the disk's free space, so the test holds
/// on any machine; the margins (a fifth of the room) dwarf what other tests
/// write meanwhile.
#[test]
fn concurrent_uploads_cannot_both_take_the_last_room() {
    let probe = tempfile::tempdir().unwrap();
    let free = soccer_rig::base::fsx::free_space(probe.path()).unwrap();
    let room = (free / 2).min(40_000_000_000);
    let floor_gb = (free - room) as f64 / 1e9;
    let each = room * 6 / 10;
    let d = Daemon::with_config(&format!(
        "storage:\n  min_free_space_gb: {floor_gb:.3}\nserver:\n  max_upload_size_gb: 1000.0\n"
    ));
    let boundary = "xyzzy";
    let head = |cam: &str| {
        format!(
            "POST /api/v1/upload HTTP/1.1\r\nHost: {cam}\r\nExpect: 100-continue\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {each}\r\n\r\n"
        )
    };
    let answer = |s: &mut TcpStream| -> String {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let connect = || TcpStream::connect(("127.0.0.1", d.port)).unwrap();

    let mut first = connect();
    first.write_all(head("CAM_L").as_bytes()).unwrap();
    let got = answer(&mut first);
    assert!(got.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{got:?}");

    let mut second = connect();
    second.write_all(head("CAM_C").as_bytes()).unwrap();
    let got = answer(&mut second);
    assert!(got.starts_with("HTTP/1.1 507 "), "{got:?}");
    assert!(got.contains("promised to uploads in flight"), "{got:?}");

    // The first goes away; its room comes back.
    drop(first);
    let health = d.url("/api/v1/health");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = curl(&[&health]);
        if v["active_uploads"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first upload never ended: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut third = connect();
    third.write_all(head("CAM_R").as_bytes()).unwrap();
    let got = answer(&mut third);
    assert!(got.starts_with("HTTP/1.1 100 Continue\r\n\r\n"), "{got:?}");
    drop(third);
    assert!(
        d.files().iter().all(|f| !f.starts_with("sessions/")),
        "{:?}",
        d.files()
    );
}
