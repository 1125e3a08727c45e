//! rig-receive's read side end to end: the real binary on a free loopback
//! port, filled by real uploads of real clips, read with curl and ureq, the
//! panorama made by the real rig-stitch, the page loaded in headless
//! Chromium. Every download is byte-compared with the file it came from.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::receiver::{Log, Receiver};
use serde_json::Value;
use soccer_rig::base::host::ClockSync;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::jobs::{JobQueue, JobStatus};
use soccer_rig::base::layout::ServerLayout;
use soccer_rig::base::manifest::describe::{self, DescribeOptions};

const STITCH: &str = env!("CARGO_BIN_EXE_rig-stitch");
const CAMS: [&str; 3] = ["CAM_L", "CAM_C", "CAM_R"];

/// Three distinct real clips (L, C, R), made once for the whole file.
fn clips() -> &'static [PathBuf; 3] {
    static CLIPS: OnceLock<[PathBuf; 3]> = OnceLock::new();
    let specs = [("l.mp4", 2.0, 15), ("c.mp4", 3.0, 15), ("r.mp4", 2.0, 15)];
    common::clips::three(&CLIPS, specs)
}

fn clip_of(camera: &str) -> &'static Path {
    &clips()[CAMS.iter().position(|c| *c == camera).unwrap()]
}

/// A running rig-receive (`common::receiver`) on a temp root.
struct Daemon {
    /// Killed on drop, before the root goes.
    _server: Receiver,
    port: u16,
    root: tempfile::TempDir,
}

