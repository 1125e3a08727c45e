//! soccer-rig patch 9: read deadlines of a connection.
//!
//! A socket read timeout alone bounds each read, not a whole phase: a
//! client trickling one header byte every 20 s never trips a 60 s timeout
//! and holds its connection forever. [`ReadDeadline`] is shared by the
//! connection's reader and its requests; while a deadline is set (the wait
//! for a request, its headers, a small body), every socket read gets the
//! time left as its timeout and fails with `TimedOut` once it is gone.
//! Without one, reads time out after the connection's stall timeout.

use std::io;
use std::net::TcpStream;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The read deadline of one connection.
#[derive(Debug)]
pub struct ReadDeadline {
    sock: Option<Arc<TcpStream>>,
    stall: Option<Duration>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    deadline: Option<Instant>,
    /// The read timeout last set on the socket.
    applied: Option<Duration>,
}

impl ReadDeadline {
    /// The deadline of the TCP socket `sock` (none for Unix sockets, whose
    /// reads are then unbounded), with `stall` as the read timeout while no
    /// deadline is set.
    pub fn new(sock: Option<Arc<TcpStream>>, stall: Option<Duration>) -> ReadDeadline {
        ReadDeadline {
            sock,
            stall,
            state: Mutex::new(State {
                deadline: None,
                applied: stall,
            }),
        }
    }

    /// Sets (or with `None` clears) the instant by which reads must be done.
    pub fn set(&self, deadline: Option<Instant>) {
        self.lock().deadline = deadline;
    }

    /// Before a socket read: applies the time left (or the stall timeout)
    /// to the socket; `TimedOut` when the deadline has passed.
    pub fn before_read(&self) -> io::Result<()> {
        let Some(sock) = &self.sock else {
            return Ok(());
        };
        let mut state = self.lock();
        let wanted = match state.deadline {
            None => self.stall,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left < Duration::from_millis(1) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the read deadline has passed",
                    ));
                }
                Some(self.stall.map_or(left, |s| s.min(left)))
            }
        };
        if wanted != state.applied {
            sock.set_read_timeout(wanted)?;
            state.applied = wanted;
        }
        Ok(())
    }

    /// Sets the socket's read timeout back to the one last applied, after
    /// something else (the TLS handshake) changed it.
    pub fn resync(&self) -> io::Result<()> {
        match &self.sock {
            Some(sock) => sock.set_read_timeout(self.lock().applied),
            None => Ok(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether a read error means the peer was too slow (socket timeout or
/// passed deadline).
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}
