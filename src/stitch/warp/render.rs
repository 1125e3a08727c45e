//! Drawing one panorama frame from three camera frames with a
//! [`WarpMap`]: bilinear samples with 8-bit weights, each camera's level
//! tables ([`crate::stitch::tone`]) on the way out, and a linear cross-fade
//! over each seam (the right-hand camera's weight rising from 0 to 1,
//! sampled at pixel centres). Rows are drawn in parallel on rayon's pool.

use rayon::prelude::*;

use super::super::tone::table_is_identity;
use super::map::{GRID, PlaneMap, Span, WarpMap, steps};
use super::simd;

// The vector path draws a cell (eight columns) per group.
const _: () = assert!(GRID == 8);

/// Rows drawn by one task.
const ROWS_PER_TASK: usize = 8;

/// Rows ahead whose source bytes the vector path asks into the cache
/// while it draws a row (see [`simd::run_cells`]): far enough for memory
/// to answer, near enough for L2 to keep them. On a 1080p rig, 2 rows
/// ahead took the warp from 11.5 to 7.2 ms a frame, 8 to 6.4 ms, 12 the
/// same as 8.
const LATER: usize = 8;

/// One camera's frame: `yuv420p` bytes and its luma size.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The frame, planes one after the other.
    pub frame: &'a [u8],
    /// Width and height of its luma plane.
    pub size: (u32, u32),
}

impl<'a> Source<'a> {
    /// Where the Y, U and V planes start: each slice runs to the end of
    /// the frame's buffer (the sampling never leaves its plane, but the
    /// vector gathers may read a byte or two past it; see [`super::simd`]).
    fn planes(&self) -> [&'a [u8]; 3] {
        let (w, h) = (self.size.0 as usize, self.size.1 as usize);
        let (luma, chroma) = (w * h, w.div_ceil(2) * h.div_ceil(2));
        [
            self.frame,
            &self.frame[luma..],
            &self.frame[luma + chroma..],
        ]
    }
}

/// A camera's three level tables (Y, U, V).
pub type Luts = [[u8; 256]; 3];

/// One plane's level table, `None` for the identity (nothing to look up).
type Lut<'a> = Option<&'a [u8; 256]>;

