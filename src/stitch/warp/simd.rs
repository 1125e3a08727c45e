//! The bilinear run eight samples at a time with AVX2 (x86-64 servers that
//! have it, detected at run time), the same arithmetic as the scalar loop
//! in [`super::render`] bit for bit (a test holds them to it); and the
//! level tables looked up 64 bytes at a time with AVX-512 VBMI where the
//! server has it (Zen 4, Ice Lake and later), exact for every byte (a test
//! holds it to that too).
//!
//! This is the project's only `unsafe`: SIMD intrinsics, the table's and
//! the runs' unaligned loads, and the gathers that read four bytes at each
//! sample's top-left and bottom-left pixel.
//! Positions are clamped into the frame exactly as the scalar loop clamps
//! them ([`clamp_of`], worked out here from the plane's size, not taken
//! from the caller), so a gather starts at most at the plane's last-but-one
//! row and column and reads at most two bytes past the bottom-right pixel;
//! before any gather, `usable` checks the plane is at least 2 x 2 and the
//! slice holds those bytes, else the caller's scalar loop does the work.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Bytes a gather may read past the bottom-right pixel it samples.
pub const OVERREAD: usize = 2;

/// Draws as many samples of `out` as fit in whole groups of eight with
/// AVX2, returning how many (0 when AVX2 is not there or `src` is too
/// short for the gathers); the caller draws the rest. Arguments as
/// [`super::render`]'s scalar loop: `p` and `step` 16.16, `max` the clamp.
pub fn run(
    src: &[u8],
    plane: (usize, usize),
    p: [i32; 2],
    step: [i32; 2],
    out: &mut [u8],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if out.len() >= 8 && usable(src, plane) {
        let groups = out.len() / 8;
        // SAFETY: AVX2 is present, and `usable` checked that `src` holds
        // every byte the gathers read at the clamped positions.
        unsafe { run_avx2(src, plane, p, step, &mut out[..groups * 8]) };
        return groups * 8;
    }
    let _ = (src, plane, p, step, out);
    0
}

/// The clamp of a `w` x `h` plane's 16.16 positions, as the scalar loop
/// clamps them: the top-left of the four pixels read is at most the
/// last-but-one row and column.
pub fn clamp_of((w, h): (usize, usize)) -> [i32; 2] {
    [((w as i32 - 1) << 16) - 1, ((h as i32 - 1) << 16) - 1]
}

/// Whether the vector path may run on the `w` x `h` plane starting at
/// `src`: AVX2 is there, the plane is at least 2 x 2 (so the clamp is a
/// range), and `src` holds the bottom-right pixel and the [`OVERREAD`]
/// bytes a gather there reads past it.
#[cfg(target_arch = "x86_64")]
fn usable(src: &[u8], (w, h): (usize, usize)) -> bool {
    let last = (h - 1) * w + (w - 1);
    w >= 2 && h >= 2 && src.len() > last + OVERREAD && is_x86_feature_detected!("avx2")
}

/// Draws whole cells of a row with AVX2: `knots[k]` is `[x, y]` (16.16)
/// of cell `k`'s first column and `knots[k + 1]` of the next cell's, each
/// cell eight columns stepping evenly between them, `out` eight bytes a
/// cell (one cell fewer than knots). `later[k]`, when there, is the same
/// knot some rows further down, whose source bytes are asked into the
/// cache now (see [`prefetch_lower`]). False (nothing drawn) when AVX2 is
/// not there or `src` is too short for the gathers.
pub fn run_cells(
    src: &[u8],
    plane: (usize, usize),
    knots: &[[i32; 2]],
    later: &[[i32; 2]],
    out: &mut [u8],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if usable(src, plane) {
        // SAFETY: as in `run`.
        unsafe { cells_avx2(src, plane, knots, later, out) };
        return true;
    }
    let _ = (src, plane, knots, later, out);
    false
}

/// Puts every byte of `bytes` through `table`: 64 at a time with AVX-512
/// byte permutes (VBMI) where the machine has them, one by one otherwise.
pub fn look_up(table: &[u8; 256], bytes: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    let bytes = if vbmi() {
        // SAFETY: AVX-512 VBMI is there.
        let done = unsafe { look_up_vbmi(table, bytes) };
        &mut bytes[done..]
    } else {
        bytes
    };
    bytes.iter_mut().for_each(|v| *v = table[usize::from(*v)]);
}

