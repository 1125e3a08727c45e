//! rig-record's logic: capture a match into the Pi layout so that whatever
//! happens, the bytes on disk are a playable recording, and at stop write a
//! manifest whose every field comes from reality.
//!
//! # Why the recording is written under its final name
//!
//! Everywhere else in this crate a file appears under its final name only
//! when complete ([`crate::base::fsx::AtomicFile`]). A recording is the exception,
//! on purpose: it is the only copy of a match, and it must survive a power
//! cut at minute 80 as 80 playable minutes, not as an orphaned temp file
//! that nothing knows about. ffmpeg writes *fragmented* MP4
//! (`frag_keyframe+empty_moov+default_base_moof`): an `ftyp`+`moov` header
//! up front, then self-contained `moof`+`mdat` fragments of
//! `recording.fragment_sec`, each opening on a keyframe. Such a file is
//! playable at every fragment boundary, and a torn last fragment only
//! loses that fragment: ffprobe and players read everything before it.
//! So the file under `recordings/S/C/S_C.mp4` is always "the recording so
//! far", never a partial file in the forbidden sense. The target is opened
//! with `create_new`, so an existing recording is never overwritten, and
//! its directory entry is fsynced before the first byte arrives.
//!
//! # One pass over the bytes
//!
//! ffmpeg writes to a pipe; a pump thread reads it and writes through a
//! [`HashingWriter`](crate::base::checksum::HashingWriter) into the file, so the SHA-256 is ready the moment the
//! recording stops, with no second read of a 20 GB file. A separate sync
//! thread calls `fdatasync` on a clone of the file handle every
//! `recording.fsync_interval_sec`, so written data never sits unsynced longer
//! than that, and a slow fsync never stalls the pipe (a stalled pipe stalls
//! ffmpeg, and a stalled live camera drops frames). The pipe is enlarged to
//! 1 MiB where the kernel allows, for the same reason.
//!
//! # Timing
//!
//! `timing.start_time` is the instant the first frame was accepted for
//! writing: ffmpeg reports progress blocks every 0.25 s, and its `frame`
//! counter counts frames handed to the encoder. At the first block with
//! `frame >= 1`, received at wall-clock `T` with `frame = k`, the first frame
//! went in `(k - 1) / fps` seconds earlier, so `start_time = T - (k-1)/fps`
//! (never before ffmpeg was started). For a source that delivers in real
//! time this is accurate to a few milliseconds plus the source's own
//! latency. `end_time` is the instant the last byte reached the file, after
//! ffmpeg finished, or `start_time` plus the video's duration if that is
//! later (a source ffmpeg buffered, then wrote in a burst, would otherwise
//! claim N seconds of video recorded in less than N seconds). Both are UTC
//! with microseconds. Clock sync
//! ([`host::clock_sync`]) is sampled once, before the recording starts.
//!
//! # Stopping
//!
//! A recording stops when `--duration` elapses (ffmpeg's own `-t`, so the
//! file holds exactly that many frames), on SIGINT/SIGTERM, or when the
//! source ends. ffmpeg runs in its own process group, so a Ctrl-C at the
//! terminal reaches only rig-record, which then asks ffmpeg to finish
//! cleanly: `q` on its stdin, or for `cmd` sources SIGTERM to the producer's
//! process group, so ffmpeg sees the end of its input. ffmpeg gets
//! [`STOP_TIMEOUT`] to finish before it is killed; even then the file keeps
//! every complete fragment, and the manifest is still written for it.
//!
//! # Guards
//!
//! Before anything is created: the storage root exists and is writable,
//! free space covers `bitrate x duration x 1.1` (or `node.min_free_space_gb`
//! without a duration), ffmpeg runs and has the encoder (and lavfi for the
//! test source), ffprobe runs (the manifest is built from its report, so
//! without it a whole match would record and end with no manifest), the
//! source exists, and neither the recording nor its manifest exists yet.
//! Each failure is its own [`RecordError`] code.
//!
//! # The live lock
//!
//! While it records, and until the manifest is written, rig-record holds an
//! exclusive advisory lock (`File::try_lock`) on the recording file itself,
//! through a handle of its own. `rig-manifest create --recover` asks for a
//! shared lock on the same file ([`recording_is_live`]) and refuses when it
//! cannot have it, so a recording still being written is never "recovered"
//! with a digest of half a match. Locking the file, not a lock file beside
//! it, leaves nothing behind, and the kernel drops the lock when rig-record
//! dies, which is exactly when a recovery is wanted.
//!
//! # Where each step lives
//!
//! [`record`] reads as the steps below, one file each; ffmpeg itself is
//! started and stopped by [`crate::base::ffmpeg::CaptureProcess`].
//!
//! | file | step |
//! |---|---|
//! | `guards` | the checks before anything is created |
//! | `target` | the file under its final name, and the live lock |
//! | `capture` | what to record; starting ffmpeg and the threads; stopping them |
//! | `pump`, `progress` | the bytes into the file; what ffmpeg's stderr says |
//! | `watch` | until a stop: signal, exit, failure, overrun; temperatures |
//! | `finish` | the file checked, the manifest built and written, the offload |
//! | `selftest`, `sustain` | `--test` and its checks |
//! | `report`, `error` | what rig-record prints, and [`RecordError`] |

