//! Normalized cross-correlation of band energy series, and its peak.

use super::BANDS;

/// The normalized cross-correlation of `a` and `b` (each `BANDS` values per
/// transition) with `a`'s transition `i` against `b`'s transition `i + k`,
/// over the transitions both have. Each band is centred on its own mean over
/// that overlap; the products are summed over all bands, so a band where
/// nothing moves adds nothing. `None` when fewer than `min_overlap`
/// transitions overlap or nothing varies.
pub fn ncc_at(a: &[f32], b: &[f32], k: i64, min_overlap: usize) -> Option<f64> {
    let (na, nb) = ((a.len() / BANDS) as i64, (b.len() / BANDS) as i64);
    let (lo, hi) = ((-k).max(0), na.min(nb - k));
    if hi - lo < min_overlap as i64 {
        return None;
    }
    let (mut num, mut da, mut db) = (0.0f64, 0.0f64, 0.0f64);
    for band in 0..BANDS {
        let at = |s: &[f32], i: i64| f64::from(s[i as usize * BANDS + band]);
        let n = (hi - lo) as f64;
        let ma = (lo..hi).map(|i| at(a, i)).sum::<f64>() / n;
        let mb = (lo..hi).map(|i| at(b, i + k)).sum::<f64>() / n;
        for i in lo..hi {
            let (x, y) = (at(a, i) - ma, at(b, i + k) - mb);
            num += x * y;
            da += x * x;
            db += y * y;
        }
    }
    (da > 0.0 && db > 0.0).then(|| num / (da * db).sqrt())
}

/// The series minus its centred moving average over `2 * half + 1`
/// transitions, band by band: what is left is how the motion changes from
/// moment to moment. Slow drifts (a crowd thinning out, light changing)
/// correlate at every lag alike and would bury the peak under a broad hill.
pub fn high_pass(series: &[f32], half: usize) -> Vec<f32> {
    let n = series.len() / BANDS;
    let mut out = vec![0.0f32; series.len()];
    for band in 0..BANDS {
        let at = |i: usize| f64::from(series[i * BANDS + band]);
        // Prefix sums make each average O(1).
        let mut prefix = vec![0.0f64; n + 1];
        for i in 0..n {
            prefix[i + 1] = prefix[i] + at(i);
        }
        for i in 0..n {
            let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(n));
            let mean = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            out[i * BANDS + band] = (at(i) - mean) as f32;
        }
    }
    out
}

/// Correlation by lag: `values[j]` belongs to lag `first_lag + j`.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// The lag of `values[0]`.
    pub first_lag: i64,
    /// The correlation at each lag, `None` where it could not be measured.
    pub values: Vec<Option<f64>>,
}

impl Curve {
    /// An empty curve over lags `-reach..=reach`.
    pub fn new(reach: i64) -> Curve {
        Curve {
            first_lag: -reach,
            values: vec![None; (2 * reach + 1) as usize],
        }
    }

    /// The value at `lag`, if measured.
    pub fn at(&self, lag: i64) -> Option<f64> {
        let j = usize::try_from(lag - self.first_lag).ok()?;
        self.values.get(j).copied().flatten()
    }

    /// The mean of several curves over the same lags, lag by lag, of the
    /// values each has.
    pub fn mean(curves: &[Curve]) -> Option<Curve> {
        let first = curves.first()?;
        let mut out = first.clone();
        for (j, v) in out.values.iter_mut().enumerate() {
            let lag = first.first_lag + j as i64;
            let have: Vec<f64> = curves.iter().filter_map(|c| c.at(lag)).collect();
            *v = (!have.is_empty()).then(|| have.iter().sum::<f64>() / have.len() as f64);
        }
        Some(out)
    }
}

/// The best lag of a curve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// The lag, refined below a frame by a parabola through its neighbours.
    pub lag: f64,
    /// The correlation there.
    pub value: f64,
    /// The best correlation outside the peak's lobe (the run of values
    /// falling away from it on both sides); 0 if there is none.
    pub second: f64,
}

