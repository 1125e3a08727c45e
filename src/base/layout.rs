//! Every path of the Pi and server storage layouts of PROTOCOL.md.
//!
//! No other code builds these paths by hand. Path components come only from
//! parsed IDs ([`crate::base::ids`]), which cannot contain `/` or `..`, so every
//! path here stays under its root.
//!
//! ```text
//! Pi (root = node.storage_root)          server (storage.*)
//! recordings/S/C/S_C.mp4                 sessions/S/C/recording.mp4
//! manifests/S/C/S_C.json                 sessions/S/C/manifest.json
//! manifests/S/C/S_C.offload.json         sessions/S/C/recording.sha256
//!                                        sessions/S/C/manifest.client.json
//! .rig-upload.lock                       sessions/S/stitched/panorama.mp4
//!                                        processing/jobs.json (+ jobs.lock, stitch.lock)
//!                                        temp/
//! ```
//!
//! Two files extend PROTOCOL.md's layout: the Pi's `S_C.offload.json` (the
//! offload state, beside the manifest) and the server's `recording.sha256`,
//! the digest computed while receiving, in `sha256sum -c` format, so confirm
//! never re-reads a 20 GB file and an admin can check it with coreutils.

use std::path::{Path, PathBuf};

use crate::base::config::StorageConfig;
use crate::base::ids::{CameraId, RecordingId, SessionId};

/// The recording's name in a server camera directory `sessions/S/C/`.
pub const SERVER_RECORDING: &str = "recording.mp4";

/// The manifest's name in a server camera directory `sessions/S/C/`.
pub const SERVER_MANIFEST: &str = "manifest.json";

/// The client's own manifest text, kept verbatim in `sessions/S/C/` when
/// rig-receive stored a translated or repaired `manifest.json` instead.
pub const SERVER_CLIENT_MANIFEST: &str = "manifest.client.json";

/// The digest file's name in a server camera directory `sessions/S/C/`.
pub const SERVER_DIGEST: &str = "recording.sha256";

/// Every file a server camera directory `sessions/S/C/` may hold.
pub const SERVER_CAMERA_FILES: [&str; 4] = [
    SERVER_RECORDING,
    SERVER_MANIFEST,
    SERVER_DIGEST,
    SERVER_CLIENT_MANIFEST,
];

/// The server recording that belongs to a server manifest: the
/// `recording.mp4` beside a file named `manifest.json`. `None` for any other
/// file name, which is then not in the server layout.
pub fn server_recording_beside(manifest: &Path) -> Option<PathBuf> {
    if manifest.file_name()? != SERVER_MANIFEST {
        return None;
    }
    Some(manifest.with_file_name(SERVER_RECORDING))
}

/// The Pi's layout under its storage root (default `/mnt/nvme`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiLayout {
    /// The storage root.
    pub root: PathBuf,
}

impl PiLayout {
    /// The layout under `root`.
    pub fn new(root: impl Into<PathBuf>) -> PiLayout {
        PiLayout { root: root.into() }
    }

    /// `recordings/`
    pub fn recordings_dir(&self) -> PathBuf {
        self.root.join("recordings")
    }

    /// `manifests/`
    pub fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }

    /// `recordings/S/C/`
    pub fn recording_dir(&self, rec: &RecordingId) -> PathBuf {
        self.recordings_dir()
            .join(rec.session.as_str())
            .join(rec.camera.as_str())
    }

    /// `recordings/S/C/S_C.mp4`
    pub fn recording(&self, rec: &RecordingId) -> PathBuf {
        self.recording_dir(rec).join(rec.video_file_name())
    }

    /// `manifests/S/C/`
    pub fn manifest_dir(&self, rec: &RecordingId) -> PathBuf {
        self.manifests_dir()
            .join(rec.session.as_str())
            .join(rec.camera.as_str())
    }

    /// `manifests/S/C/S_C.json`
    pub fn manifest(&self, rec: &RecordingId) -> PathBuf {
        self.manifest_dir(rec).join(format!("{rec}.json"))
    }

    /// `manifests/S/C/S_C.offload.json`: the offload state of one recording.
    pub fn offload_state(&self, rec: &RecordingId) -> PathBuf {
        self.manifest_dir(rec).join(format!("{rec}.offload.json"))
    }

    /// `.rig-upload.lock`: held by the one rig-upload allowed to run.
    pub fn upload_lock(&self) -> PathBuf {
        self.root.join(".rig-upload.lock")
    }
}

