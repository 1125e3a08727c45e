//! The bilinear run eight samples at a time with AVX2 (x86-64 servers that
//! have it, detected at run time), the same arithmetic as the scalar loop
//! in [`super::render`] bit for bit (a test holds them to it).
//!
//! This is the project's only `unsafe`: AVX2 intrinsics, and the gathers
//! that read four bytes at each sample's top-left and bottom-left pixel.
//! Positions are clamped into the frame exactly as the scalar loop clamps
//! them, so a gather starts at most at the plane's last-but-one row and
//! column and reads at most two bytes past that row's end; the caller
//! proves the slice holds them ([`run`] checks, and falls back to scalar
//! when it cannot).

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
    (stride, rows): (usize, usize),
    max: [i32; 2],
    p: [i32; 2],
    step: [i32; 2],
    out: &mut [u8],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let last = (rows - 1) * stride + (max[0] as usize >> 16) + 1;
        if out.len() >= 8 && src.len() > last + OVERREAD && is_x86_feature_detected!("avx2") {
            let groups = out.len() / 8;
            // SAFETY: AVX2 is present; every gather reads below
            // `last + OVERREAD + 1` bytes of `src` (clamped positions).
            unsafe { run_avx2(src, stride, max, p, step, &mut out[..groups * 8]) };
            return groups * 8;
        }
    }
    let _ = (src, stride, rows, max, p, step, out);
    0
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn run_avx2(
    src: &[u8],
    stride: usize,
    max: [i32; 2],
    p: [i32; 2],
    step: [i32; 2],
    out: &mut [u8],
) {
    let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let mut px = _mm256_add_epi32(
        _mm256_set1_epi32(p[0]),
        _mm256_mullo_epi32(lanes, _mm256_set1_epi32(step[0])),
    );
    let mut py = _mm256_add_epi32(
        _mm256_set1_epi32(p[1]),
        _mm256_mullo_epi32(lanes, _mm256_set1_epi32(step[1])),
    );
    let (sx, sy) = (
        _mm256_set1_epi32(step[0].wrapping_mul(8)),
        _mm256_set1_epi32(step[1].wrapping_mul(8)),
    );
    let (zero, mx, my) = (
        _mm256_setzero_si256(),
        _mm256_set1_epi32(max[0]),
        _mm256_set1_epi32(max[1]),
    );
    let (bytes, rows) = (_mm256_set1_epi32(255), _mm256_set1_epi32(stride as i32));
    let base = src.as_ptr() as *const i32;
    // SAFETY (gathers): see `run`; `base` and `base + stride` bytes.
    let below = unsafe { src.as_ptr().add(stride) } as *const i32;
    for group in out.chunks_exact_mut(8) {
        let x = _mm256_min_epi32(_mm256_max_epi32(px, zero), mx);
        let y = _mm256_min_epi32(_mm256_max_epi32(py, zero), my);
        let fx = _mm256_and_si256(_mm256_srli_epi32(x, 8), bytes);
        let fy = _mm256_and_si256(_mm256_srli_epi32(y, 8), bytes);
        let at = _mm256_add_epi32(
            _mm256_mullo_epi32(_mm256_srli_epi32(y, 16), rows),
            _mm256_srli_epi32(x, 16),
        );
        let top = unsafe { _mm256_i32gather_epi32::<1>(base, at) };
        let bottom = unsafe { _mm256_i32gather_epi32::<1>(below, at) };
        let t = lerp(top, fx, bytes);
        let b = lerp(bottom, fx, bytes);
        // (t * (256 - fy) + b * fy + 2^15) >> 16, as t * 256 + (b - t) * fy.
        let v = _mm256_add_epi32(
            _mm256_slli_epi32(t, 8),
            _mm256_mullo_epi32(_mm256_sub_epi32(b, t), fy),
        );
        let v = _mm256_srli_epi32(_mm256_add_epi32(v, _mm256_set1_epi32(1 << 15)), 16);
        store_low_bytes(v, group);
        px = _mm256_add_epi32(px, sx);
        py = _mm256_add_epi32(py, sy);
    }
}

/// `a * (256 - f) + b * f` for the two low bytes `a`, `b` of each lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn lerp(pair: __m256i, f: __m256i, bytes: __m256i) -> __m256i {
    let a = _mm256_and_si256(pair, bytes);
    let b = _mm256_and_si256(_mm256_srli_epi32(pair, 8), bytes);
    _mm256_add_epi32(
        _mm256_slli_epi32(a, 8),
        _mm256_mullo_epi32(_mm256_sub_epi32(b, a), f),
    )
}

/// The low byte of each of the eight lanes, in order, into `out`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn store_low_bytes(v: __m256i, out: &mut [u8]) {
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let packed = _mm256_permutevar8x32_epi32(
        _mm256_shuffle_epi8(v, pick),
        _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1),
    );
    let low = _mm256_castsi256_si128(packed);
    let mut eight = [0u8; 16];
    // SAFETY: `eight` is 16 bytes, an unaligned store of 16.
    unsafe { _mm_storeu_si128(eight.as_mut_ptr() as *mut __m128i, low) };
    out.copy_from_slice(&eight[..8]);
}
