//! A pull-based `multipart/form-data` reader over a request body, built on
//! multiparty's sans-IO decoder.
//!
//! The decoder never reads by itself: it is fed [`Bytes`] and hands back
//! events. [`FormStream::next`] does the feeding: it reads the body in
//! chunks of at most [`CHUNK`] bytes, so memory stays constant whatever the
//! size of the file part, and turns everything that can go wrong with a
//! body (truncation, a silent or slow client, a body over its cap, a
//! malformed form) into one [`FormError`].

use std::io::{self, Read};
use std::time::Instant;

use bytes::Bytes;
use multiparty::server::sans_io::{FormData, Read as Step};

/// Largest read from the body: one read, one write, one hash update.
pub const CHUNK: usize = 1 << 20;

/// Most bytes fed to the decoder without it producing an event before it is
/// refused more (one read of up to [`CHUNK`] may come on top). Part data
/// always produces events, so only an endless preamble or part header
/// section reaches this; without the cap, the decoder would keep joining
/// buffers while it waits for the end of the headers.
pub const MAX_BYTES_WITHOUT_EVENT: u64 = 64 * 1024;

/// The beginning of a part: what its headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, if any.
    pub filename: Option<String>,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// One step through the form.
#[derive(Debug)]
pub enum Event {
    /// A new part starts.
    Part(PartHead),
    /// Bytes of the current part (never empty).
    Data(Bytes),
    /// The current part is complete.
    PartEnd,
    /// The closing boundary: the form is complete.
    End,
}

/// Why the form could not be read to its end.
#[derive(Debug)]
pub enum FormError {
    /// Not valid multipart (bad boundary suffix, part headers, ...).
    Malformed(String),
    /// The body ended before the closing boundary.
    Truncated {
        /// Body bytes received.
        received: u64,
    },
    /// The body is longer than the cap.
    TooLarge {
        /// The cap, bytes.
        cap: u64,
    },
    /// The deadline for the whole request passed.
    Deadline,
    /// The client sent nothing for the socket's read timeout.
    Stalled,
    /// Reading the body failed (connection reset, ...).
    Io(io::Error),
}

impl std::fmt::Display for FormError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormError::Malformed(m) => f.write_str(m),
            FormError::Truncated { received } => write!(
                f,
                "the body ended after {received} bytes, before the multipart closing boundary"
            ),
            FormError::TooLarge { cap } => write!(f, "the body is longer than {cap} bytes"),
            FormError::Deadline => f.write_str("the request took longer than its deadline"),
            FormError::Stalled => f.write_str("the client sent nothing for the stall timeout"),
            FormError::Io(e) => write!(f, "reading the body failed: {e}"),
        }
    }
}

impl std::error::Error for FormError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FormError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Reads a multipart body as a sequence of [`Event`]s.
pub struct FormStream<R> {
    reader: R,
    form: FormData,
    pending: Option<Bytes>,
    buf: Vec<u8>,
    received: u64,
    cap: u64,
    deadline: Instant,
    since_event: u64,
    body_done: bool,
}

impl<R: Read> FormStream<R> {
    /// Decodes `reader` with `boundary`; fails once more than `cap` body
    /// bytes arrive or when a read starts after `deadline`.
    pub fn new(reader: R, boundary: &str, cap: u64, deadline: Instant) -> FormStream<R> {
        FormStream {
            reader,
            form: FormData::new(boundary),
            pending: None,
            buf: vec![0u8; CHUNK],
            received: 0,
            cap,
            deadline,
            since_event: 0,
            body_done: false,
        }
    }

    /// Body bytes read so far (multipart framing included).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The next event.
    pub fn next_event(&mut self) -> Result<Event, FormError> {
        // How often in a row the decoder refused bytes, or asked for bytes
        // after the body ended. It asks spuriously once after joining its
        // two buffers (part headers split across reads), and the next read
        // makes progress; a few in a row means there is nothing left.
        let mut refused = 0;
        loop {
            let step = self
                .form
                .read()
                .map_err(|e| FormError::Malformed(format!("multipart body: {e}")))?;
            let event = match step {
                Step::NeedsWrite => {
                    self.feed(&mut refused)?;
                    continue;
                }
                Step::None => continue,
                Step::Part(b) if b.is_empty() => continue,
                Step::NewPart { headers } => part_head(&headers)?,
                Step::Part(b) => Event::Data(b),
                Step::PartEof => Event::PartEnd,
                Step::Eof => Event::End,
            };
            self.since_event = 0;
            return Ok(event);
        }
    }

