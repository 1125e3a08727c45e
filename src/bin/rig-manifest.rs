//! rig-manifest: build, validate and verify recording manifests.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use soccer_rig::base::cli::{self, EXIT_FAILURE, EXIT_OK, Failure};
use soccer_rig::base::config::Config;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::layout::PiLayout;
use soccer_rig::base::manifest::describe::{self, DescribeOptions};
use soccer_rig::base::manifest::verify::{self, VerifyStatus};
use soccer_rig::base::manifest::{Manifest, parse_time};
use soccer_rig::record;

const PROGRAM: &str = "rig-manifest";

const HELP: &str = "\
rig-manifest: build, validate and verify soccer-rig recording manifests

Usage:
  rig-manifest create [VIDEO] --session ID --camera CAM [--out PATH|-]
                      [--start TIME] [--end TIME] [--recover] [--force]
  rig-manifest validate [--json] MANIFEST...
  rig-manifest verify [--json] [--video FILE] MANIFEST...

create    probe and hash VIDEO (default: its Pi layout path under node.storage_root)
          and write a complete manifest, by default to the Pi layout path;
          --out - prints it. --recover rebuilds the manifest of a recording whose
          rig-record died (timing from the file, ntp_synced false, \"recovered\": true).
          An existing manifest is replaced only with --force.
validate  print every problem of every manifest; exit 1 if any is invalid.
verify    re-hash each manifest's recording (located through the layouts, or
          --video for one manifest), print OK/MISMATCH/MISSING with both digests.

Options:
  --config PATH   configuration file (default $SOCCER_RIG_CONFIG, then
                  /etc/soccer-rig/config.yaml)
  --json          machine-readable output on stdout
  -h, --help      this text;  -V, --version  the version

Exit status: 0 success, 1 invalid manifest or failed verification, 2 usage or config error.
See rig-manifest(1).
";

fn main() -> std::process::ExitCode {
    cli::init_logging();
    cli::finish(PROGRAM, run())
}

fn run() -> Result<u8, Failure> {
    let mut args = pico_args::Arguments::from_env();
    if cli::help_or_version(&mut args, PROGRAM, HELP) {
        return Ok(EXIT_OK);
    }
    let config_flag: Option<PathBuf> = args.opt_value_from_str("--config")?;
    let command = args.subcommand()?;
    let known = ["create", "validate", "verify"];
    match command.as_deref() {
        Some(c) if known.contains(&c) => {}
        Some(other) => {
            return Err(Failure::usage(format!(
                "unknown command {other:?}: expected create, validate or verify"
            )));
        }
        None => {
            return Err(Failure::usage(
                "missing command: create, validate or verify; see --help",
            ));
        }
    }
    // Loaded for every command, even those that read nothing from it, so a
    // mistyped --config is an error (exit 2, naming the file) and never a
    // silent run on the defaults.
    let config = Config::load(config_flag.as_deref())?;
    match command.as_deref() {
        Some("create") => create(args, &config),
        Some("validate") => validate(args),
        _ => verify_cmd(args),
    }
}

fn parse_ts(flag: &str, value: Option<String>) -> Result<Option<jiff::Timestamp>, Failure> {
    value
        .map(|v| parse_time(&v).map_err(|e| Failure::usage(format!("{flag} {v:?}: {e}"))))
        .transpose()
}

/// `create`'s flags, as given.
struct CreateFlags {
    rec: RecordingId,
    out: Option<String>,
    start: Option<jiff::Timestamp>,
    end: Option<jiff::Timestamp>,
    recover: bool,
    force: bool,
    video: Option<PathBuf>,
}

impl CreateFlags {
    fn parse(mut args: pico_args::Arguments) -> Result<CreateFlags, Failure> {
        let session: String = args
            .opt_value_from_str("--session")?
            .ok_or_else(|| Failure::usage("create needs --session ID"))?;
        let camera: String = args
            .opt_value_from_str("--camera")?
            .ok_or_else(|| Failure::usage("create needs --camera CAM_L|CAM_C|CAM_R"))?;
        let out: Option<String> = args.opt_value_from_str("--out")?;
        let start = parse_ts("--start", args.opt_value_from_str("--start")?)?;
        let end = parse_ts("--end", args.opt_value_from_str("--end")?)?;
        let recover = args.contains("--recover");
        let force = args.contains("--force");
        let video: Option<PathBuf> = args.opt_free_from_str()?;
        cli::reject_leftovers(args)?;
        let session =
            SessionId::parse(&session).map_err(|e| Failure::usage(format!("--session: {e}")))?;
        let camera =
            CameraId::parse(&camera).map_err(|e| Failure::usage(format!("--camera: {e}")))?;
        Ok(CreateFlags {
            rec: RecordingId::new(session, camera),
            out,
            start,
            end,
            recover,
            force,
            video,
        })
    }
}

