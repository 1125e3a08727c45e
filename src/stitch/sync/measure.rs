//! Reading the windows, measuring each side camera's offset, and applying
//! the result to the inputs.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    ANALYSIS_WIDTH, CameraSync, Curve, MAX_SECOND_RATIO, MIN_PEAK, Meter, Peak, SYNC_POINTS,
    SeamStrips, Strip, StripRule, SyncMode, SyncReport, SyncSettings, SyncSource, SyncWindow,
    UNSYNCED_SEARCH_FACTOR, edge_strips, find_peak, high_pass, ncc_at, shared_strips,
};
use crate::base::ffmpeg::frames::{self, FramesError, GrayWindow};
use crate::stitch::CameraInput;

/// Shortest common span (CAM_C frames) worth analysing.
const MIN_SPAN_FRAMES: i64 = 20;

/// The frame geometry shared by all cameras' gray frames.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    fps: f64,
    width: u32,
    height: u32,
    /// What each seam meters (see [`super::strips`]).
    seams: SeamStrips,
}

/// One side camera as the measurement sees it.
#[derive(Debug, Clone, Copy)]
struct Side {
    /// Index into the inputs (0 CAM_L, 2 CAM_R).
    index: usize,
    /// Clock offset to CAM_C in CAM_C frames, rounded.
    clock_frames: i64,
    /// Lags searched either side, frames.
    reach: i64,
}

/// Measures CAM_L's and CAM_R's offsets to CAM_C (`inputs` are L, C, R).
/// `rule` says which strips of the frames each seam meters. Never fails: what cannot be measured keeps the clock, with a
/// warning. Stops reading early once `cancel` is set (the caller checks it).
pub fn measure(
    ffmpeg: &Path,
    inputs: &[CameraInput],
    rule: &StripRule,
    s: &SyncSettings,
    cancel: &AtomicBool,
) -> SyncReport {
    let mut report = clock_report(inputs, s);
    let center = &inputs[1];
    let geo = geometry(center, rule, &mut report.warnings);
    let sides = [0, 2].map(|index| side(inputs, index, geo.fps, s));
    let windows = windows(inputs, &sides, geo.fps, s.window_sec);
    if windows.is_empty() {
        report.warnings.push(
            "content alignment skipped: the recordings share too little time to \
             analyse; kept the clocks' offsets"
                .to_string(),
        );
        return report;
    }
    report.windows = windows.clone();
    let reader = Reader { ffmpeg, cancel };
    match curves(&reader, inputs, &sides, &windows, geo) {
        Ok(curves) => {
            for (side, curve) in sides.iter().zip(curves) {
                let mean = Curve::mean(&curve);
                if let Some(c) = &mean {
                    log_curve(&inputs[side.index], c);
                }
                let peak = mean.as_ref().and_then(find_peak);
                decide(&mut report, side, peak, geo.fps);
            }
        }
        Err(e) => report.warnings.push(format!(
            "content alignment failed ({e}); kept the clocks' offsets"
        )),
    }
    report
}

/// The correlation curve at debug level, for a person checking a verdict.
fn log_curve(c: &CameraInput, curve: &Curve) {
    let values: Vec<String> = curve
        .values
        .iter()
        .map(|v| v.map_or("-".to_string(), |v| format!("{v:.2}")))
        .collect();
    log::debug!(
        "{}: correlation by lag from {}: {}",
        c.camera,
        curve.first_lag,
        values.join(" ")
    );
}

/// Where frames come from, and when to stop reading them.
#[derive(Clone, Copy)]
struct Reader<'a> {
    ffmpeg: &'a Path,
    cancel: &'a AtomicBool,
}

/// The report before any measurement: every camera on its clock.
fn clock_report(inputs: &[CameraInput], s: &SyncSettings) -> SyncReport {
    let center = &inputs[1];
    let cameras = inputs
        .iter()
        .enumerate()
        .map(|(i, c)| CameraSync {
            camera: c.camera.to_string(),
            clock_offset_ms: round3(secs_between(center.start, c.start) * 1000.0),
            content_offset_ms: None,
            difference_frames: None,
            peak: None,
            second_peak: None,
            search_ms: if i == 1 {
                0.0
            } else {
                round3(search_sec(c, center, s) * 1000.0)
            },
            used: if i == 1 {
                SyncSource::Reference
            } else {
                SyncSource::Clock
            },
        })
        .collect();
    SyncReport {
        mode: s.mode,
        windows: Vec::new(),
        cameras,
        warnings: Vec::new(),
    }
}

fn search_sec(c: &CameraInput, center: &CameraInput, s: &SyncSettings) -> f64 {
    if c.ntp_synced && center.ntp_synced {
        s.search_sec
    } else {
        s.search_sec * UNSYNCED_SEARCH_FACTOR
    }
}

