//! Direct photometric alignment of the three cameras over their overlaps:
//! Levenberg-Marquardt on the gray-level differences of the two cameras that
//! see each sampled panorama ray, coarse to fine (blurred images first), with
//! a yaw search at the coarsest level to get into the basin and Huber
//! weights so that what differs between the views (a player, a glare) does
//! not pull.
//!
//! Parameters: CAM_C's FOV and k1; CAM_L's and CAM_R's yaw, pitch, roll,
//! FOV and k1; CAM_L's and CAM_R's log exposure gain against CAM_C. CAM_C's
//! rotation is the frame of reference. k2 stays at the prior.

use super::camera::{Camera, Cylinder};
use super::image::Gray;

/// Number of parameters.
pub const NP: usize = 14;

/// The three cameras and two gains as one vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params(pub [f64; NP]);

impl Params {
    /// From cameras (CAM_C's rotation is ignored: it is the reference) and
    /// gains of CAM_L and CAM_R against CAM_C.
    pub fn from_cameras(c: &[Camera; 3], gains: [f64; 2]) -> Params {
        let [l, m, r] = c;
        Params([
            m.hfov_deg,
            m.k1,
            l.yaw_deg,
            l.pitch_deg,
            l.roll_deg,
            l.hfov_deg,
            l.k1,
            r.yaw_deg,
            r.pitch_deg,
            r.roll_deg,
            r.hfov_deg,
            r.k1,
            gains[0].ln(),
            gains[1].ln(),
        ])
    }

    /// The cameras, `k2` taken from `prior`.
    pub fn cameras(&self, prior: &[Camera; 3]) -> [Camera; 3] {
        let p = &self.0;
        let side = |i: usize, k2| Camera {
            yaw_deg: p[i],
            pitch_deg: p[i + 1],
            roll_deg: p[i + 2],
            hfov_deg: p[i + 3],
            k1: p[i + 4],
            k2,
        };
        let center = Camera {
            hfov_deg: p[0],
            k1: p[1],
            k2: prior[1].k2,
            ..Camera::nominal(0.0, p[0])
        };
        [side(2, prior[0].k2), center, side(7, prior[2].k2)]
    }

    /// Exposure gains of CAM_L, CAM_C, CAM_R (CAM_C is 1).
    pub fn gains(&self) -> [f64; 3] {
        [self.0[12].exp(), 1.0, self.0[13].exp()]
    }
}

/// Which parameters each seam moves (the other side's and its gain).
pub fn seam_params(seam: usize) -> std::ops::Range<usize> {
    if seam == 0 { 2..7 } else { 7..12 }
}

/// The problem: images (at calibration size) and the sampled rays of each
/// seam.
pub struct Problem<'a> {
    /// CAM_L, CAM_C, CAM_R.
    pub images: [&'a Gray; 3],
    /// Rays sampled in each seam's overlap (0: L-C, 1: C-R).
    pub rays: [Vec<[f64; 3]>; 2],
    /// k2 and the prior's other fixed values.
    pub prior: [Camera; 3],
}

