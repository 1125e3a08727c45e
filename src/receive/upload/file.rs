//! The file part: a new temp file in `temp/`, or the partial being
//! resumed, written through a hashing writer as it streams in.

use std::io::{self, Write};

use super::errors::{ReadError, internal, not_mp4, too_large};
use super::resume::resume_point;
use super::room::check_space_midway;
use super::{FilePart, Form};
use crate::base::checksum::HashingWriter;
use crate::base::protocol::code;
use crate::receive::ApiError;
use crate::receive::multipart::{Event, FormStream};
use crate::receive::state::State;

/// While a file streams in, free space is checked again every this many
/// bytes, so a chunked upload overruns the floor by at most this much
/// (one `statvfs` per 4 MiB costs nothing next to writing them).
pub(super) const FREE_SPACE_CHECK_EVERY: u64 = 4 << 20;

pub(super) fn read_file_part<R: io::Read>(
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
    let temp = state.store.upload_temp("", "").map_err(|e| {
        internal(
            &format!(
                "cannot create a temp file in {}",
                state.store.layout().temp.display()
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
pub(super) fn read_file_data<R: io::Read>(
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
                sniff_head(&mut part.head, &b)?;
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
            _ => return Err(unterminated().into()),
        }
    }
    if part.head.len() < 8 {
        return Err(not_mp4().into());
    }
    Ok(())
}

/// Keeps the file's first 8 bytes in `head`; 415 once they show it is no
/// MP4 (no `ftyp` box first).
fn sniff_head(head: &mut Vec<u8>, b: &[u8]) -> Result<(), ApiError> {
    if head.len() < 8 {
        let take = (8 - head.len()).min(b.len());
        head.extend_from_slice(&b[..take]);
        if head.len() == 8 && &head[4..8] != b"ftyp" {
            return Err(not_mp4());
        }
    }
    Ok(())
}

/// 400: the file part ended without its boundary.
fn unterminated() -> ApiError {
    ApiError::new(
        400,
        code::BAD_REQUEST,
        "multipart file part is not terminated".into(),
    )
}
