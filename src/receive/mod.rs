//! rig-receive: the server side of the offload protocol, as a blocking
//! tiny_http daemon that three Pis can trust with the only copy of a match.
//!
//! Three endpoints (PROTOCOL.md "API Endpoints"):
//!
//! * `POST /api/v1/upload` streams the `file` part to `temp/` while hashing
//!   it in the same pass (constant memory whatever the size), and moves it to
//!   `sessions/S/C/recording.mp4` only once its digest equals the form's
//!   `checksum` ([`upload`] has the details and the commit order);
//! * `POST /api/v1/upload/confirm` answers with the size and the digest
//!   stored at receive time (`recording.sha256`), never re-reading the file;
//! * `GET /api/v1/health` reports the free space of the sessions filesystem
//!   and the uploads in flight.
//!
//! The read side, what the server holds (sessions, jobs and stats as JSON,
//! downloads with `Range`, and an HTML status page at `/`), lives in
//! [`browse`] and [`page`]; [`route`] hands it every path it knows.
//!
//! Each connection is served on a thread of its own (the vendored tiny_http,
//! patch 9), which calls [`handle`] for each of its requests: no kind of
//! client, idle keep-alive, slow upload, unread download, trickled headers,
//! can take request handling away from the others. Each is bounded by its
//! own deadline (`server.header_timeout_sec`, `idle_timeout_sec`,
//! `send_timeout_sec`, `small_body_timeout_sec`, and for uploads
//! `stall_timeout_sec` with the [`pace`] floor), and all together by
//! `server.max_connections`, beyond which a connection is answered 503 at
//! once. Every error is
//! `{"success": false, "error": "<code>", "message": "..."}` with the codes of
//! [`crate::base::protocol::code`]. One log line per request names method, path,
//! status, body bytes, duration and recording.
//!
//! An upload is also bounded by `server.upload_timeout_sec`, checked before
//! each read of at most 1 MiB, so the overshoot is at most one read, itself
//! bounded by the stall timeout.
//!
//! The vendored tiny_http (vendor/tiny_http/PATCHES.md) matters here: the
//! released 0.12.0 allocates a buffer as large as the client's declared
//! `Content-Length` when it drains an unread body, which aborts the daemon
//! for any early reply to an upload larger than RAM, and it queues new
//! connections behind open ones.

pub mod access;
pub mod browse;
pub mod fdlimit;
pub mod incoming;
pub mod multipart;
pub mod pace;
pub mod page;
pub mod partial;
pub mod space;
pub mod upload;

use std::collections::HashSet;
use std::fmt;
use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::config::{Config, GB};
use crate::base::fsx;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::layout::{self, ServerLayout};
use crate::base::protocol::{
    CONFIRM_PATH, ConfirmResponse, ErrorResponse, HEALTH_PATH, HealthResponse, UPLOAD_PATH, code,
};

/// Prefix of the temp files of uploads in flight in `temp/`; anything with
/// it found there at start-up is the leftover of a crash and is removed.
pub const UPLOAD_TEMP_PREFIX: &str = ".rig-tmp-upload-";

/// Largest confirm request body, bytes.
const MAX_CONFIRM_BYTES: u64 = 64 * 1024;

/// Longest a status request waits for an upload of its recording in flight.
const STATUS_WAIT: Duration = Duration::from_secs(10);

/// How often idle workers and the main thread look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Stack of a connection thread: the handlers keep their buffers on the
/// heap, and thousands of idle connections must stay cheap.
const CONNECTION_STACK: usize = 512 * 1024;

/// After the shutdown grace time, how long uploads still in flight get to
/// stop and keep their bytes as partials. One that is receiving notices at
/// its next read; one blocked on a silent client is left to the exit.
const ABORT_WAIT: Duration = Duration::from_secs(3);

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug)]
pub struct ServerError(pub String);

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

/// The limits of the `server:` and `storage:` config, in the units the code uses.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest file part, bytes (`server.max_upload_size_gb`).
    pub max_upload_bytes: u64,
    /// Free space an upload must leave, bytes (`storage.min_free_space_gb`).
    pub min_free_bytes: u64,
    /// Longest one upload may take (`server.upload_timeout_sec`).
    pub upload_timeout: Duration,
    /// Longest silence on a connection (`server.stall_timeout_sec`).
    pub stall_timeout: Duration,
    /// Slowest upload body, bytes/s over each stall timeout
    /// (`server.upload_min_kib_per_sec`); 0 = no floor.
    pub upload_min_rate: u64,
    /// Longest a small body (confirm) may take (`server.small_body_timeout_sec`).
    pub small_body_timeout: Duration,
}

