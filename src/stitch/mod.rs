//! rig-stitch's logic: three camera recordings of a session become one
//! time-aligned, overlap-blended panorama, `sessions/S/stitched/panorama.mp4`,
//! and the processing queue moves as it happens.
//!
//! # Why it is built this way
//!
//! * **Time alignment from the manifests.** The three Pis never start on the
//!   same frame. Each manifest's `timing.start_time`, corrected by
//!   `sync_offset_ms` ([`Manifest::corrected_start`](crate::base::manifest::Manifest::corrected_start)), says when its first
//!   frame was taken. Frame 0 of the panorama is the latest start (the first
//!   instant all three saw); its end is the earliest end. Each input skips
//!   the whole number of its own frames nearest to its offset, so the
//!   remaining error is at most half a frame, and the offsets wanted and
//!   applied are reported. A camera whose clock was not NTP-synced makes the
//!   alignment a guess, which is said as a warning.
//! * **The clocks checked by content** ([`sync`]): before planning, each side
//!   camera's offset to CAM_C is measured from the motion both see in their
//!   shared columns; a clear answer replaces the clock's, a weak one keeps
//!   it with a warning ([`plan_aligned`]).
//! * **As large as it plays** ([`output_size`]): the panorama is scaled to the
//!   codec's playable limit (H.264 4096 wide, HEVC 8192) or `output_width`;
//!   a configured hardware encoder is probed and replaced by software with a
//!   warning when it does not work ([`encode`]).
//! * **Calibrated: the warp in Rust** ([`warp`]). With a calibration
//!   ([`calibrated`], [`canvas`], [`camera`]), three ffmpeg decoders write
//!   raw frames to pipes, rig-stitch draws each cylindrical panorama frame
//!   (the camera model's bilinear samples, the seams cross-faded, the
//!   exposure and colour tables of [`tone`]) on every core, and one ffmpeg
//!   encoder reads them on stdin. No intermediate files either way.
//! * **Translation-only: one ffmpeg process, one filter graph.** Each
//!   input is seeked (`-ss` before `-i`, frame-accurate when transcoding),
//!   put on CAM_C's frame grid (`fps`), trimmed to the common span, and,
//!   when its size differs from CAM_C's, scaled to it (stretched, not
//!   letterboxed; CAM_C is the reference because it is the one a viewer
//!   looks at). Neighbours share `processing.stitch_overlap_px` columns;
//!   each shared band is cross-faded with `maskedmerge` and a static linear
//!   ramp (one frame made by `geq`, then looped), so the seam is feathered
//!   and the panorama is `3W - 2*overlap` wide. Where both cameras saw the
//!   same pixel the blend gives back exactly that pixel; only codec loss
//!   remains. The result is `hstack`ed, scaled down to
//!   `processing.output_width` if wider, and encoded with
//!   `processing.output_codec`/`output_preset`. CAM_C's audio, if any, is
//!   kept.
//! * **Nothing half-written under the final name.** ffmpeg writes
//!   `stitched/.rig-tmp-*` ([`fsx::AtomicFile`](crate::base::fsx::AtomicFile)); the file is probed (it
//!   must be a readable video of the planned width), fsynced and renamed.
//!   A crash leaves at most a temp file, removed by the next run of that
//!   session.
//! * **The queue is the truth about work.** Every transition is one locked,
//!   atomic rewrite of `processing/jobs.json` ([`JobQueue`](crate::base::jobs::JobQueue)): claimed jobs
//!   carry our PID, so a job left `running` by a crash is re-queued once its
//!   holder is gone ([`jobs::holder_alive`](crate::base::jobs::holder_alive)); an interrupted run (SIGINT,
//!   SIGTERM) puts its job back in the queue.

pub mod align;
pub mod calibrate;
pub mod calibrated;
pub mod calibration;
pub mod camera;
pub mod canvas;
pub mod colour;
pub mod colour_frames;
pub mod image;

pub mod encode;
pub mod output_size;
pub mod progress;
pub mod sync;
pub mod tone;
pub mod warp;

