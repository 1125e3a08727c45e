//! `rig-stitch calibrate SESSION`: each camera's geometry, exposure gain and
//! colour measured from the overlaps of the session's recordings, written as
//! the calibration file ([`super::calibration`]:
//! `sessions/S/stitched/calibration.json`, and the rig's copy
//! `processing/rig-calibration.json`, the next prior).
//!
//! Frames are sampled across the whole match (7 instants per camera),
//! scaled to at most 640 columns as gray, and reduced to a per-pixel
//! temporal median: players move, the pitch's texture and lines do not, so
//! the median is the static scene. [`super::align`] then fits the model,
//! starting from the prior: the rig's previous calibration when there is
//! one, else the nominal `processing.nominal_yaw_deg` and
//! `processing.nominal_hfov_deg`.
//!
//! A seam whose overlap has too little texture (median gradient below
//! [`TEXTURE_MIN`] gray levels per pixel), or whose fit does not make the
//! two views agree (NCC below [`NCC_MIN`]), is not trusted: its outer camera
//! keeps the prior's geometry, the seam's `status` says `fallback_prior`
//! and a warning says why. Only the exposure gain is still measured there.
//!
//! [`misfits`] puts a calibration made elsewhere (another session's, or
//! one written by hand) to the same test on a session's median images,
//! without fitting anything: the stitch warns when it no longer fits.

use std::path::Path;

use super::align::{self, Params, Problem};
use super::calibration::{Calibration, Cameras, SEAM_NAMES, Seam};
use super::camera::Camera;
use super::colour::{self, Planes};
use super::colour_frames::{self, Sampling};
use super::image::Gray;
use super::{CameraInput, StitchError, StitchSettings, load_inputs};
use crate::base::ffmpeg;
use crate::base::fsx;
use crate::base::ids::SessionId;
use crate::base::layout::ServerLayout;

/// Median gradient (gray levels per pixel) below which a seam is too flat
/// to calibrate.
pub const TEXTURE_MIN: f64 = 1.0;
/// NCC below which a fitted seam is not believed.
pub const NCC_MIN: f64 = 0.8;
/// Frames sampled per camera.
const SAMPLES: usize = 7;
/// Widest frame calibration looks at.
const CALIB_WIDTH: u32 = 640;
/// The prior for a session: the rig's last calibration, else nominal.
pub fn prior(layout: &ServerLayout, settings: &StitchSettings) -> Calibration {
    let path = layout.rig_calibration();
    if path.exists() {
        match Calibration::read(&path) {
            Ok(mut c) => {
                c.prior = path.display().to_string();
                return c;
            }
            Err(e) => log::warn!("{e}; starting from the nominal rig instead"),
        }
    }
    Calibration::nominal(settings.nominal_yaw_deg, settings.nominal_hfov_deg)
}

/// `rig-stitch calibrate SESSION`: measures, writes both files, returns
/// the calibration.
pub fn calibrate_session(
    layout: &ServerLayout,
    session: &SessionId,
    settings: &StitchSettings,
) -> Result<Calibration, StitchError> {
    let inputs = load_inputs(layout, session, settings)?;
    let start = prior(layout, settings);
    log::info!("{session}: calibrating from prior {}", start.prior);
    let samplings = samplings(&inputs, settings);
    let images = median_images(&samplings)?;
    let mut cal = solve(&images, &start);
    let dir = layout.stitched_dir(session);
    std::fs::create_dir_all(&dir).map_err(|e| StitchError::Io(fsx::with_path(&dir)(e)))?;
    let planes: Vec<Planes> = samplings
        .iter()
        .map(|s| colour_frames::median_planes(s, &dir))
        .collect::<Result<_, _>>()?;
    if let Ok(planes) = <[Planes; 3]>::try_from(planes) {
        colour::attach(&mut cal, &planes);
    }
    cal.session_id = Some(session.to_string());
    for w in &cal.warnings {
        log::warn!("{session}: {w}");
    }
    cal.write(&layout.calibration(session))?;
    cal.write(&layout.rig_calibration())?;
    Ok(cal)
}