impl Limits {
    /// The limits a configuration sets.
    pub fn from_config(config: &Config) -> Limits {
        let bytes = |gb: f64| (gb * GB).min(u64::MAX as f64) as u64;
        Limits {
            max_upload_bytes: bytes(config.server.max_upload_size_gb),
            min_free_bytes: bytes(config.storage.min_free_space_gb),
            upload_timeout: Duration::from_secs(config.server.upload_timeout_sec),
            stall_timeout: Duration::from_secs(config.server.stall_timeout_sec),
            upload_min_rate: config.server.upload_min_kib_per_sec.saturating_mul(1024),
            small_body_timeout: Duration::from_secs(config.server.small_body_timeout_sec),
        }
    }
}

/// An HTTP error reply: status, snake_case code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// One of [`crate::base::protocol::code`].
    pub code: &'static str,
    /// What was wrong and what to do.
    pub message: String,
    /// Fields sent beside `success`, `error` and `message`, for scripts:
    /// `received_bytes` of a 409 `offset_mismatch`, `cameras_missing` of a
    /// 409 `session_incomplete`, `job_id` of a 409 `job_in_progress`.
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

impl ApiError {
    /// An error reply.
    pub fn new(status: u16, code: &'static str, message: String) -> ApiError {
        ApiError {
            status,
            code,
            message,
            fields: Vec::new(),
        }
    }

    /// The same error, telling the client how many bytes of a partial the
    /// server holds.
    pub fn with_received_bytes(self, n: u64) -> ApiError {
        self.with_field("received_bytes", n.into())
    }

    /// The same error with `name: value` beside its message.
    pub fn with_field(mut self, name: &'static str, value: serde_json::Value) -> ApiError {
        self.fields.push((name, value));
        self
    }
}

/// Shared by the workers.
pub struct State {
    layout: ServerLayout,
    limits: Limits,
    partials: partial::PartialStore,
    /// When the workers next sweep expired partials.
    expiry: partial::ExpiryTimer,
    ffprobe: PathBuf,
    ffmpeg: PathBuf,
    /// How naive times of a flat manifest are read (`server.naive_time_zone`).
    naive_zone: crate::base::manifest::flat::ZoneRule,
    in_flight: Mutex<HashSet<RecordingId>>,
    active: AtomicU64,
    /// Requests being handled (shutdown waits for them).
    busy: AtomicU64,
    stopping: AtomicBool,
    /// Set when the shutdown grace time is over: uploads in flight stop at
    /// their next read and keep what they received as a partial.
    aborting: AtomicBool,
    access: access::Access,
    /// Free space reserved by uploads in flight (`space`).
    space: space::Reservations,
}

/// The claim on a recording being uploaded; dropping it (on every path,
/// panics and disconnects included) lets the next upload of it in.
pub struct InFlight<'a> {
    state: &'a State,
    rec: RecordingId,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.state
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.rec);
    }
}

/// Counts one thing in progress (an upload for `/health`, a request for
/// the shutdown) while it lives.
pub struct Counted<'a>(&'a AtomicU64);

