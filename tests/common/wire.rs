//! HTTP and multipart helpers for the suite's small test servers.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn respond(stream: &mut TcpStream, status: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Splits a multipart body into (name, content) in order.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    let mut parts = Vec::new();
    for w in starts.windows(2) {
        let part = &body[w[0] + d.len() + 2..w[1] - 2]; // skip "\r\n", drop "\r\n" before next
        let split = part.windows(4).position(|x| x == b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&part[..split]).to_string();
        let name = headers
            .split("name=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("")
            .to_string();
        parts.push((name, part[split + 4..].to_vec()));
    }
    parts
}

/// One HTTP/1.1 request, read whole.
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    /// The body (`Content-Length` bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// The multipart boundary of its `Content-Type`, or "".
    pub fn boundary(&self) -> String {
        self.headers
            .get("content-type")
            .and_then(|v| v.split("boundary=").nth(1))
            .unwrap_or("")
            .trim_matches('"')
            .to_string()
    }
}

/// Reads a request line and headers: (method, target, headers with
/// lowercased names).
pub fn read_head(
    reader: &mut impl std::io::BufRead,
) -> std::io::Result<(String, String, HashMap<String, String>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut words = line.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let path = words.next().unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Ok((method, path, headers))
}

/// Reads a request to the end of its body, answering `Expect:
/// 100-continue` first (as Flask's server does).
pub fn read_request(stream: &mut TcpStream) -> std::io::Result<Request> {
    use std::io::Read;
    let mut reader = std::io::BufReader::new(stream.try_clone()?);
    let (method, path, headers) = read_head(&mut reader)?;
    if headers
        .get("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body)?;
    Ok(Request {
        method,
        path,
        headers,
        body,
    })
}

/// A reply's head (status line and header lines, without the blank line):
/// the status and the headers, names lower-cased, values trimmed.
pub fn reply_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}
