//! A server answering like the protocol's Python reference server (Flask),
//! as measured against it: upload 201 with `size_bytes`, a checksum
//! mismatch 400 `{"success": false, "error": "Checksum mismatch",
//! "expected", "calculated"}` without `message`, confirm 200 with
//! `checksum_sha256` and `size_bytes`, a bare health reply, and Flask's
//! HTML 404 for routes it does not have (the resume status).
//!
//! It reads every multipart body to its end and hashes the file part. It
//! can be told to answer the first N uploads with the 400 mismatch, as a
//! flipped bit on the Wi-Fi would.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{Value, json};

use super::wire::{Request, parse_multipart, read_request, respond, sha256_hex};

/// What one upload request carried.
#[derive(Debug, Clone)]
pub struct Received {
    /// The form's text fields.
    pub fields: HashMap<String, String>,
    /// The file part.
    pub file: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    fail_first: usize,
    uploads: Vec<Received>,
    /// `{session}_{camera}` -> (sha256, size).
    stored: HashMap<String, (String, u64)>,
}

/// The running server; it lives as long as the test process.
pub struct RefServer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl RefServer {
    /// Starts it; the first `fail_first` uploads get the 400 mismatch.
    pub fn start(fail_first: usize) -> RefServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            fail_first,
            ..Inner::default()
        }));
        let shared = Arc::clone(&inner);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = handle(stream, &shared);
                });
            }
        });
        RefServer { url, inner }
    }

    /// Every upload request so far, in order.
    pub fn uploads(&self) -> Vec<Received> {
        self.inner.lock().unwrap().uploads.clone()
    }

    /// What it holds for a recording: (sha256, size).
    pub fn stored(&self, rec: &str) -> Option<(String, u64)> {
        self.inner.lock().unwrap().stored.get(rec).cloned()
    }
}

fn handle(mut stream: TcpStream, shared: &Mutex<Inner>) -> std::io::Result<()> {
    let req = read_request(&mut stream)?;
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/api/v1/health") => respond(
            &mut stream,
            200,
            &json!({"status": "healthy", "service": "soccer-rig-server", "version": "1.0.0"}),
        ),
        ("POST", "/api/v1/upload") => upload(&mut stream, &req, shared),
        ("POST", "/api/v1/upload/confirm") => confirm(&mut stream, &req, shared),
        _ => html_404(&mut stream),
    }
}

fn upload(stream: &mut TcpStream, req: &Request, shared: &Mutex<Inner>) -> std::io::Result<()> {
    let mut got = Received {
        fields: HashMap::new(),
        file: Vec::new(),
    };
    for (name, content) in parse_multipart(&req.body, &req.boundary()) {
        if name == "file" {
            got.file = content;
        } else {
            got.fields
                .insert(name, String::from_utf8_lossy(&content).into_owned());
        }
    }
    let field = |k: &str| got.fields.get(k).cloned().unwrap_or_default();
    let (expected, rec) = (
        field("checksum"),
        format!("{}_{}", field("session_id"), field("camera_id")),
    );
    let calculated = sha256_hex(&got.file);
    let size = got.file.len() as u64;
    let mut inner = shared.lock().unwrap();
    inner.uploads.push(got);
    let flipped = inner.fail_first > 0;
    if flipped || calculated != expected {
        inner.fail_first = inner.fail_first.saturating_sub(1);
        drop(inner);
        let shown = if flipped { "0".repeat(64) } else { calculated };
        let body = json!({"success": false, "error": "Checksum mismatch",
                          "expected": expected, "calculated": shown});
        return respond(stream, 400, &body);
    }
    inner.stored.insert(rec.clone(), (calculated, size));
    drop(inner);
    let body = json!({"success": true, "message": "File uploaded successfully",
                      "file_path": format!("/data/{rec}.mp4"), "size_bytes": size});
    respond(stream, 201, &body)
}

fn confirm(stream: &mut TcpStream, req: &Request, shared: &Mutex<Inner>) -> std::io::Result<()> {
    let v: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let rec = format!(
        "{}_{}",
        v["session_id"].as_str().unwrap_or(""),
        v["camera_id"].as_str().unwrap_or("")
    );
    match shared.lock().unwrap().stored.get(&rec).cloned() {
        Some((sha, size)) => respond(
            stream,
            200,
            &json!({"success": true, "checksum_sha256": sha, "size_bytes": size}),
        ),
        None => respond(
            stream,
            404,
            &json!({"success": false, "error": "Recording not found"}),
        ),
    }
}

/// Flask's own 404 page, for a route it does not have.
fn html_404(stream: &mut TcpStream) -> std::io::Result<()> {
    use std::io::Write;
    let body = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n\
                <h1>Not Found</h1>\n<p>The requested URL was not found on the server.</p>\n";
    write!(
        stream,
        "HTTP/1.1 404 NOT FOUND\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}
