//! Per-run choices of an offload that are not configuration.

/// Per-run choices that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct OffloadOptions {
    /// Hash the file before sending and refuse it if the manifest's checksum
    /// differs (the bytes changed since the manifest was written). By
    /// default the manifest's checksum is trusted and the file read once.
    pub rehash: bool,
    /// Prepare everything (manifest, checksum) and report what would be
    /// sent, without a lock, a state write or a network request.
    pub dry_run: bool,
    /// Show progress: a bar when stderr is a terminal, else a log line per
    /// 10%. Off by default (library callers decide).
    pub progress: bool,
    /// Wait for another rig-upload to finish instead of failing with
    /// [`OffloadError::Locked`](super::OffloadError::Locked) (rig-record after a stop).
    pub wait_for_lock: bool,
    /// Never resume: no status request, every attempt sends the whole file
    /// (`--no-resume`). By default an upload continues from the bytes an
    /// interrupted one left on the server (PROTOCOL-EXTENSIONS.md).
    pub no_resume: bool,
}
