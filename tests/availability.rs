//! rig-receive keeps serving under slow, idle, hostile and bursty clients,
//! and a full disk says 507 (issue 17).
//!
//! Every case runs the real daemon on loopback with short deadlines (a
//! few seconds) so the file stays quick. The only time bounds asserted are
//! the functional ones, generously: health answers while the slow
//! clients are held, a keep-alive burst is served without waiting for an
//! idle timeout.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::receiver::{Log, Receiver};
use soccer_rig::base::layout::ServerLayout;

const SESSION: &str = "GAME_20240315_140000";

/// Deadlines short enough for a test, with the idle time long, so that a
/// connection held until it is idle would show.
const SHORT: &str = "  stall_timeout_sec: 2\n  header_timeout_sec: 2\n  send_timeout_sec: 2\n  \
                     small_body_timeout_sec: 2\n  upload_min_kib_per_sec: 4\n  idle_timeout_sec: 30\n";

/// A running rig-receive (`common::receiver`).
struct Daemon {
    server: Receiver,
    port: u16,
    _dir: Option<tempfile::TempDir>,
}

impl Daemon {
    fn start(server_yaml: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mut d = Daemon::start_at(&root, server_yaml);
        d._dir = Some(dir);
        d
    }

    fn start_at(root: &Path, server_yaml: &str) -> Daemon {
        fs::create_dir_all(root).unwrap();
        let config = root.join("config.yaml");
        fs::write(
            &config,
            format!("storage:\n  min_free_space_gb: 0.0\nserver:\n{server_yaml}"),
        )
        .unwrap();
        let server = Receiver::spawn(&config, root, "127.0.0.1:0", Log::Warn);
        Daemon {
            port: server.port(),
            server,
            _dir: None,
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    }

    /// One `GET /api/v1/health` on a new connection: status and time taken.
    fn health(&self) -> (u16, Duration) {
        let started = Instant::now();
        let mut s = self.connect();
        send_get(&mut s, "/api/v1/health", false);
        let (status, body) = read_response(&mut s).expect("a health reply");
        assert!(body.contains("storage_free_gb"), "{body}");
        (status, started.elapsed())
    }

    /// Open file descriptors of the daemon.
    fn fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.server.pid()))
            .unwrap()
            .count()
    }

    /// Files under temp/ and sessions/ (nothing stored, nothing left = empty).
    fn stored_and_left(&self) -> Vec<PathBuf> {
        self.server.stored_and_left()
    }
}

fn send_get(s: &mut TcpStream, path: &str, keep_alive: bool) {
    let conn = if keep_alive { "keep-alive" } else { "close" };
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: rig\r\nConnection: {conn}\r\n\r\n"
    )
    .unwrap();
}

/// Reads one reply with a `Content-Length` body: status and body text.
/// `None` when the connection ends before a status line.
fn read_response(s: &mut TcpStream) -> Option<(u16, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).to_string()))
}

/// Everything the peer sends until it closes (or resets); byte count.
fn drain(s: &mut TcpStream) -> usize {
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return total,
            Ok(n) => total += n,
        }
    }
}

