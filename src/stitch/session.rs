//! One session's stitch, with no queue: plan, encode to a temp name, verify,
//! rename.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::base::ffmpeg;
use crate::base::fsx::{self, AtomicFile};
use crate::base::ids::SessionId;
use crate::base::layout::ServerLayout;

use super::error::StitchError;
use super::graph::ffmpeg_args;
use super::plan::{CameraInput, Plan, load_inputs, plan_aligned};
use super::run::{StitchProgress, run_fed_ffmpeg, run_ffmpeg};
use super::settings::StitchSettings;
use super::warp::Warp;
use super::{calibrate, calibrated, calibration};

/// Stitches a session's panorama now, with no queue involved: plan, encode
/// to a temp name in `stitched/`, verify, rename. `on_progress` sees the
/// encode's progress.
pub fn stitch_session(
    layout: &ServerLayout,
    session: &SessionId,
    settings: &StitchSettings,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(StitchProgress),
) -> Result<(PathBuf, Plan, f64), StitchError> {
    let plan = plan_session(layout, session, settings, cancel)?;
    log_plan(session, &plan);
    let target = layout.panorama(session);
    remove_stale_temps(&layout.stitched_dir(session));
    let temp = AtomicFile::create(&target)?;
    let started = Instant::now();
    encode(&plan, settings, temp.temp_path(), cancel, on_progress)?;
    let elapsed = started.elapsed().as_secs_f64();
    check_output(session, &plan, settings, temp.temp_path())?;
    temp.commit()?;
    if let Some(geo) = &plan.geometry {
        calibrated::write_record(&layout.panorama_record(session), &plan, geo)?;
    }
    Ok((target, plan, elapsed))
}

/// Writes the plan's panorama to `output`: one ffmpeg command, or, with a
/// calibration, the decoders, the warp and the encoder.
fn encode(
    plan: &Plan,
    settings: &StitchSettings,
    output: &Path,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(StitchProgress),
) -> Result<(), StitchError> {
    let args = ffmpeg_args(plan, settings, output);
    let (ffmpeg, duration) = (&settings.ffmpeg, plan.duration_sec);
    let Some(geo) = &plan.geometry else {
        return run_ffmpeg(ffmpeg, &args, duration, cancel, on_progress);
    };
    let warp = Warp::new(plan, geo);
    let feed = |stdin| warp.feed(ffmpeg, stdin, cancel);
    run_fed_ffmpeg(ffmpeg, &args, feed, duration, cancel, on_progress)
}

/// Logs the plan's warnings and how much each camera skips.
fn log_plan(session: &SessionId, plan: &Plan) {
    for w in &plan.warnings {
        log::warn!("{session}: {w}");
    }
    log::info!(
        "{session}: aligning to {}; {}",
        plan.common_start,
        plan.cameras
            .iter()
            .map(|c| format!("{} skips {:.3} ms", c.camera, c.applied_ms))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// The encoded panorama has the planned size (else an error); a length off
/// the plan by more than a frame and a half is logged.
fn check_output(
    session: &SessionId,
    plan: &Plan,
    settings: &StitchSettings,
    made_path: &Path,
) -> Result<(), StitchError> {
    let made = ffmpeg::probe(&settings.ffprobe, made_path)
        .map_err(|e| StitchError::BadOutput(e.to_string()))?;
    if (made.width, made.height) != (plan.output_width, plan.output_height) {
        return Err(StitchError::BadOutput(format!(
            "ffmpeg wrote {}x{}, the plan was {}x{}",
            made.width, made.height, plan.output_width, plan.output_height
        )));
    }
    if (made.duration_sec - plan.duration_sec).abs() > 1.5 / plan.fps {
        log::warn!(
            "{session}: panorama lasts {:.3} s, planned {:.3} s (an input may end early or \
             be damaged)",
            made.duration_sec,
            plan.duration_sec
        );
    }
    Ok(())
}

/// Loads the inputs, aligns them in time ([`plan_aligned`]) and plans the
/// session's stitch, calibrated when a
/// calibration applies ([`calibrated::calibration_for`]).
pub fn plan_session(
    layout: &ServerLayout,
    session: &SessionId,
    settings: &StitchSettings,
    cancel: &AtomicBool,
) -> Result<Plan, StitchError> {
    let inputs = load_inputs(layout, session, settings)?;
    let calibration = match calibrated::calibration_for(layout, session, settings) {
        Some(path) => {
            let cal = calibration::Calibration::read(&path)?;
            Some((path, cal))
        }
        None => None,
    };
    let rig = calibration.as_ref().map(|(_, cal)| cal.cameras.array());
    let mut plan = plan_aligned(session, &inputs, settings, rig.as_ref(), cancel)?;
    if let Some((path, cal)) = calibration {
        log::info!("{session}: stitching with calibration {}", path.display());
        if cal.session_id.as_deref() != Some(session.as_str()) {
            plan.warnings
                .extend(fit_warnings(session, &inputs, settings, &path, &cal));
        }
        calibrated::apply(&mut plan, &path, cal, settings)?;
    }
    Ok(plan)
}

/// The warnings for a calibration made for another session (or by hand)
/// that does not fit this session's pictures ([`calibrate::misfits`]).
fn fit_warnings(
    session: &SessionId,
    inputs: &[CameraInput],
    settings: &StitchSettings,
    path: &Path,
    cal: &calibration::Calibration,
) -> Vec<String> {
    match calibrate::misfits(inputs, settings, cal) {
        Ok(seams) => seams
            .into_iter()
            .map(|(seam, ncc)| {
                format!(
                    "seam {seam}: calibration {} does not fit this session's pictures (NCC \
                     {ncc:.3} < {}): the rig has moved since; run `rig-stitch calibrate {session}`",
                    path.display(),
                    calibrate::NCC_MIN
                )
            })
            .collect(),
        Err(e) => vec![format!(
            "could not check that calibration {} fits this session: {e}",
            path.display()
        )],
    }
}

/// Removes `.rig-tmp-*` leftovers of a crashed run from a session's
/// `stitched/` folder. Only called by the holder of the session's job.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(fsx::TEMP_PREFIX)
        {
            match std::fs::remove_file(e.path()) {
                Ok(()) => log::info!("removed {} left by an earlier run", e.path().display()),
                Err(err) => log::warn!("cannot remove {}: {err}", e.path().display()),
            }
        }
    }
}
