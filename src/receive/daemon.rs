//! The daemon's life: bind (storage prepared, TLS, access rules), serve
//! until told to stop, then the shutdown grace time.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::state::{POLL, State};
use super::{ServerError, access, fdlimit, routes};
use crate::base::config::Config;
use crate::base::layout::ServerLayout;
use crate::store::{PartialStore, Store};

/// Stack of a connection thread: the handlers keep their buffers on the
/// heap, and thousands of idle connections must stay cheap.
const CONNECTION_STACK: usize = 512 * 1024;

/// After the shutdown grace time, how long uploads still in flight get to
/// stop and keep their bytes as partials. One that is receiving notices at
/// its next read; one blocked on a silent client is left to the exit.
const ABORT_WAIT: Duration = Duration::from_secs(3);

/// A bound, ready daemon: [`Receiver::bind`], print [`Receiver::local_addr`],
/// then [`Receiver::serve`].
pub struct Receiver {
    /// Dropping it stops accepting connections.
    _server: tiny_http::Server,
    addr: SocketAddr,
    state: Arc<State>,
    grace: Duration,
    tls: bool,
}

impl Receiver {
    /// Prepares storage (creates the directories, removes upload leftovers
    /// of a crash from `temp/`, checks that `temp/` and `sessions/` share a
    /// filesystem) and binds `server.host:server.port`.
    pub fn bind(config: &Config) -> Result<Receiver, ServerError> {
        let layout = ServerLayout::from_config(&config.storage);
        Store::new(layout.clone()).prepare()?;
        PartialStore::from_config(config).expire();
        let listener = listen(config)?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError::caused(format!("listening socket: {e}"), e))?;
        let access = access::Access::from_config(&config.server)
            .map_err(|e| ServerError::caused(e.to_string(), e))?;
        let ssl = tls_config(&config.server)?;
        let tls = ssl.is_some();
        log::info!("{}", access.describe());
        fdlimit::raise(config.server.max_connections);
        let state = Arc::new(State::new(config, layout, access)?);
        let handler_state = Arc::clone(&state);
        let handler: tiny_http::Handler = Arc::new(move |req| routes::handle(&handler_state, req));
        let server =
            tiny_http::Server::with_handler(listener, ssl, connection_limits(config), handler)
                .map_err(|e| {
                    let hint = if tls {
                        " (check that server.tls_cert and server.tls_key are a PEM \
                         certificate and its private key)"
                    } else {
                        ""
                    };
                    ServerError::new(format!("cannot start the HTTP server: {e}{hint}"))
                })?;
        Ok(Receiver {
            _server: server,
            addr,
            state,
            grace: Duration::from_secs(config.server.shutdown_grace_sec),
            tls,
        })
    }

    /// Whether it serves HTTPS (`server.tls_cert` and `server.tls_key`).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The base URL clients use: `http://ADDR` or `https://ADDR`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The address actually bound (the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` becomes true, then stops taking work (new
    /// requests get 503 `shutting_down`), lets uploads in flight finish for
    /// up to `server.shutdown_grace_sec`, and returns.
    pub fn serve(self, stop: &AtomicBool) -> Result<(), ServerError> {
        let state = &self.state;
        while !stop.load(Ordering::SeqCst) {
            // Expired partials would otherwise stay until the next start-up
            // or the next interrupted upload.
            state.partials.expire_if_due(&state.expiry, Instant::now());
            thread::sleep(POLL);
        }
        let active = state.active.load(Ordering::SeqCst);
        log::info!(
            "stopping: no new work; waiting up to {} s for {active} upload(s) in flight",
            self.grace.as_secs()
        );
        state.stopping.store(true, Ordering::SeqCst);
        if !state.wait_idle(self.grace) {
            self.abort_uploads();
        } else {
            log::info!("stopped");
        }
        // Requests still busy are left to the process exit.
        Ok(())
    }

    /// After the grace time: stops the uploads still in flight, keeping
    /// what they received as partials when they can.
    fn abort_uploads(&self) {
        let state = &self.state;
        let left = state.active.load(Ordering::SeqCst);
        // As a dropped connection would: each upload keeps its bytes as a
        // partial when it can, so the client resumes after a restart
        // (systemctl restart at 95% must not cost the 95%).
        log::warn!(
            "grace time over with {left} upload(s) unfinished; stopping them, keeping \
             what they received as partials for a resume"
        );
        state.aborting.store(true, Ordering::SeqCst);
        // Wait for the requests, not the upload count: the count drops
        // before the 503 reply is written, and that reply should go out.
        state.wait_idle(ABORT_WAIT);
        let stuck = state.active.load(Ordering::SeqCst);
        if stuck > 0 {
            log::warn!(
                "{stuck} upload(s) did not stop in time (a silent client); their temp \
                 files are removed and nothing of them was stored"
            );
            state.store.remove_upload_leftovers();
        }
    }
}

/// The socket of `server.host:server.port` (an IPv6 host may come in
/// brackets).
fn listen(config: &Config) -> Result<TcpListener, ServerError> {
    let host = config.server.host.as_str();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = (host, config.server.port)
        .to_socket_addrs()
        .map_err(|e| {
            ServerError::caused(
                format!(
                    "server.host {:?}: not an address to listen on: {e}",
                    config.server.host
                ),
                e,
            )
        })?
        .collect();
    TcpListener::bind(&addrs[..]).map_err(|e| {
        ServerError::caused(
            format!(
                "cannot listen on {}:{}: {e} (is another rig-receive running? \
                 change server.port or --listen)",
                config.server.host, config.server.port
            ),
            e,
        )
    })
}

/// The connection limits and deadlines of the `server:` config (issue 17).
fn connection_limits(config: &Config) -> tiny_http::Limits {
    let s = &config.server;
    let secs = |n: u64| Some(Duration::from_secs(n));
    tiny_http::Limits {
        stall_timeout: secs(s.stall_timeout_sec),
        idle_timeout: secs(s.idle_timeout_sec),
        header_timeout: secs(s.header_timeout_sec),
        write_timeout: secs(s.send_timeout_sec),
        max_connections: s.max_connections,
        thread_stack: CONNECTION_STACK,
    }
}

/// Binds and serves until `stop`; `on_listening` gets the bound address
/// and the base URL (`https://` with TLS) once the socket accepts
/// connections (rig-receive prints the URL).
pub fn run(
    config: &Config,
    stop: &AtomicBool,
    on_listening: impl FnOnce(SocketAddr, &str),
) -> Result<(), ServerError> {
    let receiver = Receiver::bind(config)?;
    on_listening(receiver.local_addr(), &receiver.url());
    receiver.serve(stop)
}

/// The PEM certificate and key of `server.tls_cert`/`tls_key`, when set.
fn tls_config(
    server: &crate::base::config::ServerConfig,
) -> Result<Option<tiny_http::SslConfig>, ServerError> {
    let (Some(cert), Some(key)) = (&server.tls_cert, &server.tls_key) else {
        return Ok(None);
    };
    let read = |p: &Path, name: &str| {
        std::fs::read(p).map_err(|e| {
            ServerError::caused(
                format!(
                    "server.{name} {}: cannot read: {e} (make one with scripts/make-rig-ca)",
                    p.display()
                ),
                e,
            )
        })
    };
    Ok(Some(tiny_http::SslConfig {
        certificate: read(cert, "tls_cert")?,
        private_key: read(key, "tls_key")?,
    }))
}