/// A multipart upload body around a file part of `file_len` bytes that
/// starts like an MP4; returns (text before the file bytes, text after).
fn form(file_len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::new();
    for (name, value) in [
        ("session_id", SESSION),
        ("camera_id", "CAM_C"),
        ("checksum", &"0".repeat(64)),
    ] {
        write!(
            head,
            "--BOUND\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
        .unwrap();
    }
    head.extend_from_slice(
        b"--BOUND\r\nContent-Disposition: form-data; name=\"file\"; filename=\"recording.mp4\"\r\n\
          Content-Type: video/mp4\r\n\r\n\0\0\0\x18ftypisom",
    );
    assert!(
        file_len >= 12,
        "the file part starts with 12 bytes of MP4 header"
    );
    (head, b"\r\n--BOUND--\r\n".to_vec())
}

const FORM_TYPE: &str = "multipart/form-data; boundary=BOUND";

#[test]
fn a_keep_alive_burst_of_12_is_served_without_waiting_for_idle_connections() {
    let d = Daemon::start(SHORT);
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = (0..12).map(|_| d.connect()).collect();
    for s in &mut conns {
        send_get(s, "/api/v1/health", true);
    }
    for s in &mut conns {
        let (status, _) = read_response(s).expect("each connection answered");
        assert_eq!(status, 200);
    }
    // Generous against the 30 s idle time a held connection would cost.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "burst took {took:?}");
    // And keep-alive really kept them: a second request on each.
    for s in &mut conns {
        send_get(s, "/api/v1/stats", true);
        assert_eq!(read_response(s).map(|r| r.0), Some(200));
    }
}

/// A stored recording of `len` zero bytes (sparse), for slow readers.
fn store_big_recording(root: &Path, len: u64) {
    let layout = ServerLayout::under(root);
    let session = soccer_rig::base::ids::SessionId::parse(SESSION).unwrap();
    let cam = soccer_rig::base::ids::CameraId::parse("CAM_L").unwrap();
    let video = layout.recording(&session, cam);
    fs::create_dir_all(video.parent().unwrap()).unwrap();
    fs::File::create(&video).unwrap().set_len(len).unwrap();
    fs::write(
        layout.digest(&session, cam),
        soccer_rig::base::layout::digest_line(&"0".repeat(64).parse().unwrap()),
    )
    .unwrap();
}

/// Writes one byte to every socket every `gap` until `until`, stopping
/// on a socket once the server has answered or closed it (writing on would
/// make the kernel reset it and lose that answer).
fn trickle(mut socks: Vec<TcpStream>, gap: Duration, until: Instant) -> Vec<TcpStream> {
    let mut done = vec![false; socks.len()];
    while Instant::now() < until {
        for (s, done) in socks.iter_mut().zip(&mut done) {
            s.set_nonblocking(true).unwrap();
            *done = *done
                || !matches!(s.peek(&mut [0u8; 1]), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock);
            s.set_nonblocking(false).unwrap();
            if !*done {
                let _ = s.write(b"x");
            }
        }
        thread::sleep(gap);
    }
    socks
}

#[test]
fn slow_bodies_confirms_readers_and_header_tricklers_do_not_starve_others() {
    const N: usize = 12; // more than the 8 workers the old server had
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    const BIG: u64 = 256 << 20;
    store_big_recording(&root, BIG);
    let d = Daemon::start_at(&root, SHORT);

    let open = |first: String| {
        (0..N)
            .map(|_| {
                let mut s = d.connect();
                s.write_all(first.as_bytes()).unwrap();
                s
            })
            .collect::<Vec<_>>()
    };
    let uploads = open(format!(
        "POST /api/v1/upload HTTP/1.1\r\nHost: rig\r\nContent-Type: {FORM_TYPE}\r\n\
         Content-Length: 1000000\r\n\r\n--BOUND\r\n"
    ));
    let confirms = open(
        "POST /api/v1/upload/confirm HTTP/1.1\r\nHost: rig\r\nContent-Length: 60\r\n\r\n{".into(),
    );
    let headers = open("G".into());
    let mut readers = open(format!(
        "GET /api/v1/sessions/{SESSION}/CAM_L/recording.mp4 HTTP/1.1\r\nHost: rig\r\n\r\n"
    ));
    let until = Instant::now() + Duration::from_secs(8);
    let mut slow: Vec<TcpStream> = uploads.into_iter().chain(confirms).chain(headers).collect();
    let trickler = thread::spawn(move || {
        slow = trickle(slow, Duration::from_millis(400), until);
        slow
    });

    thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        let (status, took) = d.health();
        assert_eq!(status, 200);
        assert!(took < Duration::from_secs(3), "health took {took:?}");
    }
    let clip = common::small_clip(dir.path(), "clip.mp4");
    let (status, body) = curl_upload(d.port, &clip);
    assert_eq!(
        status, 200,
        "a small upload while slow clients are held: {body}"
    );

    // Each kind of slow client was answered or dropped by its deadline.
    let mut slow = trickler.join().unwrap();
    for (i, s) in slow.iter_mut().enumerate() {
        let kind = ["upload", "confirm", "headers"][i / N];
        match read_response(s) {
            Some((status, _)) => assert_eq!(status, 408, "slow {kind}"),
            None => assert!(kind != "headers", "slow headers got no 408"),
        }
    }
    for s in &mut readers {
        let got = drain(s);
        assert!(
            (got as u64) < BIG,
            "a reader that never reads was dropped ({got} bytes)"
        );
    }
}

