//! Issue 10: HTTPS with a rig CA made by scripts/make-rig-ca, API keys bound
//! to cameras, the IP allowlist, and keys absent from every log line. Real
//! rig-receive and rig-upload processes over loopback, real certificates,
//! real clips; curl for the raw HTTP cases.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::receiver::{Log, Receiver};
use serde_json::Value;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::layout::PiLayout;
use soccer_rig::base::manifest::describe::{self, DescribeOptions};

const UPLOAD: &str = env!("CARGO_BIN_EXE_rig-upload");
const SESSION: &str = "GAME_20240315_140000";
const LEFT_KEY: &str = "left-3f9a1c7e5b2d4f60";
const OPEN_KEY: &str = "open-8e1d2c3b4a596877";

/// A CA and a server certificate for 127.0.0.1, made by the script.
fn make_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("ca");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/make-rig-ca"))
        .arg(&ca)
        .args(["127.0.0.1", "localhost"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    for f in ["ca.pem", "ca.key", "server.pem", "server.key"] {
        assert!(ca.join(f).is_file(), "make-rig-ca made no {f}");
    }
    ca
}

/// The `server:` lines that make rig-receive serve HTTPS with `ca`'s
/// server certificate.
fn tls_lines(ca: &Path) -> String {
    format!(
        "  tls_cert: {}\n  tls_key: {}\n",
        ca.join("server.pem").display(),
        ca.join("server.key").display()
    )
}

impl Receiver {
    /// rig-receive (`common::receiver`) on 127.0.0.1:0 with `server_yaml`
    /// under `server:`; its log (RUST_LOG=debug) goes to a file.
    fn start(dir: &Path, server_yaml: &str) -> Receiver {
        let yaml =
            format!("storage:\n  min_free_space_gb: 0.0\nserver:\n  workers: 4\n{server_yaml}");
        Receiver::under(dir, &yaml, Log::File(dir.join("receive.log"), "debug"))
    }

    /// Every file under sessions/ and temp/ (nothing stored = empty).
    fn files(&self) -> Vec<PathBuf> {
        self.stored_and_left()
    }
}

/// A Pi with one real recording per camera asked for and a config whose
/// `offload:` section gets `extra`.
struct Pi {
    root: PathBuf,
    config: PathBuf,
    clip: PathBuf,
}

impl Pi {
    fn new(dir: &Path, url: &str, extra: &str) -> Pi {
        let base = dir.join(format!("pi-{}", rand_suffix()));
        let root = base.join("nvme");
        fs::create_dir_all(&root).unwrap();
        let config = base.join("config.yaml");
        fs::write(
            &config,
            format!(
                "offload:\n  server_url: \"{url}\"\n  retry_count: 3\n  retry_delay_sec: 0.05\n\
                 \x20 connect_timeout_sec: 5\n  upload_timeout_sec: 30\n{extra}\
                 node:\n  storage_root: \"{}\"\n",
                root.display()
            ),
        )
        .unwrap();
        let clip = common::small_clip(&base, "clip.mp4");
        Pi { root, config, clip }
    }

    fn add(&self, camera: CameraId) -> RecordingId {
        self.add_padded(camera, 0)
    }

    /// A recording of the clip followed by `pad` random bytes (ffprobe still
    /// reads it), with its manifest.
    fn add_padded(&self, camera: CameraId, pad: usize) -> RecordingId {
        let layout = PiLayout::new(&self.root);
        let rec = RecordingId::new(SessionId::parse(SESSION).unwrap(), camera);
        let video = layout.recording(&rec);
        fs::create_dir_all(video.parent().unwrap()).unwrap();
        fs::copy(&self.clip, &video).unwrap();
        if pad > 0 {
            use std::io::Write as _;
            let mut noise = vec![0u8; pad];
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for b in noise.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let mut f = fs::OpenOptions::new().append(true).open(&video).unwrap();
            f.write_all(&noise).unwrap();
        }
        let m = describe::describe(
            &video,
            &rec,
            &DescribeOptions {
                ffprobe: "ffprobe".into(),
                start: Some("2024-03-15T14:00:00Z".parse().unwrap()),
                ..DescribeOptions::default()
            },
        )
        .unwrap();
        m.write_atomic(&layout.manifest(&rec)).unwrap();
        rec
    }

    /// rig-upload of one recording, RUST_LOG=debug.
    fn upload(&self, rec: &RecordingId) -> Output {
        self.upload_with(rec, &[])
    }

    fn upload_with(&self, rec: &RecordingId, flags: &[&str]) -> Output {
        Command::new(UPLOAD)
            .args(["--config", self.config.to_str().unwrap()])
            .args(flags)
            .args([rec.session.as_str(), rec.camera.as_str()])
            .env("RUST_LOG", "debug")
            .output()
            .unwrap()
    }

    fn state(&self, rec: &RecordingId) -> Value {
        let path = PiLayout::new(&self.root).offload_state(rec);
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::SeqCst).to_string()
}

fn cam(s: &str) -> CameraId {
    CameraId::parse(s).unwrap()
}

/// curl with `args`; returns (HTTP status, body). Status 0 = no reply.
fn curl(args: &[&str]) -> (u16, String) {
    let mut all = vec!["--max-time", "30"];
    all.extend_from_slice(args);
    common::curl::text(&all)
}

/// A multipart upload of `clip` as CAM `camera` with curl, plus `extra` args.
fn curl_upload(url: &str, clip: &Path, camera: &str, extra: &[&str]) -> (u16, Value) {
    let fields = [
        ("file", common::curl::mp4(clip)),
        ("session_id", SESSION.to_string()),
        ("camera_id", camera.to_string()),
        ("checksum", common::sha256sum(clip)),
    ];
    let mut all = vec!["--max-time", "30"];
    all.extend_from_slice(extra);
    common::curl::upload_json(url, &fields, &all)
}

#[test]
fn https_upload_succeeds_with_the_rig_ca_and_fails_clearly_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let server = Receiver::start(dir.path(), &tls_lines(&ca));
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let good = Pi::new(
        dir.path(),
        &server.url,
        &format!("  ca_file: {}\n", ca.join("ca.pem").display()),
    );
    let rec = good.add(cam("CAM_L"));
    let out = good.upload(&rec);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let stored = server.layout.recording(&rec.session, rec.camera);
    assert_eq!(fs::read(&stored).unwrap(), fs::read(&good.clip).unwrap());
    assert_eq!(good.state(&rec)["status"], "offloaded");

    // No CA: the self-made certificate is not trusted; one attempt, a clear
    // message, nothing sent in clear instead.
    let bad = Pi::new(dir.path(), &server.url, "");
    let rec = bad.add(cam("CAM_R"));
    let out = bad.upload(&rec);
    assert_ne!(out.status.code(), Some(0));
    let err = common::stderr(&out);
    assert!(
        err.contains("offload.ca_file") && err.contains("TLS"),
        "{err}"
    );
    let st = bad.state(&rec);
    assert_eq!(st["status"], "failed");
    assert_eq!(st["attempts"], 1, "a TLS failure is not retried: {st}");
    assert!(!server.layout.recording(&rec.session, rec.camera).exists());

    // A CA that did not sign the server's certificate is as bad.
    let other = make_ca(&dir.path().join("other"));
    let wrong = Pi::new(
        dir.path(),
        &server.url,
        &format!("  ca_file: {}\n", other.join("ca.pem").display()),
    );
    let out = wrong.upload(&wrong.add(cam("CAM_C")));
    assert_ne!(out.status.code(), Some(0));
    assert!(common::stderr(&out).contains("TLS"));
}

