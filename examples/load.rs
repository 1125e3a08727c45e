//! Holds many slow, idle and hostile clients against a running rig-receive
//! and measures what others get meanwhile (issue 17). Used by
//! `scripts/bench-load`; loopback only.
//!
//! Usage: cargo run --release --example load -- ADDR PID FILE RECORDING_PATH
//!        [IDLE TRICKLE SLOW_BODY SLOW_READ]
//!
//! Opens IDLE silent connections, TRICKLE connections that send request
//! headers one byte a second, SLOW_BODY uploads that send their body one
//! byte a second and SLOW_READ downloads of RECORDING_PATH that are never
//! read; then, with all of them held, times 200 health requests (one every
//! 20 ms) while uploading FILE once. Prints health p50/p99/max, the upload's
//! time and the server's (PID) peak fds, threads and RSS.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use soccer_rig::base::checksum::hash_file;

/// Connects `n` clients that each send `first`.
fn open(addr: &str, n: usize, first: &str) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} of {n} to {addr}: {e}"));
            s.write_all(first.as_bytes()).expect("send the first bytes");
            s
        })
        .collect()
}

/// One health request on a new connection; its latency, or why it failed.
fn health(addr: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: rig\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    if !reply.starts_with("HTTP/1.1 200") {
        return Err(format!("reply {:?}", reply.lines().next()));
    }
    Ok(started.elapsed())
}

/// Uploads `file` as a multipart form with curl-like framing; its time.
fn upload(addr: &str, file: &Path) -> Result<Duration, String> {
    let digest = hash_file(file).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut head = String::new();
    for (k, v) in [
        ("session_id", "GAME_20240315_150000"),
        ("camera_id", "CAM_C"),
        ("checksum", digest.sha256.to_string().as_str()),
    ] {
        head += &format!("--B\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n");
    }
    head += "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.mp4\"\r\n\
             Content-Type: video/mp4\r\n\r\n";
    let tail = "\r\n--B--\r\n";
    let len = head.len() as u64 + digest.size + tail.len() as u64;
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        s,
        "POST /api/v1/upload HTTP/1.1\r\nHost: rig\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {len}\r\n\r\n{head}"
    )
    .map_err(|e| e.to_string())?;
    let mut f = std::fs::File::open(file).map_err(|e| e.to_string())?;
    std::io::copy(&mut f, &mut s).map_err(|e| e.to_string())?;
    s.write_all(tail.as_bytes()).map_err(|e| e.to_string())?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
    if !reply.contains("\"checksum_verified\":true") {
        return Err(format!("reply {reply:?}"));
    }
    Ok(started.elapsed())
}

/// (open fds, threads, peak RSS in KiB) of process `pid`.
fn server_use(pid: &str) -> (usize, String, String) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map_or("?".to_string(), |v| v.trim().to_string())
    };
    (fds, field("Threads:"), field("VmHWM:"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: load ADDR PID FILE RECORDING_PATH [IDLE TRICKLE SLOW_BODY SLOW_READ]");
        return ExitCode::from(2);
    }
    let (addr, pid, file, recording) = (&args[0], &args[1], Path::new(&args[2]), &args[3]);
    let count =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (idle, trickle, slow_body, slow_read) =
        (count(4, 1000), count(5, 200), count(6, 64), count(7, 64));

    let _idle = open(addr, idle, "");
    let mut slow = open(addr, trickle, "G");
    slow.extend(open(
        addr,
        slow_body,
        "POST /api/v1/upload HTTP/1.1\r\nHost: rig\r\nContent-Type: multipart/form-data; \
         boundary=B\r\nContent-Length: 1000000\r\n\r\n--B\r\n",
    ));
    let _readers = open(
        addr,
        slow_read,
        &format!("GET {recording} HTTP/1.1\r\nHost: rig\r\n\r\n"),
    );
    thread::spawn(move || {
        loop {
            for s in &mut slow {
                let _ = s.write(b"x");
            }
            thread::sleep(Duration::from_secs(1));
        }
    });
    thread::sleep(Duration::from_secs(2));
    let held = server_use(pid);

    let probe_addr = addr.clone();
    let probes = thread::spawn(move || {
        (0..200)
            .map(|_| {
                thread::sleep(Duration::from_millis(20));
                health(&probe_addr)
            })
            .collect::<Vec<_>>()
    });
    let uploaded = upload(addr, file);
    let results = probes.join().expect("the probe thread");
    let after = server_use(pid);

    let mut times: Vec<Duration> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().copied())
        .collect();
    let failed = results.len() - times.len();
    times.sort();
    println!(
        "held: {idle} idle + {trickle} trickling + {slow_body} slow-body + {slow_read} slow-reader clients"
    );
    if times.is_empty() {
        println!("health: every probe failed ({:?})", results.first());
        return ExitCode::FAILURE;
    }
    println!(
        "health: {} ok, {failed} failed; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );
    match &uploaded {
        Ok(t) => println!("upload of {}: {:.2} s", file.display(), t.as_secs_f64()),
        Err(e) => println!("upload of {}: FAILED: {e}", file.display()),
    }
    println!(
        "server while held: {} fds, {} threads, peak RSS {}",
        held.0, held.1, held.2
    );
    println!(
        "server after the probes and the upload: {} fds, {} threads, peak RSS {}",
        after.0, after.1, after.2
    );
    if failed > 0 || uploaded.is_err() {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
