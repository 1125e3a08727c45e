//! Synthetic camera rigs for the time-alignment tests: one wide moving
//! scene, cut into three cameras (crops of it, or `v360` views of it as an
//! equirectangular panorama), each starting at a chosen frame of the scene,
//! with manifests whose start times may be wrong on purpose.
//!
//! The scene is Conway's game of life (lavfi `life`, seeded, cells 2x2
//! pixels, with mold): everywhere something appears, moves and dies, never
//! periodically, like players on a pitch seen from far away, so the motion
//! in any strip has a time signature of its own. A clock error is injected
//! as the tests/demo always did: a camera's clip starts some frames later in
//! the scene than its manifest says.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::ffmpeg;
use soccer_rig::base::host::ClockSync;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::layout::{self, ServerLayout};
use soccer_rig::base::manifest::describe::{self, DescribeOptions};

/// One camera's frame.
pub const W: u32 = 320;
/// One camera's frame height.
pub const H: u32 = 180;
/// Frames per second of everything.
pub const FPS: u32 = 30;
/// Columns neighbouring crop cameras share.
pub const OVERLAP: u32 = 64;
/// The crop rig's scene: three cameras minus two overlaps.
pub const WIDE: u32 = 3 * W - 2 * OVERLAP;
/// The session every rig holds.
pub const SESSION: &str = "GAME_20240315_140000";

/// ffmpeg's `psnr` filter summary of `graph` (which reads inputs 0 = `a`
/// and 1 = `b` and ends in `psnr`): (average, min) in dB.
pub fn lavfi_psnr(a: &Path, b: &Path, graph: &str) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args(["-lavfi", graph, "-f", "null", "-"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .parse()
            .unwrap()
    };
    (field("average:"), field("min:"))
}

/// Encodes lavfi graph or file `input` (after `input_args`) losslessly to
/// `out`, optionally through `vf`.
fn lossless(input_args: &[&str], vf: Option<&str>, out: &Path) {
    let mut args = input_args.to_vec();
    if let Some(vf) = vf {
        args.extend(["-vf", vf]);
    }
    args.extend(["-c:v", "libx264", "-qp", "0", out.to_str().unwrap()]);
    ffmpeg(&args);
}

/// The life scene at `w`x`h` (cells of 2x2 pixels), `frames` long, as a
/// lavfi graph.
fn life(w: u32, h: u32, frames: u32) -> String {
    format!(
        "life=s={}x{}:r={FPS}:ratio=0.1:mold=20:random_seed=11:life_color=#f0d080:\
         death_color=#284018:mold_color=#507030,scale={w}:{h}:flags=neighbor,\
         trim=end_frame={frames},format=yuv420p",
        w / 2,
        h / 2
    )
}

/// The wide scene of a crop rig, lossless: `frames` frames of WIDExH.
pub fn crop_scene(dir: &Path, frames: u32) -> PathBuf {
    let out = dir.join("crop-scene.mp4");
    lossless(&["-f", "lavfi", "-i", &life(WIDE, H, frames)], None, &out);
    out
}

/// An equirectangular scene (360x180 degrees, 4 pixels a degree) of
/// `players` boxes running left and right near the horizon at 15-55
/// degrees a second, each its own size, colour and speed, over a still
/// pitch and sky, lossless: what a match looks like, where (unlike
/// [`sphere_scene`]) little moves outside the players. Each player is a
/// colour source overlaid frame by frame (ffmpeg 5's `drawbox` evaluates
/// its position once, without `t`).
pub fn players_scene(dir: &Path, frames: u32, players: u32) -> PathBuf {
    let out = dir.join("players-scene.mp4");
    let mut graph = format!(
        "color=c=0x305828:s=1440x720:r={FPS},drawbox=x=0:y=0:w=1440:h=360:c=0x6080a0:t=fill[p0]"
    );
    for i in 0..players {
        let sign = if i % 2 == 0 { 1 } else { -1 };
        let speed = sign * i64::from(60 + 37 * i % 160);
        graph.push_str(&format!(
            ";color=c=0x{:02x}{:02x}{:02x}:s={}x{}:r={FPS}[b{i}];\
             [p{i}][b{i}]overlay=x='mod({} + {speed}*t + 14400, 1440)':y={}[p{}]",
            60 + 53 * i % 196,
            200 - 41 * i % 160,
            40 + 97 * i % 215,
            6 + 5 * i % 10,
            12 + 7 * i % 16,
            97 * i,
            345 + 7 * i % 30,
            i + 1
        ));
    }
    graph.push_str(&format!(
        ";[p{players}]trim=end_frame={frames},format=yuv420p[out]"
    ));
    let out_s = out.to_str().unwrap();
    ffmpeg(&[
        "-filter_complex",
        &graph,
        "-map",
        "[out]",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        out_s,
    ]);
    out
}

/// Columns of the crop scene a camera sees, from the left.
pub fn crop_x(cam: CameraId) -> u32 {
    match cam {
        CameraId::Left => 0,
        CameraId::Center => W - OVERLAP,
        CameraId::Right => 2 * (W - OVERLAP),
    }
}

/// A crop camera's clip: scene frames `[first, first + frames)` of its
/// window, H.264 as a Pi records it.
pub fn crop_camera(dir: &Path, scene: &Path, cam: CameraId, first: u32, frames: u32) -> PathBuf {
    let vf = format!(
        "trim=start_frame={first}:end_frame={},setpts=PTS-STARTPTS,crop={W}:{H}:{}:0",
        first + frames,
        crop_x(cam)
    );
    camera_clip(dir, scene, cam, &vf)
}

/// The equirectangular scene of a rotated rig (360x180 degrees), lossless.
pub fn sphere_scene(dir: &Path, frames: u32) -> PathBuf {
    let out = dir.join("sphere-scene.mp4");
    lossless(&["-f", "lavfi", "-i", &life(1440, 720, frames)], None, &out);
    out
}

