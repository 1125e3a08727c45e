//! rig-record: record a match on a Pi camera node into the Pi layout, with a
//! manifest filled from reality. Logic lives in `soccer_rig::record`.

use std::path::PathBuf;
use std::process::ExitCode;

use soccer_rig::base::cli::{self, Failure};
use soccer_rig::base::config::Config;
use soccer_rig::base::ids::{CameraId, SessionId};
use soccer_rig::record::{self, RecordOptions};

const HELP: &str = "\
rig-record: record a match to recordings/S/C/S_C.mp4 and write its manifest

USAGE:
    rig-record [--config PATH] [--session ID|auto] [--camera CAM]
               [--duration SECS] [--source SPEC] [--json]
    rig-record --test [--config PATH] [--duration SECS] [--source SPEC] [--json]

OPTIONS:
    --config PATH      configuration file (default: $SOCCER_RIG_CONFIG,
                       else /etc/soccer-rig/config.yaml)
    --session ID|auto  session ID; auto (default) = GAME_YYYYMMDD_HHMMSS
    --camera CAM       CAM_L, CAM_C or CAM_R (default: node.camera_id)
    --duration SECS    stop after SECS seconds of video (default: until
                       SIGINT/SIGTERM; --test: 10)
    --source SPEC      test | v4l2:/dev/videoN | cmd:<shell command> |
                       cmd-yuv420p:<shell command> (default: recording.source)
    --test             record a scratch clip and print PASS/FAIL per check
    --json             print the result as JSON on stdout
    -h, --help         print this help
    -V, --version      print the version

Stops cleanly on SIGINT/SIGTERM. Exit status: 0 success, 1 failure (the
recording is kept whenever it holds video), 2 usage or configuration error.
See rig-record(1).
";

fn main() -> ExitCode {
    cli::init_logging();
    cli::finish("rig-record", run())
}

fn run() -> Result<u8, Failure> {
    let mut args = pico_args::Arguments::from_env();
    if cli::help_or_version(&mut args, "rig-record", HELP) {
        return Ok(cli::EXIT_OK);
    }
    let config_path: Option<PathBuf> = args.opt_value_from_str("--config")?;
    let session: Option<String> = args.opt_value_from_str("--session")?;
    let camera: Option<String> = args.opt_value_from_str("--camera")?;
    let duration: Option<f64> = args.opt_value_from_str("--duration")?;
    let source: Option<String> = args.opt_value_from_str("--source")?;
    let self_test = args.contains("--test");
    let json = args.contains("--json");
    cli::reject_leftovers(args)?;

    let config = Config::load(config_path.as_deref())?;
    let opts = RecordOptions {
        session: session_flag(session.as_deref(), self_test)?,
        camera: camera
            .map(|c| CameraId::parse(&c).map_err(|e| Failure::usage(format!("--camera: {e}"))))
            .transpose()?,
        duration_sec: duration,
        source,
        self_test,
    };
    print_outcome(record::run(&config, &opts), json)
}

/// `--session`: `auto` (or none) for a session named from the clock; not
/// with `--test`, which records into a scratch session of its own.
fn session_flag(session: Option<&str>, self_test: bool) -> Result<Option<SessionId>, Failure> {
    let session = match session {
        None | Some("auto") => None,
        Some(s) => {
            Some(SessionId::parse(s).map_err(|e| Failure::usage(format!("--session: {e}")))?)
        }
    };
    if self_test && session.is_some() {
        return Err(Failure::usage(
            "--test records into its own scratch session; drop --session",
        ));
    }
    Ok(session)
}

/// Prints the report (or, with `--json`, the error too) and gives the exit status.
fn print_outcome(
    outcome: Result<record::RecordReport, record::RecordError>,
    json: bool,
) -> Result<u8, Failure> {
    match outcome {
        Ok(report) => {
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.human());
            }
            Ok(report.exit_code())
        }
        Err(e) if json => {
            println!("{}", e.to_json());
            eprintln!("rig-record: {e}");
            Ok(e.exit_code())
        }
        Err(e) => Err(Failure::with_code(e.exit_code(), e.message)),
    }
}
