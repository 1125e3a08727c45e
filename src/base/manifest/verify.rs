//! Validating manifests and verifying recordings against them: the logic of
//! `rig-manifest validate` and `rig-manifest verify`.
//!
//! A manifest names its video by recording ID, and the layouts say where that
//! video lives: beside a server manifest (`sessions/S/C/manifest.json` ->
//! `recording.mp4`), or in the Pi layout (`ROOT/manifests/S/C/S_C.json` ->
//! `ROOT/recordings/S/C/S_C.mp4`). [`locate_video`] knows both; anything else
//! falls back to `file.name` in the manifest's own directory.

use std::io;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::base::checksum;
use crate::base::checksum::Sha256;
use crate::base::ids::RecordingId;
use crate::base::layout::{self, PiLayout};
use crate::base::manifest::{Manifest, ManifestError, Problem};

/// The outcome of validating one manifest file.
#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    /// The manifest file.
    pub manifest: PathBuf,
    /// True when there are no problems.
    pub valid: bool,
    /// Every problem, `field: message`; for unreadable or non-JSON files one
    /// problem on `(file)` or `(document)`.
    pub problems: Vec<ProblemOut>,
}

/// A problem as printed in `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct ProblemOut {
    /// Dotted field path.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl From<Problem> for ProblemOut {
    fn from(p: Problem) -> Self {
        ProblemOut {
            field: p.field,
            message: p.message,
        }
    }
}

/// Reads a manifest, turning every failure into problems with a field path.
pub fn read_with_problems(path: &Path) -> Result<Manifest, Vec<ProblemOut>> {
    Manifest::read(path).map_err(|e| match e {
        ManifestError::Invalid(problems) => problems.into_iter().map(ProblemOut::from).collect(),
        ManifestError::Io { source, .. } => vec![ProblemOut {
            field: "(file)".into(),
            message: format!("cannot read: {source}"),
        }],
        ManifestError::Json(e) => vec![ProblemOut {
            field: "(document)".into(),
            message: format!("not valid JSON: {e}"),
        }],
    })
}

/// Validates each manifest file.
pub fn validate_files(paths: &[PathBuf]) -> Vec<Validation> {
    paths
        .iter()
        .map(|p| {
            let problems = read_with_problems(p).err().unwrap_or_default();
            Validation {
                manifest: p.clone(),
                valid: problems.is_empty(),
                problems,
            }
        })
        .collect()
}

/// Where the video of `manifest` (read from `manifest_path`) lives.
pub fn locate_video(manifest_path: &Path, manifest: &Manifest) -> PathBuf {
    // Server layout: sessions/S/C/manifest.json beside recording.mp4.
    if let Some(video) = layout::server_recording_beside(manifest_path) {
        return video;
    }
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    // Pi layout: ROOT/manifests/S/C/S_C.json.
    if let Ok(rec) = manifest.recording_id() {
        let camera = dir;
        let session = camera.parent();
        let manifests = session.and_then(Path::parent);
        let root = manifests.and_then(Path::parent);
        let in_pi_layout = camera.ends_with(rec.camera.as_str())
            && session.is_some_and(|s| s.ends_with(rec.session.as_str()))
            && manifests.is_some_and(|m| m.ends_with("manifests"));
        if let (true, Some(root)) = (in_pi_layout, root) {
            return PiLayout::new(root).recording(&rec);
        }
    }
    dir.join(&manifest.file.name)
}

/// A recording's state against its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VerifyStatus {
    /// Digest and size match.
    Ok,
    /// The bytes differ from what the manifest says.
    Mismatch,
    /// The video file is not there.
    Missing,
    /// The manifest itself is invalid, so there is nothing to verify against.
    Invalid,
    /// The video exists but could not be read.
    Unreadable,
}

impl VerifyStatus {
    /// Upper-case label as printed.
    pub fn label(self) -> &'static str {
        match self {
            VerifyStatus::Ok => "OK",
            VerifyStatus::Mismatch => "MISMATCH",
            VerifyStatus::Missing => "MISSING",
            VerifyStatus::Invalid => "INVALID",
            VerifyStatus::Unreadable => "UNREADABLE",
        }
    }
}