impl Daemon {
    fn start() -> Daemon {
        let root = tempfile::tempdir().unwrap();
        // A tiny floor: the default 50 GB would tie the tests to the machine's disk.
        let config = root.path().join("server.yaml");
        std::fs::write(&config, "storage:\n  min_free_space_gb: 0.001\n").unwrap();
        let server = Receiver::spawn(&config, root.path(), "127.0.0.1:0", Log::Warn);
        Daemon {
            port: server.port(),
            _server: server,
            root,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn layout(&self) -> ServerLayout {
        ServerLayout::under(self.root.path())
    }

    /// Uploads `camera`'s clip with a manifest that starts at a fixed
    /// instant (so the three align) and names `hostname` as its Pi.
    fn upload(&self, session: &str, camera: &str, hostname: &str) {
        let clip = clip_of(camera);
        let rec = RecordingId::new(
            SessionId::parse(session).unwrap(),
            CameraId::parse(camera).unwrap(),
        );
        let opts = DescribeOptions {
            ffprobe: "ffprobe".into(),
            start: Some("2024-03-15T14:00:00Z".parse().unwrap()),
            clock: Some(ClockSync {
                synced: true,
                offset_ms: Some(1.0),
                source: "chronyc",
            }),
            ..DescribeOptions::default()
        };
        let mut m = describe::describe(clip, &rec, &opts).unwrap();
        m.device.get_or_insert_default().hostname = Some(hostname.to_string());
        let (status, v) = curl_json(&[
            "-F",
            &format!("session_id={session}"),
            "-F",
            &format!("camera_id={camera}"),
            "-F",
            &format!("checksum={}", common::sha256sum(clip)),
            "-F",
            &format!("manifest={}", m.to_json_pretty()),
            "-F",
            &format!("file=@{}", clip.display()),
            &self.url("/api/v1/upload"),
        ]);
        assert_eq!(status, 200, "{v}");
    }

    fn get(&self, path: &str) -> (u16, Value) {
        curl_json(&[&self.url(path)])
    }

    fn post(&self, path: &str) -> (u16, Value) {
        curl_json(&["-X", "POST", &self.url(path)])
    }

    /// Runs rig-stitch on the queue of this server, as its timer would.
    fn stitch_pending(&self) {
        let out = Command::new(STITCH)
            .args(["--pending", "--preset", "ultrafast", "--root"])
            .arg(self.root.path())
            .env("SOCCER_RIG_CONFIG", "/dev/null")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", common::stderr(&out));
    }

    /// Starts an upload of `camera` and stops sending halfway through the
    /// file; the upload stays in flight until the stream is dropped.
    fn stalled_upload(&self, session: &str, camera: &str) -> TcpStream {
        let file = std::fs::read(clip_of(camera)).unwrap();
        let mut body = Vec::new();
        for (name, value) in [
            ("session_id", session.to_string()),
            ("camera_id", camera.to_string()),
            ("checksum", common::sha256sum(clip_of(camera))),
        ] {
            body.extend_from_slice(
                format!(
                    "--B0undary\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            b"--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.mp4\"\r\n\
              Content-Type: video/mp4\r\n\r\n",
        );
        let full = body.len() + file.len() + b"\r\n--B0undary--\r\n".len();
        body.extend_from_slice(&file[..file.len() / 2]);
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {full}\r\n\
             Content-Type: multipart/form-data; boundary=B0undary\r\n\r\n"
        )
        .unwrap();
        s.write_all(&body).unwrap();
        s.flush().unwrap();
        let rec = format!("{session}_{camera}");
        self.wait_for(|stats| {
            stats["uploading"]
                .as_array()
                .unwrap()
                .contains(&Value::from(rec.as_str()))
        });
        s
    }

    /// Polls `/api/v1/stats` until `ok` holds (20 s at most).
    fn wait_for(&self, ok: impl Fn(&Value) -> bool) {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, stats) = self.get("/api/v1/stats");
            assert_eq!(status, 200);
            if ok(&stats) {
                return;
            }
            assert!(Instant::now() < until, "never reached: {stats}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// curl `-s` with the given args: (status, JSON body or Null).
fn curl_json(args: &[&str]) -> (u16, Value) {
    let (status, _, body) = curl(args);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// curl `-s` (common::curl): (status, lower-cased headers, body bytes).
fn curl(args: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    common::curl::with_headers(args)
}

/// A HEAD request over raw TCP, read to the end: (status, headers, bytes
/// after the headers), to prove that no body follows.
fn raw_head(d: &Daemon, path: &str, extra: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::Read;
    let mut s = TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(all[..end].to_vec()).unwrap();
    let (status, headers) = common::wire::reply_head(&head);
    (status, headers, all[end + 4..].to_vec())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn assert_error(reply: &(u16, Value), status: u16, code: &str) {
    assert_eq!(reply.0, status, "{}", reply.1);
    let keys: Vec<&str> = reply
        .1
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // The seed's three fields first; a few errors add one for scripts.
    assert_eq!(keys[..3], ["success", "error", "message"], "{}", reply.1);
    let extra = match code {
        "session_incomplete" => Some("cameras_missing"),
        "job_in_progress" => Some("job_id"),
        _ => None,
    };
    assert_eq!(keys.get(3).copied(), extra, "{}", reply.1);
    assert_eq!(keys.len(), 3 + usize::from(extra.is_some()), "{}", reply.1);
    assert_eq!(reply.1["success"], false);
    assert_eq!(reply.1["error"], code, "{}", reply.1);
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent()
}

/// A ureq GET with one optional header: (status, header getter, body).
fn ureq_get(url: &str, hdr: Option<(&str, &str)>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut req = agent().get(url);
    if let Some((k, v)) = hdr {
        req = req.header(k, v);
    }
    let mut resp = req.call().unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let body = resp.body_mut().read_to_vec().unwrap();
    (resp.status().as_u16(), headers, body)
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().len()
}

#[test]
fn listing_detail_and_stats_show_what_is_stored() {
    let d = Daemon::start();
    for cam in CAMS {
        d.upload("MATCH_A", cam, "pi-a");
    }
    // A later mtime for the newer session (mtime granularity is fine, but be sure).
    std::thread::sleep(Duration::from_millis(20));
    d.upload("MATCH_B", "CAM_C", "pi-c");

    let (status, list) = d.get("/api/v1/sessions");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["success"], true);
    assert_eq!(list["total"], 2);
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["MATCH_B", "MATCH_A"], "newest first");
    let b = &list["sessions"][0];
    assert_eq!(b["complete"], false);
    assert_eq!(b["cameras_missing"], serde_json::json!(["CAM_L", "CAM_R"]));
    assert_eq!(b["cameras"][1]["camera_id"], "CAM_C");
    assert_eq!(b["cameras"][1]["present"], true);
    assert_eq!(b["cameras"][1]["size_bytes"], file_size(clip_of("CAM_C")));
    assert_eq!(b["cameras"][1]["hostname"], "pi-c");
    assert_eq!(b["cameras"][0]["present"], false);
    assert_eq!(b["cameras"][0]["url"], Value::Null);
    let a = &list["sessions"][1];
    assert_eq!(a["complete"], true);
    assert_eq!(a["stitched"], false);
    assert_eq!(a["job"]["status"], "queued", "queued at receive time");
    let total: u64 = CAMS.iter().map(|c| file_size(clip_of(c))).sum();
    assert_eq!(a["recording_bytes"], total);
    for (i, cam) in CAMS.iter().enumerate() {
        let c = &a["cameras"][i];
        assert_eq!(c["camera_id"], *cam);
        assert_eq!(
            c["url"],
            format!("/api/v1/sessions/MATCH_A/{cam}/recording.mp4")
        );
        let probe = common::ffprobe_json(clip_of(cam));
        let want: f64 = probe["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let got = c["duration_sec"].as_f64().unwrap();
        assert!((got - want).abs() < 0.05, "{cam}: {got} vs ffprobe {want}");
        let t: jiff::Timestamp = c["uploaded_at"].as_str().unwrap().parse().unwrap();
        let age = jiff::Timestamp::now().duration_since(t).as_secs_f64();
        assert!((0.0..600.0).contains(&age), "uploaded_at {t}");
    }

    // Filters and paging.
    let only = |q: &str| -> Vec<String> {
        let (status, v) = d.get(&format!("/api/v1/sessions{q}"));
        assert_eq!(status, 200, "{v}");
        v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(only("?complete=true"), ["MATCH_A"]);
    assert_eq!(only("?complete=false"), ["MATCH_B"]);
    assert_eq!(only("?limit=1"), ["MATCH_B"]);
    assert_eq!(only("?limit=1&offset=1"), ["MATCH_A"]);
    assert!(only("?offset=5").is_empty());
    for bad in [
        "?limit=0",
        "?limit=abc",
        "?limit=1001",
        "?offset=-1",
        "?complete=maybe",
    ] {
        assert_error(
            &d.get(&format!("/api/v1/sessions{bad}")),
            400,
            "invalid_field",
        );
    }

    // One session in detail: server digest and manifest summary.
    let (status, v) = d.get("/api/v1/sessions/MATCH_A");
    assert_eq!(status, 200, "{v}");
    let s = &v["session"];
    assert_eq!(s["session_id"], "MATCH_A");
    for (i, cam) in CAMS.iter().enumerate() {
        let c = &s["cameras"][i];
        let sha = common::sha256sum(clip_of(cam));
        assert_eq!(c["checksum_sha256"], sha);
        let m = &c["manifest"];
        assert_eq!(m["recording_id"], format!("MATCH_A_{cam}"));
        assert_eq!(m["codec"], "h264");
        assert_eq!(
            (m["width"].clone(), m["height"].clone()),
            (320.into(), 180.into())
        );
        assert_eq!(m["fps"], 15);
        assert_eq!(m["hostname"], "pi-a");
        assert_eq!(m["start_time"], "2024-03-15T14:00:00.000000Z");
        assert_eq!(m["ntp_synced"], true);
        assert_eq!(m["checksum"], sha);
        assert_eq!(m["checksum_matches"], true);
    }
    assert_error(&d.get("/api/v1/sessions/NO_SUCH"), 404, "session_not_found");
    assert_error(&d.get("/api/v1/sessions/bad%20id"), 400, "invalid_field");
    assert_error(
        &d.get("/api/v1/sessions/%3Cscript%3E"),
        400,
        "invalid_field",
    );
    // curl sends these bytes as they are: the ID rule rejects them too.
    assert_error(
        &d.get("/api/v1/sessions/<script>alert(1)<%2Fscript>"),
        400,
        "invalid_field",
    );
    assert_error(
        &d.get("/api/v1/sessions/..%2F..%2Fetc"),
        400,
        "invalid_field",
    );

    // Totals.
    let (status, st) = d.get("/api/v1/stats");
    assert_eq!(status, 200, "{st}");
    assert_eq!(st["sessions"], 2);
    assert_eq!(st["complete_sessions"], 1);
    assert_eq!(st["stitched_sessions"], 0);
    assert_eq!(st["recordings"], 4);
    let all = total + file_size(clip_of("CAM_C"));
    assert_eq!(st["recording_bytes"], all);
    assert_eq!(st["bytes"], all);
    assert_eq!(st["queue_depth"], 1);
    assert_eq!(st["jobs_queued"], 1);
    assert_eq!(st["active_uploads"], 0);
    assert!(st["storage_free_bytes"].as_u64().unwrap() > 0);

    // HEAD of a JSON route: the headers, no body.
    let (status, headers, body) = raw_head(&d, "/api/v1/stats", "");
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert!(body.is_empty());
}

#[test]
fn downloads_stream_exact_bytes_with_ranges_and_validators() {
    let d = Daemon::start();
    d.upload("DL_1", "CAM_C", "pi");
    let clip = clip_of("CAM_C");
    let bytes = std::fs::read(clip).unwrap();
    let len = bytes.len() as u64;
    assert!(
        len > 3000,
        "the clip must be big enough for the ranges below"
    );
    let url = d.url("/api/v1/sessions/DL_1/CAM_C/recording.mp4");
    let etag = format!("\"{}\"", common::sha256sum(clip));

    // The whole file, with ureq and with curl.
    let (status, h, body) = ureq_get(&url, None);
    assert_eq!(status, 200);
    assert!(body == bytes, "ureq download differs from the file");
    assert_eq!(header(&h, "content-type"), Some("video/mp4"));
    assert_eq!(header(&h, "content-length"), Some(len.to_string().as_str()));
    assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    assert_eq!(header(&h, "accept-ranges"), Some("bytes"));
    assert_eq!(header(&h, "transfer-encoding"), None);
    let (status, _, body) = curl(&[&url]);
    assert_eq!(status, 200);
    assert!(body == bytes, "curl download differs from the file");

    // Single ranges: first bytes, middle, suffix, open end, past the end.
    let cases: [(&str, u64, u64); 6] = [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=-500", len - 500, len - 1),
        ("bytes=2000-", 2000, len - 1),
        ("bytes=100-99999999", 100, len - 1),
        ("bytes=0-0", 0, 0),
    ];
    for (range, first, last) in cases {
        let (status, h, body) = ureq_get(&url, Some(("Range", range)));
        assert_eq!(status, 206, "{range}");
        assert!(
            body == bytes[first as usize..=last as usize],
            "{range}: body differs from bytes {first}-{last} of the file"
        );
        assert_eq!(
            header(&h, "content-range"),
            Some(format!("bytes {first}-{last}/{len}").as_str()),
            "{range}"
        );
        assert_eq!(
            header(&h, "content-length"),
            Some((last - first + 1).to_string().as_str())
        );
        assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    }
    // curl's own range option, and a suffix larger than the file.
    let (status, _, body) = curl(&["-r", "10-19", &url]);
    assert_eq!((status, &body[..]), (206, &bytes[10..20]));
    let (status, _, body) = curl(&["-H", &format!("Range: bytes=-{}", len * 2), &url]);
    assert_eq!(status, 206);
    assert!(body == bytes);

    // Out of range: 416 with the size.
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 10, len + 20),
        "bytes=-0".into(),
    ] {
        let (status, h, body) = curl(&["-H", &format!("Range: {range}"), &url]);
        assert_eq!(status, 416, "{range}");
        assert_eq!(
            header(&h, "content-range"),
            Some(format!("bytes */{len}").as_str())
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], "range_not_satisfiable");
    }
    // Several ranges, another unit, nonsense: the whole file (RFC 9110 allows).
    for range in ["bytes=0-1,5-6", "items=0-1", "bytes=9-1", "bytes=x-"] {
        let (status, _, body) = curl(&["-H", &format!("Range: {range}"), &url]);
        assert_eq!(status, 200, "{range}");
        assert!(body == bytes, "{range}");
    }
    // If-Range with a stale tag: the whole file; with the current one: the range.
    let (status, _, body) = curl(&["-H", "Range: bytes=0-9", "-H", "If-Range: \"old\"", &url]);
    assert_eq!(status, 200);
    assert!(body == bytes);
    let if_range = format!("If-Range: {etag}");
    let (status, _, body) = curl(&["-H", "Range: bytes=0-9", "-H", &if_range, &url]);
    assert_eq!((status, &body[..]), (206, &bytes[..10]));

    // Conditional GET: 304 without a body when the tag matches.
    let (status, h, body) = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    let (status, _, body) = curl(&["-H", "If-None-Match: \"other\"", &url]);
    assert_eq!(status, 200);
    assert!(body == bytes);

    // HEAD: the full length and validators, no body; with a Range, the part's.
    let path = "/api/v1/sessions/DL_1/CAM_C/recording.mp4";
    let (status, h, body) = raw_head(&d, path, "");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert_eq!(header(&h, "content-length"), Some(len.to_string().as_str()));
    assert_eq!(header(&h, "etag"), Some(etag.as_str()));
    let (status, h, body) = raw_head(&d, path, "Range: bytes=-100\r\n");
    assert_eq!(status, 206);
    assert!(body.is_empty());
    assert_eq!(header(&h, "content-length"), Some("100"));

    // What is not there.
    assert_error(
        &d.get("/api/v1/sessions/DL_1/CAM_L/recording.mp4"),
        404,
        "recording_not_found",
    );
    assert_error(
        &d.get("/api/v1/sessions/NOPE/CAM_L/recording.mp4"),
        404,
        "recording_not_found",
    );
    assert_error(
        &d.get("/api/v1/sessions/DL_1/CAM_X/recording.mp4"),
        400,
        "invalid_field",
    );
    assert_error(
        &d.get("/api/v1/sessions/DL_1/stitched/panorama.mp4"),
        404,
        "recording_not_found",
    );
    // A file sitting there without its digest (an upload not committed) is not served.
    let layout = d.layout();
    let s = SessionId::parse("DL_1").unwrap();
    std::fs::create_dir_all(layout.camera_dir(&s, CameraId::Right)).unwrap();
    std::fs::write(layout.recording(&s, CameraId::Right), b"not committed").unwrap();
    assert_error(
        &d.get("/api/v1/sessions/DL_1/CAM_R/recording.mp4"),
        404,
        "recording_not_found",
    );
}

#[test]
fn stitch_route_queues_refuses_and_the_panorama_downloads() {
    let d = Daemon::start();
    assert_error(
        &d.post("/api/v1/sessions/NOPE/stitch"),
        404,
        "session_not_found",
    );
    assert_error(&d.post("/api/v1/sessions/a.b/stitch"), 400, "invalid_field");
    d.upload("ST_1", "CAM_C", "pi");
    let r = d.post("/api/v1/sessions/ST_1/stitch");
    assert_error(&r, 409, "session_incomplete");
    let msg = r.1["message"].as_str().unwrap();
    assert!(msg.contains("CAM_L, CAM_R"), "{msg}");
    assert_eq!(
        r.1["cameras_missing"],
        serde_json::json!(["CAM_L", "CAM_R"]),
        "{}",
        r.1
    );
    d.upload("ST_1", "CAM_L", "pi");
    d.upload("ST_1", "CAM_R", "pi");
    // Complete: rig-receive queued it already, so asking again is refused.
    let r = d.post("/api/v1/sessions/ST_1/stitch");
    assert_error(&r, 409, "job_in_progress");
    assert!(
        r.1["message"].as_str().unwrap().contains("ST_1-1"),
        "{}",
        r.1
    );
    assert_eq!(r.1["job_id"], "ST_1-1", "{}", r.1);

    let (status, v) = d.get("/api/v1/jobs/ST_1-1");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["job"]["status"], "queued");
    assert_eq!(v["job"]["session_id"], "ST_1");
    d.stitch_pending();
    let (_, v) = d.get("/api/v1/jobs/ST_1-1");
    assert_eq!(v["job"]["status"], "done", "{v}");
    let (status, v) = d.get("/api/v1/jobs");
    assert_eq!(status, 200);
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1);

    // The panorama: listed, and downloadable in whole and in part.
    let pano = d.layout().panorama(&SessionId::parse("ST_1").unwrap());
    let bytes = std::fs::read(&pano).unwrap();
    let (_, v) = d.get("/api/v1/sessions/ST_1");
    assert_eq!(v["session"]["stitched"], true);
    assert_eq!(v["session"]["panorama"]["size_bytes"], bytes.len());
    assert_eq!(v["session"]["job"]["status"], "done");
    let url = d.url(v["session"]["panorama"]["url"].as_str().unwrap());
    let (status, h, body) = ureq_get(&url, None);
    assert_eq!(status, 200);
    assert!(body == bytes, "panorama download differs from the file");
    assert_eq!(header(&h, "content-type"), Some("video/mp4"));
    let etag = header(&h, "etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 4,
        "{etag}"
    );
    let (status, _, body) = ureq_get(&url, Some(("Range", "bytes=-1000")));
    assert_eq!(status, 206);
    assert!(body == bytes[bytes.len() - 1000..]);
    let (status, _, _) = curl(&["-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!(status, 304);
    let (_, st) = d.get("/api/v1/stats");
    assert_eq!(st["stitched_sessions"], 1);
    assert_eq!(st["panorama_bytes"], bytes.len());
    assert_eq!(st["queue_depth"], 0);

    // Done: a new stitch may be asked for, and is queued once.
    let (status, h, body) = curl(&["-X", "POST", &d.url("/api/v1/sessions/ST_1/stitch")]);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["job"]["id"], "ST_1-2");
    assert_eq!(v["job"]["status"], "queued");
    assert_eq!(header(&h, "location"), Some("/api/v1/jobs/ST_1-2"));
    let queue = JobQueue::new(&d.layout()).load().unwrap();
    assert_eq!(queue.jobs.len(), 2);
    assert_eq!(queue.jobs[1].status, JobStatus::Queued);
    assert_error(
        &d.post("/api/v1/sessions/ST_1/stitch"),
        409,
        "job_in_progress",
    );
    assert_eq!(JobQueue::new(&d.layout()).load().unwrap().jobs.len(), 2);
    // The page keeps the existing panorama's link beside the queued re-stitch.
    let (status, _, page) = curl(&[&d.url("/")]);
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    let section = page.split("id=\"s-ST_1\"").nth(1).unwrap();
    let stitch = section
        .split("<p class=\"stitch\">")
        .nth(1)
        .and_then(|p| p.split("</p>").next())
        .unwrap();
    assert!(
        stitch.contains("href=\"/api/v1/sessions/ST_1/stitched/panorama.mp4\"")
            && stitch.contains("queued"),
        "{stitch}"
    );

    assert_error(&d.get("/api/v1/jobs/ST_1-9"), 404, "job_not_found");
    assert_error(&d.get("/api/v1/jobs/nonsense"), 400, "invalid_field");
    assert_error(&d.get("/api/v1/jobs/..%2Fx-1"), 400, "invalid_field");

    // A thumbnail, from the panorama, made once and kept beside the session.
    let (status, h, jpg) = curl(&[&d.url("/api/v1/sessions/ST_1/thumb.jpg")]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some("image/jpeg"));
    assert_eq!(&jpg[..3], &[0xff, 0xd8, 0xff], "a JPEG");
    let thumb = d.layout().thumbnail(&SessionId::parse("ST_1").unwrap());
    assert!(std::fs::read(&thumb).unwrap() == jpg);
    let made = std::fs::metadata(&thumb).unwrap().modified().unwrap();
    let (status, _, again) = curl(&[&d.url("/api/v1/sessions/ST_1/thumb.jpg")]);
    assert_eq!(status, 200);
    assert!(again == jpg);
    assert_eq!(
        std::fs::metadata(&thumb).unwrap().modified().unwrap(),
        made,
        "made once"
    );
    assert_error(
        &d.get("/api/v1/sessions/NOPE/thumb.jpg"),
        404,
        "recording_not_found",
    );
    // Its temp file is gone, and rig-check finds the tree as it should be.
    let temp: Vec<_> = std::fs::read_dir(&d.layout().temp).unwrap().collect();
    assert!(temp.is_empty(), "{temp:?}");
    let out = Command::new(env!("CARGO_BIN_EXE_rig-check"))
        .arg("--config")
        .arg(d.root.path().join("server.yaml"))
        .args(["server", "--quick", "--root"])
        .arg(d.root.path())
        .output()
        .unwrap();
    let report = common::stdout(&out);
    assert!(out.status.success(), "{report}{}", common::stderr(&out));
    assert!(!report.contains("thumb"), "{report}");
}

#[test]
fn methods_and_unknown_paths() {
    let d = Daemon::start();
    let allow = |method: &str, path: &str| -> Option<String> {
        let (status, h, body) = curl(&["-X", method, &d.url(path)]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_error(&(status, v), 405, "method_not_allowed");
        header(&h, "allow").map(str::to_string)
    };
    assert_eq!(
        allow("POST", "/api/v1/sessions").as_deref(),
        Some("GET, HEAD")
    );
    assert_eq!(
        allow("DELETE", "/api/v1/sessions/S/CAM_C/recording.mp4").as_deref(),
        Some("GET, HEAD")
    );
    assert_eq!(allow("PUT", "/api/v1/stats").as_deref(), Some("GET, HEAD"));
    assert_eq!(allow("POST", "/").as_deref(), Some("GET, HEAD"));
    assert_eq!(
        allow("GET", "/api/v1/sessions/S/stitch").as_deref(),
        Some("POST")
    );
    assert_eq!(
        allow("POST", "/api/v1/jobs/S-1").as_deref(),
        Some("GET, HEAD")
    );
    // The upload routes keep theirs.
    assert_eq!(allow("GET", "/api/v1/upload").as_deref(), Some("POST"));
    assert_eq!(allow("POST", "/api/v1/health").as_deref(), Some("GET"));
    assert_error(&d.get("/api/v1/nothing"), 404, "not_found");
    assert_error(&d.get("/api/v1/sessions/S/other"), 404, "not_found");
    assert_error(&d.get("/index.html"), 404, "not_found");
    // An empty server: an empty list, and a page that says so.
    let (status, v) = d.get("/api/v1/sessions");
    assert_eq!((status, v["total"].clone()), (200, 0.into()));
    let (status, h, page) = curl(&[&d.url("/")]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&h, "cache-control"), Some("no-store"));
    assert!(String::from_utf8(page).unwrap().contains("No sessions yet"));
}

#[test]
fn an_upload_in_flight_shows_until_it_ends() {
    let d = Daemon::start();
    d.upload("FLY_1", "CAM_L", "pi");
    let stream = d.stalled_upload("FLY_1", "CAM_C");
    let also = d.stalled_upload("FLY_NEW", "CAM_R");

    let (_, list) = d.get("/api/v1/sessions");
    let ids: Vec<&str> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["FLY_NEW", "FLY_1"],
        "uploading sessions on top, by ID"
    );
    let fresh = &list["sessions"][0];
    assert_eq!(fresh["uploading"], true);
    assert_eq!(fresh["cameras"][2]["uploading"], true);
    assert_eq!(fresh["cameras"][2]["present"], false);
    let one = &list["sessions"][1];
    assert_eq!(one["uploading"], true);
    assert_eq!(one["cameras"][0]["present"], true);
    assert_eq!(one["cameras"][1]["uploading"], true);
    // Nothing of FLY_NEW is stored, but it exists while it uploads.
    let (status, v) = d.get("/api/v1/sessions/FLY_NEW");
    assert_eq!(status, 200, "{v}");
    let r = d.post("/api/v1/sessions/FLY_1/stitch");
    assert_error(&r, 409, "session_incomplete");
    assert!(
        r.1["message"]
            .as_str()
            .unwrap()
            .contains("CAM_C (uploading now), CAM_R"),
        "{}",
        r.1
    );
    let (_, st) = d.get("/api/v1/stats");
    assert_eq!(st["active_uploads"], 2);
    assert_eq!(
        st["uploading"],
        serde_json::json!(["FLY_1_CAM_C", "FLY_NEW_CAM_R"])
    );
    let (_, _, page) = curl(&[&d.url("/")]);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("FLY_1_CAM_C"), "uploads named at the top");
    assert!(page.contains("uploading&hellip;"));

    // The client goes away: nothing was stored, and FLY_NEW is gone again.
    drop(stream);
    drop(also);
    d.wait_for(|st| st["active_uploads"] == 0 && st["uploading"] == serde_json::json!([]));
    assert_error(&d.get("/api/v1/sessions/FLY_NEW"), 404, "session_not_found");
    let (_, v) = d.get("/api/v1/sessions/FLY_1");
    assert_eq!(v["session"]["uploading"], false);
    assert_eq!(
        v["session"]["cameras_missing"],
        serde_json::json!(["CAM_C", "CAM_R"])
    );
}

/// Runs headless Chromium (Debian's `chromium`) with the flags of the house.
fn chromium(extra: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args([
            "90",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args([
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("chromium must be installed (scripts/setup installs it)");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        common::stderr(&out)
    );
    common::stdout(&out)
}

#[test]
fn the_page_in_headless_chromium_shows_every_session_and_injects_nothing() {
    let d = Daemon::start();
    // Complete and stitched; its CAM_R names a Pi with markup in its manifest.
    d.upload("FINAL_Home", "CAM_L", "pi-left");
    d.upload("FINAL_Home", "CAM_C", "pi-center");
    d.upload("FINAL_Home", "CAM_R", "<b>bold</b>&co");
    d.stitch_pending();
    // Missing a camera.
    d.upload("Training_Tue", "CAM_L", "pi-left");
    d.upload("Training_Tue", "CAM_C", "pi-center");
    // Being uploaded.
    d.upload("GAME_20240315_140000", "CAM_L", "pi-left");
    let _flying = d.stalled_upload("GAME_20240315_140000", "CAM_C");
    // A session ID with markup never gets in (the ID rule), so it cannot
    // reach the page either.
    let clip = clip_of("CAM_L");
    let (status, v) = curl_json(&[
        // --form-string: with -F, curl reads a value starting with < from a file.
        "--form-string",
        "session_id=<script>alert(1)</script>",
        "-F",
        "camera_id=CAM_L",
        "-F",
        &format!(
            "checksum={}",
            soccer_rig::base::checksum::hash_file(clip).unwrap().sha256
        ),
        "-F",
        &format!("file=@{}", clip.display()),
        &d.url("/api/v1/upload"),
    ]);
    assert_eq!(
        (status, v["error"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );

    let dom = chromium(&["--dump-dom"], &d.url("/"));
    assert!(dom.contains("<html"), "{dom}");
    let section = |id: &str| -> String {
        let start = dom
            .find(&format!("<section class=\"session\" id=\"s-{id}\">"))
            .unwrap_or_else(|| panic!("no section for {id} in {dom}"));
        let end = dom[start..].find("</section>").unwrap() + start;
        dom[start..end].to_string()
    };
    let home = section("FINAL_Home");
    let training = section("Training_Tue");
    let game = section("GAME_20240315_140000");
    for s in [&home, &training, &game] {
        for cam in CAMS {
            assert!(
                s.contains(&format!("<strong>{cam}</strong>")),
                "{cam} in {s}"
            );
        }
    }
    assert!(home.contains("all 3 cameras"), "{home}");
    // The header: free space (the health figure, in GB) and the upload in
    // flight.
    let (_, health) = curl_json(&[&d.url("/api/v1/health")]);
    let free_gb = health["storage_free_gb"].as_f64().unwrap();
    let shown = dom
        .split("Free space: <strong>")
        .nth(1)
        .and_then(|rest| rest.split(" GB</strong>").next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no free space in the header: {dom}"));
    assert!(
        (shown - free_gb).abs() < 1.0,
        "{shown} GB shown, {free_gb} GB free"
    );
    assert!(dom.contains("Uploads: <strong>1</strong> active"), "{dom}");
    // Each stored camera's cell gives its size and its duration, as the
    // sessions API has them.
    let (_, detail) = curl_json(&[&d.url("/api/v1/sessions/FINAL_Home")]);
    for cam in CAMS {
        let cell = home
            .split(&format!("<strong>{cam}</strong>"))
            .nth(1)
            .and_then(|rest| rest.split("</a>").next())
            .unwrap_or_else(|| panic!("no cell for {cam}: {home}"));
        let spans: Vec<&str> = cell
            .split("<span>")
            .skip(1)
            .filter_map(|x| x.split("</span>").next())
            .collect();
        assert!(
            spans.len() >= 2
                && spans[0].ends_with('B')
                && spans[0].starts_with(|c: char| c.is_ascii_digit()),
            "{cam}: size in {cell}"
        );
        let duration = detail.to_string();
        let secs = detail["session"]["cameras"]
            .as_array()
            .and_then(|cams| cams.iter().find(|c| c["camera_id"] == cam))
            .and_then(|c| c["duration_sec"].as_f64())
            .unwrap_or_else(|| panic!("no duration for {cam} in {duration}"));
        assert_eq!(
            spans[1],
            format!("{secs:.1} s"),
            "{cam}: duration in {cell}"
        );
    }
    assert!(home.contains("href=\"/api/v1/sessions/FINAL_Home/stitched/panorama.mp4\""));
    for cam in CAMS {
        assert!(home.contains(&format!(
            "href=\"/api/v1/sessions/FINAL_Home/{cam}/recording.mp4\""
        )));
    }
    assert!(training.contains("missing CAM_R"), "{training}");
    assert!(training.contains("waits for all three cameras"));
    assert!(
        game.contains("uploading…") || game.contains("uploading&hellip;"),
        "{game}"
    );
    // The order: the upload in flight on top, then the newest.
    let pos = |id: &str| dom.find(&format!("id=\"s-{id}\"")).unwrap();
    assert!(pos("GAME_20240315_140000") < pos("Training_Tue"));
    assert!(pos("Training_Tue") < pos("FINAL_Home"));
    // The hostname is text, not markup: no <b> element made it into the DOM.
    assert!(!dom.contains("<b>"), "markup injected: {home}");
    assert!(home.contains("&lt;b&gt;bold&lt;/b&gt;&amp;co"), "{home}");
    assert!(!dom.contains("<script"), "no script at all");
    assert!(!dom.contains("alert(1)"), "the refused ID is nowhere");

    // The screenshot for the closing note, when asked for.
    if let Ok(path) = std::env::var("BROWSE_SCREENSHOT") {
        chromium(
            &[
                &format!("--screenshot={path}"),
                "--window-size=412,915",
                "--hide-scrollbars",
            ],
            &d.url("/"),
        );
        assert!(std::fs::metadata(&path).unwrap().len() > 1000);
    }
}
