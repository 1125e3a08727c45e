//! Resumed uploads end to end (issue 11, PROTOCOL-EXTENSIONS.md): the real
//! rig-receive, the real rig-upload and curl, with the fault proxy of
//! tests/common/proxy.rs cutting connections after a chosen byte count and
//! counting what each connection really sent.
//!
//! The 64 MiB recording is a real ffmpeg clip (so the server's ftyp check
//! and ffprobe pass) padded with pseudo-random bytes.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::thread;

use common::curl::json as curl;
use common::proxy::{Fault, Proxy};
use common::receiver::{Log, Receiver};
use serde_json::Value;
use soccer_rig::base::checksum::{FileDigest, hash_file};
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::layout::PiLayout;
use soccer_rig::base::manifest::describe::{self, DescribeOptions};

const UPLOAD: &str = env!("CARGO_BIN_EXE_rig-upload");
const SIZE: u64 = 64 << 20;
/// What a request adds to the file bytes: HTTP head, text fields, the
/// manifest, multipart framing (generous).
const OVERHEAD: u64 = 64 << 10;

/// The 64 MiB recording (and a variant with other bytes), made once.
struct Data {
    _dir: tempfile::TempDir,
    big: PathBuf,
    digest: FileDigest,
    other: PathBuf,
    other_digest: FileDigest,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let clip = common::small_clip(dir.path(), "clip.mp4");
        let mut bytes = fs::read(&clip).unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while (bytes.len() as u64) < SIZE {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        bytes.truncate(SIZE as usize);
        let big = dir.path().join("big.mp4");
        fs::write(&big, &bytes).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        let other = dir.path().join("other.mp4");
        fs::write(&other, &bytes).unwrap();
        let digest = hash_file(&big).unwrap();
        assert_eq!(digest.sha256.to_string(), common::sha256sum(&big));
        let other_digest = hash_file(&other).unwrap();
        Data {
            _dir: dir,
            big,
            digest,
            other,
            other_digest,
        }
    })
}

impl Receiver {
    /// rig-receive (`common::receiver`) on 127.0.0.1:0 with a temp root.
    fn start(extra: &str) -> Receiver {
        Receiver::in_temp(&config(extra), Log::Quiet)
    }

    /// Stops it and starts another on the same root.
    fn restart(self, extra: &str) -> Receiver {
        self.restart_with(&config(extra), Log::Quiet)
    }

    /// `received_bytes` of the status route.
    fn status(&self, rec: &RecordingId, checksum: &str) -> u64 {
        let (code, v) = curl(&[&format!(
            "{}/api/v1/upload/status?session_id={}&camera_id={}&checksum={checksum}",
            self.url,
            rec.session.as_str(),
            rec.camera.as_str()
        )]);
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["checksum"], checksum);
        v["received_bytes"].as_u64().unwrap()
    }

    /// Names of the partial files in temp/.
    fn partials(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.root.join("temp"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".rig-partial-"))
            .collect();
        v.sort();
        v
    }
}

/// rig-receive's config: no free-space floor, and `extra`.
fn config(extra: &str) -> String {
    format!("storage:\n  min_free_space_gb: 0.0\n{extra}")
}

/// A seed-style `curl -F` upload (optionally with `offset`) to `url`.
fn curl_upload(
    url: &str,
    rec: &RecordingId,
    checksum: &str,
    offset: Option<u64>,
    file: &Path,
) -> (u16, Value) {
    let mut fields = vec![
        ("session_id", rec.session.to_string()),
        ("camera_id", rec.camera.to_string()),
        ("checksum", checksum.to_string()),
    ];
    fields.extend(offset.map(|n| ("offset", n.to_string())));
    fields.push(("file", common::curl::mp4(file)));
    common::curl::upload_json(url, &fields, &[])
}

