//! Motion energy of strips of a frame, frame by frame.

use super::Strip;

/// Horizontal bands each strip is split into.
pub const BANDS: usize = 6;
/// Gray levels of frame-to-frame difference taken for the encoder's noise,
/// not motion: a keyframe refreshes a whole picture at once, in every camera
/// at the same frame index, and over a still, textured background such
/// common steps would outweigh the players and align any clip with frame 0.
pub const NOISE: u8 = 8;

/// Turns a stream of gray frames into, per strip, one value per band per
/// frame transition: the mean absolute difference of the band's pixels
/// between a frame and the one before. Holds one frame.
#[derive(Debug)]
pub struct Meter {
    width: usize,
    strips: Vec<Strip>,
    prev: Option<Vec<u8>>,
    series: Vec<Vec<f32>>,
}

impl Meter {
    /// A meter for `width`x`height` frames and the rectangles `strips`
    /// (each split into `BANDS` bands of its rows).
    pub fn new(width: u32, height: u32, strips: &[Strip]) -> Meter {
        let fit = |r: (u32, u32), max: u32| (r.0.min(max), r.1.min(max));
        Meter {
            width: width as usize,
            strips: strips
                .iter()
                .map(|s| Strip {
                    x: fit(s.x, width),
                    y: fit(s.y, height),
                })
                .collect(),
            prev: None,
            series: vec![Vec::new(); strips.len()],
        }
    }

    /// Takes the next frame (`width * height` bytes).
    pub fn push(&mut self, frame: &[u8]) {
        if let Some(prev) = &self.prev {
            for (i, s) in self.strips.iter().enumerate() {
                let xs = (s.x.0 as usize, s.x.1 as usize);
                let (top, rows) = (s.y.0 as usize, s.y.1.saturating_sub(s.y.0) as usize);
                for b in 0..BANDS {
                    let ys = (top + b * rows / BANDS, top + (b + 1) * rows / BANDS);
                    let e = band_energy(prev, frame, self.width, xs, ys);
                    self.series[i].push(e);
                }
            }
        }
        match &mut self.prev {
            Some(p) => p.copy_from_slice(frame),
            None => self.prev = Some(frame.to_vec()),
        }
    }

    /// The series of each strip: `BANDS` values per transition, transition
    /// by transition.
    pub fn into_series(self) -> Vec<Vec<f32>> {
        self.series
    }
}

/// Mean absolute difference beyond [`NOISE`] of a rectangle of two frames.
fn band_energy(a: &[u8], b: &[u8], width: usize, xs: (usize, usize), ys: (usize, usize)) -> f32 {
    let mut sum = 0u64;
    for y in ys.0..ys.1 {
        let row = y * width;
        for x in xs.0..xs.1 {
            sum += u64::from(a[row + x].abs_diff(b[row + x]).saturating_sub(NOISE));
        }
    }
    let n = (xs.1.saturating_sub(xs.0) * ys.1.saturating_sub(ys.0)).max(1);
    sum as f32 / n as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_per_strip_and_band() {
        // 4 columns, 6 rows: one band per row. Strip 0 is columns 0..2,
        // strip 1 columns 2..4.
        let strip = |x| Strip { x, y: (0, 6) };
        let mut m = Meter::new(4, 6, &[strip((0, 2)), strip((2, 4))]);
        let f0 = [0u8; 24];
        let mut f1 = [0u8; 24];
        f1[0] = 10 + NOISE; // row 0, column 0: strip 0, band 0
        f1[4 * 5 + 3] = 20 + NOISE; // row 5, column 3: strip 1, band 5
        f1[1] = NOISE; // noise: not counted
        m.push(&f0);
        m.push(&f1);
        m.push(&f1);
        let s = m.into_series();
        assert_eq!(s[0].len(), 2 * BANDS);
        assert_eq!(s[0][0], 5.0);
        assert_eq!(s[1][5], 10.0);
        assert!(s[0][1..].iter().all(|&v| v == 0.0));
        assert!(s[1][BANDS..].iter().all(|&v| v == 0.0));
    }
}
