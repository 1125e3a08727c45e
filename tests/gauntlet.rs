//! The fault gauntlet: the real rig-receive and rig-upload binaries under
//! injected faults. Every scenario asserts that nothing is lost: the Pi's
//! recording is intact until confirmed, the server never shows a partial or
//! wrong file under a final name, and the server keeps serving.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy};
use common::receiver::{Log, Receiver as Server};
use serde_json::Value;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::layout::{PiLayout, ServerLayout};
use soccer_rig::base::manifest::describe::{self, DescribeOptions};

const UPLOAD: &str = env!("CARGO_BIN_EXE_rig-upload");

impl Server {
    /// Starts rig-receive (`common::receiver`) on `listen` (port 0 picks
    /// one) with a config of a tiny free-space floor plus `extra_yaml`.
    fn start(dir: &Path, listen: &str, extra_yaml: &str) -> Server {
        Server::start_with(
            dir,
            listen,
            &format!("storage:\n  min_free_space_gb: 0.01\n{extra_yaml}"),
        )
    }

    /// Starts rig-receive with exactly this config text.
    fn start_with(dir: &Path, listen: &str, yaml: &str) -> Server {
        let config = dir.join("server.yaml");
        fs::write(&config, yaml).unwrap();
        Server::spawn(&config, &dir.join("server"), listen, Log::Warn)
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn layout(&self) -> ServerLayout {
        ServerLayout::under(&self.root)
    }

    fn kill9(&mut self) {
        self.kill();
    }

    /// GET /api/v1/health, parsed; panics if the server does not answer 200.
    fn health(&self) -> Value {
        let (status, body) = http(
            self.addr,
            "GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".as_bytes(),
        );
        assert_eq!(status, Some(200), "health must answer: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Sends raw bytes, returns the status (None on a close without reply) and body.
fn http(addr: SocketAddr, request: &[u8]) -> (Option<u16>, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_reply(&buf)
}

fn parse_reply(buf: &[u8]) -> (Option<u16>, String) {
    let text = String::from_utf8_lossy(buf);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// A Pi with its storage root, holding one recording per session added.
struct Node {
    root: PathBuf,
    config: PathBuf,
}

impl Node {
    /// A node whose retries wait 0.05 s unless `offload_yaml` sets its own
    /// `retry_delay_sec`.
    fn new(dir: &Path, name: &str, server_url: &str, offload_yaml: &str) -> Node {
        let root = dir.join(name);
        fs::create_dir_all(&root).unwrap();
        let config = dir.join(format!("{name}.yaml"));
        let delay = if offload_yaml.contains("retry_delay_sec") {
            ""
        } else {
            "  retry_delay_sec: 0.05\n"
        };
        fs::write(
            &config,
            format!(
                "offload:\n  server_url: \"{server_url}\"\n{delay}{offload_yaml}\
                 node:\n  storage_root: \"{}\"\n",
                root.display()
            ),
        )
        .unwrap();
        Node { root, config }
    }

    /// Copies `clip` in as SESSION/CAM and writes its manifest; returns the recording path.
    fn add(&self, clip: &Path, session: &str, cam: CameraId) -> PathBuf {
        let rec = RecordingId::new(SessionId::parse(session).unwrap(), cam);
        let pi = PiLayout::new(&self.root);
        let video = pi.recording(&rec);
        fs::create_dir_all(video.parent().unwrap()).unwrap();
        fs::copy(clip, &video).unwrap();
        let opts = DescribeOptions {
            ffprobe: "ffprobe".into(),
            ..DescribeOptions::default()
        };
        let m = describe::describe(&video, &rec, &opts).unwrap();
        m.write_atomic(&pi.manifest(&rec)).unwrap();
        video
    }

    fn state(&self, session: &str, cam: CameraId) -> Value {
        let rec = RecordingId::new(SessionId::parse(session).unwrap(), cam);
        let text = fs::read_to_string(PiLayout::new(&self.root).offload_state(&rec)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn upload_cmd(&self, session: &str, cam: CameraId) -> Command {
        let mut c = Command::new(UPLOAD);
        c.args([
            "--config",
            self.config.to_str().unwrap(),
            "--json",
            session,
            cam.as_str(),
        ])
        .env("RUST_LOG", "warn");
        c
    }

    fn upload(&self, session: &str, cam: CameraId) -> Output {
        self.upload_cmd(session, cam).output().unwrap()
    }
}

/// Clip size in MiB for heavier runs (`scripts/gauntlet`); unset, the
/// default ~1 MB clip keeps CI within its budget.
const MIB_VAR: &str = "RIG_GAUNTLET_MIB";

/// The clip size asked for with [`MIB_VAR`], if any; a value that is not a
/// positive number fails loudly rather than silently running the light suite.
fn heavy_mib() -> Option<f64> {
    let text = std::env::var(MIB_VAR).ok()?;
    match text.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Some(n),
        _ => panic!("{MIB_VAR}={text:?}: expected a clip size in MiB, e.g. 256"),
    }
}

/// A ~1 MB clip, so cuts and flips land inside a real body; with
/// `RIG_GAUNTLET_MIB=N`, a clip of about N MiB (constant-bitrate H.264, so
/// the size follows the duration).
fn clip(dir: &Path) -> PathBuf {
    let out = dir.join("clip.mp4");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"]);
    match heavy_mib() {
        None => {
            cmd.arg("testsrc2=size=640x360:rate=25:duration=3").args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-b:v",
                "3M",
            ]);
        }
        Some(mib) => {
            // 20 Mbit/s with filler (nal-hrd=cbr): N MiB is N*8.39/20 s.
            let secs = (mib * 1.048_576 * 8.0 / 20.0).max(1.0);
            cmd.arg(format!("testsrc2=size=1280x720:rate=25:duration={secs:.2}"))
                .args([
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-b:v",
                    "20M",
                    "-minrate",
                    "20M",
                    "-maxrate",
                    "20M",
                    "-bufsize",
                    "4M",
                    "-x264-params",
                    "nal-hrd=cbr",
                ]);
        }
    }
    let status = cmd
        .args(["-pix_fmt", "yuv420p"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not make {}", out.display());
    if let Some(mib) = heavy_mib() {
        let len = fs::metadata(&out).unwrap().len();
        eprintln!(
            "{MIB_VAR}={mib}: clip of {len} bytes ({:.1} MiB)",
            len as f64 / 1_048_576.0
        );
    }
    out
}

/// The server shows either nothing or exactly `original` for the recording,
/// and after `wait` its temp dir drains to empty.
fn assert_server_clean(layout: &ServerLayout, session: &str, cam: CameraId, original: &[u8]) {
    let s = SessionId::parse(session).unwrap();
    let stored = layout.recording(&s, cam);
    if stored.exists() {
        assert!(
            fs::read(&stored).unwrap() == original,
            "{} differs from the Pi's file",
            stored.display()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Kept partials of interrupted uploads (the resume extension) are
        // expected in temp/; anything else must drain away.
        let left: Vec<_> = fs::read_dir(&layout.temp)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        !p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with(".rig-partial-"))
                    })
                    .collect()
            })
            .unwrap_or_default();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "temp files left behind: {left:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn assert_offloaded(o: &Output, node: &Node, session: &str, cam: CameraId) -> Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "rig-upload: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let state = node.state(session, cam);
    assert_eq!(state["status"], "offloaded", "{state}");
    state
}

/// Waits until the proxy holds the upload mid-body; panics with the client's
/// output if it exits first or nothing happens for 60 s (a bug must not hang
/// the suite).
fn wait_for_stall(proxy: &Proxy, client: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.stalled() {
        if let Ok(Some(status)) = client.try_wait() {
            let mut err = String::new();
            if let Some(e) = client.stderr.as_mut() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("rig-upload exited ({status}) before the stall: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the upload never reached the stall"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Where the upload ends in a connection's upstream stream: the absolute
/// offsets of the `\r\n` before its closing boundary (the file's end) and
/// just past `--BOUNDARY--\r\n`. `tail` ends at byte `total`.
fn upload_end(tail: &[u8], total: u64) -> (u64, u64) {
    let start = tail.len() as u64;
    let close = tail
        .windows(b"--\r\n".len())
        .enumerate()
        .filter(|(_, w)| *w == b"--\r\n")
        .map(|(i, _)| i)
        .find(|&i| {
            // "\r\n--rig-upload-<32 hex>--\r\n": the 47 bytes before "--\r\n".
            i >= 47 && tail[i - 47..i].starts_with(b"\r\n--rig-upload-")
        })
        .expect("the upload's closing boundary lies in the stream's tail");
    let file_end = total - start + (close - 47) as u64;
    let end = total - start + (close + 4) as u64;
    (file_end, end)
}

/// Connection cut at 20 offsets through the whole upload connection: 15
/// spread at random over all of it (status request, headers, fields, file,
/// closing boundary, confirm), and 5 placed where the request ends: the last
/// file byte, the file's end, inside the closing boundary, its last byte,
/// and the confirm after it. Every time the client retries and the server
/// ends up with the exact file.
#[test]
fn cuts_at_twenty_random_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let rig = Faulted::start(dir.path());
    let (original, proxy, request_len) = (&rig.original, &rig.proxy, rig.request_len);
    assert!(request_len > original.len() as u64);
    let (file_end, upload_end) = upload_end(&proxy.upstream_tail(0), request_len);
    assert!(file_end > original.len() as u64 && upload_end < request_len);

    // A small deterministic generator: offsets spread over the whole
    // connection, then the ends that random offsets would rarely hit.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut offsets: Vec<u64> = (0..15)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            1 + (seed >> 11) % (request_len - 1)
        })
        .collect();
    offsets.extend([
        file_end - 1,
        file_end,
        file_end + 10,
        upload_end - 1,
        upload_end + 5,
    ]);
    assert!(
        offsets.iter().any(|&o| o > original.len() as u64 + 200),
        "the tail is covered: {offsets:?}"
    );
    for (i, offset) in offsets.into_iter().enumerate() {
        let session = format!("CUT{i}");
        let state = rig.offload_with(Fault::CutAfter(offset), &session, CameraId::Left);
        assert_eq!(
            state["attempts"], 2,
            "cut at {offset}: one failed attempt, one good: {state}"
        );
    }
    rig.server.health();
}

/// One byte flipped in the file part: the server's digest differs (422), the
/// client retries, and the stored file is the right one.
#[test]
fn flipped_byte_is_caught_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let rig = Faulted::start(dir.path());
    // The file is the last part; 4000 bytes before the end of the request is
    // well inside it (the closing boundary and a confirm are far shorter).
    let at = rig.request_len - 4000;
    let state = rig.offload_with(Fault::FlipAt(at), "FLIP", CameraId::Right);
    assert_eq!(state["attempts"], 2, "{state}");
}

/// A Pi uploading through a fault proxy to a real rig-receive, after one
/// clean upload (session `CAL`) that measured the connection's length.
struct Faulted {
    clip: PathBuf,
    original: Vec<u8>,
    server: Server,
    proxy: Proxy,
    node: Node,
    /// The bytes of one whole upload connection (status, upload, confirm).
    request_len: u64,
}

impl Faulted {
    fn start(dir: &Path) -> Faulted {
        let clip = clip(dir);
        let original = fs::read(&clip).unwrap();
        let server = Server::start(dir, "127.0.0.1:0", "");
        let proxy = Proxy::start(server.addr, vec![]);
        let node = Node::new(dir, "pi", &proxy.url(), "");
        // Calibrate: how many bytes does one whole upload request take?
        node.add(&clip, "CAL", CameraId::Center);
        assert_offloaded(
            &node.upload("CAL", CameraId::Center),
            &node,
            "CAL",
            CameraId::Center,
        );
        // One connection carries status, upload and confirm (ureq keeps it).
        assert_eq!(proxy.upstream_bytes().len(), 1, "one connection per run");
        let request_len = proxy.upstream_bytes()[0];
        Faulted {
            clip,
            original,
            server,
            proxy,
            node,
            request_len,
        }
    }

    /// Offloads a new recording with `fault` on its first connection: it
    /// ends offloaded, the Pi's file untouched, the server holding exactly
    /// it and nothing left over. The offload state.
    fn offload_with(&self, fault: Fault, session: &str, camera: CameraId) -> Value {
        let (node, original) = (&self.node, &self.original);
        let video = node.add(&self.clip, session, camera);
        self.proxy.push_faults(&[fault]);
        let o = node.upload(session, camera);
        let state = assert_offloaded(&o, node, session, camera);
        assert_eq!(&fs::read(&video).unwrap(), original, "Pi file untouched");
        let layout = self.server.layout();
        let stored = layout.recording(&SessionId::parse(session).unwrap(), camera);
        assert_eq!(&fs::read(stored).unwrap(), original, "{fault:?}");
        assert_server_clean(&layout, session, camera, original);
        state
    }
}

/// rig-receive SIGKILLed mid-upload and restarted: the restart cleans the
/// temp file, nothing half-written is in sessions/, the client's retry succeeds.
#[test]
fn server_killed_mid_upload_and_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let original = fs::read(&clip).unwrap();
    let mut server = Server::start(dir.path(), "127.0.0.1:0", "");
    let addr = server.addr;
    let proxy = Proxy::start(addr, vec![Fault::StallAfter(original.len() as u64 / 2)]);
    let node = Node::new(dir.path(), "pi", &proxy.url(), "  retry_delay_sec: 1\n");
    let video = node.add(&clip, "KILLSRV", CameraId::Center);
    let mut client = node
        .upload_cmd("KILLSRV", CameraId::Center)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    wait_for_stall(&proxy, &mut client);
    let layout = server.layout();
    let temp_files = || fs::read_dir(&layout.temp).unwrap().count();
    // The proxy has forwarded half the file; the server may still be
    // reading it (slowly under emulation): wait for its temp file.
    let deadline = Instant::now() + Duration::from_secs(60);
    while temp_files() == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(temp_files(), 1, "the upload in flight lives in temp/");
    server.kill9();
    let s = SessionId::parse("KILLSRV").unwrap();
    assert!(
        !layout.recording(&s, CameraId::Center).exists(),
        "no partial under the final name"
    );

    let restarted = Server::start(dir.path(), &addr.to_string(), "");
    assert_eq!(
        temp_files(),
        0,
        "start-up removed the crashed upload's temp file"
    );
    proxy.release();

    let o = client.wait_with_output().unwrap();
    let state = assert_offloaded(&o, &node, "KILLSRV", CameraId::Center);
    assert!(state["attempts"].as_u64().unwrap() >= 2, "{state}");
    assert_eq!(fs::read(&video).unwrap(), original);
    assert_eq!(
        fs::read(layout.recording(&s, CameraId::Center)).unwrap(),
        original
    );
    assert_server_clean(&restarted.layout(), "KILLSRV", CameraId::Center, &original);
    restarted.health();
}

/// rig-upload SIGKILLed mid-upload: the Pi keeps its file, the state file is
/// still valid JSON and not "offloaded", the server stored nothing; a re-run
/// finishes the job.
#[test]
fn client_killed_mid_upload_and_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let original = fs::read(&clip).unwrap();
    let server = Server::start(dir.path(), "127.0.0.1:0", "");
    let proxy = Proxy::start(
        server.addr,
        vec![Fault::StallAfter(original.len() as u64 / 2)],
    );
    let node = Node::new(dir.path(), "pi", &proxy.url(), "");
    let video = node.add(&clip, "KILLCLI", CameraId::Left);
    let mut client = node.upload_cmd("KILLCLI", CameraId::Left).spawn().unwrap();
    wait_for_stall(&proxy, &mut client);
    client.kill().unwrap();
    client.wait().unwrap();
    proxy.cut_stalled();

    assert_eq!(fs::read(&video).unwrap(), original, "Pi file intact");
    let state = node.state("KILLCLI", CameraId::Left);
    assert_ne!(state["status"], "offloaded", "{state}");
    let s = SessionId::parse("KILLCLI").unwrap();
    assert_server_clean(&server.layout(), "KILLCLI", CameraId::Left, &original);
    assert!(!server.layout().recording(&s, CameraId::Left).exists());

    let o = node.upload("KILLCLI", CameraId::Left);
    assert_offloaded(&o, &node, "KILLCLI", CameraId::Left);
    assert_eq!(
        fs::read(server.layout().recording(&s, CameraId::Left)).unwrap(),
        original
    );
    assert_eq!(fs::read(&video).unwrap(), original);
}

/// Free-space floor reached: 507, nothing stored, the Pi keeps its file and
/// its state says failed.
#[test]
fn free_space_floor_refuses_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let original = fs::read(&clip).unwrap();
    // A floor no disk can meet.
    let server = Server::start_with(
        dir.path(),
        "127.0.0.1:0",
        "storage:\n  min_free_space_gb: 1000000000\n",
    );
    assert_eq!(server.health()["status"], "degraded");
    let node = Node::new(dir.path(), "pi", &server.url(), "  retry_count: 2\n");
    let video = node.add(&clip, "FULL", CameraId::Center);
    let o = node.upload("FULL", CameraId::Center);
    assert_eq!(o.status.code(), Some(1));
    let state = node.state("FULL", CameraId::Center);
    assert_eq!(state["status"], "failed", "{state}");
    assert!(
        state.to_string().contains("insufficient_storage") || state.to_string().contains("507"),
        "{state}"
    );
    assert_eq!(fs::read(&video).unwrap(), original, "the Pi keeps its file");
    assert!(
        !server
            .layout()
            .session_dir(&SessionId::parse("FULL").unwrap())
            .exists()
    );
    assert_server_clean(&server.layout(), "FULL", CameraId::Center, &original);
}

