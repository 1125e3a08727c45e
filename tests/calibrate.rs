//! `rig-stitch calibrate` and the calibrated stitch on a synthetic rotated
//! rig (see `common::scene`): three views of one wide textured scene made by
//! ffmpeg's `v360`, CAM_L yawed left with barrel distortion, CAM_R yawed
//! right, pitched 1.5 and rolled 1 degree, 20% darker with a warm colour
//! cast, all with different FOVs. The calibration must recover the angles
//! (0.2 degree) and FOVs (0.5 degree) and CAM_R's chroma maps; against the
//! truth rendered in the panorama's projection straight from the scene, the
//! seams must reach 32 dB and come within 2 dB of the cameras' own columns,
//! and the whole panorama within 2 dB of those interiors, the cast seam's
//! colour as good as without a cast and better than with the exposure gain
//! alone; a flat scene must fall back to the prior, saying so.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::scene::{self, View};
use common::sync_rig;
use serde_json::Value;
use soccer_rig::base::ids::{CameraId, SessionId};
use soccer_rig::base::layout::ServerLayout;

const BIN: &str = env!("CARGO_BIN_EXE_rig-stitch");
const SESSION: &str = "GAME_20240315_140000";

/// CAM_R's R, G and B multipliers: 20% darker, with a warm cast (blue
/// cut most, red least), as a white balance set wrong does.
const CAST: [f64; 3] = [0.85, 0.8, 0.7];

const VIEWS: [View; 3] = [
    View {
        yaw: -58.0,
        pitch: 0.0,
        roll: 0.0,
        hfov: 70.0,
        k1: -0.03,
        rgb: [1.0; 3],
    },
    View {
        yaw: 0.0,
        pitch: 0.0,
        roll: 0.0,
        hfov: 72.0,
        k1: 0.0,
        rgb: [1.0; 3],
    },
    View {
        yaw: 60.0,
        pitch: 1.5,
        roll: 1.0,
        hfov: 76.0,
        k1: 0.0,
        rgb: CAST,
    },
];

struct Rig {
    dir: tempfile::TempDir,
    layout: ServerLayout,
    config: PathBuf,
    scene: PathBuf,
}

impl Rig {
    fn new(textured: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let layout = ServerLayout::under(dir.path());
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            "processing:\n  ffmpeg_path: ffmpeg\n  ffprobe_path: ffprobe\n  \
             output_codec: h264\n  output_preset: ultrafast\n  output_width: 0\n  \
             nominal_yaw_deg: 60\n  nominal_hfov_deg: 73\n",
        )
        .unwrap();
        let scene = scene::scene(dir.path(), textured);
        let rig = Rig {
            dir,
            layout,
            config,
            scene,
        };
        for (cam, view) in CameraId::ALL.iter().zip(VIEWS) {
            let clip = rig.dir.path().join(format!("{cam}.mp4"));
            scene::camera(&rig.scene, &view, &clip);
            rig.add_camera(*cam, &clip);
        }
        rig
    }

    fn session(&self) -> SessionId {
        SessionId::parse(SESSION).unwrap()
    }

    fn add_camera(&self, cam: CameraId, clip: &Path) {
        let start = "2024-03-15T14:00:00Z";
        sync_rig::put_camera(
            &self.layout,
            &self.session(),
            cam,
            clip,
            start,
            true,
            Some(0.0),
        );
    }

    fn run(&self, args: &[&str]) -> Output {
        sync_rig::run_stitch(BIN, &self.config, self.dir.path(), args)
    }
}

fn json_of(out: &Output) -> Value {
    assert!(out.status.success(), "{}", common::stderr(out));
    serde_json::from_str(&common::stdout(out))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::stdout(out)))
}

/// PSNR of `a` against `b` over columns `[x, x + w)`, all frames: luma and
/// chroma (U and V together).
fn psnr(a: &Path, b: &Path, crop: Option<(u32, u32)>) -> Psnr {
    let cut = crop
        .map(|(w, x)| format!("crop={w}:ih:{x}:0,"))
        .unwrap_or_default();
    let graph = format!("[0:v]{cut}format=yuv420p[a];[1:v]{cut}format=yuv420p[b];[a][b]psnr");
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .unwrap();
    let err = common::stderr(&out);
    assert!(out.status.success(), "{err}");
    let line = err
        .lines()
        .rfind(|l| l.contains("PSNR y:"))
        .unwrap_or_else(|| panic!("no PSNR in {err}"));
    let get = |k: &str| -> f64 {
        let v = line.split_whitespace().find_map(|f| f.strip_prefix(k));
        v.and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in {line}"))
    };
    Psnr {
        y: get("y:"),
        u: get("u:"),
        v: get("v:"),
        uv: pooled(&[get("u:"), get("v:")]),
    }
}

