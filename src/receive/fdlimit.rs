//! The open-file limit against `server.max_connections` (issue 17).
//!
//! Each connection costs a file descriptor, and an upload or a download one
//! more; running out (`EMFILE`) used to make accept fail in a loop and
//! connection threads panic. So at start rig-receive raises its soft limit
//! to the hard one, as Go's runtime does, and warns when even that cannot
//! hold the connection cap.

use rustix::process::{Resource, getrlimit, setrlimit};

/// Descriptors the daemon needs besides its connections (listener, logs,
/// ffmpeg pipes, jobs file).
const SPARE: u64 = 64;

/// Descriptors `max_connections` may need: two each, and the spare.
pub fn needed(max_connections: usize) -> u64 {
    (max_connections as u64)
        .saturating_mul(2)
        .saturating_add(SPARE)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one; warns when the result
/// is below [`needed`]. Returns the soft limit in force (`None`: unlimited).
pub fn raise(max_connections: usize) -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => limit = getrlimit(Resource::Nofile),
            Err(e) => log::warn!("cannot raise the open-file limit: {e}"),
        }
    }
    let need = needed(max_connections);
    if let Some(soft) = limit.current
        && soft < need
    {
        log::warn!(
            "server.max_connections ({max_connections}) may need {need} open files but the \
             limit is {soft}: raise LimitNOFILE in the unit or lower server.max_connections"
        );
    }
    limit.current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        let soft = raise(16);
        assert_eq!(soft, getrlimit(Resource::Nofile).maximum);
        assert_eq!(needed(2048), 4160);
    }
}