/// A rotated camera's whole view of the scene, lossless: rectilinear,
/// `yaw` degrees from the centre, a `fov` degree horizontal field of view
/// (vertical to match 16:9). Cut clips from it with [`view_clip`].
pub fn view(dir: &Path, scene: &Path, cam: CameraId, yaw: f64, fov: f64) -> PathBuf {
    let v_fov = 2.0 * ((fov / 2.0).to_radians().tan() * f64::from(H) / f64::from(W)).atan();
    let vf = format!(
        "v360=input=e:output=flat:yaw={yaw}:h_fov={fov}:v_fov={:.4}:w={W}:h={H}",
        v_fov.to_degrees()
    );
    let out = dir.join(format!("{cam}-view.mp4"));
    lossless(&["-i", scene.to_str().unwrap()], Some(&vf), &out);
    out
}

/// A rotated camera's clip: frames `[first, first + frames)` of its view.
pub fn view_clip(dir: &Path, view: &Path, cam: CameraId, first: u32, frames: u32) -> PathBuf {
    let vf = format!(
        "trim=start_frame={first}:end_frame={},setpts=PTS-STARTPTS",
        first + frames
    );
    camera_clip(dir, view, cam, &vf)
}

fn camera_clip(dir: &Path, scene: &Path, cam: CameraId, vf: &str) -> PathBuf {
    let out = dir.join(format!("{cam}-{}.mp4", unique()));
    ffmpeg(&[
        "-i",
        scene.to_str().unwrap(),
        "-vf",
        vf,
        "-c:v",
        "libx264",
        "-crf",
        "18",
        "-pix_fmt",
        "yuv420p",
        out.to_str().unwrap(),
    ]);
    out
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The manifest start time of scene frame `frame`: 14:00:00 plus
/// `frame / FPS` seconds.
pub fn start_of(frame: u32) -> String {
    format!(
        "2024-03-15T14:00:{:09.6}Z",
        f64::from(frame) / f64::from(FPS)
    )
}

/// Puts a camera's clip in a session the way rig-receive leaves it
/// (recording.mp4, manifest.json, recording.sha256), the manifest saying it
/// started at `start` by a clock synced or not, with `offset_ms`.
pub fn put_camera(
    layout: &ServerLayout,
    session: &SessionId,
    cam: CameraId,
    clip: &Path,
    start: &str,
    synced: bool,
    offset_ms: Option<f64>,
) {
    let rec_path = layout.recording(session, cam);
    std::fs::create_dir_all(rec_path.parent().unwrap()).unwrap();
    std::fs::copy(clip, &rec_path).unwrap();
    let opts = DescribeOptions {
        ffprobe: "ffprobe".into(),
        start: Some(start.parse().unwrap()),
        clock: Some(ClockSync {
            synced,
            offset_ms,
            source: "chronyc",
        }),
        ..DescribeOptions::default()
    };
    let rec = RecordingId::new(session.clone(), cam);
    let m = describe::describe(&rec_path, &rec, &opts).unwrap();
    m.write_atomic(&layout.manifest(session, cam)).unwrap();
    std::fs::write(
        layout.digest(session, cam),
        layout::digest_line(&m.checksum.value),
    )
    .unwrap();
}

/// Runs rig-stitch `bin` with `--config CONFIG --root ROOT` and `args`.
pub fn run_stitch(bin: &str, config: &Path, root: &Path, args: &[&str]) -> Output {
    let mut all = vec![
        "--config",
        config.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    super::run(bin, &all)
}

/// A server root with a config and one session of three cameras.
pub struct SyncRig {
    dir: tempfile::TempDir,
    /// Where things are.
    pub layout: ServerLayout,
    config: PathBuf,
}

impl SyncRig {
    /// A rig whose config has the usual test keys, replaced or added to by
    /// `extra` lines under `processing:` (each `  key: value\n`).
    pub fn new(extra: &str) -> SyncRig {
        let dir = tempfile::tempdir().unwrap();
        let layout = ServerLayout::under(dir.path());
        let config = dir.path().join("config.yaml");
        let defaults = format!(
            "  ffmpeg_path: ffmpeg\n  ffprobe_path: ffprobe\n  output_codec: h264\n  \
             output_preset: ultrafast\n  stitch_overlap_px: {OVERLAP}\n  output_width: 0\n"
        );
        let key = |l: &str| l.split(':').next().unwrap_or("").trim().to_string();
        let overridden: Vec<String> = extra.lines().map(key).collect();
        let mut text = "processing:\n".to_string();
        for line in defaults.lines().filter(|l| !overridden.contains(&key(l))) {
            text.push_str(line);
            text.push('\n');
        }
        text.push_str(extra);
        std::fs::write(&config, text).unwrap();
        SyncRig {
            dir,
            layout,
            config,
        }
    }

    /// The session.
    pub fn session(&self) -> SessionId {
        SessionId::parse(SESSION).unwrap()
    }

    /// Puts a camera's clip in place with a manifest saying it started at
    /// `start`, its clock NTP-synced or not.
    pub fn add_camera(&self, cam: CameraId, clip: &Path, start: &str, ntp_synced: bool) {
        put_camera(
            &self.layout,
            &self.session(),
            cam,
            clip,
            start,
            ntp_synced,
            None,
        );
    }

    /// Runs rig-stitch `bin` with this rig's config and root.
    pub fn stitch(&self, bin: &str, args: &[&str]) -> Output {
        run_stitch(bin, &self.config, self.dir.path(), args)
    }

    /// The session's panorama.
    pub fn panorama(&self) -> PathBuf {
        self.layout.panorama(&self.session())
    }
}
