//! Configuration: the Pi's and the server's `config.yaml` of PROTOCOL.md.
//!
//! One file format serves both machines: a Pi's file normally holds `offload:`
//! (and our `node:` and `recording:`), the server's `storage:`, `server:` and
//! `processing:`; every section and every key is optional and takes the seed's
//! default when absent, so the seed's two example files parse as they are and
//! one file can configure the whole rig on a single machine.
//!
//! Unknown keys and wrong types are errors that name the key and its line:
//! a misspelt `retry_cuont` must not silently fall back to a default on a
//! sideline.
//!
//! Where the file is found, first match wins: the program's `--config PATH`,
//! then `$SOCCER_RIG_CONFIG`, then [`DEFAULT_CONFIG_PATH`]. A path given by
//! flag or environment must exist; the default path may be absent, and then
//! every default applies. Command-line flags override file values
//! (flag > env > file > default).

mod check;

pub use check::{InvalidValue, zone_named};

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::base::ids::CameraId;

/// Where programs look for their configuration when not told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/soccer-rig/config.yaml";

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "SOCCER_RIG_CONFIG";

/// Bytes in one of the config's gigabytes. Sizes in the seed (`_gb`) are
/// decimal gigabytes, like disk vendors and `df -H`.
pub const GB: f64 = 1e9;

/// A configuration problem: the file, and what is wrong (with key and line).
#[derive(Debug)]
pub struct ConfigError {
    /// The file involved, when there is one.
    pub path: Option<PathBuf>,
    /// What is wrong.
    pub message: String,
    /// The underlying error (the read, the YAML parse, the ID).
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "config {}: {}", p.display(), self.message),
            None => write!(f, "config: {}", self.message),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Pi: how and where to offload (PROTOCOL.md `offload:`).
    pub offload: OffloadConfig,
    /// Server: where recordings are kept (PROTOCOL.md `storage:`).
    pub storage: StorageConfig,
    /// Server: the HTTP daemon (PROTOCOL.md `server:`).
    pub server: ServerConfig,
    /// Server and Pi: ffmpeg and the panorama (PROTOCOL.md `processing:`).
    pub processing: ProcessingConfig,
    /// Pi: this node's identity and storage (our addition).
    pub node: NodeConfig,
    /// Pi: capture settings (our addition).
    pub recording: RecordingConfig,
}

/// `offload:`: the Pi's upload client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OffloadConfig {
    /// Base URL of rig-receive. Default `http://192.168.1.200:8081`.
    pub server_url: String,
    /// Offload from cron or the wrapper script without being asked. Default false.
    pub auto_upload: bool,
    /// rig-record offloads the recording right after writing its manifest. Default false.
    pub upload_on_record_stop: bool,
    /// Attempts per recording, the first included. Default 5.
    pub retry_count: u32,
    /// First retry delay; each later one doubles (5, 10, 20, 40 s). Default 5.
    pub retry_delay_sec: f64,
    /// Read/send buffer size in KiB. Default 1024.
    pub chunk_size_kb: u32,
    /// Compare the confirm digest with ours before marking offloaded. Default true.
    pub verify_checksum: bool,
    /// Delete the local recording once the confirm digest matched. Default false.
    pub delete_after_confirm: bool,
    /// Longest an upload request may take, in seconds. Default 3600.
    pub upload_timeout_sec: u64,
    /// Longest a TCP connect may take, in seconds. Default 10.
    pub connect_timeout_sec: u64,
    /// API key sent as `Authorization: Bearer <key>` (issue 10). Default none.
    pub api_key: Option<String>,
    /// File holding the API key on its first line, so the secret stays out
    /// of this file; used when `api_key` is not set. Default none.
    pub api_key_file: Option<PathBuf>,
    /// PEM CA certificate(s) an `https://` server must chain to (a private
    /// rig CA); none = the bundled Mozilla roots. Default none.
    pub ca_file: Option<PathBuf>,
}

impl Default for OffloadConfig {
    fn default() -> Self {
        OffloadConfig {
            server_url: "http://192.168.1.200:8081".into(),
            auto_upload: false,
            upload_on_record_stop: false,
            retry_count: 5,
            retry_delay_sec: 5.0,
            chunk_size_kb: 1024,
            verify_checksum: true,
            delete_after_confirm: false,
            upload_timeout_sec: 3600,
            connect_timeout_sec: 10,
            api_key: None,
            api_key_file: None,
            ca_file: None,
        }
    }
}