fn create(args: pico_args::Arguments, config: &Config) -> Result<u8, Failure> {
    let flags = CreateFlags::parse(args)?;
    let rec = &flags.rec;
    let pi = PiLayout::new(&config.node.storage_root);
    let video = flags.video.clone().unwrap_or_else(|| pi.recording(rec));
    let out_path = match flags.out.as_deref() {
        Some("-") => None,
        Some(p) => Some(PathBuf::from(p)),
        None => Some(pi.manifest(rec)),
    };
    refuse_create(&flags, &video, out_path.as_deref())?;
    let opts = DescribeOptions {
        ffprobe: config.processing.ffprobe_path.clone(),
        start: flags.start,
        end: flags.end,
        // Unknown at describe time: a recording made elsewhere or earlier.
        clock: None,
        digest: None,
        device_from_host: true,
        bitrate_mbps: None,
    };
    let mut manifest =
        describe::describe(&video, rec, &opts).map_err(|e| Failure::failed(e.to_string()))?;
    if flags.recover {
        describe::mark_recovered(&mut manifest);
    }
    match out_path {
        None => print!("{}", manifest.to_json_pretty()),
        Some(p) => write_manifest(&manifest, &p)?,
    }
    Ok(EXIT_OK)
}

/// What `create` refuses: `--recover` with timing flags or of a live
/// recording, and replacing a manifest without `--force`.
fn refuse_create(flags: &CreateFlags, video: &Path, out: Option<&Path>) -> Result<(), Failure> {
    if flags.recover && (flags.start.is_some() || flags.end.is_some()) {
        return Err(Failure::usage(
            "--recover takes its timing from the file; drop --start/--end",
        ));
    }
    if flags.recover {
        refuse_live(video)?;
    }
    if let Some(p) = out
        && p.exists()
        && !flags.force
    {
        return Err(Failure::failed(format!(
            "{} already exists; use --force to replace it",
            p.display()
        )));
    }
    Ok(())
}

/// Writes the manifest atomically and prints its path.
fn write_manifest(manifest: &Manifest, p: &Path) -> Result<(), Failure> {
    manifest
        .write_atomic(p)
        .map_err(|e| Failure::failed(e.to_string()))?;
    log::info!(
        "wrote {} ({} bytes of video, sha256 {})",
        p.display(),
        manifest.file.size_bytes,
        manifest.checksum.value
    );
    println!("{}", p.display());
    Ok(())
}

/// `--recover` is for a recording whose rig-record died: one that is still
/// being written would get the digest and duration of half a match.
fn refuse_live(video: &Path) -> Result<(), Failure> {
    match record::recording_is_live(video) {
        Ok(false) => Ok(()),
        Ok(true) => Err(Failure::failed(format!(
            "{}: rig-record is still recording it (it holds the recording's lock); \
             --recover is for a recording whose rig-record died. Stop rig-record and it \
             writes the manifest itself",
            video.display()
        ))),
        Err(e) => Err(Failure::failed(format!(
            "{e}; cannot tell whether rig-record is still writing it, so --recover refuses"
        ))),
    }
}

fn need_paths(args: pico_args::Arguments, what: &str) -> Result<Vec<PathBuf>, Failure> {
    let paths = cli::free_paths(args)?;
    if paths.is_empty() {
        return Err(Failure::usage(format!(
            "{what} needs at least one MANIFEST"
        )));
    }
    Ok(paths)
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure::failed(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn validate(mut args: pico_args::Arguments) -> Result<u8, Failure> {
    let json = args.contains("--json");
    let paths = need_paths(args, "validate")?;
    let results = verify::validate_files(&paths);
    if json {
        print_json(&results)?;
    } else {
        for r in &results {
            if r.valid {
                println!("{}: valid", r.manifest.display());
            } else {
                println!("{}: INVALID", r.manifest.display());
                for p in &r.problems {
                    println!("  {}: {}", p.field, p.message);
                }
            }
        }
    }
    Ok(if results.iter().all(|r| r.valid) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}

fn verify_cmd(mut args: pico_args::Arguments) -> Result<u8, Failure> {
    let json = args.contains("--json");
    let video: Option<PathBuf> = args.opt_value_from_str("--video")?;
    let paths = need_paths(args, "verify")?;
    if video.is_some() && paths.len() != 1 {
        return Err(Failure::usage("--video goes with exactly one MANIFEST"));
    }
    if std::io::stderr().is_terminal() && !json {
        eprintln!("hashing {} recording(s)...", paths.len());
    }
    let results = verify::verify_manifests(&paths, video.as_deref());
    if json {
        print_json(&results)?;
    } else {
        for r in &results {
            let id = r.recording_id.as_deref().unwrap_or("?");
            println!("{:<8} {id}  {}", r.status.label(), r.manifest.display());
            match r.status {
                VerifyStatus::Ok | VerifyStatus::Mismatch => {
                    println!(
                        "  expected sha256 {} ({} bytes)",
                        r.expected_sha256
                            .map_or_else(|| "?".to_string(), |d| d.to_string()),
                        r.expected_size.unwrap_or(0)
                    );
                    println!(
                        "  actual   sha256 {} ({} bytes)",
                        r.actual_sha256
                            .map_or_else(|| "?".to_string(), |d| d.to_string()),
                        r.actual_size.unwrap_or(0)
                    );
                }
                _ => {
                    for d in &r.detail {
                        println!("  {d}");
                    }
                }
            }
        }
    }
    Ok(if results.iter().all(|r| r.status == VerifyStatus::Ok) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}