impl Problem<'_> {
    /// Residual per sampled ray (seam 0's, then seam 1's) and whether both
    /// cameras saw it: `g_a I_a - g_b I_b`.
    pub fn residuals(&self, p: &Params) -> Vec<Option<f64>> {
        let cams = p.cameras(&self.prior);
        let gains = p.gains();
        let rots = cams.map(|c| c.rotation());
        let mut out = Vec::with_capacity(self.rays[0].len() + self.rays[1].len());
        for (seam, rays) in self.rays.iter().enumerate() {
            let (a, b) = (seam, seam + 1);
            for ray in rays {
                let va = self.value(&cams[a], &rots[a], a, ray);
                let vb = self.value(&cams[b], &rots[b], b, ray);
                out.push(match (va, vb) {
                    (Some(x), Some(y)) => Some(gains[a] * x - gains[b] * y),
                    _ => None,
                });
            }
        }
        out
    }

    fn value(
        &self,
        cam: &Camera,
        rot: &super::camera::Mat3,
        i: usize,
        ray: &[f64; 3],
    ) -> Option<f64> {
        let img = self.images[i];
        let (x, y) = cam.project(rot, *ray, img.w as f64, img.h as f64)?;
        img.sample(x, y)
    }

    /// Huber-weighted cost of the residuals both cameras saw, and how many.
    fn cost(r: &[Option<f64>], k: f64) -> (f64, usize) {
        let mut sum = 0.0;
        let mut n = 0;
        for v in r.iter().flatten() {
            let a = v.abs();
            sum += if a <= k { a * a } else { 2.0 * k * a - k * k };
            n += 1;
        }
        (sum, n)
    }

    /// Levenberg-Marquardt from `start`, moving only the parameters in
    /// `free`. Returns the best parameters found.
    pub fn refine(&self, start: Params, free: &[usize], iterations: usize) -> Params {
        let mut p = start;
        let mut r = self.residuals(&p);
        let k = huber_k(&r);
        let (mut cost, _) = Self::cost(&r, k);
        let mut lambda = 1e-3;
        for _ in 0..iterations {
            let (jtj, jtr) = self.normal_equations(&p, &r, free, k);
            let mut improved = false;
            for _ in 0..8 {
                let mut a = jtj.clone();
                for (i, row) in a.iter_mut().enumerate() {
                    row[i] += lambda * row[i].max(1e-9);
                }
                let Some(step) = solve(a, jtr.iter().map(|v| -v).collect()) else {
                    lambda *= 10.0;
                    continue;
                };
                let mut q = p;
                for (s, &i) in step.iter().zip(free) {
                    q.0[i] += s;
                }
                let rq = self.residuals(&q);
                let (cq, _) = Self::cost(&rq, k);
                if cq < cost {
                    let gain = (cost - cq) / cost.max(1e-12);
                    (p, r, cost) = (q, rq, cq);
                    lambda = (lambda / 3.0).max(1e-9);
                    improved = gain > 1e-7;
                    break;
                }
                lambda *= 4.0;
            }
            if !improved {
                break;
            }
        }
        p
    }

    /// `J^T W J` and `J^T W r` by forward differences over `free`.
    fn normal_equations(
        &self,
        p: &Params,
        r: &[Option<f64>],
        free: &[usize],
        k: f64,
    ) -> (Vec<Vec<f64>>, Vec<f64>) {
        let cols = self.jacobian_columns(p, r, free);
        weighted_normal_equations(&cols, &robust_weights(r, k), r)
    }

    /// The residuals' derivative by each free parameter, by forward
    /// differences (one column per parameter, computed in parallel).
    fn jacobian_columns(&self, p: &Params, r: &[Option<f64>], free: &[usize]) -> Vec<Vec<f64>> {
        use rayon::prelude::*;
        free.par_iter()
            .map(|&i| {
                let h = step_of(i);
                let mut q = *p;
                q.0[i] += h;
                let rq = self.residuals(&q);
                r.iter()
                    .zip(&rq)
                    .map(|(a, b)| match (a, b) {
                        (Some(a), Some(b)) => (b - a) / h,
                        _ => 0.0,
                    })
                    .collect()
            })
            .collect()
    }

    /// Normalized cross-correlation of the two cameras over one seam's
    /// rays (1 is identical up to gain and offset), and the count seen.
    pub fn seam_ncc(&self, p: &Params, seam: usize) -> (f64, usize) {
        let cams = p.cameras(&self.prior);
        let rots = cams.map(|c| c.rotation());
        let (a, b) = (seam, seam + 1);
        let pairs: Vec<(f64, f64)> = self.rays[seam]
            .iter()
            .filter_map(|ray| {
                Some((
                    self.value(&cams[a], &rots[a], a, ray)?,
                    self.value(&cams[b], &rots[b], b, ray)?,
                ))
            })
            .collect();
        (ncc(&pairs), pairs.len())
    }

    /// RMS gray-level difference over one seam after the gains.
    pub fn seam_rms(&self, p: &Params, seam: usize) -> f64 {
        let r = self.residuals(p);
        let start = if seam == 0 { 0 } else { self.rays[0].len() };
        let part = &r[start..start + self.rays[seam].len()];
        let vals: Vec<f64> = part.iter().flatten().copied().collect();
        if vals.is_empty() {
            return f64::NAN;
        }
        (vals.iter().map(|v| v * v).sum::<f64>() / vals.len() as f64).sqrt()
    }
}

/// Huber threshold: 1.5 times the robust spread of the residuals (at least
/// 2 gray levels).
fn huber_k(r: &[Option<f64>]) -> f64 {
    let mut a: Vec<f64> = r.iter().flatten().map(|v| v.abs()).collect();
    if a.is_empty() {
        return 2.0;
    }
    a.sort_by(f64::total_cmp);
    (1.5 * 1.4826 * a[a.len() / 2]).max(2.0)
}

/// Huber weights: 1 for a residual within `k`, `k / |r|` beyond, 0 for
/// a ray not seen.
fn robust_weights(r: &[Option<f64>], k: f64) -> Vec<f64> {
    r.iter()
        .map(|v| match v {
            Some(v) if v.abs() > k => k / v.abs(),
            Some(_) => 1.0,
            None => 0.0,
        })
        .collect()
}