/// Counts an upload in flight for `/health` while it lives.
pub type ActiveUpload<'a> = Counted<'a>;

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl State {
    fn new(
        config: &Config,
        layout: ServerLayout,
        access: access::Access,
    ) -> Result<State, ServerError> {
        Ok(State {
            layout,
            limits: Limits::from_config(config),
            partials: partial::PartialStore::from_config(config),
            expiry: partial::ExpiryTimer::new(partial::EXPIRE_EVERY, Instant::now()),
            ffprobe: config.processing.ffprobe_path.clone(),
            ffmpeg: config.processing.ffmpeg_path.clone(),
            naive_zone: crate::base::manifest::flat::ZoneRule {
                zone: crate::base::manifest::flat::zone_named(&config.server.naive_time_zone)
                    .map_err(ServerError)?,
                name: config.server.naive_time_zone.clone(),
            },
            in_flight: Mutex::new(HashSet::new()),
            active: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            aborting: AtomicBool::new(false),
            access,
            space: space::Reservations::default(),
        })
    }

    /// Claims `rec` for this upload, or 409 if another upload of it is in flight.
    fn claim(&self, rec: &RecordingId) -> Result<InFlight<'_>, ApiError> {
        let mut set = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !set.insert(rec.clone()) {
            return Err(ApiError::new(
                409,
                code::UPLOAD_IN_PROGRESS,
                format!("{rec} is being uploaded right now; try again when that upload ends"),
            ));
        }
        Ok(InFlight {
            state: self,
            rec: rec.clone(),
        })
    }

    /// Whether an upload of `rec` is in flight.
    fn in_flight(&self, rec: &RecordingId) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(rec)
    }

    fn active_upload(&self) -> ActiveUpload<'_> {
        self.active.fetch_add(1, Ordering::SeqCst);
        Counted(&self.active)
    }

    /// Free bytes on the sessions filesystem.
    fn free_bytes(&self) -> io::Result<u64> {
        fsx::free_space(fsx::existing_ancestor(&self.layout.sessions))
    }
}

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
        prepare_storage(&layout)?;
        partial::PartialStore::from_config(config).expire();
        let host = config.server.host.as_str();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let addrs: Vec<SocketAddr> = (host, config.server.port)
            .to_socket_addrs()
            .map_err(|e| {
                ServerError(format!(
                    "server.host {:?}: not an address to listen on: {e}",
                    config.server.host
                ))
            })?
            .collect();
        let listener = TcpListener::bind(&addrs[..]).map_err(|e| {
            ServerError(format!(
                "cannot listen on {}:{}: {e} (is another rig-receive running? \
                 change server.port or --listen)",
                config.server.host, config.server.port
            ))
        })?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServerError(format!("listening socket: {e}")))?;
        let access = access::Access::from_config(&config.server).map_err(ServerError)?;
        let ssl = tls_config(&config.server)?;
        let tls = ssl.is_some();
        log::info!("{}", access.describe());
        fdlimit::raise(config.server.max_connections);
        let state = Arc::new(State::new(config, layout, access)?);
        let handler_state = Arc::clone(&state);
        let handler: tiny_http::Handler = Arc::new(move |req| handle(&handler_state, req));
        let server =
            tiny_http::Server::with_handler(listener, ssl, connection_limits(config), handler)
                .map_err(|e| {
                    ServerError(format!(
                        "cannot start the HTTP server: {e}{}",
                        if tls {
                            " (check that server.tls_cert and server.tls_key are a PEM \
                             certificate and its private key)"
                        } else {
                            ""
                        }
                    ))
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
            remove_upload_leftovers(&state.layout.temp);
        }
    }
}

impl State {
    /// Waits up to `time` for no request to be in progress; whether none is.
    fn wait_idle(&self, time: Duration) -> bool {
        let until = Instant::now() + time;
        while self.busy.load(Ordering::SeqCst) > 0 {
            if Instant::now() >= until {
                return false;
            }
            thread::sleep(POLL);
        }
        true
    }
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
            ServerError(format!(
                "server.{name} {}: cannot read: {e} (make one with scripts/make-rig-ca)",
                p.display()
            ))
        })
    };
    Ok(Some(tiny_http::SslConfig {
        certificate: read(cert, "tls_cert")?,
        private_key: read(key, "tls_key")?,
    }))
}

fn prepare_storage(layout: &ServerLayout) -> Result<(), ServerError> {
    for dir in [&layout.sessions, &layout.processing, &layout.temp] {
        std::fs::create_dir_all(dir)
            .map_err(|e| ServerError(format!("cannot create {}: {e}", dir.display())))?;
    }
    let dev = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.dev())
            .map_err(|e| ServerError(format!("{}: {e}", p.display())))
    };
    if dev(&layout.sessions)? != dev(&layout.temp)? {
        return Err(ServerError(format!(
            "storage.temp_path {} and storage.sessions_path {} are on different filesystems; \
             verified uploads are moved by rename, which needs one filesystem: put temp_path \
             beside sessions_path",
            layout.temp.display(),
            layout.sessions.display()
        )));
    }
    let removed = remove_upload_leftovers(&layout.temp);
    if removed > 0 {
        log::warn!(
            "removed {removed} unfinished upload(s) left in {} by a crash",
            layout.temp.display()
        );
    }
    Ok(())
}

