//! A synthetic rotated rig: one wide textured equirectangular scene (lavfi
//! noise, blurred, with a moving red "player"; the noise is tinted by slow
//! waves that differ per channel, so the scene is coloured: red, green,
//! blue, purple, yellow patches), and camera views of
//! it rendered with ffmpeg's `v360` (equirect to flat), lens distortion by
//! `lenscorrection` and exposure and white balance by `colorchannelmixer`
//! (a multiplier per RGB channel): independent of
//! rig-stitch's own projection code.

use super::ffmpeg;
use std::path::{Path, PathBuf};

/// One camera of the synthetic rig.
#[derive(Debug, Clone, Copy)]
pub struct View {
    pub yaw: f64,
    pub pitch: f64,
    pub roll: f64,
    pub hfov: f64,
    /// `lenscorrection` k1 applied to the ideal view (0 = none).
    pub k1: f64,
    /// R, G and B multiplied by these (1 = as is): exposure, and a colour
    /// cast when they differ.
    pub rgb: [f64; 3],
}

pub const W: u32 = 640;
pub const H: u32 = 360;
pub const FPS: u32 = 10;
pub const SECONDS: u32 = 2;

/// Renders the scene (`textured`: blurred tinted noise; else one uniform
/// colour) as a lossless clip in `dir`.
pub fn scene(dir: &Path, textured: bool) -> PathBuf {
    let png = dir.join(if textured { "scene.png" } else { "flat.png" });
    let src = if textured {
        "nullsrc=s=3072x1536,format=gbrp,geq=r='random(1)*255*(0.6+0.4*sin(X/211))':\
         g='random(1)*255*(0.6+0.4*sin(X/157+2))':b='random(1)*255*(0.6+0.4*sin(Y/89+4))',\
         gblur=sigma=1.5"
    } else {
        "color=c=0x708070:s=3072x1536,format=gbrp"
    };
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        src,
        "-frames:v",
        "1",
        png.to_str().unwrap(),
    ]);
    let clip = dir.join(if textured { "scene.mkv" } else { "flat.mkv" });
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        &FPS.to_string(),
        "-t",
        &SECONDS.to_string(),
        "-i",
        png.to_str().unwrap(),
        "-vf",
        "drawbox=x='mod(t*700,3072)':y=700:w=60:h=160:c=red:t=fill",
        "-c:v",
        "ffv1",
        clip.to_str().unwrap(),
    ]);
    clip
}

/// Vertical FOV of a `W` x `H` view with `hfov`, square pixels.
pub fn vfov(hfov: f64) -> f64 {
    2.0 * ((hfov / 2.0).to_radians().tan() * H as f64 / W as f64)
        .atan()
        .to_degrees()
}

/// Renders one camera's recording of `scene` (H.264, high quality).
pub fn camera(scene: &Path, view: &View, out: &Path) {
    let mut vf = format!(
        "v360=input=e:output=flat:h_fov={}:v_fov={}:w={W}:h={H}:yaw={}:pitch={}:roll={}:\
         interp=cubic",
        view.hfov,
        vfov(view.hfov),
        view.yaw,
        view.pitch,
        view.roll
    );
    if view.k1 != 0.0 {
        vf.push_str(&format!(",lenscorrection=k1={}:i=bilinear", view.k1));
    }
    if view.rgb != [1.0; 3] {
        let [r, g, b] = view.rgb;
        vf.push_str(&format!(",colorchannelmixer=rr={r}:gg={g}:bb={b}"));
    }
    vf.push_str(",format=yuv420p");
    ffmpeg(&[
        "-i",
        scene.to_str().unwrap(),
        "-vf",
        &vf,
        "-c:v",
        "libx264",
        "-crf",
        "10",
        "-preset",
        "veryfast",
        out.to_str().unwrap(),
    ]);
}

/// The truth in the panorama's projection: the scene straight to a
/// cylinder of `w` x `h`, `hfov` x `vfov` degrees, centred on `yaw0`.
pub fn truth(scene: &Path, w: u32, h: u32, hfov: f64, vfov: f64, yaw0: f64, out: &Path) {
    ffmpeg(&[
        "-i",
        scene.to_str().unwrap(),
        "-vf",
        &format!(
            "v360=input=e:output=cylindrical:h_fov={hfov}:v_fov={vfov}:w={w}:h={h}:yaw={yaw0}:\
             interp=cubic,format=yuv420p"
        ),
        "-c:v",
        "ffv1",
        out.to_str().unwrap(),
    ]);
}

/// The first frame of `clip`'s leftmost `cols` columns as 4:4:4 planes:
/// `[y, u, v]`, row after row.
pub fn planes(clip: &Path, cols: u32) -> [Vec<u8>; 3] {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(clip)
        .args(["-frames:v", "1", "-vf"])
        .arg(format!("crop={cols}:ih:0:0,format=yuv444p"))
        .args(["-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = (cols * H) as usize;
    assert_eq!(out.stdout.len(), 3 * n);
    [0, 1, 2].map(|k| out.stdout[k * n..(k + 1) * n].to_vec())
}
