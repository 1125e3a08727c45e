//! The upload request body: `multipart/form-data` streamed from disk with
//! an exact length.

use std::fs::File;
use std::io::{self, Read};

use super::error::AttemptError;
use super::progress::Progress;
use crate::base::checksum::Sha256;
use crate::base::protocol;

/// The upload request body: multipart/form-data with the text fields first
/// and the file part last, streamed from disk. Its length is exact before a
/// byte is sent (the head and tail are built in memory, the file's size is
/// known), so the request carries a `Content-Length`.
///
/// The file part yields exactly `size` bytes: a file that shrinks while
/// being sent fails the attempt (it is no longer the recording the manifest
/// describes) instead of sending a short body; one that grows is cut at the
/// manifest's size.
pub(super) struct MultipartBody {
    boundary: String,
    head: io::Cursor<Vec<u8>>,
    file: File,
    remaining: u64,
    tail: io::Cursor<Vec<u8>>,
    size: u64,
    /// The byte of the file the file part starts at (a resume).
    start: u64,
    sent: u64,
    progress: Progress,
    local_error: Option<AttemptError>,
}

impl MultipartBody {
    pub(super) fn new(
        fields: &[(&str, &str)],
        file_name: &str,
        file: File,
        size: u64,
        progress: Progress,
    ) -> MultipartBody {
        let boundary = make_boundary(fields);
        let mut head = Vec::new();
        for (name, value) in fields {
            head.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: video/mp4\r\n\r\n",
                protocol::field::FILE
            )
            .as_bytes(),
        );
        let tail = format!("\r\n--{boundary}--\r\n").into_bytes();
        MultipartBody {
            boundary,
            head: io::Cursor::new(head),
            file,
            remaining: size,
            tail: io::Cursor::new(tail),
            size,
            start: 0,
            sent: 0,
            progress,
            local_error: None,
        }
    }

    pub(super) fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// Makes the file part carry the bytes from `offset` on (the file is
    /// already positioned there); progress counts the skipped bytes as done.
    pub(super) fn resume_at(&mut self, offset: u64) {
        let offset = offset.min(self.size);
        self.start = offset;
        self.remaining = self.size - offset;
        self.sent = offset;
        self.progress.skip_to(offset);
    }

    /// Ends the progress display (the bar is cleared).
    pub(super) fn finish_progress(&self) {
        self.progress.finish();
    }

    /// The failure of the local file that stopped the body, if one did
    /// (ureq then only saw an I/O error).
    pub(super) fn take_local_error(&mut self) -> Option<AttemptError> {
        self.local_error.take()
    }

    /// Exact body length in bytes.
    pub(super) fn len(&self) -> u64 {
        self.head.get_ref().len() as u64
            + (self.size - self.start)
            + self.tail.get_ref().len() as u64
    }
}

/// A boundary no text field contains: 32 hex digits from the clock, the
/// process and the fields, re-derived in the (theoretical) case of a clash.
fn make_boundary(fields: &[(&str, &str)]) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut salt = 0u32;
    loop {
        let mut seed = Vec::new();
        seed.extend(nanos.to_le_bytes());
        seed.extend(std::process::id().to_le_bytes());
        seed.extend(salt.to_le_bytes());
        for (n, v) in fields {
            seed.extend(n.as_bytes());
            seed.extend(v.as_bytes());
        }
        let hex = Sha256::of(&seed).to_string();
        let boundary = format!("rig-upload-{}", &hex[..32]);
        if !fields.iter().any(|(_, v)| v.contains(&boundary)) {
            return boundary;
        }
        salt += 1;
    }
}

