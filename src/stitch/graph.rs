//! The one ffmpeg command of a stitch: its `-filter_complex` graph (the
//! translation-only strips at the output's scale, or the calibrated warp of
//! [`super::calibrated`]), the audio, and the whole command line.

use std::ffi::OsString;
use std::path::Path;

use super::encode;
use super::plan::{CameraOffset, Plan};
use super::settings::StitchSettings;
use crate::base::ffmpeg::raw;

/// The `-filter_complex` graph for a plan: inputs 0, 1, 2 are CAM_L, CAM_C,
/// CAM_R; outputs `[v]` and, with audio, `[a]`.
pub fn filter_graph(plan: &Plan) -> String {
    let mut g = Vec::new();
    if plan.geometry.is_some() {
        // The warp's frames arrive on input 0, already the panorama.
        g.push("[0:v]null[v]".to_string());
        audio_graph(plan, &mut g);
        return g.join(";");
    }
    let (w, o, extra) = strip_scale(plan);
    for (i, cam) in plan.cameras.iter().enumerate() {
        g.push(input_chain(plan, i, cam, (w, o)));
    }
    let mut tail = if o == 0 {
        "[l][c][r]hstack=inputs=3:shortest=1".to_string()
    } else {
        push_blend(plan, o, &mut g);
        "[lm][s0][cm][s1][rm]hstack=inputs=5:shortest=1".to_string()
    };
    if extra > 0 {
        // The strips' even sizes overshoot the output by `extra` columns:
        // cut them off both ends (no resampling).
        tail.push_str(&format!(
            ",crop={}:{}:{}:0",
            plan.output_width,
            plan.output_height,
            extra / 4 * 2
        ));
    }
    tail.push_str("[v]");
    g.push(tail);
    audio_graph(plan, &mut g);
    g.join(";")
}

/// A camera's first filters: its own timeline from 0, CAM_C's frame grid,
/// the common span. After `fps` the stream starts at 0 on a 1/fps grid
/// (gaps filled by repeating the last frame), so a frame count is an exact
/// end. (A time would be rescaled and rounded by `trim`, and can lose one.)
pub(super) fn on_grid(plan: &Plan) -> String {
    format!(
        "setpts=PTS-STARTPTS,fps={},trim=end_frame={}",
        plan.fps, plan.frames
    )
}

/// Input `i`'s chain: own timeline from 0, CAM_C's frame grid, the common
/// span, scaled to the output's scale first (nothing is blended or stacked
/// at full resolution), one pixel format for the blend and the stack, then
/// cut into its strips.
fn input_chain(plan: &Plan, i: usize, cam: &CameraOffset, (w, o): (u32, u32)) -> String {
    let h = plan.output_height;
    let names = ["l", "c", "r"];
    let mut chain = format!("[{i}:v]{}", on_grid(plan));
    if (cam.width, cam.height) != (w, h) {
        chain.push_str(&format!(",scale={w}:{h}"));
    }
    chain.push_str(",format=yuv420p,setsar=1");
    chain.push_str(&strip_cuts(i, names[i], w, h, o));
    chain
}

/// The blend of the `o`-column overlaps: the mask, the weight of the
/// right-hand camera, rising linearly across the band, sampled at pixel
/// centres ((X+0.5)/W of 255) on every plane (geq's W is the plane's width;
/// the value stays below 255), made once and looped; then both merges.
fn push_blend(plan: &Plan, o: u32, g: &mut Vec<String>) {
    let (fps, h) = (plan.fps, plan.output_height);
    let ramp = "255*(X+0.5)/W";
    g.push(format!(
        "color=c=black:s={o}x{h}:r={fps},format=yuv420p,trim=end_frame=1,\
         geq=lum='{ramp}':cb='{ramp}':cr='{ramp}',loop=loop={}:size=1,\
         setpts=N/({fps}*TB),split=2[m0][m1]",
        plan.frames.saturating_sub(1)
    ));
    g.push("[lb][cl][m0]maskedmerge[s0]".to_string());
    g.push("[cr][rb][m1]maskedmerge[s1]".to_string());
}

/// The translation-only stitch at the output's scale: each camera's width
/// and the shared columns, both even, and how many columns the stack is
/// wider than `output_width` (cut off afterwards). At the panorama's own
/// size: CAM_C's width, the overlap, 0.
pub(super) fn strip_scale(plan: &Plan) -> (u32, u32, u32) {
    let (w, o, ow) = (plan.camera_width, plan.overlap_px, plan.output_width);
    if ow == plan.panorama_width {
        return (w, o, 0);
    }
    let s = f64::from(ow) / f64::from(plan.panorama_width);
    let o2 = if o == 0 {
        0
    } else {
        ((f64::from(o) * s / 2.0).round() as u32 * 2).max(2)
    };
    let w2 = (ow + 2 * o2)
        .div_ceil(3)
        .next_multiple_of(2)
        .max(2 * o2 + 2);
    (w2, o2, 3 * w2 - 2 * o2 - ow)
}

/// The crops that cut camera `i`'s `w` x `h` strip into its plain part and
/// its shared bands (`o` columns), or just its label without overlap.
fn strip_cuts(i: usize, name: &str, w: u32, h: u32, o: u32) -> String {
    if o == 0 {
        return format!("[{name}]");
    }
    let m = w - o;
    match i {
        0 => format!(",split=2[l0][l1];[l0]crop={m}:{h}:0:0[lm];[l1]crop={o}:{h}:{m}:0[lb]"),
        1 => format!(
            ",split=3[c0][c1][c2];[c0]crop={o}:{h}:0:0[cl];\
             [c1]crop={}:{h}:{o}:0[cm];[c2]crop={o}:{h}:{m}:0[cr]",
            w - 2 * o
        ),
        _ => format!(",split=2[r0][r1];[r0]crop={o}:{h}:0:0[rb];[r1]crop={m}:{h}:{o}:0[rm]"),
    }
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
    if plan.geometry.is_some() {
        push_warp_inputs(&mut a, plan);
    } else {
        for i in 0..3 {
            push_camera_input(&mut a, plan, i);
        }
    }
    push_graph(&mut a, plan);
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

/// Camera `i`'s file, seeked to half a frame before its first kept frame.
fn push_camera_input(a: &mut Vec<OsString>, plan: &Plan, i: usize) {
    a.push("-ss".into());
    a.push(format!("{:.6}", plan.cameras[i].seek_sec).into());
    a.push("-i".into());
    a.push(plan.inputs[i].clone().into_os_string());
}

/// The calibrated stitch's inputs: the warp's raw frames on stdin (input
/// 0, see [`super::warp`]), and CAM_C's file for its audio (input 1).
fn push_warp_inputs(a: &mut Vec<OsString>, plan: &Plan) {
    let size = format!("{}x{}", plan.output_width, plan.output_height);
    let rate = plan.fps.to_string();
    a.extend(raw::stdin_input(&size, &rate).map(OsString::from));
    if plan.audio {
        push_camera_input(a, plan, 1);
    }
}

/// The filter graph (with the encoder's upload, if it needs one) and the
/// mapping of its video and, with audio, its AAC-encoded audio.
fn push_graph(a: &mut Vec<OsString>, plan: &Plan) {
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
