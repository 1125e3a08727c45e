//! `POST /api/v1/upload`: stream the file part to `temp/` while hashing it,
//! and only once its digest equals the form's `checksum` move it into
//! `sessions/S/C/` with its manifest and digest.
//!
//! The commit order is what makes a crash at any instant safe for the
//! confirm step, which reads `recording.sha256`:
//!
//! 1. the old `recording.sha256` is removed (a replacement is coming);
//! 2. the verified temp file is renamed over `recording.mp4`;
//! 3. `manifest.json` is written atomically;
//! 4. `recording.sha256` is written atomically, last: it is the commit mark.
//!
//! So `recording.sha256` never names bytes other than those of
//! `recording.mp4`; when it is missing, confirm answers 404 and the client
//! uploads again.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tempfile::NamedTempFile;

use super::incoming::{Incoming, Settled};
use super::multipart::{Event, FormError, FormStream, boundary_of};
use super::{ApiError, InFlight, State, space};
use crate::base::checksum::{FileDigest, HashingWriter, Sha256};
use crate::base::fsx;
use crate::base::ids::{CameraId, RecordingId, SessionId};
use crate::base::jobs::JobQueue;
use crate::base::layout;
use crate::base::manifest::Manifest;
use crate::base::manifest::describe::{self, DescribeError, DescribeOptions};
use crate::base::protocol::{UploadResponse, code, field};

/// Largest `manifest` field accepted, bytes: room for a flat manifest's
/// `snapshot_base64` JPEG. It is held in memory (with its parsed JSON, about
/// three times this) for one upload at a time per worker.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Largest other text field accepted, bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most parts a form may have (five are defined; a few unknown ones are ignored).
pub const MAX_PARTS: usize = 16;
/// What the form may add to the file's size: text fields and framing.
pub const FORM_OVERHEAD: u64 = (MAX_MANIFEST_BYTES + MAX_PARTS * (MAX_TEXT_BYTES + 1024)) as u64;
/// While a file streams in, free space is checked again every this many
/// bytes, so a chunked upload overruns the floor by at most this much
/// (one `statvfs` per 4 MiB costs nothing next to writing them).
const FREE_SPACE_CHECK_EVERY: u64 = 4 << 20;

/// What the request log line says about an upload.
#[derive(Debug, Default)]
pub struct Trace {
    /// `{session}_{camera}` once known.
    pub recording: Option<String>,
    /// Body bytes read.
    pub bytes: u64,
    /// What the request's API key may do ([`super::access`]).
    pub grant: super::access::Grant,
}

/// The file part as it streams to its temp file.
struct FilePart {
    writer: HashingWriter<NamedTempFile>,
    /// The first 8 bytes, for the `ftyp` check.
    head: Vec<u8>,
}

/// What the form carried.
#[derive(Default)]
struct Form<'s> {
    session_id: Option<String>,
    camera_id: Option<String>,
    checksum: Option<String>,
    manifest: Option<String>,
    /// `offset` of a resumed upload (PROTOCOL-EXTENSIONS.md).
    offset: Option<String>,
    /// (recording, checksum) when both were known before the file part:
    /// an interruption then keeps the bytes as a partial.
    partial_key: Option<(RecordingId, Sha256)>,
    /// Bytes of the file part's start taken from a partial.
    resumed_from: u64,
    file: Option<FilePart>,
    /// The recording, once both IDs are in and valid.
    rec: Option<RecordingId>,
    /// The in-flight claim on `rec`, held until the reply.
    claim: Option<InFlight<'s>>,
    /// The free space this upload's announced bytes hold (see `space`).
    space: Option<space::Reservation<'s>>,
}