fn geometry(center: &CameraInput, rule: &StripRule, warnings: &mut Vec<String>) -> Geometry {
    let (w, h) = (center.probe.width.max(2), center.probe.height.max(2));
    let height = ((f64::from(ANALYSIS_WIDTH) * f64::from(h) / f64::from(w) / 2.0).round() as u32
        * 2)
    .max(2 * super::BANDS as u32);
    let seams = match rule {
        StripRule::Edges(frac) => edge_strips(ANALYSIS_WIDTH, height, *frac),
        StripRule::Cameras(cams) => {
            shared_strips(cams, ANALYSIS_WIDTH, height).unwrap_or_else(|| {
                warnings.push(
                    "content alignment: by the rig's geometry a pair of neighbours shares \
                 (almost) nothing; metered the frames' edges instead"
                        .to_string(),
                );
                edge_strips(ANALYSIS_WIDTH, height, 0.1)
            })
        }
    };
    log::debug!("content alignment strips (side, CAM_C) per seam: {seams:?}");
    Geometry {
        fps: center.probe.fps_exact,
        width: ANALYSIS_WIDTH,
        height,
        seams,
    }
}

fn side(inputs: &[CameraInput], index: usize, fps: f64, s: &SyncSettings) -> Side {
    let (c, center) = (&inputs[index], &inputs[1]);
    Side {
        index,
        clock_frames: (secs_between(center.start, c.start) * fps).round() as i64,
        reach: (search_sec(c, center, s) * fps).round().max(1.0) as i64,
    }
}

/// Windows in CAM_C's frames over the span all three share by the clocks.
fn windows(
    inputs: &[CameraInput],
    sides: &[Side; 2],
    fps: f64,
    window_sec: f64,
) -> Vec<SyncWindow> {
    let frames = |c: &CameraInput| (c.probe.duration_sec * fps).floor() as i64;
    let lo = sides.iter().map(|s| s.clock_frames).fold(0, i64::max);
    let hi = sides
        .iter()
        .map(|s| frames(&inputs[s.index]) + s.clock_frames)
        .fold(frames(&inputs[1]), i64::min);
    if hi - lo < MIN_SPAN_FRAMES {
        return Vec::new();
    }
    let len = ((window_sec * fps).round() as i64).max(MIN_SPAN_FRAMES);
    if hi - lo <= SYNC_POINTS as i64 * len {
        return vec![SyncWindow {
            first_frame: lo as u64,
            frames: (hi - lo) as u64,
        }];
    }
    (0..SYNC_POINTS as i64)
        .map(|p| {
            let mid = lo + (hi - lo) * (2 * p + 1) / (2 * SYNC_POINTS as i64);
            SyncWindow {
                first_frame: (mid - len / 2) as u64,
                frames: len as u64,
            }
        })
        .collect()
}

/// Per side camera, one correlation curve per window.
fn curves(
    reader: &Reader<'_>,
    inputs: &[CameraInput],
    sides: &[Side; 2],
    windows: &[SyncWindow],
    geo: Geometry,
) -> Result<[Vec<Curve>; 2], FramesError> {
    let mut out = [Vec::new(), Vec::new()];
    let strips = [geo.seams[0].1, geo.seams[1].1];
    for w in windows {
        let first = w.first_frame as i64;
        let (center, left, right) = std::thread::scope(|scope| {
            let c = scope.spawn(|| series(reader, &inputs[1], first, w.frames, geo, &strips));
            let l = scope.spawn(|| side_series(reader, inputs, &sides[0], w, geo));
            let r = scope.spawn(|| side_series(reader, inputs, &sides[1], w, geo));
            (joined(c, inputs), joined(l, inputs), joined(r, inputs))
        });
        let center = center?;
        for (slot, (side, found)) in [(0, (&sides[0], left?)), (1, (&sides[1], right?))] {
            let (series, first) = found;
            let k_at_clock = w.first_frame as i64 - first - side.clock_frames;
            let half = (geo.fps / 4.0).round().max(1.0) as usize;
            let (c, s) = (high_pass(&center[slot], half), high_pass(&series[0], half));
            out[slot].push(curve(&c, &s, k_at_clock, side.reach));
        }
    }
    Ok(out)
}

/// A thread's result; a panic becomes an error.
fn joined<T>(
    h: std::thread::ScopedJoinHandle<'_, Result<T, FramesError>>,
    inputs: &[CameraInput],
) -> Result<T, FramesError> {
    h.join().unwrap_or_else(|_| {
        Err(FramesError::Read {
            file: inputs[1].recording.clone(),
            source: std::io::Error::other("analysis thread panicked"),
        })
    })
}

/// A side camera's strip series around a window, and the first frame read
/// (in CAM_C frames of its own file).
fn side_series(
    reader: &Reader<'_>,
    inputs: &[CameraInput],
    side: &Side,
    w: &SyncWindow,
    geo: Geometry,
) -> Result<(Vec<Vec<f32>>, i64), FramesError> {
    let first = (w.first_frame as i64 - side.clock_frames - side.reach).max(0);
    let count = w.frames + 2 * side.reach as u64 + 2;
    let strip = geo.seams[side.index / 2].0;
    let s = series(reader, &inputs[side.index], first, count, geo, &[strip])?;
    Ok((s, first))
}

