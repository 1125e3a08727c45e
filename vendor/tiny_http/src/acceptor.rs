//! soccer-rig patch 9: the accept loop and one thread per connection.
//!
//! Upstream handed each accepted connection to a `TaskPool` whose idle
//! count was stale while a notified thread woke up, so a burst of new
//! connections queued behind connections that were still open (an idle
//! keep-alive connection held its pool thread until the read timeout): a
//! browser's burst of 12 keep-alive connections waited a minute. Now each
//! connection gets its own thread at once, up to [`Limits::max_connections`]
//! live at a time; beyond that a new connection is answered 503 and closed
//! at once, and the refusals are logged once per [`REPORT_EVERY`]. A failed
//! `accept()` (`EMFILE`) is logged at that pace too and the loop backs off
//! briefly instead of spinning.

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{ClientConnection, HeaderTimeouts};
use crate::connection::{Connection, Listener};
use crate::util::{MessagesQueue, ReadDeadline, RefinedTcpStream};
use crate::{Message, Request};

/// How often refused connections and accept errors are logged, at most.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What a connection may cost (soccer-rig patch 9).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Socket read timeout while a body is read (no progress for this long
    /// fails the read).
    pub stall_timeout: Option<Duration>,
    /// Longest wait for the first byte of a request on an open connection;
    /// then it is closed without a reply.
    pub idle_timeout: Option<Duration>,
    /// Longest time from the first byte of a request to the end of its
    /// headers; then 408 and close.
    pub header_timeout: Option<Duration>,
    /// Socket write timeout: a reply write that makes no progress for this
    /// long fails, and the connection ends.
    pub write_timeout: Option<Duration>,
    /// Most connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Stack size of a connection thread, bytes.
    pub thread_stack: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            stall_timeout: None,
            idle_timeout: None,
            header_timeout: None,
            write_timeout: None,
            max_connections: 4096,
            thread_stack: 1024 * 1024,
        }
    }
}

/// Handles each request on its connection's thread (soccer-rig patch 9).
pub type Handler = Arc<dyn Fn(Request) + Send + Sync + 'static>;

/// Where the requests of a connection go.
#[derive(Clone)]
pub(crate) enum Dispatch {
    /// Upstream: a queue that `Server::recv` pops.
    Queue(Arc<MessagesQueue<Message>>),
    /// A handler called on the connection's own thread.
    Inline(Handler),
}

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
pub(crate) type Tls = Option<Arc<crate::ssl::SslContextImpl>>;
#[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
pub(crate) type Tls = Option<Arc<()>>;

/// Counts a live connection until dropped.
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts events and logs them at most once per [`REPORT_EVERY`].
struct Report {
    last: Option<Instant>,
    count: u64,
}

impl Report {
    fn new() -> Report {
        Report {
            last: None,
            count: 0,
        }
    }

    /// Counts one event; `Some(count since the last report)` when it is time to log.
    fn note(&mut self) -> Option<u64> {
        self.count += 1;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < REPORT_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

/// Accepts connections until `close` is set.
pub(crate) fn accept_loop(
    listener: Listener,
    tls: Tls,
    limits: Limits,
    dispatch: Dispatch,
    close: Arc<AtomicBool>,
) {
    let live = Arc::new(AtomicUsize::new(0));
    let (mut refused, mut failed) = (Report::new(), Report::new());
    log::debug!("Running accept thread");
    while !close.load(Ordering::Relaxed) {
        let sock = match listener.accept() {
            Ok((sock, _)) => sock,
            Err(e) => {
                if let Some(n) = failed.note() {
                    log::error!("accepting connections failed {n} time(s), lately: {e}");
                }
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if live.load(Ordering::SeqCst) >= limits.max_connections {
            refuse(sock);
            if let Some(n) = refused.note() {
                log::warn!(
                    "connection limit of {} reached: refused {n} connection(s) with 503 \
                     since the last report",
                    limits.max_connections
                );
            }
            continue;
        }
        start(sock, &tls, &limits, &dispatch, &live, &mut failed);
    }
    log::debug!("Terminating accept thread");
}

/// Answers a connection over the limit 503 without reading it, and closes it.
fn refuse(sock: Connection) {
    const REPLY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
        Connection: close\r\nRetry-After: 5\r\nContent-Length: 78\r\n\r\n\
        {\"success\":false,\"error\":\"too_many_connections\",\"message\":\"try again shortly\"}";
    if let Some(tcp) = sock.tcp() {
        tcp.set_nonblocking(true).ok();
        (&*tcp).write_all(REPLY).ok();
    }
    sock.shutdown(Shutdown::Write).ok();
}

/// Sets the socket's timeouts and runs the connection on a thread of its own.
fn start(
    sock: Connection,
    tls: &Tls,
    limits: &Limits,
    dispatch: &Dispatch,
    live: &Arc<AtomicUsize>,
    failed: &mut Report,
) {
    if let Some(tcp) = sock.tcp() {
        let set = tcp
            .set_read_timeout(limits.stall_timeout)
            .and_then(|()| tcp.set_write_timeout(limits.write_timeout));
        if let Err(e) = set {
            log::error!("cannot set the timeouts of a connection: {e}");
            return;
        }
    }
    live.fetch_add(1, Ordering::SeqCst);
    let guard = Live(Arc::clone(live));
    let (tls, limits2, dispatch) = (tls.clone(), limits.clone(), dispatch.clone());
    let spawned = thread::Builder::new()
        .name("connection".into())
        .stack_size(limits.thread_stack)
        .spawn(move || {
            let _live = guard;
            serve(sock, tls, &limits2, dispatch);
        });
    if let Err(e) = spawned {
        if let Some(n) = failed.note() {
            log::error!("cannot start a connection thread ({n} time(s) lately): {e}");
        }
    }
}

/// Reads the requests of one connection and dispatches them.
fn serve(sock: Connection, tls: Tls, limits: &Limits, dispatch: Dispatch) {
    let deadline = Arc::new(ReadDeadline::new(sock.tcp(), limits.stall_timeout));
    let (read, write) = match tls {
        None => RefinedTcpStream::new(sock, Some(Arc::clone(&deadline))),
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        Some(ref ssl) => {
            let by = limits.header_timeout.map(|t| Instant::now() + t);
            let Ok(s) = ssl.accept(sock, by) else {
                return;
            };
            // the handshake set its own read timeouts; back to the stall one
            if deadline.resync().is_err() {
                return;
            }
            RefinedTcpStream::new(s, Some(Arc::clone(&deadline)))
        }
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        Some(_) => unreachable!(),
    };
    let timeouts = HeaderTimeouts {
        idle: limits.idle_timeout,
        header: limits.header_timeout,
    };
    let client = ClientConnection::new(write, read, Some(deadline), timeouts);
    match dispatch {
        Dispatch::Inline(handler) => client.for_each(|rq| handler(rq)),
        // Synchronization is needed for HTTPS requests to avoid a deadlock
        Dispatch::Queue(messages) if client.secure() => {
            let (sender, receiver) = mpsc::channel();
            for rq in client {
                messages.push(rq.with_notify_sender(sender.clone()).into());
                if receiver.recv().is_err() {
                    return;
                }
            }
        }
        Dispatch::Queue(messages) => client.for_each(|rq| messages.push(rq.into())),
    }
}