#[test]
fn plain_http_against_the_https_port_fails_cleanly_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let server = Receiver::start(
        dir.path(),
        &format!("{}  stall_timeout_sec: 120\n", tls_lines(&ca)),
    );
    let cacert = ca.join("ca.pem");
    let cacert = cacert.to_str().unwrap();
    let health = format!("{}/api/v1/health", server.url);
    let plain = format!("http://{}/api/v1/health", server.addr);

    // A plain HTTP request gets no HTTP reply: the handshake fails, the
    // connection is closed.
    let (status, _) = curl(&[&plain]);
    assert_eq!(status, 0, "plain HTTP must not be answered");
    let mut raw = TcpStream::connect(server.addr).unwrap();
    raw.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = raw.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // A client that connects and says nothing must not hold off others
    // (the handshake is not done on the accept thread).
    let _silent = TcpStream::connect(server.addr).unwrap();
    let (status, body) = curl(&["--cacert", cacert, &health]);
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "healthy");

    // And an upload over HTTPS after all that still works.
    let clip = common::small_clip(dir.path(), "clip.mp4");
    let (status, v) = curl_upload(&server.url, &clip, "CAM_C", &["--cacert", cacert]);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["checksum_verified"], true);
}

#[test]
fn api_keys_401_403_store_nothing_and_never_reach_a_log() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("api-keys");
    fs::write(&keys, format!("# rig keys\n{OPEN_KEY}\n")).unwrap();
    let server = Receiver::start(
        dir.path(),
        &format!(
            "  api_keys:\n    - {{key: {LEFT_KEY}, cameras: [CAM_L]}}\n  api_keys_file: {}\n",
            keys.display()
        ),
    );
    let clip = common::small_clip(dir.path(), "clip.mp4");
    let bearer = |k: &str| format!("Authorization: Bearer {k}");

    let (status, v) = curl_upload(&server.url, &clip, "CAM_L", &[]);
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let wrong = bearer("not-a-key-at-all");
    let (status, v) = curl_upload(&server.url, &clip, "CAM_L", &["-H", &wrong]);
    assert_eq!(
        (status, v["error"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let left = bearer(LEFT_KEY);
    let (status, v) = curl_upload(&server.url, &clip, "CAM_R", &["-H", &left]);
    assert_eq!(
        (status, v["error"].as_str()),
        (403, Some("camera_not_allowed")),
        "{v}"
    );
    assert_eq!(
        server.files(),
        Vec::<PathBuf>::new(),
        "401/403 stored something"
    );
    // Confirm and the sessions API need a key too; health stays open
    // (server.public_status defaults to true).
    let (status, _) = curl(&[&format!("{}/api/v1/sessions", server.url)]);
    assert_eq!(status, 401);
    let (status, _) = curl(&[&format!("{}/api/v1/health", server.url)]);
    assert_eq!(status, 200);

    // rig-upload with the keys: bound key as its camera, file key as any.
    let pi = Pi::new(dir.path(), &server.url, &format!("  api_key: {LEFT_KEY}\n"));
    let rec = pi.add(cam("CAM_L"));
    let out = pi.upload(&rec);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let mut client_logs = common::stderr(&out);
    let stored = server.layout.recording(&rec.session, rec.camera);
    assert_eq!(fs::read(&stored).unwrap(), fs::read(&pi.clip).unwrap());

    let key_file = dir.path().join("pi-key");
    fs::write(&key_file, format!("{OPEN_KEY}\n")).unwrap();
    let pi2 = Pi::new(
        dir.path(),
        &server.url,
        &format!("  api_key_file: {}\n", key_file.display()),
    );
    let rec = pi2.add(cam("CAM_R"));
    let out = pi2.upload(&rec);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    client_logs += &common::stderr(&out);

    // The CAM_L key uploading as CAM_C: 403 once, not retried.
    let rec = pi.add(cam("CAM_C"));
    let out = pi.upload(&rec);
    assert_ne!(out.status.code(), Some(0));
    client_logs += &common::stderr(&out);
    let st = pi.state(&rec);
    assert_eq!(st["attempts"], 1, "{st}");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("camera_not_allowed"),
        "{st}"
    );
    assert!(!server.layout.recording(&rec.session, rec.camera).exists());

    // No key on the Pi: 401, not retried.
    let nokey = Pi::new(dir.path(), &server.url, "");
    let rec = nokey.add(cam("CAM_C"));
    let out = nokey.upload(&rec);
    assert_ne!(out.status.code(), Some(0));
    assert_eq!(nokey.state(&rec)["attempts"], 1);
    assert!(common::stderr(&out).contains("unauthorized"));

    let server_log = server.log_text();
    assert!(server_log.contains("401"), "the log shows the refusals");
    for (name, text) in [("rig-receive", &server_log), ("rig-upload", &client_logs)] {
        for key in [LEFT_KEY, OPEN_KEY, "not-a-key-at-all"] {
            assert!(!text.contains(key), "{name} logged an API key:\n{text}");
        }
    }
}

#[test]
fn allowlist_excluding_loopback_is_403_and_including_it_lets_uploads_in() {
    let dir = tempfile::tempdir().unwrap();
    let clip = common::small_clip(dir.path(), "clip.mp4");
    {
        let server = Receiver::start(
            &dir.path().join("closed"),
            "  allow_ips: [10.0.0.0/8, \"fd00::/8\", 192.168.1.7]\n",
        );
        let (status, v) = curl_upload(&server.url, &clip, "CAM_L", &[]);
        assert_eq!(
            (status, v["error"].as_str()),
            (403, Some("ip_not_allowed")),
            "{v}"
        );
        let (status, _) = curl(&[&format!("{}/api/v1/health", server.url)]);
        assert_eq!(status, 403, "the allowlist covers health too");
        assert_eq!(server.files(), Vec::<PathBuf>::new());
    }
    let server = Receiver::start(
        &dir.path().join("open"),
        "  allow_ips: [\"192.168.1.0/24\", \"127.0.0.0/8\", \"::1\"]\n",
    );
    let pi = Pi::new(dir.path(), &server.url, "");
    let rec = pi.add(cam("CAM_L"));
    let out = pi.upload(&rec);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let stored = server.layout.recording(&rec.session, rec.camera);
    assert_eq!(fs::read(&stored).unwrap(), fs::read(&pi.clip).unwrap());
}

/// rig-check's `server` item for a node config whose `offload:` gets `extra`.
fn check_server_item(dir: &Path, url: &str, extra: &str) -> Value {
    let pi = Pi::new(dir, url, extra);
    let out = Command::new(env!("CARGO_BIN_EXE_rig-check"))
        .args(["--json", "--config", pi.config.to_str().unwrap()])
        .args(["node", "--server", url, "--minutes", "1", "--timeout", "5"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::stderr(&out)));
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "server")
        .unwrap_or_else(|| panic!("no server check: {doc:#}"))
        .clone()
}

