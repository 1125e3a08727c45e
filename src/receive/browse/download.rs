//! Downloads: the file (or the range asked for) streamed through a fixed
//! buffer with `Content-Length`, with its ETag; 304 when the client's copy
//! is current.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;

use super::internal;
use super::range::{RangeAnswer, none_match, parse_range};
use crate::base::ids::{RecordingId, SessionId};
use crate::base::protocol::code;
use crate::receive::reply::error_reply;
use crate::receive::state::State;
use crate::receive::trace::header;
use crate::receive::{ApiError, Body, Reply};
use crate::store::OpenError;

/// Buffer of a download: one read and one write per this many bytes.
const DOWNLOAD_BUFFER: usize = 256 * 1024;

// ---------------------------------------------------------------------------
// Downloads.

/// `GET /api/v1/sessions/{id}/{camera}/recording.mp4`; its ETag is the
/// stored digest ([`crate::store::Store::open_recording`] proves the open
/// file has it).
pub(super) fn download_recording(
    state: &State,
    req: &tiny_http::Request,
    rec: &RecordingId,
) -> Result<Reply, ApiError> {
    let (file, digest) = state.store.open_recording(rec).map_err(|e| match e {
        OpenError::Missing => ApiError::new(
            404,
            code::RECORDING_NOT_FOUND,
            format!("{rec} is not stored on this server (or its upload is not finished)"),
        ),
        OpenError::Replacing => ApiError::new(
            409,
            code::UPLOAD_IN_PROGRESS,
            format!("{rec} is being replaced by a new upload right now; try again shortly"),
        ),
        OpenError::Io(e) => internal(format!("opening the recording {rec}: {e}")),
    })?;
    let name = format!("{rec}.mp4");
    serve_file(req, file, &format!("\"{digest}\""), "video/mp4", &name)
}

/// `GET /api/v1/sessions/{id}/stitched/panorama.mp4`.
pub(super) fn download_panorama(
    state: &State,
    req: &tiny_http::Request,
    session: &SessionId,
) -> Result<Reply, ApiError> {
    let file = state
        .store
        .open_panorama(session)
        .transpose()
        .ok_or_else(|| {
            ApiError::new(
                404,
                code::RECORDING_NOT_FOUND,
                format!(
                    "session {session} has no panorama yet; POST /api/v1/sessions/{session}/stitch \
                 queues one once all three cameras are stored"
                ),
            )
        })?;
    let file = file.map_err(|e| internal(format!("opening the panorama of {session}: {e}")))?;
    let tag =
        file_tag(&file).map_err(|e| internal(format!("reading the panorama of {session}: {e}")))?;
    serve_file(
        req,
        file,
        &tag,
        "video/mp4",
        &format!("{session}_panorama.mp4"),
    )
}

/// A strong ETag from the open file's size and mtime (nanoseconds): files
/// replaced by rename get a new one.
pub(super) fn file_tag(file: &File) -> io::Result<String> {
    let m = file.metadata()?;
    Ok(format!(
        "\"{:x}-{:x}.{:x}\"",
        m.len(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// Streams `file` (or the range asked for) with its validators; 304 when
/// the client's copy is current.
pub(super) fn serve_file(
    req: &tiny_http::Request,
    file: File,
    etag: &str,
    content_type: &'static str,
    name: &str,
) -> Result<Reply, ApiError> {
    let len = file
        .metadata()
        .map_err(|e| internal(format!("reading {name}: {e}")))?
        .len();
    if header(req, "If-None-Match").is_some_and(|v| none_match(&v, etag)) {
        let reply = Reply::new(304, not_modified_body(len, content_type));
        return Ok(with_validators(reply, etag, name));
    }
    let (status, start, count) = match range_asked(req, etag, len) {
        RangeAnswer::Full => (200, 0, len),
        RangeAnswer::Partial { start, end } => (206, start, end - start + 1),
        RangeAnswer::Unsatisfiable => return Ok(unsatisfiable(name, len)),
    };
    let body = part_body(file, start, count, content_type, name)?;
    let reply = with_validators(Reply::new(status, body), etag, name);
    if status != 206 {
        return Ok(reply);
    }
    Ok(reply.with_header(
        "Content-Range",
        format!("bytes {start}-{}/{len}", start + count - 1),
    ))
}

/// The headers every download answer carries: ETag, Accept-Ranges and the
/// file name.
fn with_validators(reply: Reply, etag: &str, name: &str) -> Reply {
    reply
        .with_header("ETag", etag)
        .with_header("Accept-Ranges", "bytes")
        .with_header(
            "Content-Disposition",
            format!("inline; filename=\"{name}\""),
        )
}

/// The body of a 304: none is sent; Content-Length says what a 200 would
/// carry.
fn not_modified_body(len: u64, content_type: &'static str) -> Body {
    Body::Stream {
        reader: Box::new(io::empty()),
        len,
        content_type,
    }
}

/// `count` bytes of `file` from `start`, read through a fixed buffer.
fn part_body(
    mut file: File,
    start: u64,
    count: u64,
    content_type: &'static str,
    name: &str,
) -> Result<Body, ApiError> {
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .map_err(|e| internal(format!("seeking in {name}: {e}")))?;
    }
    let reader = BufReader::with_capacity(DOWNLOAD_BUFFER, file).take(count);
    Ok(Body::Stream {
        reader: Box::new(reader),
        len: count,
        content_type,
    })
}

/// The part of a file of `len` bytes the request's `Range` asks for.
/// `If-Range` with another validator (or a date: we send no
/// Last-Modified) means the client's partial copy is stale: send everything.
fn range_asked(req: &tiny_http::Request, etag: &str, len: u64) -> RangeAnswer {
    let range_applies = header(req, "If-Range").is_none_or(|v| v.trim() == etag);
    match header(req, "Range") {
        Some(v) if range_applies => parse_range(&v, len),
        _ => RangeAnswer::Full,
    }
}

/// 416: no byte of the file is in the range.
fn unsatisfiable(name: &str, len: u64) -> Reply {
    let e = ApiError::new(
        416,
        code::RANGE_NOT_SATISFIABLE,
        format!("{name} has {len} bytes; the Range asked for none of them"),
    );
    error_reply(&e)
        .with_header("Content-Range", format!("bytes */{len}"))
        .with_header("Accept-Ranges", "bytes")
}