/// The seams of `inputs` that `cal` does not fit: textured overlaps whose
/// views disagree under it (NCC below [`NCC_MIN`], on the same median
/// images `calibrate` fits), each as its name and NCC. A rig is
/// re-erected every match, so a calibration made for another session (or
/// by hand) is checked before it is trusted.
pub fn misfits(
    inputs: &[CameraInput],
    settings: &StitchSettings,
    cal: &Calibration,
) -> Result<Vec<(&'static str, f64)>, StitchError> {
    let images = median_images(&samplings(inputs, settings))?;
    let sharp: Vec<Gray> = images.iter().map(|g| g.blur(0.7)).collect();
    let fine = fine_problem(&sharp, cal.cameras.array());
    let p = Params::from_cameras(&fine.prior, [cal.gains[0], cal.gains[2]]);
    Ok((0..2)
        .filter(|&s| seam_texture(&fine, &p, s) >= TEXTURE_MIN)
        .filter_map(|s| {
            let (ncc, n) = fine.seam_ncc(&p, s);
            // Views that hardly overlap under `cal` do not agree at all.
            let ncc = if n < MIN_SAMPLES { 0.0 } else { ncc };
            (ncc < NCC_MIN).then_some((SEAM_NAMES[s], ncc))
        })
        .collect())
}

/// Overlap samples below which two views cannot be said to agree.
const MIN_SAMPLES: usize = 100;

/// Each camera's [`sampling`].
fn samplings<'a>(inputs: &'a [CameraInput], settings: &'a StitchSettings) -> Vec<Sampling<'a>> {
    inputs
        .iter()
        .map(|i| sampling(&settings.ffmpeg, &i.recording, &i.probe))
        .collect()
}

/// The three cameras' [`gray_median`]s.
fn median_images(samplings: &[Sampling]) -> Result<[Gray; 3], StitchError> {
    let images: Vec<Gray> = samplings
        .iter()
        .map(gray_median)
        .collect::<Result<_, _>>()?;
    images
        .try_into()
        .map_err(|_| StitchError::Geometry("need three cameras".into()))
}

/// What to sample of one recording: [`SAMPLES`] instants spread over it,
/// at most [`CALIB_WIDTH`] columns.
fn sampling<'a>(ffmpeg: &'a Path, file: &'a Path, probe: &ffmpeg::Probe) -> Sampling<'a> {
    let (w, h) = (probe.width, probe.height);
    let cw = CALIB_WIDTH.min(w) / 2 * 2;
    let ch = ((h as f64 * cw as f64 / w as f64 / 2.0).round() as u32 * 2).max(2);
    let dur = probe.duration_sec.max(0.1);
    Sampling {
        ffmpeg,
        file,
        at: (0..SAMPLES)
            .map(|k| dur * (k as f64 + 0.5) / SAMPLES as f64)
            .collect(),
        size: (cw, ch),
    }
}

/// The per-pixel median of `s`'s frames as gray.
fn gray_median(s: &Sampling) -> Result<Gray, StitchError> {
    let (w, h) = s.size;
    let frames =
        s.at.iter()
            .map(|&t| ffmpeg::gray_frame(s.ffmpeg, s.file, t, w, h))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StitchError::Io)?;
    Ok(Gray::median_of(w as usize, h as usize, &frames))
}

/// The parameters to solve: both gains always; the common FOV only when
/// both seams have texture; each textured seam's own parameters.
fn free_params(flat: [bool; 2]) -> Vec<usize> {
    let mut free: Vec<usize> = vec![12, 13];
    if !flat[0] && !flat[1] {
        free.push(0);
    }
    for (s, &is_flat) in flat.iter().enumerate() {
        if !is_flat {
            free.extend(align::seam_params(s));
        }
    }
    free
}

/// The searches of one pyramid level before its refinement: the yaws on
/// the coarsest, the FOV on levels 2 and 3 (when it is free).
fn level_search(
    problem: &Problem,
    mut p: Params,
    level: usize,
    free: &[usize],
    flat: &[bool; 2],
) -> Params {
    if level == 0 {
        p = yaw_search(problem, p, flat);
    }
    if level == 2 && free.contains(&0) {
        p = fov_scan(problem, p, free, 0.5);
    }
    if level == 3 && free.contains(&0) {
        p = fov_scan(problem, p, free, 0.125);
    }
    p
}