/// Removes upload temp files from `temp/`; returns how many.
fn remove_upload_leftovers(temp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(temp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(UPLOAD_TEMP_PREFIX) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => log::error!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
    removed
}

/// The result of one request, for the reply and the log line.
pub struct Reply {
    status: u16,
    body: Body,
    /// Extra headers (Content-Type comes from the body).
    headers: Vec<(&'static str, String)>,
}

/// What a reply carries.
pub enum Body {
    /// `application/json` text.
    Json(String),
    /// `text/html; charset=utf-8` text.
    Html(String),
    /// A file or part of one, streamed with a known `Content-Length`: the
    /// reader yields exactly `len` bytes, so memory does not grow with them.
    Stream {
        /// The bytes.
        reader: Box<dyn Read + Send>,
        /// How many.
        len: u64,
        /// Their Content-Type.
        content_type: &'static str,
    },
}

impl Reply {
    /// A reply with a body and no extra headers.
    pub fn new(status: u16, body: Body) -> Reply {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

fn json_reply<T: Serialize>(status: u16, value: &T) -> Reply {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    Reply::new(status, Body::Json(body))
}

fn error_reply(e: &ApiError) -> Reply {
    let body = ErrorResponse {
        success: false,
        error: e.code.to_string(),
        message: e.message.clone(),
    };
    if e.fields.is_empty() {
        return json_reply(e.status, &body);
    }
    let mut v = serde_json::to_value(&body).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        for (name, value) in &e.fields {
            map.insert((*name).into(), value.clone());
        }
    }
    json_reply(e.status, &v)
}

fn handle(state: &State, mut req: tiny_http::Request) {
    state.busy.fetch_add(1, Ordering::SeqCst);
    let _busy = Counted(&state.busy);
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.url().split('?').next().unwrap_or("").to_string();
    let mut trace = upload::Trace::default();
    let mut admitted = false;
    let result = if state.stopping.load(Ordering::SeqCst) {
        Err(ApiError::new(
            503,
            code::SHUTTING_DOWN,
            "rig-receive is shutting down; try again shortly".into(),
        ))
    } else {
        admit(state, &req, &method, &path).and_then(|grant| {
            admitted = true;
            trace.grant = grant;
            route(state, &mut req, &method, &path, &mut trace)
        })
    };
    let (reply, failure) = match result {
        Ok(reply) => (reply, None),
        Err(e) => (error_reply(&e), Some(e)),
    };
    let status = reply.status;
    if admitted && status >= 400 && !matches!(status, 408 | 503) {
        // An error decided in the middle of an admitted client's body (409
        // where to resume or come back later, 507 the disk is full, 400 a
        // manifest this server rejects, 403 a camera the key is not bound
        // to) must reach that client: ureq reads no reply before it has sent
        // its whole body, and a reset would be retried without the reason.
        // So the rest of the body is read, as much as a real upload may
        // send in the time one may take. Refusals at the headers cost
        // nothing here: a client waiting for `100 Continue` has sent no body
        // and is not drained (tiny_http patch 7). A request refused by the
        // allowlist or the keys, a stalled one (408) or one met by shutdown
        // (503) reads at most 1 MiB and is closed: a refused client cannot
        // push gigabytes.
        let cap = state
            .limits
            .max_upload_bytes
            .saturating_add(upload::FORM_OVERHEAD);
        req.set_drain_limit(
            usize::try_from(cap).unwrap_or(usize::MAX),
            state
                .limits
                .upload_timeout
                .saturating_sub(started.elapsed()),
        );
    }
    let mut response = response_of(reply);
    add_status_headers(&mut response, status, &path);
    if let Err(e) = req.respond(response) {
        log::debug!("{method} {path}: sending the reply failed: {e}");
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let rec = trace.recording.as_deref().unwrap_or("-");
    match &failure {
        Some(e) if e.status >= 500 && e.status != 507 => log::error!(
            "{method} {path} {status} {} bytes {ms:.1} ms {rec}: {}",
            trace.bytes,
            e.message
        ),
        Some(e) => log::info!(
            "{method} {path} {status} {} bytes {ms:.1} ms {rec}: {}",
            trace.bytes,
            e.code
        ),
        None => log::info!(
            "{method} {path} {status} {} bytes {ms:.1} ms {rec}",
            trace.bytes
        ),
    }
}

/// `Allow` on a 405 and `WWW-Authenticate` on a 401.
fn add_status_headers(response: &mut tiny_http::ResponseBox, status: u16, path: &str) {
    if status == 405 {
        let allow = match path {
            HEALTH_PATH | partial::STATUS_PATH => "GET",
            UPLOAD_PATH | CONFIRM_PATH => "POST",
            other => browse::allow(other).unwrap_or("POST"),
        };
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Allow"[..], allow.as_bytes()) {
            response.add_header(h);
        }
    }
    if status == 401
        && let Ok(h) = tiny_http::Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..])
    {
        response.add_header(h);
    }
}

/// The access check of issue 10 ([`access`]), before any body byte is read.
fn admit(
    state: &State,
    req: &tiny_http::Request,
    method: &tiny_http::Method,
    path: &str,
) -> Result<access::Grant, ApiError> {
    let authorization = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str());
    state
        .access
        .check(req.remote_addr(), method, path, authorization)
}