/// Draws the panorama frame `out` (`map.frame_len()` bytes, `yuv420p`)
/// from the cameras' frames `src`, through their level tables `luts`.
pub fn render(map: &WarpMap, src: [Source<'_>; 3], luts: &[Luts; 3], out: &mut [u8]) {
    let planes = src.map(|s| s.planes());
    let [(w, h), (cw, ch)] = map.planes.each_ref().map(|p| p.size);
    let (luma, rest) = out.split_at_mut(w * h);
    let (u, v) = rest.split_at_mut(cw * ch);
    for (p, out) in [luma, u, v].into_iter().enumerate() {
        let plane = &map.planes[p.min(1)];
        let from = [0, 1, 2].map(|i| planes[i][p]);
        let tables = [0, 1, 2].map(|i| Some(&luts[i][p]).filter(|t| !table_is_identity(t)));
        draw_plane(plane, from, tables, out);
    }
}

/// One output plane, rows in parallel.
fn draw_plane(plane: &PlaneMap, src: [&[u8]; 3], luts: [Lut<'_>; 3], out: &mut [u8]) {
    let w = plane.size.0;
    let widest = plane.seams[0].1.max(plane.seams[1].1);
    out.par_chunks_mut(w * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, rows)| {
            let mut scratch = vec![0u8; 2 * widest];
            for (r, row) in rows.chunks_mut(w).enumerate() {
                draw_row(
                    plane,
                    src,
                    luts,
                    task * ROWS_PER_TASK + r,
                    row,
                    &mut scratch,
                );
            }
        });
}

/// One row: each camera's own columns, and the two seams blended.
fn draw_row(
    plane: &PlaneMap,
    src: [&[u8]; 3],
    luts: [Lut<'_>; 3],
    row: usize,
    out: &mut [u8],
    scratch: &mut [u8],
) {
    let [l, c, r] = &plane.spans;
    let [(s0, n0), (s1, n1)] = plane.seams;
    let (left, rest) = out.split_at_mut(s0);
    let (seam0, rest) = rest.split_at_mut(n0);
    let (centre, rest) = rest.split_at_mut(s1 - s0 - n0);
    let (seam1, right) = rest.split_at_mut(n1);
    sample(l, src[0], luts[0], row, 0, left);
    blend(
        [(l, src[0], luts[0]), (c, src[1], luts[1])],
        row,
        (s0, &plane.fades[0]),
        seam0,
        scratch,
    );
    sample(c, src[1], luts[1], row, s0 + n0, centre);
    blend(
        [(c, src[1], luts[1]), (r, src[2], luts[2])],
        row,
        (s1, &plane.fades[1]),
        seam1,
        scratch,
    );
    sample(r, src[2], luts[2], row, s1 + n1, right);
}

/// The seam whose first column is `first`: both cameras drawn into
/// `scratch`, then cross-faded into `out` by `fade`, the right-hand
/// camera's weight (out of 256) at each column.
fn blend(
    sides: [(&Span, &[u8], Lut<'_>); 2],
    row: usize,
    (first, fade): (usize, &[u8]),
    out: &mut [u8],
    scratch: &mut [u8],
) {
    let n = out.len();
    let (a, b) = scratch[..2 * n].split_at_mut(n);
    let [(sa, pa, ta), (sb, pb, tb)] = sides;
    sample(sa, pa, ta, row, first, a);
    sample(sb, pb, tb, row, first, b);
    for (((o, &a), &b), &wr) in out.iter_mut().zip(&*a).zip(&*b).zip(fade) {
        let wr = u32::from(wr);
        let v = (u32::from(a) * (256 - wr) + u32::from(b) * wr + 128) >> 8;
        *o = v as u8;
    }
}

/// Draws `out.len()` columns of `span` from output column `from` on `row`,
/// from the camera's plane `src`, through `lut`: a straight run per cell
/// between two knots.
fn sample(span: &Span, src: &[u8], lut: Lut<'_>, row: usize, from: usize, out: &mut [u8]) {
    if span.src.0 < 2 || span.src.1 < 2 {
        // Under 2 x 2 there is nothing to interpolate between.
        let v = src.first().copied().unwrap_or(0);
        out.fill(lut.map_or(v, |t| t[usize::from(v)]));
        return;
    }
    let nk = span.knots.len();
    let knots = &span.pos[row * nk..(row + 1) * nk];
    let wins = &span.win[row * nk..(row + 1) * nk];
    let later = span.pos.get((row + LATER) * nk..(row + LATER + 1) * nk);
    let (mut c, mut rest) = (from - span.first, out);
    while !rest.is_empty() {
        let n = match whole_cells(span, src, (knots, wins, later.unwrap_or(&[])), c, rest) {
            0 => part_cell(span, src, knots, c, rest),
            n => n,
        };
        let (run, tail) = std::mem::take(&mut rest).split_at_mut(n);
        if let Some(table) = lut {
            simd::look_up(table, run);
        }
        rest = tail;
        c += n;
    }
}

/// Draws the whole cells from column `c` (a cell's first) that fit in
/// `out`, eight columns a cell, when the vector path can: the columns
/// drawn, 0 when none. The last cell, which may be longer, is left out.
/// `knots` and their windows `wins` are the row's, `later` the row's
/// [`LATER`] rows down (empty near the bottom), whose source bytes are
/// asked for meanwhile.
fn whole_cells(
    span: &Span,
    src: &[u8],
    (knots, wins, later): (&[[i32; 2]], &[u32], &[[i32; 2]]),
    c: usize,
    out: &mut [u8],
) -> usize {
    if !c.is_multiple_of(GRID) {
        return 0;
    }
    let k = c / GRID;
    let whole = (out.len() / GRID).min(knots.len().saturating_sub(2).saturating_sub(k));
    let n = whole * GRID;
    // The cells' knots and the one after the last, which ends it.
    let (now, ahead) = (
        &knots[k..=k + whole],
        later.get(k..k + whole).unwrap_or(&[]),
    );
    let cells = (now, wins.get(k..k + whole).unwrap_or(&[]));
    if whole > 0 && simd::run_cells(src, span.src, cells, ahead, &mut out[..n]) {
        n
    } else {
        0
    }
}

/// Draws from column `c` to the end of its cell (or of `out`), the last
/// cell to the span's last column: the columns drawn.
fn part_cell(span: &Span, src: &[u8], knots: &[[i32; 2]], c: usize, out: &mut [u8]) -> usize {
    let nk = knots.len();
    let k = (c / GRID).min(nk - 1);
    let n = if k + 2 < nk {
        (span.knots[k + 1] - c).min(out.len())
    } else {
        out.len()
    };
    let ([x, y], [dx, dy]) = (knots[k], steps(knots, &span.knots, k));
    let off = (c - span.knots[k]) as i32;
    let max = simd::clamp_of(span.src);
    let run = &mut out[..n];
    // Wrapping, as the vector lanes do (a knot far out of the frame may
    // take a run past `i32`'s ends; the clamp then decides, the same way).
    let at = |p: i32, d: i32, n: i32| p.wrapping_add(d.wrapping_mul(n));
    let start = [at(x, dx, off), at(y, dy, off)];
    let fast = simd::run(src, span.src, start, [dx, dy], run);
    let start = [at(start[0], dx, fast as i32), at(start[1], dy, fast as i32)];
    bilinear(src, span.src.0, max, start, [dx, dy], &mut run[fast..]);
    n
}

/// The samples along a straight run: start at `p` (16.16), move by `step`
/// a column, clamp to the frame (`max`), interpolate the four neighbours
/// (what [`simd`] does eight at a time): across with 7-bit weights (a
/// 128th of a pixel; OpenCV's `remap` uses a 32nd), down with 8-bit ones,
/// each row's sum kept under 2^15 so that the vector path does the same
/// in 16-bit lanes.
#[inline]
fn bilinear(
    src: &[u8],
    stride: usize,
    max: [i32; 2],
    mut p: [i32; 2],
    step: [i32; 2],
    out: &mut [u8],
) {
    for o in out {
        let (x, y) = (p[0].clamp(0, max[0]) as u32, p[1].clamp(0, max[1]) as u32);
        let (fx, fy) = ((x >> 9) & 127, (y >> 8) & 255);
        let i = (y >> 16) as usize * stride + (x >> 16) as usize;
        let (top, bottom) = (&src[i..i + 2], &src[i + stride..i + stride + 2]);
        let t = u32::from(top[0]) * (128 - fx) + u32::from(top[1]) * fx;
        let b = u32::from(bottom[0]) * (128 - fx) + u32::from(bottom[1]) * fx;
        let v = (t * (256 - fy) + b * fy + (1 << 14)) >> 15;
        *o = v as u8;
        p[0] = p[0].wrapping_add(step[0]);
        p[1] = p[1].wrapping_add(step[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::camera::Camera;
    use super::super::super::canvas::plan_canvas;
    use super::*;

    const IDENTITY: Luts = {
        let mut t = [[0u8; 256]; 3];
        let mut i = 0;
        while i < 256 {
            t[0][i] = i as u8;
            t[1][i] = i as u8;
            t[2][i] = i as u8;
            i += 1;
        }
        t
    };

    /// A frame whose luma is `f(x, y)` and chroma 128.
    fn frame(w: u32, h: u32, f: impl Fn(f64, f64) -> f64) -> Vec<u8> {
        let mut v = Vec::new();
        for y in 0..h {
            for x in 0..w {
                v.push(f(f64::from(x), f64::from(y)).round().clamp(0.0, 255.0) as u8);
            }
        }
        v.resize(v.len() + (w * h / 2) as usize, 128);
        v
    }

    #[test]
    fn a_smooth_scene_is_drawn_where_the_model_says() {
        let cams = [-60.0, 0.0, 60.0].map(|y| Camera::nominal(y, 75.0));
        let size = (320u32, 180u32);
        let canvas = plan_canvas(&cams, &[size; 3]).unwrap();
        let map = WarpMap::new(&canvas, &cams, [size; 3]);
        // Each camera sees a ramp of its own x: the panorama must show the
        // ramp value of the camera position the model computes.
        let ramp = |x: f64, _y: f64| x * 0.7 + 10.0;
        let frames = [0, 1, 2].map(|_| frame(size.0, size.1, ramp));
        let src = [0, 1, 2].map(|i| Source {
            frame: &frames[i],
            size,
        });
        let mut out = vec![0u8; map.frame_len()];
        render(&map, src, &[IDENTITY; 3], &mut out);
        let pano = &canvas.panorama;
        let rot = cams[1].rotation();
        let (row, w) = (pano.height as usize / 2, pano.width as usize);
        let plane = &map.planes[0];
        let centre_cols = plane.seams[0].0 + plane.seams[0].1..plane.seams[1].0;
        for u in centre_cols.step_by(7) {
            let (x, _) = cams[1]
                .project(&rot, pano.ray(u as f64, row as f64), 320.0, 180.0)
                .unwrap();
            let got = f64::from(out[row * w + u]);
            assert!(
                (got - ramp(x, 0.0)).abs() <= 1.0,
                "column {u}: {got} vs {x}"
            );
        }
        assert!(out[w * pano.height as usize..].iter().all(|&c| c == 128));
    }

    /// A small linear congruential generator's 24-bit outputs.
    fn random(mut seed: u32) -> impl FnMut() -> u32 {
        move || {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            seed >> 8
        }
    }

    /// A `w` x `h` plane of noise and the [`simd::OVERREAD`] spare bytes
    /// the frame buffers have after it, and the generator, to go on with.
    fn noise_plane((w, h): (usize, usize), seed: u32) -> (Vec<u8>, impl FnMut() -> u32) {
        let mut next = random(seed);
        let src = (0..w * h + simd::OVERREAD).map(|_| next() as u8).collect();
        (src, next)
    }

    #[test]
    fn the_vector_runs_match_the_scalar_loop_bit_for_bit() {
        // A plane of 37 x 23 noise, then two spare bytes (as the frame
        // buffers have); runs across it in every direction, in and out of
        // the frame (clamped), at many fractional positions.
        let (w, h) = (37usize, 23usize);
        let (src, mut next) = noise_plane((w, h), 12345);
        let max = simd::clamp_of((w, h));
        let mut vector_samples = 0;
        for _ in 0..400 {
            let p = [
                (next() % (50 << 16)) as i32 - (6 << 16),
                (next() % (32 << 16)) as i32 - (4 << 16),
            ];
            let step = [
                (next() % (3 << 16)) as i32 - (3 << 15),
                (next() % (1 << 16)) as i32 - (1 << 15),
            ];
            let n = 1 + next() as usize % 40;
            let (mut fast, mut slow) = (vec![0u8; n], vec![0u8; n]);
            vector_samples += vector_run(&src, (w, h), [p, step], &mut fast);
            bilinear(&src, w, max, p, step, &mut slow);
            assert_eq!(fast, slow, "p {p:?} step {step:?} n {n}");
        }
        // Whole cells between knots eight columns apart, each its own
        // start and step (knots anywhere, in and out of the frame).
        let knots: Vec<[i32; 2]> = (0..=50)
            .map(|_| {
                [
                    (next() % (50 << 16)) as i32 - (6 << 16),
                    (next() % (32 << 16)) as i32 - (4 << 16),
                ]
            })
            .collect();
        if cells_match_the_scalar_loop(&src, (w, h), &knots) {
            vector_samples += 400;
        }
        // On a machine with AVX2 the vector path ran; say so when not.
        if vector_samples == 0 {
            eprintln!("no AVX2 here: only the scalar loop was compared with itself");
        }
    }

    /// Draws the run from `p` on by `step` into `out` as `part_cell` does:
    /// the vector path's groups of eight, then the scalar loop; the
    /// samples the vector path drew.
    fn vector_run(src: &[u8], plane: (usize, usize), run: [[i32; 2]; 2], out: &mut [u8]) -> usize {
        let [p, step] = run;
        let done = simd::run(src, plane, p, step, out);
        let at = |a: usize| p[a].wrapping_add(step[a].wrapping_mul(done as i32));
        bilinear(
            src,
            plane.0,
            simd::clamp_of(plane),
            [at(0), at(1)],
            step,
            &mut out[done..],
        );
        done
    }

    #[test]
    fn runs_that_wrap_around_i32_match_the_scalar_loop() {
        // A row's last cell may be 7 columns long, its step a seventh of
        // the way to a knot far out of the frame, so that the eighth
        // sample's position wraps around i32 while the first lies inside:
        // the samples between are then clamped to the far edge, and no
        // window of the first and last holds them.
        let (w, h) = (61usize, 19usize);
        let (src, _) = noise_plane((w, h), 4242);
        let starts = [2, 14 << 16, i32::MAX - 5, i32::MIN + 3, -1];
        let steps = [
            306_783_378,
            -306_783_378,
            i32::MAX / 7,
            i32::MIN / 7,
            1 << 28,
            1 << 16,
        ];
        for x in starts {
            for dx in steps {
                for (y, dy) in [(5 << 16, 0), (x, dx), (3 << 16, dx / 3)] {
                    let (p, step) = ([x, y], [dx, dy]);
                    let (mut fast, mut slow) = ([0u8; 16], [0u8; 16]);
                    vector_run(&src, (w, h), [p, step], &mut fast);
                    bilinear(&src, w, simd::clamp_of((w, h)), p, step, &mut slow);
                    assert_eq!(fast, slow, "p {p:?} step {step:?}");
                }
            }
        }
        assert_eq!(
            simd::window((w, h), [2, 5 << 16], [306_783_378, 0]),
            simd::NO_WINDOW
        );
    }

    /// Draws the cells between `knots` (eight columns apart) with the
    /// vector path and the scalar loop, and asserts they agree; false when
    /// the vector path cannot run here.
    fn cells_match_the_scalar_loop(src: &[u8], (w, h): (usize, usize), knots: &[[i32; 2]]) -> bool {
        let n = (knots.len() - 1) * GRID;
        let columns: Vec<usize> = (0..knots.len()).map(|k| k * GRID).collect();
        let (mut fast, mut slow) = (vec![0u8; n], vec![0u8; n]);
        // The knots shifted by one stand in for a later row's: where the
        // vector path prefetches must not change what it draws.
        let wins = super::super::map::windows(knots, knots.len(), (w, h));
        if !simd::run_cells(src, (w, h), (knots, &wins), &knots[1..], &mut fast) {
            return false;
        }
        for (k, out) in slow.chunks_mut(GRID).enumerate() {
            let step = steps(knots, &columns, k);
            bilinear(src, w, simd::clamp_of((w, h)), knots[k], step, out);
        }
        assert_eq!(fast, slow);
        true
    }

    #[test]
    fn the_window_shuffles_match_the_scalar_loop_bit_for_bit() {
        // Cells as a camera's rows give them: 0.4 to 2.3 pixels a column
        // across and up to 0.15 down or up, so that most cells fit the
        // vector path's 16-column window, some just do not, and many cross
        // a row; walks that start near the plane's bottom-right corner run
        // out of it (clamped) and leave the window's bytes past the slice's
        // end, where the gathers must take over.
        let (w, h) = (61usize, 19usize);
        let (src, mut next) = noise_plane((w, h), 777);
        for walk in 0..200 {
            let near_end = walk % 4 == 0;
            let mut p = if near_end {
                [
                    (next() % (60 << 16)) as i32,
                    (next() % (19 << 16)) as i32 + (14 << 16),
                ]
            } else {
                [(next() % (20 << 16)) as i32, (next() % (17 << 16)) as i32]
            };
            let step = [
                (next() % 124_518) as i32 + 26_214,
                (next() % 19_661) as i32 - 9_830,
            ];
            let knots: Vec<[i32; 2]> = (0..=6)
                .map(|_| {
                    let knot = p;
                    p = [
                        p[0] + 8 * step[0],
                        p[1] + 8 * step[1] + (next() % 4096) as i32,
                    ];
                    knot
                })
                .collect();
            if !cells_match_the_scalar_loop(&src, (w, h), &knots) {
                eprintln!("no AVX2 here: the window shuffles never run");
                return;
            }
        }
    }

    #[test]
    fn level_tables_are_looked_up_exactly_for_every_byte() {
        // Every byte value, in an order that crosses the permutes'
        // 64-byte groups and halves, and a tail that is not a whole group.
        let table: [u8; 256] = std::array::from_fn(|i| (255 - i * i / 255) as u8);
        let bytes: Vec<u8> = (0..64 * 9 + 37).map(|i| (i * 101 % 256) as u8).collect();
        let mut looked = bytes.clone();
        simd::look_up(&table, &mut looked);
        for (i, (&b, &l)) in bytes.iter().zip(&looked).enumerate() {
            assert_eq!(l, table[usize::from(b)], "byte {i} ({b})");
        }
    }

    #[test]
    fn the_vector_path_refuses_what_it_cannot_read_safely() {
        let run =
            |src: &[u8], plane| simd::run(src, plane, [0, 0], [1 << 16, 1 << 16], &mut [0u8; 16]);
        // A 4 x 4 plane: the gathers at the bottom-right pixel read two
        // bytes past it, so 16 bytes are not enough and 18 are.
        assert_eq!(run(&[9u8; 17], (4, 4)), 0);
        // Planes of one row or one column: nothing to interpolate between,
        // and no vector path; the scalar fallback fills with the pixel.
        assert_eq!(run(&[9u8; 64], (32, 1)), 0);
        assert_eq!(run(&[9u8; 64], (1, 32)), 0);
        assert!(!simd::run_cells(
            &[9u8; 64],
            (1, 32),
            (&[[0; 2]; 2], &[simd::NO_WINDOW; 2]),
            &[],
            &mut [0u8; 8]
        ));
        if run(&[9u8; 18], (4, 4)) == 0 {
            eprintln!("no AVX2 here: the vector path never runs");
        }
        let span = Span {
            first: 0,
            cols: 5,
            src: (1, 3),
            knots: vec![0, 4],
            pos: vec![[0; 2]; 6],
            win: vec![simd::NO_WINDOW; 6],
        };
        let mut out = [0u8; 5];
        sample(&span, &[77, 1, 2], None, 2, 0, &mut out);
        assert_eq!(out, [77; 5]);
    }

    #[test]
    fn luma_and_chroma_land_where_the_model_says() {
        // Both planes carry a horizontal ramp in their own pixels. Each
        // output sample of CAM_C's own columns is compared with the
        // source's value at the model's position (chroma pixels are the
        // centres of 2 x 2 luma blocks), over thousands of samples: the
        // mean difference is a misplacement (half a luma pixel would show
        // as 0.37 levels in luma, 0.19 in chroma).
        let cams = [-60.0, 0.0, 60.0].map(|y| Camera::nominal(y, 75.0));
        let size = (320u32, 180u32);
        let canvas = plan_canvas(&cams, &[size; 3]).unwrap();
        let map = WarpMap::new(&canvas, &cams, [size; 3]);
        let luma_row: Vec<u8> = (0..size.0)
            .map(|x| (10.0 + 0.75 * f64::from(x)) as u8)
            .collect();
        let chroma_row: Vec<u8> = (0..size.0 / 2)
            .map(|c| (10.0 + 1.5 * f64::from(c)) as u8)
            .collect();
        let mut frame = luma_row.repeat(size.1 as usize);
        frame.extend(chroma_row.repeat(size.1 as usize / 2));
        frame.resize(frame.len() + (size.0 * size.1 / 4) as usize + 16, 128);
        let src = [0, 1, 2].map(|_| Source {
            frame: &frame,
            size,
        });
        let mut out = vec![0u8; map.frame_len()];
        render(&map, src, &[IDENTITY; 3], &mut out);
        let [(w, h), (cw, _)] = map.planes.each_ref().map(|p| p.size);
        let rot = cams[1].rotation();
        let at = |row: &[u8], x: f64| {
            let (i, f) = (x.floor() as usize, x - x.floor());
            f64::from(row[i]) * (1.0 - f) + f64::from(row[i + 1]) * f
        };
        let x_of = |u: f64, v: f64| {
            cams[1]
                .project(&rot, canvas.panorama.ray(u, v), 320.0, 180.0)
                .unwrap()
                .0
        };
        // CAM_C's own columns, between the seams.
        let [(s0, n0), (s1, _)] = map.planes[1].seams;
        let (mut luma_bias, mut chroma_bias, mut n) = (0.0, 0.0, 0.0);
        for j in h / 8..h / 2 - h / 8 {
            for i in s0 + n0 + 2..s1 - 2 {
                let (u, v) = (2.0 * i as f64, 2.0 * j as f64);
                luma_bias += f64::from(out[2 * j * w + 2 * i]) - at(&luma_row, x_of(u, v));
                let xc = (x_of(u + 0.5, v + 0.5) + 0.5) / 2.0 - 0.5;
                chroma_bias += f64::from(out[w * h + j * cw + i]) - at(&chroma_row, xc);
                n += 1.0;
            }
        }
        let (lb, cb) = (luma_bias / n, chroma_bias / n);
        assert!(n > 1000.0, "{n}");
        assert!(
            lb.abs() < 0.1 && cb.abs() < 0.1,
            "luma {lb:.3}, chroma {cb:.3} levels off"
        );
    }

    #[test]
    fn a_seam_fades_linearly_from_one_camera_to_the_next() {
        let cams = [-60.0, 0.0, 60.0].map(|y| Camera::nominal(y, 75.0));
        let size = (320u32, 180u32);
        let canvas = plan_canvas(&cams, &[size; 3]).unwrap();
        let map = WarpMap::new(&canvas, &cams, [size; 3]);
        let frames = [40.0, 200.0, 120.0].map(|v| frame(size.0, size.1, move |_, _| v));
        let src = [0, 1, 2].map(|i| Source {
            frame: &frames[i],
            size,
        });
        let mut out = vec![0u8; map.frame_len()];
        let mut luts = [IDENTITY; 3];
        luts[2][0] = std::array::from_fn(|i| (i / 2) as u8);
        render(&map, src, &luts, &mut out);
        let w = map.planes[0].size.0;
        let row = &out[10 * w..11 * w];
        let [(s0, n0), (s1, n1)] = map.planes[0].seams;
        assert_eq!((row[0], row[s0 - 1], row[s0 + n0]), (40, 40, 200));
        assert_eq!((row[s1 - 1], row[s1 + n1], row[w - 1]), (200, 60, 60));
        let mid = f64::from(row[s0 + n0 / 2]);
        assert!((mid - 120.0).abs() <= 160.0 / n0 as f64 + 1.0, "{mid}");
        assert!(row[s0..s0 + n0].windows(2).all(|p| p[0] <= p[1]));
        assert!(row[s1..s1 + n1].windows(2).all(|p| p[0] >= p[1]));
    }
}
