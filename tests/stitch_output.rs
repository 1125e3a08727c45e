//! What rig-stitch writes and with what: the playable size rule, a
//! configured hardware encoder that does not work here (this machine has no
//! GPU: `h264_nvenc` must fall back to libx264 with a warning), and the
//! progress line when stderr is not a terminal.

mod common;

use common::sync_rig::{self, FPS, SyncRig};
use serde_json::Value;
use soccer_rig::base::ids::CameraId;

const BIN: &str = env!("CARGO_BIN_EXE_rig-stitch");

fn json_of(out: &std::process::Output) -> Value {
    assert_eq!(out.status.code(), Some(0), "{}", common::stderr(out));
    serde_json::from_str(&common::stdout(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::stdout(out)))
}

/// A rig of three `w`x180 testsrc cameras, 1 s, started together.
fn rig_of(dir: &std::path::Path, w: u32, extra: &str) -> SyncRig {
    let rig = SyncRig::new(extra);
    for cam in CameraId::ALL {
        let clip = common::make_clip(dir, &format!("{cam}.mp4"), "libx264", 1.0, w, 180, FPS);
        rig.add_camera(cam, &clip, &sync_rig::start_of(0), true);
    }
    rig
}

#[test]
fn panoramas_are_as_large_as_common_decoders_play() {
    let dir = tempfile::tempdir().unwrap();
    // 3 x 1600 - 2 x 64 = 4672 columns: over H.264's 4096, under HEVC's 8192.
    let rig = rig_of(dir.path(), 1600, "");
    let report = json_of(&rig.stitch(BIN, &["--json", sync_rig::SESSION]));
    let plan = &report["plan"];
    assert_eq!(plan["panorama_width"], 4672);
    assert_eq!(
        (
            plan["output_width"].as_u64(),
            plan["output_height"].as_u64()
        ),
        (Some(4096), Some(158))
    );
    let rule = plan["output_rule"].as_str().unwrap();
    assert!(
        rule.contains("4096x2304") && rule.contains("36864 macroblocks"),
        "{rule}"
    );
    let probe = common::ffprobe_json(&rig.panorama());
    assert_eq!(probe["streams"][0]["width"], 4096);
    assert_eq!(probe["streams"][0]["height"], 158);

    // HEVC keeps every column; output_width still caps either.
    let hevc = SyncRig::new("  output_codec: h265\n");
    let capped = SyncRig::new("  output_codec: h265\n  output_width: 2000\n");
    for (r, width) in [(&hevc, 4672), (&capped, 2000)] {
        for cam in CameraId::ALL {
            let clip = dir.path().join(format!("{cam}.mp4"));
            r.add_camera(cam, &clip, &sync_rig::start_of(0), true);
        }
        let plan =
            json_of(&r.stitch(BIN, &["--dry-run", "--json", sync_rig::SESSION]))["plan"].clone();
        assert_eq!(plan["output_width"], width, "{}", plan["output_rule"]);
        assert_eq!(plan["encoder"], "libx265");
    }
}

#[test]
fn a_hardware_encoder_that_does_not_work_falls_back_to_software() {
    let dir = tempfile::tempdir().unwrap();
    let rig = rig_of(dir.path(), 320, "  output_codec: h264_nvenc\n");
    let out = rig.stitch(BIN, &["--json", sync_rig::SESSION]);
    let report = json_of(&out);
    let plan = &report["plan"];
    assert_eq!(plan["encoder"], "libx264", "{plan}");
    let warned: Vec<&str> = plan["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .filter(|w| {
            w.starts_with("processing.output_codec h264_nvenc: the encoder does not work here")
        })
        .collect();
    assert_eq!(warned.len(), 1, "{plan}");
    assert!(
        warned[0].ends_with("encoding with libx264 instead (slower)"),
        "{}",
        warned[0]
    );
    // The warning is logged too, and the panorama is a real H.264 file.
    assert!(
        common::stderr(&out).contains("h264_nvenc"),
        "{}",
        common::stderr(&out)
    );
    let probe = common::ffprobe_json(&rig.panorama());
    assert_eq!(probe["streams"][0]["codec_name"], "h264");
    assert_eq!(probe["streams"][0]["width"], 3 * 320 - 2 * 64);
    // Not a terminal: progress goes to the log as lines with the elapsed
    // time (and an ETA once there is a pace to go by).
    let err = common::stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains("GAME_20240315_140000:") && l.contains("fps  elapsed")),
        "{err}"
    );
    assert!(!err.contains('\r'), "no carriage returns in a log");
}
