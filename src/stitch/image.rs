//! Small gray images for calibration: a per-pixel temporal median of sampled
//! frames (players move, the pitch does not), Gaussian blur for
//! coarse-to-fine alignment, bilinear sampling and gradients.

/// A gray image, `f32` gray levels 0-255, row after row.
#[derive(Debug, Clone, PartialEq)]
pub struct Gray {
    /// Columns.
    pub w: usize,
    /// Rows.
    pub h: usize,
    /// `w * h` values.
    pub data: Vec<f32>,
}

impl Gray {
    /// The per-pixel median of equally sized 8-bit frames.
    pub fn median_of(w: usize, h: usize, frames: &[Vec<u8>]) -> Gray {
        let mut data = Vec::with_capacity(w * h);
        let mut column = Vec::with_capacity(frames.len());
        for i in 0..w * h {
            column.clear();
            column.extend(frames.iter().map(|f| f[i]));
            column.sort_unstable();
            data.push(column[column.len() / 2] as f32);
        }
        Gray { w, h, data }
    }

    /// The value at fractional pixel index `(x, y)`, bilinear; `None`
    /// outside `[0, w-1] x [0, h-1]`.
    pub fn sample(&self, x: f64, y: f64) -> Option<f64> {
        if !(x >= 0.0 && y >= 0.0 && x <= (self.w - 1) as f64 && y <= (self.h - 1) as f64) {
            return None;
        }
        let (x0, y0) = (
            (x.floor() as usize).min(self.w - 2),
            (y.floor() as usize).min(self.h - 2),
        );
        let (fx, fy) = (x - x0 as f64, y - y0 as f64);
        let at = |xx: usize, yy: usize| self.data[yy * self.w + xx] as f64;
        let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
        let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
        Some(top * (1.0 - fy) + bottom * fy)
    }

    /// Gradient magnitude (central differences) at `(x, y)`, gray levels
    /// per pixel; `None` near the border.
    pub fn gradient(&self, x: f64, y: f64) -> Option<f64> {
        let gx = self.sample(x + 1.0, y)? - self.sample(x - 1.0, y)?;
        let gy = self.sample(x, y + 1.0)? - self.sample(x, y - 1.0)?;
        Some((gx * gx + gy * gy).sqrt() / 2.0)
    }

    /// A separable Gaussian blur (edges clamped); `sigma <= 0` copies.
    pub fn blur(&self, sigma: f64) -> Gray {
        if sigma <= 0.0 {
            return self.clone();
        }
        let r = (3.0 * sigma).ceil() as isize;
        let kernel: Vec<f32> = (-r..=r)
            .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
            .collect();
        let sum: f32 = kernel.iter().sum();
        let kernel: Vec<f32> = kernel.iter().map(|k| k / sum).collect();
        let pass = |src: &[f32], w: usize, h: usize, horizontal: bool| {
            let mut out = vec![0f32; w * h];
            for y in 0..h {
                for x in 0..w {
                    let mut acc = 0f32;
                    for (k, kv) in kernel.iter().enumerate() {
                        let d = k as isize - r;
                        let (sx, sy) = if horizontal {
                            ((x as isize + d).clamp(0, w as isize - 1) as usize, y)
                        } else {
                            (x, (y as isize + d).clamp(0, h as isize - 1) as usize)
                        };
                        acc += kv * src[sy * w + sx];
                    }
                    out[y * w + x] = acc;
                }
            }
            out
        };
        let tmp = pass(&self.data, self.w, self.h, true);
        Gray {
            w: self.w,
            h: self.h,
            data: pass(&tmp, self.w, self.h, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_ignores_a_passing_object_and_sampling_interpolates() {
        let frames = vec![
            vec![10u8, 20, 30, 40],
            vec![10, 250, 30, 40],
            vec![10, 20, 30, 40],
        ];
        let g = Gray::median_of(2, 2, &frames);
        assert_eq!(g.data, vec![10.0, 20.0, 30.0, 40.0]);
        assert_eq!(g.sample(0.5, 0.5), Some(25.0));
        assert_eq!(g.sample(1.0, 1.0), Some(40.0));
        assert_eq!(g.sample(1.01, 0.0), None);
        let b = g.blur(1.0);
        let mean: f32 = b.data.iter().sum::<f32>() / 4.0;
        assert!((mean - 25.0).abs() < 1.0, "{mean}");
    }
}