/// Handles an upload; `trace` is filled in for the log line whatever happens.
pub fn upload(
    state: &State,
    req: &mut tiny_http::Request,
    trace: &mut Trace,
) -> Result<UploadResponse, ApiError> {
    let started = Instant::now();
    let limits = &state.limits;
    let content_type = header(req, "Content-Type").unwrap_or_default();
    let boundary = match boundary_of(&content_type) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(ApiError::new(
                415,
                code::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "upload must be multipart/form-data, got Content-Type {content_type:?}; \
                     send file, session_id, camera_id, checksum (and optionally manifest) as form fields"
                ),
            ));
        }
        Err(m) => return Err(ApiError::new(400, code::BAD_REQUEST, m)),
    };
    let body_cap = limits.max_upload_bytes.saturating_add(FORM_OVERHEAD);
    let announced = req.body_length().map(|n| n as u64);
    if let Some(len) = announced
        && len > body_cap
    {
        return Err(too_large(limits.max_upload_bytes, Some(len)));
    }
    let reservation = reserve_space(state, announced.unwrap_or(0))?;

    let _active = state.active_upload();
    let deadline = started + limits.upload_timeout;
    let body = StopReader {
        inner: req.as_reader(),
        stop: &state.aborting,
    };
    let body = super::pace::PaceReader::new(body, limits.upload_min_rate, limits.stall_timeout);
    let mut stream = FormStream::new(body, &boundary, body_cap, deadline);
    let mut form = Form {
        space: Some(reservation),
        ..Form::default()
    };
    let result = read_form(state, &mut stream, &mut form, trace);
    trace.bytes = stream.received();
    if result.is_err() && state.aborting.load(Ordering::SeqCst) {
        keep_partial(state, &mut form);
        return Err(ApiError::new(
            503,
            code::SHUTTING_DOWN,
            "rig-receive stopped (its shutdown grace time ran out) before this upload \
             finished; what arrived is kept for a resume: try again shortly"
                .into(),
        ));
    }
    if let Err(e) = result {
        if let ReadError::Form(
            FormError::Truncated { .. }
            | FormError::Io(_)
            | FormError::Stalled
            | FormError::Deadline,
        ) = &e
        {
            keep_partial(state, &mut form);
        }
        return Err(e.into_api(limits));
    }
    if started.elapsed() > limits.upload_timeout {
        keep_partial(state, &mut form);
        return Err(ReadError::Form(FormError::Deadline).into_api(limits));
    }
    let key = form.partial_key.clone();
    let result = finish(state, form, trace);
    // Whatever the outcome, the file part was whole: its partial is used up
    // (stored, or proven wrong by the digest).
    if let Some((rec, checksum)) = key {
        match &result {
            Ok(_) => state.partials.remove_recording(&rec),
            Err(_) => state.partials.remove(&rec, &checksum),
        }
    }
    result
}

/// The request body, failing every read once the daemon's shutdown grace
/// time is over, so an upload in flight stops as if its connection dropped.
struct StopReader<'a> {
    inner: &'a mut dyn io::Read,
    stop: &'a AtomicBool,
}

impl io::Read for StopReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            return Err(io::Error::other("rig-receive is shutting down"));
        }
        self.inner.read(buf)
    }
}

/// The connection dropped mid-form: keep the file bytes received so far as
/// the partial of the announced checksum, if the MP4 check passed.
fn keep_partial(state: &State, form: &mut Form) {
    let (Some((rec, checksum)), Some(file)) = (form.partial_key.clone(), form.file.take()) else {
        return;
    };
    if file.head.len() < 8 {
        return;
    }
    let (temp, digest) = file.writer.finish();
    match state.partials.keep(&rec, &checksum, temp, digest.size) {
        Ok(true) => log::info!(
            "{rec}: interrupted after {} bytes of the file; kept them for a resume",
            digest.size
        ),
        Ok(false) => log::info!("{rec}: interrupted after {} bytes; not kept", digest.size),
        Err(e) => log::error!("{rec}: cannot keep the partial of an interrupted upload: {e}"),
    }
}

/// Errors while reading the form: the form's own, or the upload's rules.
enum ReadError {
    Form(FormError),
    Api(ApiError),
}

