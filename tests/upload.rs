//! rig-upload end to end: the real binary against a scripted fault server
//! (std TcpListener on 127.0.0.1:0) that answers 503, 400, 422, resets the
//! connection mid-body or returns a wrong confirm digest, and records what
//! arrived and when. Recordings are real ffmpeg clips with real manifests.

mod common;

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use soccer_rig::base::ids::{CameraId, RecordingId};

use common::pi::{DELAY, Rig};
use common::receiver::{Log, Receiver};
use common::wire::{parse_multipart, read_head, respond, sha256_hex};

const BIN: &str = env!("CARGO_BIN_EXE_rig-upload");

// ---------------------------------------------------------------- fault server

/// What the server does with the next upload request.
#[derive(Clone, Debug)]
enum UploadAct {
    /// Store it and answer like rig-receive (422 if the checksum differs).
    Ok,
    /// Answer `status` with error `code`, after parsing the body (`true`)
    /// or after only draining it (`false`).
    Status(u16, &'static str, bool),
    /// Read half the body, then close the socket with data unread (RST).
    ResetMidBody,
}

/// What the server does with the next confirm request.
#[derive(Clone, Debug)]
enum ConfirmAct {
    Ok,
    WrongDigest,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
struct Arrival {
    path: String,
    at: Instant,
    content_length: Option<u64>,
    body_len: usize,
    expect_continue: bool,
    /// Multipart field names in order (uploads only).
    fields: Vec<String>,
    /// Text fields (uploads only).
    text: HashMap<String, String>,
    /// SHA-256 of the `file` part (uploads only).
    file_sha256: Option<String>,
}

#[derive(Default)]
struct Inner {
    uploads: VecDeque<UploadAct>,
    confirms: VecDeque<ConfirmAct>,
    arrivals: Vec<Arrival>,
    /// recording ID -> (digest, size, bytes)
    stored: HashMap<String, (String, u64, Vec<u8>)>,
    /// The status of every `GET /api/v1/upload/status` answer: 404 (a
    /// server without the resume extension) unless a test says otherwise.
    status_answer: u16,
}

#[derive(Clone)]
struct FaultServer {
    url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FaultServer {
    fn start(uploads: Vec<UploadAct>, confirms: Vec<ConfirmAct>) -> FaultServer {
        FaultServer::with_status(uploads, confirms, 404)
    }

    /// Like [`FaultServer::start`], answering upload status with `status`.
    fn with_status(uploads: Vec<UploadAct>, confirms: Vec<ConfirmAct>, status: u16) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            uploads: uploads.into(),
            confirms: confirms.into(),
            status_answer: status,
            ..Inner::default()
        }));
        let shared = inner.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let shared = shared.clone();
                thread::spawn(move || {
                    let _ = handle(stream, &shared);
                });
            }
        });
        FaultServer { url, inner }
    }

    fn arrivals(&self, path: &str) -> Vec<Arrival> {
        let g = self.inner.lock().unwrap();
        g.arrivals
            .iter()
            .filter(|a| a.path == path)
            .cloned()
            .collect()
    }

    /// Requests whose path (query included) starts with `prefix`.
    fn arrivals_under(&self, prefix: &str) -> Vec<Arrival> {
        let g = self.inner.lock().unwrap();
        g.arrivals
            .iter()
            .filter(|a| a.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn stored(&self, rec: &str) -> Option<Vec<u8>> {
        self.inner
            .lock()
            .unwrap()
            .stored
            .get(rec)
            .map(|s| s.2.clone())
    }
}

fn error_body(code: &str) -> Value {
    serde_json::json!({"success": false, "error": code, "message": format!("scripted {code}")})
}

fn handle(mut stream: TcpStream, shared: &Mutex<Inner>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let (_, path, headers) = read_head(&mut reader)?;
    let at = Instant::now();
    let content_length: Option<u64> = headers.get("content-length").and_then(|v| v.parse().ok());
    let expect_continue = headers
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let mut arrival = Arrival {
        path: path.clone(),
        at,
        content_length,
        body_len: 0,
        expect_continue,
        fields: Vec::new(),
        text: HashMap::new(),
        file_sha256: None,
    };
    let len = content_length.unwrap_or(0) as usize;

    if path == "/api/v1/upload" {
        let act = shared
            .lock()
            .unwrap()
            .uploads
            .pop_front()
            .unwrap_or(UploadAct::Ok);
        if let UploadAct::Status(status, code, false) = act {
            // Answer without looking at the body, like a server refusing on
            // headers; drain it first (as rig-receive's tiny_http does) so the
            // close is clean and the client reads the answer.
            let mut sink = vec![0u8; len];
            let _ = reader.read_exact(&mut sink);
            shared.lock().unwrap().arrivals.push(arrival);
            return respond(&mut stream, status, &error_body(code));
        }
        if expect_continue {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        if let UploadAct::ResetMidBody = act {
            let mut half = vec![0u8; len / 2];
            reader.read_exact(&mut half)?;
            arrival.body_len = half.len();
            shared.lock().unwrap().arrivals.push(arrival);
            // Let the rest arrive, then close with it unread: the kernel sends RST.
            thread::sleep(Duration::from_millis(50));
            drop(reader);
            drop(stream);
            return Ok(());
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        arrival.body_len = body.len();
        let boundary = headers
            .get("content-type")
            .and_then(|v| v.split("boundary=").nth(1))
            .unwrap_or("")
            .to_string();
        let parts = parse_multipart(&body, &boundary);
        let mut file = Vec::new();
        for (name, content) in parts {
            arrival.fields.push(name.clone());
            if name == "file" {
                file = content;
            } else {
                arrival
                    .text
                    .insert(name, String::from_utf8_lossy(&content).into_owned());
            }
        }
        let digest = sha256_hex(&file);
        arrival.file_sha256 = Some(digest.clone());
        let rec = format!(
            "{}_{}",
            arrival.text.get("session_id").cloned().unwrap_or_default(),
            arrival.text.get("camera_id").cloned().unwrap_or_default()
        );
        let sent_checksum = arrival.text.get("checksum").cloned().unwrap_or_default();
        shared.lock().unwrap().arrivals.push(arrival);
        if let UploadAct::Status(status, code, true) = act {
            return respond(&mut stream, status, &error_body(code));
        }
        if digest != sent_checksum {
            return respond(&mut stream, 422, &error_body("checksum_mismatch"));
        }
        let size = file.len() as u64;
        shared
            .lock()
            .unwrap()
            .stored
            .insert(rec.clone(), (digest, size, file));
        return respond(
            &mut stream,
            200,
            &serde_json::json!({"success": true, "recording_id": rec, "file_size": size,
                                "checksum_verified": true}),
        );
    }

    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    arrival.body_len = body.len();
    shared.lock().unwrap().arrivals.push(arrival);
    if path.starts_with("/api/v1/upload/status") {
        let status = shared.lock().unwrap().status_answer;
        let code = if status == 405 {
            "method_not_allowed"
        } else {
            "not_found"
        };
        return respond(&mut stream, status, &error_body(code));
    }
    if path == "/api/v1/upload/confirm" {
        let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (s, c) = (
            req["session_id"].as_str().unwrap_or("").to_string(),
            req["camera_id"].as_str().unwrap_or("").to_string(),
        );
        let act = shared
            .lock()
            .unwrap()
            .confirms
            .pop_front()
            .unwrap_or(ConfirmAct::Ok);
        let stored = shared
            .lock()
            .unwrap()
            .stored
            .get(&format!("{s}_{c}"))
            .cloned();
        let Some((digest, size, _)) = stored else {
            return respond(&mut stream, 404, &error_body("recording_not_found"));
        };
        let digest = match act {
            ConfirmAct::Ok => digest,
            ConfirmAct::WrongDigest => "0".repeat(64),
        };
        return respond(
            &mut stream,
            200,
            &serde_json::json!({"success": true, "session_id": s, "camera_id": c,
                                "file_size": size, "checksum_sha256": digest}),
        );
    }
    respond(&mut stream, 404, &error_body("not_found"))
}

// ---------------------------------------------------------------- Pi fixture

fn sess_cam(rec: &RecordingId) -> [String; 2] {
    [rec.session.to_string(), rec.camera.to_string()]
}

fn upload_one(rig: &Rig, rec: &RecordingId, extra: &[&str]) -> Output {
    let [s, c] = sess_cam(rec);
    let mut args: Vec<&str> = vec![s.as_str(), c.as_str()];
    args.extend_from_slice(extra);
    rig.upload(&args)
}

/// Gaps between consecutive arrivals are at least the retry table's delays
/// (DELAY x 1, 2, 4, ...): a lower bound, so never flaky.
fn assert_backoff(arrivals: &[Arrival]) {
    for (i, w) in arrivals.windows(2).enumerate() {
        let gap = w[1].at.duration_since(w[0].at).as_secs_f64();
        let want = DELAY * f64::from(1u32 << i);
        assert!(
            gap >= want,
            "gap {i} is {gap:.3} s, the table says >= {want:.3} s"
        );
    }
}

fn assert_file_intact(rig: &Rig, rec: &RecordingId) {
    let video = rig.video(rec);
    assert!(
        video.exists(),
        "local recording {} must survive",
        video.display()
    );
    assert_eq!(common::sha256sum(&video), common::sha256sum(&rig.clip));
}

// ---------------------------------------------------------------- tests

#[test]
fn happy_path_sends_fields_in_order_streams_exact_length_and_marks_offloaded() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add(
        "GAME_20240315_140000",
        CameraId::Center,
        "2024-03-15T14:00:00Z",
    );
    let out = upload_one(&rig, &rec, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("GAME_20240315_140000_CAM_C offloaded (1 attempt"));

    let ups = server.arrivals("/api/v1/upload");
    assert_eq!(ups.len(), 1);
    let up = &ups[0];
    assert_eq!(
        up.fields,
        ["session_id", "camera_id", "checksum", "manifest", "file"]
    );
    assert_eq!(up.content_length, Some(up.body_len as u64));
    // Expect: 100-continue, so a refusal at the headers arrives before the
    // file is sent (tiny_http patch 8 makes rig-receive's 100 bare).
    assert!(up.expect_continue);
    let want = common::sha256sum(&rig.clip);
    assert_eq!(up.text["checksum"], want);
    assert_eq!(up.text["session_id"], "GAME_20240315_140000");
    assert_eq!(up.text["camera_id"], "CAM_C");
    assert_eq!(
        up.text["manifest"],
        fs::read_to_string(rig.layout().manifest(&rec)).unwrap()
    );
    assert_eq!(
        server.stored(&rec.to_string()).unwrap(),
        fs::read(&rig.clip).unwrap()
    );
    assert_eq!(server.arrivals("/api/v1/upload/confirm").len(), 1);

    let st = rig.state(&rec);
    assert_eq!(st["status"], "offloaded");
    assert_eq!(st["attempts"], 1);
    assert_eq!(st["server_checksum"], want.as_str());
    assert_eq!(st["server_url"], server.url.as_str());
    assert!(st["confirmed_at"].as_str().unwrap().ends_with('Z'));
    assert_file_intact(&rig, &rec);

    // A second run knows it is done and sends nothing.
    let again = upload_one(&rig, &rec, &["--json"]);
    assert_eq!(again.status.code(), Some(0));
    let v: Value = serde_json::from_str(common::stdout(&again).trim()).unwrap();
    assert_eq!(v["status"], "already_offloaded");
    assert_eq!(server.arrivals("/api/v1/upload").len(), 1);
}

#[test]
fn two_503_then_success_is_three_attempts_with_doubling_delays() {
    let server = FaultServer::start(
        vec![
            UploadAct::Status(503, "internal_error", false),
            UploadAct::Status(503, "internal_error", true),
        ],
        vec![],
    );
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S1", CameraId::Left, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let ups = server.arrivals("/api/v1/upload");
    assert_eq!(ups.len(), 3);
    assert_backoff(&ups);
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["success"], true);
    assert_eq!(v["status"], "offloaded");
    assert_eq!(v["attempts"], 3);
    let st = rig.state(&rec);
    assert_eq!(
        (st["status"].as_str(), st["attempts"].as_u64()),
        (Some("offloaded"), Some(3))
    );
    let log = common::stderr(&out);
    assert!(
        log.contains("waiting 0.05 s before attempt 2 of 5"),
        "{log}"
    );
    assert!(
        log.contains("waiting 0.10 s before attempt 3 of 5"),
        "{log}"
    );
    assert!(log.contains("503"), "{log}");
    assert_file_intact(&rig, &rec);
}

#[test]
fn a_400_fails_at_once_with_the_servers_message() {
    let server = FaultServer::start(vec![UploadAct::Status(400, "invalid_field", true)], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S2", CameraId::Right, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--delete-after-confirm"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.arrivals("/api/v1/upload").len(), 1);
    assert_eq!(server.arrivals("/api/v1/upload/confirm").len(), 0);
    let text = common::stdout(&out);
    assert!(text.contains("failed after 1 attempt"), "{text}");
    assert!(text.contains("scripted invalid_field"), "{text}");
    let st = rig.state(&rec);
    assert_eq!(st["status"], "failed");
    assert_eq!(st["attempts"], 1);
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("400 invalid_field")
    );
    assert_file_intact(&rig, &rec);
}

