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

fn run(mut args: pico_args::Arguments, json: bool) -> Result<u8, Failure> {
    let config_path: Option<PathBuf> = args.opt_value_from_str(["-c", "--config"])?;
    let strict = args.contains("--strict");
    let quiet = args.contains(["-q", "--quiet"]);
    let root: Option<PathBuf> = args.opt_value_from_str("--root")?;
    let session: Option<String> = args.opt_value_from_str("--session")?;
    let quick = args.contains("--quick");
    let server_url: Option<String> = args.opt_value_from_str("--server")?;
    let verify = args.contains("--verify");
    let minutes: Option<f64> = args.opt_value_from_str("--minutes")?;
    let timeout: Option<f64> = args.opt_value_from_str("--timeout")?;
    let rest = cli::free_paths(args)?;
    let command = match rest.as_slice() {
        [one] => one.to_string_lossy().into_owned(),
        [] => {
            return Err(Failure::usage(
                "say what to check: server or node; see --help",
            ));
        }
        [_, extra, ..] => {
            return Err(Failure::usage(format!(
                "unexpected argument {:?}; see --help",
                extra.to_string_lossy()
            )));
        }
    };

    let mut config = Config::load(config_path.as_deref())?;
    let progress = std::io::stderr().is_terminal();
    let misplaced = |flag: &str, used: bool, wants: &str| {
        if used {
            Err(Failure::usage(format!(
                "{flag} applies to `rig-check {wants}` only; see --help"
            )))
        } else {
            Ok(())
        }
    };
    let request = match command.as_str() {
        "server" => {
            misplaced("--server", server_url.is_some(), "node")?;
            misplaced("--verify", verify, "node")?;
            misplaced("--minutes", minutes.is_some(), "node")?;
            misplaced("--timeout", timeout.is_some(), "node")?;
            if let Some(root) = &root {
                config.storage.set_root(root);
            }
            let session = session
                .map(|s| SessionId::parse(&s))
                .transpose()
                .map_err(|e| Failure::usage(format!("--session: {e}")))?;
            Request::Server(ServerOptions {
                session,
                quick,
                progress,
            })
        }
        "node" => {
            misplaced("--session", session.is_some(), "server")?;
            misplaced("--quick", quick, "server")?;
            if let Some(root) = root {
                config.node.storage_root = root;
            }
            if let Some(url) = server_url {
                config.offload.server_url = url;
            }
            config
                .check()
                .map_err(|m| Failure::usage(format!("--server: {m}")))?;
            let mut opts = NodeOptions {
                verify,
                progress,
                ..NodeOptions::default()
            };
            if let Some(m) = minutes {
                if !(m.is_finite() && m >= 0.0) {
                    return Err(Failure::usage(format!(
                        "--minutes: must be a number >= 0, got {m}"
                    )));
                }
                opts.match_minutes = m;
            }
            if let Some(t) = timeout {
                if !(t.is_finite() && t > 0.0 && t <= 3600.0) {
                    return Err(Failure::usage(format!(
                        "--timeout: must be seconds in (0, 3600], got {t}"
                    )));
                }
                opts.health_timeout = Duration::from_secs_f64(t);
            }
            Request::Node(opts)
        }
        other => {
            return Err(Failure::usage(format!(
                "unknown check {other:?}: say server or node; see --help"
            )));
        }
    };

    let report = check::run(&config, &request).map_err(|e| Failure::usage(e.to_string()))?;
    let code = check::exit_code(report.status(), strict);
    if quiet && code == cli::EXIT_OK {
        return Ok(code);
    }
    if json {
        print!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(code)
}
