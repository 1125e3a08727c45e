//! rig-stitch: stitch a session's three recordings into a panorama, and run
//! the processing queue. The logic lives in `soccer_rig::stitch`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::{Value, json};
use soccer_rig::base::cli::{self, EXIT_FAILURE, EXIT_OK, Failure};
use soccer_rig::base::config::Config;
use soccer_rig::base::ids::SessionId;
use soccer_rig::base::layout::ServerLayout;
use soccer_rig::stitch::{self, Outcome, Runner, StitchError, StitchSettings};

const PROGRAM: &str = "rig-stitch";

const HELP: &str = "\
rig-stitch: a time-aligned, overlap-blended panorama of a session, and the processing queue

USAGE:
    rig-stitch [OPTIONS] SESSION_ID     stitch one session now (queued and run)
    rig-stitch [OPTIONS] --pending      run every queued job, oldest first
    rig-stitch [OPTIONS] --list         print processing/jobs.json as a table
    rig-stitch [OPTIONS] calibrate SESSION_ID
                                        measure the cameras' geometry from the overlaps

OPTIONS:
    --config PATH         configuration file (default $SOCCER_RIG_CONFIG, then
                          /etc/soccer-rig/config.yaml)
    --root DIR            sessions/, processing/ and temp/ under DIR
    --force               stitch SESSION_ID again although it is done
    --dry-run             print the alignment and the ffmpeg command; run nothing
    --preset NAME         x264/x265 preset (default processing.output_preset, medium)
    --output-width PX     widest panorama, 0 = the codec's playable limit only
                          (default processing.output_width, 0)
    --calibration FILE    stitch with this calibration (default processing.calibration_file,
                          else the session's stitched/calibration.json, else shared columns)
    --json                machine-readable output on stdout
    -h, --help            this text
    -V, --version         the version

EXIT STATUS: 0 done (or nothing to do), 1 a stitch failed, 2 usage or configuration error.
See rig-stitch(1).
";

fn main() -> ExitCode {
    cli::init_logging();
    let mut json_out = false;
    let result = run(&mut json_out);
    if json_out && let Err(e) = &result {
        println!(
            "{}",
            json!({"success": false, "error": e.code, "message": e.failure.message})
        );
    }
    cli::finish(PROGRAM, result.map_err(|e| e.failure))
}

/// A failure and its snake_case code for `--json`.
struct Error {
    failure: Failure,
    code: &'static str,
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        let code = if failure.code == cli::EXIT_USAGE {
            "usage_error"
        } else {
            "failed"
        };
        Error { failure, code }
    }
}

impl From<pico_args::Error> for Error {
    fn from(e: pico_args::Error) -> Self {
        Failure::from(e).into()
    }
}

impl From<soccer_rig::base::config::ConfigError> for Error {
    fn from(e: soccer_rig::base::config::ConfigError) -> Self {
        Error {
            failure: Failure::from(e),
            code: "config_error",
        }
    }
}

impl From<StitchError> for Error {
    fn from(e: StitchError) -> Self {
        Error {
            code: e.code(),
            failure: Failure::caused_by(e.exit_code(), e),
        }
    }
}

/// What the command line asked for.
enum Mode {
    List,
    Pending,
    Calibrate(SessionId),
    DryRun(SessionId),
    Stitch { session: SessionId, force: bool },
}

/// The command line, read and checked.
struct Args {
    json: bool,
    config_path: Option<PathBuf>,
    root: Option<PathBuf>,
    preset: Option<String>,
    output_width: Option<u32>,
    calibration: Option<PathBuf>,
    mode: Mode,
}

fn run(json_out: &mut bool) -> Result<u8, Error> {
    let mut raw = pico_args::Arguments::from_env();
    if cli::help_or_version(&mut raw, PROGRAM, HELP) {
        return Ok(EXIT_OK);
    }
    *json_out = raw.contains("--json");
    let args = parse_args(raw, *json_out)?;
    let (layout, settings) = load_settings(&args)?;
    let cancel = cancel_on_signals()?;
    let tty = !args.json && std::io::stderr().is_terminal();
    let runner = Runner::new(layout, settings, cancel, tty);
    let json = args.json;
    match args.mode {
        Mode::List => do_list(&runner, json),
        Mode::Pending => do_pending(&runner, json),
        Mode::Calibrate(session) => do_calibrate(&runner, &session, json),
        Mode::DryRun(session) => do_dry_run(&runner, &session, json),
        Mode::Stitch { session, force } => do_stitch(&runner, &session, force, json),
    }
}

/// Reads the flags and the one SESSION_ID (or `calibrate SESSION_ID`).
fn parse_args(mut args: pico_args::Arguments, json: bool) -> Result<Args, Error> {
    let config_path: Option<PathBuf> = args.opt_value_from_str("--config")?;
    let root: Option<PathBuf> = args.opt_value_from_str("--root")?;
    let force = args.contains("--force");
    let dry_run = args.contains("--dry-run");
    let pending = args.contains("--pending");
    let list = args.contains("--list");
    let preset: Option<String> = args.opt_value_from_str("--preset")?;
    let output_width: Option<u32> = args.opt_value_from_str("--output-width")?;
    let calibration: Option<PathBuf> = args.opt_value_from_str("--calibration")?;
    // Anything left must be one SESSION_ID; a leftover starting with `-` is
    // an unknown flag (so a typo never becomes a session).
    let free = cli::free_paths(args)?;
    let mode = pick_mode(free, pending, list, force, dry_run)?;
    Ok(Args {
        json,
        config_path,
        root,
        preset,
        output_width,
        calibration,
        mode,
    })
}