impl From<FormError> for ReadError {
    fn from(e: FormError) -> Self {
        ReadError::Form(e)
    }
}

impl From<ApiError> for ReadError {
    fn from(e: ApiError) -> Self {
        ReadError::Api(e)
    }
}

impl ReadError {
    fn into_api(self, limits: &super::Limits) -> ApiError {
        match self {
            ReadError::Api(e) => e,
            ReadError::Form(FormError::Malformed(m)) => ApiError::new(400, code::BAD_REQUEST, m),
            ReadError::Form(FormError::Truncated { received }) => ApiError::new(
                400,
                code::BAD_REQUEST,
                format!(
                    "the body ended after {received} bytes, before the multipart closing \
                     boundary: the upload was cut off; send it again"
                ),
            ),
            ReadError::Form(FormError::TooLarge { .. }) => too_large(limits.max_upload_bytes, None),
            ReadError::Form(FormError::Deadline) => ApiError::new(
                408,
                code::TIMEOUT,
                format!(
                    "the upload took longer than server.upload_timeout_sec ({} s); \
                     nothing was stored",
                    limits.upload_timeout.as_secs()
                ),
            ),
            ReadError::Form(FormError::Stalled) => ApiError::new(
                408,
                code::TIMEOUT,
                format!(
                    "the upload stalled: nothing for server.stall_timeout_sec ({} s), or less \
                     than server.upload_min_kib_per_sec ({} KiB/s) over that time; nothing \
                     was stored",
                    limits.stall_timeout.as_secs(),
                    limits.upload_min_rate / 1024
                ),
            ),
            ReadError::Form(FormError::Io(e)) => ApiError::new(
                400,
                code::BAD_REQUEST,
                format!("reading the upload failed: {e}; nothing was stored"),
            ),
        }
    }
}

fn too_large(max: u64, announced: Option<u64>) -> ApiError {
    let what = match announced {
        Some(n) => format!("the body is {n} bytes"),
        None => "the body grew".to_string(),
    };
    ApiError::new(
        413,
        code::TOO_LARGE,
        format!(
            "{what}, over server.max_upload_size_gb ({max} bytes of file plus form fields); \
             nothing was stored"
        ),
    )
}

/// Admits an upload of `incoming` bytes against the free-space floor and
/// the room other uploads in flight have reserved (`space`); 507 if it
/// would leave less than the floor.
fn reserve_space(state: &State, incoming: u64) -> Result<space::Reservation<'_>, ApiError> {
    let free = free_bytes(state)?;
    let floor = state.limits.min_free_bytes;
    state
        .space
        .admit(free, floor, incoming)
        .map_err(|short| no_space(state, incoming, short))
}

/// The floor check made while a file streams in: what is written is in
/// the free space now, what is still to come (this upload's and the
/// others') is reserved.
fn check_space_midway(
    state: &State,
    reservation: Option<&mut space::Reservation<'_>>,
    received: u64,
) -> Result<(), ApiError> {
    let free = free_bytes(state)?;
    let floor = state.limits.min_free_bytes;
    let checked = match reservation {
        Some(r) => r.progress(received, free, floor),
        None => state.space.admit(free, floor, 0).map(drop),
    };
    checked.map_err(|short| no_space(state, 0, short))
}

fn free_bytes(state: &State) -> Result<u64, ApiError> {
    state.free_bytes().map_err(|e| {
        ApiError::new(
            500,
            code::INTERNAL,
            format!("cannot tell the free space of the sessions filesystem: {e}"),
        )
    })
}