/// Whether this x86-64 has AVX-512 with byte permutes (VBMI).
#[cfg(target_arch = "x86_64")]
fn vbmi() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vbmi")
}

/// [`look_up`] for whole groups of 64 bytes: the table in four registers,
/// two 128-byte permutes (the index's low seven bits) and the index's top
/// bit choosing between them. Returns the bytes done.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
fn look_up_vbmi(table: &[u8; 256], bytes: &mut [u8]) -> usize {
    let quarter = |q: usize| {
        let part: &[u8; 64] = table[64 * q..64 * (q + 1)].try_into().expect("64 bytes");
        // SAFETY: `part` is 64 bytes.
        unsafe { _mm512_loadu_si512(part.as_ptr() as *const __m512i) }
    };
    let [t0, t1, t2, t3] = [0, 1, 2, 3].map(quarter);
    let whole = bytes.len() / 64 * 64;
    for group in bytes[..whole].chunks_exact_mut(64) {
        // SAFETY: `group` is 64 bytes, read and written whole.
        unsafe {
            let at = group.as_mut_ptr() as *mut __m512i;
            let i = _mm512_loadu_si512(at);
            let low = _mm512_permutex2var_epi8(t0, i, t1);
            let high = _mm512_permutex2var_epi8(t2, i, t3);
            _mm512_storeu_si512(
                at,
                _mm512_mask_blend_epi8(_mm512_movepi8_mask(i), low, high),
            );
        }
    }
    whole
}

/// The clamps, masks and strides every group of eight uses.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Consts {
    zero: __m256i,
    mx: __m256i,
    my: __m256i,
    bytes: __m256i,
    stride: __m256i,
    half: __m256i,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn consts(stride: usize, max: [i32; 2]) -> Consts {
    Consts {
        zero: _mm256_setzero_si256(),
        mx: _mm256_set1_epi32(max[0]),
        my: _mm256_set1_epi32(max[1]),
        bytes: _mm256_set1_epi32(255),
        stride: _mm256_set1_epi32(stride as i32),
        half: _mm256_set1_epi32(1 << 15),
    }
}

