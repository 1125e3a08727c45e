//! rig-stitch end to end, with real ffmpeg on real clips whose truth is known.
//!
//! One wide lossless `testsrc2` clip (832x180, 30 fps, as the Pis record) is the truth. Three
//! camera clips are cropped from it, 320 columns each, overlapping by 64
//! columns (the configured `stitch_overlap_px`), and trimmed so that each
//! starts at its own instant: CAM_L at 0.0 s of the truth, CAM_C 0.5 s later,
//! CAM_R 0.3 s after that (0.8 s). Their manifests carry those instants. The
//! panorama's frame n must then be the truth's frame 24 + n (0.8 s at 30
//! fps), and the panorama must end with CAM_L at 3.0 s: 2.2 s, 66 frames.
//!
//! testsrc2 moves everywhere: against itself one frame later it scores
//! about 23 dB PSNR, two columns sideways about 25 dB, so a misalignment in
//! time or space cannot pass the 35 dB threshold used below. An aligned
//! stitch scores about 43 dB: the blend of two identical pixels is that
//! pixel, so what remains is the camera clips' H.264 loss plus the
//! panorama's, each around 45-50 dB on this pattern. The controls at the
//! end of the main test prove the threshold separates the two.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use soccer_rig::base::ids::{CameraId, SessionId};
use soccer_rig::base::jobs::{JobQueue, JobStatus};
use soccer_rig::base::layout::ServerLayout;

use common::ffmpeg;

const BIN: &str = env!("CARGO_BIN_EXE_rig-stitch");
const SESSION: &str = "GAME_20240315_140000";
const W: u32 = 320;
const H: u32 = 180;
const OVERLAP: u32 = 64;
const FPS: u32 = 30;
/// Width of the truth: three cameras minus two overlaps.
const WIDE: u32 = 3 * W - 2 * OVERLAP;
/// PSNR (dB) an aligned stitch must beat; see the module docs.
const PSNR_MIN: f64 = 35.0;
/// 0.8 s at 30 fps: the truth frame that is panorama frame 0.
const FIRST_TRUTH_FRAME: u32 = 24;
/// 2.2 s at 30 fps.
const FRAMES: u32 = 66;

/// Where each camera's window starts in the truth, columns.
fn window_x(camera: CameraId) -> u32 {
    match camera {
        CameraId::Left => 0,
        CameraId::Center => W - OVERLAP,
        CameraId::Right => 2 * (W - OVERLAP),
    }
}

/// The truth's frames each camera recorded: [first, end).
fn frames_of(camera: CameraId) -> (u32, u32) {
    match camera {
        CameraId::Left => (0, 90),    // 0.0 .. 3.0 s
        CameraId::Center => (15, 99), // 0.5 .. 3.3 s
        CameraId::Right => (24, 108), // 0.8 .. 3.6 s
    }
}

/// The truth and the three camera clips, made once for all tests.
struct Clips {
    _dir: tempfile::TempDir,
    truth: PathBuf,
    camera: [PathBuf; 3],
}

fn clips() -> &'static Clips {
    static CLIPS: OnceLock<Clips> = OnceLock::new();
    CLIPS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let truth = dir.path().join("truth.mp4");
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={WIDE}x{H}:rate={FPS}:duration=3.6"),
            "-c:v",
            "libx264",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
            truth.to_str().unwrap(),
        ]);
        let camera = CameraId::ALL.map(|cam| {
            let out = dir.path().join(format!("{cam}.mp4"));
            let (first, end) = frames_of(cam);
            ffmpeg(&[
                "-i",
                truth.to_str().unwrap(),
                "-vf",
                &format!(
                    "trim=start_frame={first}:end_frame={end},setpts=PTS-STARTPTS,\
                     crop={W}:{H}:{}:0",
                    window_x(cam)
                ),
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                out.to_str().unwrap(),
            ]);
            out
        });
        Clips {
            _dir: dir,
            truth,
            camera,
        }
    })
}