fn no_space(state: &State, incoming: u64, short: space::Shortfall) -> ApiError {
    let gb = |n: u64| n as f64 / crate::base::config::GB;
    let others = if short.reserved > 0 {
        format!(
            ", {:.3} GB of it promised to uploads in flight",
            gb(short.reserved)
        )
    } else {
        String::new()
    };
    ApiError::new(
        507,
        code::INSUFFICIENT_STORAGE,
        format!(
            "storing {incoming} more bytes would leave less than storage.min_free_space_gb \
             ({:.3} GB) free on the server ({:.3} GB free now{others}); free space or lower the floor",
            gb(state.limits.min_free_bytes),
            gb(short.free)
        ),
    )
}

/// Reads every part; the file goes to a temp file, text fields to memory
/// (capped). Validates IDs and claims the recording as soon as they are in.
fn read_form<'s, R: io::Read>(
    state: &'s State,
    stream: &mut FormStream<R>,
    form: &mut Form<'s>,
    trace: &mut Trace,
) -> Result<(), ReadError> {
    let mut parts = 0usize;
    loop {
        let head = match stream.next_event()? {
            Event::End => return Ok(()),
            Event::Part(head) => head,
            Event::Data(_) | Event::PartEnd => {
                return Err(ApiError::new(
                    400,
                    code::BAD_REQUEST,
                    "multipart data outside of a part".into(),
                )
                .into());
            }
        };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::new(
                400,
                code::BAD_REQUEST,
                format!("the form has more than {MAX_PARTS} parts"),
            )
            .into());
        }
        if head.name == field::FILE {
            if form.file.is_some() {
                return Err(invalid("file", "the form has more than one file part").into());
            }
            read_file_part(state, stream, form)?;
        } else {
            let cap = if head.name == field::MANIFEST {
                MAX_MANIFEST_BYTES
            } else {
                MAX_TEXT_BYTES
            };
            let text = read_text_part(stream, &head.name, cap)?;
            store_text(state, form, &head.name, text, trace)?;
        }
    }
}

fn read_text_part<R: io::Read>(
    stream: &mut FormStream<R>,
    name: &str,
    cap: usize,
) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    loop {
        match stream.next_event()? {
            Event::Data(b) => {
                if buf.len() + b.len() > cap {
                    return Err(invalid(name, &format!("is longer than {cap} bytes")).into());
                }
                buf.extend_from_slice(&b);
            }
            Event::PartEnd => break,
            _ => {
                return Err(ApiError::new(
                    400,
                    code::BAD_REQUEST,
                    format!("multipart part {name:?} is not terminated"),
                )
                .into());
            }
        }
    }
    String::from_utf8(buf).map_err(|_| invalid(name, "is not UTF-8 text").into())
}

fn store_text<'s>(
    state: &'s State,
    form: &mut Form<'s>,
    name: &str,
    text: String,
    trace: &mut Trace,
) -> Result<(), ReadError> {
    let slot = match name {
        field::SESSION_ID => &mut form.session_id,
        field::CAMERA_ID => &mut form.camera_id,
        field::CHECKSUM => &mut form.checksum,
        field::MANIFEST => &mut form.manifest,
        super::partial::OFFSET_FIELD => &mut form.offset,
        other => {
            log::debug!("ignoring unknown upload field {other:?}");
            return Ok(());
        }
    };
    if slot.is_some() {
        return Err(invalid(name, "appears more than once in the form").into());
    }
    if name == super::partial::OFFSET_FIELD && form.file.is_some() {
        // The file part was read as starting at byte 0; an offset now would
        // turn a good partial into a checksum mismatch. Refuse the form and
        // leave the partial alone (not an interruption: nothing is kept or
        // removed).
        return Err(ApiError::new(
            400,
            code::INVALID_FIELD,
            format!("field {name}: offset must come before the file part"),
        )
        .into());
    }
    *slot = Some(text);
    // Reject bad values as soon as they are known, before any file byte.
    match name {
        field::SESSION_ID | field::CAMERA_ID => {
            let session = form.session_id.as_deref().map(parse_session).transpose()?;
            let camera = form.camera_id.as_deref().map(parse_camera).transpose()?;
            if let (Some(s), Some(c)) = (session, camera) {
                trace.grant.camera(c)?;
                let rec = RecordingId::new(s, c);
                trace.recording = Some(rec.to_string());
                form.claim = Some(state.claim(&rec)?);
                form.rec = Some(rec);
            }
        }
        field::CHECKSUM => {
            parse_checksum(form.checksum.as_deref().unwrap_or_default())?;
        }
        _ => {}
    }
    Ok(())
}