/// The tiny_http response of a reply. `Content-Length` is sent instead of
/// chunking (unless the client asks for chunks with `TE`), so a video
/// player knows the size and can seek.
fn response_of(reply: Reply) -> tiny_http::ResponseBox {
    fn text(t: String, content_type: &str) -> (Box<dyn Read + Send>, u64, &str) {
        let len = t.len() as u64;
        (Box::new(io::Cursor::new(t.into_bytes())), len, content_type)
    }
    let (reader, len, content_type): (Box<dyn Read + Send>, u64, &str) = match reply.body {
        Body::Json(t) => text(t, "application/json"),
        Body::Html(t) => text(t, "text/html; charset=utf-8"),
        Body::Stream {
            reader,
            len,
            content_type,
        } => (reader, len, content_type),
    };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut response = tiny_http::Response::new(
        tiny_http::StatusCode(reply.status),
        Vec::new(),
        reader,
        Some(len),
        None,
    )
    .with_chunked_threshold(usize::MAX);
    let headers = std::iter::once(("Content-Type", content_type.to_string())).chain(reply.headers);
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    response
}

fn route(
    state: &State,
    req: &mut tiny_http::Request,
    method: &tiny_http::Method,
    path: &str,
    trace: &mut upload::Trace,
) -> Result<Reply, ApiError> {
    use tiny_http::Method::{Get, Head, Post};
    let wrong_method = |allowed: &str| {
        ApiError::new(
            405,
            code::METHOD_NOT_ALLOWED,
            format!("{path} takes {allowed}, not {method}"),
        )
    };
    match path {
        UPLOAD_PATH => match method {
            Post => upload::upload(state, req, trace).map(|r| json_reply(200, &r)),
            _ => Err(wrong_method("POST")),
        },
        CONFIRM_PATH => match method {
            Post => confirm(state, req, trace).map(|r| json_reply(200, &r)),
            _ => Err(wrong_method("POST")),
        },
        HEALTH_PATH => match method {
            Get | Head => Ok(json_reply(200, &health(state))),
            _ => Err(wrong_method("GET")),
        },
        partial::STATUS_PATH => match method {
            Get | Head => partial::status(
                &state.partials,
                req.url(),
                trace,
                |rec| state.in_flight(rec),
                state.limits.stall_timeout.min(STATUS_WAIT),
            )
            .map(|r| json_reply(200, &r)),
            _ => Err(wrong_method("GET")),
        },
        _ if browse::allow(path).is_some() => browse::route(state, req, method, path, trace),
        _ => Err(ApiError::new(
            404,
            code::NOT_FOUND,
            format!(
                "no such endpoint {path}; the API is {UPLOAD_PATH}, {CONFIRM_PATH}, {HEALTH_PATH}, \
                 {}",
                browse::ROUTES
            ),
        )),
    }
}