/// Reads `count` frames of a camera from frame `first` and meters `strips`.
fn series(
    reader: &Reader<'_>,
    input: &CameraInput,
    first: i64,
    count: u64,
    geo: Geometry,
    strips: &[Strip],
) -> Result<Vec<Vec<f32>>, FramesError> {
    let window = GrayWindow {
        // Half a frame early, so the first frame kept never depends on
        // float rounding (as the stitch itself seeks).
        seek_sec: if first > 0 {
            (first as f64 - 0.5) / geo.fps
        } else {
            0.0
        },
        fps: geo.fps,
        frames: count,
        width: geo.width,
        height: geo.height,
    };
    let mut meter = Meter::new(geo.width, geo.height, strips);
    frames::read_gray(reader.ffmpeg, &input.recording, &window, &mut |f| {
        meter.push(f);
        !reader.cancel.load(Ordering::Relaxed)
    })?;
    Ok(meter.into_series())
}

/// The curve over lags `-reach..=reach` frames from the clock's answer.
fn curve(center: &[f32], side: &[f32], k_at_clock: i64, reach: i64) -> Curve {
    // A lag at which the two share only part of the window is measured on
    // fewer frames, and a short overlap can correlate by chance: at least
    // three quarters of the window must take part.
    let transitions = center.len() / super::BANDS;
    let min_overlap = (transitions * 3 / 4).max(10);
    let mut c = Curve::new(reach);
    for (j, v) in c.values.iter_mut().enumerate() {
        let lag = j as i64 - reach;
        *v = ncc_at(center, side, k_at_clock - lag, min_overlap);
    }
    c
}

/// Records a side camera's verdict: content if the peak is clear, else the
/// clock, with a warning either way when a person should look.
fn decide(report: &mut SyncReport, side: &Side, peak: Option<Peak>, fps: f64) {
    let row = &mut report.cameras[side.index];
    let Some(p) = peak else {
        report.warnings.push(format!(
            "{}: nothing moved in its overlap with CAM_C (no correlation to measure); \
             kept the clock's offset ({:+.3} ms)",
            row.camera, row.clock_offset_ms
        ));
        return;
    };
    row.peak = Some(round3(p.value));
    row.second_peak = Some(round3(p.second));
    let at_edge = p.lag.abs() >= side.reach as f64 - 0.5;
    if p.value < MIN_PEAK || p.second > MAX_SECOND_RATIO * p.value || at_edge {
        report.warnings.push(format!(
            "{}: the pictures do not settle its time offset (correlation peak {:.2}, \
             next best {:.2}{}; needs >= {MIN_PEAK} and a clear lead); kept the clock's \
             offset ({:+.3} ms)",
            row.camera,
            p.value,
            p.second,
            if at_edge {
                ", at the edge of the search"
            } else {
                ""
            },
            row.clock_offset_ms
        ));
        return;
    }
    use_content(row, &mut report.warnings, side, &p, fps);
}

/// A clear peak: the content offset recorded and used (confirming the
/// clock within half a frame), with a warning when they differ by more
/// than a frame.
fn use_content(row: &mut CameraSync, warnings: &mut Vec<String>, side: &Side, p: &Peak, fps: f64) {
    let content_ms = (side.clock_frames as f64 + p.lag) / fps * 1000.0;
    let diff = (content_ms - row.clock_offset_ms) / 1000.0 * fps;
    row.content_offset_ms = Some(round3(content_ms));
    row.difference_frames = Some(round3(diff));
    row.used = if diff.abs() < 0.5 {
        SyncSource::Confirmed
    } else {
        SyncSource::Content
    };
    if diff.abs() > 1.0 {
        warnings.push(format!(
            "{}: its clock puts its start {:+.3} ms from CAM_C's, its pictures {:+.3} ms \
             ({diff:+.2} frames apart); aligned by the pictures (check that camera's clock)",
            row.camera, row.clock_offset_ms, content_ms
        ));
    }
}

/// Content alignment applied: the inputs with each content-aligned side
/// camera's start moved to CAM_C's start plus its content offset, and the
/// report (`inputs` are L, C, R). With `processing.sync_mode: clock`, the
/// inputs unchanged and a report of the clocks alone. Once `cancel` is
/// set the reading stops and the result is not to be used.
pub fn align(
    ffmpeg: &Path,
    inputs: &[CameraInput],
    rule: &StripRule,
    s: &SyncSettings,
    cancel: &AtomicBool,
) -> (Vec<CameraInput>, SyncReport) {
    let report = match s.mode {
        SyncMode::Clock => clock_report(inputs, s),
        SyncMode::Content => measure(ffmpeg, inputs, rule, s, cancel),
    };
    let center = inputs[1].start.as_nanosecond();
    let mut out = inputs.to_vec();
    for (c, row) in out.iter_mut().zip(&report.cameras) {
        if let (SyncSource::Content, Some(ms)) = (row.used, row.content_offset_ms) {
            let ns = center + (ms * 1e6).round() as i128;
            if let Ok(t) = jiff::Timestamp::from_nanosecond(ns) {
                c.start = t;
            }
        }
    }
    (out, report)
}

fn secs_between(a: jiff::Timestamp, b: jiff::Timestamp) -> f64 {
    (b.as_nanosecond() - a.as_nanosecond()) as f64 / 1e9
}

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}