/// Where the file part starts: 0, or a partial's length when the form
/// asked to resume from it (409 with the partial's length otherwise).
fn resume_point(state: &State, form: &mut Form) -> Result<u64, ApiError> {
    let checksum = form
        .checksum
        .as_deref()
        .map(parse_checksum)
        .transpose()
        .ok()
        .flatten();
    if let (Some(rec), Some(c)) = (form.rec.clone(), checksum) {
        form.partial_key = Some((rec, c));
    }
    let Some(text) = form.offset.as_deref() else {
        return Ok(0);
    };
    let offset: u64 = text.trim().parse().map_err(|_| {
        invalid(
            super::partial::OFFSET_FIELD,
            &format!("must be a byte count, got {text:?}"),
        )
    })?;
    let Some((rec, checksum)) = form.partial_key.clone() else {
        return Err(invalid(
            super::partial::OFFSET_FIELD,
            "a resumed upload must send session_id, camera_id and checksum before the file part",
        ));
    };
    let have = state.partials.received(&rec, &checksum);
    if offset != have {
        return Err(ApiError::new(
            409,
            code::OFFSET_MISMATCH,
            format!(
                "offset is {offset} but the server holds {have} bytes of {rec} with checksum \
                 {checksum}; resume from received_bytes ({have})"
            ),
        )
        .with_received_bytes(have));
    }
    Ok(offset)
}

fn read_file_part<R: io::Read>(
    state: &State,
    stream: &mut FormStream<R>,
    form: &mut Form,
) -> Result<(), ReadError> {
    let offset = resume_point(state, form)?;
    if offset > 0
        && let Some((rec, checksum)) = form.partial_key.clone()
    {
        let (writer, head) = state
            .partials
            .open_for_resume(&rec, &checksum, offset)
            .map_err(|e| internal(&format!("{rec}: cannot open its partial to resume"), e))?;
        log::info!("{rec}: resuming from byte {offset}");
        form.resumed_from = offset;
        form.file = Some(FilePart { writer, head });
        return read_file_data(state, stream, form);
    }
    let temp = tempfile::Builder::new()
        .prefix(super::UPLOAD_TEMP_PREFIX)
        .tempfile_in(&state.layout.temp)
        .map_err(|e| {
            internal(
                &format!(
                    "cannot create a temp file in {}",
                    state.layout.temp.display()
                ),
                e,
            )
        })?;
    form.file = Some(FilePart {
        writer: HashingWriter::new(temp),
        head: Vec::with_capacity(8),
    });
    read_file_data(state, stream, form)
}

/// Streams the file part's bytes into `form.file`.
fn read_file_data<R: io::Read>(
    state: &State,
    stream: &mut FormStream<R>,
    form: &mut Form,
) -> Result<(), ReadError> {
    let Some(part) = form.file.as_mut() else {
        return Err(ApiError::new(500, code::INTERNAL, "file part lost".into()).into());
    };
    let max = state.limits.max_upload_bytes;
    let mut next_space_check = FREE_SPACE_CHECK_EVERY;
    loop {
        match stream.next_event()? {
            Event::Data(b) => {
                if part.head.len() < 8 {
                    let take = (8 - part.head.len()).min(b.len());
                    part.head.extend_from_slice(&b[..take]);
                    if part.head.len() == 8 && &part.head[4..8] != b"ftyp" {
                        return Err(not_mp4().into());
                    }
                }
                let written = part.writer.bytes_written();
                if written + b.len() as u64 > max {
                    return Err(too_large(max, None).into());
                }
                part.writer
                    .write_all(&b)
                    .map_err(|e| internal("writing the upload to its temp file failed", e))?;
                if part.writer.bytes_written() - form.resumed_from >= next_space_check {
                    next_space_check += FREE_SPACE_CHECK_EVERY;
                    check_space_midway(state, form.space.as_mut(), stream.received())?;
                }
            }
            Event::PartEnd => break,
            _ => {
                return Err(ApiError::new(
                    400,
                    code::BAD_REQUEST,
                    "multipart file part is not terminated".into(),
                )
                .into());
            }
        }
    }
    if part.head.len() < 8 {
        return Err(not_mp4().into());
    }
    Ok(())
}

