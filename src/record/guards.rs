//! The guards a recording passes before anything is created: a valid
//! duration, the storage root, free space, ffmpeg with its encoder, ffprobe,
//! and the source. Each failure is its own [`RecordError`] code.

use std::fs;
use std::io;
use std::path::Path;

use super::{RecordError, SPACE_MARGIN, required_free_bytes};
use crate::base::config::{Config, GB};
use crate::base::ffmpeg::{self, CaptureSettings, CaptureSource};
use crate::base::fsx;

/// Validates a `--duration` value.
pub fn check_duration(d: f64) -> Result<f64, RecordError> {
    if d.is_finite() && d > 0.0 && d <= 86_400.0 {
        Ok(d)
    } else {
        Err(RecordError::new(
            "invalid_config",
            format!("--duration: must be seconds between 0 and 86400, got {d}"),
        ))
    }
}

/// The guards that need only the config: storage, space, ffmpeg, source.
pub(super) fn preflight(
    config: &Config,
    source: &CaptureSource,
    settings: &CaptureSettings,
) -> Result<(), RecordError> {
    check_storage(&config.node.storage_root)?;
    check_space(config, settings)?;
    check_ffmpeg(&config.processing.ffmpeg_path, source, settings)?;
    check_ffprobe(&config.processing.ffprobe_path)?;
    check_source(source)
}

/// Free space covers what the recording needs ([`required_free_bytes`]).
fn check_space(config: &Config, settings: &CaptureSettings) -> Result<(), RecordError> {
    let root = &config.node.storage_root;
    let need = required_free_bytes(
        settings.bitrate_mbps,
        settings.duration_sec,
        config.node.min_free_space_gb,
    );
    let free = fsx::free_space(root)
        .map_err(|e| RecordError::new("storage_not_writable", format!("{e}")).because(e))?;
    if free >= need {
        return Ok(());
    }
    let why = match settings.duration_sec {
        Some(d) => format!("{} Mbps x {d} s x {SPACE_MARGIN}", settings.bitrate_mbps),
        None => "node.min_free_space_gb, as no --duration was given".to_string(),
    };
    Err(RecordError::new(
        "insufficient_space",
        format!(
            "{}: {:.2} GB free, {:.2} GB needed ({why}); offload and delete old \
             recordings (rig-upload --delete-after-confirm) or record shorter",
            root.display(),
            free as f64 / GB,
            need as f64 / GB
        ),
    ))
}

/// ffprobe runs: the manifest is built from what it reports, so a missing
/// ffprobe must stop the recording before it starts, not after 90 minutes.
fn check_ffprobe(ffprobe: &Path) -> Result<(), RecordError> {
    let missing = |why: String| {
        RecordError::new(
            "ffprobe_missing",
            format!(
                "cannot run ffprobe at {} ({why}): install ffmpeg (apt-get install ffmpeg) \
                 or set processing.ffprobe_path; without it no manifest can be written",
                ffprobe.display()
            ),
        )
    };
    if !ffmpeg::tool_exists(ffprobe) {
        return Err(missing("no such program".into()));
    }
    match ffmpeg::version(ffprobe) {
        Ok(_) => Ok(()),
        Err(e @ ffmpeg::ToolError::Spawn { .. }) => {
            let why = std::error::Error::source(&e).map_or_else(String::new, |s| s.to_string());
            Err(missing(why).because(e))
        }
        Err(ffmpeg::ToolError::Exit { status, .. }) => {
            Err(missing(format!("`-version` exited with {status}")))
        }
    }
}

/// The storage root exists, is a directory, and is writable.
pub(super) fn check_storage(root: &Path) -> Result<(), RecordError> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(RecordError::new(
                "storage_root_missing",
                format!(
                    "{}: node.storage_root is not a directory; mount the recording disk there",
                    root.display()
                ),
            ));
        }
        Err(e) => {
            return Err(RecordError::new(
                "storage_root_missing",
                format!(
                    "{}: node.storage_root: {e}; mount the recording disk or fix node.storage_root",
                    root.display()
                ),
            ));
        }
    }
    rustix::fs::access(root, rustix::fs::Access::WRITE_OK).map_err(|e| {
        RecordError::new(
            "storage_not_writable",
            format!(
                "{}: node.storage_root is not writable ({}); check the mount and permissions",
                root.display(),
                io::Error::from(e)
            ),
        )
    })
}

/// ffmpeg runs, has the encoder, and (for `test`) lavfi's testsrc2.
fn check_ffmpeg(
    ffmpeg: &Path,
    source: &CaptureSource,
    s: &CaptureSettings,
) -> Result<(), RecordError> {
    let missing = |why: &dyn std::fmt::Display| {
        RecordError::new(
            "ffmpeg_missing",
            format!(
                "cannot run ffmpeg at {} ({why}): install ffmpeg (apt-get install ffmpeg) \
                 or set processing.ffmpeg_path",
                ffmpeg.display()
            ),
        )
    };
    if !ffmpeg::tool_exists(ffmpeg) {
        return Err(missing(&"no such program"));
    }
    let encoder = s.encoder_name();
    if !ffmpeg::has_encoder(ffmpeg, &encoder).map_err(|e| missing(&e).because(e))? {
        return Err(RecordError::new(
            "ffmpeg_missing",
            format!(
                "{} has no encoder {encoder:?} (recording.encoder/recording.codec); \
                 see `ffmpeg -encoders`",
                ffmpeg.display()
            ),
        ));
    }
    if *source == CaptureSource::Test
        && !ffmpeg::has_filter(ffmpeg, "testsrc2").map_err(|e| missing(&e).because(e))?
    {
        return Err(RecordError::new(
            "source_unavailable",
            format!("{} lacks the lavfi testsrc2 source", ffmpeg.display()),
        ));
    }
    Ok(())
}

/// The source's device or program is there.
fn check_source(source: &CaptureSource) -> Result<(), RecordError> {
    match source {
        CaptureSource::Test => Ok(()),
        CaptureSource::V4l2(dev) => {
            use std::os::unix::fs::FileTypeExt;
            match fs::metadata(dev) {
                Ok(m) if m.file_type().is_char_device() => Ok(()),
                Ok(_) => Err(RecordError::new(
                    "source_unavailable",
                    format!("{}: not a video device (recording.source)", dev.display()),
                )),
                Err(e) => Err(RecordError::new(
                    "source_unavailable",
                    format!(
                        "{}: {e}; is the camera connected? (recording.source, `v4l2-ctl --list-devices`)",
                        dev.display()
                    ),
                )),
            }
        }
        CaptureSource::Cmd(cmd) | CaptureSource::CmdRaw(cmd) => {
            let program = cmd.split_whitespace().next().unwrap_or("");
            if program_exists(program) {
                Ok(())
            } else {
                Err(RecordError::new(
                    "source_unavailable",
                    format!(
                        "source command {program:?} not found on PATH (recording.source {cmd:?})"
                    ),
                ))
            }
        }
    }
}

/// Whether the first word of a shell command names something runnable:
/// a path that exists, a shell word we cannot judge (`exec`, `VAR=x`, `(`),
/// or a program on `$PATH`.
fn program_exists(program: &str) -> bool {
    if program.is_empty() {
        return false;
    }
    if program.contains('/') {
        return Path::new(program).exists();
    }
    if program.contains('=')
        || !program
            .chars()
            .all(|c| c.is_alphanumeric() || "-_.+".contains(c))
    {
        return true;
    }
    if ["exec", "env", "nice", "ionice", "cd", "set"].contains(&program) {
        return true;
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}
