//! Session thumbnails: `sessions/S/thumb.jpg`, one frame of the panorama
//! if there is one, else of CAM_C (else any stored camera), made with
//! [`crate::base::ffmpeg::thumbnail`] and made again when its source is
//! newer. Made atomically: in `temp/` (same filesystem as `sessions/`, with
//! the prefix start-up cleans), then renamed into place, so `sessions/`
//! never holds a partial or stray file.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::Store;
use crate::base::ffmpeg;
use crate::base::ids::{CameraId, SessionId};

/// Why a thumbnail could not be made.
#[derive(Debug)]
pub enum ThumbnailError {
    /// The session has no recording to take a frame from yet.
    NoSource,
    /// The temp file could not be made or moved into place.
    Io {
        /// The file or directory it was about.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// ffmpeg made no frame.
    Ffmpeg(ffmpeg::ThumbnailError),
}

impl fmt::Display for ThumbnailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThumbnailError::NoSource => f.write_str("no recording to take a frame from"),
            ThumbnailError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            ThumbnailError::Ffmpeg(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ThumbnailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ThumbnailError::NoSource => None,
            ThumbnailError::Io { source, .. } => Some(source),
            ThumbnailError::Ffmpeg(e) => Some(e),
        }
    }
}

impl Store {
    /// The video a thumbnail of `session` is taken from.
    fn thumbnail_source(&self, session: &SessionId) -> Option<PathBuf> {
        let layout = &self.layout;
        std::iter::once(layout.panorama(session))
            .chain(
                [CameraId::Center, CameraId::Left, CameraId::Right]
                    .into_iter()
                    .filter(|&c| layout.digest(session, c).is_file())
                    .map(|c| layout.recording(session, c)),
            )
            .find(|p| p.is_file())
    }

    /// Whether `session` has (or can have) a thumbnail: one was made, or a
    /// camera is stored.
    pub fn may_have_thumbnail(&self, session: &SessionId, any_stored: bool) -> bool {
        any_stored || self.layout.thumbnail(session).is_file()
    }

    /// Makes `session`'s thumbnail unless it is newer than its source;
    /// [`ThumbnailError::NoSource`] when there is nothing to take it from.
    pub fn refresh_thumbnail(
        &self,
        session: &SessionId,
        ffmpeg: &Path,
    ) -> Result<(), ThumbnailError> {
        let source = self
            .thumbnail_source(session)
            .ok_or(ThumbnailError::NoSource)?;
        let target = self.layout.thumbnail(session);
        let fresh = matches!((mtime(&target), mtime(&source)), (Some(t), Some(s)) if t >= s);
        if fresh {
            return Ok(());
        }
        let temp = self
            .upload_temp("thumb-", ".jpg")
            .map_err(|source| ThumbnailError::Io {
                path: self.layout.temp.clone(),
                source,
            })?;
        ffmpeg::thumbnail(ffmpeg, &source, temp.path()).map_err(ThumbnailError::Ffmpeg)?;
        temp.persist(&target).map_err(|e| ThumbnailError::Io {
            path: target,
            source: e.error,
        })?;
        Ok(())
    }

    /// Opens `session`'s thumbnail to serve it; `None` when there is none.
    pub fn open_thumbnail(&self, session: &SessionId) -> std::io::Result<Option<File>> {
        super::listing::open_regular(&self.layout.thumbnail(session))
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}
