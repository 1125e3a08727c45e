//! A Pi for rig-upload tests: a storage root, a config pointing at a
//! server, and real clips recorded into it with real manifests.

use std::fs;
use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::layout::PiLayout;
use soccer_rig::base::manifest::describe::{self, DescribeOptions};

const BIN: &str = env!("CARGO_BIN_EXE_rig-upload");
/// The retry delay the tests configure: waits are 0.05, 0.1, 0.2, 0.4 s.
pub const DELAY: f64 = 0.05;

/// A Pi storage root with its config and a 2 s clip.
pub struct Rig {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    pub clip: PathBuf,
}

impl Rig {
    /// A Pi storage root and a config pointing at `url`, with tiny retry
    /// delays; `extra` adds lines to the `offload:` section.
    pub fn new(url: &str, extra: &str) -> Rig {
        Rig::with_retries(url, 5, extra)
    }

    /// Like [`Rig::new`] with `retry_count` attempts.
    pub fn with_retries(url: &str, retries: u32, extra: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("nvme");
        fs::create_dir_all(&root).unwrap();
        let config = dir.path().join("config.yaml");
        fs::write(
            &config,
            format!(
                "offload:\n  server_url: \"{url}\"\n  retry_count: {retries}\n  retry_delay_sec: {DELAY}\n\
                 \x20 connect_timeout_sec: 5\n  upload_timeout_sec: 20\n{extra}\
                 node:\n  storage_root: \"{}\"\n",
                root.display()
            ),
        )
        .unwrap();
        let clip = super::small_clip(dir.path(), "clip.mp4");
        Rig {
            _dir: dir,
            root,
            config,
            clip,
        }
    }

    pub fn layout(&self) -> PiLayout {
        PiLayout::new(&self.root)
    }

    /// A recording of the clip with a real manifest, starting at `start`.
    pub fn add(&self, session: &str, camera: CameraId, start: &str) -> RecordingId {
        let rec = RecordingId::new(SessionId::parse(session).unwrap(), camera);
        let video = self.layout().recording(&rec);
        fs::create_dir_all(video.parent().unwrap()).unwrap();
        fs::copy(&self.clip, &video).unwrap();
        let m = describe::describe(
            &video,
            &rec,
            &DescribeOptions {
                ffprobe: "ffprobe".into(),
                start: Some(start.parse().unwrap()),
                ..DescribeOptions::default()
            },
        )
        .unwrap();
        m.write_atomic(&self.layout().manifest(&rec)).unwrap();
        rec
    }

    pub fn upload(&self, args: &[&str]) -> Output {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        super::run(BIN, &all)
    }

    pub fn state(&self, rec: &RecordingId) -> Value {
        let text = fs::read_to_string(self.layout().offload_state(rec)).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    pub fn video(&self, rec: &RecordingId) -> PathBuf {
        self.layout().recording(rec)
    }
}
