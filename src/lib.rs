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
//! * [`base::ids::RecordingId`]: a session and a camera; the only way paths get
//!   their components, and so the path-traversal guard.
//! * [`base::manifest::Manifest`]: the metadata that travels with every recording,
//!   validated field by field.
//! * [`base::layout::PiLayout`] / [`base::layout::ServerLayout`]: where every file lives.
//!
//! ```
//! use soccer_rig::base::ids::RecordingId;
//! use soccer_rig::base::layout::PiLayout;
//!
//! let rec = RecordingId::parse("GAME_20240315_140000_CAM_C").unwrap();
//! let pi = PiLayout::new("/mnt/nvme");
//! assert!(pi.manifest(&rec).ends_with("GAME_20240315_140000_CAM_C.json"));
//! ```
//!
//! Every byte is hashed once on each side while it moves ([`base::checksum`]);
//! every file others read is written atomically ([`base::fsx`]).

//! # The house
//!
//! Two layers. [`base`] holds the foundations every program shares (IDs,
//! paths, digests, the manifest, wire types, config, ffmpeg). Above it, one
//! module per program, named after it:
//!
//! | module | program | job |
//! |---|---|---|
//! | [`record`] | rig-record | capture into the Pi layout, manifest at stop |
//! | [`base::manifest`] | rig-manifest | build, validate and verify manifests |
//! | [`upload`] | rig-upload | offload: upload, confirm, compare, retry |
//! | [`receive`] | rig-receive | the protocol's HTTP server |
//! | [`store`] | rig-receive, rig-check | the server's storage: commit, stored digests, listing, partials, thumbnails |
//! | [`stitch`] | rig-stitch | calibration, time alignment, the panorama |
//! | [`check`] | rig-check | verify trees, pre-flight a node, probe a server |
//!
//! [`store`] sits between the two layers: it is the one module that reads
//! and writes the server's files, for [`receive`] and [`check`] (and later
//! [`stitch`]).
//!
//! The binaries in `src/bin/` parse flags and call these; they hold no
//! logic of their own. Each program module keeps its files private and
//! re-exports (`pub use`) what the binaries and the tests need; no two
//! sibling modules import each other.

#![deny(missing_docs)]

pub mod base;
pub mod check;
pub mod receive;
pub mod record;
pub mod stitch;
pub mod store;
pub mod upload;
