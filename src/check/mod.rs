//! rig-check's logic: the suite's auditor.
//!
//! Two questions, one answer format each:
//!
//! * [`server::check_server`]: "is every recording on this server intact,
//!   complete and accounted for?" Re-hashes every `recording.mp4` (in
//!   parallel, each file read once) against the digest stored at receive time
//!   and its manifest's `checksum.value`, checks completeness of sessions,
//!   panoramas and the processing queue, lists leftovers, and compares free
//!   space with `storage.min_free_space_gb`.
//! * [`node::check_node`]: "is this Pi ready to record and offload?"
//!   Pre-flight checks of storage, clock, temperature, capture source,
//!   ffmpeg, server reachability and the offload backlog.
//!
//! Every finding has a [`Status`]: PASS, WARN or FAIL. A report's status is
//! its worst finding; [`exit_code`] maps it to the suite's exit codes (WARN
//! fails only with `--strict`). Reports serialize to one JSON document with
//! stable keys ([`Report::to_json`]) or render as text for people
//! ([`Report::human`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::checksum::{self, FileDigest};
use crate::base::cli;
use crate::base::config::Config;
use crate::base::units::human_bytes;

pub mod node;
pub mod server;

/// How one check came out. Ordered: `Pass < Warn < Fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// All is well.
    Pass,
    /// Works, but someone should look (fails only under `--strict`).
    Warn,
    /// Broken: data at risk, or the node is not ready.
    Fail,
}

impl Status {
    /// `PASS`, `WARN` or `FAIL`, as printed for people.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }

