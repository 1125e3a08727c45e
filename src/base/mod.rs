//! The foundations every program stands on: names, paths, digests, the
//! manifest, the wire types, the config files, and the tools the suite runs.
//!
//! Nothing here knows which program it runs in. The programs' own modules
//! ([`crate::record`], [`crate::upload`], [`crate::receive`],
//! [`crate::stitch`], [`crate::check`]) build on these and never on each
//! other, except where a program *is* another's client (rig-check probes
//! what rig-receive stores).
//!
//! | module | owns |
//! |---|---|
//! | [`ids`] | session, camera and recording IDs: the only way names enter paths |
//! | [`layout`] | every path on a Pi and on the server |
//! | [`checksum`] | SHA-256: streaming, parallel, and the digest's one text form |
//! | [`manifest`] | the manifest: types, validation, building (ffprobe), verifying (rig-manifest) |
//! | [`protocol`], [`replies`] | the HTTP protocol's request and reply types |
//! | [`config`] | both config files |
//! | [`ffmpeg`] | every ffmpeg and ffprobe process |
//! | [`jobs`] | the stitch job queue rig-receive fills and rig-stitch drains |
//! | [`fsx`] | atomic writes: temp, fsync, rename |
//! | [`http`], [`host`], [`cli`] | HTTP helpers, host facts, the programs' shared CLI plumbing |
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