/// A server root with config and one session built on disk the way
/// rig-receive leaves it: recording.mp4, manifest.json, recording.sha256.
struct Rig {
    dir: tempfile::TempDir,
    layout: ServerLayout,
    config: PathBuf,
}

impl Rig {
    fn new() -> Rig {
        Rig::with_ffmpeg("ffmpeg")
    }

    /// `ffmpeg` is the `processing.ffmpeg_path` to configure.
    fn with_ffmpeg(ffmpeg: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let layout = ServerLayout::under(dir.path());
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!(
                "processing:\n  ffmpeg_path: {ffmpeg}\n  ffprobe_path: ffprobe\n  \
                 output_codec: h264\n  output_preset: ultrafast\n  \
                 stitch_overlap_px: {OVERLAP}\n  output_width: 0\n"
            ),
        )
        .unwrap();
        Rig {
            dir,
            layout,
            config,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn session(&self) -> SessionId {
        SessionId::parse(SESSION).unwrap()
    }

    /// Puts a camera's clip in place with a manifest saying it started at
    /// `start` (local clock) with sync offset `offset_ms`.
    fn add_camera(&self, cam: CameraId, clip: &Path, start: &str, offset_ms: Option<f64>) {
        let s = self.session();
        common::sync_rig::put_camera(&self.layout, &s, cam, clip, start, true, offset_ms);
    }

    /// The standard session: CAM_L at 14:00:00.0, CAM_C 0.5 s later, CAM_R
    /// 0.3 s after that. CAM_R's clock ran 100 ms ahead of NTP, so its
    /// manifest says 0.9 s with `sync_offset_ms: 100`: stitching must use
    /// the corrected 0.8 s.
    fn standard_session(&self) {
        let c = clips();
        self.add_camera(
            CameraId::Left,
            &c.camera[0],
            "2024-03-15T14:00:00.000000Z",
            None,
        );
        self.add_camera(
            CameraId::Center,
            &c.camera[1],
            "2024-03-15T14:00:00.500000Z",
            Some(0.0),
        );
        self.add_camera(
            CameraId::Right,
            &c.camera[2],
            "2024-03-15T14:00:00.900000Z",
            Some(100.0),
        );
    }

    fn stitch(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "--config",
            self.config.to_str().unwrap(),
            "--root",
            self.root().to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        common::run(BIN, &all)
    }

    fn queue(&self) -> JobQueue {
        JobQueue::new(&self.layout)
    }

    fn panorama(&self) -> PathBuf {
        self.layout.panorama(&self.session())
    }

    /// Files in `stitched/` other than the panorama (temp leftovers).
    fn stray_files(&self) -> Vec<String> {
        match std::fs::read_dir(self.layout.stitched_dir(&self.session())) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "panorama.mp4")
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&common::stdout(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::stdout(out)))
}

/// PSNR of `pano` against `truth` over `FRAMES` frames, the truth starting
/// at `truth_first`; `crop` (w, x) restricts both to a column band.
/// Returns (average, minimum over frames), from ffmpeg's psnr filter.
fn psnr(pano: &Path, truth: &Path, truth_first: u32, crop: Option<(u32, u32)>) -> (f64, f64) {
    let cut = crop
        .map(|(w, x)| format!(",crop={w}:{H}:{x}:0"))
        .unwrap_or_default();
    let graph = format!(
        "[0:v]trim=end_frame={FRAMES},setpts=PTS-STARTPTS{cut}[a];\
         [1:v]trim=start_frame={truth_first}:end_frame={},setpts=PTS-STARTPTS{cut}[b];\
         [a][b]psnr=stats_file=-",
        truth_first + FRAMES
    );
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(pano)
        .arg("-i")
        .arg(truth)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let per_frame: Vec<f64> = common::stdout(&out)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|f| f.strip_prefix("psnr_avg:"))
                .map(|v| if v == "inf" { 99.0 } else { v.parse().unwrap() })
        })
        .collect();
    assert_eq!(per_frame.len(), FRAMES as usize, "psnr saw every frame");
    let avg = per_frame.iter().sum::<f64>() / per_frame.len() as f64;
    let min = per_frame.iter().cloned().fold(f64::INFINITY, f64::min);
    (avg, min)
}

