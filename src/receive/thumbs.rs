//! Thumbnails off the request path: one worker thread makes them
//! ([`crate::store::Store::refresh_thumbnail`], which runs ffmpeg through
//! [`crate::base::ffmpeg::thumbnail`]), fed by a bounded queue. A request
//! for `thumb.jpg` hands its session to the worker and waits for it, up to
//! [`WAIT`]; when the queue is full or the wait runs out it gets 503 and
//! tries again later. So however many phones open the status page at once,
//! at most one ffmpeg runs for thumbnails, and a request thread never
//! starts a tool itself.

use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread;
use std::time::Duration;

use crate::base::ids::SessionId;
use crate::store::{Store, ThumbnailError};

/// Thumbnails that may wait for the worker; more get 503 at once.
pub const QUEUE: usize = 16;

/// Longest a request waits for its thumbnail.
pub const WAIT: Duration = Duration::from_secs(30);

/// One thumbnail to make, and where to say how it went.
struct Job {
    session: SessionId,
    done: mpsc::Sender<Result<(), ThumbnailError>>,
}

/// Why a request got no thumbnail.
#[derive(Debug)]
pub enum ThumbWait {
    /// The worker could not make it.
    Failed(ThumbnailError),
    /// The queue is full.
    Busy,
    /// The worker did not finish within [`WAIT`] (or is gone).
    TimedOut,
}

impl fmt::Display for ThumbWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThumbWait::Failed(e) => e.fmt(f),
            ThumbWait::Busy => write!(f, "{QUEUE} thumbnails are waiting to be made"),
            ThumbWait::TimedOut => write!(f, "not made within {} s", WAIT.as_secs()),
        }
    }
}

impl std::error::Error for ThumbWait {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThumbWait::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// The handle requests use to reach the thumbnail worker.
pub struct Thumbnailer {
    queue: SyncSender<Job>,
}

impl Thumbnailer {
    /// Starts the worker; it ends when the handle is dropped.
    pub fn start(store: Store, ffmpeg: PathBuf) -> Thumbnailer {
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let spawned = thread::Builder::new()
            .name("rig-thumbs".into())
            .spawn(move || work(&store, &ffmpeg, &jobs));
        if let Err(e) = spawned {
            log::error!("cannot start the thumbnail worker: {e}; thumbnails will time out");
        }
        Thumbnailer { queue }
    }

    /// Makes `session`'s thumbnail current, waiting for the worker.
    pub fn refresh(&self, session: &SessionId) -> Result<(), ThumbWait> {
        let (done, result) = mpsc::channel();
        let job = Job {
            session: session.clone(),
            done,
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ThumbWait::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(ThumbWait::TimedOut),
        }
        match result.recv_timeout(WAIT) {
            Ok(r) => r.map_err(ThumbWait::Failed),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                Err(ThumbWait::TimedOut)
            }
        }
    }
}

/// The worker: one thumbnail at a time, until the handle goes.
fn work(store: &Store, ffmpeg: &std::path::Path, jobs: &Receiver<Job>) {
    for job in jobs {
        let result = store.refresh_thumbnail(&job.session, ffmpeg);
        // The request may have stopped waiting; the thumbnail is kept anyway.
        let _ = job.done.send(result);
    }
}