/// `JᵀWJ` and `JᵀWr` from the Jacobian's columns, the weights and the
/// residuals (a ray not seen counts 0).
fn weighted_normal_equations(
    cols: &[Vec<f64>],
    weights: &[f64],
    r: &[Option<f64>],
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let n = cols.len();
    let mut jtj = vec![vec![0.0; n]; n];
    let mut jtr = vec![0.0; n];
    for a in 0..n {
        for b in a..n {
            let s: f64 = (0..r.len())
                .map(|s| weights[s] * cols[a][s] * cols[b][s])
                .sum();
            jtj[a][b] = s;
            jtj[b][a] = s;
        }
        jtr[a] = (0..r.len())
            .map(|s| weights[s] * cols[a][s] * r[s].unwrap_or(0.0))
            .sum();
    }
    (jtj, jtr)
}

fn step_of(i: usize) -> f64 {
    match i {
        1 | 6 | 11 => 1e-4,
        12 | 13 => 1e-4,
        _ => 1e-3,
    }
}

/// NCC of value pairs.
pub fn ncc(pairs: &[(f64, f64)]) -> f64 {
    if pairs.len() < 16 {
        return 0.0;
    }
    let n = pairs.len() as f64;
    let (ma, mb) = pairs
        .iter()
        .fold((0.0, 0.0), |(x, y), (a, b)| (x + a / n, y + b / n));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (a, b) in pairs {
        sab += (a - ma) * (b - mb);
        saa += (a - ma) * (a - ma);
        sbb += (b - mb) * (b - mb);
    }
    if saa <= 1e-9 || sbb <= 1e-9 {
        return 0.0;
    }
    sab / (saa * sbb).sqrt()
}

/// Solves `a x = b` (Gaussian elimination, partial pivoting).
#[allow(clippy::needless_range_loop)]
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[piv][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, piv);
        b.swap(c, piv);
        for rr in c + 1..n {
            let f = a[rr][c] / a[c][c];
            for k in c..n {
                a[rr][k] -= f * a[c][k];
            }
            b[rr] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| a[c][k] * x[k]).sum();
        x[c] = (b[c] - s) / a[c][c];
    }
    Some(x)
}

/// The rays of one seam's overlap to sample: every `step` pixels of a
/// cylinder at `f` pixels per radian, over the azimuths where both
/// cameras of the seam may see (the prior's overlap widened by `margin_deg`
/// each side) and CAM_C's rows (`aspect` is its height over width).
pub fn seam_rays(
    cams: &[Camera; 3],
    seam: usize,
    f: f64,
    aspect: f64,
    step: f64,
    margin_deg: f64,
) -> Vec<[f64; 3]> {
    let (a, b) = (&cams[seam], &cams[seam + 1]);
    let lo = b.yaw_deg - b.hfov_deg / 2.0 - margin_deg;
    let hi = a.yaw_deg + a.hfov_deg / 2.0 + margin_deg;
    let half_v = (cams[1].hfov_deg / 2.0).to_radians().tan() * aspect * 1.2;
    let cyl = Cylinder {
        width: 1,
        height: 1,
        f,
        yaw0_deg: 0.0,
    };
    let mut rays = Vec::new();
    let (u0, u1) = (lo.to_radians() * f, hi.to_radians() * f);
    let mut u = u0;
    while u <= u1 {
        let mut v = -half_v * f;
        while v <= half_v * f {
            rays.push(cyl.ray(u, v));
            v += step;
        }
        u += step;
    }
    rays
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solve_and_ncc() {
        let x = solve(vec![vec![2.0, 1.0], vec![1.0, 3.0]], vec![3.0, 5.0]).unwrap();
        assert!((x[0] - 0.8).abs() < 1e-12 && (x[1] - 1.4).abs() < 1e-12);
        let pairs: Vec<(f64, f64)> = (0..20).map(|i| (i as f64, 2.0 * i as f64 + 3.0)).collect();
        assert!((ncc(&pairs) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn params_round_trip() {
        let cams = [
            Camera::nominal(-60.0, 70.0),
            Camera::nominal(0.0, 72.0),
            Camera::nominal(61.0, 74.0),
        ];
        let p = Params::from_cameras(&cams, [0.8, 1.25]);
        let back = p.cameras(&cams);
        assert_eq!(back, cams);
        let g = p.gains();
        assert!((g[0] - 0.8).abs() < 1e-12 && g[1] == 1.0);
    }
}