/// Leaves a partial of `file` for `rec` by cutting a curl upload after
/// `cut` bytes; returns the server's `received_bytes`.
fn leave_partial(server: &Receiver, rec: &RecordingId, file: &Path, sum: &str, cut: u64) -> u64 {
    let proxy = Proxy::start(server.addr, vec![Fault::CutAfter(cut)]);
    let (code, _) = curl_upload(&proxy.url(), rec, sum, None, file);
    assert_ne!(code, 200, "the cut upload must fail");
    let n = server.status(rec, sum);
    assert!(
        n <= cut && n + OVERHEAD + (1 << 20) >= cut,
        "kept {n} of {cut}"
    );
    n
}

/// A Pi storage root holding `file` as `rec` with its manifest, and a
/// config pointing at `url`.
struct Pi {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Pi {
    fn new(url: &str) -> Pi {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        fs::write(
            &config,
            // upload_timeout_sec is a backstop only: a 64 MiB upload through
            // an emulated debug build (scripts/test-pi) takes over a minute.
            format!(
                "offload:\n  server_url: \"{url}\"\n  retry_count: 5\n  retry_delay_sec: 0.05\n\
                 \x20 connect_timeout_sec: 5\n  upload_timeout_sec: 600\n\
                 node:\n  storage_root: \"{}\"\n",
                dir.path().join("nvme").display()
            ),
        )
        .unwrap();
        Pi { dir, config }
    }

    fn add(&self, rec: &RecordingId, file: &Path, digest: &FileDigest) {
        let layout = PiLayout::new(self.dir.path().join("nvme"));
        let video = layout.recording(rec);
        fs::create_dir_all(video.parent().unwrap()).unwrap();
        let _ = fs::remove_file(&video);
        fs::hard_link(file, &video)
            .or_else(|_| fs::copy(file, &video).map(|_| ()))
            .unwrap();
        let m = describe::describe(
            &video,
            rec,
            &DescribeOptions {
                ffprobe: "ffprobe".into(),
                start: Some("2024-03-15T14:00:00Z".parse().unwrap()),
                digest: Some(digest.clone()),
                ..DescribeOptions::default()
            },
        )
        .unwrap();
        let _ = fs::remove_file(layout.offload_state(rec));
        m.write_atomic(&layout.manifest(rec)).unwrap();
    }

    /// rig-upload --json for `rec` via `url`; (exit code, JSON, stderr).
    fn upload(&self, rec: &RecordingId, url: &str, extra: &[&str]) -> (i32, Value, String) {
        let mut args = vec![
            "--config",
            self.config.to_str().unwrap(),
            "--server",
            url,
            "--json",
            rec.session.as_str(),
            rec.camera.as_str(),
        ];
        args.extend_from_slice(extra);
        let out: Output = Command::new(UPLOAD)
            .args(&args)
            .env("RUST_LOG", "info")
            .output()
            .unwrap();
        let v = serde_json::from_str(common::stdout(&out).trim()).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), v, common::stderr(&out))
    }
}

fn rec(session: &str) -> RecordingId {
    RecordingId::new(SessionId::parse(session).unwrap(), CameraId::Center)
}

fn assert_stored(server: &Receiver, rec: &RecordingId, file: &Path) {
    let stored = server.stored(rec);
    assert_eq!(
        common::sha256sum(&stored),
        common::sha256sum(file),
        "{rec} stored byte-identical"
    );
    assert_eq!(fs::read(&stored).unwrap(), fs::read(file).unwrap());
    assert!(server.partials().is_empty(), "{:?}", server.partials());
}