impl MultipartBody {
    /// Reads the next bytes of the file part (at most `remaining`), keeping
    /// a local failure for the attempt when the file shrank or failed.
    fn read_file_part(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = loop {
            match self.file.read(&mut buf[..want]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = match n {
            Ok(0) => {
                let msg = format!(
                    "the recording shrank while being sent: {} bytes missing of {}",
                    self.remaining, self.size
                );
                self.local_error = Some(AttemptError::fatal("file_changed", msg.clone()));
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
            }
            Ok(n) => n,
            Err(e) => {
                let kept = io::Error::new(e.kind(), e.to_string());
                self.local_error = Some(
                    AttemptError::fatal("file_unreadable", format!("reading the recording: {e}"))
                        .caused_by(kept),
                );
                return Err(e);
            }
        };
        self.remaining -= n as u64;
        self.sent += n as u64;
        self.progress.update(self.sent);
        Ok(n)
    }
}

impl Read for MultipartBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        if self.remaining > 0 {
            return self.read_file_part(buf);
        }
        self.tail.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn body_bytes(fields: &[(&str, &str)], data: &[u8]) -> (MultipartBody, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        fs::write(&p, data).unwrap();
        let f = File::open(&p).unwrap();
        let mut body = MultipartBody::new(
            fields,
            "S_CAM_C.mp4",
            f,
            data.len() as u64,
            Progress::new("x", data.len() as u64, false),
        );
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        (body, out)
    }

    #[test]
    fn a_resumed_body_carries_the_rest_and_its_length_is_exact() {
        use std::io::Seek;
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        fs::write(&p, &data).unwrap();
        let mut f = File::open(&p).unwrap();
        f.seek(io::SeekFrom::Start(7_000)).unwrap();
        let fields = [("session_id", "S"), ("offset", "7000")];
        let mut body = MultipartBody::new(
            &fields,
            "S_CAM_C.mp4",
            f,
            data.len() as u64,
            Progress::new("x", data.len() as u64, false),
        );
        body.resume_at(7_000);
        let len = body.len();
        let mut out = Vec::new();
        body.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, len);
        assert_eq!(
            body.sent,
            data.len() as u64,
            "progress counts resumed bytes"
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("name=\"offset\"\r\n\r\n7000\r\n"));
        let start = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let file_start = out[start + 4..]
            .windows(4)
            .rposition(|w| w == b"\r\n\r\n")
            .unwrap()
            + start
            + 8;
        assert_eq!(&out[file_start..file_start + 3_000], &data[7_000..]);
    }

    #[test]
    fn multipart_length_is_exact_and_fields_in_order() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let fields = [
            ("session_id", "S"),
            ("camera_id", "CAM_C"),
            ("checksum", "c"),
            ("manifest", "{}"),
        ];
        let (body, out) = body_bytes(&fields, &data);
        assert_eq!(out.len() as u64, body.len());
        let text = String::from_utf8_lossy(&out);
        let pos: Vec<usize> = [
            "\"session_id\"",
            "\"camera_id\"",
            "\"checksum\"",
            "\"manifest\"",
            "\"file\"",
        ]
        .iter()
        .map(|n| text.find(n).unwrap())
        .collect();
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{pos:?}");
        let b = body.boundary.clone();
        assert!(text.ends_with(&format!("\r\n--{b}--\r\n")));
        // the file bytes sit intact between the file part's headers and the tail
        let head_len = body.head.get_ref().len();
        assert_eq!(&out[head_len..head_len + data.len()], &data[..]);
    }

    #[test]
    fn shrinking_file_is_a_local_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.mp4");
        fs::write(&p, b"short").unwrap();
        let mut body = MultipartBody::new(
            &[("a", "b")],
            "f.mp4",
            File::open(&p).unwrap(),
            10,
            Progress::new("x", 10, false),
        );
        let mut out = Vec::new();
        let err = body.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(body.local_error.unwrap().code, "file_changed");
    }

    #[test]
    fn boundary_avoids_field_text() {
        let b = make_boundary(&[("a", "b")]);
        assert!(b.starts_with("rig-upload-") && b.len() == "rig-upload-".len() + 32);
    }
}