#[test]
fn rig_check_probes_health_with_the_same_ca_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let server = Receiver::start(
        dir.path(),
        &format!(
            "{}  api_keys: [{OPEN_KEY}]\n  public_status: false\n",
            tls_lines(&ca)
        ),
    );
    let ca_line = format!("  ca_file: {}\n", ca.join("ca.pem").display());
    let ok = check_server_item(
        dir.path(),
        &server.url,
        &format!("{ca_line}  api_key: {OPEN_KEY}\n"),
    );
    assert_eq!(ok["status"], "pass", "{ok:#}");
    assert_eq!(ok["value"]["status"], "healthy");

    let no_ca = check_server_item(dir.path(), &server.url, &format!("  api_key: {OPEN_KEY}\n"));
    assert_eq!(no_ca["status"], "fail", "{no_ca:#}");
    assert!(
        no_ca["message"]
            .as_str()
            .unwrap()
            .contains("offload.ca_file"),
        "{no_ca:#}"
    );

    let no_key = check_server_item(dir.path(), &server.url, &ca_line);
    assert_eq!(no_key["status"], "fail", "{no_key:#}");
    assert_eq!(no_key["value"]["http_status"], 401, "{no_key:#}");
    assert!(!server.log_text().contains(OPEN_KEY));
}

