//! `rig-record --test`: a short recording into a scratch directory, judged
//! check by check (see [`super::SELF_TEST_CHECKS`]).

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::guards::{check_duration, check_storage};
use super::{
    Check, RecordError, RecordOptions, Recorded, SELF_TEST_DIR_PREFIX, SELF_TEST_DURATION_SEC,
    SelfTest, capture_settings, record, sustain,
};
use crate::base::checksum;
use crate::base::config::Config;
use crate::base::ffmpeg;
use crate::base::ids::SessionId;
use crate::base::manifest::Manifest;

/// `rig-record --test`: records `--duration` (default 10 s) from the
/// configured source into a scratch directory under the storage root,
/// checks the result, and removes the scratch directory.
pub fn self_test(
    config: &Config,
    opts: &RecordOptions,
    stop: &AtomicBool,
) -> Result<SelfTest, RecordError> {
    let duration = check_duration(opts.duration_sec.unwrap_or(SELF_TEST_DURATION_SEC))?;
    check_storage(&config.node.storage_root)?;
    let scratch = scratch_dir(config)?;
    let cfg = scratch_config(config, scratch.path());
    let test_opts = RecordOptions {
        session: Some(test_session()?),
        camera: opts.camera,
        duration_sec: Some(duration),
        source: opts.source.clone(),
        self_test: false,
    };
    let started = Instant::now();
    let recorded = match record(&cfg, &test_opts, stop) {
        Ok(r) => r,
        Err(e) if e.code == "invalid_config" => return Err(e),
        Err(e) => {
            let keeps_up = e.encoded.filter(|m| m.frames > 0).map(|mut m| {
                m.wall_sec = started.elapsed().as_secs_f64();
                let encoder = capture_settings(&cfg, Some(duration)).encoder_name();
                sustain::keeps_up(&cfg.recording, &encoder, &m)
            });
            return Ok(SelfTest::not_recorded(&e, keeps_up));
        }
    };
    let wall_sec = started.elapsed().as_secs_f64();
    Ok(SelfTest {
        checks: judge(&cfg, &recorded, duration, wall_sec),
    })
}

/// A fresh scratch directory under the storage root (removed on drop).
fn scratch_dir(config: &Config) -> Result<tempfile::TempDir, RecordError> {
    tempfile::Builder::new()
        .prefix(SELF_TEST_DIR_PREFIX)
        .tempdir_in(&config.node.storage_root)
        .map_err(|e| {
            RecordError::new(
                "storage_not_writable",
                format!(
                    "{}: cannot make a scratch directory: {e}",
                    config.node.storage_root.display()
                ),
            )
            .because(e)
        })
}

/// The config recording into `scratch`, with no offload after the stop.
fn scratch_config(config: &Config, scratch: &std::path::Path) -> Config {
    let mut cfg = config.clone();
    cfg.node.storage_root = scratch.to_path_buf();
    cfg.offload.upload_on_record_stop = false;
    cfg
}

/// `RIGTEST_YYYYMMDD_HHMMSS` from the local clock.
fn test_session() -> Result<SessionId, RecordError> {
    SessionId::parse(&format!(
        "RIGTEST_{}",
        jiff::Zoned::now().strftime("%Y%m%d_%H%M%S")
    ))
    .map_err(|e| RecordError::new("capture_failed", e.to_string()).because(e))
}

/// The self test's checks on a finished scratch recording, in the order of
/// [`super::SELF_TEST_CHECKS`].
fn judge(config: &Config, r: &Recorded, duration: f64, wall_sec: f64) -> Vec<Check> {
    let measured = sustain::Measured {
        measured_fps: r.measured_fps,
        frames: r.frames,
        dropped: r.dropped_frames,
        wall_sec,
    };
    let encoder = capture_settings(config, Some(duration)).encoder_name();
    let mut checks = frame_checks(config.recording.fps, r, duration);
    checks.push(sustain::keeps_up(&config.recording, &encoder, &measured));
    checks.push(file_playable(config, r, duration));
    checks.push(checksum_ok(r));
    checks.push(manifest_valid(r));
    checks
}

/// `frames written`, `dropped frames` and `fps reached`.
fn frame_checks(fps: u32, r: &Recorded, duration: f64) -> Vec<Check> {
    let expected = (duration * f64::from(fps)).round() as u64;
    let fps_reached = match r.measured_fps {
        Some(m) => Check {
            name: "fps reached",
            pass: m >= 0.95 * f64::from(fps),
            detail: format!("{m:.2} fps sustained, {fps} configured"),
        },
        None => Check {
            name: "fps reached",
            pass: false,
            detail: "too few progress reports to measure".into(),
        },
    };
    vec![
        Check {
            name: "frames written",
            pass: r.frames + 2 >= expected && r.frames > 0,
            detail: format!("{} frames, {expected} expected", r.frames),
        },
        Check {
            name: "dropped frames",
            pass: r.dropped_frames == 0,
            detail: format!("{} dropped", r.dropped_frames),
        },
        fps_reached,
    ]
}

/// `file playable`: ffprobe reads the configured size, rate, codec and
/// duration (within two frames).
fn file_playable(config: &Config, r: &Recorded, duration: f64) -> Check {
    let fps = config.recording.fps;
    let frame = 1.0 / f64::from(fps);
    let p = match ffmpeg::probe(&config.processing.ffprobe_path, &r.video_path) {
        Ok(p) => p,
        Err(e) => {
            return Check {
                name: "file playable",
                pass: false,
                detail: e.to_string(),
            };
        }
    };
    let r_cfg = &config.recording;
    let ok = p.width == r_cfg.width
        && p.height == r_cfg.height
        && p.fps == fps
        && p.codec == r_cfg.codec
        && (p.duration_sec - duration).abs() <= 2.0 * frame + 1e-6;
    Check {
        name: "file playable",
        pass: ok,
        detail: format!(
            "{} {}x{} {} fps {:.3} s (configured {} {}x{} {fps} fps {duration} s)",
            p.codec,
            p.width,
            p.height,
            p.fps,
            p.duration_sec,
            r_cfg.codec,
            r_cfg.width,
            r_cfg.height
        ),
    }
}

/// `checksum ok`: a second read of the file gives the digest written, which
/// is the manifest's.
fn checksum_ok(r: &Recorded) -> Check {
    match checksum::hash_file(&r.video_path) {
        Ok(d) => Check {
            name: "checksum ok",
            pass: d == r.digest && d.sha256 == r.manifest.checksum.value,
            detail: format!(
                "re-read {} bytes: {}, written: {}",
                d.size, d.sha256, r.manifest.checksum.value
            ),
        },
        Err(e) => Check {
            name: "checksum ok",
            pass: false,
            detail: e.to_string(),
        },
    }
}

/// `manifest valid`: the manifest reads back and nothing went wrong.
fn manifest_valid(r: &Recorded) -> Check {
    match Manifest::read(&r.manifest_path) {
        Ok(_) => Check {
            name: "manifest valid",
            pass: r.problems.is_empty(),
            detail: if r.problems.is_empty() {
                r.manifest_path.display().to_string()
            } else {
                r.problems.join("; ")
            },
        },
        Err(e) => Check {
            name: "manifest valid",
            pass: false,
            detail: e.to_string(),
        },
    }
}
