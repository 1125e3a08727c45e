//! The calibrated stitch's warp, in Rust: each camera's frames drawn
//! straight into their piece of the cylindrical panorama at the size
//! written, the seams cross-faded, each camera's level tables applied, in
//! one pass over the output.
//!
//! # Why not ffmpeg's `v360`
//!
//! `v360` computes the same geometry, but on this project's measure its
//! bicubic remap of a 1080p camera into a 1400 x 900 piece costs more CPU
//! than encoding that piece with x264 `veryfast` (2.8 s against 2.0 s for
//! 90 frames), and the blend needs `maskedmerge`, looped masks, crops and
//! `hstack` on top; ffmpeg 5.1's `remap` takes precomputed maps but only
//! samples the nearest pixel. Here the map is computed once per stitch
//! ([`map`]), a row costs a bilinear sample per output pixel with the
//! position stepped in fixed point, the blend and the exposure tables ride
//! along, and rows are spread over every core ([`render`]). Lens
//! distortion is part of the map: no `lenscorrection` pass, no second
//! resampling.
//!
//! [`pipeline`] wires it up: three ffmpeg decoders writing raw frames,
//! this warp, one ffmpeg encoder reading them on stdin.

pub mod map;
pub mod pipeline;
pub mod render;
mod simd;

pub use pipeline::Warp;