/// Three cameras at once while health is polled: all stored, health answers
/// every time, a stitch job is queued.
#[test]
fn three_cameras_at_once_while_health_is_polled() {
    let dir = tempfile::tempdir().unwrap();
    let clip = clip(dir.path());
    let server = Server::start(dir.path(), "127.0.0.1:0", "");
    let stop = Arc::new(AtomicBool::new(false));
    let max_active = Arc::new(AtomicU64::new(0));
    let polls = Arc::new(AtomicU64::new(0));
    let poller = {
        let (stop, max_active, polls, addr) =
            (stop.clone(), max_active.clone(), polls.clone(), server.addr);
        thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let (status, body) = http(
                    addr,
                    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                );
                assert_eq!(status, Some(200), "{body}");
                let v: Value = serde_json::from_str(&body).unwrap();
                max_active.fetch_max(v["active_uploads"].as_u64().unwrap(), Ordering::SeqCst);
                polls.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let nodes: Vec<(Node, CameraId)> = CameraId::ALL
        .iter()
        .map(|&cam| (Node::new(dir.path(), cam.as_str(), &server.url(), ""), cam))
        .collect();
    for (node, cam) in &nodes {
        node.add(&clip, "TRIO", *cam);
    }
    let children: Vec<Child> = nodes
        .iter()
        .map(|(n, c)| {
            n.upload_cmd("TRIO", *c)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ((node, cam), child) in nodes.iter().zip(children) {
        let o = child.wait_with_output().unwrap();
        assert_offloaded(&o, node, "TRIO", *cam);
    }
    stop.store(true, Ordering::SeqCst);
    poller.join().expect("health answered every poll");
    assert!(polls.load(Ordering::SeqCst) > 0);
    let original = fs::read(&clip).unwrap();
    let s = SessionId::parse("TRIO").unwrap();
    for cam in CameraId::ALL {
        assert_eq!(
            fs::read(server.layout().recording(&s, cam)).unwrap(),
            original
        );
    }
    let jobs: Value =
        serde_json::from_str(&fs::read_to_string(server.layout().jobs_file()).unwrap()).unwrap();
    assert_eq!(jobs["jobs"][0]["session_id"], "TRIO");
    assert_eq!(jobs["jobs"][0]["status"], "queued");
    eprintln!(
        "health polls: {}, most uploads seen at once: {}",
        polls.load(Ordering::SeqCst),
        max_active.load(Ordering::SeqCst)
    );
}

/// Builds a multipart body by hand so tests can break it in every way.
fn multipart(boundary: &str, fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        if *name == "file" {
            body.extend_from_slice(b"Content-Disposition: form-data; name=\"file\"; filename=\"x.mp4\"\r\nContent-Type: video/mp4\r\n\r\n");
        } else {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(value);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn post(path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// A request with exactly these parts: `host` None sends no Host header,
/// `pad` adds an `X-Pad` header of that many bytes, `Content-Length` is
/// the body's.
fn raw_request(method: &str, path: &str, host: Option<&str>, pad: usize, body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if let Some(h) = host {
        head.push_str(&format!("Host: {h}\r\n"));
    }
    if pad > 0 {
        head.push_str(&format!("X-Pad: {}\r\n", "p".repeat(pad)));
    }
    head.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    req
}

/// The generated part of the malformed set, each request different from the
/// others: traversal IDs in every route that takes one (plain, percent-,
/// double- and overlong-encoded), multipart boundaries and framings,
/// header sizes and counts, truncated and mistyped JSON, wrong methods, and
/// Host headers. Each is refused whatever the server makes of it: bad IDs,
/// a checksum of zeros no file has, or a method a route does not take.
fn more_malformed(requests: &mut Vec<(String, Vec<u8>)>, mp4: &[u8], zeros: &str) {
    let upload_ct = "multipart/form-data; boundary=B";
    let form = |session: &[u8], camera: &[u8]| {
        multipart(
            "B",
            &[
                ("session_id", session),
                ("camera_id", camera),
                ("checksum", zeros.as_bytes()),
                ("file", mp4),
            ],
        )
    };
    let get = |path: &str| raw_request("GET", path, Some("x"), 0, b"");

    // Traversal IDs, encoded forms, in the query and path routes.
    let encoded = [
        "..",
        "..%2f..%2fetc",
        "%2e%2e",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "%252e%252e%252f",
        "..%5c..%5cwindows",
        "%c0%ae%c0%ae%c0%af",
        "%ef%bc%8e%ef%bc%8e",
        "..%00",
        "GAME%00.mp4",
        "....%2f%2f",
        "..;",
        "%2F",
        "%2fetc%2fpasswd",
        "~%2f.ssh",
        "a%20b",
        "%3Cscript%3E",
        "x%0d%0aSet-Cookie:%20a",
    ];
    for e in encoded {
        let status =
            format!("/api/v1/upload/status?session_id={e}&camera_id=CAM_C&checksum={zeros}");
        requests.push((format!("status session {e}"), get(&status)));
        for route in [
            format!("/api/v1/sessions/{e}"),
            format!("/api/v1/sessions/{e}/CAM_C/recording.mp4"),
            format!("/api/v1/sessions/S/{e}/recording.mp4"),
            format!("/api/v1/sessions/{e}/stitched/panorama.mp4"),
        ] {
            requests.push((format!("GET {route}"), get(&route)));
        }
        let stitch = format!("/api/v1/sessions/{e}/stitch");
        requests.push((
            format!("POST {stitch}"),
            raw_request("POST", &stitch, Some("x"), 0, b""),
        ));
    }
    for c in ["..%2fCAM_C", "CAM_C%00", "%43AM_C", "CAM_C/../x", "CAM_Q"] {
        let status = format!("/api/v1/upload/status?session_id=S&camera_id={c}&checksum={zeros}");
        requests.push((format!("status camera {c}"), get(&status)));
    }
    for q in [
        "",
        "?",
        "?session_id=S",
        "?session_id=S&camera_id=CAM_C",
        "?session_id=S&camera_id=CAM_C&checksum=xyz",
        "?session_id=S&camera_id=CAM_C&checksum=%zz",
        "?session_id=S&session_id=..&camera_id=CAM_C",
    ] {
        requests.push((
            format!("status {q:?}"),
            get(&format!("/api/v1/upload/status{q}")),
        ));
    }
    // Traversal file names: the server ignores them, and the checksum of
    // zeros fails the upload anyway.
    for name in [
        "../../evil.mp4",
        "/etc/passwd",
        "..\\..\\x.mp4",
        "%2e%2e/x.mp4",
    ] {
        let mut body = Vec::new();
        for (n, v) in [
            ("session_id", "S"),
            ("camera_id", "CAM_C"),
            ("checksum", zeros),
        ] {
            body.extend_from_slice(
                format!("--B\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(mp4);
        body.extend_from_slice(b"\r\n--B--\r\n");
        requests.push((
            format!("file name {name:?}"),
            post("/api/v1/upload", upload_ct, &body),
        ));
    }

    // Boundaries: the Content-Type's against the body's.
    let long70 = "b".repeat(70);
    let long71 = "b".repeat(71);
    let long500 = "b".repeat(500);
    for (param, body_boundary) in [
        ("\"B\"", "B"),
        ("B; charset=utf-8", "B"),
        ("b", "B"),
        ("B ", "B"),
        (" B", "B"),
        ("\"\"", "B"),
        ("--", "--"),
        ("B,C", "B,C"),
        ("a=b", "a=b"),
        ("ü", "ü"),
        ("B\tC", "B\tC"),
        (long70.as_str(), long70.as_str()),
        (long71.as_str(), long71.as_str()),
        (long500.as_str(), long500.as_str()),
        ("B", "BB"),
        ("BB", "B"),
    ] {
        let body = multipart(
            body_boundary,
            &[
                ("session_id", b"S"),
                ("camera_id", b"CAM_C"),
                ("checksum", zeros.as_bytes()),
                ("file", mp4),
            ],
        );
        requests.push((
            format!("boundary {param:.20?} vs body {body_boundary:.20?}"),
            post(
                "/api/v1/upload",
                &format!("multipart/form-data; boundary={param}"),
                &body,
            ),
        ));
    }
    // Framings of an otherwise plausible form.
    let good = form(b"S", b"CAM_C");
    let lf_only: Vec<u8> = String::from_utf8_lossy(&good[..200])
        .replace("\r\n", "\n")
        .into_bytes();
    let no_close = good[..good.len() - b"--B--\r\n".len()].to_vec();
    let no_final_crlf = good[..good.len() - 2].to_vec();
    let mut preamble = b"preamble text\r\n".to_vec();
    preamble.extend_from_slice(&good);
    let mut epilogue = good.clone();
    epilogue.extend_from_slice(b"epilogue after the end");
    let fields = |extra: &[(&str, &[u8])], file_first: bool| {
        let mut f: Vec<(&str, &[u8])> = vec![
            ("session_id", b"S"),
            ("camera_id", b"CAM_C"),
            ("checksum", zeros.as_bytes()),
        ];
        f.extend_from_slice(extra);
        if file_first {
            f.insert(0, ("file", mp4));
        } else {
            f.push(("file", mp4));
        }
        multipart("B", &f)
    };
    let no_disposition = b"--B\r\nContent-Type: text/plain\r\n\r\nS\r\n--B--\r\n".to_vec();
    let unquoted =
        b"--B\r\nContent-Disposition: form-data; name=session_id\r\n\r\nS\r\n--B--\r\n".to_vec();
    let header_only = b"--B\r\nContent-Disposition: form-data; name=\"file\"".to_vec();
    let huge_part_header = format!(
        "--B\r\nContent-Disposition: form-data; name=\"session_id\"\r\nX-Part: {}\r\n\r\nS\r\n--B--\r\n",
        "h".repeat(100_000)
    )
    .into_bytes();
    for (what, body) in [
        ("LF-only line ends", lf_only),
        ("no closing boundary", no_close),
        ("closing boundary without CRLF", no_final_crlf),
        ("preamble", preamble),
        ("epilogue", epilogue),
        (
            "duplicate session_id",
            fields(&[("session_id", b"..")], false),
        ),
        ("file before the IDs", fields(&[], true)),
        ("two file parts", fields(&[("file", mp4)], false)),
        ("offset -1", fields(&[("offset", b"-1")], false)),
        (
            "offset beyond u64",
            fields(&[("offset", b"99999999999999999999999")], false),
        ),
        (
            "offset past the file",
            fields(&[("offset", b"5000")], false),
        ),
        ("part without Content-Disposition", no_disposition),
        ("unquoted name", unquoted),
        ("part header only", header_only),
        ("100 kB part header", huge_part_header),
    ] {
        requests.push((what.into(), post("/api/v1/upload", upload_ct, &body)));
    }

    // Header sizes and counts, on requests refused for their body.
    for pad in [
        64, 512, 1024, 2048, 4095, 4096, 8000, 8192, 16_384, 32_768, 65_536,
    ] {
        requests.push((
            format!("{pad}-byte header, bad JSON"),
            raw_request("POST", "/api/v1/upload/confirm", Some("x"), pad, b"{"),
        ));
    }
    for count in [50, 100, 200, 1000] {
        let many: String = (0..count).map(|i| format!("X-N{i}: v\r\n")).collect();
        requests.push((
            format!("{count} headers, bad JSON"),
            format!(
                "POST /api/v1/upload/confirm HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\
                 Content-Length: 1\r\n\r\n{{"
            )
            .into_bytes(),
        ));
    }

    // JSON: every truncation of a confirm body, then wrong types and shapes.
    let whole = r#"{"session_id": "S", "camera_id": "CAM_C"}"#;
    for cut in 0..whole.len() {
        requests.push((
            format!("confirm cut at {cut}"),
            post(
                "/api/v1/upload/confirm",
                "application/json",
                &whole.as_bytes()[..cut],
            ),
        ));
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    for j in [
        r#"{"session_id": "S", "camera_id": "CAM_C"} trailing"#,
        r#"{"session_id": null, "camera_id": "CAM_C"}"#,
        r#"{"session_id": "S", "camera_id": null}"#,
        r#"{"session_id": {"a": 1}, "camera_id": "CAM_C"}"#,
        r#"{"session_id": "S", "camera_id": 3}"#,
        r#"{"session_id": true, "camera_id": false}"#,
        r#"{"session_id": "S\u0000", "camera_id": "CAM_C"}"#,
        r#"{"session_id": "\ud800", "camera_id": "CAM_C"}"#,
        r#"{"session_id": "../S", "camera_id": "CAM_C", "extra": 1}"#,
        r#"{'session_id': 'S'}"#,
        r#"{"session_id": "S", "camera_id": "CAM_C",}"#,
        r#""just a string""#,
        "1e999",
        deep.as_str(),
    ] {
        requests.push((
            format!("confirm json {j:.40?}"),
            post("/api/v1/upload/confirm", "application/json", j.as_bytes()),
        ));
    }
    requests.push((
        "confirm with a form body".into(),
        post("/api/v1/upload/confirm", upload_ct, &good),
    ));

    // Wrong methods on every API route (the right one would be answered 2xx).
    let status_path =
        format!("/api/v1/upload/status?session_id=S&camera_id=CAM_C&checksum={zeros}");
    for m in [
        "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO", "get", "post",
    ] {
        for (path, allowed) in [
            ("/api/v1/upload", "POST"),
            ("/api/v1/upload/confirm", "POST"),
            (status_path.as_str(), "GET"),
            ("/api/v1/health", "GET"),
            ("/api/v1/sessions", "GET"),
            ("/api/v1/jobs", "GET"),
            ("/api/v1/stats", "GET"),
        ] {
            if m == allowed {
                continue;
            }
            requests.push((
                format!("{m} {path}"),
                raw_request(m, path, Some("x"), 0, b""),
            ));
        }
    }

    // Host headers, on a traversal upload, bad JSON and a wrong method.
    let long_host = "h".repeat(5000);
    let traversal = form(b"../x", b"CAM_C");
    for host in [
        None,
        Some(""),
        Some("evil.example.com"),
        Some("127.0.0.1:1"),
        Some("[::1]:8081"),
        Some("host with spaces"),
        Some("xn--n3h.example"),
        Some("x\r\nX-Injected: 1"),
        Some("x\r\nHost: y"),
        Some(long_host.as_str()),
    ] {
        let label = format!("{host:.20?}");
        requests.push((
            format!("host {label}: traversal upload"),
            raw_request("POST", "/api/v1/upload", host, 0, &traversal),
        ));
        requests.push((
            format!("host {label}: bad JSON"),
            raw_request("POST", "/api/v1/upload/confirm", host, 0, b"{\"a\":"),
        ));
        requests.push((
            format!("host {label}: PUT"),
            raw_request("PUT", "/api/v1/upload", host, 0, b""),
        ));
    }
}

/// A slow body's next bytes: sent after a pause of this many milliseconds.
type Piece = (u64, Vec<u8>);

/// 200+ malformed requests: every reply is a 4xx JSON error or a clean close,
/// the server keeps serving, and nothing appears outside the storage root.
#[test]
fn two_hundred_malformed_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        "127.0.0.1:0",
        "server:\n  stall_timeout_sec: 1\n",
    );
    let mp4 = {
        let mut v = vec![0, 0, 0, 24];
        v.extend_from_slice(b"ftypisom");
        v.resize(4096, 7);
        v
    };
    let good_sum = "0".repeat(64);
    let mut requests: Vec<(String, Vec<u8>)> = Vec::new();

    let bad_sessions = [
        "../x",
        "..",
        ".",
        "a/b",
        "/abs",
        "%2e%2e",
        "..%2f..%2fetc",
        "a\\b",
        "",
        " ",
        "a b",
        "a\0b",
        "é",
        "<script>",
        "x".repeat(65).leak(),
        "../../../../tmp/evil",
        "GAME/../..",
        "~root",
        "*",
        "a:b",
    ];
    for s in bad_sessions {
        let body = multipart(
            "B",
            &[
                ("session_id", s.as_bytes()),
                ("camera_id", b"CAM_C"),
                ("checksum", good_sum.as_bytes()),
                ("file", &mp4),
            ],
        );
        requests.push((
            format!("traversal session {s:?}"),
            post("/api/v1/upload", "multipart/form-data; boundary=B", &body),
        ));
        let confirm = format!(
            "{{\"session_id\": {}, \"camera_id\": \"CAM_C\"}}",
            serde_json::to_string(s).unwrap()
        );
        requests.push((
            format!("confirm session {s:?}"),
            post(
                "/api/v1/upload/confirm",
                "application/json",
                confirm.as_bytes(),
            ),
        ));
    }
    for c in [
        "../CAM_C", "CAM_X", "cam_c", "", "CAM_C/..", "CAM_C\0", "/etc", "CAM_CC", "%43AM_C",
        "CAM C",
    ] {
        let body = multipart(
            "B",
            &[
                ("session_id", b"S"),
                ("camera_id", c.as_bytes()),
                ("checksum", good_sum.as_bytes()),
                ("file", &mp4),
            ],
        );
        requests.push((
            format!("bad camera {c:?}"),
            post("/api/v1/upload", "multipart/form-data; boundary=B", &body),
        ));
    }
    // Broken multipart bodies.
    let good = multipart(
        "B",
        &[
            ("session_id", b"S"),
            ("camera_id", b"CAM_C"),
            ("checksum", good_sum.as_bytes()),
            ("file", &mp4),
        ],
    );
    for cut in [
        0,
        1,
        5,
        40,
        100,
        200,
        500,
        1000,
        3000,
        good.len() - 20,
        good.len() - 3,
        good.len() - 1,
    ] {
        requests.push((
            format!("truncated at {cut}"),
            post(
                "/api/v1/upload",
                "multipart/form-data; boundary=B",
                &good[..cut],
            ),
        ));
    }
    for (what, ct) in [
        ("wrong boundary", "multipart/form-data; boundary=C"),
        ("no boundary", "multipart/form-data"),
        ("empty boundary", "multipart/form-data; boundary="),
        ("not multipart", "application/octet-stream"),
        ("json", "application/json"),
        ("text", "text/plain"),
        ("no type", ""),
        (
            "huge boundary",
            "multipart/form-data; boundary=XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
        ),
    ] {
        requests.push((what.into(), post("/api/v1/upload", ct, &good)));
    }
    for garbage in [
        &b"garbage"[..],
        b"--B\r\n\r\n--B--",
        b"--B\r\nContent-Disposition: nonsense\r\n\r\nx\r\n--B--\r\n",
        b"--Bxx\r\n",
        &[0xff; 300][..],
        b"--B\r\n",
    ] {
        requests.push((
            "garbage body".into(),
            post("/api/v1/upload", "multipart/form-data; boundary=B", garbage),
        ));
    }
    // Bad JSON to confirm.
    for j in [
        "",
        "{",
        "[]",
        "null",
        "42",
        "{\"session_id\": 1}",
        "{\"camera_id\": \"CAM_C\"}",
        "{\"session_id\": \"S\", \"camera_id\": [1]}",
        "\u{feff}{}",
        "{\"a\":",
        "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
    ] {
        requests.push((
            format!("confirm json {j:?}"),
            post("/api/v1/upload/confirm", "application/json", j.as_bytes()),
        ));
    }
    // Wrong methods and unknown routes.
    for m in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        for p in ["/api/v1/upload", "/api/v1/upload/confirm"] {
            requests.push((
                format!("{m} {p}"),
                format!("{m} {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes(),
            ));
        }
    }
    for m in ["POST", "PUT", "DELETE"] {
        requests.push((format!("{m} health"), format!("{m} /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").into_bytes()));
    }
    for p in [
        "/../../etc/passwd",
        "/api/v1/../../x",
        "/api/v2/upload",
        "/%2e%2e/%2e%2e",
        "/api/v1/upload/../../x",
        "/\0",
        "//",
        "/api/v1/sessions/../../../etc",
    ] {
        requests.push((
            format!("GET {p}"),
            format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into_bytes(),
        ));
    }
    // Huge headers and broken request lines.
    for n in [20_000, 100_000] {
        requests.push((
            format!("header line of {n}"),
            format!(
                "GET /api/v1/health HTTP/1.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                "a".repeat(n)
            )
            .into_bytes(),
        ));
        requests.push((
            format!("url of {n}"),
            format!(
                "GET /{} HTTP/1.1\r\nConnection: close\r\n\r\n",
                "a".repeat(n)
            )
            .into_bytes(),
        ));
    }
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    requests.push((
        "500 headers".into(),
        format!("GET /api/v1/health HTTP/1.1\r\n{many}Connection: close\r\n\r\n").into_bytes(),
    ));
    for line in [
        "GARBAGE\r\n\r\n",
        "\r\n\r\n",
        "GET\r\n\r\n",
        "POST /api/v1/upload HTTP/9.9\r\n\r\n",
        "POST /api/v1/upload HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST /api/v1/upload HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "POST /api/v1/upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Type: multipart/form-data; boundary=B\r\n\r\nzz\r\n",
    ] {
        requests.push((format!("raw {line:?}"), line.as_bytes().to_vec()));
    }
    // Oversized text fields.
    let big = vec![b'a'; 2 << 20];
    requests.push((
        "2 MiB session_id".into(),
        post(
            "/api/v1/upload",
            "multipart/form-data; boundary=B",
            &multipart("B", &[("session_id", &big)]),
        ),
    ));
    requests.push((
        "2 MiB manifest".into(),
        post(
            "/api/v1/upload",
            "multipart/form-data; boundary=B",
            &multipart("B", &[("session_id", b"S"), ("manifest", &big)]),
        ),
    ));
    requests.push((
        "bad manifest".into(),
        post(
            "/api/v1/upload",
            "multipart/form-data; boundary=B",
            &multipart(
                "B",
                &[
                    ("session_id", b"S"),
                    ("camera_id", b"CAM_C"),
                    ("checksum", good_sum.as_bytes()),
                    ("manifest", b"{nope"),
                    ("file", &mp4),
                ],
            ),
        ),
    ));
    requests.push((
        "not mp4".into(),
        post(
            "/api/v1/upload",
            "multipart/form-data; boundary=B",
            &multipart(
                "B",
                &[
                    ("session_id", b"S"),
                    ("camera_id", b"CAM_C"),
                    ("checksum", good_sum.as_bytes()),
                    ("file", &[1u8; 5000]),
                ],
            ),
        ),
    ));
    requests.push((
        "bad checksum syntax".into(),
        post(
            "/api/v1/upload",
            "multipart/form-data; boundary=B",
            &multipart(
                "B",
                &[
                    ("session_id", b"S"),
                    ("camera_id", b"CAM_C"),
                    ("checksum", b"xyz"),
                    ("file", &mp4),
                ],
            ),
        ),
    ));
    more_malformed(&mut requests, &mp4, &good_sum);
    // Every request is a different one: a repeat tests nothing new.
    let mut seen = std::collections::HashSet::new();
    requests.retain(|(_, r)| seen.insert(r.clone()));
    assert!(
        requests.len() >= 200,
        "{} distinct malformed requests",
        requests.len()
    );

    // Send them 8 at a time; slow bodies run alongside, each stalling in a
    // different place: a part header, the file data, a trickle that stops,
    // a confirm body, no body at all. The server's 1 s stall timeout ends
    // each (a 4xx JSON or a close).
    let addr = server.addr;
    let upload_head = |len: usize| {
        format!(
            "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; \
             boundary=B\r\nContent-Length: {len}\r\n\r\n"
        )
        .into_bytes()
    };
    let mut file_head = multipart(
        "B",
        &[
            ("session_id", b"SLOW"),
            ("camera_id", b"CAM_C"),
            ("checksum", good_sum.as_bytes()),
            ("file", &mp4),
        ],
    );
    file_head.truncate(file_head.len() - 2000);
    let slow: Vec<(String, Vec<u8>, Vec<Piece>)> = vec![
        (
            "stops in a part header".into(),
            [upload_head(100_000), b"--B\r\n".to_vec()].concat(),
            vec![(300, b"Content-Disp".to_vec())],
        ),
        (
            "stops in a part header later".into(),
            [upload_head(100_000), b"--B\r\n".to_vec()].concat(),
            vec![(900, b"Content-Disposition: form-da".to_vec())],
        ),
        (
            "stops in the file data".into(),
            [upload_head(file_head.len() + 50_000), file_head.clone()].concat(),
            vec![(200, mp4[..100].to_vec())],
        ),
        (
            "trickles a byte per 150 ms, then stops".into(),
            upload_head(100_000),
            b"--B\r\nContent-Disposition"
                .iter()
                .map(|&b| (150, vec![b]))
                .collect(),
        ),
        (
            "confirm body stops".into(),
            b"POST /api/v1/upload/confirm HTTP/1.1\r\nHost: x\r\nContent-Type: \
              application/json\r\nContent-Length: 100\r\n\r\n{\"session"
                .to_vec(),
            vec![(400, b"_id\": \"S".to_vec())],
        ),
        ("headers only, no body".into(), upload_head(100_000), vec![]),
    ];
    let lorises: Vec<_> = slow
        .into_iter()
        .map(|(what, head, pieces)| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
                let _ = s.write_all(&head);
                for (ms, bytes) in pieces {
                    thread::sleep(Duration::from_millis(ms));
                    let _ = s.write_all(&bytes);
                }
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf);
                (what, parse_reply(&buf))
            })
        })
        .collect();
    let total = requests.len();
    eprintln!("malformed: {total} distinct requests, 8 at a time, 6 slow bodies alongside");
    let chunks: Vec<Vec<(String, Vec<u8>)>> = requests
        .chunks(total.div_ceil(8))
        .map(|c| c.to_vec())
        .collect();
    let workers: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            thread::spawn(move || {
                chunk
                    .into_iter()
                    .map(|(what, r)| (what, http(addr, &r)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut replies = 0;
    for w in workers {
        for (what, (status, body)) in w.join().unwrap() {
            let Some(status) = status else { continue };
            replies += 1;
            assert!(
                (400..500).contains(&status),
                "{what}: status {status} {body}"
            );
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("{what}: {status} not JSON: {body:?}"));
            assert_eq!(v["success"], false, "{what}");
            assert!(
                v["error"].as_str().is_some_and(|c| !c.is_empty()),
                "{what}: {body}"
            );
        }
    }
    for l in lorises {
        let (what, (status, body)) = l.join().unwrap();
        if let Some(status) = status {
            assert!(
                (400..500).contains(&status),
                "slow body {what}: {status} {body}"
            );
            let v: Value = serde_json::from_str(&body)
                .unwrap_or_else(|_| panic!("slow body {what}: {status} not JSON: {body:?}"));
            assert_eq!(v["success"], false, "slow body {what}");
        }
    }
    eprintln!(
        "malformed: {replies} answered 4xx JSON, {} closed",
        total - replies
    );
    assert!(
        total >= 200 && replies > 150,
        "{total} sent, {replies} answered"
    );

    // Still serving, still healthy, and nothing written anywhere but the root.
    assert_eq!(server.health()["active_uploads"], 0);
    let sessions: Vec<_> = fs::read_dir(server.layout().sessions)
        .unwrap()
        .flatten()
        .collect();
    assert!(sessions.is_empty(), "nothing stored: {sessions:?}");
    let mut outside: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    outside.sort();
    assert_eq!(outside, ["server", "server.yaml"]);
    assert!(!Path::new("/tmp/evil").exists());
    assert_server_clean(&server.layout(), "S", CameraId::Center, &[]);
}