mod capture;
mod error;
mod finish;
mod guards;
mod progress;
mod pump;
mod report;
mod selftest;
pub mod sustain;
mod target;
mod watch;

use std::io;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::base::config::{Config, GB};
use crate::base::ffmpeg::CaptureSettings;
use crate::base::host;
use crate::base::ids::{CameraId, SessionId};
use crate::base::layout::PiLayout;

pub use error::RecordError;
pub use guards::check_duration;
pub use report::{Check, RecordReport, Recorded, SELF_TEST_CHECKS, SelfTest, StopReason};
pub use selftest::self_test;
pub use target::recording_is_live;
pub use watch::TemperatureStats;

/// How long ffmpeg gets to finish cleanly after a stop before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A source that has produced no frame after this long is given up on.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// How often the CPU temperature is sampled while recording.
pub const TEMPERATURE_INTERVAL: Duration = Duration::from_secs(5);

/// Free space wanted per byte a timed recording is expected to take.
pub const SPACE_MARGIN: f64 = 1.1;

/// Length of the `--test` recording unless `--duration` says otherwise.
pub const SELF_TEST_DURATION_SEC: f64 = 10.0;

/// Prefix of the scratch directory `--test` records into (under the
/// storage root, so the real disk is exercised; removed afterwards).
pub const SELF_TEST_DIR_PREFIX: &str = ".rig-record-test-";

/// What to record, beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct RecordOptions {
    /// The session; `None` = automatic `GAME_YYYYMMDD_HHMMSS` from the local clock.
    pub session: Option<SessionId>,
    /// The camera; `None` = `node.camera_id`.
    pub camera: Option<CameraId>,
    /// Stop after this many seconds; `None` = until a signal or the source ends.
    pub duration_sec: Option<f64>,
    /// A source spec overriding `recording.source`.
    pub source: Option<String>,
    /// Run the pre-kick-off self test instead of recording a match.
    pub self_test: bool,
}

/// rig-record's entry point: installs the SIGINT/SIGTERM handlers, then
/// records (or runs the self test).
pub fn run(config: &Config, opts: &RecordOptions) -> Result<RecordReport, RecordError> {
    let stop = stop_on_signals()
        .map_err(|e| RecordError::new("capture_failed", format!("cannot catch signals: {e}")))?;
    if opts.self_test {
        self_test(config, opts, &stop).map(RecordReport::SelfTest)
    } else {
        record(config, opts, &stop).map(|r| RecordReport::Recorded(Box::new(r)))
    }
}

/// A flag that SIGINT and SIGTERM set (instead of killing the process).
pub fn stop_on_signals() -> io::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// Bytes a recording needs free before it starts: `bitrate x duration x
/// 1.1` with a duration, else the configured floor (`node.min_free_space_gb`).
pub fn required_free_bytes(bitrate_mbps: u32, duration_sec: Option<f64>, floor_gb: f64) -> u64 {
    match duration_sec {
        Some(d) => (f64::from(bitrate_mbps) * 1e6 / 8.0 * d * SPACE_MARGIN).ceil() as u64,
        None => (floor_gb * GB).ceil() as u64,
    }
}

/// The capture settings `config` (and a duration) describe.
pub fn capture_settings(config: &Config, duration_sec: Option<f64>) -> CaptureSettings {
    let r = &config.recording;
    CaptureSettings {
        width: r.width,
        height: r.height,
        fps: r.fps,
        bitrate_mbps: r.bitrate_mbps,
        codec: r.codec.clone(),
        encoder: r.encoder.clone(),
        preset: r.preset.clone(),
        fragment_sec: r.fragment_sec,
        duration_sec,
    }
}

