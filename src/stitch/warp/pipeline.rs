//! The calibrated stitch's processes: three ffmpeg decoders write raw
//! frames (on CAM_C's frame grid, trimmed to the common span, shrunk first
//! when the panorama has far fewer pixels per radian than the camera), the
//! warp draws each panorama frame in Rust, and one ffmpeg encoder reads the
//! frames on its stdin (and CAM_C's audio from its file).
//!
//! Each decoder has its own reader thread and two frame buffers, so the
//! three decode ahead while a frame is drawn; memory is a few frames
//! whatever the match's length. Stopping early (a decoder failed, `cancel`
//! was set) kills the decoders still running.

use std::io::Write;
use std::process::ChildStdin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use super::super::calibrated::Geometry;
use super::super::canvas::{self, Canvas};
use super::super::error::StitchError;
use super::super::graph;
use super::super::plan::Plan;
use super::super::tone;
use super::map::WarpMap;
use super::render::{Luts, Source, render};
use crate::base::ffmpeg::frames::FramesError;
use crate::base::ffmpeg::raw::{RawDecoder, RawSource};

/// Everything a calibrated stitch draws with: what each decoder reads, the
/// map, the cameras' level tables.
#[derive(Debug, Clone)]
pub struct Warp {
    /// CAM_L, CAM_C, CAM_R, as decoded.
    pub sources: [RawSource; 3],
    /// The cameras' names, for messages.
    cameras: [String; 3],
    /// The panorama's planned length, frames, and its rate.
    frames: u64,
    fps: f64,
    map: WarpMap,
    luts: [Luts; 3],
}

impl Warp {
    /// The warp of `plan` (calibrated with `geo`) at the output's size.
    pub fn new(plan: &Plan, geo: &Geometry) -> Warp {
        let canvas = output_canvas(plan, geo);
        let cams = geo.calibration.cameras.array();
        let sizes: [(u32, u32); 3] = std::array::from_fn(|i| {
            let cam = &plan.cameras[i];
            canvas::prescale(&cams[i], (cam.width, cam.height), &canvas.pieces[i])
                .unwrap_or((cam.width, cam.height))
        });
        let sources = std::array::from_fn(|i| decode_source(plan, i, sizes[i]));
        Warp {
            sources,
            cameras: std::array::from_fn(|i| plan.cameras[i].camera.clone()),
            frames: plan.frames,
            fps: plan.fps,
            map: WarpMap::new(&canvas, &cams, sizes),
            luts: std::array::from_fn(|i| tone::plane_luts(&geo.calibration, i)),
        }
    }

    /// Starts the decoders and feeds the panorama's frames to `stdin` until
    /// one of them ends or `cancel` is set.
    pub fn feed(
        &self,
        ffmpeg: &std::path::Path,
        stdin: Option<ChildStdin>,
        cancel: &AtomicBool,
    ) -> Result<(), StitchError> {
        let Some(mut stdin) = stdin else {
            return Err(StitchError::Io(std::io::Error::other(
                "the encoder has no stdin pipe to feed",
            )));
        };
        let decoders = spawn_all(ffmpeg, &self.sources)?;
        std::thread::scope(|s| {
            let lanes = decoders.map(|d| Lane::start(s, d));
            let pumped = self.pump(&lanes, &mut stdin, cancel);
            drop(stdin);
            let finished = lanes.map(Lane::finish);
            pumped?;
            for f in finished {
                f.map_err(StitchError::Decode)?;
            }
            Ok(())
        })
    }