    /// Gives the decoder the next bytes it asked for: what it refused last
    /// time, or the next read of the body. `refused` counts the times in a
    /// row it got nothing or took nothing.
    fn feed(&mut self, refused: &mut u32) -> Result<(), FormError> {
        let Some(bytes) = self.next_chunk(refused)? else {
            return Ok(());
        };
        // The decoder wants more although it already holds this much
        // without producing anything: an endless preamble or part header
        // section.
        if self.since_event > MAX_BYTES_WITHOUT_EVENT {
            return Err(FormError::Malformed(format!(
                "multipart body: no part boundary or part headers end \
                 within {MAX_BYTES_WITHOUT_EVENT} bytes"
            )));
        }
        let len = bytes.len() as u64;
        match self.form.write(bytes) {
            Ok(()) => {
                *refused = 0;
                self.since_event += len;
            }
            Err(back) => {
                self.pending = Some(back);
                *refused += 1;
                if *refused > 8 {
                    return Err(FormError::Malformed(
                        "multipart decoder made no progress".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The chunk to give the decoder: the one it refused last time, or the
    /// next read of the body; `None` when there is none this time (the body
    /// just ended, or it ended and the decoder still wants more).
    fn next_chunk(&mut self, refused: &mut u32) -> Result<Option<Bytes>, FormError> {
        match self.pending.take() {
            Some(b) => Ok(Some(b)),
            None if self.body_done => {
                *refused += 1;
                if *refused > 4 {
                    return Err(FormError::Truncated {
                        received: self.received,
                    });
                }
                Ok(None)
            }
            None => {
                let chunk = self.fill()?;
                if chunk.is_none() {
                    self.body_done = true;
                }
                Ok(chunk)
            }
        }
    }

    /// Reads the next chunk of the body; `None` at its end.
    fn fill(&mut self) -> Result<Option<Bytes>, FormError> {
        if Instant::now() > self.deadline {
            return Err(FormError::Deadline);
        }
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => return Ok(None),
                Ok(n) => {
                    self.received += n as u64;
                    if self.received > self.cap {
                        return Err(FormError::TooLarge { cap: self.cap });
                    }
                    return Ok(Some(Bytes::copy_from_slice(&self.buf[..n])));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(FormError::Stalled);
                }
                Err(e) => return Err(FormError::Io(e)),
            }
        }
    }
}

/// The boundary of a `multipart/form-data` Content-Type, or why there is none.
/// `Ok(None)` means the type is not `multipart/form-data` at all.
pub fn boundary_of(content_type: &str) -> Result<Option<String>, String> {
    let mut params = content_type.split(';');
    let mime = params.next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Ok(None);
    }
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("boundary") {
            let v = v.trim().trim_matches('"');
            // RFC 2046: 1 to 70 characters.
            if v.is_empty() || v.len() > 70 {
                return Err(format!(
                    "multipart boundary must be 1 to 70 characters, got {}",
                    v.len()
                ));
            }
            return Ok(Some(v.to_string()));
        }
    }
    Err("multipart/form-data Content-Type without a boundary parameter".into())
}

/// The event of a new part: its name, file name and type.
fn part_head(headers: &multiparty::headers::RawHeaders) -> Result<Event, FormError> {
    let h = headers.parse().map_err(|e| {
        FormError::Malformed(format!(
            "a part has no usable Content-Disposition: form-data; name=... ({e:?})"
        ))
    })?;
    Ok(Event::Part(PartHead {
        name: h.name,
        filename: h.filename,
        content_type: h.content_type,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    fn body(parts: &[(&str, &[u8])], boundary: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, data) in parts {
            b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        b
    }

    /// Collects (name, bytes) per part, reading through a reader that
    /// returns `step` bytes at a time, to cover every split of the boundary.
    fn decode(data: &[u8], step: usize) -> Result<Vec<(String, Vec<u8>)>, FormError> {
        struct Dribble<'a>(&'a [u8], usize);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut s = FormStream::new(Dribble(data, step), "XyZ", u64::MAX, later());
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            match s.next_event()? {
                Event::Part(h) => out.push((h.name, Vec::new())),
                Event::Data(b) => out.last_mut().unwrap().1.extend_from_slice(&b),
                Event::PartEnd => {}
                Event::End => return Ok(out),
            }
        }
    }

    #[test]
    fn every_read_size_gives_the_same_parts() {
        let file: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let data = body(&[("a", b"one"), ("file", &file), ("empty", b"")], "XyZ");
        for step in [1, 2, 3, 5, 7, 13, 64, 1000, 1 << 20] {
            let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 253) as u8).collect();
            let parts = decode(&body(&[("file", &big)], "XyZ"), step.max(4096)).unwrap();
            assert_eq!(parts[0].1, big, "big file, step {step}");
            let parts = decode(&data, step).unwrap_or_else(|e| panic!("step {step}: {e:?}"));
            assert_eq!(parts.len(), 3, "step {step}");
            assert_eq!(parts[0], ("a".into(), b"one".to_vec()));
            assert_eq!(parts[1].1, file, "step {step}");
            assert_eq!(parts[2], ("empty".into(), Vec::new()));
        }
    }

    #[test]
    fn truncation_is_an_error_at_every_cut() {
        let data = body(&[("a", b"one"), ("file", &[7u8; 300])], "XyZ");
        for cut in 0..data.len() - 2 {
            match decode(&data[..cut], 7) {
                Err(FormError::Truncated { received }) => assert_eq!(received, cut as u64),
                Err(FormError::Malformed(_)) => {}
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn endless_headers_are_refused_without_buffering() {
        let mut data = b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"; x=\"".to_vec();
        data.extend(std::iter::repeat_n(b'a', 1 << 20));
        match decode(&data, 4096) {
            Err(FormError::Malformed(m)) => assert!(m.contains("65536"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cap_is_enforced_while_streaming() {
        let data = body(&[("file", &[1u8; 10_000])], "XyZ");
        let mut s = FormStream::new(&data[..], "XyZ", 4096, later());
        let err = loop {
            match s.next_event() {
                Ok(Event::End) => panic!("passed the cap"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert!(matches!(err, FormError::TooLarge { cap: 4096 }), "{err:?}");
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary_of("multipart/form-data; boundary=abc").unwrap(),
            Some("abc".into())
        );
        assert_eq!(
            boundary_of("Multipart/Form-Data; charset=x; boundary=\"a b\"").unwrap(),
            Some("a b".into())
        );
        assert_eq!(boundary_of("application/json").unwrap(), None);
        assert!(boundary_of("multipart/form-data").is_err());
        assert!(boundary_of(&format!("multipart/form-data; boundary={}", "x".repeat(71))).is_err());
    }
}
