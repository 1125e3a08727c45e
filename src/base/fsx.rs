//! File-system helpers that keep the "nothing lost" promise.
//!
//! * [`atomic_write`] and [`AtomicFile`]: write to a temp name in the target's
//!   directory, fsync, rename, fsync the directory. A reader sees the old
//!   file or the whole new one, never a partial file under the final name,
//!   whatever crashes when.
//! * [`LockFile`]: an advisory exclusive lock (std's `File::try_lock`), held
//!   while the value lives; the kernel drops it if the process dies.
//! * [`free_space`]: bytes available to unprivileged users on a filesystem.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Prefix of every temp file this crate creates next to a final name, so
/// checks can recognise leftovers of a crash.
pub const TEMP_PREFIX: &str = ".rig-tmp-";

/// An I/O error about one file or directory: shows as `PATH: CAUSE`, keeps
/// the cause as its [`source`](std::error::Error::source).
#[derive(Debug)]
pub struct PathError {
    /// The file or directory.
    pub path: PathBuf,
    /// What the operating system said.
    pub source: io::Error,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Adds the path to an I/O error: the same kind, the message `PATH: CAUSE`,
/// and (through [`PathError`]) the original error as the source.
pub fn with_path(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| {
        io::Error::new(
            e.kind(),
            PathError {
                path: path.to_path_buf(),
                source: e,
            },
        )
    }
}

/// fsyncs a directory so a rename inside it survives power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(with_path(dir))
}

/// The directory a file lives in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A file being written under a temp name beside its final path.
///
/// Dropped without [`AtomicFile::commit`], the temp file is removed, so an
/// error or a panic leaves nothing behind.
pub struct AtomicFile {
    temp: NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing `target`, creating its parent directories.
    pub fn create(target: &Path) -> io::Result<AtomicFile> {
        let dir = parent_of(target);
        fs::create_dir_all(dir).map_err(with_path(dir))?;
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(with_path(dir))?;
        Ok(AtomicFile {
            temp,
            target: target.to_path_buf(),
        })
    }

    /// The open temp file.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// The temp file's current path.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// fsync, then rename over the target (replacing it), then fsync the directory.
    pub fn commit(self) -> io::Result<()> {
        self.finish(true)
    }

    /// Like [`AtomicFile::commit`] but fails with `AlreadyExists` rather than
    /// replace an existing target. Recordings are never overwritten.
    pub fn commit_new(self) -> io::Result<()> {
        self.finish(false)
    }

    fn finish(self, replace: bool) -> io::Result<()> {
        let target = self.target;
        self.temp.as_file().sync_all().map_err(with_path(&target))?;
        let result = if replace {
            self.temp.persist(&target).map(drop)
        } else {
            self.temp.persist_noclobber(&target).map(drop)
        };
        // On failure `PersistError` hands the temp file back; dropping it deletes it.
        result.map_err(|e| with_path(&target)(e.error))?;
        sync_dir(parent_of(&target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// Writes `bytes` to `path` atomically (temp + fsync + rename), creating parents.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes).map_err(with_path(path))?;
    f.commit()
}

/// An exclusive advisory lock on a file, released on drop or process death.
#[derive(Debug)]
pub struct LockFile {
    _file: File,
    path: PathBuf,
}

impl LockFile {
    /// Takes the lock now, or returns `Ok(None)` if another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<LockFile>> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockFile {
                _file: file,
                path: path.to_path_buf(),
            })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(with_path(path)(e)),
        }
    }

    /// Takes the lock, waiting for its holder to release it.
    pub fn acquire(path: &Path) -> io::Result<LockFile> {
        let file = Self::open(path)?;
        file.lock().map_err(with_path(path))?;
        Ok(LockFile {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    fn open(path: &Path) -> io::Result<File> {
        fs::create_dir_all(parent_of(path)).map_err(with_path(parent_of(path)))?;
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(with_path(path))
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Bytes available to unprivileged users on the filesystem holding `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(|e| with_path(path)(e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The nearest existing ancestor of `path` (itself if it exists), so free
/// space can be asked before a directory is created.
pub fn existing_ancestor(path: &Path) -> &Path {
    let mut p = path;
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => return Path::new("."),
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(p.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn dropped_atomic_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mp4");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!p.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.mp4");
        fs::write(&p, b"original").unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"new").unwrap();
        let err = f.commit_new().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"original");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.lock");
        let held = LockFile::try_acquire(&p).unwrap().unwrap();
        assert!(LockFile::try_acquire(&p).unwrap().is_none());
        drop(held);
        assert!(LockFile::try_acquire(&p).unwrap().is_some());
    }

    #[test]
    fn errors_name_the_path_and_keep_the_cause() {
        use std::error::Error as _;
        let p = Path::new("/nonexistent/x");
        let err = fs::read(p).map_err(with_path(p)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with("/nonexistent/x: "), "{err}");
        let cause = err.source().expect("the cause");
        let cause = cause.downcast_ref::<io::Error>().expect("an io::Error");
        assert_eq!(cause.kind(), io::ErrorKind::NotFound);
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<PathError>());
        assert_eq!(inner.map(|e| e.path.as_path()), Some(p));
    }

    #[test]
    fn free_space_is_positive() {
        assert!(free_space(Path::new("/")).unwrap() > 0);
        assert_eq!(
            existing_ancestor(Path::new("/nonexistent/a/b")),
            Path::new("/")
        );
    }
}