#[test]
fn wrong_confirm_digest_five_times_fails_and_keeps_the_file() {
    let server = FaultServer::start(vec![], vec![ConfirmAct::WrongDigest; 5]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S3", CameraId::Center, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--delete-after-confirm", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    // A differing digest means the server holds other bytes: each attempt re-sends.
    let ups = server.arrivals("/api/v1/upload");
    assert_eq!(ups.len(), 5);
    assert_eq!(server.arrivals("/api/v1/upload/confirm").len(), 5);
    assert_backoff(&ups);
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["success"], false);
    assert_eq!(v["attempts"], 5);
    assert_eq!(v["error"], "checksum_mismatch");
    assert_eq!(v["local_deleted"], false);
    let st = rig.state(&rec);
    assert_eq!(
        (st["status"].as_str(), st["attempts"].as_u64()),
        (Some("failed"), Some(5))
    );
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("differs from ours")
    );
    assert_file_intact(&rig, &rec);
}

#[test]
fn reset_mid_body_and_422_are_retried() {
    let server = FaultServer::start(
        vec![
            UploadAct::ResetMidBody,
            UploadAct::Status(422, "checksum_mismatch", true),
        ],
        vec![],
    );
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S4", CameraId::Center, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let ups = server.arrivals("/api/v1/upload");
    assert_eq!(ups.len(), 3);
    assert!(ups[0].body_len < ups[2].body_len);
    assert_backoff(&ups);
    assert_eq!(rig.state(&rec)["attempts"], 3);
    assert_eq!(
        server.stored(&rec.to_string()).unwrap(),
        fs::read(&rig.clip).unwrap()
    );
}

