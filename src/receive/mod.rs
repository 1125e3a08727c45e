//! rig-receive: the server side of the offload protocol, as a blocking
//! tiny_http daemon that three Pis can trust with the only copy of a match.
//!
//! Three endpoints (PROTOCOL.md "API Endpoints"):
//!
//! * `POST /api/v1/upload` streams the `file` part to `temp/` while hashing
//!   it in the same pass (constant memory whatever the size), and moves it to
//!   `sessions/S/C/recording.mp4` only once its digest equals the form's
//!   `checksum` (`upload`; the commit order is [`crate::store`]'s);
//! * `POST /api/v1/upload/confirm` answers with the size and the digest
//!   stored at receive time (`recording.sha256`), never re-reading the file;
//! * `GET /api/v1/health` reports the free space of the sessions filesystem
//!   and the uploads in flight.
//!
//! The read side, what the server holds (sessions, jobs and stats as JSON,
//! downloads with `Range`, and an HTML status page at `/`), lives in
//! `browse` and `page`; `routes` hands it every path it knows. Every file
//! is read and written through [`crate::store`].
//!
//! Each connection is served on a thread of its own (the vendored tiny_http,
//! patch 9), which calls `routes::handle` for each of its requests: no kind of
//! client, idle keep-alive, slow upload, unread download, trickled headers,
//! can take request handling away from the others. Each is bounded by its
//! own deadline (`server.header_timeout_sec`, `idle_timeout_sec`,
//! `send_timeout_sec`, `small_body_timeout_sec`, and for uploads
//! `stall_timeout_sec` with the `pace` floor), and all together by
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

//! # Files
//!
//! | file | job |
//! |---|---|
//! | `daemon` | bind, serve, shutdown grace |
//! | `state` | what the connection threads share: limits, claims, counters |
//! | `routes` | one request: gate, access check, route, drain, reply, log line |
//! | `reply`, `error`, `trace` | replies, error types, what the log line says |
//! | `access`, `fdlimit`, `pace`, `space` | allowlist and keys, fd limit, rate floor, free-space reservations |
//! | `upload/`, `multipart`, `incoming` | `POST /api/v1/upload`: the form, the manifest, the commit |
//! | `status`, `confirm`, `health` | the small endpoints |
//! | `browse/`, `summary`, `page`, `thumbs` | the read side: JSON, downloads, the HTML page, thumbnails |

mod access;
mod browse;
mod confirm;
mod daemon;
mod error;
mod fdlimit;
mod health;
mod incoming;
mod multipart;
mod pace;
mod page;
mod reply;
mod routes;
mod space;
mod state;
mod status;
mod summary;
mod thumbs;
mod trace;
mod upload;

pub use daemon::{Receiver, run};
pub use error::{ApiError, ServerError};
pub use health::health_of;
pub use reply::{Body, Reply};
pub use state::Limits;
pub use summary::{CameraSummary, ManifestSummary, SessionList, SessionSummary, Stats};
pub use upload::MAX_MANIFEST_BYTES;
