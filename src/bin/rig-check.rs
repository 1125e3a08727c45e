//! rig-check: verify everything, on the server and on a node, before anyone trusts it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use soccer_rig::base::cli::{self, Failure};
use soccer_rig::base::config::Config;
use soccer_rig::base::ids::SessionId;
use soccer_rig::check::{self, Request, node::NodeOptions, server::ServerOptions};

const PROGRAM: &str = "rig-check";

const HELP: &str = "\
rig-check: is every recording intact, complete and accounted for? Is this node ready?

USAGE:
    rig-check [OPTIONS] server [--root DIR] [--session ID] [--quick]
    rig-check [OPTIONS] node [--root DIR] [--server URL] [--verify] [--minutes N]

server   re-hash every sessions/S/C/recording.mp4 against recording.sha256 and its
         manifest (in parallel, each file read once); report missing cameras,
         invalid manifests, panoramas, the processing queue, leftovers, free space
node     pre-flight a camera node: storage root, free space and the recording time
         it buys, NTP sync, CPU temperature, capture source, ffmpeg/ffprobe, server
         health, and the offload backlog

OPTIONS:
    -c, --config PATH   config file (default $SOCCER_RIG_CONFIG, else
                        /etc/soccer-rig/config.yaml)
        --json          one JSON document on stdout instead of text
        --strict        exit 1 on WARN too, not only on FAIL
    -q, --quiet         print nothing when the exit status is 0 (for cron)
        --root DIR      server: sessions/, processing/, temp/ under DIR;
                        node: the storage root (node.storage_root)
        --session ID    server: check only this session
        --quick         server: presence and sizes only, no hashing
        --server URL    node: the server to ask (offload.server_url)
        --verify        node: hash recordings not yet offloaded against their manifests
        --minutes N     node: recording time a match needs (default 120)
        --timeout SEC   node: longest the health request may take (default 5)
    -h, --help          this text
    -V, --version       the version

EXIT STATUS: 0 all passed (WARN too, unless --strict), 1 a check failed,
2 usage or configuration error. RAYON_NUM_THREADS sets hashing threads.
";

fn main() -> ExitCode {
    cli::init_logging();
    let mut args = pico_args::Arguments::from_env();
    if cli::help_or_version(&mut args, PROGRAM, HELP) {
        return ExitCode::SUCCESS;
    }
    let json = args.contains("--json");
    let result = run(args, json);
    if json && let Err(f) = &result {
        let kind = if f.code == cli::EXIT_USAGE {
            "usage_error"
        } else {
            "check_failed"
        };
        println!(
            "{}",
            serde_json::json!({"success": false, "error": kind, "message": f.message})
        );
    }
    cli::finish(PROGRAM, result)
}

/// The flags, as given.
struct Flags {
    config: Option<PathBuf>,
    strict: bool,
    quiet: bool,
    root: Option<PathBuf>,
    session: Option<String>,
    quick: bool,
    server_url: Option<String>,
    verify: bool,
    minutes: Option<f64>,
    timeout: Option<f64>,
}

impl Flags {
    fn parse(args: &mut pico_args::Arguments) -> Result<Flags, Failure> {
        Ok(Flags {
            config: args.opt_value_from_str(["-c", "--config"])?,
            strict: args.contains("--strict"),
            quiet: args.contains(["-q", "--quiet"]),
            root: args.opt_value_from_str("--root")?,
            session: args.opt_value_from_str("--session")?,
            quick: args.contains("--quick"),
            server_url: args.opt_value_from_str("--server")?,
            verify: args.contains("--verify"),
            minutes: args.opt_value_from_str("--minutes")?,
            timeout: args.opt_value_from_str("--timeout")?,
        })
    }
}

fn run(mut args: pico_args::Arguments, json: bool) -> Result<u8, Failure> {
    let flags = Flags::parse(&mut args)?;
    let command = command(cli::free_paths(args)?)?;
    let mut config = Config::load(flags.config.as_deref())?;
    let request = match command.as_str() {
        "server" => server_request(&flags, &mut config)?,
        "node" => node_request(&flags, &mut config)?,
        other => {
            return Err(Failure::usage(format!(
                "unknown check {other:?}: say server or node; see --help"
            )));
        }
    };
    let report = check::run(&config, &request).map_err(|e| Failure::usage(e.to_string()))?;
    let code = check::exit_code(report.status(), flags.strict);
    if flags.quiet && code == cli::EXIT_OK {
        return Ok(code);
    }
    if json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.human());
    }
    Ok(code)
}

/// The one free argument: what to check.
fn command(rest: Vec<PathBuf>) -> Result<String, Failure> {
    match rest.as_slice() {
        [one] => Ok(one.to_string_lossy().into_owned()),
        [] => Err(Failure::usage(
            "say what to check: server or node; see --help",
        )),
        [_, extra, ..] => Err(Failure::usage(format!(
            "unexpected argument {:?}; see --help",
            extra.to_string_lossy()
        ))),
    }
}

/// A usage error when `flag` was `used` with the other check.
fn misplaced(flag: &str, used: bool, wants: &str) -> Result<(), Failure> {
    if used {
        Err(Failure::usage(format!(
            "{flag} applies to `rig-check {wants}` only; see --help"
        )))
    } else {
        Ok(())
    }
}

/// `rig-check server`: its flags applied to `config`.
fn server_request(flags: &Flags, config: &mut Config) -> Result<Request, Failure> {
    misplaced("--server", flags.server_url.is_some(), "node")?;
    misplaced("--verify", flags.verify, "node")?;
    misplaced("--minutes", flags.minutes.is_some(), "node")?;
    misplaced("--timeout", flags.timeout.is_some(), "node")?;
    if let Some(root) = &flags.root {
        config.storage.set_root(root);
    }
    let session = flags
        .session
        .as_deref()
        .map(SessionId::parse)
        .transpose()
        .map_err(|e| Failure::usage(format!("--session: {e}")))?;
    Ok(Request::Server(ServerOptions {
        session,
        quick: flags.quick,
        progress: std::io::stderr().is_terminal(),
    }))
}

/// `rig-check node`: its flags applied to `config`.
fn node_request(flags: &Flags, config: &mut Config) -> Result<Request, Failure> {
    misplaced("--session", flags.session.is_some(), "server")?;
    misplaced("--quick", flags.quick, "server")?;
    if let Some(root) = &flags.root {
        config.node.storage_root = root.clone();
    }
    if let Some(url) = &flags.server_url {
        config.offload.server_url = url.clone();
    }
    config
        .check()
        .map_err(|m| Failure::usage(format!("--server: {m}")))?;
    let mut opts = NodeOptions {
        verify: flags.verify,
        progress: std::io::stderr().is_terminal(),
        ..NodeOptions::default()
    };
    if let Some(m) = flags.minutes {
        if !(m.is_finite() && m >= 0.0) {
            return Err(Failure::usage(format!(
                "--minutes: must be a number >= 0, got {m}"
            )));
        }
        opts.match_minutes = m;
    }
    if let Some(t) = flags.timeout {
        if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
            return Err(Failure::usage(format!(
                "--timeout: must be seconds in (0, 3600], got {t}"
            )));
        }
        opts.health_timeout = Duration::from_secs_f64(t);
    }
    Ok(Request::Node(opts))
}
