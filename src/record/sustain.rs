//! Whether a node's recording settings keep up in real time: the
//! `keeps up` check of `rig-record --test`. It compares the encode speed
//! measured over the test with real time and counts dropped frames; when
//! the node falls behind, the failure names the setting to change first
//! (and the others that help), so a club learns it before kick-off rather
//! than from a match with holes in it.

use crate::base::config::RecordingConfig;
use crate::record::Check;

/// The slowest encode speed, as a fraction of real time, that passes. A
/// live camera cannot wait: below this, frames queue up and are dropped.
pub const MIN_SPEED: f64 = 0.95;

/// What a test recording measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// Frames per second ffmpeg sustained between its first and latest
    /// progress reports, when it reported often enough to tell.
    pub measured_fps: Option<f64>,
    /// Frames encoded.
    pub frames: u64,
    /// Frames ffmpeg dropped.
    pub dropped: u64,
    /// Wall time the whole recording took, seconds (start-up included).
    pub wall_sec: f64,
}

impl Measured {
    /// Encode speed as a fraction of real time (1.0 = exactly real time):
    /// from the sustained rate when known, else from the frames encoded
    /// over the wall time.
    pub fn speed(&self, fps: u32) -> f64 {
        let fps = f64::from(fps.max(1));
        match self.measured_fps {
            Some(m) => m / fps,
            None if self.wall_sec > 0.0 => self.frames as f64 / fps / self.wall_sec,
            None => 0.0,
        }
    }
}

/// The `keeps up` check for `rec` (whose encoder ffmpeg knows as `encoder`).
pub fn keeps_up(rec: &RecordingConfig, encoder: &str, m: &Measured) -> Check {
    let speed = m.speed(rec.fps);
    let figures = format!(
        "encodes at {speed:.2}x real time ({:.1} of {} fps), {} frames dropped",
        speed * f64::from(rec.fps),
        rec.fps,
        m.dropped
    );
    if speed >= MIN_SPEED && m.dropped == 0 {
        return Check {
            name: "keeps up",
            pass: true,
            detail: figures,
        };
    }
    let what = format!(
        "{encoder} (preset {}) at {}x{} {} fps",
        preset_name(&rec.preset),
        rec.width,
        rec.height,
        rec.fps
    );
    let detail = if speed >= MIN_SPEED {
        format!(
            "{figures}: the source delivers frames late or unevenly; check recording.source \
             ({}) and the camera, or lower recording.fps",
            rec.source
        )
    } else {
        format!(
            "{figures}: {what} is too slow for real time on this machine; {}",
            advice(rec, encoder)
        )
    };
    Check {
        name: "keeps up",
        pass: false,
        detail,
    }
}

fn preset_name(preset: &str) -> &str {
    if preset.is_empty() {
        "encoder default"
    } else {
        preset
    }
}

/// The settings to change, most effective first.
fn advice(rec: &RecordingConfig, encoder: &str) -> String {
    let software = encoder == "libx264" || encoder == "libx265";
    let mut steps = Vec::new();
    if software && !matches!(rec.preset.as_str(), "ultrafast" | "superfast") {
        steps.push("recording.preset: ultrafast".to_string());
    }
    if encoder == "libx265" {
        steps.push("recording.codec: h264 (libx265 is several times slower)".to_string());
    }
    if u64::from(rec.width) * u64::from(rec.height) > 1920 * 1080 {
        steps.push("recording.width/height: 1920x1080".to_string());
    }
    if rec.fps > 30 {
        steps.push("recording.fps: 30".to_string());
    }
    if steps.is_empty() {
        steps.push("a lower recording.width/height or recording.fps".to_string());
    }
    format!(
        "set {} (a Raspberry Pi 5 sustains h264 1920x1080 30 fps, preset ultrafast, \
         in software)",
        steps.join(", or ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(codec: &str, preset: &str, w: u32, h: u32, fps: u32) -> RecordingConfig {
        RecordingConfig {
            codec: codec.into(),
            preset: preset.into(),
            width: w,
            height: h,
            fps,
            ..RecordingConfig::default()
        }
    }

    fn measured(fps: Option<f64>, frames: u64, dropped: u64, wall: f64) -> Measured {
        Measured {
            measured_fps: fps,
            frames,
            dropped,
            wall_sec: wall,
        }
    }

    #[test]
    fn real_time_without_drops_passes() {
        let c = keeps_up(
            &rec("h264", "ultrafast", 1920, 1080, 30),
            "libx264",
            &measured(Some(29.8), 300, 0, 10.4),
        );
        assert!(c.pass, "{c:?}");
        assert_eq!(
            c.detail,
            "encodes at 0.99x real time (29.8 of 30 fps), 0 frames dropped"
        );
    }

    #[test]
    fn a_slow_4k_h265_names_preset_codec_and_size() {
        let c = keeps_up(
            &rec("h265", "", 3840, 2160, 30),
            "libx265",
            &measured(Some(6.0), 60, 0, 12.0),
        );
        assert!(!c.pass);
        assert!(c.detail.starts_with("encodes at 0.20x real time"), "{c:?}");
        for s in [
            "libx265 (preset encoder default) at 3840x2160 30 fps",
            "set recording.preset: ultrafast,",
            "or recording.codec: h264",
            "or recording.width/height: 1920x1080",
        ] {
            assert!(c.detail.contains(s), "{s}: {}", c.detail);
        }
    }

    #[test]
    fn without_progress_the_wall_time_gives_the_speed() {
        let m = measured(None, 30, 0, 4.0);
        assert!((m.speed(15) - 0.5).abs() < 1e-9);
        let c = keeps_up(&rec("h264", "ultrafast", 1280, 720, 60), "libx264", &m);
        assert!(!c.pass);
        assert!(c.detail.contains("set recording.fps: 30"), "{c:?}");
        assert!(!c.detail.contains("recording.preset"), "{c:?}");
    }

    #[test]
    fn dropped_frames_at_full_speed_blame_the_source() {
        let c = keeps_up(
            &rec("h264", "ultrafast", 1920, 1080, 30),
            "libx264",
            &measured(Some(30.0), 290, 10, 10.0),
        );
        assert!(!c.pass);
        assert!(c.detail.contains("check recording.source"), "{c:?}");
    }
}