/// curl's multipart upload of `clip` as CAM_C; (status, body).
fn curl_upload(port: u16, clip: &Path) -> (u16, String) {
    let fields = [
        ("file", common::curl::mp4(clip)),
        ("session_id", SESSION.to_string()),
        ("camera_id", "CAM_C".to_string()),
        ("checksum", common::sha256sum(clip)),
    ];
    common::curl::upload(
        &format!("http://127.0.0.1:{port}"),
        &fields,
        &["--max-time", "30"],
    )
}

#[test]
fn http2_request_lines_get_505_and_leave_no_descriptor_behind() {
    let d = Daemon::start(SHORT);
    assert_eq!(d.health().0, 200);
    thread::sleep(Duration::from_millis(300)); // the health connection's thread ends
    let before = d.fds();
    for version in ["HTTP/2.0", "HTTP/3.0"].iter().cycle().take(40) {
        let mut s = d.connect();
        write!(s, "GET / {version}\r\nHost: rig\r\n\r\n").unwrap();
        let (status, body) = read_response(&mut s).expect("a 505 reply");
        assert_eq!(status, 505);
        assert!(body.contains("http_version_not_supported"), "{body}");
        assert_eq!(drain(&mut s), 0, "the connection is closed after the 505");
    }
    let after = settled_fds(&d, before);
    assert!(
        after <= before,
        "descriptors leaked: {before} before, {after} after"
    );
    assert_eq!(d.health().0, 200);
}

