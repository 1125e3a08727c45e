//! Streaming SHA-256: of a file, of bytes as they are copied, of many files at once.
//!
//! Recordings are tens of gigabytes, so nothing here holds a file in memory:
//! files are read in [`READ_BUF_SIZE`] chunks, and [`HashingWriter`] /
//! [`HashingReader`] hash bytes while they move, so that every byte is hashed
//! exactly once on each side of the offload. [`hash_files_parallel`] hashes
//! many files at once on rayon's pool ([`hash_files_counted`] with
//! [`HashCounters`] for a progress display). Every file and stream hashed
//! in the suite goes through this module's one read loop.
//!
//! A digest is one type, [`Sha256`]: 32 bytes. Its text form is written as 64
//! lowercase hex digits (as `sha256sum` prints and the manifest's
//! `checksum.value` holds) and read by one rule everywhere: 64 hex digits of
//! either case, surrounding whitespace ignored. Comparing two digests compares
//! bytes, so `ABC...` and `abc...` name the same content.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest;

/// The streaming hasher: `sha2`'s SHA-256 state.
type Hasher = sha2::Sha256;

/// A SHA-256 digest: 32 bytes. Displays as 64 lowercase hex digits; parses
/// 64 hex digits of either case (surrounding whitespace ignored); serializes
/// as that text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// The digest with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Sha256 {
        Sha256(bytes)
    }

    /// The digest's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest of `data`, hashed at once (for small things; files are
    /// streamed with [`hash_reader`] / [`hash_file`]).
    pub fn of(data: &[u8]) -> Sha256 {
        Sha256(Hasher::digest(data).into())
    }

    /// The finished state of a streaming hasher.
    fn finish(hasher: Hasher) -> Sha256 {
        Sha256(hasher.finalize().into())
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// Text that is not a SHA-256 digest: not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSha256Error {
    /// What was given (cut to 80 characters).
    pub given: String,
}

impl fmt::Display for ParseSha256Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "must be a SHA-256 digest, 64 hex characters, got {:?}",
            self.given
        )
    }
}

impl std::error::Error for ParseSha256Error {}

impl FromStr for Sha256 {
    type Err = ParseSha256Error;

    fn from_str(s: &str) -> Result<Sha256, ParseSha256Error> {
        let hex = s.trim().as_bytes();
        let err = || ParseSha256Error {
            given: s.chars().take(80).collect(),
        };
        if hex.len() != 64 {
            return Err(err());
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16).ok_or_else(err);
            *byte = u8::try_from(digit(pair[0])? << 4 | digit(pair[1])?).map_err(|_| err())?;
        }
        Ok(Sha256(out))
    }
}

impl Serialize for Sha256 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sha256, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Read size for hashing files: large enough that syscalls vanish from the
/// profile, small enough to stay in L2 cache.
pub const READ_BUF_SIZE: usize = 1 << 20;

/// The result of hashing a stream: its SHA-256 and its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// The digest.
    pub sha256: Sha256,
    /// Number of bytes hashed.
    pub size: u64,
}

