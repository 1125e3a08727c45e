//! Why a stitch (or a queue operation around it) failed, with the exit code and
//! the error code each reason maps to.

use std::fmt;
use std::path::PathBuf;

use crate::base::ffmpeg::ProbeError;
use crate::base::ffmpeg::frames::FramesError;
use crate::base::ids::{CameraId, IdError};
use crate::base::jobs::JobsError;

/// Why a stitch (or a queue operation around it) failed. Messages name the
/// session, camera and file, and say what to do.
#[derive(Debug)]
pub enum StitchError {
    /// A configuration value cannot work.
    Config(String),
    /// The session ID given is not one.
    InvalidSession(IdError),
    /// No folder for the session under `sessions/`.
    UnknownSession {
        /// The session.
        session: String,
        /// The folder looked for.
        dir: PathBuf,
    },
    /// A camera's recording or manifest is not there.
    MissingCamera {
        /// The session.
        session: String,
        /// The camera.
        camera: CameraId,
        /// The file that is missing.
        path: PathBuf,
    },
    /// A camera's manifest cannot be read or is invalid.
    Manifest {
        /// The camera.
        camera: CameraId,
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A camera's recording cannot be read by ffprobe.
    Input {
        /// The camera.
        camera: CameraId,
        /// What ffprobe said.
        source: ProbeError,
    },
    /// The three recordings share no instant.
    NoCommonSpan(String),
    /// The frames cannot be stitched with this overlap.
    Geometry(String),
    /// ffmpeg is not where the configuration says.
    FfmpegMissing(PathBuf),
    /// ffmpeg failed.
    Ffmpeg {
        /// Its exit status.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// A camera's recording could not be decoded for the warp.
    Decode(FramesError),
    /// ffmpeg finished but the file is not the panorama planned.
    BadOutput(String),
    /// A file operation failed.
    Io(std::io::Error),
    /// The job queue could not be read or written.
    Jobs(JobsError),
    /// Another process is stitching the session now.
    Busy {
        /// The session.
        session: String,
        /// Its job.
        job: String,
        /// The process holding it.
        pid: Option<u32>,
    },
    /// SIGINT or SIGTERM arrived; the job went back to the queue.
    Interrupted,
}

impl StitchError {
    /// The snake_case code used in `--json` output.
    pub fn code(&self) -> &'static str {
        match self {
            StitchError::Config(_) => "config_error",
            StitchError::InvalidSession(_) => "invalid_session_id",
            StitchError::UnknownSession { .. } => "unknown_session",
            StitchError::MissingCamera { .. } => "missing_camera",
            StitchError::Manifest { .. } => "invalid_manifest",
            StitchError::Input { .. } => "unreadable_input",
            StitchError::NoCommonSpan(_) => "no_common_span",
            StitchError::Geometry(_) => "bad_geometry",
            StitchError::FfmpegMissing(_) => "ffmpeg_missing",
            StitchError::Ffmpeg { .. } => "ffmpeg_failed",
            StitchError::Decode(_) => "decode_failed",
            StitchError::BadOutput(_) => "bad_output",
            StitchError::Io(_) => "io_error",
            StitchError::Jobs(_) => "job_queue_error",
            StitchError::Busy { .. } => "busy",
            StitchError::Interrupted => "interrupted",
        }
    }

    /// Exit code: 2 for usage and configuration errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            StitchError::Config(_) | StitchError::InvalidSession(_) => crate::base::cli::EXIT_USAGE,
            _ => crate::base::cli::EXIT_FAILURE,
        }
    }
}

impl fmt::Display for StitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StitchError::Config(m) => write!(f, "config: {m}"),
            StitchError::InvalidSession(e) => e.fmt(f),
            StitchError::UnknownSession { session, dir } => write!(
                f,
                "no session {session}: {} does not exist (check the ID with ls, or \
                 --root/storage.sessions_path)",
                dir.display()
            ),
            StitchError::MissingCamera {
                session,
                camera,
                path,
            } => write!(
                f,
                "session {session}: camera {camera} is missing: no {}; upload it \
                 (rig-upload on the {camera} node), then run rig-stitch {session} again",
                path.display()
            ),
            StitchError::Manifest {
                camera,
                path,
                message,
            } => write!(
                f,
                "{camera} manifest {}: {message}; fix it (rig-manifest validate) and retry",
                path.display()
            ),
            StitchError::Input { camera, source } => write!(f, "{camera} recording: {source}"),
            StitchError::NoCommonSpan(m) | StitchError::Geometry(m) => write!(f, "{m}"),
            StitchError::FfmpegMissing(p) => write!(
                f,
                "ffmpeg not found at {}: install ffmpeg (apt-get install ffmpeg) or set \
                 processing.ffmpeg_path",
                p.display()
            ),
            StitchError::Ffmpeg { status, stderr } => {
                write!(f, "ffmpeg failed ({status})")?;
                if !stderr.trim().is_empty() {
                    write!(f, ": {}", stderr.trim())?;
                }
                Ok(())
            }
            StitchError::Decode(e) => write!(f, "decoding for the warp: {e}"),
            StitchError::BadOutput(m) => write!(f, "panorama not written: {m}"),
            StitchError::Io(e) => e.fmt(f),
            StitchError::Jobs(e) => e.fmt(f),
            StitchError::Busy { session, job, pid } => {
                write!(f, "session {session} is being stitched now (job {job}")?;
                if let Some(p) = pid {
                    write!(f, ", process {p}")?;
                }
                write!(f, "); wait for it, or see rig-stitch --list")
            }
            StitchError::Interrupted => {
                write!(f, "interrupted; the job is queued again for the next run")
            }
        }
    }
}

impl std::error::Error for StitchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StitchError::InvalidSession(e) => Some(e),
            StitchError::Input { source, .. } => Some(source),
            StitchError::Decode(source) => Some(source),
            StitchError::Io(e) => Some(e),
            StitchError::Jobs(e) => Some(e),
            _ => None,
        }
    }
}

impl From<JobsError> for StitchError {
    fn from(e: JobsError) -> Self {
        StitchError::Jobs(e)
    }
}

impl From<std::io::Error> for StitchError {
    fn from(e: std::io::Error) -> Self {
        StitchError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use super::*;

    #[test]
    fn causes_are_kept() {
        let io = StitchError::Io(std::io::Error::other("disk on fire"));
        assert_eq!(io.source().unwrap().to_string(), "disk on fire");
        let id =
            StitchError::InvalidSession(crate::base::ids::SessionId::parse("../x").unwrap_err());
        assert!(id.source().is_some());
        assert!(StitchError::Interrupted.source().is_none());
    }
}