fn not_mp4() -> ApiError {
    ApiError::new(
        415,
        code::UNSUPPORTED_MEDIA_TYPE,
        "the file part is not an MP4 file (no ftyp box at its start); only MP4 recordings \
         are accepted"
            .into(),
    )
}

fn invalid(name: &str, what: &str) -> ApiError {
    ApiError::new(400, code::INVALID_FIELD, format!("field {name}: {what}"))
}

/// A failed storage operation: 507 when the filesystem is full (the temp
/// file goes with the error, the daemon keeps serving), 500 otherwise.
fn internal(what: &str, e: io::Error) -> ApiError {
    if is_disk_full(&e) {
        log::warn!("{what}: {e}");
        return ApiError::new(
            507,
            code::INSUFFICIENT_STORAGE,
            format!("{what}: the server's disk is full ({e}); nothing was stored, free space"),
        );
    }
    log::error!("{what}: {e}");
    ApiError::new(500, code::INTERNAL, format!("{what}: {e}"))
}

/// Whether `e` is "no space left on device" or "disk quota exceeded".
fn is_disk_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(n) if n == rustix::io::Errno::NOSPC.raw_os_error() || n == rustix::io::Errno::DQUOT.raw_os_error())
}

fn parse_session(s: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(s).map_err(|e| invalid(field::SESSION_ID, &e.to_string()))
}

fn parse_camera(s: &str) -> Result<CameraId, ApiError> {
    CameraId::parse(s).map_err(|e| invalid(field::CAMERA_ID, &e.to_string()))
}

/// The form's checksum: 64 hex characters, either case.
fn parse_checksum(s: &str) -> Result<Sha256, ApiError> {
    s.parse()
        .map_err(|e: crate::base::checksum::ParseSha256Error| {
            invalid(field::CHECKSUM, &e.to_string())
        })
}

