//! Partials: the bytes of an interrupted upload, kept in `temp/` so the
//! next attempt sends only the rest (PROTOCOL-EXTENSIONS.md, "Resumable
//! uploads"), in the spirit of tus's offsets and rsync's `--partial`.
//!
//! A partial is keyed by session, camera and the checksum the form
//! announced, and is two files in `temp/`:
//!
//! * `.rig-partial-S_C-<checksum>`: exactly the bytes received, fsynced;
//! * `.rig-partial-S_C-<checksum>.json`: its sidecar ([`PartialInfo`]),
//!   written atomically after the data is fsynced. The sidecar's
//!   `received_bytes` is the authority: bytes past it (appended by a resume
//!   the server did not live to fsync) are cut off before the next resume.
//!
//! The prefix differs from the upload temp files', so start-up cleaning and
//! failed uploads leave partials alone. No hasher state is saved (sha2 does
//! not expose it): a resume re-hashes the partial's bytes from disk, one
//! sequential read at disk speed, before it appends. Partials expire after
//! `storage.partial_ttl_hours`; each camera may hold at most
//! `storage.partial_max_gb` of them (the oldest go first). They live on the
//! sessions filesystem (rig-receive insists), so the free-space floor
//! already counts them. Expired ones are removed at start-up, whenever a
//! partial is kept, and by the workers' housekeeping at most every
//! [`EXPIRE_EVERY`] ([`ExpiryTimer`]), so a server that runs for weeks
//! does not fill its disk with partials nobody resumes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tempfile::{NamedTempFile, TempPath};

use crate::base::checksum::Sha256;
use crate::base::config::{Config, GB};
use crate::base::fsx;
use crate::base::ids::RecordingId;
use crate::base::layout::{PARTIAL_PREFIX, ServerLayout};

/// How often a running server looks for expired partials: often enough
/// that an expired partial goes within minutes, rarely enough that reading
/// `temp/` costs nothing.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(300);

/// When the next sweep for expired partials is due; shared by the workers,
/// so one of them sweeps and the others go on serving.
#[derive(Debug)]
pub struct ExpiryTimer {
    every: Duration,
    next: Mutex<Instant>,
}

impl ExpiryTimer {
    /// A timer whose first sweep is due `every` after `now` (start-up has
    /// just swept).
    pub fn new(every: Duration, now: Instant) -> ExpiryTimer {
        ExpiryTimer {
            every,
            next: Mutex::new(now + every),
        }
    }

    /// Whether a sweep is due at `now`; a true answer moves the next one
    /// `every` later, so of callers racing for it exactly one gets true.
    pub fn due(&self, now: Instant) -> bool {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        if now < *next {
            return false;
        }
        *next = now + self.every;
        true
    }
}

/// The sidecar of a partial; also the body of a status reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialInfo {
    /// Session identifier.
    pub session_id: String,
    /// Camera identifier.
    pub camera_id: String,
    /// The checksum the interrupted upload announced, lowercase hex.
    pub checksum: Sha256,
    /// Bytes received and fsynced: the `offset` a resume must send.
    pub received_bytes: u64,
    /// When the partial was last written, RFC 3339 UTC.
    pub updated_at: String,
}

/// The partials in one `temp/` directory.
#[derive(Debug, Clone)]
pub struct PartialStore {
    layout: ServerLayout,
    ttl: Duration,
    max_bytes_per_camera: u64,
}

impl PartialStore {
    /// The store `config` describes (`storage.temp_path`,
    /// `storage.partial_ttl_hours`, `storage.partial_max_gb`).
    pub fn from_config(config: &Config) -> PartialStore {
        let s = &config.storage;
        PartialStore {
            layout: ServerLayout::from_config(s),
            ttl: Duration::from_secs(s.partial_ttl_hours.saturating_mul(3600)),
            max_bytes_per_camera: (s.partial_max_gb * GB).clamp(0.0, u64::MAX as f64) as u64,
        }
    }

    /// The partials of `layout` with the default TTL and cap, for readers
    /// (rig-check lists partials; it expires nothing).
    pub fn reader(layout: &ServerLayout) -> PartialStore {
        PartialStore {
            layout: layout.clone(),
            ..PartialStore::from_config(&Config::default())
        }
    }

