//! Time alignment checked by content, with real ffmpeg on synthetic rigs
//! (see `common/sync_rig.rs`): crops of one wide moving scene, and rotated
//! `v360` views of it, with clock errors injected by starting a camera's
//! clip later in the scene than its manifest says. The recovered offsets
//! must be exact to the frame, a 2-frame clock error must stitch as well as
//! no error, and what cannot be measured must keep the clock and say so.

mod common;

use std::path::Path;

use common::sync_rig::{self, FPS, H, OVERLAP, SyncRig, W};
use serde_json::Value;
use soccer_rig::base::ids::CameraId;
use soccer_rig::stitch::calibration::{Calibration, Cameras};
use soccer_rig::stitch::camera::Camera;

const BIN: &str = env!("CARGO_BIN_EXE_rig-stitch");
/// Frames in each camera's clip: 5 s.
const CLIP: u32 = 150;
/// Where each camera truly starts in the scene, frames (L, C, R).
const TRUE_START: [u32; 3] = [0, 6, 12];

fn json_of(out: &std::process::Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(out));
    serde_json::from_str(&common::stdout(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::stdout(out)))
}

/// A crop rig whose camera `i` starts `errors[i]` frames later in the scene
/// than its manifest says.
fn crop_rig(dir: &Path, scene: &Path, errors: [u32; 3], extra: &str) -> SyncRig {
    let rig = SyncRig::new(extra);
    for (i, cam) in CameraId::ALL.into_iter().enumerate() {
        let clip = sync_rig::crop_camera(dir, scene, cam, TRUE_START[i] + errors[i], CLIP);
        rig.add_camera(cam, &clip, &sync_rig::start_of(TRUE_START[i]), true);
    }
    rig
}

/// The plan of a dry run.
fn plan_of(rig: &SyncRig) -> Value {
    let report = json_of(&rig.stitch(BIN, &["--dry-run", "--json", sync_rig::SESSION]));
    report["plan"].clone()
}

/// A side camera's content offset to CAM_C, in whole frames.
fn content_frames(plan: &Value, i: usize) -> i64 {
    let row = &plan["sync"]["cameras"][i];
    let ms = row["content_offset_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("no content offset: {row}"));
    (ms * f64::from(FPS) / 1000.0).round() as i64
}

fn warnings(plan: &Value) -> Vec<String> {
    plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

/// Checks a plan against the truth: each side camera's offset exact to the
/// frame, the source used, and a disagreement warning exactly when the
/// clock is 2 or more frames off.
fn check_offsets(plan: &Value, errors: [u32; 3], label: &str) {
    let starts: Vec<i64> = (0..3)
        .map(|i| i64::from(TRUE_START[i] + errors[i]))
        .collect();
    for i in [0, 2] {
        let row = &plan["sync"]["cameras"][i];
        let cam = row["camera"].as_str().unwrap();
        assert_eq!(
            content_frames(plan, i),
            starts[i] - starts[1],
            "{label}: {cam}: {row}"
        );
        let error = i64::from(errors[i]) - i64::from(errors[1]);
        let used = if error == 0 { "confirmed" } else { "content" };
        assert_eq!(row["used"], used, "{label}: {row}");
        let warned = warnings(plan)
            .iter()
            .any(|w| w.starts_with(&format!("{cam}: its clock puts")));
        assert_eq!(warned, error.abs() >= 2, "{label}: {:?}", warnings(plan));
        assert!(row["peak"].as_f64().unwrap() > 0.5, "{label}: {row}");
    }
}

#[test]
fn crop_rig_offsets_are_exact_to_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let scene = sync_rig::crop_scene(dir.path(), 180);
    for errors in [
        [0, 0, 0],
        [0, 0, 1],
        [2, 0, 0],
        [0, 0, 5],
        [4, 0, 3],
        [0, 3, 0],
    ] {
        let rig = crop_rig(dir.path(), &scene, errors, "");
        let plan = plan_of(&rig);
        eprintln!("errors {errors:?}: {}", plan["sync"]);
        check_offsets(&plan, errors, &format!("errors {errors:?}"));
        // The plan skips by the content: every camera starts at the same
        // scene frame, the latest true start.
        let latest = (0..3).map(|i| TRUE_START[i] + errors[i]).max().unwrap();
        for (i, cam) in plan["cameras"].as_array().unwrap().iter().enumerate() {
            let first = TRUE_START[i] + errors[i] + cam["skipped_frames"].as_u64().unwrap() as u32;
            assert_eq!(first, latest, "errors {errors:?}: {cam}");
        }
    }
}

#[test]
fn rotated_rig_offsets_are_exact_to_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let scene = sync_rig::sphere_scene(dir.path(), 180);
    // Yaw +-60 degrees, 75 degree lenses: neighbours share 15 degrees, about
    // a fifth of each frame.
    let yaw = [-60.0, 0.0, 60.0];
    let views: Vec<_> = CameraId::ALL
        .into_iter()
        .enumerate()
        .map(|(i, cam)| sync_rig::view(dir.path(), &scene, cam, yaw[i], 75.0))
        .collect();
    for errors in [[0, 0, 0], [3, 0, 0], [2, 0, 4]] {
        let rig = SyncRig::new("");
        for (i, cam) in CameraId::ALL.into_iter().enumerate() {
            let first = TRUE_START[i] + errors[i];
            let clip = sync_rig::view_clip(dir.path(), &views[i], cam, first, CLIP);
            rig.add_camera(cam, &clip, &sync_rig::start_of(TRUE_START[i]), true);
        }
        let plan = plan_of(&rig);
        eprintln!("rotated, errors {errors:?}: {}", plan["sync"]);
        check_offsets(&plan, errors, &format!("rotated, errors {errors:?}"));
    }
}

