//! Where an upload's file part starts: 0, or the length of a kept partial
//! when the form asks to resume from it (the resume extension).

use super::Form;
use super::errors::invalid;
use crate::base::protocol::{code, field};
use crate::receive::ApiError;
use crate::receive::state::State;

/// Where the file part starts: 0, or a partial's length when the form
/// asked to resume from it (409 with the partial's length otherwise).
pub(super) fn resume_point(state: &State, form: &mut Form) -> Result<u64, ApiError> {
    if let (Some(rec), Some(c)) = (form.rec.clone(), form.expected) {
        form.partial_key = Some((rec, c));
    }
    let Some(text) = form.offset.as_deref() else {
        return Ok(0);
    };
    let offset: u64 = text.trim().parse().map_err(|_| {
        invalid(
            field::OFFSET,
            &format!("must be a byte count, got {text:?}"),
        )
    })?;
    let Some((rec, checksum)) = form.partial_key.clone() else {
        return Err(invalid(
            field::OFFSET,
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