/// `GET /api/v1/health`.
pub fn health_of(layout: &ServerLayout, min_free_bytes: u64, active: u64) -> HealthResponse {
    let free = fsx::free_space(fsx::existing_ancestor(&layout.sessions));
    if let Err(e) = &free {
        log::error!("health: free space of {}: {e}", layout.sessions.display());
    }
    let free = free.ok();
    let degraded = free.is_none_or(|f| f < min_free_bytes);
    HealthResponse {
        status: if degraded { "degraded" } else { "healthy" }.into(),
        storage_free_gb: free.map_or(0.0, |f| (f as f64 / GB * 1000.0).round() / 1000.0),
        active_uploads: active,
    }
}

fn health(state: &State) -> HealthResponse {
    health_of(
        &state.layout,
        state.limits.min_free_bytes,
        state.active.load(Ordering::SeqCst),
    )
}

/// `POST /api/v1/upload/confirm`: what was stored at receive time.
fn confirm(
    state: &State,
    req: &mut tiny_http::Request,
    trace: &mut upload::Trace,
) -> Result<ConfirmResponse, ApiError> {
    let bad = |code: &'static str, m: String| ApiError::new(400, code, m);
    let mut body = Vec::new();
    // A confirm body is tiny: it gets a deadline, not the stall timeout per read.
    req.set_read_deadline(Some(Instant::now() + state.limits.small_body_timeout));
    req.as_reader()
        .take(MAX_CONFIRM_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ApiError::new(
                408,
                code::TIMEOUT,
                format!(
                    "the confirm body did not arrive within server.small_body_timeout_sec ({} s)",
                    state.limits.small_body_timeout.as_secs()
                ),
            ),
            _ => bad(
                code::BAD_REQUEST,
                format!("reading the request failed: {e}"),
            ),
        })?;
    trace.bytes = body.len() as u64;
    if body.len() as u64 > MAX_CONFIRM_BYTES {
        return Err(bad(
            code::BAD_REQUEST,
            format!("confirm body is over {MAX_CONFIRM_BYTES} bytes"),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        bad(
            code::BAD_REQUEST,
            format!(
                "confirm body is not JSON ({e}); send {{\"session_id\": \"...\", \"camera_id\": \"...\"}}"
            ),
        )
    })?;
    let text = |name: &str| -> Result<String, ApiError> {
        match value.get(name) {
            None | Some(serde_json::Value::Null) => Err(bad(
                code::MISSING_FIELD,
                format!(
                    "confirm needs {name}; send {{\"session_id\": \"...\", \"camera_id\": \"...\"}}"
                ),
            )),
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(bad(
                code::INVALID_FIELD,
                format!("field {name}: must be a string, got {other}"),
            )),
        }
    };
    if !value.is_object() {
        return Err(bad(
            code::BAD_REQUEST,
            "confirm body must be a JSON object with session_id and camera_id".into(),
        ));
    }
    let session = SessionId::parse(&text("session_id")?)
        .map_err(|e| bad(code::INVALID_FIELD, format!("field session_id: {e}")))?;
    let camera = CameraId::parse(&text("camera_id")?)
        .map_err(|e| bad(code::INVALID_FIELD, format!("field camera_id: {e}")))?;
    trace.grant.camera(camera)?;
    let rec = RecordingId::new(session, camera);
    trace.recording = Some(rec.to_string());
    let (s, c) = (&rec.session, rec.camera);
    let not_found = || {
        ApiError::new(
            404,
            code::RECORDING_NOT_FOUND,
            format!("{rec} is not stored on this server; upload it first"),
        )
    };
    let digest_path = state.layout.digest(s, c);
    let digest = match std::fs::read_to_string(&digest_path) {
        Ok(text) => layout::parse_digest_line(&text).ok_or_else(|| {
            log::error!("{}: not a sha256sum line", digest_path.display());
            ApiError::new(
                500,
                code::INTERNAL,
                format!("the stored digest of {rec} is damaged; upload it again"),
            )
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => {
            return Err(ApiError::new(
                500,
                code::INTERNAL,
                format!("reading the stored digest of {rec}: {e}"),
            ));
        }
    };
    let size = match std::fs::metadata(state.layout.recording(s, c)) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => {
            return Err(ApiError::new(
                500,
                code::INTERNAL,
                format!("reading the stored recording {rec}: {e}"),
            ));
        }
    };
    Ok(ConfirmResponse {
        success: true,
        session_id: rec.session.to_string(),
        camera_id: rec.camera.to_string(),
        file_size: size,
        checksum_sha256: digest,
    })
}