/// Fits the model to three median images, starting from `start`.
#[allow(clippy::needless_range_loop)]
pub fn solve(images: &[Gray; 3], start: &Calibration) -> Calibration {
    let prior = start.cameras.array();
    let f = prior[1].focal(images[1].w as f64);
    let aspect = images[1].h as f64 / images[1].w as f64;
    let sharp: Vec<Gray> = images.iter().map(|g| g.blur(0.7)).collect();
    let rays =
        |cams: &[Camera; 3], step| [0, 1].map(|s| align::seam_rays(cams, s, f, aspect, step, 4.0));
    let p0 = Params::from_cameras(&prior, [start.gains[0], start.gains[2]]);
    let fine = fine_problem(&sharp, prior);
    let texture = [0, 1].map(|s| seam_texture(&fine, &p0, s));
    let flat = texture.map(|t| t < TEXTURE_MIN);
    let free = free_params(flat);
    let mut p = p0;
    for (level, (sigma, step)) in [(8.0, 4.0), (4.0, 4.0), (2.0, 3.0), (1.0, 2.0), (0.0, 2.0)]
        .iter()
        .enumerate()
    {
        let blurred: Vec<Gray> = sharp.iter().map(|g| g.blur(*sigma)).collect();
        let cams = p.cameras(&prior);
        let problem = Problem {
            images: [&blurred[0], &blurred[1], &blurred[2]],
            rays: rays(&cams, *step),
            prior,
        };
        p = level_search(&problem, p, level, &free, &flat);
        p = problem.refine(p, &free, if *sigma <= 1.0 { 60 } else { 15 });
    }
    finish(start, &fine, p0, p, texture, flat)
}

/// The full-resolution problem of `sharp` (three images, slightly
/// blurred) around `prior`: the seams' rays every 2 pixels.
fn fine_problem(sharp: &[Gray], prior: [Camera; 3]) -> Problem<'_> {
    let f = prior[1].focal(sharp[1].w as f64);
    let aspect = sharp[1].h as f64 / sharp[1].w as f64;
    Problem {
        images: [&sharp[0], &sharp[1], &sharp[2]],
        rays: [0, 1].map(|s| align::seam_rays(&prior, s, f, aspect, 2.0, 4.0)),
        prior,
    }
}

/// The best yaw and pitch of each outer camera within 6 and 4 degrees of
/// `p`'s, by NCC.
#[allow(clippy::needless_range_loop)]
fn yaw_search(problem: &Problem, mut p: Params, flat: &[bool; 2]) -> Params {
    for seam in 0..2 {
        if flat[seam] {
            continue;
        }
        let i = align::seam_params(seam).start;
        let (yaw, pitch) = (p.0[i], p.0[i + 1]);
        let mut best = (f64::MIN, yaw, pitch);
        for k in -12..=12 {
            for j in -8..=8 {
                let mut q = p;
                q.0[i] = yaw + k as f64 * 0.5;
                q.0[i + 1] = pitch + j as f64 * 0.5;
                let (ncc, n) = problem.seam_ncc(&q, seam);
                if n > 100 && ncc > best.0 {
                    best = (ncc, q.0[i], q.0[i + 1]);
                }
            }
        }
        (p.0[i], p.0[i + 1]) = (best.1, best.2);
    }
    p
}

/// CAM_C's FOV is the weakly seen direction (a common scale of all FOVs
/// and yaws fits narrow overlaps almost as well, and the fit can stall on
/// the way): tries it either side of `p`'s, each with the
/// rest refitted, and keeps the lowest residual (in `step` degrees, 8 steps
/// either side).
fn fov_scan(problem: &Problem, p: Params, free: &[usize], step: f64) -> Params {
    let others: Vec<usize> = free.iter().copied().filter(|&i| i != 0).collect();
    let mut best = (f64::MAX, p);
    let n = if step < 0.5 { 4 } else { 8 };
    for k in -n..=n {
        let mut q = p;
        q.0[0] = p.0[0] + k as f64 * step;
        let q = problem.refine(q, &others, 8);
        let cost = problem.seam_rms(&q, 0).powi(2) + problem.seam_rms(&q, 1).powi(2);
        if cost < best.0 {
            best = (cost, q);
        }
    }
    best.1
}

