//! rig-upload: offload recordings from a Pi camera node to the server.
//! The flow, retries and state live in `soccer_rig::upload`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use soccer_rig::base::cli::{self, EXIT_FAILURE, EXIT_OK, Failure};
use soccer_rig::base::config::Config;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::upload::{self, OffloadError, OffloadOptions, OffloadReport};

const PROGRAM: &str = "rig-upload";

const HELP: &str = "\
rig-upload: offload recordings to the soccer-rig server (PROTOCOL.md upload flow)

USAGE:
    rig-upload [OPTIONS] SESSION_ID CAMERA_ID
    rig-upload [OPTIONS] --all
    rig-upload [OPTIONS] --file VIDEO --manifest MANIFEST

Uploads the recording, confirms the server's SHA-256 matches the manifest's,
and marks it offloaded in S_C.offload.json beside the manifest. Retries
network errors, 5xx, checksum mismatches and 409 upload_in_progress (the
server still holding a dropped attempt) after 5, 10, 20, 40 s (by default).

OPTIONS:
    --all                   Every recording under the storage root not yet
                            offloaded, oldest first; failed ones are retried
    --file VIDEO            Offload this video file ...
    --manifest MANIFEST     ... described by this manifest (state beside it)
    --server URL            Server base URL [config offload.server_url,
                            default http://192.168.1.200:8081]
    --root DIR              Pi storage root [config node.storage_root,
                            default /mnt/nvme]
    --config PATH           Config file [$SOCCER_RIG_CONFIG,
                            default /etc/soccer-rig/config.yaml]
    --rehash                Hash the file first; refuse it if it no longer
                            matches its manifest
    --delete-after-confirm  Delete the local recording once the server's
                            digest matched [config offload.delete_after_confirm,
                            default off]
    --auto                  Do nothing unless offload.auto_upload is true
                            (for cron)
    --wait                  Wait for a running rig-upload instead of exiting
    --no-resume             Send whole files: do not continue from the bytes
                            an interrupted upload left on the server
    --dry-run               Show what would be sent; send and change nothing
    --json                  One JSON result object per recording on stdout
    -h, --help              Show this help
    -V, --version           Show the version

EXIT STATUS:
    0 all requested recordings are offloaded, 1 any failed (or another
    rig-upload holds the lock), 2 usage or configuration error.
";

fn main() -> ExitCode {
    cli::init_logging();
    cli::finish(PROGRAM, run())
}

enum Target {
    One(RecordingId),
    All,
    Pair(PathBuf, PathBuf),
}

/// The command line, parsed.
struct Args {
    config_path: Option<PathBuf>,
    server: Option<String>,
    root: Option<PathBuf>,
    target: Target,
    opts: OffloadOptions,
    delete: bool,
    auto: bool,
    json: bool,
}

fn run() -> Result<u8, Failure> {
    let mut args = pico_args::Arguments::from_env();
    if cli::help_or_version(&mut args, PROGRAM, HELP) {
        return Ok(EXIT_OK);
    }
    let args = parse_args(args)?;
    let config = load_config(&args)?;
    if args.auto && !config.offload.auto_upload {
        log::info!("offload.auto_upload is false; --auto does nothing");
        return Ok(EXIT_OK);
    }
    let opts = &args.opts;
    let result = match args.target {
        Target::All => upload::offload_all(&config, opts),
        Target::One(rec) => upload::offload_recording(&config, &rec, opts).map(|r| vec![r]),
        Target::Pair(f, m) => upload::offload_files(&config, &f, &m, opts).map(|r| vec![r]),
    };
    let reports = match result {
        Ok(r) => r,
        Err(e) => return Err(offload_failure(e, args.json)),
    };
    print_reports(&reports, args.json);
    Ok(if reports.iter().all(OffloadReport::is_success) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}

fn parse_args(mut args: pico_args::Arguments) -> Result<Args, Failure> {
    let config_path: Option<PathBuf> = args.opt_value_from_str("--config")?;
    let server: Option<String> = args.opt_value_from_str("--server")?;
    let root: Option<PathBuf> = args.opt_value_from_str("--root")?;
    let file: Option<PathBuf> = args.opt_value_from_str("--file")?;
    let manifest: Option<PathBuf> = args.opt_value_from_str("--manifest")?;
    let all = args.contains("--all");
    let opts = OffloadOptions {
        rehash: args.contains("--rehash"),
        dry_run: args.contains("--dry-run"),
        progress: true,
        wait_for_lock: args.contains("--wait"),
        no_resume: args.contains("--no-resume"),
    };
    let delete = args.contains("--delete-after-confirm");
    let auto = args.contains("--auto");
    let json = args.contains("--json");
    let free: Vec<String> = args
        .finish()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if let Some(flag) = free.iter().find(|a| a.starts_with('-')) {
        return Err(Failure::usage(format!("unknown flag {flag}; see --help")));
    }
    Ok(Args {
        config_path,
        server,
        root,
        target: target(all, file, manifest, &free)?,
        opts,
        delete,
        auto,
        json,
    })
}

/// What to offload: exactly one of an ID pair, `--all`, `--file` with `--manifest`.
fn target(
    all: bool,
    file: Option<PathBuf>,
    manifest: Option<PathBuf>,
    free: &[String],
) -> Result<Target, Failure> {
    match (all, file, manifest, free) {
        (true, None, None, []) => Ok(Target::All),
        (false, Some(f), Some(m), []) => Ok(Target::Pair(f, m)),
        (false, None, None, [session, camera]) => {
            let session = SessionId::parse(session).map_err(|e| Failure::usage(e.to_string()))?;
            let camera = CameraId::parse(camera).map_err(|e| Failure::usage(e.to_string()))?;
            Ok(Target::One(RecordingId::new(session, camera)))
        }
        (false, Some(_), None, []) | (false, None, Some(_), []) => Err(Failure::usage(
            "--file and --manifest go together; see --help",
        )),
        _ => Err(Failure::usage(
            "give SESSION_ID CAMERA_ID, or --all, or --file VIDEO --manifest MANIFEST \
             (exactly one); see --help",
        )),
    }
}

/// The configuration with the command line's overrides, checked.
fn load_config(args: &Args) -> Result<Config, Failure> {
    let mut config = Config::load(args.config_path.as_deref())?;
    if let Some(url) = &args.server {
        config.offload.server_url = url.clone();
    }
    if let Some(root) = &args.root {
        config.node.storage_root = root.clone();
    }
    if args.delete {
        config.offload.delete_after_confirm = true;
    }
    config
        .check()
        .map_err(|m| Failure::usage(format!("config: {m}")))?;
    Ok(config)
}

fn offload_failure(e: OffloadError, json: bool) -> Failure {
    if json {
        let obj =
            serde_json::json!({"success": false, "error": e.code(), "message": e.to_string()});
        println!("{obj}");
    }
    if e.is_config() {
        Failure::usage(e.to_string())
    } else {
        Failure::failed(e.to_string())
    }
}

fn print_reports(reports: &[OffloadReport], json: bool) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for r in reports {
        let line = if json {
            serde_json::to_string(r).unwrap_or_default()
        } else {
            r.summary()
        };
        // A closed stdout (e.g. `| head`) must not turn success into a panic.
        let _ = writeln!(out, "{line}");
    }
    let _ = out.flush();
}