/// The one mode the free arguments and the flags ask for.
fn pick_mode(
    mut free: Vec<PathBuf>,
    pending: bool,
    list: bool,
    force: bool,
    dry_run: bool,
) -> Result<Mode, Error> {
    let calibrate = free.len() == 2 && free[0].as_os_str() == "calibrate";
    if calibrate {
        free.remove(0);
    }
    if free.len() > 1 {
        return Err(Failure::usage("give one SESSION_ID at a time; see --help").into());
    }
    let session: Option<String> = free.pop().map(|p| p.to_string_lossy().into_owned());
    let modes = usize::from(pending) + usize::from(list) + usize::from(session.is_some());
    if modes != 1 {
        return Err(Failure::usage(
            "give exactly one of SESSION_ID, --pending or --list; see --help",
        )
        .into());
    }
    if (force || dry_run) && session.is_none() {
        return Err(
            Failure::usage("--force and --dry-run go with a SESSION_ID; see --help").into(),
        );
    }
    Ok(match session {
        None if list => Mode::List,
        None => Mode::Pending,
        Some(id) => {
            let session = SessionId::parse(&id).map_err(StitchError::InvalidSession)?;
            match (calibrate, dry_run) {
                (true, _) => Mode::Calibrate(session),
                (false, true) => Mode::DryRun(session),
                (false, false) => Mode::Stitch { session, force },
            }
        }
    })
}

/// The config file, with the command line's overrides applied.
fn load_settings(args: &Args) -> Result<(ServerLayout, StitchSettings), Error> {
    let mut config = Config::load(args.config_path.as_deref())?;
    if let Some(root) = &args.root {
        config.storage.set_root(root);
    }
    if let Some(p) = &args.preset {
        config.processing.output_preset = p.clone();
    }
    if let Some(w) = args.output_width {
        config.processing.output_width = w;
    }
    if let Some(c) = &args.calibration {
        config.processing.calibration_file = c.clone();
    }
    let settings = StitchSettings::from_config(&config.processing)?;
    Ok((ServerLayout::from_config(&config.storage), settings))
}

/// A flag SIGINT and SIGTERM raise: the runner stops its ffmpeg and puts
/// the job back.
fn cancel_on_signals() -> Result<Arc<AtomicBool>, Error> {
    let cancel = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&cancel))
            .map_err(|e| Failure::failed(format!("cannot install signal handler: {e}")))?;
    }
    Ok(cancel)
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn with_success(success: bool, v: Value) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("success".into(), Value::Bool(success));
    if let Value::Object(m) = v {
        out.extend(m);
    }
    Value::Object(out)
}

fn do_list(runner: &Runner, json: bool) -> Result<u8, Error> {
    let file = runner.queue().load().map_err(StitchError::Jobs)?;
    if json {
        print_json(&serde_json::to_value(&file).unwrap_or_default());
    } else {
        print!("{}", stitch::list_table(&file));
    }
    Ok(EXIT_OK)
}

fn do_dry_run(runner: &Runner, session: &SessionId, json: bool) -> Result<u8, Error> {
    let (plan, command) = runner.dry_run(session)?;
    if json {
        print_json(&json!({"success": true, "plan": plan, "command": command}));
    } else {
        print!(
            "{session}: would write {}x{}, {} frames ({:.3} s)\n{}{command}\n",
            plan.output_width,
            plan.output_height,
            plan.frames,
            plan.duration_sec,
            stitch::plan_lines(&plan)
        );
    }
    Ok(EXIT_OK)
}

fn do_calibrate(runner: &Runner, session: &SessionId, json: bool) -> Result<u8, Error> {
    let (cal, path) = runner.calibrate(session)?;
    if json {
        print_json(&json!({"success": true, "file": path, "calibration": cal}));
    } else {
        print!(
            "{session}: calibration written to {}\n{}",
            path.display(),
            cal.human()
        );
    }
    Ok(EXIT_OK)
}

fn do_stitch(runner: &Runner, session: &SessionId, force: bool, json: bool) -> Result<u8, Error> {
    let outcome = runner.stitch_now(session, force)?;
    if json {
        print_json(&with_success(
            true,
            serde_json::to_value(&outcome).unwrap_or_default(),
        ));
    } else {
        match &outcome {
            Outcome::Stitched(r) => print!("{}", r.human()),
            Outcome::AlreadyDone { job } => println!(
                "{session}: already stitched by job {} ({}); use --force to stitch again",
                job.id,
                job.output.as_deref().unwrap_or("")
            ),
        }
    }
    Ok(EXIT_OK)
}

fn do_pending(runner: &Runner, json: bool) -> Result<u8, Error> {
    let report = runner.run_pending()?;
    if json {
        print_json(&with_success(
            report.all_ok(),
            serde_json::to_value(&report).unwrap_or_default(),
        ));
    } else if report.skipped_locked {
        println!("another rig-stitch --pending is running; nothing done");
    } else if report.jobs.is_empty() {
        println!("no queued jobs");
    } else {
        for j in &report.jobs {
            print!("{}", j.human());
        }
    }
    Ok(if report.all_ok() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}