    /// The data file of a partial.
    pub fn data_path(&self, rec: &RecordingId, checksum: &Sha256) -> PathBuf {
        self.layout.partial_data(rec, checksum)
    }

    /// The sidecar of a partial.
    pub fn sidecar_path(&self, rec: &RecordingId, checksum: &Sha256) -> PathBuf {
        self.layout.partial_sidecar(rec, checksum)
    }

    /// Bytes a resume of (`rec`, `checksum`) may start from: the sidecar's
    /// count when the data holds at least that many and has not expired,
    /// else 0.
    pub fn received(&self, rec: &RecordingId, checksum: &Sha256) -> u64 {
        let Some(info) = read_sidecar(&self.sidecar_path(rec, checksum)) else {
            return 0;
        };
        match fs::metadata(self.data_path(rec, checksum)) {
            Ok(m) if m.len() >= info.received_bytes && !self.expired(&m) => info.received_bytes,
            _ => 0,
        }
    }

    fn expired(&self, meta: &fs::Metadata) -> bool {
        meta.modified()
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > self.ttl)
    }

    /// The housekeeping of a running server: [`Self::expire`] when `timer`
    /// says a sweep is due at `now`; returns how many files went.
    pub fn expire_if_due(&self, timer: &ExpiryTimer, now: Instant) -> usize {
        if !timer.due(now) {
            return 0;
        }
        let removed = self.expire();
        if removed > 0 {
            log::info!(
                "housekeeping: removed {removed} expired or orphaned partial file(s) from {}",
                self.layout.temp.display()
            );
        }
        removed
    }

    /// Opens the partial to append from `offset` (which [`Self::received`]
    /// returned): cuts unsynced bytes past it, hashes the first `offset`
    /// bytes, and hands back the file as a temp file under the partial's
    /// own name (so a failed resume that is not an interruption deletes it)
    /// with its hashing writer and first 8 bytes.
    pub fn open_for_resume(
        &self,
        rec: &RecordingId,
        checksum: &Sha256,
        offset: u64,
    ) -> io::Result<(crate::base::checksum::HashingWriter<NamedTempFile>, Vec<u8>)> {
        let path = self.data_path(rec, checksum);
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        file.set_len(offset)?;
        let mut head = Vec::with_capacity(8);
        (&file).take(8).read_to_end(&mut head)?;
        let reader = File::open(&path)?.take(offset);
        let mut temp = NamedTempFile::from_parts(file, TempPath::try_from_path(&path)?);

        temp.as_file_mut().seek(io::SeekFrom::End(0))?;
        let started = std::time::Instant::now();
        let writer = crate::base::checksum::HashingWriter::with_prefix(temp, reader)?;
        log::info!(
            "{rec}: re-hashed the {offset} bytes of its partial in {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        if writer.bytes_written() != offset {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("partial {} is shorter than {offset} bytes", path.display()),
            ));
        }
        Ok((writer, head))
    }

    /// Keeps an interrupted upload's `len` bytes as the partial of
    /// (`rec`, `checksum`): fsync, rename into place, sidecar last. A longer
    /// partial of the same key is kept instead; other checksums of `rec`
    /// are dropped; the camera's oldest partials go to stay under the cap.
    /// Returns whether the bytes were kept.
    pub fn keep(
        &self,
        rec: &RecordingId,
        checksum: &Sha256,
        temp: NamedTempFile,
        len: u64,
    ) -> io::Result<bool> {
        self.expire();
        if len == 0 || len > self.max_bytes_per_camera {
            return Ok(false);
        }
        let data = self.data_path(rec, checksum);
        let sidecar = self.sidecar_path(rec, checksum);
        if temp.path() != data && self.received(rec, checksum) >= len {
            return Ok(false);
        }
        temp.as_file().sync_all()?;
        self.make_room(rec, &data, len);
        temp.persist(&data).map_err(|e| e.error)?;
        fsx::sync_dir(&self.layout.temp)?;
        let info = PartialInfo {
            session_id: rec.session.to_string(),
            camera_id: rec.camera.to_string(),
            checksum: *checksum,
            received_bytes: len,
            updated_at: crate::base::manifest::format_time(jiff::Timestamp::now()),
        };
        let json = serde_json::to_vec_pretty(&info).map_err(io::Error::other)?;
        fsx::atomic_write(&sidecar, &json)?;
        Ok(true)
    }

    /// Makes room for `len` more bytes of `rec`'s camera under the cap:
    /// other partials of the camera go, oldest first (another checksum of
    /// the same recording is stale: it goes whatever the room).
    fn make_room(&self, rec: &RecordingId, data: &Path, len: u64) {
        let mut others: Vec<(SystemTime, PathBuf, PathBuf, u64)> = self
            .list()
            .into_iter()
            .filter(|(_, i)| i.camera_id == rec.camera.as_str())
            .filter(|(d, _)| d != data)
            .map(|(d, i)| {
                let t = fs::metadata(&d)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let s = d.with_file_name(format!(
                    "{}.json",
                    d.file_name().unwrap_or_default().to_string_lossy()
                ));
                let same_rec = i.session_id == rec.session.as_str();
                // Another checksum of the same recording is stale: oldest of all.
                let t = if same_rec { SystemTime::UNIX_EPOCH } else { t };
                (t, d, s, i.received_bytes)
            })
            .collect();
        others.sort_by_key(|o| o.0);
        let mut total: u64 = others.iter().map(|o| o.3).sum::<u64>() + len;
        for (t, d, s, n) in &others {
            if total <= self.max_bytes_per_camera && *t != SystemTime::UNIX_EPOCH {
                break;
            }
            remove_pair(d, s);
            total -= n;
        }
    }

    /// Removes the partial of (`rec`, `checksum`), if any.
    pub fn remove(&self, rec: &RecordingId, checksum: &Sha256) {
        remove_pair(
            &self.data_path(rec, checksum),
            &self.sidecar_path(rec, checksum),
        );
    }

    /// Removes every partial of `rec` (it is stored now).
    pub fn remove_recording(&self, rec: &RecordingId) {
        for (data, info) in self.list() {
            if info.session_id == rec.session.as_str() && info.camera_id == rec.camera.as_str() {
                let sidecar = self.sidecar_path(rec, &info.checksum);
                remove_pair(&data, &sidecar);
            }
        }
    }

    /// Every partial with a readable sidecar: (data path, sidecar).
    pub fn list(&self) -> Vec<(PathBuf, PartialInfo)> {
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&self.layout.temp) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(stem) = name
                .strip_prefix(PARTIAL_PREFIX)
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if let Some(info) = read_sidecar(&entry.path()) {
                out.push((
                    self.layout.temp.join(format!("{PARTIAL_PREFIX}{stem}")),
                    info,
                ));
            }
        }
        out
    }

    /// Removes expired partials, sidecars without data and data without a
    /// sidecar older than a minute (a crash between rename and sidecar);
    /// returns how many files went.
    pub fn expire(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.layout.temp) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with(PARTIAL_PREFIX) {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if (self.orphan(&name, &path, &meta) || self.expired(&meta)) && remove_logged(&path) {
                removed += 1;
            }
        }
        removed
    }

    /// Whether the partial file `name` (at `path`) lost its other half: a
    /// sidecar without data, or data without a sidecar for over a minute.
    fn orphan(&self, name: &str, path: &Path, meta: &fs::Metadata) -> bool {
        let (data, sidecar) = match name.strip_suffix(".json") {
            Some(stem) => (self.layout.temp.join(stem), path.to_path_buf()),
            None => (
                path.to_path_buf(),
                self.layout.temp.join(format!("{name}.json")),
            ),
        };
        if path == data {
            !sidecar.exists()
                && SystemTime::now()
                    .duration_since(meta.modified().unwrap_or(SystemTime::now()))
                    .is_ok_and(|age| age > Duration::from_secs(60))
        } else {
            !data.exists()
        }
    }
}

