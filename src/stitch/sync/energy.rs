//! Motion energy of column strips, frame by frame.

/// Horizontal bands each strip is split into.
pub const BANDS: usize = 6;

/// Turns a stream of gray frames into, per strip, one value per band per
/// frame transition: the mean absolute difference of the band's pixels
/// between a frame and the one before. Holds one frame.
#[derive(Debug)]
pub struct Meter {
    width: usize,
    height: usize,
    strips: Vec<(usize, usize)>,
    prev: Option<Vec<u8>>,
    series: Vec<Vec<f32>>,
}

impl Meter {
    /// A meter for `width`x`height` frames and the column ranges
    /// `[x0, x1)` of `strips`.
    pub fn new(width: u32, height: u32, strips: &[(u32, u32)]) -> Meter {
        Meter {
            width: width as usize,
            height: height as usize,
            strips: strips
                .iter()
                .map(|&(a, b)| (a as usize, b.min(width) as usize))
                .collect(),
            prev: None,
            series: vec![Vec::new(); strips.len()],
        }
    }

    /// Takes the next frame (`width * height` bytes).
    pub fn push(&mut self, frame: &[u8]) {
        if let Some(prev) = &self.prev {
            for (i, &(x0, x1)) in self.strips.iter().enumerate() {
                for b in 0..BANDS {
                    let (y0, y1) = (b * self.height / BANDS, (b + 1) * self.height / BANDS);
                    let e = band_energy(prev, frame, self.width, (x0, x1), (y0, y1));
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

/// Mean absolute difference of a rectangle of two frames.
fn band_energy(a: &[u8], b: &[u8], width: usize, xs: (usize, usize), ys: (usize, usize)) -> f32 {
    let mut sum = 0u64;
    for y in ys.0..ys.1 {
        let row = y * width;
        for x in xs.0..xs.1 {
            sum += u64::from(a[row + x].abs_diff(b[row + x]));
        }
    }
    let n = ((xs.1 - xs.0) * (ys.1 - ys.0)).max(1);
    sum as f32 / n as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_is_per_strip_and_band() {
        // 4 columns, 6 rows: one band per row. Strip 0 is columns 0..2,
        // strip 1 columns 2..4.
        let mut m = Meter::new(4, 6, &[(0, 2), (2, 4)]);
        let f0 = [0u8; 24];
        let mut f1 = [0u8; 24];
        f1[0] = 10; // row 0, column 0: strip 0, band 0
        f1[4 * 5 + 3] = 20; // row 5, column 3: strip 1, band 5
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
