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
//! * **One ffmpeg process, one filter graph.** No intermediate files: each
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
pub mod camera;
pub mod canvas;
pub mod image;

use std::ffi::OsString;
use std::path::Path;

pub mod encode;
pub mod output_size;
pub mod progress;
pub mod sync;

mod error;
mod plan;
mod report;
mod run;
mod runner;
mod session;
mod settings;

pub use error::StitchError;
pub use plan::{CameraInput, CameraOffset, Plan, load_inputs, plan, plan_aligned};
pub use report::{Outcome, PendingItem, PendingReport, StitchReport, list_table, plan_lines};
pub use run::{StitchProgress, run_ffmpeg};
pub use runner::Runner;
pub use session::{plan_session, stitch_session};
pub use settings::StitchSettings;

fn round3(v: f64) -> f64 {
    (v * 1e3).round() / 1e3
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// The `-filter_complex` graph for a plan: inputs 0, 1, 2 are CAM_L, CAM_C,
/// CAM_R; outputs `[v]` and, with audio, `[a]`.
pub fn filter_graph(plan: &Plan) -> String {
    let (w, h, o) = (plan.camera_width, plan.camera_height, plan.overlap_px);
    let fps = plan.fps;
    let frames = plan.frames;
    let mut g = match &plan.geometry {
        Some(geo) => calibrated::video_graph(plan, geo),
        None => Vec::new(),
    };
    if plan.geometry.is_some() {
        audio_graph(plan, &mut g);
        return g.join(";");
    }
    // Each input: own timeline from 0, CAM_C's frame grid, the common span,
    // CAM_C's size, one pixel format for the blend and the stack.
    let names = ["l", "c", "r"];
    for (i, cam) in plan.cameras.iter().enumerate() {
        // After `fps` the stream starts at 0 on a 1/fps grid (gaps filled by
        // repeating the last frame), so a frame count is an exact end. (A
        // time would be rescaled and rounded by `trim`, and can lose one.)
        let mut chain = format!("[{i}:v]setpts=PTS-STARTPTS,fps={fps},trim=end_frame={frames}");
        if (cam.width, cam.height) != (w, h) {
            chain.push_str(&format!(",scale={w}:{h}"));
        }
        chain.push_str(",format=yuv420p,setsar=1");
        let n = names[i];
        if o == 0 {
            chain.push_str(&format!("[{n}]"));
        } else {
            let m = w - o;
            match i {
                0 => chain.push_str(&format!(
                    ",split=2[l0][l1];[l0]crop={m}:{h}:0:0[lm];[l1]crop={o}:{h}:{m}:0[lb]"
                )),
                1 => chain.push_str(&format!(
                    ",split=3[c0][c1][c2];[c0]crop={o}:{h}:0:0[cl];\
                     [c1]crop={}:{h}:{o}:0[cm];[c2]crop={o}:{h}:{m}:0[cr]",
                    w - 2 * o
                )),
                _ => chain.push_str(&format!(
                    ",split=2[r0][r1];[r0]crop={o}:{h}:0:0[rb];[r1]crop={m}:{h}:{o}:0[rm]"
                )),
            }
        }
        g.push(chain);
    }
    let mut tail = String::new();
    if o == 0 {
        tail.push_str("[l][c][r]hstack=inputs=3:shortest=1");
    } else {
        // The mask: weight of the right-hand camera, rising linearly across
        // the band, sampled at pixel centres ((X+0.5)/W of 255) on every
        // plane (geq's W is the plane's width; the value stays below 255).
        // Made once and looped.
        let ramp = "255*(X+0.5)/W";
        g.push(format!(
            "color=c=black:s={o}x{h}:r={fps},format=yuv420p,trim=end_frame=1,\
             geq=lum='{ramp}':cb='{ramp}':cr='{ramp}',loop=loop={}:size=1,\
             setpts=N/({fps}*TB),split=2[m0][m1]",
            plan.frames.saturating_sub(1)
        ));
        g.push("[lb][cl][m0]maskedmerge[s0]".to_string());
        g.push("[cr][rb][m1]maskedmerge[s1]".to_string());
        tail.push_str("[lm][s0][cm][s1][rm]hstack=inputs=5:shortest=1");
    }
    if plan.output_width != plan.panorama_width {
        tail.push_str(&format!(
            ",scale={}:{}:flags=lanczos",
            plan.output_width, plan.output_height
        ));
    }
    tail.push_str("[v]");
    g.push(tail);
    audio_graph(plan, &mut g);
    g.join(";")
}

/// CAM_C's audio over the panorama's span, as `[a]`, when there is any.
fn audio_graph(plan: &Plan, g: &mut Vec<String>) {
    let fps = plan.fps;
    if plan.audio {
        // Input 1 was seeked to half a frame before its first kept frame;
        // start the audio at that frame.
        let center = &plan.cameras[1];
        let lead = (center.applied_ms / 1000.0 - center.seek_sec).max(0.0);
        g.push(format!(
            "[1:a]atrim=start={lead:.6}:duration={:.6},asetpts=PTS-STARTPTS[a]",
            plan.frames as f64 / fps
        ));
    }
}

/// The whole ffmpeg command line (without the program) writing the plan's
/// panorama to `output`, with `-progress pipe:1` on stdout.
pub fn ffmpeg_args(plan: &Plan, settings: &StitchSettings, output: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
        .into_iter()
        .map(OsString::from)
        .collect();
    a.extend(encode::device_args(&plan.encoder));
    for (cam, input) in plan.cameras.iter().zip(&plan.inputs) {
        a.push("-ss".into());
        a.push(format!("{:.6}", cam.seek_sec).into());
        a.push("-i".into());
        a.push(input.clone().into_os_string());
    }
    // Every core for the graph (the encoder takes them all by itself).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    a.push("-filter_complex_threads".into());
    a.push(threads.to_string().into());
    a.push("-filter_complex".into());
    let mut graph = filter_graph(plan);
    let video = match encode::upload_filter(&plan.encoder) {
        Some(upload) => {
            graph.push(';');
            graph.push_str(upload);
            "[venc]"
        }
        None => "[v]",
    };
    a.push(graph.into());
    for s in ["-map", video] {
        a.push(s.into());
    }
    if plan.audio {
        for s in ["-map", "[a]", "-c:a", "aac", "-b:a", "192k"] {
            a.push(s.into());
        }
    }
    let family = encode::codec_family(&plan.encoder).unwrap_or(encode::Family::H264);
    a.extend(encode::encoder_args(
        &plan.encoder,
        family,
        &settings.preset,
    ));
    for s in ["-movflags", "+faststart", "-metadata"] {
        a.push(s.into());
    }
    a.push(format!("creation_time={}", plan.common_start).into());
    for s in ["-progress", "pipe:1", "-nostats", "-f", "mp4"] {
        a.push(s.into());
    }
    a.push(output.as_os_str().to_owned());
    a
}

/// A command line as one shell-quoted string, for logs and `--dry-run`.
pub fn shell_line(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(|a| a.as_os_str()))
        .map(|a| {
            let s = a.to_string_lossy();
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c))
            {
                s.into_owned()
            } else {
                format!("'{}'", s.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::base::config::ProcessingConfig;
    use crate::base::ffmpeg::Probe;
    use crate::base::ids::{CameraId, SessionId};
    use crate::base::jobs::{Job, JobStatus, JobsFile};

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
        assert_eq!(g.matches("scale=320:180").count(), 1, "{g}");
        assert_eq!(g.matches("fps=30").count(), 3, "{g}");
        assert!(g.contains("hstack=inputs=5:shortest=1,scale=416:90"), "{g}");
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
