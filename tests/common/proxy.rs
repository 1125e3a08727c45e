//! A fault-injecting TCP proxy for tests: sits between a client and a server
//! on loopback and, per connection, passes bytes through, cuts the connection
//! after N client bytes, or flips one client byte in transit.
//!
//! Faults are consumed one per accepted connection, in order; once the list is
//! empty every further connection passes through untouched. The proxy counts
//! the bytes each connection sent upstream so tests can assert how much a
//! retry or a resume really sent, and keeps the last [`TAIL_BYTES`] of each
//! so tests can find where a request ends in the stream (its closing
//! multipart boundary) and cut exactly there.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What to do to one connection's client-to-server bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Forward this many bytes, then close both sides.
    CutAfter(u64),
    /// XOR the byte at this offset of the upstream stream with 0xFF.
    FlipAt(u64),
    /// Forward this many bytes, then hold the rest until [`Proxy::release`]
    /// (or the proxy is dropped): a transfer frozen mid-body, so a test can
    /// kill a process at a known point.
    StallAfter(u64),
}

/// How much of each connection's upstream stream [`Proxy::upstream_tail`]
/// keeps: more than a confirm request and a multipart tail, far less than a
/// clip.
pub const TAIL_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    faults: Mutex<VecDeque<Fault>>,
    /// Client-to-server bytes forwarded, one entry per connection.
    upstream_bytes: Mutex<Vec<u64>>,
    /// The last [`TAIL_BYTES`] forwarded upstream, one entry per connection.
    upstream_tails: Mutex<Vec<Vec<u8>>>,
    stop: AtomicBool,
    release: AtomicBool,
    stalled: AtomicBool,
    cut: AtomicBool,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream`.
    pub fn start(upstream: SocketAddr, faults: Vec<Fault>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            faults: Mutex::new(faults.into()),
            ..Shared::default()
        });
        let s = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let fault = s.faults.lock().unwrap().pop_front().unwrap_or(Fault::Pass);
                let index = {
                    let mut v = s.upstream_bytes.lock().unwrap();
                    v.push(0);
                    s.upstream_tails.lock().unwrap().push(Vec::new());
                    v.len() - 1
                };
                let s2 = Arc::clone(&s);
                thread::spawn(move || serve(client, upstream, fault, index, &s2));
            }
        });
        Proxy { addr, shared }
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Client-to-server bytes forwarded per connection so far.
    pub fn upstream_bytes(&self) -> Vec<u64> {
        self.shared.upstream_bytes.lock().unwrap().clone()
    }

    /// The last [`TAIL_BYTES`] (or fewer) client-to-server bytes of
    /// connection `index`; they end at `upstream_bytes()[index]`.
    pub fn upstream_tail(&self, index: usize) -> Vec<u8> {
        self.shared.upstream_tails.lock().unwrap()[index].clone()
    }

    /// Lets stalled connections go on.
    pub fn release(&self) {
        self.shared.release.store(true, Ordering::SeqCst);
    }

    /// Closes stalled connections without forwarding what they still hold:
    /// what a network cut looks like to both ends.
    pub fn cut_stalled(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
    }

    /// True once some connection is stalled at its limit.
    pub fn stalled(&self) -> bool {
        self.shared.stalled.load(Ordering::SeqCst)
    }

    /// Adds faults for connections still to come.
    pub fn push_faults(&self, faults: &[Fault]) {
        self.shared.faults.lock().unwrap().extend(faults);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve(client: TcpStream, upstream: SocketAddr, fault: Fault, index: usize, s: &Shared) {
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let (Ok(client_r), Ok(server_w)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Server-to-client: plain copy until either side closes.
    let mut server_r = server;
    let mut client_w = client;
    let down = thread::spawn(move || {
        let _ = std::io::copy(&mut server_r, &mut client_w);
        let _ = client_w.shutdown(Shutdown::Both);
    });
    copy_up(client_r, server_w, fault, index, s);
    let _ = down.join();
}

/// Client-to-server copy applying the fault.
fn copy_up(mut from: TcpStream, mut to: TcpStream, fault: Fault, index: usize, s: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent: u64 = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &mut buf[..n];
        if let Fault::StallAfter(limit) = fault
            && sent + n as u64 > limit
            && !s.release.load(Ordering::SeqCst)
        {
            // Forward up to the limit, then wait to be released.
            let head = limit.saturating_sub(sent) as usize;
            if to.write_all(&chunk[..head]).is_err() {
                break;
            }
            sent += head as u64;
            forwarded(s, index, sent, &chunk[..head]);
            if !hold_until_released(s) {
                break;
            }
            chunk = &mut buf[head..n];
        }
        let chunk = cut_or_flip(fault, sent, chunk);
        if to.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len() as u64;
        forwarded(s, index, sent, chunk);
        if matches!(fault, Fault::CutAfter(limit) if sent >= limit) {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Marks the connection stalled and waits until it is released (true) or
/// to be cut, or the proxy stops (false).
fn hold_until_released(s: &Shared) -> bool {
    s.stalled.store(true, Ordering::SeqCst);
    while !s.release.load(Ordering::SeqCst) && !s.stop.load(Ordering::SeqCst) {
        if s.cut.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    !(s.cut.load(Ordering::SeqCst) || s.stop.load(Ordering::SeqCst))
}

/// `chunk`, the next bytes after `sent`, as `fault` lets them through:
/// shortened to a cut's limit, or with the byte at a flip's offset flipped.
fn cut_or_flip(fault: Fault, sent: u64, chunk: &mut [u8]) -> &mut [u8] {
    match fault {
        Fault::CutAfter(limit) => {
            let room = limit.saturating_sub(sent) as usize;
            let keep = room.min(chunk.len());
            &mut chunk[..keep]
        }
        Fault::FlipAt(at) if at >= sent && at < sent + chunk.len() as u64 => {
            chunk[(at - sent) as usize] ^= 0xFF;
            chunk
        }
        _ => chunk,
    }
}

/// Records that `chunk` went upstream on connection `index`, `sent` in all.
fn forwarded(s: &Shared, index: usize, sent: u64, chunk: &[u8]) {
    s.upstream_bytes.lock().unwrap()[index] = sent;
    let mut tails = s.upstream_tails.lock().unwrap();
    let tail = &mut tails[index];
    tail.extend_from_slice(chunk);
    if tail.len() > TAIL_BYTES {
        let extra = tail.len() - TAIL_BYTES;
        tail.drain(..extra);
    }
}
