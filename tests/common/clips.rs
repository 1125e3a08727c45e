//! Real clips made once per test binary: each file names the clips it
//! needs and keeps them in a `static` of its own.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Three 320x180 H.264 clips (one per camera, L C R), each given as (file
/// name, seconds, frames per second), made on the first call into a
/// directory that lives as long as the test binary.
pub fn three(
    cell: &'static OnceLock<[PathBuf; 3]>,
    specs: [(&str, f64, u32); 3],
) -> &'static [PathBuf; 3] {
    cell.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        specs.map(|(name, secs, fps)| super::make_clip(&dir, name, "libx264", secs, 320, 180, fps))
    })
}
