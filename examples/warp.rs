//! The calibrated stitch's warp alone: how long drawing one panorama frame
//! takes, on one core and on all, with no decoders or encoder around it.
//! Used by `scripts/bench-stitch speed`.
//!
//! The rig is the bench's nominal one (yaw -60/0/+60 degrees, 75 degree
//! FOV); the cameras' frames are noise, eight sets drawn in turn so that
//! every frame comes from memory, not from the cache, as a real match's
//! do. CAM_L and CAM_R go through level tables (a 1.2 gain), as an
//! exposure-matched rig's do.
//!
//! Usage: cargo run --release --example warp -- CAMERA_WxH OUTPUT_WIDTH [DECODED_WxH]
//!
//! DECODED_WxH is the size the decoders hand over when they shrink the
//! cameras first (`rig-stitch --dry-run` shows it as their `scale=`);
//! by default the camera's own.

use std::process::ExitCode;
use std::time::Instant;

use soccer_rig::stitch::calibration::Calibration;
use soccer_rig::stitch::canvas::plan_canvas;
use soccer_rig::stitch::tone::plane_luts;
use soccer_rig::stitch::warp::map::WarpMap;
use soccer_rig::stitch::warp::render::{Luts, Source, render};

/// Sets of three camera frames drawn in turn.
const SETS: usize = 8;

/// Frames drawn for each figure.
const FRAMES: usize = 60;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [cam, width] => parse(cam, width, cam),
        [cam, width, decoded] => parse(cam, width, decoded),
        _ => None,
    };
    let Some((camera, width, size)) = parsed else {
        eprintln!("usage: warp CAMERA_WxH OUTPUT_WIDTH [DECODED_WxH]   (e.g. warp 1920x1080 4024)");
        return ExitCode::from(2);
    };
    let (map, height) = match rig_map(camera, width, size) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("warp: no panorama for this rig: {e}");
            return ExitCode::FAILURE;
        }
    };
    let inputs = noise(size);
    let mut cal = rig();
    cal.gains = [1.2, 1.0, 1.2];
    let luts = [0, 1, 2].map(|i| plane_luts(&cal, i));
    let samples = map.frame_len() as f64;
    print!(
        "warp: 3 x {}x{} (decoded {}x{}) -> {width}x{height} ({:.2} M samples a frame):",
        camera.0,
        camera.1,
        size.0,
        size.1,
        samples / 1e6
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    for threads in [1, cores] {
        let secs = time(&map, size, &inputs, &luts, threads);
        print!(
            " {threads} thread(s) {:.1} ms a frame ({:.2} ns a sample);",
            secs * 1e3,
            secs * 1e9 / samples
        );
    }
    println!();
    ExitCode::SUCCESS
}

/// A frame's width and height.
type Size = (u32, u32);

/// The nominal rig's map at `width` columns (and the height that keeps
/// the panorama's aspect), for cameras of `camera` pixels decoded at
/// `decoded`.
fn rig_map(camera: Size, width: u32, decoded: Size) -> Result<(WarpMap, u32), String> {
    let cams = rig().cameras.array();
    let canvas = plan_canvas(&cams, &[camera; 3])?;
    let (pw, ph) = (canvas.panorama.width, canvas.panorama.height);
    let height = even(f64::from(width) * f64::from(ph) / f64::from(pw));
    let map = WarpMap::new(&canvas.scaled(width, height), &cams, [decoded; 3]);
    Ok((map, height))
}

/// The camera's size, the output width and the decoded size.
fn parse(cam: &str, width: &str, decoded: &str) -> Option<(Size, u32, Size)> {
    Some((size_of(cam)?, width.parse().ok()?, size_of(decoded)?))
}

/// `WxH`, each at least 16.
fn size_of(s: &str) -> Option<Size> {
    let (w, h) = s.split_once('x')?;
    let wh = (w.parse().ok()?, h.parse().ok()?);
    (wh.0 >= 16 && wh.1 >= 16).then_some(wh)
}

fn even(v: f64) -> u32 {
    ((v / 2.0).round() as u32 * 2).max(2)
}

/// `SETS` sets of three yuv420p frames of noise (with the spare bytes the
/// stitch's frame buffers carry after each frame).
fn noise((w, h): (u32, u32)) -> Vec<Vec<u8>> {
    let len = (w as usize * h as usize) * 3 / 2 + 16;
    let mut seed = 0x2545_f491_u32;
    (0..3 * SETS)
        .map(|_| {
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect()
        })
        .collect()
}

/// The bench's nominal rig: yaw -60/0/+60 degrees, 75 degree FOV.
fn rig() -> Calibration {
    Calibration::nominal(60.0, 75.0)
}

/// Seconds a frame, drawing [`FRAMES`] frames on `threads` threads.
fn time(
    map: &WarpMap,
    size: (u32, u32),
    inputs: &[Vec<u8>],
    luts: &[Luts; 3],
    threads: usize,
) -> f64 {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let mut out = vec![0u8; map.frame_len()];
    pool.install(|| {
        let started = Instant::now();
        for k in 0..FRAMES {
            let set = k % SETS;
            let src = [0, 1, 2].map(|i| Source {
                frame: &inputs[3 * set + i],
                size,
            });
            render(map, src, luts, &mut out);
        }
        started.elapsed().as_secs_f64() / FRAMES as f64
    })
}