/// The server's layout (PROTOCOL.md "On Server").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLayout {
    /// `sessions/`
    pub sessions: PathBuf,
    /// `processing/`
    pub processing: PathBuf,
    /// Uploads in flight.
    pub temp: PathBuf,
}

impl ServerLayout {
    /// The layout the storage config describes.
    pub fn from_config(storage: &StorageConfig) -> ServerLayout {
        ServerLayout {
            sessions: storage.sessions_path.clone(),
            processing: storage.processing_path.clone(),
            temp: storage.temp_path.clone(),
        }
    }

    /// The layout with all three directories under one root.
    pub fn under(root: &Path) -> ServerLayout {
        ServerLayout::from_config(&StorageConfig::under(root))
    }

    /// `sessions/S/`
    pub fn session_dir(&self, session: &SessionId) -> PathBuf {
        self.sessions.join(session.as_str())
    }

    /// `sessions/S/C/`
    pub fn camera_dir(&self, session: &SessionId, camera: CameraId) -> PathBuf {
        self.session_dir(session).join(camera.as_str())
    }

    /// `sessions/S/C/recording.mp4`
    pub fn recording(&self, session: &SessionId, camera: CameraId) -> PathBuf {
        self.camera_dir(session, camera).join(SERVER_RECORDING)
    }

    /// `sessions/S/C/manifest.json`
    pub fn manifest(&self, session: &SessionId, camera: CameraId) -> PathBuf {
        self.camera_dir(session, camera).join(SERVER_MANIFEST)
    }

    /// `sessions/S/C/recording.sha256`: the digest computed at receive time.
    pub fn digest(&self, session: &SessionId, camera: CameraId) -> PathBuf {
        self.camera_dir(session, camera).join(SERVER_DIGEST)
    }

    /// `sessions/S/C/manifest.client.json`: the manifest text the client
    /// sent, verbatim, when the stored `manifest.json` differs from it
    /// (translated from another format or repaired).
    pub fn client_manifest(&self, session: &SessionId, camera: CameraId) -> PathBuf {
        self.camera_dir(session, camera)
            .join(SERVER_CLIENT_MANIFEST)
    }

    /// `sessions/S/stitched/`
    pub fn stitched_dir(&self, session: &SessionId) -> PathBuf {
        self.session_dir(session).join("stitched")
    }

    /// `sessions/S/stitched/panorama.mp4`
    pub fn panorama(&self, session: &SessionId) -> PathBuf {
        self.stitched_dir(session).join("panorama.mp4")
    }

    /// `sessions/S/thumb.jpg`: one frame of the session, extracted once by
    /// rig-receive for its status page.
    pub fn thumbnail(&self, session: &SessionId) -> PathBuf {
        self.session_dir(session).join("thumb.jpg")
    }