#[test]
fn cut_at_10_50_99_percent_then_the_retry_sends_only_the_rest() {
    let d = data();
    let server = Receiver::start("");
    for pct in [10u64, 50, 99] {
        let r = rec(&format!("CUT{pct}"));
        let pi = Pi::new(&server.url);
        pi.add(&r, &d.big, &d.digest);
        let cut = SIZE * pct / 100;
        let proxy = Proxy::start(server.addr, vec![Fault::CutAfter(cut)]);
        let (code, v, log) = pi.upload(&r, &proxy.url(), &[]);
        assert_eq!(code, 0, "{pct}%: {log}");
        assert_eq!(v["status"], "offloaded", "{v}");
        assert_eq!(v["attempts"], 2, "{v}");
        let resumed = v["resumed_from"].as_u64().unwrap();
        assert!(
            resumed <= cut && resumed + OVERHEAD + (1 << 20) >= cut,
            "{pct}%: resumed from {resumed}, cut at {cut}"
        );
        let sent = proxy.upstream_bytes();
        assert_eq!(sent[0], cut, "{pct}%: the first connection was cut");
        let retry: u64 = sent[1..].iter().sum();
        assert!(
            retry >= SIZE - resumed && retry <= SIZE - resumed + OVERHEAD,
            "{pct}%: the retry sent {retry} bytes for the {} missing",
            SIZE - resumed
        );
        assert!(log.contains("sending the rest"), "{log}");
        assert_stored(&server, &r, &d.big);
    }
}

#[test]
fn a_partial_with_another_checksum_is_not_reused() {
    let d = data();
    let server = Receiver::start("");
    let r = rec("OTHERSUM");
    let n = leave_partial(&server, &r, &d.big, &d.digest.sha256.to_string(), SIZE / 2);
    assert!(n > 0);
    assert_eq!(server.status(&r, &d.other_digest.sha256.to_string()), 0);
    // Asking to resume the other file from the first one's length is refused.
    let tail = tempfile::NamedTempFile::new().unwrap();
    fs::write(tail.path(), &fs::read(&d.other).unwrap()[n as usize..]).unwrap();
    let (code, v) = curl_upload(
        &server.url,
        &r,
        &d.other_digest.sha256.to_string(),
        Some(n),
        tail.path(),
    );
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["error"], "offset_mismatch");
    assert_eq!(v["received_bytes"], 0);
    // rig-upload of the other bytes sends the whole file and stores them.
    let pi = Pi::new(&server.url);
    pi.add(&r, &d.other, &d.other_digest);
    let proxy = Proxy::start(server.addr, vec![]);
    let (code, v, log) = pi.upload(&r, &proxy.url(), &[]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(v["resumed_from"], 0, "{v}");
    assert!(proxy.upstream_bytes().iter().sum::<u64>() >= SIZE);
    assert_stored(&server, &r, &d.other);
}

#[test]
fn a_seed_curl_upload_works_while_a_partial_exists() {
    let d = data();
    let server = Receiver::start("");
    let r = rec("SEEDCURL");
    leave_partial(&server, &r, &d.big, &d.digest.sha256.to_string(), SIZE / 3);
    assert_eq!(server.partials().len(), 2, "data and sidecar");
    let (code, v) = curl_upload(&server.url, &r, &d.digest.sha256.to_string(), None, &d.big);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["file_size"], SIZE);
    assert_stored(&server, &r, &d.big);
    assert_eq!(server.status(&r, &d.digest.sha256.to_string()), 0);
}

/// A front for rig-receive that answers every status request with
/// `received_bytes: lie` and forwards everything else.
fn lying_front(upstream: SocketAddr, lie: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                if head.starts_with(b"GET /api/v1/upload/status") {
                    let body = format!(
                        "{{\"received_bytes\": {lie}, \"session_id\": \"x\", \
                         \"camera_id\": \"CAM_C\", \"checksum\": \"x\"}}"
                    );
                    let _ = write!(
                        client,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    return;
                }
                let Ok(mut server) = TcpStream::connect(upstream) else {
                    return;
                };
                let _ = server.write_all(&head);
                let (mut cr, mut sw) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let up = thread::spawn(move || {
                    let _ = std::io::copy(&mut cr, &mut sw);
                });
                let _ = std::io::copy(&mut server, &mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
                let _ = up.join();
            });
        }
    });
    addr
}