#[test]
fn a_calibrated_rig_of_players_running_both_ways_is_exact_to_the_frame() {
    let dir = tempfile::tempdir().unwrap();
    let scene = sync_rig::players_scene(dir.path(), 180, 16);
    // Neighbours 45 degrees apart with 72-78 degree lenses share about 30
    // degrees: the frames' edge strips (a fifth of the width, 15 degrees)
    // would look at different azimuths, which a player crosses some frames
    // apart, earlier or later by the way it runs. The shared band does not.
    let cams = [
        Camera::nominal(-45.0, 72.0),
        Camera::nominal(0.0, 75.0),
        Camera::nominal(45.0, 78.0),
    ];
    let views: Vec<_> = CameraId::ALL
        .into_iter()
        .enumerate()
        .map(|(i, cam)| sync_rig::view(dir.path(), &scene, cam, cams[i].yaw_deg, cams[i].hfov_deg))
        .collect();
    let errors = [3, 0, 0];
    let rig = SyncRig::new("");
    for (i, cam) in CameraId::ALL.into_iter().enumerate() {
        let first = TRUE_START[i] + errors[i];
        let clip = sync_rig::view_clip(dir.path(), &views[i], cam, first, CLIP);
        rig.add_camera(cam, &clip, &sync_rig::start_of(TRUE_START[i]), false);
    }
    let mut cal = Calibration::nominal(60.0, 72.0);
    cal.cameras = Cameras::from_array(cams);
    cal.write(&rig.layout.calibration(&rig.session())).unwrap();
    let plan = plan_of(&rig);
    eprintln!("players, errors {errors:?}: {}", plan["sync"]);
    check_offsets(&plan, errors, &format!("players, errors {errors:?}"));
}

/// Luma PSNR of the band `x..x+OVERLAP` of the first `frames` panorama
/// frames against the scene from frame `first`.
fn seam_psnr(pano: &Path, scene: &Path, first: u32, x: u32, frames: u32) -> f64 {
    let cut = format!("crop={OVERLAP}:{H}:{x}:0,format=gray");
    let graph = format!(
        "[0:v]trim=end_frame={frames},setpts=PTS-STARTPTS,{cut}[a];\
         [1:v]trim=start_frame={first}:end_frame={},setpts=PTS-STARTPTS,{cut}[b];\
         [a][b]psnr",
        first + frames
    );
    sync_rig::lavfi_psnr(pano, scene, &graph).0
}