    /// The sessions stored under `sessions/`, sorted: every directory whose
    /// name is a valid session ID (anything else there is not ours and is
    /// skipped). A missing `sessions/` holds none.
    pub fn session_ids(&self) -> std::io::Result<Vec<SessionId>> {
        let entries = match std::fs::read_dir(&self.sessions) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(crate::base::fsx::with_path(&self.sessions)(e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(crate::base::fsx::with_path(&self.sessions))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| SessionId::parse(n).ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// `sessions/S/stitched/calibration.json`: the camera geometry
    /// `rig-stitch calibrate` measured for this session.
    pub fn calibration(&self, session: &SessionId) -> PathBuf {
        self.stitched_dir(session).join("calibration.json")
    }

    /// `sessions/S/stitched/panorama.json`: the projection and calibration
    /// the panorama beside it was made with.
    pub fn panorama_record(&self, session: &SessionId) -> PathBuf {
        self.stitched_dir(session).join("panorama.json")
    }

    /// `processing/rig-calibration.json`: the rig's latest calibration, the
    /// prior of the next `rig-stitch calibrate` (rigs are re-erected every
    /// match, but not very differently).
    pub fn rig_calibration(&self) -> PathBuf {
        self.processing.join("rig-calibration.json")
    }

    /// `processing/jobs.json`
    pub fn jobs_file(&self) -> PathBuf {
        self.processing.join("jobs.json")
    }

    /// `processing/jobs.lock`: serializes read-modify-write of `jobs.json`.
    pub fn jobs_lock(&self) -> PathBuf {
        self.processing.join("jobs.lock")
    }

    /// `processing/stitch.lock`: held by the one `rig-stitch --pending` run
    /// allowed at a time, so a timer or cron never starts a second batch of
    /// encodes beside the first.
    pub fn stitch_lock(&self) -> PathBuf {
        self.processing.join("stitch.lock")
    }

    /// The temp directory for uploads in flight.
    pub fn temp_dir(&self) -> &Path {
        &self.temp
    }
}

/// The line `recording.sha256` holds: `sha256sum` format.
pub fn digest_line(sha256: &crate::base::checksum::Sha256) -> String {
    format!("{sha256}  {SERVER_RECORDING}\n")
}

/// The digest from a `recording.sha256` line, if it is well-formed.
pub fn parse_digest_line(text: &str) -> Option<crate::base::checksum::Sha256> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> RecordingId {
        RecordingId::parse("GAME_20240315_140000_CAM_C").unwrap()
    }

    #[test]
    fn pi_paths_match_protocol() {
        let pi = PiLayout::new("/mnt/nvme");
        assert_eq!(
            pi.recording(&rec()),
            Path::new(
                "/mnt/nvme/recordings/GAME_20240315_140000/CAM_C/GAME_20240315_140000_CAM_C.mp4"
            )
        );
        assert_eq!(
            pi.manifest(&rec()),
            Path::new(
                "/mnt/nvme/manifests/GAME_20240315_140000/CAM_C/GAME_20240315_140000_CAM_C.json"
            )
        );
    }

    #[test]
    fn server_paths_match_protocol() {
        let s = ServerLayout::from_config(&StorageConfig::default());
        let r = rec();
        assert_eq!(
            s.recording(&r.session, r.camera),
            Path::new("/data/soccer-rig/sessions/GAME_20240315_140000/CAM_C/recording.mp4")
        );
        assert_eq!(
            s.manifest(&r.session, r.camera),
            Path::new("/data/soccer-rig/sessions/GAME_20240315_140000/CAM_C/manifest.json")
        );
        assert_eq!(
            s.panorama(&r.session),
            Path::new("/data/soccer-rig/sessions/GAME_20240315_140000/stitched/panorama.mp4")
        );
        assert_eq!(
            s.jobs_file(),
            Path::new("/data/soccer-rig/processing/jobs.json")
        );
    }

    #[test]
    fn recording_beside_a_server_manifest() {
        let s = ServerLayout::under(Path::new("/srv"));
        let r = rec();
        assert_eq!(
            server_recording_beside(&s.manifest(&r.session, r.camera)),
            Some(s.recording(&r.session, r.camera))
        );
        assert_eq!(
            server_recording_beside(Path::new("manifest.json")),
            Some(PathBuf::from("recording.mp4"))
        );
        assert_eq!(server_recording_beside(Path::new("/srv/x/S_C.json")), None);
    }

    #[test]
    fn session_ids_lists_valid_directories_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = ServerLayout::under(dir.path());
        assert_eq!(s.session_ids().unwrap(), Vec::<SessionId>::new());
        for name in ["B_2", "A_1", "not valid", ".hidden"] {
            std::fs::create_dir_all(s.sessions.join(name)).unwrap();
        }
        std::fs::write(s.sessions.join("FILE_1"), b"x").unwrap();
        let names: Vec<String> = s
            .session_ids()
            .unwrap()
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(names, ["A_1", "B_2"]);
    }

    #[test]
    fn digest_line_round_trip() {
        let h: crate::base::checksum::Sha256 = "ab".repeat(32).parse().unwrap();
        assert_eq!(parse_digest_line(&digest_line(&h)), Some(h));
        assert_eq!(parse_digest_line("nonsense  recording.mp4"), None);
    }
}