/// `p + lane * step` for the eight lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn lanes(p: i32, step: i32) -> __m256i {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    _mm256_add_epi32(
        _mm256_set1_epi32(p),
        _mm256_mullo_epi32(lanes, _mm256_set1_epi32(step)),
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2(src: &[u8], plane: (usize, usize), p: [i32; 2], step: [i32; 2], out: &mut [u8]) {
    let (stride, max) = (plane.0, clamp_of(plane));
    let k = consts(stride, max);
    let (mut px, mut py) = (lanes(p[0], step[0]), lanes(p[1], step[1]));
    let (sx, sy) = (
        _mm256_set1_epi32(step[0].wrapping_mul(8)),
        _mm256_set1_epi32(step[1].wrapping_mul(8)),
    );
    for group in out.chunks_exact_mut(8) {
        // SAFETY: the caller's (see `run`).
        unsafe { draw8(src, stride, &k, px, py, group) };
        px = _mm256_add_epi32(px, sx);
        py = _mm256_add_epi32(py, sy);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cells_avx2(
    src: &[u8],
    plane: (usize, usize),
    knots: &[[i32; 2]],
    later: &[[i32; 2]],
    out: &mut [u8],
) {
    let (stride, max) = (plane.0, clamp_of(plane));
    let k = consts(stride, max);
    for (i, (pair, group)) in knots.windows(2).zip(out.chunks_exact_mut(8)).enumerate() {
        // As `map::steps` over eight columns: the difference, rounded down.
        let ([x, y], [nx, ny]) = (pair[0], pair[1]);
        let (dx, dy) = (nx.wrapping_sub(x) >> 3, ny.wrapping_sub(y) >> 3);
        if let Some(&[lx, ly]) = later.get(i) {
            prefetch_lower(src, stride, max, lx, ly);
        }
        // SAFETY: the caller's (see `run_cells`).
        unsafe { draw8(src, stride, &k, lanes(x, dx), lanes(y, dy), group) };
    }
}

/// Asks for the lower of the two source rows' bytes at `(x, y)` (16.16,
/// clamped) to be brought into the L2 cache.
///
/// Why the lower row, rows ahead, and not the cells just ahead on this
/// row: the gathers' loads do not teach the hardware prefetcher the
/// rows' walk, and a row of the panorama follows a curve across many rows
/// of a rotated camera's picture. The next row of the panorama follows
/// nearly the same curve a little lower, so the bytes a cell reads for
/// the first time are, nearly all, in its lower row. Asked for one cell
/// ahead they come too late (the previous way: a memory wait at almost
/// every gather, half the warp's time); asked for [`super::render`]'s
/// `LATER` rows ahead they have arrived, and are still in L2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn prefetch_lower(src: &[u8], stride: usize, max: [i32; 2], x: i32, y: i32) {
    let (x, y) = (
        x.clamp(0, max[0]) as usize >> 16,
        y.clamp(0, max[1]) as usize >> 16,
    );
    if let Some(lower) = src.get((y + 1) * stride + x) {
        // A prefetch of an address inside `src`: it reads nothing.
        _mm_prefetch::<_MM_HINT_T1>(lower as *const u8 as *const i8);
    }
}

// The three helpers below are `#[inline(always)]` rather than AVX2
// functions of their own: the release profile optimises for size, under
// which LLVM keeps an AVX2 `draw8` out of line (a call per eight samples,
// 10-20% of the warp). Inlined into `run_avx2` and `cells_avx2` they run
// with those functions' AVX2.

/// Eight samples at positions `px`, `py` (16.16) into `out`.
///
/// # Safety
/// AVX2 is there (called only from AVX2 functions), and `src` holds every
/// byte the gathers read for the clamped positions (see [`run`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn draw8(src: &[u8], stride: usize, k: &Consts, px: __m256i, py: __m256i, out: &mut [u8]) {
    // SAFETY: the caller's; `below` is `stride` bytes on, inside `src`.
    unsafe {
        let x = _mm256_min_epi32(_mm256_max_epi32(px, k.zero), k.mx);
        let y = _mm256_min_epi32(_mm256_max_epi32(py, k.zero), k.my);
        let fx = _mm256_and_si256(_mm256_srli_epi32(x, 8), k.bytes);
        let fy = _mm256_and_si256(_mm256_srli_epi32(y, 8), k.bytes);
        let at = _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_srli_epi32(y, 16), k.stride),
            _mm256_srli_epi32(x, 16),
        );
        let below = src.as_ptr().add(stride) as *const i32;
        let top = _mm256_i32gather_epi32::<1>(src.as_ptr() as *const i32, at);
        let bottom = _mm256_i32gather_epi32::<1>(below, at);
        let t = lerp(top, fx, k.bytes);
        let b = lerp(bottom, fx, k.bytes);
        // (t * (256 - fy) + b * fy + 2^15) >> 16, as t * 256 + (b - t) * fy.
        let v = _mm256_add_epi32(
            _mm256_slli_epi32(t, 8),
            _mm256_mullo_epi32(_mm256_sub_epi32(b, t), fy),
        );
        store_low_bytes(_mm256_srli_epi32(_mm256_add_epi32(v, k.half), 16), out);
    }
}

/// `a * (256 - f) + b * f` for the two low bytes `a`, `b` of each lane.
///
/// # Safety
/// AVX2 is there.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn lerp(pair: __m256i, f: __m256i, bytes: __m256i) -> __m256i {
    // SAFETY: the caller's.
    unsafe {
        let a = _mm256_and_si256(pair, bytes);
        let b = _mm256_and_si256(_mm256_srli_epi32(pair, 8), bytes);
        _mm256_add_epi32(
            _mm256_slli_epi32(a, 8),
            _mm256_mullo_epi32(_mm256_sub_epi32(b, a), f),
        )
    }
}

/// The low byte of each of the eight lanes, in order, into `out` (eight
/// bytes: one store).
///
/// # Safety
/// AVX2 is there.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store_low_bytes(v: __m256i, out: &mut [u8]) {
    // SAFETY: the caller's.
    let eight = unsafe {
        let pick = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1,
            -1, -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let packed = _mm256_permutevar8x32_epi32(
            _mm256_shuffle_epi8(v, pick),
            _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1),
        );
        _mm_cvtsi128_si64(_mm256_castsi256_si128(packed)) as u64
    };
    if let Ok(out) = <&mut [u8; 8]>::try_from(out) {
        *out = eight.to_le_bytes();
    }
}