    /// Draws and writes frames while all three decoders give one.
    fn pump(
        &self,
        lanes: &[Lane<'_>; 3],
        out: &mut impl Write,
        cancel: &AtomicBool,
    ) -> Result<u64, StitchError> {
        let mut frame = vec![0u8; self.map.frame_len()];
        let (mut drawn, mut busy) = (0u64, [Duration::ZERO; 3]);
        while !cancel.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            let bufs = match next_frames(lanes) {
                Ok(bufs) => bufs,
                Err(ended) => {
                    self.check_length(ended, drawn);
                    break;
                }
            };
            let src = std::array::from_fn(|i| Source {
                frame: &bufs[i],
                size: self.sources[i].size,
            });
            let t1 = Instant::now();
            render(&self.map, src, &self.luts, &mut frame);
            for (lane, buf) in lanes.iter().zip(bufs) {
                let _ = lane.free.send(buf);
            }
            let t2 = Instant::now();
            out.write_all(&frame).map_err(StitchError::Io)?;
            drawn += 1;
            busy = [
                busy[0] + (t1 - t0),
                busy[1] + (t2 - t1),
                busy[2] + t2.elapsed(),
            ];
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / drawn.max(1) as f64;
        log::debug!(
            "warp: {drawn} frames; per frame {:.1} ms waiting for the decoders, {:.1} ms \
             drawing, {:.1} ms waiting for the encoder",
            ms(busy[0]),
            ms(busy[1]),
            ms(busy[2])
        );
        Ok(drawn)
    }

    /// Warns, naming the camera, when decoder `ended` stopped the panorama
    /// more than a frame short of the plan after `drawn` frames (a damaged
    /// or cut recording: the rest of the match is missing from the
    /// panorama).
    fn check_length(&self, ended: usize, drawn: u64) {
        if drawn + 1 < self.frames {
            log::warn!(
                "warp: {}'s decoder ended after {drawn} of {} frames, so the panorama is \
                 {:.1} s short; check {} with `rig-manifest verify` and ffprobe",
                self.cameras[ended],
                self.frames,
                (self.frames - drawn) as f64 / self.fps.max(1.0),
                self.sources[ended].file.display()
            );
        }
    }
}

/// The canvas at the size written.
fn output_canvas(plan: &Plan, geo: &Geometry) -> Canvas {
    if plan.output_width == geo.canvas.panorama.width {
        geo.canvas.clone()
    } else {
        geo.canvas.scaled(plan.output_width, plan.output_height)
    }
}

/// Camera `i`'s decode: on CAM_C's frame grid over the common span (as
/// the translation-only graph puts it, [`super::super::graph::on_grid`]),
/// then `size` (a shrink, or nothing).
fn decode_source(plan: &Plan, i: usize, size: (u32, u32)) -> RawSource {
    let cam = &plan.cameras[i];
    // The scale always, so that the frames are the size the warp reads
    // even if the decoder turns or resizes them (a display rotation, a
    // mid-stream change); at the same size ffmpeg passes them through.
    let filters = format!(
        "{},scale={}:{}:flags=bicubic",
        graph::on_grid(plan),
        size.0,
        size.1
    );
    RawSource {
        file: plan.inputs[i].clone(),
        seek_sec: cam.seek_sec,
        filters,
        size,
    }
}

/// The three decoders, or the first that could not start (the others
/// stopped).
fn spawn_all(
    ffmpeg: &std::path::Path,
    sources: &[RawSource; 3],
) -> Result<[RawDecoder; 3], StitchError> {
    let mut started = Vec::with_capacity(3);
    for src in sources {
        match RawDecoder::spawn(ffmpeg, src) {
            Ok(d) => started.push(d),
            Err(e) => {
                for d in started {
                    let _ = d.finish(true);
                }
                return Err(StitchError::Decode(e));
            }
        }
    }
    started
        .try_into()
        .map_err(|_| StitchError::Io(std::io::Error::other("three decoders expected")))
}

/// One frame from each lane, or the first lane found ended.
fn next_frames(lanes: &[Lane<'_>; 3]) -> Result<[Vec<u8>; 3], usize> {
    let mut got = Vec::with_capacity(3);
    for (i, lane) in lanes.iter().enumerate() {
        got.push(lane.full.recv().map_err(|_| i)?);
    }
    got.try_into().map_err(|_| 0)
}

/// A decoder on its own thread: full frames come out of `full`, used
/// buffers go back through `free`.
struct Lane<'scope> {
    free: SyncSender<Vec<u8>>,
    full: Receiver<Vec<u8>>,
    thread: ScopedJoinHandle<'scope, Result<(), FramesError>>,
}

/// Frame buffers per decoder: one being drawn, one being read.
const BUFFERS: usize = 2;

/// Bytes after each frame in its buffer, never written by the decoder.
const SPARE: usize = 16;

impl<'scope> Lane<'scope> {
    fn start(s: &'scope Scope<'scope, '_>, dec: RawDecoder) -> Lane<'scope> {
        let (free, free_rx) = sync_channel(BUFFERS);
        let (full_tx, full) = sync_channel(BUFFERS);
        for _ in 0..BUFFERS {
            // The spare bytes let the vector gathers reach the last plane's
            // last pixels (see `simd`).
            let _ = free.send(vec![0u8; dec.frame_len() + SPARE]);
        }
        let thread = s.spawn(move || read_frames(dec, free_rx, full_tx));
        Lane { free, full, thread }
    }

    /// Stops taking frames and waits for the decoder's end.
    fn finish(self) -> Result<(), FramesError> {
        drop(self.free);
        drop(self.full);
        self.thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// The reader thread: fills free buffers with frames until the stream ends
/// or nobody takes them (the decoder is then killed).
fn read_frames(
    mut dec: RawDecoder,
    free: Receiver<Vec<u8>>,
    full: SyncSender<Vec<u8>>,
) -> Result<(), FramesError> {
    loop {
        let Ok(mut buf) = free.recv() else {
            return dec.finish(true);
        };
        let len = dec.frame_len();
        match dec.read_frame(&mut buf[..len]) {
            Ok(true) => {
                if full.send(buf).is_err() {
                    return dec.finish(true);
                }
            }
            Ok(false) => return dec.finish(false),
            // A frame cut short: the decoder's own failure says more.
            Err(e) => return dec.finish(false).and(Err(e)),
        }
    }
}