    /// The worse of two.
    pub fn worst(self, other: Status) -> Status {
        self.max(other)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The exit code for a report's status: 0 when everything passed (or only
/// warned, unless `strict`), 1 otherwise.
pub fn exit_code(status: Status, strict: bool) -> u8 {
    match status {
        Status::Pass => cli::EXIT_OK,
        Status::Warn if !strict => cli::EXIT_OK,
        Status::Warn | Status::Fail => cli::EXIT_FAILURE,
    }
}

/// Why a check could not run at all (as opposed to finding problems, which
/// is a report with FAIL in it). Always a usage or configuration error.
#[derive(Debug)]
pub enum CheckError {
    /// The configuration points somewhere that does not exist or cannot be read.
    Setup(String),
    /// The configuration has a value the checks cannot interpret.
    Config(crate::base::config::ConfigError),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Setup(m) => f.write_str(m),
            CheckError::Config(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckError::Setup(_) => None,
            CheckError::Config(e) => Some(e),
        }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub enum Request {
    /// Audit the server's storage.
    Server(server::ServerOptions),
    /// Pre-flight a camera node.
    Node(node::NodeOptions),
}

/// The result of either check.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// From [`server::check_server`] (boxed: it is the larger one).
    Server(Box<server::ServerReport>),
    /// From [`node::check_node`].
    Node(node::NodeReport),
}

impl Report {
    /// The worst status in the report.
    pub fn status(&self) -> Status {
        match self {
            Report::Server(r) => r.status,
            Report::Node(r) => r.status,
        }
    }

    /// One pretty JSON document with stable keys, newline-terminated.
    pub fn to_json(&self) -> String {
        // Plain structs of strings, numbers and bools always serialize.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// The report for people.
    pub fn human(&self) -> String {
        match self {
            Report::Server(r) => r.human(),
            Report::Node(r) => r.human(),
        }
    }
}

/// The library entry point of rig-check: runs the requested check with a
/// loaded configuration (flags already applied).
pub fn run(config: &Config, request: &Request) -> Result<Report, CheckError> {
    match request {
        Request::Server(opts) => {
            server::check_server(&config.storage, opts).map(|r| Report::Server(Box::new(r)))
        }
        Request::Node(opts) => node::check_node(config, opts).map(Report::Node),
    }
}

/// Now, as manifests write times.
pub(crate) fn now_rfc3339() -> String {
    crate::base::manifest::format_time(jiff::Timestamp::now())
}

/// A duration in minutes for people: `95 min`, `3 h 20 min`.
pub fn human_minutes(minutes: f64) -> String {
    let m = minutes.max(0.0).floor() as u64;
    if m < 60 {
        format!("{m} min")
    } else {
        format!("{} h {} min", m / 60, m % 60)
    }
}

/// Files to hash with their sizes; [`hash_all`] reports progress against these totals.
pub(crate) struct HashJob {
    pub path: PathBuf,
    pub size: u64,
}

/// Hashes every job on rayon's pool (`RAYON_NUM_THREADS` sets its size),
/// each file read once, results in input order. With `progress`, a line on
/// stderr shows files and bytes done (the caller decides it is a TTY).
pub(crate) fn hash_all(jobs: &[HashJob], progress: bool) -> Vec<io::Result<FileDigest>> {
    let counters = checksum::HashCounters::default();
    let done = AtomicBool::new(false);
    let total_bytes: u64 = jobs.iter().map(|j| j.size).sum();
    let total_files = jobs.len() as u64;
    let paths: Vec<&Path> = jobs.iter().map(|j| j.path.as_path()).collect();
    std::thread::scope(|scope| {
        if progress && !jobs.is_empty() {
            scope.spawn(|| print_progress(&counters, &done, total_files, total_bytes));
        }
        let results = checksum::hash_files_counted(&paths, &counters);
        done.store(true, Ordering::Release);
        results
    })
}

/// Redraws one progress line on stderr until `done`, then erases it.
fn print_progress(
    c: &checksum::HashCounters,
    done: &AtomicBool,
    total_files: u64,
    total_bytes: u64,
) {
    use std::io::Write;
    let start = Instant::now();
    let mut stderr = io::stderr();
    while !done.load(Ordering::Acquire) {
        let bytes = c.bytes.load(Ordering::Relaxed);
        let files = c.files.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64().max(1e-3);
        let pct = if total_bytes > 0 {
            bytes as f64 * 100.0 / total_bytes as f64
        } else {
            100.0
        };
        let _ = write!(
            stderr,
            "\r\x1b[Khashing: {files}/{total_files} files, {} of {} ({pct:.0}%), {}/s",
            human_bytes(bytes),
            human_bytes(total_bytes),
            human_bytes((bytes as f64 / secs) as u64),
        );
        let _ = stderr.flush();
        // Sleep in small steps so the line disappears promptly when hashing ends.
        for _ in 0..5 {
            if done.load(Ordering::Acquire) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = write!(stderr, "\r\x1b[K");
    let _ = stderr.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_order_and_exit_codes() {
        assert_eq!(Status::Pass.worst(Status::Warn), Status::Warn);
        assert_eq!(Status::Fail.worst(Status::Warn), Status::Fail);
        assert_eq!(exit_code(Status::Pass, true), 0);
        assert_eq!(exit_code(Status::Warn, false), 0);
        assert_eq!(exit_code(Status::Warn, true), 1);
        assert_eq!(exit_code(Status::Fail, false), 1);
    }

    #[test]
    fn human_figures() {
        assert_eq!(human_minutes(95.7), "1 h 35 min");
        assert_eq!(human_minutes(42.0), "42 min");
    }

    #[test]
    fn hash_all_matches_hash_file_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let jobs: Vec<HashJob> = (0..5)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, vec![i as u8; 100_000 * i]).unwrap();
                HashJob {
                    path: p,
                    size: 100_000 * i as u64,
                }
            })
            .collect();
        let got = hash_all(&jobs, false);
        for (job, r) in jobs.iter().zip(got) {
            assert_eq!(r.unwrap(), checksum::hash_file(&job.path).unwrap());
        }
        let missing = hash_all(
            &[HashJob {
                path: dir.path().join("nope"),
                size: 0,
            }],
            false,
        );
        assert!(
            missing[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }
}
