//! `GET /api/v1/health`: free space of the sessions filesystem and the
//! uploads in flight.

use std::sync::atomic::Ordering;

use super::state::State;
use crate::base::config::GB;
use crate::base::fsx;
use crate::base::layout::ServerLayout;
use crate::base::protocol::HealthResponse;

/// `GET /api/v1/health`.
pub fn health_of(layout: &ServerLayout, min_free_bytes: u64, active: u64) -> HealthResponse {
    let free = fsx::free_space(fsx::existing_ancestor(&layout.sessions));
    if let Err(e) = &free {
        log::error!("health: free space of {}: {e}", layout.sessions.display());
    }
    let free = free.ok();
    let degraded = free.is_none_or(|f| f < min_free_bytes);
    HealthResponse {
        status: if degraded { "degraded" } else { "healthy" }.into(),
        storage_free_gb: free.map_or(0.0, |f| (f as f64 / GB * 1000.0).round() / 1000.0),
        active_uploads: active,
    }
}

pub(super) fn health(state: &State) -> HealthResponse {
    health_of(
        state.store.layout(),
        state.limits.min_free_bytes,
        state.active.load(Ordering::SeqCst),
    )
}