#[test]
fn other_4xx_like_413_are_not_retried() {
    let server = FaultServer::start(
        vec![UploadAct::Status(413, "payload_too_large", false)],
        vec![],
    );
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S5", CameraId::Center, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.arrivals("/api/v1/upload").len(), 1);
    assert!(common::stdout(&out).contains("413 payload_too_large"));
    assert_file_intact(&rig, &rec);
}

#[test]
fn delete_after_confirm_deletes_only_after_a_matching_digest() {
    let server = FaultServer::start(vec![], vec![ConfirmAct::WrongDigest]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S6", CameraId::Left, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--delete-after-confirm"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(server.arrivals("/api/v1/upload").len(), 2);
    assert!(!rig.video(&rec).exists());
    assert!(rig.layout().manifest(&rec).exists());
    let st = rig.state(&rec);
    assert_eq!(st["status"], "offloaded");
    assert_eq!(st["local_deleted"], true);
    assert_eq!(
        server.stored(&rec.to_string()).unwrap(),
        fs::read(&rig.clip).unwrap()
    );
}

#[test]
fn config_delete_after_confirm_is_honoured_but_not_without_verification() {
    // verify_checksum: false skips the comparison, so a wrong digest is
    // accepted, and therefore nothing may be deleted.
    let server = FaultServer::start(vec![], vec![ConfirmAct::WrongDigest]);
    let rig = Rig::new(
        &server.url,
        "  verify_checksum: false\n  delete_after_confirm: true\n",
    );
    let rec = rig.add("S7", CameraId::Left, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(server.arrivals("/api/v1/upload").len(), 1);
    assert_eq!(rig.state(&rec)["server_checksum"], "0".repeat(64));
    assert_file_intact(&rig, &rec);
    assert!(common::stderr(&out).contains("not deleting"));
}

#[test]
fn connection_refused_is_retried_then_failed() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rig = Rig::with_retries(&format!("http://127.0.0.1:{port}"), 3, "");
    let rec = rig.add("S8", CameraId::Center, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["attempts"], 3);
    assert_eq!(v["error"], "connection_refused");
    assert_eq!(rig.state(&rec)["status"], "failed");
    assert_file_intact(&rig, &rec);
}

#[test]
fn missing_file_and_invalid_manifest_fail_at_once_without_a_request() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let gone = rig.add("S9", CameraId::Center, "2024-03-15T14:00:00Z");
    fs::remove_file(rig.video(&gone)).unwrap();
    let out = upload_one(&rig, &gone, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(
        (v["error"].as_str(), v["attempts"].as_u64()),
        (Some("file_not_found"), Some(0))
    );
    assert_eq!(rig.state(&gone)["status"], "failed");

    let bad = rig.add("S10", CameraId::Center, "2024-03-15T14:00:00Z");
    let mpath = rig.layout().manifest(&bad);
    let mut m: Value = serde_json::from_str(&fs::read_to_string(&mpath).unwrap()).unwrap();
    m["video"]["fps"] = Value::from(-3);
    fs::write(&mpath, m.to_string()).unwrap();
    let out = upload_one(&rig, &bad, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["error"], "invalid_manifest");
    assert!(v["message"].as_str().unwrap().contains("video.fps"), "{v}");
    assert_file_intact(&rig, &bad);

    // A file that grew or shrank since its manifest is refused up front.
    let changed = rig.add("S11", CameraId::Center, "2024-03-15T14:00:00Z");
    fs::OpenOptions::new()
        .append(true)
        .open(rig.video(&changed))
        .unwrap()
        .write_all(b"x")
        .unwrap();
    let out = upload_one(&rig, &changed, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stdout(&out).contains("file.size_bytes"));

    assert!(server.arrivals("/api/v1/upload").is_empty());
}

#[test]
fn rehash_refuses_changed_bytes_and_missing_checksum_is_computed() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    // Same size, one byte flipped: only --rehash can tell.
    let rec = rig.add("S12", CameraId::Center, "2024-03-15T14:00:00Z");
    let video = rig.video(&rec);
    let mut bytes = fs::read(&video).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&video, &bytes).unwrap();
    let out = upload_one(&rig, &rec, &["--rehash", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["error"], "local_checksum_mismatch");
    assert!(server.arrivals("/api/v1/upload").is_empty());
    assert!(video.exists());

    let rec2 = rig.add("S13", CameraId::Center, "2024-03-15T14:00:00Z");
    let mpath = rig.layout().manifest(&rec2);
    let mut m: Value = serde_json::from_str(&fs::read_to_string(&mpath).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("checksum");
    fs::write(&mpath, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let out = upload_one(&rig, &rec2, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let ups = server.arrivals("/api/v1/upload");
    let want = common::sha256sum(&rig.clip);
    assert_eq!(ups[0].text["checksum"], want);
    let sent: Value = serde_json::from_str(&ups[0].text["manifest"]).unwrap();
    assert_eq!(sent["checksum"]["value"], want.as_str());
}

#[test]
fn all_goes_oldest_first_skips_offloaded_and_retries_failed() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let late = rig.add("LATE", CameraId::Center, "2024-03-16T10:00:00Z");
    let early = rig.add("EARLY", CameraId::Right, "2024-03-15T10:00:00Z");
    let done = rig.add("DONE", CameraId::Left, "2024-03-14T10:00:00Z");
    let failed = rig.add("FAILED", CameraId::Left, "2024-03-15T12:00:00Z");
    let write_state = |rec: &RecordingId, status: &str| {
        let mut s = soccer_rig::upload::OffloadState::pending(&rec.to_string());
        s.status = serde_json::from_value(Value::from(status)).unwrap();
        soccer_rig::upload::write_offload_state(&rig.layout().offload_state(rec), &s).unwrap();
    };
    write_state(&done, "offloaded");
    write_state(&failed, "failed");
    // Not manifests: a state file, a stray JSON, a temp file.
    fs::write(rig.layout().manifest_dir(&late).join("notes.json"), "{}").unwrap();

    let out = rig.upload(&["--all", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let order: Vec<String> = server
        .arrivals("/api/v1/upload")
        .iter()
        .map(|a| a.text["session_id"].clone())
        .collect();
    assert_eq!(order, ["EARLY", "FAILED", "LATE"]);
    let lines: Vec<Value> = common::stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|v| v["status"] == "offloaded"));
    for rec in [&early, &failed, &late] {
        assert_eq!(rig.state(rec)["status"], "offloaded");
    }
    assert_eq!(server.stored(&done.to_string()), None);

    // Nothing left: a second --all sends nothing and succeeds.
    let out = rig.upload(&["--all"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(server.arrivals("/api/v1/upload").len(), 3);
}

#[test]
fn an_interrupted_run_is_resumed_by_confirm_without_resending() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S14", CameraId::Center, "2024-03-15T14:00:00Z");
    // First run stores it on the server; then pretend we died before the state write.
    assert_eq!(upload_one(&rig, &rec, &[]).status.code(), Some(0));
    let mut st = soccer_rig::upload::read_offload_state(&rig.layout().offload_state(&rec))
        .unwrap()
        .unwrap();
    st.status = soccer_rig::upload::OffloadStatus::Uploading;
    soccer_rig::upload::write_offload_state(&rig.layout().offload_state(&rec), &st).unwrap();
    let out = upload_one(&rig, &rec, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(server.arrivals("/api/v1/upload").len(), 1);
    assert_eq!(server.arrivals("/api/v1/upload/confirm").len(), 2);
    assert_eq!(rig.state(&rec)["status"], "offloaded");
}

#[test]
fn a_second_instance_exits_at_once_while_the_lock_is_held() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S15", CameraId::Center, "2024-03-15T14:00:00Z");
    let held = soccer_rig::base::fsx::LockFile::try_acquire(&rig.layout().upload_lock())
        .unwrap()
        .unwrap();
    let out = rig.upload(&["--all", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("another rig-upload is running"));
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["error"], "locked");
    assert!(server.arrivals("/api/v1/upload").is_empty());
    drop(held);
    assert_eq!(upload_one(&rig, &rec, &[]).status.code(), Some(0));
}

#[test]
fn file_and_manifest_pair_dry_run_auto_and_usage() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S16", CameraId::Right, "2024-03-15T14:00:00Z");
    let video = rig.video(&rec);
    let manifest = rig.layout().manifest(&rec);
    let (v, m) = (video.to_str().unwrap(), manifest.to_str().unwrap());

    let out = rig.upload(&["--file", v, "--manifest", m, "--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(text.contains("would be sent: POST"), "{text}");
    assert!(text.contains("session_id=S16 camera_id=CAM_R"), "{text}");
    assert!(text.contains(&common::sha256sum(&rig.clip)), "{text}");
    assert!(server.arrivals("/api/v1/upload").is_empty());
    assert!(!rig.layout().offload_state(&rec).exists());

    // --auto does nothing while offload.auto_upload is false (the default).
    let out = rig.upload(&["--all", "--auto"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(server.arrivals("/api/v1/upload").is_empty());

    let out = rig.upload(&["--file", v, "--manifest", m]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert_eq!(rig.state(&rec)["status"], "offloaded");
    assert_eq!(
        server.stored(&rec.to_string()).unwrap(),
        fs::read(&video).unwrap()
    );

    // Usage and configuration errors exit 2.
    for args in [
        &[][..],
        &["--all", "S", "CAM_C"][..],
        &["--file", v][..],
        &["S", "CAM_Z"][..],
        &["../x", "CAM_C"][..],
        &["--bogus", "--all"][..],
        &["--all", "--server", "ftp://x"][..],
        &["S", "CAM_C", "--root", "/nonexistent/nvme"][..],
    ] {
        let out = rig.upload(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            common::stderr(&out)
        );
    }
    let out = common::run(BIN, &["--help"]);
    assert!(common::stdout(&out).contains("--delete-after-confirm"));
}

#[test]
fn node_config_example_parses_to_the_defaults() {
    let text = include_str!("../scripts/node-config.example.yaml");
    let c = soccer_rig::base::config::Config::from_yaml(text, None).unwrap();
    assert_eq!(
        c.offload,
        soccer_rig::base::config::OffloadConfig::default()
    );
    assert_eq!(c.node, soccer_rig::base::config::NodeConfig::default());
    assert_eq!(
        c.recording,
        soccer_rig::base::config::RecordingConfig::default()
    );
}

#[test]
fn offload_all_wrapper_runs_passes_until_everything_is_offloaded() {
    // Pass 1: the only upload is refused (400, not retried) -> exit 1;
    // pass 2 sends it again and succeeds.
    let server = FaultServer::start(vec![UploadAct::Status(400, "invalid_field", true)], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("W1", CameraId::Center, "2024-03-15T14:00:00Z");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rig-offload-all");
    let out = std::process::Command::new(script)
        .arg("--delete-after-confirm")
        .env("RIG_UPLOAD", BIN)
        .env("SOCCER_RIG_CONFIG", &rig.config)
        .env("PASSES", "2")
        .env("PAUSE_SEC", "0")
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("pass 2 of 2"), "{err}");
    assert_eq!(server.arrivals("/api/v1/upload").len(), 2);
    assert_eq!(rig.state(&rec)["status"], "offloaded");
    assert!(!rig.video(&rec).exists());
}

#[test]
fn upload_in_progress_409_twice_then_success_is_three_attempts_and_offloaded() {
    // After a Wi-Fi drop the server still holds our dead attempt as in
    // flight: its 409 upload_in_progress is waited out like a 503.
    let server = FaultServer::start(
        vec![
            UploadAct::Status(409, "upload_in_progress", false),
            UploadAct::Status(409, "upload_in_progress", true),
        ],
        vec![],
    );
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S17", CameraId::Center, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let ups = server.arrivals("/api/v1/upload");
    assert_eq!(ups.len(), 3);
    assert_backoff(&ups);
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["attempts"].as_u64()),
        (Some("offloaded"), Some(3))
    );
    let st = rig.state(&rec);
    assert_eq!(
        (st["status"].as_str(), st["attempts"].as_u64()),
        (Some("offloaded"), Some(3))
    );
    assert_eq!(
        server.stored(&rec.to_string()).unwrap(),
        fs::read(&rig.clip).unwrap()
    );
    let log = common::stderr(&out);
    assert!(log.contains("409 upload_in_progress"), "{log}");
    assert!(!log.contains("not retried"), "{log}");
    assert_file_intact(&rig, &rec);
}

#[test]
fn other_409s_are_still_final() {
    let server = FaultServer::start(
        vec![UploadAct::Status(409, "recording_exists", true)],
        vec![],
    );
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S18", CameraId::Center, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.arrivals("/api/v1/upload").len(), 1);
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(
        (v["error"].as_str(), v["attempts"].as_u64()),
        (Some("recording_exists"), Some(1))
    );
    assert_eq!(rig.state(&rec)["status"], "failed");
    assert_file_intact(&rig, &rec);
}

#[test]
fn a_server_without_resume_404_or_405_on_status_gets_whole_uploads() {
    for status in [404u16, 405] {
        // One 503 so that a second attempt shows the answer is remembered:
        // status is asked once, and neither upload carries an offset.
        let server = FaultServer::with_status(
            vec![UploadAct::Status(503, "internal_error", true)],
            vec![],
            status,
        );
        let rig = Rig::new(&server.url, "");
        let rec = rig.add("S19", CameraId::Right, "2024-03-15T14:00:00Z");
        let out = upload_one(&rig, &rec, &["--json"]);
        let log = common::stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{status}: {log}");
        let asked = server.arrivals_under("/api/v1/upload/status");
        assert_eq!(asked.len(), 1, "{status}: status asked once per run");
        assert!(
            asked[0]
                .path
                .contains("session_id=S19&camera_id=CAM_R&checksum="),
            "{}",
            asked[0].path
        );
        let ups = server.arrivals("/api/v1/upload");
        assert_eq!(ups.len(), 2, "{status}");
        for up in &ups {
            assert_eq!(
                up.fields,
                ["session_id", "camera_id", "checksum", "manifest", "file"],
                "{status}: a whole upload has no offset field"
            );
            assert!(!up.text.contains_key("offset"), "{status}");
            assert_eq!(up.content_length, Some(up.body_len as u64));
        }
        assert_eq!(
            ups[1].file_sha256.as_deref(),
            Some(common::sha256sum(&rig.clip).as_str())
        );
        assert_eq!(
            server.stored(&rec.to_string()).unwrap(),
            fs::read(&rig.clip).unwrap()
        );
        let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
        assert_eq!(v["status"], "offloaded", "{status}");
        assert_eq!(v["resumed_from"], 0, "{status}");
        assert_eq!(rig.state(&rec)["status"], "offloaded");
        assert!(
            log.contains(&format!("does not resume uploads ({status} on status)")),
            "{log}"
        );
    }
}

#[test]
fn dry_run_of_an_offloaded_recording_says_nothing_would_be_sent() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S20", CameraId::Left, "2024-03-15T14:00:00Z");
    assert_eq!(upload_one(&rig, &rec, &[]).status.code(), Some(0));
    let state_path = rig.layout().offload_state(&rec);
    let before = fs::read(&state_path).unwrap();

    let out = upload_one(&rig, &rec, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert_eq!(
        text.trim(),
        "S20_CAM_L already offloaded; nothing would be sent",
        "{text}"
    );
    let out = upload_one(&rig, &rec, &["--dry-run", "--json"]);
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["status"], "already_offloaded");
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["attempts"], 0);
    // A real run's report carries no dry_run key.
    let out = upload_one(&rig, &rec, &["--json"]);
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["status"], "already_offloaded");
    assert!(v.get("dry_run").is_none(), "{v}");

    assert_eq!(server.arrivals("/api/v1/upload").len(), 1);
    assert_eq!(fs::read(&state_path).unwrap(), before, "state untouched");
}

/// The waits the client logged, as (seconds text, attempt it precedes).
fn logged_waits(log: &str) -> Vec<(String, u32)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("waiting ").nth(1)?;
            let (secs, rest) = rest.split_once(" s before attempt ")?;
            let attempt = rest.split_whitespace().next()?.parse().ok()?;
            Some((secs.to_string(), attempt))
        })
        .collect()
}