/// The outcome of verifying one recording.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The recording ID, when the manifest names one.
    pub recording_id: Option<String>,
    /// The video file checked.
    pub video: Option<PathBuf>,
    /// The verdict.
    pub status: VerifyStatus,
    /// Digest the manifest records.
    pub expected_sha256: Option<Sha256>,
    /// Digest of the bytes on disk.
    pub actual_sha256: Option<Sha256>,
    /// Size the manifest records.
    pub expected_size: Option<u64>,
    /// Size on disk.
    pub actual_size: Option<u64>,
    /// Problems or the I/O error, when there are any.
    pub detail: Vec<String>,
}

/// Verifies recordings against their manifests, hashing the videos in
/// parallel. `video_override` replaces the located video (only sensible with
/// one manifest).
pub fn verify_manifests(paths: &[PathBuf], video_override: Option<&Path>) -> Vec<Verification> {
    paths
        .par_iter()
        .map(|p| verify_one(p, video_override))
        .collect()
}

fn verify_one(path: &Path, video_override: Option<&Path>) -> Verification {
    let mut out = Verification {
        manifest: path.to_path_buf(),
        recording_id: None,
        video: None,
        status: VerifyStatus::Invalid,
        expected_sha256: None,
        actual_sha256: None,
        expected_size: None,
        actual_size: None,
        detail: Vec::new(),
    };
    let manifest = match read_with_problems(path) {
        Ok(m) => m,
        Err(problems) => {
            out.detail = problems
                .into_iter()
                .map(|p| format!("{}: {}", p.field, p.message))
                .collect();
            return out;
        }
    };
    out.recording_id = manifest
        .recording_id()
        .ok()
        .map(|r: RecordingId| r.to_string());
    out.expected_sha256 = Some(manifest.checksum.value);
    out.expected_size = Some(manifest.file.size_bytes);
    let video = video_override
        .map(Path::to_path_buf)
        .unwrap_or_else(|| locate_video(path, &manifest));
    out.video = Some(video.clone());
    compare_file(&mut out, &video, &manifest);
    out
}

/// Hashes the video and records the outcome against the manifest's
/// checksum and size.
fn compare_file(out: &mut Verification, video: &Path, manifest: &Manifest) {
    match checksum::hash_file(video) {
        Ok(d) => {
            let same = d.sha256 == manifest.checksum.value && d.size == manifest.file.size_bytes;
            out.status = if same {
                VerifyStatus::Ok
            } else {
                VerifyStatus::Mismatch
            };
            out.actual_sha256 = Some(d.sha256);
            out.actual_size = Some(d.size);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            out.status = VerifyStatus::Missing;
            out.detail.push(e.to_string());
        }
        Err(e) => {
            out.status = VerifyStatus::Unreadable;
            out.detail.push(e.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::from_json(crate::base::manifest::tests::EXAMPLE).unwrap()
    }

    #[test]
    fn locates_videos_in_both_layouts() {
        let m = manifest();
        assert_eq!(
            locate_video(
                Path::new("/srv/sessions/GAME_20240315_140000/CAM_C/manifest.json"),
                &m
            ),
            Path::new("/srv/sessions/GAME_20240315_140000/CAM_C/recording.mp4")
        );
        assert_eq!(
            locate_video(
                Path::new(
                    "/mnt/nvme/manifests/GAME_20240315_140000/CAM_C/GAME_20240315_140000_CAM_C.json"
                ),
                &m
            ),
            Path::new(
                "/mnt/nvme/recordings/GAME_20240315_140000/CAM_C/GAME_20240315_140000_CAM_C.mp4"
            )
        );
        assert_eq!(
            locate_video(Path::new("/tmp/x/whatever.json"), &m),
            Path::new("/tmp/x/GAME_20240315_140000_CAM_C.mp4")
        );
    }
}