/// What a raw client saw when it declared a `declared`-byte upload body and
/// then kept writing body bytes for as long as the server took them.
struct Flood {
    /// Everything the server sent back, up to its close.
    reply: String,
    /// Body bytes the client managed to write before the server closed.
    written: u64,
    /// Whether writing ended in an error (the server closed), not the cap.
    closed: bool,
}

/// Body bytes the flood client writes at most; the server must close long
/// before (a server that reads on would take all of them).
const FLOOD_CAP: u64 = 512 << 20;

fn flood(addr: SocketAddr, extra_headers: &str, declared: u64) -> Flood {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /api/v1/upload HTTP/1.1\r\nHost: rig\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\n\
         Content-Length: {declared}\r\n{extra_headers}\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut out = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        let mut written = 0u64;
        while written < FLOOD_CAP {
            match out.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(_) => return (written, true),
            }
        }
        (written, false)
    });
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break, // EOF or reset: the server closed
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    let (written, closed) = writer.join().unwrap();
    Flood {
        reply: String::from_utf8_lossy(&reply).into_owned(),
        written,
        closed,
    }
}

/// Asserts that the flood got `status` with error `code` as JSON, was told
/// the connection closes, and was cut off after a bounded amount.
fn assert_refused_early(f: &Flood, status: u16, code: &str) {
    assert!(
        f.reply.starts_with(&format!("HTTP/1.1 {status} ")),
        "{:?}",
        f.reply
    );
    let (head, body) = f.reply.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"], code, "{v}");
    assert!(
        f.closed,
        "the server took {FLOOD_CAP} bytes without closing"
    );
    // Socket buffers on loopback hold a few MB; 10 GB was declared.
    assert!(
        f.written < 64 << 20,
        "{} body bytes went in before the close",
        f.written
    );
}

