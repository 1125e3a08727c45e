//! soccer-rig moves 90-minute soccer recordings from three Raspberry Pi camera
//! nodes (CAM_L, CAM_C, CAM_R) to a central server without losing a byte, and
//! stitches them into one panorama there. This crate is the library under the
//! suite's six programs; `shared/PROTOCOL.md` is the specification.
//!
//! # From the top
//!
//! One recording's journey:
//!
//! ```text
//! Pi node                                            server
//! rig-record  --ffmpeg (fragmented MP4 on a pipe)-->  recordings/S/C/S_C.mp4 (hashed as written)
//!             --at stop-------------------------->  manifests/S/C/S_C.json
//! rig-upload  --POST /api/v1/upload (streamed)--->  rig-receive: temp/ (hashed as received)
//!                                                     -> sessions/S/C/recording.mp4 + manifest.json
//!             --POST /api/v1/upload/confirm------>  the digest stored at receive time
//!             compare -> S_C.offload.json          3 cameras present -> processing/jobs.json
//!                                                   rig-stitch -> sessions/S/stitched/panorama.mp4
//! ```
//!
//! The three types a reader needs first:
//!
//! * [`ids::RecordingId`]: a session and a camera; the only way paths get
//!   their components, and so the path-traversal guard.
//! * [`manifest::Manifest`]: the metadata that travels with every recording,
//!   validated field by field.
//! * [`layout::PiLayout`] / [`layout::ServerLayout`]: where every file lives.
//!
//! ```
//! use soccer_rig::ids::RecordingId;
//! use soccer_rig::layout::PiLayout;
//!
//! let rec = RecordingId::parse("GAME_20240315_140000_CAM_C").unwrap();
//! let pi = PiLayout::new("/mnt/nvme");
//! assert!(pi.manifest(&rec).ends_with("GAME_20240315_140000_CAM_C.json"));
//! ```
//!
//! Every byte is hashed once on each side while it moves ([`checksum`]);
//! every file others read is written atomically ([`fsx`]).

#![deny(missing_docs)]

pub mod check;
pub mod checksum;
pub mod cli;
pub mod client;
pub mod config;
pub mod describe;
pub mod ffmpeg;
pub mod fsx;
pub mod host;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod layout;
pub mod manifest;
pub mod manifest_flat;
pub mod manifest_repair;
pub mod protocol;
pub mod record;
pub mod replies;
pub mod server;
pub mod stitch;
pub mod sustain;
pub mod verify;