/// All fields are in: check them, verify the digest, store.
fn finish(
    state: &State,
    mut form: Form<'_>,
    trace: &mut Trace,
) -> Result<UploadResponse, ApiError> {
    let missing: Vec<&str> = [
        (field::FILE, form.file.is_none()),
        (field::SESSION_ID, form.session_id.is_none()),
        (field::CAMERA_ID, form.camera_id.is_none()),
        (field::CHECKSUM, form.checksum.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if !missing.is_empty() {
        return Err(ApiError::new(
            400,
            code::MISSING_FIELD,
            format!(
                "missing form field(s): {}; an upload needs file, session_id, camera_id \
                 and checksum",
                missing.join(", ")
            ),
        ));
    }
    // Both IDs are present, so store_text parsed them and took the claim.
    let (Some(rec), Some(_claim)) = (form.rec.clone(), form.claim.take()) else {
        return Err(ApiError::new(
            500,
            code::INTERNAL,
            "recording not claimed".into(),
        ));
    };
    let expected = parse_checksum(form.checksum.as_deref().unwrap_or_default())?;
    let incoming = Incoming::read(form.manifest.as_deref(), &rec, &expected)?;
    let Some(file) = form.file.take() else {
        return Err(ApiError::new(500, code::INTERNAL, "file part lost".into()));
    };
    let (temp, digest) = file.writer.finish();
    check_digest(&digest, &expected)?;
    let settled = incoming.settle(digest.size, &state.naive_zone, || {
        describe_upload(state, &rec, temp.path(), &digest)
    })?;
    if !settled.warnings.is_empty() {
        log::warn!(
            "{rec}: stored a repaired manifest (the client's is kept as {}): {}",
            layout::SERVER_CLIENT_MANIFEST,
            settled.warnings.join("; ")
        );
    }
    trace.recording = Some(rec.to_string());
    let warnings = settled.warnings.clone();
    store(state, &rec, temp, &digest, settled)?;
    Ok(UploadResponse {
        success: true,
        recording_id: rec.to_string(),
        file_size: digest.size,
        checksum_verified: true,
        manifest_warnings: warnings,
    })
}

/// 422 unless the received bytes' digest is the form's checksum.
fn check_digest(digest: &FileDigest, expected: &Sha256) -> Result<(), ApiError> {
    if digest.sha256 == *expected {
        return Ok(());
    }
    Err(ApiError::new(
        422,
        code::CHECKSUM_MISMATCH,
        format!(
            "received {} bytes with SHA-256 {}, but the form's checksum is {expected}; \
             the file changed or was damaged in transit: upload it again",
            digest.size, digest.sha256
        ),
    ))
}

/// Moves a verified upload into place (see the module docs for the order).
fn store(
    state: &State,
    rec: &RecordingId,
    temp: NamedTempFile,
    digest: &FileDigest,
    settled: Settled,
) -> Result<(), ApiError> {
    let layout = &state.layout;
    let (s, c) = (&rec.session, rec.camera);
    let recording = layout.recording(s, c);
    let digest_path = layout.digest(s, c);
    let io_err = |what: &str, e: io::Error| internal(&format!("storing {rec}: {what}"), e);

    temp.as_file()
        .sync_all()
        .map_err(|e| io_err("fsync of the temp file", e))?;

    let stored_digest = fs::read_to_string(&digest_path)
        .ok()
        .and_then(|t| layout::parse_digest_line(&t));
    let stored_size = fs::metadata(&recording).ok().map(|m| m.len());
    let identical = stored_digest == Some(digest.sha256) && stored_size == Some(digest.size);
    let manifest_path = layout.manifest(s, c);
    // An identical re-upload without a manifest keeps the stored one (most
    // likely the Pi's own); otherwise the uploaded one wins, or ffprobe's.
    let manifest = match settled.manifest {
        Some(m) => Some(m),
        None if identical && Manifest::read(&manifest_path).is_ok() => None,
        None => Some(describe_upload(state, rec, temp.path(), digest)?),
    };
    let dir = layout.camera_dir(s, c);
    if identical {
        // Same bytes already stored: keep them, drop the temp file.
        drop(temp);
        log::info!("{rec}: identical to the stored recording; kept it");
    } else {
        fs::create_dir_all(&dir).map_err(|e| io_err("creating its directory", e))?;
        match fs::remove_file(&digest_path) {
            Ok(()) => fsx::sync_dir(&dir).map_err(|e| io_err("syncing its directory", e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("removing the old recording.sha256", e)),
        }
        if stored_size.is_some() {
            log::warn!(
                "{rec}: replacing the stored recording (digest {}) with a verified new one ({})",
                stored_digest.map_or_else(|| "unknown".to_string(), |d| d.to_string()),
                digest.sha256
            );
        }
        temp.persist(&recording)
            .map_err(|e| io_err("moving it into sessions/", e.error))?;
        fsx::sync_dir(&dir).map_err(|e| io_err("syncing its directory", e))?;
    }
    if let Some(m) = manifest {
        keep_client_manifest(state, rec, settled.original.as_deref())?;
        m.write_atomic(&manifest_path)
            .map_err(|e| ApiError::new(500, code::INTERNAL, format!("storing {rec}: {e}")))?;
    }
    if identical && stored_digest.is_some() {
        // recording.sha256 is already right.
    } else {
        fsx::atomic_write(&digest_path, layout::digest_line(&digest.sha256).as_bytes())
            .map_err(|e| io_err("writing recording.sha256", e))?;
    }
    enqueue_if_complete(state, rec, !identical);
    Ok(())
}

/// Keeps the client's manifest text verbatim beside a translated or
/// repaired `manifest.json`; removes an older one otherwise, so it never
/// sits beside a manifest it is not the source of.
fn keep_client_manifest(
    state: &State,
    rec: &RecordingId,
    text: Option<&str>,
) -> Result<(), ApiError> {
    let path = state.layout.client_manifest(&rec.session, rec.camera);
    let io_err = |e: io::Error| internal(&format!("storing {rec}: {}", path.display()), e);
    match text {
        Some(t) => fsx::atomic_write(&path, t.as_bytes()).map_err(io_err),
        None => match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(e)),
            _ => Ok(()),
        },
    }
}

/// A manifest for an upload that came without one: ffprobe on the temp file,
/// the digest already computed (no second read for hashing), its timing
/// marked as the guess it is (`timing.guessed`).
fn describe_upload(
    state: &State,
    rec: &RecordingId,
    temp: &Path,
    digest: &FileDigest,
) -> Result<Manifest, ApiError> {
    let opts = DescribeOptions {
        ffprobe: state.ffprobe.clone(),
        digest: Some(digest.clone()),
        ..DescribeOptions::default()
    };
    let mut m = describe::describe(temp, rec, &opts).map_err(|e| {
        let text = e
            .to_string()
            .replace(&temp.display().to_string(), "the uploaded file");
        match e {
            DescribeError::Probe(crate::base::ffmpeg::ProbeError::ToolMissing { .. })
            | DescribeError::Probe(crate::base::ffmpeg::ProbeError::Io { .. })
            | DescribeError::Io(_) => {
                log::error!("{rec}: cannot describe the upload: {text}");
                ApiError::new(
                    500,
                    code::INTERNAL,
                    format!("cannot describe {rec}: {text}"),
                )
            }
            _ => ApiError::new(
                415,
                code::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{rec} came without a manifest and is not a readable recording ({text}); \
                     nothing was stored"
                ),
            ),
        }
    })?;
    crate::base::manifest::repair::mark_timing_guessed(
        &mut m,
        crate::base::manifest::repair::FILE_TIMING_GUESS,
    );
    Ok(m)
}

