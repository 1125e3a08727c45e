//! What the connection threads share: the limits, the storage, the claims
//! on recordings being uploaded, and the counters shutdown waits on.

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{ApiError, ServerError, access, space, thumbs};
use crate::base::config::{Config, GB};
use crate::base::ids::RecordingId;
use crate::base::layout::ServerLayout;
use crate::base::protocol::code;
use crate::store::{EXPIRE_EVERY, ExpiryTimer, PartialStore, Store};

/// How often idle workers and the main thread look at the stop flag.
pub(super) const POLL: Duration = Duration::from_millis(100);

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

/// Shared by the workers.
pub struct State {
    /// The files (every read and write of them).
    pub(super) store: Store,
    pub(super) limits: Limits,
    pub(super) partials: PartialStore,
    /// When the workers next sweep expired partials.
    pub(super) expiry: ExpiryTimer,
    pub(super) ffprobe: PathBuf,
    /// How naive times of a flat manifest are read (`server.naive_time_zone`).
    pub(super) naive_zone: crate::base::manifest::flat::ZoneRule,
    pub(super) in_flight: Mutex<HashSet<RecordingId>>,
    pub(super) active: AtomicU64,
    /// Requests being handled (shutdown waits for them).
    pub(super) busy: AtomicU64,
    pub(super) stopping: AtomicBool,
    /// Set when the shutdown grace time is over: uploads in flight stop at
    /// their next read and keep what they received as a partial.
    pub(super) aborting: AtomicBool,
    pub(super) access: access::Access,
    /// Free space reserved by uploads in flight (`space`).
    pub(super) space: space::Reservations,
    /// Makes thumbnails off the request path.
    pub(super) thumbs: thumbs::Thumbnailer,
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
pub struct Counted<'a>(pub(super) &'a AtomicU64);

/// Counts an upload in flight for `/health` while it lives.
pub type ActiveUpload<'a> = Counted<'a>;

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl State {
    pub(super) fn new(
        config: &Config,
        layout: ServerLayout,
        access: access::Access,
    ) -> Result<State, ServerError> {
        Ok(State {
            store: Store::new(layout.clone()),
            limits: Limits::from_config(config),
            partials: PartialStore::from_config(config),
            expiry: ExpiryTimer::new(EXPIRE_EVERY, Instant::now()),
            ffprobe: config.processing.ffprobe_path.clone(),
            naive_zone: crate::base::manifest::flat::ZoneRule {
                zone: crate::base::config::zone_named(&config.server.naive_time_zone)
                    .map_err(ServerError::new)?,
                name: config.server.naive_time_zone.clone(),
            },
            in_flight: Mutex::new(HashSet::new()),
            active: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            aborting: AtomicBool::new(false),
            access,
            space: space::Reservations::default(),
            thumbs: thumbs::Thumbnailer::start(
                Store::new(layout),
                config.processing.ffmpeg_path.clone(),
            ),
        })
    }

    /// Claims `rec` for this upload, or 409 if another upload of it is in flight.
    pub(super) fn claim(&self, rec: &RecordingId) -> Result<InFlight<'_>, ApiError> {
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
    pub(super) fn in_flight(&self, rec: &RecordingId) -> bool {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(rec)
    }

    pub(super) fn active_upload(&self) -> ActiveUpload<'_> {
        self.active.fetch_add(1, Ordering::SeqCst);
        Counted(&self.active)
    }

    /// Free bytes on the sessions filesystem.
    pub(super) fn free_bytes(&self) -> io::Result<u64> {
        self.store.free_bytes()
    }
}

impl State {
    /// Waits up to `time` for no request to be in progress; whether none is.
    pub(super) fn wait_idle(&self, time: Duration) -> bool {
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
