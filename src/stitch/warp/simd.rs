//! The bilinear run eight samples at a time with AVX2 (x86-64 servers that
//! have it, detected at run time), the same arithmetic as the scalar loop
//! in [`super::render`] bit for bit (a test holds them to it); and the
//! level tables looked up 64 bytes at a time with AVX-512 VBMI where the
//! server has it (Zen 4, Ice Lake and later), exact for every byte (a test
//! holds it to that too).
//!
//! Where eight samples' pixels come from: when they lie within 16 columns
//! and two rows (three if the samples cross a row), as nearly all of a
//! camera's do (97% on a 1080p rig), those rows' 16 bytes are loaded once
//! and each sample's four pixels picked out with byte shuffles; otherwise
//! two gathers read four bytes at each sample's top-left and bottom-left
//! pixel. The shuffles are why: AMD's gathers take some 7 cycles each,
//! and two a group were half the warp's time. Which window a cell takes
//! is worked out once, in the map ([`window`]); only the check that its
//! bytes are inside the frame runs every frame.
//!
//! This is the project's only `unsafe`: SIMD intrinsics, the table's, the
//! windows' and the runs' unaligned loads, and the gathers.
//! Positions are clamped into the frame exactly as the scalar loop clamps
//! them ([`clamp_of`], worked out here from the plane's size, not taken
//! from the caller), so a gather starts at most at the plane's last-but-one
//! row and column and reads at most two bytes past the bottom-right pixel;
//! before any gather, `usable` checks the plane is at least 2 x 2 and the
//! slice holds those bytes, else the caller's scalar loop does the work. A
//! window is loaded only when its rows' 16 bytes are inside the slice.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Bytes a gather may read past the bottom-right pixel it samples.
pub const OVERREAD: usize = 2;

/// A [`window`] for samples that do not fit in one.
pub const NO_WINDOW: u32 = u32::MAX;

/// The window of 16 columns and two rows (three if they cross a row) that
/// holds the four pixels of each of the eight samples from `p` on by
/// `step` (16.16, clamped to the `w` x `h` plane as the scalar loop clamps
/// them), packed: its column, its row << 15, and 1 << 30 when it has three
/// rows; [`NO_WINDOW`] when they do not fit in one (or the plane is 2^15
/// pixels wide or high, or the samples' positions wrap around `i32`).
/// Without a wrap the clamp is monotonic along the eight, so the first and
/// last samples bound the others. The map works these out once
/// ([`super::map::Span::win`]); the vector path loads a window only
/// after checking its bytes are inside the frame.
pub fn window((w, h): (usize, usize), p: [i32; 2], step: [i32; 2]) -> u32 {
    if w >= 1 << 15 || h >= 1 << 15 || w < 2 || h < 2 {
        return NO_WINDOW;
    }
    let max = clamp_of((w, h));
    let ends = (ends(p[0], step[0], max[0]), ends(p[1], step[1], max[1]));
    let (Some((col, right)), Some((row, bottom))) = ends else {
        return NO_WINDOW;
    };
    if right - col > 14 || bottom - row > 1 {
        return NO_WINDOW;
    }
    col as u32 | (row as u32) << 15 | ((bottom - row) as u32) << 30
}

/// The least and greatest pixel (column or row) of eight samples from
/// `p` on by `step`, clamped to `max`; `None` when the eighth's position
/// wraps around `i32` (the lanes wrap, and a wrapped run is not monotonic:
/// its middle samples may lie far from both ends).
#[inline]
fn ends(p: i32, step: i32, max: i32) -> Option<(i32, i32)> {
    let last = step.checked_mul(7).and_then(|d| p.checked_add(d))?;
    let (first, last) = (p.clamp(0, max) >> 16, last.clamp(0, max) >> 16);
    Some((first.min(last), first.max(last)))
}

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
/// range) and under 2^15 each way (rows and columns are 16-bit words in
/// the lanes), and `src` holds the bottom-right pixel and the
/// [`OVERREAD`] bytes a gather there reads past it.
#[cfg(target_arch = "x86_64")]
fn usable(src: &[u8], (w, h): (usize, usize)) -> bool {
    let words = 2..1 << 15;
    let fits = words.contains(&w) && words.contains(&h);
    fits && src.len() > (h - 1) * w + (w - 1) + OVERREAD && is_x86_feature_detected!("avx2")
}