/// `storage:`: the server's directories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Default `/data/soccer-rig/sessions`.
    pub sessions_path: PathBuf,
    /// Default `/data/soccer-rig/processing` (holds `jobs.json`).
    pub processing_path: PathBuf,
    /// Uploads in flight; same filesystem as `sessions_path` so the final
    /// rename is atomic. Default `/data/soccer-rig/temp`.
    pub temp_path: PathBuf,
    /// Refuse uploads that would leave less free. Default 50.0 (GB).
    pub min_free_space_gb: f64,
    /// Hours the partial of an interrupted upload is kept in `temp_path`
    /// for a resume (PROTOCOL-EXTENSIONS.md). Default 48.
    pub partial_ttl_hours: u64,
    /// Most bytes of partials one camera may hold in `temp_path`, GB; the
    /// oldest go first beyond it. Default 50.0 (GB).
    pub partial_max_gb: f64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig::under(Path::new("/data/soccer-rig"))
    }
}

impl StorageConfig {
    /// The three directories under one root, as PROTOCOL.md lays them out
    /// (what `--root DIR` means for the server programs).
    pub fn under(root: &Path) -> StorageConfig {
        StorageConfig {
            sessions_path: root.join("sessions"),
            processing_path: root.join("processing"),
            temp_path: root.join("temp"),
            min_free_space_gb: 50.0,
            partial_ttl_hours: 48,
            partial_max_gb: 50.0,
        }
    }

    /// Points the three directories at `root`, keeping the other settings.
    pub fn set_root(&mut self, root: &Path) {
        let (floor, ttl, cap) = (
            self.min_free_space_gb,
            self.partial_ttl_hours,
            self.partial_max_gb,
        );
        *self = StorageConfig::under(root);
        self.min_free_space_gb = floor;
        self.partial_ttl_hours = ttl;
        self.partial_max_gb = cap;
    }
}

/// `server:`: rig-receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address. Default `0.0.0.0`.
    pub host: String,
    /// Listen port. Default 8081.
    pub port: u16,
    /// Largest upload accepted (413 beyond). Default 50.0 (GB).
    pub max_upload_size_gb: f64,
    /// Longest one upload may take, in seconds. Default 3600.
    pub upload_timeout_sec: u64,
    /// No longer used (issue 17): each connection is served by a thread
    /// of its own, up to `max_connections`. Accepted so that old files
    /// still parse. Default 8.
    pub workers: usize,
    /// Longest a body read may wait for a byte, in seconds: the upload
    /// fails with 408 and its temp file is removed. Default 60.
    pub stall_timeout_sec: u64,
    /// Most connections open at once; more are answered 503 at once and
    /// closed. Each costs one file descriptor and one thread. Default 2048.
    pub max_connections: usize,
    /// Longest from a request's first byte to the end of its headers, in
    /// seconds; then 408 and close. Default 10.
    pub header_timeout_sec: u64,
    /// Longest an open keep-alive connection waits for its next request, in
    /// seconds; then it is closed. Default 30.
    pub idle_timeout_sec: u64,
    /// Longest one write of a reply may wait for the client to read, in
    /// seconds; then the connection is dropped. Default 30.
    pub send_timeout_sec: u64,
    /// Slowest upload body accepted, KiB/s, averaged over each
    /// `stall_timeout_sec`; slower gets 408. 0 = no floor. Default 4.
    pub upload_min_kib_per_sec: u64,
    /// Longest the body of a small request (confirm, stitch) may take to
    /// arrive, in seconds; then 408. Default 10.
    pub small_body_timeout_sec: u64,
    /// On SIGTERM/SIGINT, how long uploads in flight may take to finish
    /// before the daemon exits anyway, in seconds. Default 30.
    pub shutdown_grace_sec: u64,
    /// PEM certificate (chain); with `tls_key`, rig-receive serves HTTPS
    /// only. Default none (plain HTTP).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`. Default none.
    pub tls_key: Option<PathBuf>,
    /// API keys; when any is set (here or in `api_keys_file`) every request
    /// needs `Authorization: Bearer <key>`. Default none (no authentication).
    pub api_keys: Vec<ApiKeySpec>,
    /// File of API keys, one a line, optionally followed by the cameras it
    /// may upload as (`KEY CAM_L,CAM_C`); `#` starts a comment. Default none.
    pub api_keys_file: Option<PathBuf>,
    /// Client addresses and CIDR blocks (IPv4 and IPv6) allowed to connect;
    /// others get 403. Default empty (everyone).
    pub allow_ips: Vec<String>,
    /// With API keys set, whether `GET /` (status page, thumbnails) and
    /// `GET /api/v1/health` stay open without a key. Default true.
    pub public_status: bool,
    /// The zone naive times of a flat manifest (no `Z`, no offset) are read
    /// in: `local` (this server's zone), `UTC` or an IANA name. Default `local`.
    pub naive_time_zone: String,
}

