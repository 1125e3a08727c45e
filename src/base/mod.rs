//! The foundations every program stands on: names, paths, digests, the
//! manifest, the wire types, the config files, and the tools the suite runs.
//!
//! Nothing here knows which program it runs in, and nothing here imports a
//! program's module. The programs' own modules ([`crate::record`],
//! [`crate::upload`], [`crate::receive`], [`crate::stitch`],
//! [`crate::check`]) build on these; the server's files are reached only
//! through [`crate::store`]. One program uses another where it *is* its
//! client: rig-record's `--upload` runs [`crate::upload`] after a stop.
//!
//! | module | owns |
//! |---|---|
//! | [`ids`] | session, camera and recording IDs: the only way names enter paths |
//! | [`layout`] | every path on a Pi and on the server |
//! | [`checksum`] | SHA-256: the [`checksum::Sha256`] digest and its one text form, the one read-and-hash loop, parallel hashing |
//! | [`manifest`] | the manifest: types, validation, building (ffprobe), verifying (rig-manifest) |
//! | [`protocol`], [`replies`] | the HTTP protocol's request and reply types |
//! | [`config`] | both config files |
//! | [`ffmpeg`] | every ffmpeg and ffprobe process |
//! | [`jobs`] | the stitch job queue rig-receive fills and rig-stitch drains (its transitions in `jobs/transitions.rs`) |
//! | [`fsx`] | atomic writes (temp, fsync, rename), locks, free space, I/O errors that name their path |
//! | [`http`] | the HTTP client setup rig-upload and rig-check share: TLS roots, API key |
//! | [`host`], [`cli`] | host facts; the programs' shared CLI plumbing, exit codes and [`cli::Failure`] |
//! | [`units`] | sizes for people: one convention (decimal, `20.0 GB`) |

pub mod checksum;
pub mod cli;
pub mod config;
pub mod ffmpeg;
pub mod fsx;
pub mod host;
pub mod http;
pub mod ids;
pub mod jobs;
pub mod layout;
pub mod manifest;
pub mod protocol;
pub mod replies;
pub mod units;