/// Finds a curve's peak, or `None` if it has no values.
pub fn find_peak(c: &Curve) -> Option<Peak> {
    let (best, value) = c
        .values
        .iter()
        .enumerate()
        .filter_map(|(j, v)| v.map(|v| (j, v)))
        .max_by(|x, y| x.1.total_cmp(&y.1))?;
    let at = |j: usize| c.values.get(j).copied().flatten();
    // The lobe: walk down from the peak while values keep falling.
    let (mut lo, mut hi) = (best, best);
    while lo > 0 && matches!((at(lo - 1), at(lo)), (Some(a), Some(b)) if a <= b) {
        lo -= 1;
    }
    while matches!((at(hi + 1), at(hi)), (Some(a), Some(b)) if a <= b) {
        hi += 1;
    }
    let second = c
        .values
        .iter()
        .enumerate()
        .filter(|(j, _)| *j < lo || *j > hi)
        .filter_map(|(_, v)| *v)
        .fold(0.0f64, f64::max);
    let refine = match (best.checked_sub(1).and_then(at), at(best + 1)) {
        (Some(l), Some(r)) if l - 2.0 * value + r < 0.0 => {
            (0.5 * (l - r) / (l - 2.0 * value + r)).clamp(-0.5, 0.5)
        }
        _ => 0.0,
    };
    Some(Peak {
        lag: c.first_lag as f64 + best as f64 + refine,
        value,
        second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-random series, the same in every band.
    fn series(n: usize, seed: u64) -> Vec<f32> {
        let mut x = seed;
        let mut out = Vec::new();
        for _ in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let v = (x >> 40) as f32 / (1u64 << 24) as f32;
            out.extend(std::iter::repeat_n(v, BANDS));
        }
        out
    }

    #[test]
    fn a_shifted_copy_peaks_at_its_shift() {
        let b = series(200, 7);
        // a is b from transition 13 on: a[i] = b[i + 13].
        let a = b[13 * BANDS..13 * BANDS + 120 * BANDS].to_vec();
        assert!((ncc_at(&a, &b, 13, 50).unwrap() - 1.0).abs() < 1e-9);
        let mut curve = Curve::new(20);
        for (j, v) in curve.values.iter_mut().enumerate() {
            *v = ncc_at(&a, &b, j as i64 - 20, 50);
        }
        let p = find_peak(&curve).unwrap();
        assert_eq!(p.lag.round(), 13.0);
        assert!((p.lag - 13.0).abs() < 0.5);
        assert!(p.value > 0.999 && p.second < 0.5, "{p:?}");
    }

    #[test]
    fn high_pass_removes_a_ramp_and_keeps_a_spike() {
        let mut s: Vec<f32> = (0..40)
            .flat_map(|i| std::iter::repeat_n(i as f32, BANDS))
            .collect();
        s[20 * BANDS] += 10.0;
        let h = high_pass(&s, 3);
        // Away from the ends and the spike, a ramp is its own average.
        assert!(h[10 * BANDS + 1].abs() < 1e-4);
        assert!(h[20 * BANDS] > 8.0 && h[20 * BANDS + 1].abs() < 1e-4);
    }

    #[test]
    fn too_little_overlap_or_no_variation_is_none() {
        let b = series(100, 3);
        assert_eq!(ncc_at(&b, &b, 90, 20), None);
        let flat = vec![1.0f32; 100 * BANDS];
        assert_eq!(ncc_at(&flat, &b, 0, 20), None);
    }

    #[test]
    fn parabola_refines_between_frames() {
        // Symmetric values around lag 2.5: 0.5 -> 0.9 -> 0.9 -> 0.5.
        let curve = Curve {
            first_lag: 0,
            values: vec![
                Some(0.1),
                Some(0.5),
                Some(0.9),
                Some(0.9),
                Some(0.5),
                Some(0.1),
            ],
        };
        let p = find_peak(&curve).unwrap();
        assert!((p.lag - 2.5).abs() < 1e-9, "{p:?}");
        assert_eq!(p.second, 0.0);
        let mean = Curve::mean(&[curve.clone(), Curve::new(2)]).unwrap();
        assert_eq!(mean.values[2], Some(0.9));
        assert_eq!(Curve::mean(&[]), None);
    }
}