#[test]
fn panorama_is_aligned_blended_and_matches_the_truth() {
    let rig = Rig::new();
    rig.standard_session();
    let out = rig.stitch(&["--json", SESSION]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let report = json_of(&out);
    assert_eq!(report["success"], true);
    assert_eq!(report["result"], "stitched");
    assert_eq!(report["output"], rig.panorama().to_str().unwrap());
    let plan = &report["plan"];
    assert_eq!(plan["common_start"], "2024-03-15T14:00:00.800000Z");
    let skipped = common::skipped_frames(plan);
    assert_eq!(skipped, [24, 9, 0], "L skips 0.8 s, C 0.3 s, R nothing");
    assert_eq!(
        plan["cameras"][2]["start_time"],
        "2024-03-15T14:00:00.800000Z"
    );
    assert_eq!(plan["frames"], FRAMES);

    // The file: width 3W - 2*overlap, the common span within one frame.
    let probe = common::ffprobe_json(&rig.panorama());
    let v = &probe["streams"][0];
    assert_eq!(v["width"], WIDE);
    assert_eq!(v["height"], H);
    assert_eq!(v["codec_name"], "h264");
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (duration - 2.2).abs() <= 1.0 / FPS as f64,
        "duration {duration}, common span 2.2 s"
    );
    assert_eq!(v["nb_frames"], FRAMES.to_string());
    assert!(rig.stray_files().is_empty(), "{:?}", rig.stray_files());

    // Content: the truth, frame for frame, seams included.
    let truth = &clips().truth;
    let (avg, min) = psnr(&rig.panorama(), truth, FIRST_TRUTH_FRAME, None);
    eprintln!("whole frame PSNR vs truth: average {avg:.2} dB, worst frame {min:.2} dB");
    assert!(min > PSNR_MIN, "worst frame {min:.2} dB");
    for x in [W - OVERLAP, 2 * (W - OVERLAP)] {
        let (avg, min) = psnr(
            &rig.panorama(),
            truth,
            FIRST_TRUTH_FRAME,
            Some((OVERLAP, x)),
        );
        eprintln!("seam band at x={x} PSNR vs truth: average {avg:.2} dB, worst {min:.2} dB");
        assert!(min > PSNR_MIN, "seam at {x}: worst frame {min:.2} dB");
    }

    // Controls: the same comparison one frame late, or two columns off,
    // falls far below the threshold, so the assertions above can fail.
    let (late, _) = psnr(&rig.panorama(), truth, FIRST_TRUTH_FRAME + 1, None);
    assert!(late < PSNR_MIN - 5.0, "one frame off scores {late:.2} dB");
    let (shifted, _) = psnr_shifted(&rig.panorama(), truth, 2);
    eprintln!("controls: one frame late {late:.2} dB, two columns off {shifted:.2} dB");
    assert!(
        shifted < PSNR_MIN - 5.0,
        "two columns off scores {shifted:.2} dB"
    );

    // The queue: one job, done, with the output and times.
    let jobs = rig.queue().load().unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        (job.id.as_str(), job.status),
        ("GAME_20240315_140000-1", JobStatus::Done)
    );
    assert_eq!(job.progress, 100.0);
    assert_eq!(job.output.as_deref(), rig.panorama().to_str());
    assert!(job.started_at.is_some() && job.finished_at.is_some());
    assert_eq!(job.pid, None);
}

