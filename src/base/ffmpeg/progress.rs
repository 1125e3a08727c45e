//! ffmpeg's `-progress` output: `key=value` lines in blocks.

/// One block of ffmpeg's `-progress` output (key=value lines ending with
/// `progress=continue` or `progress=end`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Frames written so far.
    pub frame: u64,
    /// Current encoding speed in frames per second.
    pub fps: f64,
    /// Output timestamp reached, microseconds.
    pub out_time_us: u64,
    /// Frames dropped so far.
    pub drop_frames: u64,
    /// Frames duplicated so far.
    pub dup_frames: u64,
    /// Bytes written so far.
    pub total_size: u64,
    /// Speed relative to real time (`1.0` = real time), when known.
    pub speed: Option<f64>,
    /// This was the last block (`progress=end`).
    pub end: bool,
}

/// Accumulates `-progress` lines into [`Progress`] blocks.
///
/// ```
/// use soccer_rig::base::ffmpeg::ProgressParser;
/// let mut p = ProgressParser::default();
/// assert!(p.line("frame=30").is_none());
/// let block = p.line("progress=continue").unwrap();
/// assert_eq!(block.frame, 30);
/// ```
#[derive(Debug, Default)]
pub struct ProgressParser {
    current: Progress,
}

impl ProgressParser {
    /// Feeds one line; returns a finished block at each `progress=` line.
    /// Unknown keys and unparsable values (ffmpeg prints `N/A`) are ignored.
    pub fn line(&mut self, line: &str) -> Option<Progress> {
        let (key, value) = line.trim().split_once('=')?;
        let value = value.trim();
        let int = || value.parse::<u64>().ok();
        let c = &mut self.current;
        match key {
            "frame" => c.frame = int().unwrap_or(c.frame),
            "fps" => c.fps = value.parse().unwrap_or(c.fps),
            // `out_time_ms` is, despite its name, also microseconds.
            "out_time_us" | "out_time_ms" => c.out_time_us = int().unwrap_or(c.out_time_us),
            "drop_frames" => c.drop_frames = int().unwrap_or(c.drop_frames),
            "dup_frames" => c.dup_frames = int().unwrap_or(c.dup_frames),
            "total_size" => c.total_size = int().unwrap_or(c.total_size),
            "speed" => c.speed = value.trim_end_matches('x').parse().ok(),
            "progress" => {
                c.end = value == "end";
                return Some(c.clone());
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_blocks() {
        let mut p = ProgressParser::default();
        let text = "frame=10\nfps=5.0\nout_time_us=666666\ndrop_frames=2\nspeed=N/A\n\
                    progress=continue\nframe=45\nout_time_us=N/A\nspeed=1.02x\nprogress=end\n";
        let blocks: Vec<Progress> = text.lines().filter_map(|l| p.line(l)).collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            (blocks[0].frame, blocks[0].drop_frames, blocks[0].end),
            (10, 2, false)
        );
        assert_eq!(blocks[0].speed, None);
        assert_eq!((blocks[1].frame, blocks[1].out_time_us), (45, 666666));
        assert_eq!((blocks[1].speed, blocks[1].end), (Some(1.02), true));
    }
}