/// Queues a stitch once all three cameras of the session are stored. A
/// failure here is logged, not returned: the recording itself is safe.
fn enqueue_if_complete(state: &State, rec: &RecordingId, changed: bool) {
    let s = &rec.session;
    let complete = CameraId::ALL
        .iter()
        .all(|&c| state.layout.digest(s, c).is_file() && state.layout.recording(s, c).is_file());
    if !complete {
        return;
    }
    let queue = JobQueue::new(&state.layout);
    if !changed {
        match queue.latest_for(s) {
            Ok(Some(_)) => return,
            Ok(None) => {}
            Err(e) => {
                log::error!("{s}: all three cameras stored, but the job queue is unreadable: {e}");
                return;
            }
        }
    }
    // A replaced recording needs a stitch of what is stored now, even when
    // one is running on the old file (enqueue_fresh queues behind it).
    let queued = if changed {
        queue.enqueue_fresh(s)
    } else {
        queue.enqueue(s)
    };
    match queued {
        Ok((job, true)) => log::info!(
            "{s}: all three cameras stored; queued stitch job {}",
            job.id
        ),
        Ok((job, false)) => log::info!("{s}: stitch job {} already {}", job.id, job.status),
        Err(e) => log::error!("{s}: all three cameras stored, but queueing the stitch failed: {e}"),
    }
}

/// The first value of a request header.
pub fn header(req: &tiny_http::Request, name: &'static str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}