/// Draws whole cells of a row with AVX2: `knots[k]` is `[x, y]` (16.16)
/// of cell `k`'s first column and `knots[k + 1]` of the next cell's, each
/// cell eight columns stepping evenly between them, `out` eight bytes a
/// cell (one cell fewer than knots), `wins[k]` the cell's [`window`]
/// (gathers where there is none). `later[k]`, when there, is the same
/// knot some rows further down, whose source bytes are asked into the
/// cache now (see [`prefetch_lower`]). False (nothing drawn) when AVX2 is
/// not there or `src` is too short for the gathers, or the plane is 2^15
/// pixels wide or high.
pub fn run_cells(
    src: &[u8],
    plane: (usize, usize),
    (knots, wins): (&[[i32; 2]], &[u32]),
    later: &[[i32; 2]],
    out: &mut [u8],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if usable(src, plane) {
        // SAFETY: as in `run`.
        unsafe { cells_avx2(src, plane, (knots, wins), later, out) };
        return true;
    }
    let _ = (src, plane, knots, wins, later, out);
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

/// The clamps, masks and multipliers every group of eight uses.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Consts {
    /// The plane's row length, its clamp, and its slice's length.
    stride: usize,
    max: [i32; 2],
    len: usize,
    zero: __m256i,
    mx: __m256i,
    my: __m256i,
    /// Each lane's words `[1, stride]`: `[column, row]` to the index.
    at: __m256i,
    /// The low seven and eight bits.
    b7: __m256i,
    b8: __m256i,
    /// A byte's top bit in each byte: `v ^ 0x80` is `v - 128` signed.
    signed: __m256i,
    /// `fx * MUL_X + ADD_X` are the bytes `[128 - fx, fx, 128 - fx, fx]`.
    mul_x: __m256i,
    add_x: __m256i,
    /// `fy * MUL_Y + ADD_Y` are the words `[256 - fy, fy]`.
    mul_y: __m256i,
    add_y: __m256i,
    /// What undoes the bytes' bias (`128 * 128` per row, times 256),
    /// and rounds.
    unbias: __m256i,
    /// Added to a lane's `column * 0x0101` (bytes `[c, c]`): the shuffle
    /// indices `[c, c + 1, none, none]`, and shifted up by 16 bits,
    /// `[none, none, c, c + 1]`.
    pair: __m256i,
    pair_below: __m256i,
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn consts(src: &[u8], plane: (usize, usize)) -> Consts {
    let (stride, max) = (plane.0, clamp_of(plane));
    Consts {
        stride,
        max,
        len: src.len(),
        zero: _mm256_setzero_si256(),
        mx: _mm256_set1_epi32(max[0]),
        my: _mm256_set1_epi32(max[1]),
        at: _mm256_set1_epi32(((stride as i32) << 16) | 1),
        b7: _mm256_set1_epi32(127),
        b8: _mm256_set1_epi32(255),
        signed: _mm256_set1_epi8(-128),
        mul_x: _mm256_set1_epi32(0x00FF_00FF),
        add_x: _mm256_set1_epi32(0x0080_0080),
        mul_y: _mm256_set1_epi32(0xFFFF),
        add_y: _mm256_set1_epi32(256),
        unbias: _mm256_set1_epi32(128 * 128 * 256 + (1 << 14)),
        pair: _mm256_set1_epi32(0x8080_0100_u32 as i32),
        pair_below: _mm256_set1_epi32(0x0100_8080),
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
    let k = consts(src, plane);
    let (mut x, mut y) = (p[0], p[1]);
    for group in out.chunks_exact_mut(8) {
        // SAFETY: the caller's (see `run`).
        unsafe { draw8(src, &k, [x, y], step, window(plane, [x, y], step), group) };
        x = x.wrapping_add(step[0].wrapping_mul(8));
        y = y.wrapping_add(step[1].wrapping_mul(8));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn cells_avx2(
    src: &[u8],
    plane: (usize, usize),
    (knots, wins): (&[[i32; 2]], &[u32]),
    later: &[[i32; 2]],
    out: &mut [u8],
) {
    let k = consts(src, plane);
    for (i, (pair, group)) in knots.windows(2).zip(out.chunks_exact_mut(8)).enumerate() {
        // As `map::steps` over eight columns: the difference, rounded down.
        let ([x, y], [nx, ny]) = (pair[0], pair[1]);
        let (dx, dy) = (nx.wrapping_sub(x) >> 3, ny.wrapping_sub(y) >> 3);
        if i % ASK_EVERY == 0
            && let Some(&[lx, ly]) = later.get(i)
        {
            prefetch_lower(src, k.stride, k.max, lx, ly);
        }
        // SAFETY: the caller's (see `run_cells`).
        let win = wins.get(i).copied().unwrap_or(NO_WINDOW);
        unsafe { draw8(src, &k, [x, y], [dx, dy], win, group) };
    }
}

/// Cells a [`prefetch_lower`] serves: its 128 bytes hold the ~45 columns
/// four cells read on a 1080p rig. Every cell asking (64 bytes) took a
/// 1080p frame 5.4 ms, every fourth 5.1-5.2, every eighth 5.4-5.5.
const ASK_EVERY: usize = 4;

/// Asks for 128 bytes of the lower of the two source rows from `(x, y)`
/// (16.16, clamped) on to be brought into the L2 cache.
///
/// Why the lower row, rows ahead, and not the cells just ahead on this
/// row: the samples' loads do not teach the hardware prefetcher the
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
        // Prefetches read nothing and never fault; the second address
        // may lie past `src`'s end, so it is computed with wrapping_add.
        let lower = lower as *const u8;
        _mm_prefetch::<_MM_HINT_T1>(lower as *const i8);
        _mm_prefetch::<_MM_HINT_T1>(lower.wrapping_add(64) as *const i8);
    }
}

// The helpers below are `#[inline(always)]` rather than AVX2 functions of
// their own: the release profile optimises for size, under which LLVM
// keeps an AVX2 `draw8` out of line (a call per eight samples, 10-20% of
// the warp). Inlined into `run_avx2` and `cells_avx2` they run with those
// functions' AVX2.

/// Eight samples from `p` (16.16) on by `step` into `out`, the scalar
/// loop's arithmetic in 16-bit lanes: each sample's four bytes in one
/// lane, less 128 (signed), times the bytes `[128 - fx, fx, ..]` into the
/// words of the upper and lower rows (`pmaddubsw`, no saturation: each
/// word is within 128 * 128 of zero), those times `[256 - fy, fy]` into
/// one 32-bit sum (`pmaddwd`), the bias added back, rounded, shifted.
///
/// # Safety
/// AVX2 is there (called only from AVX2 functions), and `src` holds every
/// byte the gathers read for the clamped positions (see [`run`]); the
/// plane's width and height are under 2^15 (`usable`).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn draw8(src: &[u8], k: &Consts, p: [i32; 2], step: [i32; 2], win: u32, out: &mut [u8]) {
    // SAFETY: the caller's.
    unsafe {
        let x = _mm256_min_epi32(_mm256_max_epi32(lanes(p[0], step[0]), k.zero), k.mx);
        let y = _mm256_min_epi32(_mm256_max_epi32(lanes(p[1], step[1]), k.zero), k.my);
        let four = match unpack(k, win) {
            Some(w) => shuffle4(src, k, w, x, y),
            None => gather4(src, k, x, y),
        };
        let pixels = _mm256_xor_si256(four, k.signed);
        let fx = _mm256_and_si256(_mm256_srli_epi32(x, 9), k.b7);
        let wx = _mm256_add_epi32(_mm256_mullo_epi32(fx, k.mul_x), k.add_x);
        let rows = _mm256_maddubs_epi16(wx, pixels);
        let fy = _mm256_and_si256(_mm256_srli_epi32(y, 8), k.b8);
        let wy = _mm256_add_epi32(_mm256_mullo_epi32(fy, k.mul_y), k.add_y);
        let v = _mm256_add_epi32(_mm256_madd_epi16(rows, wy), k.unbias);
        store_low_bytes(_mm256_srli_epi32(v, 15), out);
    }
}

/// Each sample's four pixels as one lane's bytes `[a, b, c, d]`: the
/// upper row's pair, then the lower row's, by two gathers.
///
/// # Safety
/// As [`draw8`]'s; `x` and `y` are clamped.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn gather4(src: &[u8], k: &Consts, x: __m256i, y: __m256i) -> __m256i {
    // SAFETY: the caller's; `below` is `stride` bytes on, inside `src`.
    unsafe {
        // The words [column, row], times [1, stride] and summed.
        let at = _mm256_madd_epi16(
            _mm256_blend_epi16::<0xAA>(_mm256_srli_epi32(x, 16), y),
            k.at,
        );
        let below = src.as_ptr().add(k.stride) as *const i32;
        let top = _mm256_i32gather_epi32::<1>(src.as_ptr() as *const i32, at);
        let bottom = _mm256_i32gather_epi32::<1>(below, at);
        _mm256_blend_epi16::<0xAA>(top, _mm256_slli_epi32(bottom, 16))
    }
}

