//! The free-space floor (`storage.min_free_space_gb`): an upload is
//! admitted against it with the room other uploads in flight reserved
//! ([`crate::receive::space`]), and checked again while its file streams in.

use crate::base::protocol::code;
use crate::receive::state::State;
use crate::receive::{ApiError, space};

/// Admits an upload of `incoming` bytes against the free-space floor and
/// the room other uploads in flight have reserved (`space`); 507 if it
/// would leave less than the floor.
pub(super) fn reserve_space(
    state: &State,
    incoming: u64,
) -> Result<space::Reservation<'_>, ApiError> {
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
pub(super) fn check_space_midway(
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

pub(super) fn free_bytes(state: &State) -> Result<u64, ApiError> {
    state.free_bytes().map_err(|e| {
        ApiError::new(
            500,
            code::INTERNAL,
            format!("cannot tell the free space of the sessions filesystem: {e}"),
        )
    })
}

pub(super) fn no_space(state: &State, incoming: u64, short: space::Shortfall) -> ApiError {
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