/// Luma, U, V and chroma (U and V pooled) PSNR, dB.
#[derive(Debug, Clone, Copy)]
struct Psnr {
    y: f64,
    u: f64,
    v: f64,
    uv: f64,
}

#[test]
fn calibrate_recovers_the_rig_and_the_seams_match_the_truth() {
    let rig = Rig::new(true);
    let cal = json_of(&rig.run(&["--json", "calibrate", SESSION]));
    let c = &cal["calibration"];
    eprintln!("{}", serde_json::to_string_pretty(c).unwrap());
    for (name, view) in ["CAM_L", "CAM_C", "CAM_R"].iter().zip(VIEWS) {
        let got = &c["cameras"][name];
        let f = |k: &str| got[k].as_f64().unwrap();
        eprintln!(
            "{name}: yaw {} (truth {}), hfov {} (truth {})",
            f("yaw_deg"),
            view.yaw,
            f("hfov_deg"),
            view.hfov
        );
        for (k, want, tol) in [
            ("yaw_deg", view.yaw, 0.2),
            ("pitch_deg", view.pitch, 0.2),
            ("roll_deg", view.roll, 0.2),
            ("hfov_deg", view.hfov, 0.5),
        ] {
            assert!(
                (f(k) - want).abs() <= tol,
                "{name}.{k}: got {}, truth {want}",
                f(k)
            );
        }
    }
    let gain_r = c["gains"][2].as_f64().unwrap();
    assert!(
        (gain_r - 1.25).abs() < 0.05,
        "CAM_R gain {gain_r}, truth 1.25"
    );
    for seam in c["seams"].as_array().unwrap() {
        assert_eq!(seam["status"], "calibrated", "{seam}");
    }
    assert!(rig.layout.calibration(&rig.session()).exists());
    assert!(rig.layout.rig_calibration().exists());

    // Stitch with it (the session's own calibration is found by itself).
    let out = json_of(&rig.run(&["--json", SESSION]));
    assert_eq!(out["result"], "stitched", "{out}");
    let full = Scores::of(&rig);
    eprintln!("at the calibration's scale: {full:?}");
    full.check();
    // Written at half the width: every camera is warped straight to the
    // output's scale (no full-size blend, then scale); the same holds.
    let out = json_of(&rig.run(&["--json", "--force", "--output-width", "700", SESSION]));
    assert_eq!(out["result"], "stitched", "{out}");
    let sc = Scores::of(&rig);
    eprintln!("at 700 columns: {sc:?}");
    sc.check();
    check_colour(&rig, c, [&full, &sc]);
    check_fit(&rig, c);
}

