//! soccer-rig patch 7: how much of an unread request body is read and
//! thrown away so that the connection can carry another request.
//!
//! Upstream tiny_http read the whole declared `Content-Length` (or chunked
//! body) of a request answered before its body was read, so a client that
//! was refused at once (403 not in the allowlist, 401 no key, 413, 409, 507)
//! could still push gigabytes and hold a worker while it did. Now at most
//! [`DRAIN_LIMIT`] bytes, for at most [`DRAIN_TIME`], are read; beyond that
//! the reply carries `Connection: close`, the connection is marked
//! [`Abandoned`], and it ends after the reply instead of reading on (the
//! next request cannot be parsed from body bytes: none is read).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Most unread body bytes drained to keep a connection alive: small bodies
/// (a confirm, a short form) keep keep-alive working.
pub const DRAIN_LIMIT: usize = 1024 * 1024;

/// Longest a drain may take, so a client trickling its body cannot hold a
/// worker for `DRAIN_LIMIT` socket read timeouts.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Set once a request of the connection left its body unread: no further
/// request is read from that connection.
#[derive(Debug, Clone, Default)]
pub struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    /// Marks the connection as ending after the current reply.
    pub fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a request of the connection left its body unread.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