/// One entry of `server.api_keys`: a bare key (any camera) or a key bound
/// to the cameras it may upload as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApiKeySpec {
    /// A key that may upload as any camera.
    Key(String),
    /// A key and the cameras it may upload as.
    Bound {
        /// The secret.
        key: String,
        /// `CAM_L`, `CAM_C`, `CAM_R`.
        cameras: Vec<String>,
    },
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 8081,
            max_upload_size_gb: 50.0,
            upload_timeout_sec: 3600,
            workers: 8,
            stall_timeout_sec: 60,
            max_connections: 2048,
            header_timeout_sec: 10,
            idle_timeout_sec: 30,
            send_timeout_sec: 30,
            upload_min_kib_per_sec: 4,
            small_body_timeout_sec: 10,
            shutdown_grace_sec: 30,
            tls_cert: None,
            tls_key: None,
            api_keys: Vec::new(),
            api_keys_file: None,
            allow_ips: Vec::new(),
            public_status: true,
            naive_time_zone: "local".into(),
        }
    }
}

/// `processing:`: ffmpeg and the panorama.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessingConfig {
    /// ffmpeg binary, used by every program that runs it. Default `/usr/bin/ffmpeg`.
    pub ffmpeg_path: PathBuf,
    /// ffprobe binary. Default `/usr/bin/ffprobe`.
    pub ffprobe_path: PathBuf,
    /// Panorama codec, `h264` or `h265` (libx264/libx265), or a hardware
    /// encoder of either (`h264_nvenc`, `hevc_vaapi`, ...), probed before use
    /// with a fallback to software. Default `h264`.
    pub output_codec: String,
    /// x264/x265 preset. Default `medium`.
    pub output_preset: String,
    /// Columns shared by neighbouring cameras, cross-faded. Default 100.
    pub stitch_overlap_px: u32,
    /// Widest panorama written; wider is scaled down (0 = only the codec's
    /// playable limit). Default 0.
    pub output_width: u32,
    /// `content` (the clocks are checked and corrected by what the cameras
    /// saw) or `clock` (the manifests alone). Default `content`.
    pub sync_mode: String,
    /// Time offsets searched either side of the clocks' answer, seconds
    /// (four times as far for a clock that was not NTP-synced). Default 2.0.
    pub sync_search_sec: f64,
    /// Length of each of up to three windows analysed for the time
    /// alignment, seconds. Default 10.0.
    pub sync_window_sec: f64,
    /// Yaw between neighbouring cameras, degrees: `rig-stitch calibrate`'s
    /// starting point when the rig has no earlier calibration. Default 60.
    pub nominal_yaw_deg: f64,
    /// The cameras' horizontal field of view, degrees, likewise. Default 75.
    pub nominal_hfov_deg: f64,
    /// A fixed (hand-edited) calibration file rig-stitch uses instead of each
    /// session's own. Default empty: the session's `stitched/calibration.json`.
    pub calibration_file: PathBuf,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            ffmpeg_path: "/usr/bin/ffmpeg".into(),
            ffprobe_path: "/usr/bin/ffprobe".into(),
            output_codec: "h264".into(),
            output_preset: "medium".into(),
            stitch_overlap_px: 100,
            output_width: 0,
            sync_mode: "content".into(),
            sync_search_sec: 2.0,
            sync_window_sec: 10.0,
            nominal_yaw_deg: 60.0,
            nominal_hfov_deg: 75.0,
            calibration_file: PathBuf::new(),
        }
    }
}

/// `node:`: a Pi's identity and storage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Root of the Pi layout (`recordings/`, `manifests/`). Default `/mnt/nvme`.
    pub storage_root: PathBuf,
    /// This node's camera, `CAM_L`, `CAM_C` or `CAM_R`; its position follows. Default `CAM_C`.
    pub camera_id: String,
    /// Free space a recording without a set duration needs to start. Default 10.0 (GB).
    pub min_free_space_gb: f64,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            storage_root: "/mnt/nvme".into(),
            camera_id: "CAM_C".into(),
            min_free_space_gb: 10.0,
        }
    }
}

impl NodeConfig {
    /// The configured camera, parsed.
    pub fn camera(&self) -> Result<CameraId, ConfigError> {
        CameraId::parse(&self.camera_id).map_err(|e| ConfigError {
            path: None,
            message: format!("node.camera_id: {e}"),
            cause: Some(Box::new(e)),
        })
    }
}

/// The camera command a Raspberry Pi camera module records from by default:
/// `rpicam-vid` writing raw YUV 4:2:0 frames at the default size and rate
/// (keep its `--width/--height/--framerate` equal to `recording.width/height/fps`).
pub const PI_CAMERA_SOURCE: &str = "cmd-yuv420p:rpicam-vid -t 0 -n --width 1920 --height 1080 \
                                    --framerate 30 --codec yuv420 -o -";

