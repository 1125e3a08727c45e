//! The test harness's own fault proxy must do exactly what it claims, or the
//! fault tests built on it prove nothing.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use common::proxy::{Fault, Proxy};

/// An upstream that reads everything until EOF and sends it back at the end.
fn collecting_upstream() -> (std::net::SocketAddr, thread::JoinHandle<Vec<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..3 {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            got.push(buf);
        }
        got
    });
    (addr, h)
}

#[test]
fn proxy_passes_cuts_and_flips() {
    let (up, handle) = collecting_upstream();
    let proxy = Proxy::start(up, vec![Fault::CutAfter(1000), Fault::FlipAt(5)]);
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        let mut s = TcpStream::connect(proxy.addr()).unwrap();
        let _ = s.write_all(&data);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }
    let got = handle.join().unwrap();
    assert_eq!(got[0], data[..1000], "cut after exactly 1000 bytes");
    let mut flipped = data.clone();
    flipped[5] ^= 0xFF;
    assert_eq!(got[1], flipped, "exactly byte 5 flipped");
    assert_eq!(got[2], data, "later connections pass untouched");
    assert_eq!(proxy.upstream_bytes(), vec![1000, 5000, 5000]);
}

#[test]
fn proxy_stalls_until_released() {
    let (up, handle) = collecting_upstream();
    let proxy = Proxy::start(up, vec![Fault::StallAfter(100)]);
    let data = vec![7u8; 10_000];
    let writer = {
        let addr = proxy.addr();
        let data = data.clone();
        thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&data).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        })
    };
    while !proxy.stalled() {
        thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(
        proxy.upstream_bytes(),
        vec![100],
        "held at exactly 100 bytes"
    );
    proxy.release();
    writer.join().unwrap();
    // Two more connections so the upstream's three accepts complete.
    for _ in 0..2 {
        let s = TcpStream::connect(proxy.addr()).unwrap();
        s.shutdown(std::net::Shutdown::Both).unwrap();
    }
    let got = handle.join().unwrap();
    assert_eq!(got[0], data, "everything arrives once released");
}