/// Median gradient over a seam's rays in both images, the smaller.
fn seam_texture(problem: &Problem, p: &Params, seam: usize) -> f64 {
    let cams = p.cameras(&problem.prior);
    let mut out = f64::INFINITY;
    for i in [seam, seam + 1] {
        let img = problem.images[i];
        let rot = cams[i].rotation();
        let mut g: Vec<f64> = problem.rays[seam]
            .iter()
            .filter_map(|ray| {
                let (x, y) = cams[i].project(&rot, *ray, img.w as f64, img.h as f64)?;
                img.gradient(x, y)
            })
            .collect();
        if g.is_empty() {
            return 0.0;
        }
        g.sort_by(f64::total_cmp);
        out = out.min(g[g.len() / 2]);
    }
    out
}

/// Checks each seam, falls back where it must, and builds the file.
#[allow(clippy::needless_range_loop)]
fn finish(
    start: &Calibration,
    fine: &Problem,
    p0: Params,
    mut p: Params,
    texture: [f64; 2],
    flat: [bool; 2],
) -> Calibration {
    let (fell_back, warnings) = judge_seams(start, fine, &p, texture, flat);
    for s in (0..2).filter(|&s| fell_back[s]) {
        for i in align::seam_params(s).chain([0, 1]) {
            p.0[i] = p0.0[i];
        }
    }
    if fell_back.iter().any(|b| *b) {
        p = fine.refine(p, &[12, 13], 10);
    }
    let seams = (0..2)
        .map(|s| seam_record(fine, &p, &p0, s, texture[s], fell_back[s]))
        .collect();
    let cams = p.cameras(&fine.prior).map(|c| Camera {
        yaw_deg: round(c.yaw_deg, 4),
        pitch_deg: round(c.pitch_deg, 4),
        roll_deg: round(c.roll_deg, 4),
        hfov_deg: round(c.hfov_deg, 4),
        k1: round(c.k1, 5),
        k2: c.k2,
    });
    Calibration {
        projection: "cylindrical".into(),
        reference: "CAM_C".into(),
        session_id: None,
        prior: start.prior.clone(),
        cameras: Cameras::from_array(cams),
        gains: p.gains().map(|g| round(g, 4)),
        chroma: None,
        seams,
        warnings,
    }
}

/// The seams that fall back to the prior (too flat, or the fit does not
/// make the views agree), with a warning for each.
fn judge_seams(
    start: &Calibration,
    fine: &Problem,
    p: &Params,
    texture: [f64; 2],
    flat: [bool; 2],
) -> ([bool; 2], Vec<String>) {
    let mut warnings = Vec::new();
    let mut fell_back = flat;
    for s in 0..2 {
        let (ncc, _) = fine.seam_ncc(p, s);
        if flat[s] {
            warnings.push(format!(
                "seam {}: too little texture to calibrate (median gradient {:.2} < {TEXTURE_MIN}); \
                 kept the prior's geometry ({})",
                SEAM_NAMES[s], texture[s], start.prior
            ));
        } else if ncc < NCC_MIN {
            fell_back[s] = true;
            warnings.push(format!(
                "seam {}: the fit does not make the views agree (NCC {ncc:.3} < {NCC_MIN}); \
                 kept the prior's geometry ({})",
                SEAM_NAMES[s], start.prior
            ));
        }
    }
    (fell_back, warnings)
}

/// Seam `s`'s entry in the calibration file: status and residuals.
fn seam_record(
    fine: &Problem,
    p: &Params,
    p0: &Params,
    s: usize,
    texture: f64,
    fell_back: bool,
) -> Seam {
    let (ncc, samples) = fine.seam_ncc(p, s);
    Seam {
        between: SEAM_NAMES[s].into(),
        status: if fell_back {
            "fallback_prior"
        } else {
            "calibrated"
        }
        .into(),
        texture: round(texture, 3),
        samples,
        ncc: round(ncc, 4),
        rms: round(fine.seam_rms(p, s), 3),
        rms_prior: round(fine.seam_rms(p0, s), 3),
        uv_rms: None,
        uv_rms_gain_only: None,
    }
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}