#[test]
fn a_wrong_offset_is_409_with_the_servers_length_and_the_client_recovers() {
    let d = data();
    let server = Receiver::start("");
    let r = rec("WRONGOFF");
    let n = leave_partial(&server, &r, &d.big, &d.digest.sha256.to_string(), SIZE / 2);
    // curl with a wrong offset: 409 naming the server's length; nothing changes.
    let tail = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        tail.path(),
        &fs::read(&d.big).unwrap()[(n - 1000) as usize..],
    )
    .unwrap();
    let (code, v) = curl_upload(
        &server.url,
        &r,
        &d.digest.sha256.to_string(),
        Some(n - 1000),
        tail.path(),
    );
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["success"], false);
    assert_eq!(v["error"], "offset_mismatch");
    assert_eq!(v["received_bytes"], n);
    assert_eq!(server.status(&r, &d.digest.sha256.to_string()), n);
    // rig-upload told a wrong length by status gets the 409 and resumes
    // from the length the server named.
    let front = lying_front(server.addr, n / 2);
    let pi = Pi::new(&server.url);
    pi.add(&r, &d.big, &d.digest);
    let (code, v, log) = pi.upload(&r, &format!("http://{front}"), &[]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(v["resumed_from"], n, "{v}");
    assert!(log.contains("offset_mismatch"), "{log}");
    assert_stored(&server, &r, &d.big);
}

#[test]
fn no_resume_sends_everything_and_a_server_without_the_extension_is_fine() {
    let d = data();
    let server = Receiver::start("");
    let r = rec("NORESUME");
    leave_partial(&server, &r, &d.big, &d.digest.sha256.to_string(), SIZE / 2);
    let pi = Pi::new(&server.url);
    pi.add(&r, &d.big, &d.digest);
    let proxy = Proxy::start(server.addr, vec![]);
    let (code, v, log) = pi.upload(&r, &proxy.url(), &["--no-resume"]);
    assert_eq!(code, 0, "{log}");
    assert_eq!(v["resumed_from"], 0);
    assert!(proxy.upstream_bytes().iter().sum::<u64>() >= SIZE);
    assert_stored(&server, &r, &d.big);
}

