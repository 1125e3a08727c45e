//! The form's parts: text fields to memory (capped), the file part to
//! [`super::file`]; IDs are validated and the recording claimed as soon as
//! they are in, before any file byte.

use std::io;

use super::errors::{ReadError, invalid, parse_camera, parse_checksum, parse_session};
use super::file::read_file_part;
use super::{Form, MAX_MANIFEST_BYTES, MAX_PARTS, MAX_TEXT_BYTES};
use crate::base::ids::RecordingId;
use crate::base::protocol::{code, field};
use crate::receive::ApiError;
use crate::receive::multipart::{Event, FormStream, PartHead};
use crate::receive::state::State;
use crate::receive::trace::Trace;

/// Reads every part; the file goes to a temp file, text fields to memory
/// (capped). Validates IDs and claims the recording as soon as they are in.
pub(super) fn read_form<'s, R: io::Read>(
    state: &'s State,
    stream: &mut FormStream<R>,
    form: &mut Form<'s>,
    trace: &mut Trace,
) -> Result<(), ReadError> {
    let mut parts = 0usize;
    while let Some(head) = next_part(stream)? {
        parts += 1;
        if parts > MAX_PARTS {
            let message = format!("the form has more than {MAX_PARTS} parts");
            return Err(ApiError::new(400, code::BAD_REQUEST, message).into());
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
    Ok(())
}

/// The next part's head; `None` at the end of the form, 400 for data
/// outside of a part.
fn next_part<R: io::Read>(stream: &mut FormStream<R>) -> Result<Option<PartHead>, ReadError> {
    match stream.next_event()? {
        Event::End => Ok(None),
        Event::Part(head) => Ok(Some(head)),
        Event::Data(_) | Event::PartEnd => Err(ApiError::new(
            400,
            code::BAD_REQUEST,
            "multipart data outside of a part".into(),
        )
        .into()),
    }
}

pub(super) fn read_text_part<R: io::Read>(
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

pub(super) fn store_text<'s>(
    state: &'s State,
    form: &mut Form<'s>,
    name: &str,
    text: String,
    trace: &mut Trace,
) -> Result<(), ReadError> {
    let file_read = form.file.is_some();
    let Some(slot) = text_slot(form, name) else {
        log::debug!("ignoring unknown upload field {name:?}");
        return Ok(());
    };
    if slot.is_some() {
        return Err(invalid(name, "appears more than once in the form").into());
    }
    if name == field::OFFSET && file_read {
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
        field::SESSION_ID | field::CAMERA_ID => claim_once_named(state, form, trace),
        field::CHECKSUM => {
            form.expected = Some(parse_checksum(
                form.checksum.as_deref().unwrap_or_default(),
            )?);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Where the text field `name` goes in the form; `None` for a field the
/// protocol does not have.
fn text_slot<'f>(form: &'f mut Form<'_>, name: &str) -> Option<&'f mut Option<String>> {
    match name {
        field::SESSION_ID => Some(&mut form.session_id),
        field::CAMERA_ID => Some(&mut form.camera_id),
        field::CHECKSUM => Some(&mut form.checksum),
        field::MANIFEST => Some(&mut form.manifest),
        field::OFFSET => Some(&mut form.offset),
        _ => None,
    }
}

/// Once both IDs are in: checks them and the key's camera binding, and
/// claims the recording (409 while another upload of it is in flight).
fn claim_once_named<'s>(
    state: &'s State,
    form: &mut Form<'s>,
    trace: &mut Trace,
) -> Result<(), ReadError> {
    let session = form.session_id.as_deref().map(parse_session).transpose()?;
    let camera = form.camera_id.as_deref().map(parse_camera).transpose()?;
    if let (Some(s), Some(c)) = (session, camera) {
        trace.grant.camera(c)?;
        let rec = RecordingId::new(s, c);
        trace.recording = Some(rec.to_string());
        form.claim = Some(state.claim(&rec)?);
        form.rec = Some(rec);
    }
    Ok(())
}