/// The daemon's fd count once it drops to `target` (or after 5 s).
fn settled_fds(d: &Daemon, target: usize) -> usize {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let n = d.fds();
        if n <= target || Instant::now() > until {
            return n;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_over_the_cap_get_503_at_once_and_idle_ones_are_closed() {
    let d = Daemon::start(&format!("{SHORT}  max_connections: 16\n"));
    let idle: Vec<TcpStream> = (0..16).map(|_| d.connect()).collect();
    thread::sleep(Duration::from_millis(300));
    // Answered without being read: the client sends nothing.
    let mut extra = d.connect();
    let (status, body) = read_response(&mut extra).expect("a 503 reply");
    assert_eq!(status, 503);
    assert!(body.contains("too_many_connections"), "{body}");
    drop(idle);
    wait_for_health(&d, "the cap");

    let quick = Daemon::start(&SHORT.replace("idle_timeout_sec: 30", "idle_timeout_sec: 1"));
    let mut s = quick.connect();
    send_get(&mut s, "/api/v1/health", true);
    assert_eq!(read_response(&mut s).map(|r| r.0), Some(200));
    assert_eq!(
        drain(&mut s),
        0,
        "an idle keep-alive connection is closed, silently"
    );
}

/// Waits up to 10 s for a health request to be answered 200 again.
fn wait_for_health(d: &Daemon, after: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = d.connect();
        send_get(&mut s, "/api/v1/health", false);
        if read_response(&mut s).is_some_and(|r| r.0 == 200) {
            return;
        }
        assert!(
            Instant::now() < until,
            "health never came back after {after}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Mounts a tmpfs of `mib` MiB at `dir`; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, mib: u64) -> Option<Tmpfs> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!("SKIP: cannot mount a tmpfs: {}", common::stderr(&out));
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Sends an upload whose file part is `len` bytes, chunked or with a
/// `Content-Length`; `midway` runs once 2 MiB of the file are sent.
fn upload_into(
    d: &Daemon,
    len: usize,
    chunked: bool,
    midway: impl FnOnce() + Send + 'static,
) -> (u16, String) {
    let (head, tail) = form(len);
    let total = head.len() + len - 12 + tail.len();
    let mut s = d.connect();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {total}")
    };
    write!(
        s,
        "POST /api/v1/upload HTTP/1.1\r\nHost: rig\r\nContent-Type: {FORM_TYPE}\r\n{framing}\r\n\r\n"
    )
    .unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        let mut send = |b: &[u8]| -> std::io::Result<()> {
            if chunked {
                write!(w, "{:x}\r\n", b.len())?;
                w.write_all(b)?;
                w.write_all(b"\r\n")
            } else {
                w.write_all(b)
            }
        };
        let zeros = vec![0u8; 1 << 20];
        let mut left = len - 12;
        let r = send(&head).and_then(|()| {
            let mut sent = 0;
            let mut midway = Some(midway);
            while left > 0 {
                let n = left.min(zeros.len());
                send(&zeros[..n])?;
                left -= n;
                sent += n;
                if sent >= 2 << 20
                    && let Some(f) = midway.take()
                {
                    thread::sleep(Duration::from_millis(300));
                    f();
                }
            }
            send(&tail)?;
            if chunked {
                send(&[])?; // the last chunk
            }
            Ok(())
        });
        drop(r);
    });
    let reply = read_response(&mut s).expect("a reply to the upload");
    drop(s);
    writer.join().unwrap();
    reply
}

#[test]
fn a_full_disk_answers_507_for_both_framings_and_leaves_nothing() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("SKIP: mounting a small tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let Some(mnt) = Tmpfs::mount(&dir.path().join("small"), 64) else {
        return;
    };
    let d = Daemon::start_at(&mnt.0.join("root"), SHORT);
    let check = |what: &str, (status, body): (u16, String)| {
        assert_eq!(status, 507, "{what}: {body}");
        assert!(body.contains("insufficient_storage"), "{what}: {body}");
        assert_eq!(d.stored_and_left(), Vec::<PathBuf>::new(), "{what}");
        assert_eq!(d.health().0, 200, "{what}: still serving");
    };
    // Declared larger than the disk with a floor of 0: refused at the headers.
    check("100 MiB declared", upload_into(&d, 100 << 20, false, || ()));
    // Chunked: written until the disk is full.
    check("100 MiB chunked", upload_into(&d, 100 << 20, true, || ()));
    // Declared to fit, then the disk fills under it: ENOSPC mid-stream.
    let filler = mnt.0.join("filler");
    let fill = move || fs::write(&filler, vec![1u8; 40 << 20]).unwrap();
    check(
        "40 MiB, disk filled midway",
        upload_into(&d, 40 << 20, false, fill),
    );
}

#[test]
fn out_of_file_descriptors_the_server_neither_panics_nor_stops() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(&root).unwrap();
    let config = dir.path().join("config.yaml");
    // A cap above what 64 descriptors allow, so accept() meets EMFILE.
    fs::write(
        &config,
        format!("storage:\n  min_free_space_gb: 0.0\nserver:\n{SHORT}  max_connections: 500\n"),
    )
    .unwrap();
    let log = dir.path().join("log");
    let mut sh = Command::new("sh");
    sh.args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_rig-receive"));
    let server = Receiver::spawn_via(
        sh,
        &config,
        &root,
        "127.0.0.1:0",
        Log::File(log.clone(), "warn"),
    );
    let d = Daemon {
        port: server.port(),
        server,
        _dir: Some(dir),
    };
    let held: Vec<TcpStream> = (0..100).map(|_| d.connect()).collect();
    thread::sleep(Duration::from_millis(500));
    drop(held);
    wait_for_health(&d, "EMFILE");
    let text = fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
    let reports = text.matches("accepting connections failed").count();
    assert!(reports >= 1, "EMFILE was not reported: {text}");
    assert!(
        reports <= 2,
        "EMFILE reported per event, not per interval: {text}"
    );
}