/// A calibration from elsewhere (no `session_id`: another session's, or
/// hand-made) is checked against the session's pictures: the true one
/// passes unremarked, one with CAM_L turned 4 degrees is named for seam
/// CAM_L/CAM_C alone, with the command that mends it.
fn check_fit(rig: &Rig, c: &Value) {
    let plan_warnings = |cal: &Value| -> Vec<String> {
        let file = rig.dir.path().join("other-calibration.json");
        std::fs::write(&file, serde_json::to_string(cal).unwrap()).unwrap();
        let args = [
            "--json",
            "--dry-run",
            "--calibration",
            file.to_str().unwrap(),
            SESSION,
        ];
        let out = json_of(&rig.run(&args));
        let w = &out["plan"]["warnings"];
        w.as_array()
            .unwrap_or_else(|| panic!("no plan.warnings: {out}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let mut other = c.clone();
    other["session_id"] = Value::Null;
    let fits = plan_warnings(&other);
    assert!(!fits.iter().any(|w| w.contains("does not fit")), "{fits:?}");
    let yaw = other["cameras"]["CAM_L"]["yaw_deg"].as_f64().unwrap();
    other["cameras"]["CAM_L"]["yaw_deg"] = (yaw + 4.0).into();
    let moved = plan_warnings(&other);
    let misfit: Vec<&String> = moved
        .iter()
        .filter(|w| w.contains("does not fit"))
        .collect();
    eprintln!("CAM_L turned 4 degrees: {misfit:?}");
    assert_eq!(misfit.len(), 1, "{moved:?}");
    assert!(
        misfit[0].starts_with("seam CAM_L/CAM_C")
            && misfit[0].contains(&format!("rig-stitch calibrate {SESSION}")),
        "{misfit:?}"
    );
}

/// Seam C|R's chroma PSNR (U, V) on the same rig without the cast (CAM_R
/// only 20% darker), at the calibration's scale and at 700 columns, as
/// measured when colour matching was made (issue 16's note).
const NO_CAST_SEAM_UV: [(f64, f64); 2] = [(45.1, 47.4), (41.8, 47.3)];

/// CAM_R's colour cast: its chroma maps against the truth, and the seam
/// C|R against the same stitch with the file as it was before colour
/// matching (no `chroma`: chroma follows the exposure gain), which must
/// still read.
fn check_colour(rig: &Rig, c: &Value, scores: [&Scores; 2]) {
    let got = &c["chroma"]["CAM_R"];
    let truth = truth_maps(rig);
    eprintln!(
        "CAM_R chroma {got}, truth (gain, offset) U {:?} V {:?}",
        truth[0], truth[1]
    );
    // 0.05 of gain is a level at the overlap's typical +-20 levels of
    // chroma, and 1.5 levels of offset about the clips' coding noise: the
    // fit reads medians of H.264 frames through the calibrated geometry,
    // the truth is the exact views' least squares (measured: 0.01 and 0.2
    // off). Chroma only following the exposure gain (1.24, no offset) is
    // 0.17 and 7.6 off in U.
    for (k, (g, o)) in ["u", "v"].iter().zip(truth) {
        let f = |n: &str| got[format!("{k}_{n}")].as_f64().unwrap();
        assert!(
            (f("gain") - g).abs() <= 0.05,
            "{k}_gain {}, truth {g:.3}",
            f("gain")
        );
        assert!(
            (f("offset") - o).abs() <= 1.5,
            "{k}_offset {}, truth {o:.2}",
            f("offset")
        );
    }
    let seam = &c["seams"][1];
    let rms = |k: &str| {
        seam[k]
            .as_f64()
            .unwrap_or_else(|| panic!("no {k} in {seam}"))
    };
    assert!(rms("uv_rms") < rms("uv_rms_gain_only"), "{seam}");
    // The seam's colour as good as without a cast, within 1.5 dB (the
    // cast's share that grows with brightness is not a per-plane map's to
    // correct; measured: 1.1 dB and 0.3 dB under at the calibration's
    // scale, 0.0 and 0.6 dB at 700 columns).
    for (sc, (u, v)) in scores.iter().zip(NO_CAST_SEAM_UV) {
        let s = sc.seams[1];
        assert!(
            s.u >= u - 1.5 && s.v >= v - 1.5,
            "seam C|R {s:?}, no cast U {u} V {v}"
        );
    }
    let mut old = c.clone();
    old.as_object_mut().unwrap().remove("chroma");
    let file = rig.dir.path().join("old-calibration.json");
    std::fs::write(&file, old.to_string()).unwrap();
    let args = [
        "--json",
        "--force",
        "--output-width",
        "700",
        "--calibration",
    ];
    let out = json_of(&rig.run(&[&args[..], &[file.to_str().unwrap(), SESSION]].concat()));
    assert_eq!(out["result"], "stitched", "{out}");
    let without = Panorama::of(rig).seam(1);
    eprintln!("gain only, 700 columns: seam C|R {without:?}");
    // Without the colour step the seam is measurably worse (measured: 6.1
    // dB in U, 4.3 dB in V).
    let with = scores[1].seams[1];
    assert!(
        with.u >= without.u + 2.0 && with.v >= without.v + 2.0,
        "seam C|R with colour maps {with:?}, chroma following the gain {without:?}"
    );
}

/// The chroma maps `(gain, offset)` for U and V that take CAM_R's view to
/// the same view without the cast (CAM_C's levels): least squares over
/// the columns CAM_R shares with CAM_C (its leftmost 136), first frame.
fn truth_maps(rig: &Rig) -> [(f64, f64); 2] {
    let (cast, want) = cast_and_plain(rig);
    [1, 2].map(|k| least_squares(&cast[k], &want[k]))
}

/// CAM_R's view (leftmost 136 columns, first frame, 4:4:4 planes) as
/// recorded, and rendered again without its cast and darkening.
fn cast_and_plain(rig: &Rig) -> ([Vec<u8>; 3], [Vec<u8>; 3]) {
    let plain = rig.dir.path().join("CAM_R-plain.mp4");
    scene::camera(
        &rig.scene,
        &View {
            rgb: [1.0; 3],
            ..VIEWS[2]
        },
        &plain,
    );
    (
        scene::planes(&rig.dir.path().join("CAM_R.mp4"), 136),
        scene::planes(&plain, 136),
    )
}

/// The mean of `v`'s levels.
fn mean(v: &[u8]) -> f64 {
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64
}

/// `y - 128 = gain (x - 128) + offset`, least squares.
fn least_squares(x: &[u8], y: &[u8]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = x.iter().zip(y).fold((0.0, 0.0), |(a, b), (&x, &y)| {
        (
            a + (f64::from(x) - 128.0) / n,
            b + (f64::from(y) - 128.0) / n,
        )
    });
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (&x, &y) in x.iter().zip(y) {
        let (dx, dy) = (f64::from(x) - 128.0 - mx, f64::from(y) - 128.0 - my);
        sxx += dx * dx;
        sxy += dx * dy;
    }
    let gain = sxy / sxx;
    (gain, my - gain * mx)
}

impl Scores {
    /// The targets (see the test).
    fn check(&self) {
        let sc = self;
        // The absolute target, then the relative ones: each seam
        // within 2 dB of the interiors of the two cameras it joins, and the
        // whole panorama within 2 dB of its interiors alone. (CAM_L's interior
        // is the lowest: the renderer's own `lenscorrection` blurred that view
        // before the stitcher saw it. Issue 16's closing note has the figures.)
        let ys = |v: &[Psnr]| v.iter().map(|p| p.y).collect::<Vec<_>>();
        let uvs = |v: &[Psnr]| v.iter().map(|p| p.uv).collect::<Vec<_>>();
        for (k, seam) in sc.seams.into_iter().enumerate() {
            let own = [&sc.interiors[k][..], &sc.interiors[k + 1][..]].concat();
            let (inner, inner_uv) = (pooled(&ys(&own)), pooled(&uvs(&own)));
            assert!(seam.y >= 32.0, "seam {k}: {:.2} dB < 32 ({sc:?})", seam.y);
            assert!(
                seam.y >= inner - 2.0,
                "seam {k}: {:.2} dB, its cameras' interiors {inner:.2} ({sc:?})",
                seam.y
            );
            // The colour too: CAM_R's 20% darker, warm-cast chroma is brought
            // back by its chroma maps, so its seam's colour matches as well as
            // the cameras' own.
            assert!(
                seam.uv >= inner_uv - 2.0,
                "seam {k} chroma: {:.2} dB, its cameras' interiors {inner_uv:.2} ({sc:?})",
                seam.uv
            );
        }
        let all = sc.interiors.concat();
        let inner = pooled(&ys(&all));
        assert!(
            sc.whole.y >= inner - 2.0,
            "whole {:.2} dB, interiors {inner:.2} ({sc:?})",
            sc.whole.y
        );
    }
}

/// The PSNR of equal-size regions together, from theirs (their mean
/// squared errors averaged).
fn pooled(psnrs: &[f64]) -> f64 {
    let mse: f64 = psnrs.iter().map(|p| 10f64.powf(-p / 10.0)).sum::<f64>() / psnrs.len() as f64;
    -10.0 * mse.log10()
}

/// PSNR (luma, chroma) of a calibrated panorama against the truth in its
/// projection: the two seam bands, three bands of the same width in each
/// camera's own columns (L, C, R), and the whole frame.
#[derive(Debug)]
struct Scores {
    seams: [Psnr; 2],
    interiors: [Vec<Psnr>; 3],
    whole: Psnr,
}

impl Scores {
    fn of(rig: &Rig) -> Scores {
        let p = Panorama::of(rig);
        let (o, s, w) = (&p.offsets, &p.seams, p.width);
        // Each camera's own columns (no neighbour blended in).
        let own = [(0, o[1]), (o[1] + s[0], o[2]), (o[2] + s[1], w)];
        let bw = s[0].max(s[1]);
        let interiors = own.map(|(a, b)| {
            assert!(b - a >= bw, "{own:?} {bw}");
            (0..3)
                .map(|k| p.band(a + (b - a - bw) * k / 2, bw))
                .collect()
        });
        Scores {
            seams: [p.seam(0), p.seam(1)],
            interiors,
            whole: psnr(&p.file, &p.truth, None),
        }
    }
}

/// The stitched panorama, the truth rendered for it, and its layout at
/// the size written.
struct Panorama {
    file: PathBuf,
    truth: PathBuf,
    width: u32,
    offsets: Vec<u32>,
    seams: Vec<u32>,
}

impl Panorama {
    fn of(rig: &Rig) -> Panorama {
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(rig.layout.panorama_record(&rig.session())).unwrap(),
        )
        .unwrap();
        assert_eq!(record["projection"], "cylindrical");
        let num = |v: &Value| v.as_f64().unwrap();
        let (w, h) = (num(&record["width"]) as u32, num(&record["height"]) as u32);
        let truth = rig.dir.path().join("truth.mkv");
        scene::truth(
            &rig.scene,
            w,
            h,
            num(&record["hfov_deg"]),
            num(&record["vfov_deg"]),
            num(&record["yaw0_deg"]),
            &truth,
        );
        let canvas = &record["canvas"];
        // The canvas is the layout at the calibration's scale; a panorama
        // written smaller has it scaled by the width ratio.
        let scale = f64::from(w) / num(&canvas["panorama"]["width"]);
        let list = |k: &str| -> Vec<u32> {
            canvas[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| (num(v) * scale / 2.0).round() as u32 * 2)
                .collect()
        };
        Panorama {
            file: rig.layout.panorama(&rig.session()),
            truth,
            width: w,
            offsets: list("offsets"),
            seams: list("seams"),
        }
    }

    /// PSNR of columns `[x, x + bw)` against the truth.
    fn band(&self, x: u32, bw: u32) -> Psnr {
        psnr(&self.file, &self.truth, Some((bw, x / 2 * 2)))
    }

    /// PSNR of seam `k`'s band (0: L|C, 1: C|R).
    fn seam(&self, k: usize) -> Psnr {
        self.band(self.offsets[k + 1], self.seams[k])
    }
}

#[test]
fn a_flat_scene_falls_back_to_the_prior_and_says_so() {
    let rig = Rig::new(false);
    let out = rig.run(&["--json", "calibrate", SESSION]);
    let cal = json_of(&out);
    let c = &cal["calibration"];
    for seam in c["seams"].as_array().unwrap() {
        assert_eq!(seam["status"], "fallback_prior", "{seam}");
    }
    let warnings = c["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().contains("too little texture"),
        "{warnings:?}"
    );
    assert!(common::stderr(&out).contains("too little texture"));
    // The prior's geometry, not something made up.
    assert_eq!(c["prior"], "nominal");
    assert_eq!(c["cameras"]["CAM_L"]["yaw_deg"], -60.0);
    assert_eq!(c["cameras"]["CAM_R"]["hfov_deg"], 73.0);
    // One flat colour: CAM_R's chroma gain cannot be told from its offset,
    // so it follows the exposure gain, and the offset alone brings the
    // cast colour to the true one (within 1.5 levels, the coding noise).
    let (cast, plain) = cast_and_plain(&rig);
    let map = &c["chroma"]["CAM_R"];
    let gain = c["gains"][2].as_f64().unwrap();
    for (k, p) in [(1, "u"), (2, "v")] {
        let f = |n: &str| map[format!("{p}_{n}")].as_f64().unwrap();
        assert_eq!(f("gain"), gain, "{map}");
        let mapped = 128.0 + gain * (mean(&cast[k]) - 128.0) + f("offset");
        let want = mean(&plain[k]);
        eprintln!("flat {p}: mapped {mapped:.2}, truth {want:.2} ({map})");
        assert!(
            (mapped - want).abs() <= 1.5,
            "{p}: {mapped:.2} vs {want:.2} ({map})"
        );
    }
}

/// A recording cut short after its header (a card pulled mid-write, a
/// copy interrupted): ffprobe still reads the whole length, the decoder
/// ends early. The warp names the camera and how short the panorama is,
/// and the stitch's own check of the output says it too.
#[test]
fn a_recording_cut_short_is_named() {
    let rig = Rig::new(false);
    json_of(&rig.run(&["--json", "calibrate", SESSION]));
    let rec = rig.layout.recording(&rig.session(), CameraId::Right);
    let whole = rig.dir.path().join("whole.mp4");
    common::ffmpeg(&[
        "-i",
        rec.to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        whole.to_str().unwrap(),
    ]);
    // Cut where the eleventh frame's bytes start: ten frames decode.
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pos", "-of", "csv=p=0", whole.to_str().unwrap()])
        .output()
        .unwrap();
    let mut pos: Vec<usize> = String::from_utf8_lossy(&probe.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pos.sort_unstable();
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(&rec, &bytes[..pos[10]]).unwrap();

    let out = rig.run(&["--json", SESSION]);
    let err = common::stderr(&out);
    eprintln!("{err}");
    let said = err
        .lines()
        .find(|l| l.contains("CAM_R's decoder ended after"))
        .unwrap_or_else(|| panic!("no warning naming CAM_R: {err}"));
    assert!(
        said.contains("s short") && said.contains("recording.mp4"),
        "{said}"
    );
    assert!(!err.contains("CAM_L's decoder") && !err.contains("CAM_C's decoder"));
    assert!(err.contains("an input may end early"), "{err}");
}