/// `recording:`: capture settings for rig-record. The defaults are what a
/// Raspberry Pi 5 sustains in software (it has no video encoder): H.264
/// through libx264 preset `ultrafast` at 1920x1080, 30 fps, from its camera
/// module; `rig-record --test` tells whether a node keeps up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    /// `v4l2:/dev/videoN`, `cmd:<shell command>`, `cmd-yuv420p:<shell command>`
    /// or `test`. Default [`PI_CAMERA_SOURCE`].
    pub source: String,
    /// `h264` or `h265`. Default `h264`.
    pub codec: String,
    /// ffmpeg encoder; empty picks libx264/libx265 from `codec`. Default empty.
    pub encoder: String,
    /// Encoder preset (`-preset`, e.g. `ultrafast` so a software encoder keeps
    /// up with a live camera); empty passes none, the encoder's default. Default `ultrafast`.
    pub preset: String,
    /// Frame width. Default 1920.
    pub width: u32,
    /// Frame height. Default 1080.
    pub height: u32,
    /// Frames per second. Default 30.
    pub fps: u32,
    /// Target bitrate, Mbps. Default 16.
    pub bitrate_mbps: u32,
    /// Fragmented-MP4 fragment length, seconds. Default 1.0.
    pub fragment_sec: f64,
    /// Longest time written data may sit unsynced, seconds. Default 2.0.
    pub fsync_interval_sec: f64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            source: PI_CAMERA_SOURCE.into(),
            codec: "h264".into(),
            encoder: String::new(),
            preset: "ultrafast".into(),
            width: 1920,
            height: 1080,
            fps: 30,
            bitrate_mbps: 16,
            fragment_sec: 1.0,
            fsync_interval_sec: 2.0,
        }
    }
}

impl Config {
    /// Parses YAML text; `path` only labels errors.
    pub fn from_yaml(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.map(Path::to_path_buf),
            message,
            cause: None,
        };
        // An empty file is a valid config: all defaults.
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config = serde_norway::from_str(text).map_err(|e| ConfigError {
            message: e.to_string(),
            cause: Some(Box::new(e)),
            ..err(String::new())
        })?;
        config.check().map_err(|e| err(e.0))?;
        Ok(config)
    }

    /// Finds and loads the configuration (see the module docs for the order).
    pub fn load(flag: Option<&Path>) -> Result<Config, ConfigError> {
        let env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty());
        let (path, must_exist) = match (flag, env) {
            (Some(p), _) => (p.to_path_buf(), true),
            (None, Some(p)) => (PathBuf::from(p), true),
            (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::from_yaml(&text, Some(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                log::debug!("no {}; using built-in defaults", path.display());
                Ok(Config::default())
            }
            Err(e) => Err(ConfigError {
                path: Some(path),
                message: format!("cannot read: {e}"),
                cause: Some(Box::new(e)),
            }),
        }
    }

    /// The whole configuration as YAML, defaults filled in (for `--print-config`
    /// style output and the example files).
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_files_parse_as_they_are() {
        let pi = Config::from_yaml(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/seed-pi-config.yaml"
            )),
            None,
        )
        .unwrap();
        assert_eq!(pi.offload, OffloadConfig::default());
        let server = Config::from_yaml(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/seed-server-config.yaml"
            )),
            None,
        )
        .unwrap();
        assert_eq!(server, Config::default());
    }

    #[test]
    fn defaults_match_the_seed() {
        let c = Config::default();
        assert_eq!(c.offload.server_url, "http://192.168.1.200:8081");
        assert_eq!((c.offload.retry_count, c.offload.retry_delay_sec), (5, 5.0));
        assert_eq!(
            c.storage.sessions_path,
            Path::new("/data/soccer-rig/sessions")
        );
        assert_eq!(c.storage.min_free_space_gb, 50.0);
        assert_eq!((c.server.host.as_str(), c.server.port), ("0.0.0.0", 8081));
        assert_eq!(c.processing.stitch_overlap_px, 100);
        assert_eq!(c.node.storage_root, Path::new("/mnt/nvme"));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = Config::from_yaml("offload:\n  retry_count: 3\n  retry_cuont: 4\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("retry_cuont"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let err = Config::from_yaml("server:\n  host: x\n  port: eighty\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("port"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn range_checks_name_the_key() {
        let err = Config::from_yaml("processing:\n  output_codec: vp9\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("processing.output_codec"), "{err}");
        let err = Config::from_yaml("node:\n  camera_id: CAM_Z\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.camera_id"), "{err}");
        let err = Config::from_yaml("server:\n  naive_time_zone: Mars/Olympus\n", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.naive_time_zone"), "{err}");
        assert!(Config::from_yaml("server:\n  naive_time_zone: Europe/Paris\n", None).is_ok());
    }
}