/// A [`window`]'s parts: `at` its top-left byte, `col` and `row` its
/// column and row, `crosses` whether it has three rows.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Window {
    at: usize,
    col: i32,
    row: i32,
    crosses: bool,
}

/// The [`Window`] packed in `win`, if there is one and its rows' 16 bytes
/// are all inside the slice (checked here, whatever the map says).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn unpack(k: &Consts, win: u32) -> Option<Window> {
    if win == NO_WINDOW {
        return None;
    }
    let (col, row, crosses) = (win & 0x7FFF, (win >> 15) & 0x7FFF, win >> 30 != 0);
    let at = row as usize * k.stride + col as usize;
    let fits = at + (1 + usize::from(crosses)) * k.stride + 16 <= k.len;
    fits.then_some(Window {
        at,
        col: col as i32,
        row: row as i32,
        crosses,
    })
}

/// [`gather4`]'s lanes from a [`Window`]: its rows loaded once (16 bytes
/// each, into both halves), each lane's pairs picked by byte shuffles.
///
/// # Safety
/// As [`draw8`]'s; `w` is [`unpack`]'s, checked inside the slice.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn shuffle4(src: &[u8], k: &Consts, w: Window, x: __m256i, y: __m256i) -> __m256i {
    // SAFETY: the caller's; `unpack` checked the rows' bytes are there.
    unsafe {
        let row = |r: usize| {
            let at = src.as_ptr().add(w.at + r * k.stride) as *const __m128i;
            _mm256_broadcastsi128_si256(_mm_loadu_si128(at))
        };
        let c = _mm256_sub_epi32(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(w.col));
        let cc = _mm256_or_si256(c, _mm256_slli_epi32(c, 8));
        let (upper, lower) = (
            _mm256_add_epi32(cc, k.pair),
            _mm256_add_epi32(_mm256_slli_epi32(cc, 16), k.pair_below),
        );
        let (r0, r1) = (row(0), row(1));
        let first = _mm256_or_si256(
            _mm256_shuffle_epi8(r0, upper),
            _mm256_shuffle_epi8(r1, lower),
        );
        // Without a branch (which samples cross a row is hard to predict):
        // a window that does not cross loads its second row again, and no
        // lane takes the second pick.
        let second = _mm256_or_si256(
            _mm256_shuffle_epi8(r1, upper),
            _mm256_shuffle_epi8(row(1 + usize::from(w.crosses)), lower),
        );
        let down = _mm256_cmpgt_epi32(_mm256_srli_epi32(y, 16), _mm256_set1_epi32(w.row));
        _mm256_blendv_epi8(first, second, down)
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