/// Records one recording into the Pi layout and writes its manifest.
/// `stop` ends the recording early (set by SIGINT/SIGTERM in rig-record).
pub fn record(
    config: &Config,
    opts: &RecordOptions,
    stop: &AtomicBool,
) -> Result<Recorded, RecordError> {
    let plan = capture::Plan::resolve(config, opts)?;
    let layout = PiLayout::new(&config.node.storage_root);
    let (file, video) = target::create_target(&layout, &plan.rec)?;
    // Held to the end of this function, past the manifest's write.
    let _live = target::hold_live_lock(&video)?;
    let clock = host::clock_sync();
    if !clock.synced {
        log::warn!(
            "clock not NTP-synchronized (asked {}): the three cameras may not line up; \
             timing.ntp_synced will be false",
            clock.source
        );
    }
    let mut running = capture::Running::start(config, &plan, file, &video)?;
    let mut watched = watch::watch(&mut running, stop, plan.duration, &plan.rec, &video);
    let ended = running.stop(watched.exited, &mut watched.problems)?;
    watched.temps.add(host::cpu_temperature_c());
    finish::finish(config, &plan, &layout, video, clock, ended, watched)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::checksum::{self, HashingWriter};
    use crate::base::ffmpeg::{self, CaptureSource};
    use progress::{Mark, is_progress_line, start_time};
    use pump::pump;
    use std::fs::File;
    use std::time::Instant;

    #[test]
    fn free_space_rule() {
        // 30 Mbps for 90 minutes: 20.25 GB, plus 10 %.
        assert_eq!(required_free_bytes(30, Some(5400.0), 10.0), 22_275_000_000);
        assert_eq!(required_free_bytes(30, None, 10.0), 10_000_000_000);
    }

    #[test]
    fn source_specs() {
        assert_eq!(CaptureSource::parse("test"), Ok(CaptureSource::Test));
        assert_eq!(
            CaptureSource::parse("v4l2:/dev/video0"),
            Ok(CaptureSource::V4l2("/dev/video0".into()))
        );
        assert_eq!(
            CaptureSource::parse("cmd:rpicam-vid -o -"),
            Ok(CaptureSource::Cmd("rpicam-vid -o -".into()))
        );
        assert_eq!(
            CaptureSource::parse("cmd-yuv420p:rpicam-vid --codec yuv420 -o -"),
            Ok(CaptureSource::CmdRaw(
                "rpicam-vid --codec yuv420 -o -".into()
            ))
        );
        for bad in ["", "v4l2:", "cmd:  ", "rtsp://x", "TEST"] {
            let e = CaptureSource::parse(bad).unwrap_err();
            assert!(e.contains("v4l2:/dev/videoN"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn capture_args_fragment_and_gop() {
        let mut s = capture_settings(&Config::default(), Some(3.0));
        s.fps = 15;
        s.fragment_sec = 2.0;
        let args: Vec<String> = ffmpeg::capture_args(&CaptureSource::Test, &s)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |flag: &str| {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        assert_eq!(after("-g"), "30");
        assert_eq!(after("-frag_duration"), "2000000");
        assert_eq!(
            after("-movflags"),
            "+frag_keyframe+empty_moov+default_base_moof"
        );
        assert_eq!(after("-c:v"), "libx264");
        assert_eq!(after("-preset"), "ultrafast");
        assert_eq!(after("-t"), "3.000000");
        assert_eq!(after("-b:v"), "16M");
        assert_eq!(args.last().map(String::as_str), Some("pipe:1"));
        assert!(
            !args.contains(&"-nostdin".to_string()),
            "q on stdin stops it"
        );
    }

    #[test]
    fn progress_lines_are_told_from_errors() {
        assert!(is_progress_line("frame=12"));
        assert!(is_progress_line("stream_0_0_q=28.0"));
        assert!(!is_progress_line("[h264 @ 0x55] error=bad"));
        assert!(!is_progress_line("Conversion failed!"));
    }

    #[test]
    fn start_is_back_dated_by_frames_before_the_report() {
        let spawned: jiff::Timestamp = "2024-03-15T14:00:00Z".parse().unwrap();
        let wall: jiff::Timestamp = "2024-03-15T14:00:01Z".parse().unwrap();
        let m = Mark {
            at: Instant::now(),
            wall,
            frame: 4,
        };
        // frame 4 reported at 14:00:01 at 30 fps: frame 1 went in 0.1 s earlier.
        assert_eq!(
            start_time(Some(m), 30, spawned).to_string(),
            "2024-03-15T14:00:00.9Z"
        );
        // Never before ffmpeg started.
        let m = Mark { frame: 300, ..m };
        assert_eq!(start_time(Some(m), 30, spawned), spawned);
        assert_eq!(start_time(None, 30, spawned), spawned);
    }

    #[test]
    fn temperature_stats() {
        let mut t = TemperatureStats::default();
        assert_eq!((t.average(), t.max()), (None, None));
        t.add(None);
        t.add(Some(50.04));
        t.add(Some(60.0));
        assert_eq!((t.average(), t.max()), (Some(55.0), Some(60.0)));
    }

    #[test]
    fn pump_hashes_exactly_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.mp4");
        let file = File::create(&path).unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
        let end = pump(&data[..], HashingWriter::new(file));
        assert!(end.error.is_none());
        let (_, digest) = end.writer.finish();
        assert_eq!(digest, checksum::hash_file(&path).unwrap());
        assert_eq!(digest.size, 3_000_000);
    }

    #[test]
    fn bad_duration_is_a_usage_error() {
        for d in [0.0, -1.0, f64::NAN, 1e9] {
            let e = check_duration(d).unwrap_err();
            assert_eq!(e.exit_code(), crate::base::cli::EXIT_USAGE);
            assert!(e.message.contains("--duration"));
        }
    }
}