/// PSNR with the truth moved `dx` columns sideways (the panorama's columns
/// 0..WIDE-dx against the truth's dx..WIDE).
fn psnr_shifted(pano: &Path, truth: &Path, dx: u32) -> (f64, f64) {
    let graph = format!(
        "[0:v]trim=end_frame={FRAMES},setpts=PTS-STARTPTS,crop={}:{H}:0:0[a];\
         [1:v]trim=start_frame={FIRST_TRUTH_FRAME}:end_frame={},setpts=PTS-STARTPTS,\
         crop={}:{H}:{dx}:0[b];[a][b]psnr",
        WIDE - dx,
        FIRST_TRUTH_FRAME + FRAMES,
        WIDE - dx
    );
    common::sync_rig::lavfi_psnr(pano, truth, &graph)
}

#[test]
fn queue_goes_queued_running_done_and_records_the_running_pid() {
    // processing.ffmpeg_path is a wrapper that copies jobs.json aside and
    // then runs the real ffmpeg: the snapshot is the queue while the stitch
    // is under way.
    let wrapper_dir = tempfile::tempdir().unwrap();
    let wrapper = wrapper_dir.path().join("ffmpeg-snapshot");
    let rig0 = Rig::new();
    let snapshot = rig0.root().join("jobs-while-running.json");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncp '{}' '{}'\nexec ffmpeg \"$@\"\n",
            rig0.layout.jobs_file().display(),
            snapshot.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rig = Rig {
        config: {
            let c = rig0.root().join("wrapped.yaml");
            let text = std::fs::read_to_string(&rig0.config).unwrap().replace(
                "ffmpeg_path: ffmpeg",
                &format!("ffmpeg_path: {}", wrapper.display()),
            );
            std::fs::write(&c, text).unwrap();
            c
        },
        ..rig0
    };
    rig.standard_session();

    // rig-receive's part: enqueue the complete session.
    let (job, new) = rig.queue().enqueue(&rig.session()).unwrap();
    assert!(new);
    assert_eq!(
        rig.queue().load().unwrap().jobs[0].status,
        JobStatus::Queued
    );

    let out = rig.stitch(&["--pending"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(
        common::stdout(&out).contains(&format!("{} {SESSION}: done", job.id)),
        "{}",
        common::stdout(&out)
    );

    let during: soccer_rig::base::jobs::JobsFile =
        serde_json::from_str(&std::fs::read_to_string(&snapshot).unwrap()).unwrap();
    let running = &during.jobs[0];
    assert_eq!(running.status, JobStatus::Running);
    let pid = running.pid.expect("a running job carries its pid");
    assert_ne!(
        pid,
        std::process::id(),
        "the rig-stitch process, not the test"
    );
    assert!(running.started_at.is_some());
    assert!(running.finished_at.is_none());

    let after = rig.queue().load().unwrap().jobs;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].status, JobStatus::Done);
    assert_eq!(after[0].pid, None);
    assert!(rig.panorama().exists());

    // Nothing left: a second --pending has nothing to do.
    let again = rig.stitch(&["--pending"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(common::stdout(&again), "no queued jobs\n");
}

/// What cron sees: `--pending` reports, per job, the offsets each camera
/// was shifted by and the plan's warnings, in JSON and in text.
#[test]
fn pending_reports_offsets_and_warnings() {
    let rig = Rig::new();
    rig.standard_session();
    // CAM_R's clock was not NTP-synced: the plan must warn about it.
    let s = rig.session();
    let m_path = rig.layout.manifest(&s, CameraId::Right);
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&m_path).unwrap()).unwrap();
    m["timing"]["ntp_synced"] = Value::Bool(false);
    std::fs::write(&m_path, m.to_string()).unwrap();
    let (job, _) = rig.queue().enqueue(&s).unwrap();

    let out = rig.stitch(&["--pending", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let report = json_of(&out);
    let item = &report["jobs"][0];
    assert_eq!(item["job_id"], job.id.as_str());
    assert_eq!(item["status"], "done");
    let cams: Vec<(String, f64, u64, bool)> = item["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["camera"].as_str().unwrap().to_string(),
                c["applied_ms"].as_f64().unwrap(),
                c["skipped_frames"].as_u64().unwrap(),
                c["ntp_synced"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cams,
        [
            ("CAM_L".to_string(), 800.0, 24, true),
            ("CAM_C".to_string(), 300.0, 9, true),
            ("CAM_R".to_string(), 0.0, 0, false),
        ]
    );
    let warnings: Vec<&str> = item["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("CAM_R: clock was not NTP-synced"),
        "{warnings:?}"
    );

    // The same in text, after a forced re-run through the queue.
    std::fs::remove_file(rig.panorama()).unwrap();
    rig.queue().enqueue(&s).unwrap();
    let out = rig.stitch(&["--pending"]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains("CAM_L  start 2024-03-15T14:00:00.000000Z  skip   800.000 ms")
            && text.contains("CAM_C  start 2024-03-15T14:00:00.500000Z  skip   300.000 ms")
            && text.contains("CAM_R  start 2024-03-15T14:00:00.800000Z  skip     0.000 ms")
            && text.contains("NOT NTP-SYNCED")
            && text.contains("  warning: CAM_R: clock was not NTP-synced"),
        "{text}"
    );
}

/// CAM_C's audio outlasts its video by 1 s: the common span is the
/// video's, and the panorama's audio ends with its picture.
#[test]
fn audio_longer_than_video_does_not_stretch_the_panorama() {
    let c = clips();
    let dir = tempfile::tempdir().unwrap();
    // CAM_C: truth frames 15..75 (0.5 .. 2.5 s, 2.0 s of video), 3.0 s of audio.
    let center = dir.path().join("center-av.mp4");
    ffmpeg(&[
        "-i",
        c.truth.to_str().unwrap(),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=3",
        "-filter_complex",
        &format!(
            "[0:v]trim=start_frame=15:end_frame=75,setpts=PTS-STARTPTS,crop={W}:{H}:{}:0[v]",
            window_x(CameraId::Center)
        ),
        "-map",
        "[v]",
        "-map",
        "1:a",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        center.to_str().unwrap(),
    ]);
    let probe = common::ffprobe_json(&center);
    let format_duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        format_duration >= 2.99,
        "the file lasts as its audio: {format_duration}"
    );

    let rig = Rig::new();
    rig.add_camera(
        CameraId::Left,
        &c.camera[0],
        "2024-03-15T14:00:00.000000Z",
        None,
    );
    rig.add_camera(
        CameraId::Center,
        &center,
        "2024-03-15T14:00:00.500000Z",
        None,
    );
    rig.add_camera(
        CameraId::Right,
        &c.camera[2],
        "2024-03-15T14:00:00.800000Z",
        None,
    );
    let out = rig.stitch(&["--json", SESSION]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let report = json_of(&out);
    // Frame 0 at 0.8 s; CAM_C's video ends at 2.5 s (its audio at 3.5 s,
    // CAM_L's video at 3.0 s): 1.7 s, 51 frames.
    let want_frames = 51u64;
    let span = want_frames as f64 / f64::from(FPS);
    assert_eq!(report["plan"]["frames"], want_frames, "{}", report["plan"]);
    assert_eq!(report["plan"]["audio"], true);

    let probe = common::ffprobe_json(&rig.panorama());
    let stream = |kind: &str| {
        probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["codec_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} stream: {probe}"))
            .clone()
    };
    let secs = |v: &Value| -> f64 { v["duration"].as_str().unwrap().parse().unwrap() };
    let video = stream("video");
    let frames: u64 = video["nb_frames"].as_str().unwrap().parse().unwrap();
    let frame = 1.0 / f64::from(FPS);
    assert!(
        frames.abs_diff(want_frames) <= 1,
        "{frames} frames, want {want_frames}"
    );
    let video_secs = secs(&video);
    assert!(
        (video_secs - span).abs() <= frame + 1e-6,
        "video {video_secs} s, want {span}"
    );
    let audio_secs = secs(&stream("audio"));
    assert!(
        audio_secs <= video_secs + frame + 1e-6,
        "audio {audio_secs} s outlasts video {video_secs} s"
    );
    assert!(
        audio_secs >= span - frame,
        "audio {audio_secs} s is cut short"
    );
}

#[test]
fn missing_camera_fails_naming_it_and_the_job_is_failed() {
    let rig = Rig::new();
    let c = clips();
    rig.add_camera(CameraId::Left, &c.camera[0], "2024-03-15T14:00:00Z", None);
    rig.add_camera(
        CameraId::Center,
        &c.camera[1],
        "2024-03-15T14:00:00.5Z",
        None,
    );
    let out = rig.stitch(&["--json", SESSION]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(err.contains("camera CAM_R is missing"), "{err}");
    assert!(err.contains("CAM_R/recording.mp4"), "{err}");
    let j = json_of(&out);
    assert_eq!(j["success"], false);
    assert_eq!(j["error"], "missing_camera");
    let jobs = rig.queue().load().unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Failed);
    assert!(jobs[0].error.as_deref().unwrap().contains("CAM_R"));
    assert!(!rig.panorama().exists());
    assert!(rig.stray_files().is_empty());

    // An invalid manifest is named too.
    rig.add_camera(
        CameraId::Right,
        &c.camera[2],
        "2024-03-15T14:00:00.8Z",
        None,
    );
    let m = rig.layout.manifest(&rig.session(), CameraId::Center);
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, text.replace("\"fps\": 30", "\"fps\": -3")).unwrap();
    let out = rig.stitch(&[SESSION]);
    assert_eq!(out.status.code(), Some(1));
    let err = common::stderr(&out);
    assert!(
        err.contains("CAM_C manifest") && err.contains("video.fps"),
        "{err}"
    );
    assert_eq!(
        rig.queue().load().unwrap().jobs[1].status,
        JobStatus::Failed
    );
}

#[test]
fn done_session_needs_force_and_a_crashed_job_is_requeued() {
    let rig = Rig::new();
    rig.standard_session();
    // A job a crashed rig-stitch left running: its pid is gone.
    let dead_pid = {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let (job, _) = rig.queue().enqueue(&rig.session()).unwrap();
    rig.queue().claim(&job.id, dead_pid).unwrap().unwrap();
    // ...and its half-written temp file.
    let stitched = rig.layout.stitched_dir(&rig.session());
    std::fs::create_dir_all(&stitched).unwrap();
    std::fs::write(stitched.join(".rig-tmp-crashed"), b"half a panorama").unwrap();

    let out = rig.stitch(&[SESSION]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("queued again"),
        "{}",
        common::stderr(&out)
    );
    let jobs = rig.queue().load().unwrap().jobs;
    assert_eq!(jobs.len(), 1, "the re-queued job is the one that ran");
    assert_eq!(jobs[0].status, JobStatus::Done);
    assert!(rig.stray_files().is_empty(), "{:?}", rig.stray_files());
    let first = std::fs::metadata(rig.panorama()).unwrap();

    // Done: left alone without --force.
    let out = rig.stitch(&[SESSION]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        common::stdout(&out).contains("already stitched"),
        "{}",
        common::stdout(&out)
    );
    assert_eq!(rig.queue().load().unwrap().jobs.len(), 1);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(rig.panorama()).unwrap().ino(),
        first.ino()
    );

    // --force: a second job, a new file renamed over the old one.
    let out = rig.stitch(&["--force", SESSION]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let jobs = rig.queue().load().unwrap().jobs;
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[1].id.as_str(), jobs[1].status),
        ("GAME_20240315_140000-2", JobStatus::Done)
    );
    assert_ne!(
        std::fs::metadata(rig.panorama()).unwrap().ino(),
        first.ino()
    );

    // --list shows both, as a table and as JSON.
    let out = rig.stitch(&["--list"]);
    let table = common::stdout(&out);
    assert!(table.starts_with("JOB"), "{table}");
    assert_eq!(
        table.lines().filter(|l| l.contains(" done ")).count(),
        2,
        "{table}"
    );
    let j = json_of(&rig.stitch(&["--list", "--json"]));
    assert_eq!(j["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(j["jobs"][1]["status"], "done");
}

#[test]
fn overlap_is_a_linear_cross_fade() {
    // CAM_L black, CAM_C white, CAM_R black: across each band the panorama
    // must ramp linearly between the two, not cut.
    let dir = tempfile::tempdir().unwrap();
    // CAM_C also has a sound track, which the panorama must keep; CAM_R is
    // twice the size at 25 fps, and must be normalized to CAM_C's.
    let make = |name: &str, color: &str, audio: bool, size: (u32, u32), fps: u32| {
        let p = dir.path().join(name);
        let video = format!("color=c={color}:s={}x{}:r={fps}:d=1", size.0, size.1);
        let mut args = vec!["-f", "lavfi", "-i", &video];
        if audio {
            args.extend(["-f", "lavfi", "-i", "sine=f=440:d=1", "-c:a", "aac"]);
        }
        args.extend([
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            p.to_str().unwrap(),
        ]);
        ffmpeg(&args);
        p
    };
    let black = make("black.mp4", "black", false, (W, H), FPS);
    let white = make("white.mp4", "white", true, (W, H), FPS);
    let big_black = make("big.mp4", "black", false, (2 * W, 2 * H), 25);
    let rig = Rig::new();
    let t = "2024-03-15T14:00:00Z";
    rig.add_camera(CameraId::Left, &black, t, None);
    rig.add_camera(CameraId::Center, &white, t, None);
    rig.add_camera(CameraId::Right, &big_black, t, None);
    let out = rig.stitch(&[SESSION]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out)
            .contains("CAM_R: 640x360 at 25 fps, normalized to CAM_C's 320x180 at 30 fps"),
        "{}",
        common::stderr(&out)
    );

    let probe = common::ffprobe_json(&rig.panorama());
    let streams = probe["streams"].as_array().unwrap();
    let seconds = |kind: &str| -> f64 {
        let s = streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} stream in the panorama"));
        s["duration"].as_str().unwrap().parse().unwrap()
    };
    let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
    assert_eq!(video["nb_frames"], FPS.to_string(), "1 s at CAM_C's rate");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(WIDE as u64), Some(H as u64))
    );
    assert!(
        (seconds("audio") - seconds("video")).abs() < 0.05,
        "CAM_C's audio spans the panorama"
    );

    let raw = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(rig.panorama())
        .args([
            "-frames:v",
            "1",
            "-vf",
            "format=gray",
            "-f",
            "rawvideo",
            "-",
        ])
        .output()
        .unwrap();
    assert!(raw.status.success());
    assert_eq!(raw.stdout.len(), (WIDE * H) as usize);
    // Mean luma of each column over the middle rows.
    let col = |x: u32| -> f64 {
        let rows = 40..140u32;
        let n = rows.len() as f64;
        rows.map(|y| raw.stdout[(y * WIDE + x) as usize] as f64)
            .sum::<f64>()
            / n
    };
    let (lo, hi) = (col(100), col(W)); // inside CAM_L only, inside CAM_C only
    assert!(lo < 20.0 && hi > 230.0, "black {lo}, white {hi}");
    let band = W - OVERLAP;
    for i in (4..OVERLAP - 4).step_by(4) {
        // Expected weight of CAM_C at column i: (i + 0.5) / OVERLAP.
        let want = lo + (hi - lo) * (i as f64 + 0.5) / OVERLAP as f64;
        let got = col(band + i);
        assert!(
            (got - want).abs() < 8.0,
            "column {i} of the band: {got}, want {want}"
        );
        // And the mirror image on the CAM_C -> CAM_R band.
        let got = col(2 * band + OVERLAP - 1 - i);
        assert!(
            (got - want).abs() < 8.0,
            "right band column {i}: {got}, want {want}"
        );
    }
}

