//! The server's storage: everything rig-receive and `rig-check server` know
//! about the files under `storage.*`, behind one type, [`Store`].
//!
//! | file | owns |
//! |---|---|
//! | `commit` | moving a verified upload into `sessions/S/C/` (temp, fsync, rename, `recording.sha256` last) |
//! | `digest` | the stored digest: `recording.sha256`, its `sha256sum` line, reading it back |
//! | `listing` | what is stored: sessions, completeness (a recording is stored iff its digest file exists), panoramas, opening files to serve |
//! | `tree` | the audit walk of `sessions/`, `temp/` and `processing/` for `rig-check server` |
//! | `partial` | partials of interrupted uploads in `temp/` |
//! | `thumbnail` | session thumbnails: their source, freshness, and atomic making |
//! | `prepare` | start-up: directories, one filesystem, upload temp files |
//!
//! Every path comes from [`ServerLayout`]. The HTTP handlers of
//! [`crate::receive`] and `rig-check server` ([`crate::check`]) go through
//! this module; nothing else touches the server's files. It is also the
//! seam where another backend (object storage) would plug in later, so its
//! interface speaks in IDs, digests, sizes and times rather than `std::fs`
//! types where that costs little. What still hands out a `File` or a path
//! (downloads and hashing, which stream a local file) is marked as such.

mod commit;
mod digest;
mod error;
mod listing;
mod partial;
mod prepare;
mod thumbnail;
mod tree;

pub use commit::{Commit, Existing};
pub use digest::{StoredDigest, digest_line, parse_digest_line};
pub use error::StoreError;
pub use listing::{FileState, OpenError, Stored};
pub use partial::{EXPIRE_EVERY, ExpiryTimer, PartialInfo, PartialStore};
pub use thumbnail::ThumbnailError;
pub use tree::{Entry, Extra, Tree, WalkProblem};

use crate::base::layout::ServerLayout;

/// The server's storage under one [`ServerLayout`].
#[derive(Debug, Clone)]
pub struct Store {
    layout: ServerLayout,
}

impl Store {
    /// The storage laid out as `layout` says.
    pub fn new(layout: ServerLayout) -> Store {
        Store { layout }
    }

    /// Its layout (for messages that name a directory).
    pub fn layout(&self) -> &ServerLayout {
        &self.layout
    }
}