#[test]
fn refused_uploads_are_cut_off_before_their_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let declared = 10_000_000_000u64;
    {
        let server = Receiver::start(&dir.path().join("closed"), "  allow_ips: [10.0.0.0/8]\n");
        let f = flood(server.addr, "", declared);
        assert_refused_early(&f, 403, "ip_not_allowed");
        // It still answers (health is behind the allowlist too).
        let (status, body) = curl(&[&format!("{}/api/v1/health", server.url)]);
        assert_eq!(status, 403, "{body}");
        assert_eq!(server.files(), Vec::<PathBuf>::new());
    }
    let server = Receiver::start(
        &dir.path().join("keys"),
        &format!("  api_keys: [{OPEN_KEY}]\n"),
    );
    let f = flood(server.addr, "", declared);
    assert_refused_early(&f, 401, "unauthorized");
    let wrong = flood(server.addr, "Authorization: Bearer nope\r\n", declared);
    assert_refused_early(&wrong, 401, "unauthorized");
    let (status, body) = curl(&[&format!("{}/api/v1/health", server.url)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(server.files(), Vec::<PathBuf>::new());

    // A small refused body is read to its end, so keep-alive goes on: the
    // next request on the same connection is answered.
    let mut c = TcpStream::connect(server.addr).unwrap();
    c.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let body = vec![b'x'; 5000];
    c.write_all(
        format!(
            "POST /api/v1/upload HTTP/1.1\r\nHost: rig\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    c.write_all(&body).unwrap();
    c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: rig\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    let _ = c.read_to_string(&mut got);
    assert!(got.starts_with("HTTP/1.1 401 "), "{got}");
    let second = got.split("HTTP/1.1 ").nth(2).unwrap_or_default();
    assert!(
        second.starts_with("200 ") && second.contains("\"healthy\""),
        "{got}"
    );
}

#[test]
fn upload_status_obeys_the_keys_camera_binding() {
    let dir = tempfile::tempdir().unwrap();
    let server = Receiver::start(
        dir.path(),
        &format!("  api_keys:\n    - {{key: {LEFT_KEY}, cameras: [CAM_L]}}\n    - {OPEN_KEY}\n"),
    );
    let status = |camera: &str, key: Option<&str>| {
        let url = format!(
            "{}/api/v1/upload/status?session_id={SESSION}&camera_id={camera}&checksum={}",
            server.url,
            "a".repeat(64)
        );
        let auth = key.map(|k| format!("Authorization: Bearer {k}"));
        let mut args: Vec<&str> = Vec::new();
        if let Some(a) = &auth {
            args.extend(["-H", a.as_str()]);
        }
        args.push(&url);
        let (code, body) = curl(&args);
        (
            code,
            serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    // The CAM_L key asking about CAM_C: refused as the upload would be.
    let (code, v) = status("CAM_C", Some(LEFT_KEY));
    assert_eq!(
        (code, v["error"].as_str()),
        (403, Some("camera_not_allowed")),
        "{v}"
    );
    // Its own camera, and any camera with the unbound key: answered.
    let (code, v) = status("CAM_L", Some(LEFT_KEY));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["received_bytes"], 0);
    let (code, v) = status("CAM_C", Some(OPEN_KEY));
    assert_eq!((code, v["camera_id"].as_str()), (200, Some("CAM_C")), "{v}");
    let (code, v) = status("CAM_L", None);
    assert_eq!(
        (code, v["error"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
}

#[test]
fn the_public_page_without_a_key_shows_status_but_no_links_that_would_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Receiver::start(dir.path(), &format!("  api_keys: [{OPEN_KEY}]\n"));
    let clip = common::small_clip(dir.path(), "clip.mp4");
    let bearer = format!("Authorization: Bearer {OPEN_KEY}");
    let (status, v) = curl_upload(&server.url, &clip, "CAM_C", &["-H", &bearer]);
    assert_eq!(status, 200, "{v}");
    let page = format!("{}/", server.url);
    let recording = format!(
        "{}/api/v1/sessions/{SESSION}/CAM_C/recording.mp4",
        server.url
    );
    let stitch = format!("{}/api/v1/sessions/{SESSION}/stitch", server.url);

    // No key: the page, with the session and its sizes, but no link to a
    // route that would answer 401, and a note saying why.
    let (status, html) = curl(&[&page]);
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(SESSION), "{html}");
    assert!(html.contains("CAM_C") && html.contains(" kB"), "{html}");
    assert!(!html.contains("recording.mp4"), "{html}");
    assert!(!html.contains("href=\"/api/"), "{html}");
    assert!(html.contains("need an API key"), "{html}");
    // A wrong key is no key.
    let (status, html) = curl(&["-H", "Authorization: Bearer nope", &page]);
    assert_eq!(status, 200);
    assert!(!html.contains("recording.mp4"), "{html}");
    // With the key: the links are there, and they work.
    let (status, html) = curl(&["-H", &bearer, &page]);
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(
            "href=\"/api/v1/sessions/{SESSION}/CAM_C/recording.mp4\""
        )),
        "{html}"
    );
    assert!(!html.contains("need an API key"), "{html}");
    let (status, _) = curl(&[&recording]);
    assert_eq!(status, 401);
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-H", &bearer, &recording])
        .output()
        .unwrap();
    assert!(out.stdout == fs::read(&clip).unwrap(), "download differs");
    let (status, v) = curl(&["-X", "POST", &stitch]);
    assert_eq!(status, 401, "{v}");
    // With the key the stitch route answers for itself (one camera of
    // three: session_incomplete), not 401.
    let (status, v) = curl(&["-X", "POST", "-H", &bearer, &stitch]);
    assert_eq!(status, 409, "{v}");
    assert!(v.contains("session_incomplete"), "{v}");

    // public_status: false closes the page too.
    let closed = Receiver::start(
        &dir.path().join("closed"),
        &format!("  api_keys: [{OPEN_KEY}]\n  public_status: false\n"),
    );
    let (status, v) = curl(&[&format!("{}/", closed.url)]);
    assert_eq!(status, 401, "{v}");
    let (status, _) = curl(&["-H", &bearer, &format!("{}/", closed.url)]);
    assert_eq!(status, 200);
}

/// A refusal made at the headers reaches rig-upload before it sends its
/// file: rig-upload sends `Expect: 100-continue`, rig-receive answers 401
/// or 413 instead of `100 Continue` (tiny_http patch 8), and the client
/// fails at once with the server's reason. Without it the server stops
/// reading a refused body after 1 MiB and closes (patch 7), and the client
/// saw only a reset, which it retried, never learning why. `--no-resume`
/// skips the status request, which would refuse a missing key earlier.
#[test]
fn refusals_at_the_headers_reach_rig_upload_before_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let server = Receiver::start(
        dir.path(),
        &format!(
            "  api_keys:\n    - {OPEN_KEY}\n    - {{key: {LEFT_KEY}, cameras: [CAM_L]}}\n\
             \x20 max_upload_size_gb: 0.004\n"
        ),
    );
    // 3 MiB: under the 4 MB limit, over the 1 MiB read of a refused body.
    let nokey = Pi::new(dir.path(), &server.url, "");
    let rec = nokey.add_padded(cam("CAM_C"), 3 << 20);
    let out = nokey.upload_with(&rec, &["--no-resume"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let st = nokey.state(&rec);
    assert_eq!(st["attempts"], 1, "401 is not retried: {st}");
    let why = st["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("unauthorized"), "the server's reason: {st}");

    // 8 MiB against the 4 MB limit: 413 from Content-Length, not a reset.
    let keyed = Pi::new(dir.path(), &server.url, &format!("  api_key: {OPEN_KEY}\n"));
    let rec = keyed.add_padded(cam("CAM_L"), 8 << 20);
    let out = keyed.upload_with(&rec, &["--no-resume"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let st = keyed.state(&rec);
    assert_eq!(st["attempts"], 1, "413 is not retried: {st}");
    let why = st["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("payload_too_large"),
        "the server's reason: {st}"
    );

    // CAM_L's key uploading as CAM_C: found in the body (the camera field),
    // so the admitted client's body is read on and the 403 reaches it.
    let left = Pi::new(dir.path(), &server.url, &format!("  api_key: {LEFT_KEY}\n"));
    let rec = left.add_padded(cam("CAM_C"), 3 << 20);
    let out = left.upload_with(&rec, &["--no-resume"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let st = left.state(&rec);
    assert_eq!(st["attempts"], 1, "403 is not retried: {st}");
    let why = st["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("camera_not_allowed"),
        "the server's reason: {st}"
    );

    assert_eq!(server.files(), Vec::<PathBuf>::new(), "nothing stored");
    for (pi, camera) in [(&nokey, "CAM_C"), (&keyed, "CAM_L"), (&left, "CAM_C")] {
        let rec = RecordingId::new(SessionId::parse(SESSION).unwrap(), cam(camera));
        let kept = PiLayout::new(&pi.root).recording(&rec);
        assert!(kept.exists(), "the Pi keeps {}", kept.display());
    }
    // And a good upload on the same server still works, through Expect.
    let rec = keyed.add(cam("CAM_R"));
    let out = keyed.upload(&rec);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
}

/// No log level prints an API key (issue 17): rig-upload and rig-check at
/// `RUST_LOG=trace` log a great deal, and none of it is the key, whole or
/// split over ureq's wire-dump lines.
#[test]
fn trace_logs_of_rig_upload_and_rig_check_never_hold_the_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = Receiver::start(dir.path(), &format!("  api_keys: [{OPEN_KEY}]\n"));
    let pi = Pi::new(dir.path(), &server.url, &format!("  api_key: {OPEN_KEY}\n"));
    let rec = pi.add(cam("CAM_L"));
    let upload = Command::new(UPLOAD)
        .args(["--config", pi.config.to_str().unwrap()])
        .args([rec.session.as_str(), rec.camera.as_str()])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(upload.status.success(), "{}", common::stderr(&upload));
    let check = Command::new(env!("CARGO_BIN_EXE_rig-check"))
        .args(["--json", "--config", pi.config.to_str().unwrap()])
        .args([
            "node",
            "--server",
            &server.url,
            "--minutes",
            "1",
            "--timeout",
            "5",
        ])
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    for (name, out) in [("rig-upload", &upload), ("rig-check", &check)] {
        let log = common::stderr(out);
        assert!(
            log.contains("TRACE") || log.contains("DEBUG"),
            "{name} logged nothing: {log}"
        );
        // The key's halves, so a key split over two dump lines is caught too.
        let (a, b) = OPEN_KEY.split_at(OPEN_KEY.len() / 2);
        for part in [OPEN_KEY, a, b, "Bearer"] {
            assert!(!log.contains(part), "{name} logged {part:?}:\n{log}");
        }
    }
}

/// A client trickling its TLS handshake a byte at a time is dropped at
/// `server.header_timeout_sec` (issue 17); a socket read timeout alone
/// would keep it forever.
#[test]
fn a_trickled_tls_handshake_is_dropped_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let server = Receiver::start(
        dir.path(),
        &format!("{}  header_timeout_sec: 2\n", tls_lines(&ca)),
    );
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(server.addr).unwrap();
    // A TLS handshake record header announcing 512 bytes, then its body
    // one byte every 300 ms.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
    let closed = loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(_) => break true, // EOF or an alert: the server gave up
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break true,
        }
        s.set_nonblocking(false).unwrap();
        if started.elapsed() > std::time::Duration::from_secs(20) || s.write_all(&[0]).is_err() {
            break false;
        }
    };
    assert!(closed, "the trickling handshake was still open after 20 s");
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(10),
        "dropped only after {took:?}"
    );
}