#[test]
fn usage_errors_and_dry_run() {
    let rig = Rig::new();
    let out = rig.stitch(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("exactly one of"));
    let out = rig.stitch(&["../etc"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("invalid session ID"),
        "{}",
        common::stderr(&out)
    );
    let out = rig.stitch(&["--pending", "--force"]);
    assert_eq!(out.status.code(), Some(2));
    let out = rig.stitch(&["--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("--bogus"));
    let out = rig.stitch(&["NO_SUCH_GAME"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(common::stderr(&out).contains("no session NO_SUCH_GAME"));
    assert!(
        !rig.layout.jobs_file().exists(),
        "an unknown session is not queued"
    );
    let out = rig.stitch(&["--list", "--json"]);
    assert_eq!(common::stdout(&out).trim(), "{\n  \"jobs\": []\n}");
    let out = common::run(BIN, &["--version"]);
    assert_eq!(
        common::stdout(&out),
        format!("rig-stitch {}\n", env!("CARGO_PKG_VERSION"))
    );

    rig.standard_session();
    let out = rig.stitch(&["--dry-run", SESSION]);
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains("maskedmerge") && text.contains("hstack"),
        "{text}"
    );
    assert!(
        text.contains("CAM_L  start 2024-03-15T14:00:00.000000Z  skip   800.000 ms"),
        "{text}"
    );
    assert!(
        !rig.layout.jobs_file().exists(),
        "dry run leaves the queue alone"
    );
    assert!(!rig.panorama().exists());
}

#[test]
fn sigterm_puts_the_job_back_and_leaves_no_file() {
    // With content time alignment the first ffmpeg is the analysis's, so the
    // signal lands there; with the clocks alone it lands in the encode.
    for sync_mode in ["content", "clock"] {
        sigterm_case(sync_mode);
    }
}

fn sigterm_case(sync_mode: &str) {
    // The wrapper marks that ffmpeg is about to start, waits a moment (so
    // the signal surely lands while the stitch is under way), then runs the
    // real ffmpeg.
    let rig = Rig::new();
    let wrapper = rig.root().join("ffmpeg-slow");
    let marker = rig.root().join("ffmpeg-started");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ntouch '{}'\nsleep 1\nexec ffmpeg \"$@\"\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = std::fs::read_to_string(&rig.config).unwrap().replace(
        "ffmpeg_path: ffmpeg",
        &format!("ffmpeg_path: {}", wrapper.display()),
    );
    std::fs::write(&rig.config, text + &format!("  sync_mode: {sync_mode}\n")).unwrap();
    rig.standard_session();

    let child = Command::new(BIN)
        .args(["--config", rig.config.to_str().unwrap()])
        .args(["--root", rig.root().to_str().unwrap(), SESSION])
        .env("SOCCER_RIG_CONFIG", "/dev/null")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the encode to begin (bounded, so a bug cannot hang the suite).
    for _ in 0..600 {
        if marker.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(marker.exists(), "ffmpeg never started");
    let running = rig.queue().load().unwrap().jobs;
    assert_eq!(running[0].status, JobStatus::Running);
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert!(
        common::stderr(&out).contains("interrupted"),
        "{}",
        common::stderr(&out)
    );

    let jobs = rig.queue().load().unwrap().jobs;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].status, JobStatus::Queued, "back in the queue");
    assert_eq!(jobs[0].pid, None);
    assert!(jobs[0].error.as_deref().unwrap().contains("interrupted"));
    assert!(!rig.panorama().exists());
    assert!(rig.stray_files().is_empty(), "{:?}", rig.stray_files());
}