#[test]
fn retry_delays_are_exactly_the_table_for_five_attempts() {
    // retry_count 5, every attempt fails: the client plans exactly four
    // waits, retry_delay_sec x 1, 2, 4, 8. Asserted on what it logged (the
    // planned delays), not on the clock.
    let server = FaultServer::start(
        vec![UploadAct::Status(503, "internal_error", true); 5],
        vec![],
    );
    let rig = Rig::with_retries(&server.url, 5, "");
    let rec = rig.add("S21", CameraId::Center, "2024-03-15T14:00:00Z");
    let out = upload_one(&rig, &rec, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let log = common::stderr(&out);
    let want: Vec<(String, u32)> = [1.0, 2.0, 4.0, 8.0]
        .iter()
        .zip(2..)
        .map(|(k, n)| (format!("{:.2}", DELAY * k), n))
        .collect();
    assert_eq!(want[3], ("0.40".to_string(), 5), "the table itself");
    assert_eq!(logged_waits(&log), want, "{log}");
    assert_eq!(server.arrivals("/api/v1/upload").len(), 5);
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert_eq!(v["attempts"], 5);
    assert_eq!(rig.state(&rec)["attempts"], 5);
}

#[test]
fn without_a_tty_progress_is_one_log_line_per_tenth() {
    let server = FaultServer::start(vec![], vec![]);
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("S22", CameraId::Center, "2024-03-15T14:00:00Z");
    let [s, c] = sess_cam(&rec);
    // stderr is a pipe here, so no bar: log lines.
    let out = std::process::Command::new(BIN)
        .args(["--config", rig.config.to_str().unwrap(), &s, &c])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let log = common::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    let size = fs::metadata(rig.video(&rec)).unwrap().len();
    let tenths: Vec<u32> = log
        .lines()
        .filter_map(|l| {
            let rest = l.split("S22_CAM_C: sent ").nth(1)?;
            let (pct, rest) = rest.split_once("% (")?;
            assert!(rest.ends_with(&format!(" of {size} bytes)")), "{l}");
            pct.parse().ok()
        })
        .collect();
    assert_eq!(
        tenths,
        [10, 20, 30, 40, 50, 60, 70, 80, 90, 100],
        "one line per 10% of a {size}-byte file:\n{log}"
    );
}

// ---------------------------------------------------------------- real rig-receive

impl Receiver {
    /// rig-receive (`common::receiver`) on 127.0.0.1:0 with a temp root.
    fn start() -> Receiver {
        Receiver::in_temp("storage:\n  min_free_space_gb: 0.0\n", Log::Quiet)
    }
}

#[test]
fn real_receiver_gets_three_cameras_byte_identical() {
    let server = Receiver::start();
    let rig = Rig::new(&server.url, "");
    let recs: Vec<RecordingId> = CameraId::ALL
        .iter()
        .map(|&c| rig.add("GAME_20240315_140000", c, "2024-03-15T14:00:00Z"))
        .collect();
    let out = rig.upload(&["--all", "--json", "--delete-after-confirm"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let clip = fs::read(&rig.clip).unwrap();
    let want = common::sha256sum(&rig.clip);
    for rec in &recs {
        assert_eq!(fs::read(server.stored(rec)).unwrap(), clip, "{rec}");
        let digest = fs::read_to_string(server.layout.digest(&rec.session, rec.camera)).unwrap();
        assert_eq!(
            soccer_rig::base::layout::parse_digest_line(&digest),
            Some(want.parse().unwrap())
        );
        let st = rig.state(rec);
        assert_eq!(st["status"], "offloaded");
        assert_eq!(st["server_checksum"], want.as_str());
        assert_eq!(st["local_deleted"], true);
        assert!(!rig.video(rec).exists());
        assert!(rig.layout().manifest(rec).exists());
    }
    // All three cameras stored: the session is queued for stitching.
    let queue = soccer_rig::base::jobs::JobQueue::new(&server.layout);
    assert!(queue.latest_for(&recs[0].session).unwrap().is_some());
}

#[test]
fn real_receiver_catches_a_flipped_byte_and_a_cut_and_the_retry_heals_both() {
    let server = Receiver::start();
    // Connection 1: one byte of the file part flipped in transit -> the
    // server's digest differs -> 422 checksum_mismatch -> retried.
    // Connection 2: cut mid-body -> reset -> retried. Then clean.
    let rig = Rig::new(&server.url, "");
    let rec = rig.add("FAULTS", CameraId::Center, "2024-03-15T14:00:00Z");
    let manifest_len = fs::metadata(rig.layout().manifest(&rec)).unwrap().len();
    let clip_len = fs::metadata(&rig.clip).unwrap().len();
    // Past the HTTP headers, the text fields and the manifest: inside the video.
    let into_file = manifest_len + 1500;
    assert!(
        clip_len > 4000,
        "the clip must reach past offset {into_file}"
    );
    let proxy = common::proxy::Proxy::start(
        server.addr,
        vec![
            common::proxy::Fault::FlipAt(into_file),
            common::proxy::Fault::CutAfter(into_file),
        ],
    );
    let via = format!("http://{}", proxy.addr());
    let out = upload_one(&rig, &rec, &["--json", "--server", &via]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let v: Value = serde_json::from_str(common::stdout(&out).trim()).unwrap();
    assert!(v["attempts"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(
        fs::read(server.stored(&rec)).unwrap(),
        fs::read(&rig.clip).unwrap()
    );
    let log = common::stderr(&out);
    assert!(log.contains("checksum_mismatch"), "{log}");
}
