//! rig-receive: the soccer-rig server daemon (see man/rig-receive.8).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use soccer_rig::base::cli::{self, EXIT_OK, Failure};
use soccer_rig::base::config::Config;
use soccer_rig::receive;

const PROGRAM: &str = "rig-receive";

const HELP: &str = "\
rig-receive: receive recordings from the camera nodes (the offload server)

Usage: rig-receive [--config PATH] [--listen HOST:PORT] [--root DIR]

Serves POST /api/v1/upload, POST /api/v1/upload/confirm and GET /api/v1/health.
Once listening it prints `listening on http://HOST:PORT` on stdout
(https:// when server.tls_cert and server.tls_key are set).
SIGTERM or SIGINT: stop taking work, let uploads in flight finish
(server.shutdown_grace_sec), exit 0.

Options:
  --config PATH       config file (default $SOCCER_RIG_CONFIG, else
                      /etc/soccer-rig/config.yaml if present)
  --listen HOST:PORT  listen address (default server.host:server.port,
                      0.0.0.0:8081); port 0 picks a free port
  --root DIR          put sessions/, processing/ and temp/ under DIR
                      (default storage.*_path, under /data/soccer-rig)
  -h, --help          print this help
  -V, --version       print the version

Environment: RUST_LOG sets the log level (default info); logs go to stderr.
Exit status: 0 stopped by a signal, 1 could not start, 2 usage or config error.
";

fn main() -> ExitCode {
    cli::finish(PROGRAM, run())
}

/// Splits `HOST:PORT` (`[::1]:8081` for IPv6) into its parts.
fn split_listen(s: &str) -> Result<(String, u16), Failure> {
    let bad = || {
        Failure::usage(format!(
            "--listen {s:?}: expected HOST:PORT, e.g. 0.0.0.0:8081"
        ))
    };
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

fn run() -> Result<u8, Failure> {
    let mut args = pico_args::Arguments::from_env();
    if cli::help_or_version(&mut args, PROGRAM, HELP) {
        return Ok(EXIT_OK);
    }
    let config_path: Option<PathBuf> = args.opt_value_from_str("--config")?;
    let listen: Option<String> = args.opt_value_from_str("--listen")?;
    let root: Option<PathBuf> = args.opt_value_from_str("--root")?;
    cli::reject_leftovers(args)?;

    let mut config = Config::load(config_path.as_deref())?;
    if let Some(listen) = listen {
        let (host, port) = split_listen(&listen)?;
        config.server.host = host;
        config.server.port = port;
    }
    if let Some(root) = root {
        config.storage.set_root(&root);
    }
    cli::init_logging();

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| Failure::failed(format!("cannot handle signal {signal}: {e}")))?;
    }
    receive::run(&config, &stop, |_addr, url| {
        log::info!(
            "storing into {} (temp {}), jobs in {}",
            config.storage.sessions_path.display(),
            config.storage.temp_path.display(),
            config.storage.processing_path.display()
        );
        let mut out = std::io::stdout().lock();
        // The one stdout line other programs and tests wait for.
        let _ = writeln!(out, "listening on {url}");
        let _ = out.flush();
    })
    .map_err(|e| Failure::failed(e.to_string()))?;
    Ok(EXIT_OK)
}
