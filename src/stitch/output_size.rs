//! How big a panorama is written: the largest that common decoders play,
//! never wider than `processing.output_width` when that is set.
//!
//! The limits designed for:
//!
//! * **H.264: 4096x2304 and at most 36864 macroblocks a frame** (level
//!   5.1/5.2's MaxFS). Hardware H.264 decoders in phones, TVs, Raspberry
//!   Pis and the browsers that use them stop at 4096 columns even where the
//!   level would allow a narrower, wider frame (level 5.1 permits up to 8688
//!   columns if the frame is short enough, which few decoders accept).
//! * **HEVC: 8192x4320 and at most 35,651,584 luma samples** (level 6's
//!   MaxLumaPs): what current HEVC hardware decoders (and so Safari, and
//!   Chrome/Edge with hardware decode) take.
//!
//! A panorama wider or taller is scaled down, aspect kept, to the largest
//! even size inside every limit. Three 1080p cameras (5560 columns with the
//! default overlap) become 4096x796 in H.264 and stay whole in HEVC; three
//! 2160p ones (11320) become 4096x782 or 8192x1564.

use super::encode::Family;

/// A codec's playable frame limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Widest frame.
    pub max_width: u32,
    /// Tallest frame.
    pub max_height: u32,
    /// Most coding blocks in a frame.
    pub max_blocks: u64,
    /// Block side the count is in (16 for H.264 macroblocks, 1 for HEVC's
    /// luma samples).
    pub block: u32,
    /// The limit in words, for the plan.
    pub name: &'static str,
}

/// The limits of a family.
pub fn limit(family: Family) -> Limit {
    match family {
        Family::H264 => Limit {
            max_width: 4096,
            max_height: 2304,
            max_blocks: 36_864,
            block: 16,
            name: "H.264 level 5.1/5.2 for broad hardware decode: at most 4096x2304 \
                   and 36864 macroblocks",
        },
        Family::H265 => Limit {
            max_width: 8192,
            max_height: 4320,
            max_blocks: 35_651_584,
            block: 1,
            name: "HEVC level 6: at most 8192x4320 and 35651584 luma samples",
        },
    }
}

impl Limit {
    fn fits(&self, w: u32, h: u32) -> bool {
        let blocks = |v: u32| u64::from(v.div_ceil(self.block));
        w <= self.max_width && h <= self.max_height && blocks(w) * blocks(h) <= self.max_blocks
    }
}

/// The output size for a `width`x`height` panorama: `(width, height, rule)`
/// where `rule` says which limit decided. `cap` is `processing.output_width`
/// (0 for none).
pub fn fit(width: u32, height: u32, cap: u32, family: Family) -> (u32, u32, String) {
    let lim = limit(family);
    let mut ow = width;
    let mut why = "the panorama's own size".to_string();
    if cap > 0 && ow > cap {
        ow = cap;
        why = format!("processing.output_width {cap}");
    }
    let scaled_h = |w: u32| {
        if w == width {
            height
        } else {
            ((f64::from(height) * f64::from(w) / f64::from(width) / 2.0).round() as u32 * 2).max(2)
        }
    };
    if !lim.fits(ow, scaled_h(ow)) {
        why = lim.name.to_string();
        // Width and height bounds, then the block count, stepping down two
        // columns at a time (a few hundred steps at most).
        ow = ow.min(lim.max_width);
        let by_height = f64::from(lim.max_height) * f64::from(width) / f64::from(height);
        ow = ow.min((by_height as u32) & !1);
        while ow > 2 && !lim.fits(ow, scaled_h(ow)) {
            ow -= 2;
        }
    }
    let oh = scaled_h(ow);
    (
        ow,
        oh,
        format!("{ow}x{oh} from {width}x{height}: limited by {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_1080p_and_2160p_cameras() {
        let (w, h, why) = fit(5560, 1080, 0, Family::H264);
        assert_eq!((w, h), (4096, 796));
        assert!(why.contains("H.264"), "{why}");
        assert_eq!(fit(5560, 1080, 0, Family::H265).0, 5560);
        assert_eq!(fit(11320, 2160, 0, Family::H264).0, 4096);
        let (w, h, _) = fit(11320, 2160, 0, Family::H265);
        assert_eq!((w, h), (8192, 1564));
    }

    #[test]
    fn the_cap_applies_first_and_small_panoramas_are_kept() {
        let (w, h, why) = fit(832, 180, 416, Family::H264);
        assert_eq!((w, h), (416, 90));
        assert!(why.contains("output_width 416"));
        assert_eq!(
            fit(832, 180, 0, Family::H264),
            (
                832,
                180,
                "832x180 from 832x180: limited by the panorama's own size".into()
            )
        );
        // A cap above the codec's limit does not lift the limit.
        assert_eq!(fit(11320, 2160, 10000, Family::H264).0, 4096);
    }

    #[test]
    fn macroblocks_bind_on_tall_frames() {
        // 4096x2304 is exactly 36864 macroblocks; a 4096x2400 frame must
        // shrink below the height limit.
        let (w, h, _) = fit(4096, 2400, 0, Family::H264);
        assert!(h <= 2304 && w < 4096, "{w}x{h}");
        assert!(limit(Family::H264).fits(w, h));
    }
}
