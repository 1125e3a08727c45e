//! `POST /api/v1/upload`: stream the file part to `temp/` while hashing it,
//! and only once its digest equals the form's `checksum` commit it into
//! `sessions/S/C/` with its manifest and digest ([`crate::store`] has the
//! commit order that makes a crash at any instant safe for confirm).
//!
//! | file | step |
//! |---|---|
//! | `form` | the parts: text fields, IDs and the claim, the resume point |
//! | `file` | the file part: temp file or partial, hashed as it streams |
//! | `room` | the free-space floor, before and while the file streams |
//! | `commit` | the manifest to store, the commit, the stitch once complete |
//! | `errors` | the replies of what can go wrong |

mod commit;
mod errors;
mod file;
mod form;
mod resume;
mod room;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tempfile::NamedTempFile;

use self::errors::{ReadError, check_digest, too_large};
use super::incoming::Incoming;
use super::multipart::{FormError, FormStream, boundary_of};
use super::state::{InFlight, State};
use super::trace::{Trace, header};
use super::{ApiError, space};
use crate::base::checksum::{HashingWriter, Sha256};
use crate::base::ids::RecordingId;
use crate::base::layout;
use crate::base::protocol::{UploadResponse, code, field};

pub use crate::base::protocol::MAX_MANIFEST_BYTES;

/// Largest other text field accepted, bytes.
pub const MAX_TEXT_BYTES: usize = 1024;

/// Most parts a form may have (five are defined; a few unknown ones are ignored).
pub const MAX_PARTS: usize = 16;

/// What the form may add to the file's size: text fields and framing.
pub const FORM_OVERHEAD: u64 = (MAX_MANIFEST_BYTES + MAX_PARTS * (MAX_TEXT_BYTES + 1024)) as u64;

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
    /// `checksum`, parsed (once, as soon as it arrives).
    expected: Option<Sha256>,
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
    let boundary = boundary(req)?;
    let body_cap = limits.max_upload_bytes.saturating_add(FORM_OVERHEAD);
    let announced = announced_length(req, limits.max_upload_bytes, body_cap)?;
    let reservation = room::reserve_space(state, announced.unwrap_or(0))?;

    let _active = state.active_upload();
    let body = StopReader {
        inner: req.as_reader(),
        stop: &state.aborting,
    };
    let body = super::pace::PaceReader::new(body, limits.upload_min_rate, limits.stall_timeout);
    let mut stream = FormStream::new(body, &boundary, body_cap, started + limits.upload_timeout);
    let mut form = Form {
        space: Some(reservation),
        ..Form::default()
    };
    let result = form::read_form(state, &mut stream, &mut form, trace);
    trace.bytes = stream.received();
    settle_read(state, &mut form, result, started)?;
    let key = form.partial_key.clone();
    let result = finish(state, form, trace);
    if let Some((rec, checksum)) = key {
        use_up_partial(state, &rec, &checksum, result.is_ok());
    }
    result
}

/// The request's Content-Length; 413 when it is over `body_cap` (the
/// largest upload, `max`, plus the form's overhead).
fn announced_length(
    req: &tiny_http::Request,
    max: u64,
    body_cap: u64,
) -> Result<Option<u64>, ApiError> {
    let announced = req.body_length().map(|n| n as u64);
    if let Some(len) = announced
        && len > body_cap
    {
        return Err(too_large(max, Some(len)));
    }
    Ok(announced)
}

/// Whatever the outcome, the file part was whole: its partial is used up
/// (stored, or proven wrong by the digest).
fn use_up_partial(state: &State, rec: &RecordingId, checksum: &Sha256, stored: bool) {
    if stored {
        state.partials.remove_recording(rec);
    } else {
        state.partials.remove(rec, checksum);
    }
}

/// The multipart boundary of the request's Content-Type; 415 when it is
/// not `multipart/form-data`.
fn boundary(req: &tiny_http::Request) -> Result<String, ApiError> {
    let content_type = header(req, "Content-Type").unwrap_or_default();
    match boundary_of(&content_type) {
        Ok(Some(b)) => Ok(b),
        Ok(None) => Err(ApiError::new(
            415,
            code::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "upload must be multipart/form-data, got Content-Type {content_type:?}; \
                 send file, session_id, camera_id, checksum (and optionally manifest) as form fields"
            ),
        )),
        Err(m) => Err(ApiError::new(400, code::BAD_REQUEST, m)),
    }
}

/// After the form was read: an interruption (a drop, a stall, the
/// deadline, the shutdown) keeps the file bytes as a partial; every error
/// becomes its reply.
fn settle_read(
    state: &State,
    form: &mut Form,
    result: Result<(), ReadError>,
    started: Instant,
) -> Result<(), ApiError> {
    let limits = &state.limits;
    if result.is_err() && state.aborting.load(Ordering::SeqCst) {
        keep_partial(state, form);
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
            keep_partial(state, form);
        }
        return Err(e.into_api(limits));
    }
    if started.elapsed() > limits.upload_timeout {
        keep_partial(state, form);
        return Err(ReadError::Form(FormError::Deadline).into_api(limits));
    }
    Ok(())
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

/// All fields are in: check them, verify the digest, store.
fn finish(
    state: &State,
    mut form: Form<'_>,
    trace: &mut Trace,
) -> Result<UploadResponse, ApiError> {
    check_complete(&form)?;
    // Both IDs are present, so store_text parsed them and took the claim.
    let (Some(rec), Some(_claim)) = (form.rec.clone(), form.claim.take()) else {
        return Err(internal_invariant("recording not claimed"));
    };
    // The checksum is present, so store_text parsed it.
    let Some(expected) = form.expected else {
        return Err(internal_invariant("checksum not parsed"));
    };
    let incoming = Incoming::read(form.manifest.as_deref(), &rec, &expected)?;
    let Some(file) = form.file.take() else {
        return Err(internal_invariant("file part lost"));
    };
    let (temp, digest) = file.writer.finish();
    check_digest(&digest, &expected)?;
    let settled = incoming.settle(digest.size, &state.naive_zone, || {
        commit::describe_upload(state, &rec, temp.path(), &digest)
    })?;
    log_repaired(&rec, &settled.warnings);
    trace.recording = Some(rec.to_string());
    let warnings = settled.warnings.clone();
    commit::store(state, &rec, temp, &digest, settled)?;
    Ok(UploadResponse {
        success: true,
        recording_id: rec.to_string(),
        file_size: digest.size,
        checksum_verified: true,
        manifest_warnings: warnings,
    })
}

/// 500 for a state of the form that `store_text` rules out.
fn internal_invariant(what: &str) -> ApiError {
    ApiError::new(500, code::INTERNAL, what.into())
}

/// Logs that the stored manifest is a repaired one, and why.
fn log_repaired(rec: &RecordingId, warnings: &[String]) {
    if !warnings.is_empty() {
        log::warn!(
            "{rec}: stored a repaired manifest (the client's is kept as {}): {}",
            layout::SERVER_CLIENT_MANIFEST,
            warnings.join("; ")
        );
    }
}

/// 400 `missing_field` naming every required field the form lacks.
fn check_complete(form: &Form) -> Result<(), ApiError> {
    let missing: Vec<&str> = [
        (field::FILE, form.file.is_none()),
        (field::SESSION_ID, form.session_id.is_none()),
        (field::CAMERA_ID, form.camera_id.is_none()),
        (field::CHECKSUM, form.checksum.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        400,
        code::MISSING_FIELD,
        format!(
            "missing form field(s): {}; an upload needs file, session_id, camera_id \
             and checksum",
            missing.join(", ")
        ),
    ))
}