/// The suite's one read-and-hash loop: feeds everything `reader` yields
/// into `hasher`, `buf_size` bytes (at least 4 KiB) at a time, and returns
/// how many bytes that was.
fn feed<R: Read>(mut reader: R, hasher: &mut Hasher, buf_size: usize) -> io::Result<u64> {
    let mut buf = vec![0u8; buf_size.max(4096)];
    let mut size = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(size),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// Hashes everything `reader` yields, `buf_size` bytes at a time.
pub fn hash_reader<R: Read>(reader: R, buf_size: usize) -> io::Result<FileDigest> {
    let mut hasher = Hasher::new();
    let size = feed(reader, &mut hasher, buf_size)?;
    Ok(FileDigest {
        sha256: Sha256::finish(hasher),
        size,
    })
}

/// Hashes a file by streaming it. Errors carry the path.
pub fn hash_file(path: &Path) -> io::Result<FileDigest> {
    hash_file_counted(path, &AtomicU64::new(0))
}

/// [`hash_file`], adding every byte read to `bytes` as it goes.
fn hash_file_counted(path: &Path, bytes: &AtomicU64) -> io::Result<FileDigest> {
    let with_path = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(with_path)?;
    // A hint only: read-ahead helps a single sequential pass; failure is harmless.
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
    let reader = CountingReader { inner: file, bytes };
    hash_reader(reader, READ_BUF_SIZE).map_err(with_path)
}

/// Hashes many files in parallel on rayon's pool (`RAYON_NUM_THREADS` sets
/// its size), each file streamed once. Results come back in input order.
pub fn hash_files_parallel(paths: &[PathBuf]) -> Vec<io::Result<FileDigest>> {
    hash_files_counted(paths, &HashCounters::default())
}

/// Running totals of a parallel hash, for a progress display that reads
/// them from another thread: files finished and bytes read so far.
#[derive(Debug, Default)]
pub struct HashCounters {
    /// Files finished (hashed or failed).
    pub files: AtomicU64,
    /// Bytes read so far, over all files.
    pub bytes: AtomicU64,
}

/// [`hash_files_parallel`], counting files and bytes in `counters` as it
/// goes (rig-check's progress line reads them).
pub fn hash_files_counted<P: AsRef<Path> + Sync>(
    paths: &[P],
    counters: &HashCounters,
) -> Vec<io::Result<FileDigest>> {
    paths
        .par_iter()
        .map(|p| {
            let result = hash_file_counted(p.as_ref(), &counters.bytes);
            counters.files.fetch_add(1, Ordering::Relaxed);
            result
        })
        .collect()
}

/// A reader that adds every byte it yields to a shared counter.
struct CountingReader<'a, R> {
    inner: R,
    bytes: &'a AtomicU64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A `Write` adapter that hashes every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`; nothing hashed yet.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
            size: 0,
        }
    }

    /// Wraps `inner`, which already holds the bytes `prefix` yields: they
    /// are hashed (read once, not written) and counted, so writing the rest
    /// through it ends with the digest of the whole (a resumed upload).
    pub fn with_prefix<R: Read>(inner: W, prefix: R) -> io::Result<Self> {
        let mut w = HashingWriter::new(inner);
        w.size = feed(prefix, &mut w.hasher, READ_BUF_SIZE)?;
        Ok(w)
    }

    /// Bytes accepted so far.
    pub fn bytes_written(&self) -> u64 {
        self.size
    }

    /// The inner writer, e.g. to fsync the file behind it.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer, read-only.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Ends hashing; returns the inner writer and the digest of all bytes written.
    pub fn finish(self) -> (W, FileDigest) {
        let digest = FileDigest {
            sha256: Sha256::finish(self.hasher),
            size: self.size,
        };
        (self.inner, digest)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Hash only what the inner writer accepted, so the digest always
        // describes exactly the bytes that reached it.
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` adapter that hashes every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`; nothing hashed yet.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
            size: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.size
    }

    /// Ends hashing; returns the inner reader and the digest of all bytes read.
    pub fn finish(self) -> (R, FileDigest) {
        let digest = FileDigest {
            sha256: Sha256::finish(self.hasher),
            size: self.size,
        };
        (self.inner, digest)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn known_vectors() {
        assert_eq!(
            hash_reader(&b"abc"[..], 4096).unwrap().sha256.to_string(),
            ABC
        );
        let empty = hash_reader(&b""[..], 4096).unwrap();
        assert_eq!((empty.sha256.to_string().as_str(), empty.size), (EMPTY, 0));
    }

    #[test]
    fn adapters_agree_with_reader() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let direct = hash_reader(&data[..], 1000).unwrap();

        let mut w = HashingWriter::new(Vec::new());
        for chunk in data.chunks(4097) {
            w.write_all(chunk).unwrap();
        }
        let (copy, from_writer) = w.finish();
        assert_eq!(copy, data);
        assert_eq!(from_writer, direct);

        let mut r = HashingReader::new(&data[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish().1, direct);
    }

    #[test]
    fn parallel_hashing_matches_known_digests_in_input_order() {
        // FIPS 180-2's vectors: "abc", the empty string and a million 'a's
        // (close to READ_BUF_SIZE, so a chunking slip would show).
        const MILLION_A: &str = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        let dir = tempfile::tempdir().unwrap();
        let files: [(&str, Vec<u8>); 3] = [
            ("million.bin", vec![b'a'; 1_000_000]),
            ("abc.bin", b"abc".to_vec()),
            ("empty.bin", Vec::new()),
        ];
        let mut paths: Vec<PathBuf> = files
            .iter()
            .map(|(name, data)| {
                let p = dir.path().join(name);
                std::fs::write(&p, data).unwrap();
                p
            })
            .collect();
        paths.insert(1, dir.path().join("missing.bin"));
        let results = hash_files_parallel(&paths);
        assert_eq!(results.len(), 4);
        let got = |i: usize| results[i].as_ref().map(|d| (d.sha256.to_string(), d.size));
        assert_eq!(got(0).unwrap(), (MILLION_A.to_string(), 1_000_000));
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("missing.bin"), "{err}");
        assert_eq!(got(2).unwrap(), (ABC.to_string(), 3));
        assert_eq!(got(3).unwrap(), (EMPTY.to_string(), 0));
    }

    #[test]
    fn hex_rule() {
        let abc: Sha256 = ABC.parse().unwrap();
        assert_eq!(abc.to_string(), ABC);
        assert_eq!(abc, Sha256::of(b"abc"));
        // One rule in: either case, whitespace around ignored; lowercase out.
        assert_eq!(ABC.to_uppercase().parse(), Ok(abc));
        assert_eq!(format!(" {ABC}\n").parse(), Ok(abc));
        assert!(ABC[1..].parse::<Sha256>().is_err());
        assert!(format!("{}g", &ABC[1..]).parse::<Sha256>().is_err());
        assert!(format!("{ABC}0").parse::<Sha256>().is_err());
        assert!("é".repeat(32).parse::<Sha256>().is_err());
        let json = serde_json::to_string(&abc).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), abc);
        assert!(serde_json::from_str::<Sha256>("\"xyz\"").is_err());
    }

    #[test]
    fn bytes_debug_and_equality() {
        let abc: Sha256 = ABC.parse().unwrap();
        assert_eq!(Sha256::from_bytes(*abc.as_bytes()), abc);
        assert_eq!(abc.as_bytes()[..3], [0xba, 0x78, 0x16]);
        assert_eq!(format!("{abc:?}"), format!("Sha256({ABC})"));
        // Text of either case names the same digest, also as a map key.
        let upper: Sha256 = ABC.to_uppercase().parse().unwrap();
        let set: std::collections::HashSet<Sha256> = [abc, upper].into_iter().collect();
        assert_eq!(set.len(), 1);
        assert_eq!(upper.to_string(), ABC);
    }

    #[test]
    fn parse_error_says_what_was_given() {
        let e = "xyz".parse::<Sha256>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"must be a SHA-256 digest, 64 hex characters, got "xyz""#
        );
        let long = "z".repeat(500);
        let e = long.parse::<Sha256>().unwrap_err();
        assert_eq!(e.given, "z".repeat(80), "cut to 80 characters");
        assert!("".parse::<Sha256>().is_err());
        assert!(format!("+{}", &ABC[1..]).parse::<Sha256>().is_err());
        assert!(
            format!("{} {}", &ABC[..32], &ABC[32..])
                .parse::<Sha256>()
                .is_err()
        );
    }

    #[test]
    fn a_prefix_continues_the_digest() {
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 241) as u8).collect();
        let (head, rest) = data.split_at(20_001);
        let mut w = HashingWriter::with_prefix(Vec::new(), head).unwrap();
        assert_eq!(w.bytes_written(), head.len() as u64);
        w.write_all(rest).unwrap();
        let (written, digest) = w.finish();
        assert_eq!(written, rest, "the prefix is hashed, not written");
        assert_eq!(digest, hash_reader(&data[..], 4096).unwrap());
    }

    /// Accepts at most three bytes per write.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_writer_hashes_only_what_its_inner_writer_took() {
        let mut w = HashingWriter::new(Trickle(Vec::new()));
        assert_eq!(w.write(b"abcdef").unwrap(), 3);
        assert_eq!(w.bytes_written(), 3);
        assert_eq!(w.get_ref().0, b"abc");
        let (_, digest) = w.finish();
        assert_eq!(digest.sha256.to_string(), ABC);
    }

    #[test]
    fn counted_hashing_counts_files_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, vec![i as u8; 70_000 * i]).unwrap();
                p
            })
            .collect();
        let counters = HashCounters::default();
        let got = hash_files_counted(&paths, &counters);
        for (p, r) in paths.iter().zip(&got) {
            assert_eq!(r.as_ref().unwrap(), &hash_file(p).unwrap());
        }
        assert_eq!(counters.files.load(Ordering::Relaxed), 4);
        assert_eq!(counters.bytes.load(Ordering::Relaxed), 70_000 * (1 + 2 + 3));
    }
}
