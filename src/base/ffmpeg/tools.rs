//! Finding ffmpeg and ffprobe and asking them what they are and what they
//! can do: `-version`, `-encoders`, `-filters`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// Whether `program` names something that can be run: a path that is a
/// file, or a bare name found in `PATH`. Asked before spawning because
/// under user-mode emulation (qemu-aarch64 running an arm64 build) a
/// missing program does not fail to spawn: the child "starts" and exits 127.
pub fn tool_exists(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Why a tool did not answer `-version`.
#[derive(Debug)]
pub enum ToolError {
    /// It could not be started.
    Spawn {
        /// The program tried.
        program: PathBuf,
        /// Why it did not start.
        source: io::Error,
    },
    /// It ran and failed.
    Exit {
        /// The program run.
        program: PathBuf,
        /// How it ended.
        status: ExitStatus,
    },
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToolError::Spawn { program, source } => {
                write!(f, "{} does not run: {source}", program.display())
            }
            ToolError::Exit { program, status } => {
                write!(f, "{} -version exited with {status}", program.display())
            }
        }
    }
}

impl std::error::Error for ToolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ToolError::Spawn { source, .. } => Some(source),
            ToolError::Exit { .. } => None,
        }
    }
}

/// Runs `program -hide_banner -version` and returns the version it names
/// (the third word of its first line, `unknown` when there is none).
pub fn version(program: &Path) -> Result<String, ToolError> {
    let out = Command::new(program)
        .args(["-hide_banner", "-version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ToolError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(ToolError::Exit {
            program: program.to_path_buf(),
            status: out.status,
        });
    }
    Ok(version_word(&String::from_utf8_lossy(&out.stdout)))
}

/// `6.1.1` from `ffmpeg version 6.1.1 Copyright ...`.
fn version_word(text: &str) -> String {
    text.lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or("unknown")
        .to_string()
}

/// Whether `ffmpeg -encoders` lists `encoder`.
pub fn has_encoder(ffmpeg: &Path, encoder: &str) -> io::Result<bool> {
    Ok(lists(&listing(ffmpeg, "-encoders")?, encoder))
}

/// Whether `ffmpeg -filters` lists `filter` (lavfi sources are filters).
pub fn has_filter(ffmpeg: &Path, filter: &str) -> io::Result<bool> {
    Ok(lists(&listing(ffmpeg, "-filters")?, filter))
}

/// The standard output of `ffmpeg -hide_banner <what>`.
fn listing(ffmpeg: &Path, what: &str) -> io::Result<String> {
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", what])
        .stdin(Stdio::null())
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether a `-encoders`/`-filters` listing has a line naming `name` in
/// its second column.
fn lists(listing: &str, name: &str) -> bool {
    listing
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_are_found_by_path_or_in_path() {
        assert!(tool_exists(Path::new("sh")));
        assert!(tool_exists(Path::new("/bin/sh")));
        assert!(!tool_exists(Path::new("/nonexistent/ffprobe")));
        assert!(!tool_exists(Path::new("no-such-tool-soccer-rig")));
        assert!(!tool_exists(Path::new("/tmp")), "a directory is no program");
    }

    #[test]
    fn listings_and_versions_are_read() {
        let listing = " V....D libx264   H.264 / AVC\n A....D aac  AAC\n";
        assert!(lists(listing, "libx264"));
        assert!(!lists(listing, "libx265"));
        assert_eq!(
            version_word("ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000"),
            "5.1.9-0+deb12u1"
        );
        assert_eq!(version_word(""), "unknown");
    }
}