mod error;
mod graph;
mod plan;
mod report;
mod run;
mod runner;
mod session;
mod settings;

pub use error::StitchError;
pub use graph::{ffmpeg_args, filter_graph, shell_line};
pub use plan::{CameraInput, CameraOffset, Plan, load_inputs, plan, plan_aligned};
pub use report::{Outcome, PendingItem, PendingReport, StitchReport, list_table, plan_lines};
pub use run::{StitchProgress, run_ffmpeg};
pub use runner::Runner;
pub use session::{plan_session, stitch_session};
pub use settings::StitchSettings;

/// `v` to three decimals (milliseconds, report figures).
fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

/// `v` to six decimals (seconds to the microsecond).
fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::base::config::ProcessingConfig;
    use crate::base::ffmpeg::Probe;
    use crate::base::ids::{CameraId, SessionId};
    use crate::base::jobs::{Job, JobStatus, JobsFile};
    use graph::strip_scale;

    fn input(camera: CameraId, start: &str, w: u32, fps: f64, dur: f64) -> CameraInput {
        CameraInput {
            camera,
            recording: PathBuf::from(format!("/s/{camera}/recording.mp4")),
            start: start.parse().unwrap(),
            ntp_synced: true,
            sync_offset_ms: None,
            probe: Probe {
                width: w,
                height: 180,
                fps: fps.round() as u32,
                fps_exact: fps,
                codec: "h264".into(),
                bitrate_bps: None,
                duration_sec: dur,
                container: "mp4".into(),
                creation_time: None,
                has_audio: false,
            },
        }
    }

    fn settings(overlap: u32, output_width: u32) -> StitchSettings {
        let mut p = ProcessingConfig {
            stitch_overlap_px: overlap,
            output_width,
            ..ProcessingConfig::default()
        };
        p.output_preset = "ultrafast".into();
        StitchSettings::from_config(&p).unwrap()
    }

    fn session() -> SessionId {
        SessionId::parse("GAME_20240315_140000").unwrap()
    }

    #[test]
    fn offsets_round_to_frames_and_span_ends_at_the_earliest_end() {
        let inputs = [
            input(
                CameraId::Left,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Center,
                "2024-03-15T14:00:00.510000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Right,
                "2024-03-15T14:00:00.800000Z",
                320,
                30.0,
                9.0,
            ),
        ];
        let p = plan(&session(), &inputs, &settings(64, 0)).unwrap();
        assert_eq!(p.common_start, "2024-03-15T14:00:00.800000Z");
        let skipped: Vec<u64> = p.cameras.iter().map(|c| c.skipped_frames).collect();
        // 0.8 s = 24 frames; 0.29 s = 8.7 frames -> 9; 0.
        assert_eq!(skipped, [24, 9, 0]);
        assert_eq!(p.cameras[1].offset_ms, 290.0);
        assert_eq!(p.cameras[1].applied_ms, 300.0);
        assert!((p.cameras[0].seek_sec - 23.5 / 30.0).abs() < 1e-9);
        assert_eq!(p.cameras[2].seek_sec, 0.0);
        // Ends: L 10.0 (9.2 left), C 10.51 (9.7 left), R 9.8 (9.0 left).
        assert_eq!(p.frames, 270);
        assert_eq!(p.panorama_width, 3 * 320 - 2 * 64);
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn sync_offset_and_unsynced_clocks() {
        let mut inputs = vec![
            input(
                CameraId::Left,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Center,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
            input(
                CameraId::Right,
                "2024-03-15T14:00:00.000000Z",
                320,
                30.0,
                10.0,
            ),
        ];
        inputs[2].ntp_synced = false;
        let p = plan(&session(), &inputs, &settings(64, 0)).unwrap();
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].starts_with("CAM_R: clock was not NTP-synced"));
        assert!(p.cameras.iter().all(|c| c.skipped_frames == 0));
    }

    #[test]
    fn no_common_instant_is_an_error_naming_the_starts() {
        let inputs = [
            input(CameraId::Left, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Center, "2024-03-15T14:00:10Z", 320, 30.0, 5.0),
            input(CameraId::Right, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
        ];
        let err = plan(&session(), &inputs, &settings(64, 0)).unwrap_err();
        assert_eq!(err.code(), "no_common_span");
        assert!(
            err.to_string().contains("CAM_C 2024-03-15T14:00:10"),
            "{err}"
        );
    }

    #[test]
    fn overlap_too_wide_and_odd_overlap_are_refused() {
        let inputs = [
            input(CameraId::Left, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Center, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Right, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
        ];
        let err = plan(&session(), &inputs, &settings(160, 0)).unwrap_err();
        assert!(err.to_string().contains("must be below 160"), "{err}");
        let odd = ProcessingConfig {
            stitch_overlap_px: 101,
            ..ProcessingConfig::default()
        };
        let err = StitchSettings::from_config(&odd).unwrap_err();
        assert_eq!(err.exit_code(), crate::base::cli::EXIT_USAGE);
        assert!(err.to_string().contains("stitch_overlap_px"));
    }

    #[test]
    fn graph_normalizes_odd_inputs_and_caps_width() {
        let inputs = [
            input(CameraId::Left, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Center, "2024-03-15T14:00:00Z", 320, 30.0, 5.0),
            input(CameraId::Right, "2024-03-15T14:00:00Z", 640, 25.0, 5.0),
        ];
        let p = plan(&session(), &inputs, &settings(64, 416)).unwrap();
        assert_eq!((p.output_width, p.output_height), (416, 90));
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let g = filter_graph(&p);
        // Every camera is brought to the output's scale before the blend
        // (416 = 3 x 160 - 2 x 32): nothing is scaled after the stack.
        assert_eq!(g.matches("scale=160:90").count(), 3, "{g}");
        assert_eq!(g.matches("crop=32:90").count(), 4, "{g}");
        assert_eq!(g.matches("fps=30").count(), 3, "{g}");
        assert!(g.contains("hstack=inputs=5:shortest=1[v]"), "{g}");
        // Sizes that do not divide evenly overshoot and are cut at both ends.
        let p2 = plan(&session(), &inputs, &settings(64, 400)).unwrap();
        let (w2, o2, extra) = strip_scale(&p2);
        assert_eq!(
            3 * w2 - 2 * o2 - extra,
            p2.output_width,
            "{w2} {o2} {extra}"
        );
        assert!(w2 % 2 == 0 && o2 % 2 == 0 && extra < 6, "{w2} {o2} {extra}");
        assert_eq!(g.matches("maskedmerge").count(), 2);
        // Without overlap, a plain stack.
        let p0 = plan(&session(), &inputs, &settings(0, 0)).unwrap();
        assert!(filter_graph(&p0).contains("[l][c][r]hstack=inputs=3"));
    }

    #[test]
    fn shell_line_quotes_what_needs_it() {
        let line = shell_line(
            Path::new("/usr/bin/ffmpeg"),
            &["-i".into(), "a b.mp4".into(), "[v]".into(), "it's".into()],
        );
        assert_eq!(line, r"/usr/bin/ffmpeg -i 'a b.mp4' '[v]' 'it'\''s'");
    }

    #[test]
    fn table_lists_jobs() {
        let file = JobsFile {
            jobs: vec![Job {
                id: "S-1".into(),
                session_id: "S".into(),
                status: JobStatus::Failed,
                created_at: "2024-03-15T14:00:00.123456Z".into(),
                started_at: None,
                finished_at: Some("2024-03-15T14:01:00.000000Z".into()),
                progress: 12.5,
                error: Some("CAM_R is missing".into()),
                output: None,
                pid: None,
            }],
        };
        let t = list_table(&file);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("JOB"));
        assert!(lines[1].starts_with("S-1  failed"), "{t}");
        assert!(lines[1].contains("12.5%") && lines[1].contains("2024-03-15 14:00:00Z"));
        assert!(lines[1].ends_with("CAM_R is missing"));
        assert_eq!(list_table(&JobsFile::default()), "no jobs\n");
    }
}
