//! `sha256sum`-style output using soccer-rig's streaming, parallel hashing;
//! the throughput goes to stderr. Used by `scripts/bench-hash`.
//!
//! Usage: cargo run --release --example sha256 -- FILE...

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use soccer_rig::base::checksum::hash_files_parallel;

fn main() -> ExitCode {
    let paths: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        eprintln!("usage: sha256 FILE...");
        return ExitCode::from(2);
    }
    let started = Instant::now();
    let results = hash_files_parallel(&paths);
    let secs = started.elapsed().as_secs_f64();
    let mut bytes = 0u64;
    let mut failed = false;
    for (path, result) in paths.iter().zip(results) {
        match result {
            Ok(d) => {
                bytes += d.size;
                println!("{}  {}", d.sha256, path.display());
            }
            Err(e) => {
                eprintln!("sha256: {e}");
                failed = true;
            }
        }
    }
    eprintln!(
        "hashed {} file(s), {:.2} GiB in {:.3} s: {:.2} GB/s",
        paths.len(),
        bytes as f64 / (1u64 << 30) as f64,
        secs,
        bytes as f64 / secs / 1e9
    );
    ExitCode::from(u8::from(failed))
}