/// Removes an expired or orphaned partial file; whether it went (one
/// already gone is not counted, other failures are logged).
fn remove_logged(path: &Path) -> bool {
    match fs::remove_file(path) {
        Ok(()) => {
            log::info!("removed expired or orphaned partial {}", path.display());
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            log::error!("cannot remove {}: {e}", path.display());
            false
        }
    }
}

impl super::Store {
    /// The partials in `temp/`, for reading (default TTL and cap).
    pub fn partials(&self) -> PartialStore {
        PartialStore::reader(&self.layout)
    }
}

fn read_sidecar(path: &Path) -> Option<PartialInfo> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

fn remove_pair(data: &Path, sidecar: &Path) {
    for p in [sidecar, data] {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => log::error!("cannot remove partial {}: {e}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn store(dir: &Path, cap_gb: f64) -> PartialStore {
        let mut c = Config::default();
        c.storage.temp_path = dir.to_path_buf();
        c.storage.partial_max_gb = cap_gb;
        PartialStore::from_config(&c)
    }

    #[test]
    fn kept_bytes_resume_to_the_digest_of_the_whole() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 1.0);
        let rec = RecordingId::parse("GAME_1_CAM_C").unwrap();
        let whole: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let sum = crate::base::checksum::hash_reader(&whole[..], 4096)
            .unwrap()
            .sha256;
        let mut t = NamedTempFile::new_in(dir.path()).unwrap();
        t.write_all(&whole[..40_000]).unwrap();
        assert!(s.keep(&rec, &sum, t, 40_000).unwrap());
        assert_eq!(s.received(&rec, &sum), 40_000);
        assert_eq!(s.received(&rec, &"0".repeat(64).parse().unwrap()), 0);
        // Unsynced bytes past the sidecar's count are cut before appending.
        let mut f = OpenOptions::new()
            .append(true)
            .open(s.data_path(&rec, &sum))
            .unwrap();
        f.write_all(b"garbage").unwrap();
        let (mut w, head) = s.open_for_resume(&rec, &sum, 40_000).unwrap();
        assert_eq!(head, whole[..8]);
        w.write_all(&whole[40_000..]).unwrap();
        let (file, digest) = w.finish();
        assert_eq!(digest.sha256, sum);
        assert_eq!(digest.size, whole.len() as u64);
        assert_eq!(fs::read(file.path()).unwrap(), whole);
        // A shorter partial of the same key does not replace a longer one.
        let mut t = NamedTempFile::new_in(dir.path()).unwrap();
        t.write_all(&whole[..10]).unwrap();
        assert!(!s.keep(&rec, &sum, t, 10).unwrap());
    }

    #[test]
    fn housekeeping_removes_expired_partials_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.storage.temp_path = dir.path().to_path_buf();
        c.storage.partial_ttl_hours = 1;
        let s = PartialStore::from_config(&c);
        let (old, fresh) = (
            RecordingId::parse("GAME_1_CAM_L").unwrap(),
            RecordingId::parse("GAME_2_CAM_R").unwrap(),
        );
        let sum: Sha256 = "b".repeat(64).parse().unwrap();
        for rec in [&old, &fresh] {
            let mut t = NamedTempFile::new_in(dir.path()).unwrap();
            t.write_all(b"\0\0\0\x18ftypisom").unwrap();
            assert!(s.keep(rec, &sum, t, 12).unwrap());
        }
        // Two hours ago, as the clock of the TTL sees it (file times).
        let past = SystemTime::now() - Duration::from_secs(2 * 3600);
        for p in [s.data_path(&old, &sum), s.sidecar_path(&old, &sum)] {
            File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let start = Instant::now();
        let timer = ExpiryTimer::new(EXPIRE_EVERY, start);
        // Not due yet: nothing is swept, however old.
        assert_eq!(s.expire_if_due(&timer, start + EXPIRE_EVERY / 2), 0);
        assert_eq!(s.received(&old, &sum), 0, "expired: not resumable");
        assert!(s.data_path(&old, &sum).exists());
        // Due: the expired pair goes, the fresh one stays.
        assert_eq!(s.expire_if_due(&timer, start + EXPIRE_EVERY), 2);
        assert!(!s.data_path(&old, &sum).exists());
        assert!(!s.sidecar_path(&old, &sum).exists());
        assert_eq!(s.received(&fresh, &sum), 12);
        // One sweep per period, whoever asks.
        assert!(!timer.due(start + EXPIRE_EVERY + Duration::from_secs(1)));
        assert!(timer.due(start + 2 * EXPIRE_EVERY + Duration::from_secs(1)));
    }

    #[test]
    fn a_partial_over_the_cap_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 1e-6); // 1000 bytes
        let rec = RecordingId::parse("GAME_1_CAM_L").unwrap();
        let mut t = NamedTempFile::new_in(dir.path()).unwrap();
        t.write_all(&[1u8; 2000]).unwrap();
        assert!(
            !s.keep(&rec, &"a".repeat(64).parse().unwrap(), t, 2000)
                .unwrap()
        );
        assert!(s.list().is_empty());
    }
}