#[test]
fn status_route_checks_its_parameters() {
    let server = Receiver::start("");
    let base = format!("{}/api/v1/upload/status", server.url);
    let sum = "a".repeat(64);
    let (code, v) = curl(&[&format!(
        "{base}?session_id=../etc&camera_id=CAM_C&checksum={sum}"
    )]);
    assert_eq!((code, v["error"].as_str()), (400, Some("invalid_field")));
    let (code, v) = curl(&[&format!(
        "{base}?session_id=GAME_1&camera_id=CAM_X&checksum={sum}"
    )]);
    assert_eq!((code, v["error"].as_str()), (400, Some("invalid_field")));
    let (code, v) = curl(&[&format!(
        "{base}?session_id=GAME_1&camera_id=CAM_C&checksum=abc"
    )]);
    assert_eq!((code, v["error"].as_str()), (400, Some("invalid_field")));
    let (code, v) = curl(&[&format!("{base}?session_id=GAME_1&camera_id=CAM_C")]);
    assert_eq!((code, v["error"].as_str()), (400, Some("missing_field")));
    let (code, v) = curl(&[&format!(
        "{base}?session_id=GAME_1&camera_id=CAM_C&checksum={sum}"
    )]);
    assert_eq!(code, 200);
    assert_eq!(v["received_bytes"], 0);
    assert_eq!(v["session_id"], "GAME_1");
    let (code, v) = curl(&["-X", "POST", &base]);
    assert_eq!(
        (code, v["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

#[test]
fn partials_survive_a_restart_expire_by_ttl_and_obey_the_cap() {
    let d = data();
    let server = Receiver::start("");
    let r = rec("RESTART");
    let n = leave_partial(&server, &r, &d.big, &d.digest.sha256.to_string(), SIZE / 4);
    // An upload temp file left by a crash goes at start-up; the partial stays.
    fs::write(server.root.join("temp/.rig-tmp-upload-crash"), b"x").unwrap();
    let server = server.restart("");
    assert_eq!(server.status(&r, &d.digest.sha256.to_string()), n);
    assert!(!server.root.join("temp/.rig-tmp-upload-crash").exists());
    // With a TTL of 0 hours it has expired: removed at start-up.
    let server = server.restart("  partial_ttl_hours: 0\n");
    assert_eq!(server.status(&r, &d.digest.sha256.to_string()), 0);
    assert!(server.partials().is_empty(), "{:?}", server.partials());
    // A cap of 10 MB per camera keeps no 16 MiB partial.
    let server = server.restart("  partial_max_gb: 0.01\n");
    let proxy = Proxy::start(server.addr, vec![Fault::CutAfter(SIZE / 4)]);
    let (code, _) = curl_upload(&proxy.url(), &r, &d.digest.sha256.to_string(), None, &d.big);
    assert_ne!(code, 200);
    assert_eq!(server.status(&r, &d.digest.sha256.to_string()), 0);
    assert!(server.partials().is_empty(), "{:?}", server.partials());
}

#[test]
fn rig_check_reports_partials_as_expected_not_as_leftovers() {
    const CHECK: &str = env!("CARGO_BIN_EXE_rig-check");
    let d = data();
    let server = Receiver::start("");
    let r = rec("CHECKED");
    let n = leave_partial(&server, &r, &d.big, &d.digest.sha256.to_string(), SIZE / 5);
    let out = Command::new(CHECK)
        .args(["--json", "server", "--quick", "--root"])
        .arg(&server.root)
        .env("SOCCER_RIG_CONFIG", "/dev/null")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["leftovers"], serde_json::json!([]), "{v}");
    assert_eq!(v["partials"][0]["recording_id"], "CHECKED_CAM_C", "{v}");
    assert_eq!(v["partials"][0]["received_bytes"], n, "{v}");
    let text = Command::new(CHECK)
        .args(["server", "--quick", "--root"])
        .arg(&server.root)
        .env("SOCCER_RIG_CONFIG", "/dev/null")
        .output()
        .unwrap();
    let text = common::stdout(&text);
    assert!(
        text.contains(&format!("CHECKED_CAM_C partial, {n} bytes, age 0.0 h")),
        "{text}"
    );
}

#[test]
fn an_offset_after_the_file_part_is_400_and_the_partial_survives() {
    let d = data();
    let server = Receiver::start("");
    let r = rec("LATEOFF");
    let n = leave_partial(&server, &r, &d.big, &d.digest.sha256.to_string(), SIZE / 2);
    let tail = tempfile::NamedTempFile::new().unwrap();
    fs::write(tail.path(), &fs::read(&d.big).unwrap()[n as usize..]).unwrap();
    // The file part first, the offset after it: the file was read as
    // starting at byte 0, so the form is refused, naming the field.
    let late = |file: &Path| {
        let (s, c, k, o) = (
            format!("session_id={}", r.session.as_str()),
            format!("camera_id={}", r.camera.as_str()),
            format!("checksum={}", d.digest.sha256),
            format!("offset={n}"),
        );
        let f = format!("file=@{};type=video/mp4", file.display());
        let u = format!("{}/api/v1/upload", server.url);
        curl(&["-F", &s, "-F", &c, "-F", &k, "-F", &f, "-F", &o, &u])
    };
    let (code, v) = late(&d.big);
    assert_eq!(
        (code, v["error"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("offset must come before the file part"),
        "{v}"
    );
    assert_eq!(server.status(&r, &d.digest.sha256.to_string()), n);
    // Only the rest, offset after it: no ftyp at its start, refused before
    // the offset is even read; the partial is kept all the same.
    let (code, v) = late(tail.path());
    assert_eq!(code, 415, "{v}");
    // The good partial is kept, and the right form resumes from it.
    assert_eq!(server.status(&r, &d.digest.sha256.to_string()), n);
    assert!(!server.stored(&r).exists());
    let (code, v) = curl_upload(
        &server.url,
        &r,
        &d.digest.sha256.to_string(),
        Some(n),
        tail.path(),
    );
    assert_eq!(code, 200, "{v}");
    assert_stored(&server, &r, &d.big);
}
