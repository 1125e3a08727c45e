//! rig-manifest end to end: real clips, real ffprobe, real sha256sum.

mod common;

use std::fs;
use std::path::Path;

use common::{ffprobe_json, make_clip, run, sha256sum, stderr, stdout};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rig-manifest");
const EXAMPLE: &str = include_str!("data/protocol-example.json");

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

/// Creates a manifest for a fresh clip and checks every probed field against
/// ffprobe's own report and the checksum against sha256sum.
fn create_and_compare(encoder: &str, codec: &str) {
    let dir = tempfile::tempdir().unwrap();
    let clip = make_clip(dir.path(), "clip.mp4", encoder, 2.0, 320, 180, 15);
    let out = dir.path().join("m.json");
    let o = run(
        BIN,
        &[
            "create",
            clip.to_str().unwrap(),
            "--session",
            "JVvsRivals_Home",
            "--camera",
            "CAM_L",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let m = read_json(&out);
    let probe = ffprobe_json(&clip);
    let stream = &probe["streams"][0];
    assert_eq!(m["checksum"]["value"], sha256sum(&clip));
    assert_eq!(m["checksum"]["algorithm"], "sha256");
    assert_eq!(m["file"]["size_bytes"], fs::metadata(&clip).unwrap().len());
    assert_eq!(m["file"]["codec"], codec);
    assert_eq!(m["file"]["container"], "mp4");
    assert_eq!(m["file"]["name"], "JVvsRivals_Home_CAM_L.mp4");
    assert_eq!(m["recording"]["id"], "JVvsRivals_Home_CAM_L");
    assert_eq!(m["recording"]["position"], "left");
    assert_eq!(m["video"]["resolution"]["width"], stream["width"]);
    assert_eq!(m["video"]["resolution"]["height"], stream["height"]);
    assert_eq!(stream["r_frame_rate"], "15/1");
    assert_eq!(m["video"]["fps"], 15);
    // The video stream's duration (here the only stream, so also the file's).
    let want: f64 = stream["duration"].as_str().unwrap().parse().unwrap();
    let got = m["video"]["duration_sec"].as_f64().unwrap();
    assert!(
        (got - want).abs() < 1e-3,
        "duration {got} vs ffprobe {want}"
    );
    assert_eq!(m["timing"]["ntp_synced"], false);

    let v = run(BIN, &["validate", out.to_str().unwrap()]);
    assert!(v.status.success(), "{}", stdout(&v));
    assert!(stdout(&v).contains("valid"));
}

#[test]
fn create_h265_matches_ffprobe_and_sha256sum() {
    create_and_compare("libx265", "h265");
}

#[test]
fn create_h264_matches_ffprobe_and_sha256sum() {
    create_and_compare("libx264", "h264");
}

/// One broken field per case: the example with `path` set to `value`
/// (`None` removes it), and the field path validate must report.
fn broken_cases() -> Vec<(&'static str, Option<Value>, &'static str)> {
    vec![
        ("version", None, "version"),
        ("version", Some(json!(1.0)), "version"),
        ("version", Some(json!("2.0")), "version"),
        ("recording", None, "recording"),
        ("recording", Some(json!("x")), "recording"),
        ("recording.id", None, "recording.id"),
        (
            "recording.id",
            Some(json!("GAME_20240315_140000_CAM_L")),
            "recording.id",
        ),
        ("recording.session_id", None, "recording.session_id"),
        (
            "recording.session_id",
            Some(json!("../etc")),
            "recording.session_id",
        ),
        (
            "recording.session_id",
            Some(json!("")),
            "recording.session_id",
        ),
        ("recording.camera_id", None, "recording.camera_id"),
        (
            "recording.camera_id",
            Some(json!("CAM_X")),
            "recording.camera_id",
        ),
        ("recording.position", None, "recording.position"),
        (
            "recording.position",
            Some(json!("left")),
            "recording.position",
        ),
        (
            "recording.position",
            Some(json!("middle")),
            "recording.position",
        ),
        ("file", None, "file"),
        ("file", Some(json!(["name"])), "file"),
        ("file.name", None, "file.name"),
        ("file.name", Some(json!("other.mp4")), "file.name"),
        ("file.size_bytes", None, "file.size_bytes"),
        ("file.size_bytes", Some(json!(-5)), "file.size_bytes"),
        ("file.size_bytes", Some(json!("12")), "file.size_bytes"),
        ("file.size_bytes", Some(json!(1.5)), "file.size_bytes"),
        ("file.size_bytes", Some(json!(0)), "file.size_bytes"),
        ("file.container", None, "file.container"),
        ("file.container", Some(json!("mkv")), "file.container"),
        ("file.codec", None, "file.codec"),
        ("file.codec", Some(json!("vp9")), "file.codec"),
        ("video", None, "video"),
        ("video", Some(json!(4)), "video"),
        ("video.resolution", None, "video.resolution"),
        (
            "video.resolution",
            Some(json!("3840x2160")),
            "video.resolution",
        ),
        ("video.resolution.width", None, "video.resolution.width"),
        (
            "video.resolution.width",
            Some(json!(0)),
            "video.resolution.width",
        ),
        (
            "video.resolution.width",
            Some(json!(-3840)),
            "video.resolution.width",
        ),
        (
            "video.resolution.width",
            Some(json!(u64::from(u32::MAX) + 1)),
            "video.resolution.width",
        ),
        ("video.resolution.height", None, "video.resolution.height"),
        (
            "video.resolution.height",
            Some(json!(u64::from(u32::MAX) + 1)),
            "video.resolution.height",
        ),
        (
            "video.resolution.height",
            Some(json!("2160")),
            "video.resolution.height",
        ),
        ("video.fps", None, "video.fps"),
        ("video.fps", Some(json!(29.97)), "video.fps"),
        ("video.fps", Some(json!(0)), "video.fps"),
        (
            "video.fps",
            Some(json!(u64::from(u32::MAX) + 1)),
            "video.fps",
        ),
        ("video.bitrate_mbps", None, "video.bitrate_mbps"),
        ("video.bitrate_mbps", Some(json!(-1)), "video.bitrate_mbps"),
        (
            "video.bitrate_mbps",
            Some(json!(30.5)),
            "video.bitrate_mbps",
        ),
        (
            "video.bitrate_mbps",
            Some(json!(u64::from(u32::MAX) + 1)),
            "video.bitrate_mbps",
        ),
        ("video.duration_sec", None, "video.duration_sec"),
        ("video.duration_sec", Some(json!(0)), "video.duration_sec"),
        (
            "video.duration_sec",
            Some(json!("long")),
            "video.duration_sec",
        ),
        ("timing", None, "timing"),
        ("timing", Some(json!(true)), "timing"),
        ("timing.start_time", None, "timing.start_time"),
        (
            "timing.start_time",
            Some(json!("yesterday")),
            "timing.start_time",
        ),
        (
            "timing.start_time",
            Some(json!("2024-03-15 14:00:00")),
            "timing.start_time",
        ),
        ("timing.end_time", None, "timing.end_time"),
        ("timing.end_time", Some(json!("soon")), "timing.end_time"),
        (
            "timing.end_time",
            Some(json!("2024-03-15 15:30:00Z")),
            "timing.end_time",
        ),
        (
            "timing.end_time",
            Some(json!("2024-03-15T13:00:00.000000Z")),
            "timing.end_time",
        ),
        ("timing.ntp_synced", None, "timing.ntp_synced"),
        ("timing.ntp_synced", Some(json!("yes")), "timing.ntp_synced"),
        (
            "timing.sync_offset_ms",
            Some(json!("2.3")),
            "timing.sync_offset_ms",
        ),
        ("checksum", None, "checksum"),
        ("checksum", Some(json!("sha256:abc")), "checksum"),
        ("checksum.algorithm", None, "checksum.algorithm"),
        (
            "checksum.algorithm",
            Some(json!("md5")),
            "checksum.algorithm",
        ),
        ("checksum.value", None, "checksum.value"),
        (
            "checksum.value",
            Some(json!("abc123def456...")),
            "checksum.value",
        ),
        (
            "checksum.value",
            Some(json!(format!("{}g", "ab".repeat(31)))),
            "checksum.value",
        ),
        ("device", Some(json!([1])), "device"),
        ("device.hostname", Some(json!(7)), "device.hostname"),
        (
            "device.ip_address",
            Some(json!("192.168.1.300")),
            "device.ip_address",
        ),
        (
            "device.software_version",
            Some(json!(1)),
            "device.software_version",
        ),
        ("quality", Some(json!("good")), "quality"),
        (
            "quality.dropped_frames",
            Some(json!(-1)),
            "quality.dropped_frames",
        ),
        (
            "quality.temperature_avg_c",
            Some(json!("hot")),
            "quality.temperature_avg_c",
        ),
        (
            "quality.temperature_max_c",
            Some(json!(true)),
            "quality.temperature_max_c",
        ),
    ]
}

fn set_path(doc: &mut Value, path: &str, value: Option<Value>) {
    let mut keys: Vec<&str> = path.split('.').collect();
    let last = keys.pop().unwrap();
    let mut node = doc;
    for k in keys {
        node = &mut node[k];
    }
    let obj = node.as_object_mut().unwrap();
    match value {
        Some(v) => {
            obj.insert(last.to_string(), v);
        }
        None => {
            obj.remove(last);
        }
    }
}

#[test]
fn validate_names_each_broken_field_of_the_protocol_example() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    fs::write(&good, EXAMPLE).unwrap();
    let o = run(BIN, &["validate", good.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the example itself must be valid: {}",
        stdout(&o)
    );

    let cases = broken_cases();
    let mut paths = Vec::new();
    for (i, (path, value, _)) in cases.iter().enumerate() {
        let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
        set_path(&mut doc, path, value.clone());
        let p = dir.path().join(format!("case{i}.json"));
        fs::write(&p, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let mut args = vec!["validate", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let o = run(BIN, &args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let results: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (i, (path, value, want)) in cases.iter().enumerate() {
        let r = &results[i];
        assert_eq!(r["valid"], false, "case {path}={value:?} passed validation");
        let fields: Vec<&str> = r["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, [*want], "case {path}={value:?}: {}", r["problems"]);
    }

    // The human form names the field too.
    let o = run(BIN, &["validate", &paths[0]]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("  version: is required but missing"),
        "{}",
        stdout(&o)
    );
}

/// Times that jiff's lenient ISO 8601 parser takes but RFC 3339, as
/// PROTOCOL.md writes it, does not.
const NOT_RFC3339: [&str; 9] = [
    "2024-03-15 14:00:00.123456Z",
    "2024-03-15t14:00:00Z",
    "20240315T140000Z",
    "2024-03-15T14Z",
    "2024-03-15T14:00Z",
    "2024-03-15T14:00:00Z[Europe/London]",
    "2024-03-15T14:00:00+00:00[UTC]",
    "2024-03-15T14:00:00",
    "2024-03-15T14:00:00+0000",
];

#[test]
fn validate_rejects_times_that_are_not_rfc3339_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut cases = Vec::new();
    for field in ["timing.start_time", "timing.end_time"] {
        for (i, t) in NOT_RFC3339.iter().enumerate() {
            let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
            set_path(&mut doc, field, Some(json!(t)));
            let p = dir.path().join(format!("{field}-{i}.json"));
            fs::write(&p, doc.to_string()).unwrap();
            paths.push(p.to_str().unwrap().to_string());
            cases.push((field, *t));
        }
    }
    let mut args = vec!["validate", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let o = run(BIN, &args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let results: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (i, (field, t)) in cases.iter().enumerate() {
        let problems = results[i]["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{field}={t}: {problems:?}");
        assert_eq!(problems[0]["field"], *field, "{t}");
        let msg = problems[0]["message"].as_str().unwrap();
        assert!(msg.contains("RFC 3339"), "{t}: {msg}");
    }
    // An offset other than Z is RFC 3339 and stays valid.
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    set_path(
        &mut doc,
        "timing.end_time",
        Some(json!("2024-03-15T17:30:00.5+02:00")),
    );
    let p = dir.path().join("offset.json");
    fs::write(&p, doc.to_string()).unwrap();
    let o = run(BIN, &["validate", p.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn create_rejects_start_and_end_that_are_not_rfc3339() {
    let dir = tempfile::tempdir().unwrap();
    let clip = common::small_clip(dir.path(), "c.mp4");
    let c = clip.to_str().unwrap();
    for flag in ["--start", "--end"] {
        for t in NOT_RFC3339 {
            let o = run(
                BIN,
                &[
                    "create",
                    c,
                    "--session",
                    "S",
                    "--camera",
                    "CAM_C",
                    flag,
                    t,
                    "--out",
                    "-",
                ],
            );
            assert_eq!(o.status.code(), Some(2), "{flag} {t}: {}", stderr(&o));
            let err = stderr(&o);
            assert!(
                err.contains(&format!("{flag} {t:?}")) && err.contains("RFC 3339"),
                "{flag} {t}: {err}"
            );
            assert!(o.stdout.is_empty(), "{flag} {t}: wrote a manifest");
        }
    }
    let o = run(
        BIN,
        &[
            "create",
            c,
            "--session",
            "S",
            "--camera",
            "CAM_C",
            "--start",
            "2024-03-15T16:00:00+02:00",
            "--out",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["timing"]["start_time"], "2024-03-15T14:00:00.000000Z");
}

#[test]
fn validate_rejects_a_document_that_is_not_an_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (i, doc) in [
        "[]",
        "\"manifest\"",
        "42",
        "null",
        "[{\"version\": \"1.0\"}]",
    ]
    .iter()
    .enumerate()
    {
        let p = dir.path().join(format!("doc{i}.json"));
        fs::write(&p, doc).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    let mut args = vec!["validate", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let o = run(BIN, &args);
    assert_eq!(o.status.code(), Some(1));
    let results: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (i, r) in results.as_array().unwrap().iter().enumerate() {
        assert_eq!(r["valid"], false, "doc{i}");
        assert_eq!(
            r["problems"],
            json!([{"field": "(document)", "message": "must be a JSON object"}]),
            "doc{i}"
        );
    }
    assert_eq!(results.as_array().unwrap().len(), paths.len());
}

#[test]
fn validate_reports_unreadable_and_non_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    fs::write(&junk, "{ nope").unwrap();
    let missing = dir.path().join("missing.json");
    let o = run(
        BIN,
        &[
            "validate",
            junk.to_str().unwrap(),
            missing.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("(document): not valid JSON"), "{out}");
    assert!(out.contains("(file): cannot read"), "{out}");
}

#[test]
fn verify_ok_mismatch_missing_through_the_pi_layout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nvme");
    let config = dir.path().join("config.yaml");
    fs::write(
        &config,
        format!("node:\n  storage_root: {}\n", root.display()),
    )
    .unwrap();
    let rec_dir = root.join("recordings/G1/CAM_C");
    fs::create_dir_all(&rec_dir).unwrap();
    let clip = common::small_clip(&rec_dir, "G1_CAM_C.mp4");

    // create with no VIDEO and no --out: both come from the Pi layout.
    let cfg = config.to_str().unwrap();
    let o = run(
        BIN,
        &[
            "--config",
            cfg,
            "create",
            "--session",
            "G1",
            "--camera",
            "CAM_C",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = root.join("manifests/G1/CAM_C/G1_CAM_C.json");
    assert_eq!(stdout(&o).trim(), manifest.to_str().unwrap());

    let m = manifest.to_str().unwrap();
    let o = run(BIN, &["verify", m]);
    assert!(o.status.success(), "{}", stdout(&o));
    let digest = sha256sum(&clip);
    assert!(stdout(&o).starts_with("OK"), "{}", stdout(&o));
    assert!(stdout(&o).contains(&digest));

    // Flip one byte: MISMATCH with both digests, exit 1.
    let mut bytes = fs::read(&clip).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&clip, &bytes).unwrap();
    let o = run(BIN, &["verify", "--json", m]);
    assert_eq!(o.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r[0]["status"], "MISMATCH");
    assert_eq!(r[0]["expected_sha256"], digest.as_str());
    assert_eq!(r[0]["actual_sha256"], sha256sum(&clip).as_str());
    assert_ne!(r[0]["expected_sha256"], r[0]["actual_sha256"]);

    fs::remove_file(&clip).unwrap();
    let o = run(BIN, &["verify", m]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("MISSING"), "{}", stdout(&o));

    // create refuses to replace the manifest without --force.
    let o = run(
        BIN,
        &[
            "--config",
            cfg,
            "create",
            "--session",
            "G1",
            "--camera",
            "CAM_C",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
}

/// Manifest `name` for `clip` as session `session`, camera `camera`, at `out`.
fn create_manifest(clip: &Path, session: &str, camera: &str, out: &Path) {
    let o = run(
        BIN,
        &[
            "create",
            clip.to_str().unwrap(),
            "--session",
            session,
            "--camera",
            camera,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// One `verify` call over OK, MISMATCH, MISSING and INVALID manifests
/// (hashed in parallel): each gets its own verdict, in argument order, and
/// the exit status is 1.
#[test]
fn verify_many_manifests_in_one_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut manifests = Vec::new();
    // Two good recordings (so more than one hash runs at once).
    for (name, cam) in [("ok1", "CAM_L"), ("ok2", "CAM_R")] {
        let sub = d.join(name);
        fs::create_dir(&sub).unwrap();
        let clip = common::small_clip(&sub, &format!("S_{cam}.mp4"));
        let m = sub.join("m.json");
        create_manifest(&clip, "S", cam, &m);
        manifests.push((m, clip));
    }
    // A mismatch: one byte flipped after the manifest was made.
    let sub = d.join("bad");
    fs::create_dir(&sub).unwrap();
    let clip = common::small_clip(&sub, "S_CAM_C.mp4");
    let m = sub.join("m.json");
    create_manifest(&clip, "S", "CAM_C", &m);
    let expected = sha256sum(&clip);
    let mut bytes = fs::read(&clip).unwrap();
    bytes[100] ^= 0x80;
    fs::write(&clip, &bytes).unwrap();
    let actual = sha256sum(&clip);
    manifests.push((m, clip));
    // Missing: the manifest's video is gone.
    let sub = d.join("gone");
    fs::create_dir(&sub).unwrap();
    let clip = common::small_clip(&sub, "T_CAM_C.mp4");
    let m = sub.join("m.json");
    create_manifest(&clip, "T", "CAM_C", &m);
    fs::remove_file(&clip).unwrap();
    manifests.push((m, clip));
    // Invalid: a manifest that breaks a rule.
    let invalid = d.join("invalid.json");
    let mut doc: Value = serde_json::from_str(EXAMPLE).unwrap();
    set_path(&mut doc, "video.fps", Some(json!(0)));
    fs::write(&invalid, doc.to_string()).unwrap();

    let mut args: Vec<String> = vec!["verify".into()];
    args.extend(manifests.iter().map(|(m, _)| m.display().to_string()));
    args.push(invalid.display().to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(BIN, &argv);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    let verdicts: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    let want = [
        ("OK", "S_CAM_L", &manifests[0].0),
        ("OK", "S_CAM_R", &manifests[1].0),
        ("MISMATCH", "S_CAM_C", &manifests[2].0),
        ("MISSING", "T_CAM_C", &manifests[3].0),
        ("INVALID", "?", &invalid),
    ];
    assert_eq!(verdicts.len(), want.len(), "{out}");
    for (line, (status, id, path)) in verdicts.iter().zip(want) {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words, [status, id, path.to_str().unwrap()], "{line}\n{out}");
    }
    for (_, clip) in &manifests[..2] {
        assert!(out.contains(&sha256sum(clip)), "{out}");
    }
    assert!(
        out.contains(&format!("expected sha256 {expected}"))
            && out.contains(&format!("actual   sha256 {actual}")),
        "{out}"
    );
    assert!(
        out.contains("video.fps: must be a positive integer"),
        "{out}"
    );
    assert!(out.contains("T_CAM_C.mp4"), "MISSING names the file: {out}");

    verify_json_agrees(&argv, &expected, &actual);
}

/// The `--json` form of the same verify call: statuses in argument order,
/// both digests of the mismatch.
fn verify_json_agrees(argv: &[&str], expected: &str, actual: &str) {
    let mut args = vec!["verify", "--json"];
    args.extend(&argv[1..]);
    let o = run(BIN, &args);
    assert_eq!(o.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let statuses: Vec<&str> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["OK", "OK", "MISMATCH", "MISSING", "INVALID"]);
    assert_eq!(r[2]["expected_sha256"], expected);
    assert_eq!(r[2]["actual_sha256"], actual);
    assert_eq!(r[0]["expected_sha256"], r[0]["actual_sha256"]);
}

#[test]
fn verify_with_video_checks_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let clip = common::small_clip(dir.path(), "elsewhere.mp4");
    let m = dir.path().join("m.json");
    create_manifest(&clip, "S", "CAM_C", &m);
    // Without --video, the manifest's file.name (S_CAM_C.mp4) is not there.
    let o = run(BIN, &["verify", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("MISSING"), "{}", stdout(&o));

    let o = run(
        BIN,
        &[
            "verify",
            "--json",
            "--video",
            clip.to_str().unwrap(),
            m.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stdout(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r[0]["status"], "OK");
    assert_eq!(r[0]["video"], clip.to_str().unwrap());
    assert_eq!(r[0]["actual_sha256"], sha256sum(&clip));
    assert_eq!(r[0]["actual_size"], fs::metadata(&clip).unwrap().len());
}

#[test]
fn verify_finds_the_recording_through_the_server_layout() {
    let dir = tempfile::tempdir().unwrap();
    let cam = dir.path().join("sessions/G2/CAM_R");
    fs::create_dir_all(&cam).unwrap();
    let clip = common::small_clip(&cam, "recording.mp4");
    let m = cam.join("manifest.json");
    create_manifest(&clip, "G2", "CAM_R", &m);
    // A decoy named as file.name says, which the server layout never uses.
    fs::write(cam.join("G2_CAM_R.mp4"), b"decoy").unwrap();
    let o = run(BIN, &["verify", "--json", m.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stdout(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r[0]["status"], "OK");
    assert_eq!(r[0]["video"], clip.to_str().unwrap());
    assert_eq!(r[0]["actual_sha256"], sha256sum(&clip));
}

/// Runs ffmpeg with `args` (after the quiet, overwrite flags).
fn ffmpeg(args: &[&str]) {
    let o = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "ffmpeg {args:?}: {}", stderr(&o));
}

#[test]
fn create_refuses_a_quicktime_mov() {
    let dir = tempfile::tempdir().unwrap();
    let mov = dir.path().join("clip.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x180:rate=15:duration=1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-f",
        "mov",
        mov.to_str().unwrap(),
    ]);
    assert_eq!(
        ffprobe_json(&mov)["format"]["tags"]["major_brand"],
        "qt  ",
        "the test clip is QuickTime"
    );
    let o = run(
        BIN,
        &[
            "create",
            mov.to_str().unwrap(),
            "--session",
            "S",
            "--camera",
            "CAM_C",
            "--out",
            "-",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("file.container: must be one of mp4, got \"mov\""),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn duration_is_the_video_streams_when_audio_runs_longer() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("av.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x180:rate=15:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=duration=3",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        clip.to_str().unwrap(),
    ]);
    let format: f64 = ffprobe_json(&clip)["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        format > 2.9,
        "the file lasts as long as its audio: {format}"
    );
    let o = run(
        BIN,
        &[
            "create",
            clip.to_str().unwrap(),
            "--session",
            "S",
            "--camera",
            "CAM_C",
            "--start",
            "2024-03-15T14:00:00Z",
            "--out",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["video"]["duration_sec"], 2.0);
    assert_eq!(m["timing"]["end_time"], "2024-03-15T14:00:02.000000Z");
}

#[test]
fn recover_marks_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let clip = common::small_clip(dir.path(), "c.mp4");
    let o = run(
        BIN,
        &[
            "create",
            clip.to_str().unwrap(),
            "--session",
            "S",
            "--camera",
            "CAM_C",
            "--recover",
            "--out",
            "-",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(m["recovered"], true);
    assert_eq!(m["timing"]["ntp_synced"], false);
    assert_eq!(m["checksum"]["value"], sha256sum(&clip));
}

#[test]
fn usage_and_input_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let clip = common::small_clip(dir.path(), "c.mp4");
    let c = clip.to_str().unwrap();
    // A config that exists but does not parse.
    let bad_cfg_path = dir.path().join("broken.yaml");
    fs::write(&bad_cfg_path, "node: [unclosed\n").unwrap();
    let bad_cfg = bad_cfg_path.to_str().unwrap();
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec![], 2, "missing command"),
        (vec!["frobnicate"], 2, "unknown command"),
        (vec!["create", c, "--camera", "CAM_C"], 2, "--session"),
        (
            vec!["create", c, "--session", "a/b", "--camera", "CAM_C"],
            2,
            "--session",
        ),
        (
            vec!["create", c, "--session", "S", "--camera", "CAM_Q"],
            2,
            "--camera",
        ),
        (
            vec![
                "create",
                c,
                "--session",
                "S",
                "--camera",
                "CAM_C",
                "--start",
                "noon",
            ],
            2,
            "--start",
        ),
        (
            vec![
                "create",
                c,
                "--session",
                "S",
                "--camera",
                "CAM_C",
                "--bogus",
            ],
            2,
            "--bogus",
        ),
        (vec!["validate"], 2, "at least one MANIFEST"),
        (
            vec!["verify", "--video", c, "a.json", "b.json"],
            2,
            "exactly one",
        ),
        (
            vec!["--config", "/nonexistent.yaml", "validate", "m.json"],
            2,
            "/nonexistent.yaml",
        ),
        (
            vec!["--config", "/nonexistent.yaml", "verify", "m.json"],
            2,
            "/nonexistent.yaml",
        ),
        (vec!["--config", bad_cfg, "validate", "m.json"], 2, bad_cfg),
        (
            vec!["--config", bad_cfg, "verify", "--video", c, "m.json"],
            2,
            bad_cfg,
        ),
        (
            vec![
                "--config",
                bad_cfg,
                "create",
                c,
                "--session",
                "S",
                "--camera",
                "CAM_C",
            ],
            2,
            bad_cfg,
        ),
        (
            vec![
                "--config",
                "/nonexistent.yaml",
                "create",
                c,
                "--session",
                "S",
                "--camera",
                "CAM_C",
            ],
            2,
            "/nonexistent.yaml",
        ),
        (
            vec![
                "create",
                "/nonexistent.mp4",
                "--session",
                "S",
                "--camera",
                "CAM_C",
                "--out",
                "-",
            ],
            1,
            "/nonexistent.mp4",
        ),
    ];
    for (args, code, needle) in cases {
        let o = run(BIN, &args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    }
    // A file that is not a video names the file.
    let txt = dir.path().join("notes.mp4");
    fs::write(&txt, "not a video").unwrap();
    let o = run(
        BIN,
        &[
            "create",
            txt.to_str().unwrap(),
            "--session",
            "S",
            "--camera",
            "CAM_C",
            "--out",
            "-",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("notes.mp4: not a readable video"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_and_version() {
    let o = run(BIN, &["--help"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("rig-manifest create"));
    let o = run(BIN, &["--version"]);
    assert_eq!(
        stdout(&o).trim(),
        format!("rig-manifest {}", env!("CARGO_PKG_VERSION"))
    );
}