#[test]
fn a_two_frame_clock_error_stitches_as_well_as_none() {
    let dir = tempfile::tempdir().unwrap();
    let scene = sync_rig::crop_scene(dir.path(), 180);
    let seam = 2 * (W - OVERLAP);
    let stitch = |errors: [u32; 3], extra: &str| {
        let rig = crop_rig(dir.path(), &scene, errors, extra);
        let report = json_of(&rig.stitch(BIN, &["--json", sync_rig::SESSION]));
        // Panorama frame 0 is the scene's latest true start by the plan.
        let first = (0..3)
            .map(|i| {
                let c = &report["plan"]["cameras"][i];
                TRUE_START[i] + errors[i] + c["skipped_frames"].as_u64().unwrap() as u32
            })
            .max()
            .unwrap();
        seam_psnr(&rig.panorama(), &scene, first, seam, 120)
    };
    let aligned = stitch([0, 0, 0], "");
    let corrected = stitch([0, 0, 2], "");
    let clock_only = stitch([0, 0, 2], "  sync_mode: clock\n");
    eprintln!(
        "CAM_C|CAM_R seam PSNR: aligned {aligned:.2} dB, 2-frame clock error corrected by \
         content {corrected:.2} dB, trusted clock {clock_only:.2} dB"
    );
    assert!(
        (aligned - corrected).abs() <= 1.0,
        "{aligned} vs {corrected}"
    );
    // The control: the same error with the clock trusted is far worse, so
    // the comparison above can fail.
    assert!(clock_only < aligned - 3.0, "{clock_only} vs {aligned}");
}

#[test]
fn a_camera_without_ntp_is_found_beyond_the_usual_search() {
    let dir = tempfile::tempdir().unwrap();
    let scene = sync_rig::crop_scene(dir.path(), 380);
    // CAM_L's clock is 75 frames (2.5 s) wrong: beyond the +-2 s searched
    // for synced clocks, within the +-8 s searched for an unsynced one. The
    // clips last 10 s and 3 s windows are analysed, so the windows where
    // CAM_L's true frames cover CAM_C's are enough.
    let build = |ntp: bool| {
        let rig = SyncRig::new("  sync_window_sec: 3\n");
        for cam in CameraId::ALL {
            let first = if cam == CameraId::Left { 75 } else { 0 };
            let clip = sync_rig::crop_camera(dir.path(), &scene, cam, first, 300);
            let synced = ntp || cam != CameraId::Left;
            rig.add_camera(cam, &clip, &sync_rig::start_of(0), synced);
        }
        plan_of(&rig)
    };
    let plan = build(false);
    eprintln!("no NTP: {}", plan["sync"]);
    assert_eq!(content_frames(&plan, 0), 75, "{}", plan["sync"]);
    assert_eq!(plan["sync"]["cameras"][0]["search_ms"], 8000.0);
    assert_eq!(plan["sync"]["windows"].as_array().unwrap().len(), 3);
    let w = warnings(&plan);
    assert!(
        w.iter().any(|w| w
            == "CAM_L: clock was not NTP-synced while recording; aligned by the pictures instead"),
        "{w:?}"
    );
    assert!(
        w.iter().any(|w| w.starts_with("CAM_L: its clock puts")),
        "{w:?}"
    );
    assert_eq!(plan["cameras"][0]["skipped_frames"], 0);
    assert_eq!(plan["cameras"][1]["skipped_frames"], 75);

    // The same error on a clock that claims NTP: outside the search, so the
    // pictures cannot settle it; the clock is kept, with a warning.
    let plan = build(true);
    let row = &plan["sync"]["cameras"][0];
    assert_eq!(row["used"], "clock", "{row}");
    assert_eq!(row["content_offset_ms"], Value::Null);
    let w = warnings(&plan);
    assert!(
        w.iter()
            .any(|w| w.starts_with("CAM_L: the pictures do not settle")),
        "{w:?}"
    );
}

#[test]
fn a_still_scene_keeps_the_clocks_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    // One frame of the scene, held: nothing moves anywhere.
    let still = dir.path().join("still.mp4");
    let moving = sync_rig::crop_scene(dir.path(), 2);
    common::ffmpeg(&[
        "-i",
        moving.to_str().unwrap(),
        "-vf",
        "trim=end_frame=1,loop=loop=179:size=1,setpts=N/(30*TB)",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        still.to_str().unwrap(),
    ]);
    let rig = crop_rig(dir.path(), &still, [0, 0, 2], "");
    let plan = plan_of(&rig);
    for i in [0, 2] {
        let row = &plan["sync"]["cameras"][i];
        assert_eq!(row["used"], "clock", "{row}");
    }
    let w = warnings(&plan);
    for cam in ["CAM_L", "CAM_R"] {
        assert!(
            w.iter()
                .any(|w| w.starts_with(cam) && w.contains("kept the clock's offset")),
            "{w:?}"
        );
    }
    // The clocks alone decide: CAM_L skips 12 frames, CAM_C 6, CAM_R none.
    let skipped = common::skipped_frames(&plan);
    assert_eq!(skipped, [12, 6, 0]);
}
