//! Session, camera and recording identifiers.
//!
//! These IDs become path components on both the Pi and the server, so the
//! rule enforced here is the project's path-traversal guard: a session ID is
//! 1 to 64 characters of `[A-Za-z0-9_-]`, nothing else. `..`, `/`, spaces,
//! NUL and the empty string can never get through [`SessionId::parse`], and
//! every other type here is built from a parsed [`SessionId`].
//!
//! ```
//! use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
//!
//! let session = SessionId::parse("GAME_20240315_140000").unwrap();
//! let rec = RecordingId::new(session, CameraId::Center);
//! assert_eq!(rec.to_string(), "GAME_20240315_140000_CAM_C");
//! assert_eq!(RecordingId::parse("GAME_20240315_140000_CAM_C").unwrap(), rec);
//! assert!(SessionId::parse("../etc").is_err());
//! ```

use std::fmt;
use std::str::FromStr;

/// The longest session ID accepted, in characters (all ASCII).
pub const SESSION_ID_MAX_LEN: usize = 64;

/// The rule every session ID obeys, quoted in error messages.
pub const SESSION_ID_RULE: &str = "1-64 characters of A-Z, a-z, 0-9, '_' and '-'";

/// Why a string is not a valid ID. The message names the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    /// A session ID broke the character or length rule.
    Session {
        /// The offending input (escaped for display).
        input: String,
        /// What exactly is wrong with it.
        reason: String,
    },
    /// A camera ID that is not one of `CAM_L`, `CAM_C`, `CAM_R`.
    Camera(String),
    /// A position that is not one of `left`, `center`, `right`.
    Position(String),
    /// A recording ID that is not `{SESSION_ID}_{CAMERA_ID}`.
    Recording(String),
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Session { input, reason } => write!(
                f,
                "invalid session ID {input:?}: {reason} (session IDs are {SESSION_ID_RULE})"
            ),
            IdError::Camera(input) => write!(
                f,
                "invalid camera ID {input:?}: must be one of CAM_L, CAM_C, CAM_R"
            ),
            IdError::Position(input) => write!(
                f,
                "invalid position {input:?}: must be one of left, center, right"
            ),
            IdError::Recording(input) => write!(
                f,
                "invalid recording ID {input:?}: must be SESSION_ID_CAMERA_ID, \
                 e.g. GAME_20240315_140000_CAM_C"
            ),
        }
    }
}

impl std::error::Error for IdError {}

/// A validated session identifier, e.g. `GAME_20240315_140000` or `JVvsRivals_Home`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// Parses a session ID, enforcing [`SESSION_ID_RULE`].
    pub fn parse(input: &str) -> Result<SessionId, IdError> {
        let fail = |reason: String| IdError::Session {
            input: input.to_string(),
            reason,
        };
        if input.is_empty() {
            return Err(fail("it is empty".into()));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(fail(format!("character {bad:?} is not allowed")));
        }
        if input.len() > SESSION_ID_MAX_LEN {
            return Err(fail(format!(
                "it is {} characters long, the limit is {SESSION_ID_MAX_LEN}",
                input.len()
            )));
        }
        Ok(SessionId(input.to_string()))
    }

    /// An automatic session ID, `GAME_YYYYMMDD_HHMMSS`, from the given civil
    /// (local wall-clock) time. PROTOCOL.md: the time comes from the master clock.
    pub fn auto_at(local: jiff::civil::DateTime) -> SessionId {
        SessionId(format!("GAME_{}", local.strftime("%Y%m%d_%H%M%S")))
    }

    /// An automatic session ID from this machine's local clock now.
    pub fn auto_now() -> SessionId {
        SessionId::auto_at(jiff::Zoned::now().datetime())
    }

    /// The ID as a string; safe to use as one path component.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SessionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionId::parse(s)
    }
}

/// One of the three cameras of a rig.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CameraId {
    /// `CAM_L`, mounted on the left.
    Left,
    /// `CAM_C`, the center camera; the reference for stitching.
    Center,
    /// `CAM_R`, mounted on the right.
    Right,
}

impl CameraId {
    /// All cameras, left to right: the order of the panorama.
    pub const ALL: [CameraId; 3] = [CameraId::Left, CameraId::Center, CameraId::Right];

    /// Parses `CAM_L`, `CAM_C` or `CAM_R` (exact case).
    pub fn parse(input: &str) -> Result<CameraId, IdError> {
        match input {
            "CAM_L" => Ok(CameraId::Left),
            "CAM_C" => Ok(CameraId::Center),
            "CAM_R" => Ok(CameraId::Right),
            other => Err(IdError::Camera(other.to_string())),
        }
    }

    /// The wire and path form: `CAM_L`, `CAM_C` or `CAM_R`.
    pub fn as_str(self) -> &'static str {
        match self {
            CameraId::Left => "CAM_L",
            CameraId::Center => "CAM_C",
            CameraId::Right => "CAM_R",
        }
    }

    /// The physical position this camera is mounted at.
    pub fn position(self) -> Position {
        match self {
            CameraId::Left => Position::Left,
            CameraId::Center => Position::Center,
            CameraId::Right => Position::Right,
        }
    }
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CameraId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CameraId::parse(s)
    }
}

/// The manifest's `recording.position`: where a camera stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Position {
    /// `left`
    Left,
    /// `center`
    Center,
    /// `right`
    Right,
}

impl Position {
    /// Parses `left`, `center` or `right`.
    pub fn parse(input: &str) -> Result<Position, IdError> {
        match input {
            "left" => Ok(Position::Left),
            "center" => Ok(Position::Center),
            "right" => Ok(Position::Right),
            other => Err(IdError::Position(other.to_string())),
        }
    }

    /// The manifest form: `left`, `center` or `right`.
    pub fn as_str(self) -> &'static str {
        match self {
            Position::Left => "left",
            Position::Center => "center",
            Position::Right => "right",
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A recording: one camera's file of one session, `{SESSION_ID}_{CAMERA_ID}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordingId {
    /// The session the recording belongs to.
    pub session: SessionId,
    /// The camera that made it.
    pub camera: CameraId,
}

impl RecordingId {
    /// Combines a session and a camera.
    pub fn new(session: SessionId, camera: CameraId) -> RecordingId {
        RecordingId { session, camera }
    }

    /// Parses `SESSION_CAM_X` back into its parts. The camera suffix is
    /// unambiguous because camera IDs are fixed, so session IDs may contain `_`.
    pub fn parse(input: &str) -> Result<RecordingId, IdError> {
        let fail = || IdError::Recording(input.to_string());
        let (session, camera) = input
            .len()
            .checked_sub("_CAM_X".len())
            .filter(|&at| input.is_char_boundary(at))
            .map(|at| input.split_at(at))
            .ok_or_else(fail)?;
        let camera = camera.strip_prefix('_').ok_or_else(fail)?;
        let camera = CameraId::parse(camera).map_err(|_| fail())?;
        let session = SessionId::parse(session)?;
        Ok(RecordingId { session, camera })
    }

    /// The file name of the video on the Pi and in manifests: `{id}.mp4`.
    pub fn video_file_name(&self) -> String {
        format!("{self}.mp4")
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.session, self.camera)
    }
}

impl FromStr for RecordingId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RecordingId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_protocol_examples() {
        for ok in ["GAME_20240315_140000", "JVvsRivals_Home", "a", "x-y_z"] {
            assert_eq!(SessionId::parse(ok).unwrap().as_str(), ok);
        }
        assert!(SessionId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn rejects_traversal_and_junk_naming_the_rule() {
        for bad in [
            "", "..", ".", "../x", "a/b", "/abs", "a b", "a\0b", "%2e%2e", "a.b", "é",
        ] {
            let err = SessionId::parse(bad).unwrap_err().to_string();
            assert!(err.contains(SESSION_ID_RULE), "{bad:?}: {err}");
        }
        let err = SessionId::parse(&"a".repeat(65)).unwrap_err().to_string();
        assert!(err.contains("65 characters"), "{err}");
    }

    #[test]
    fn auto_id_format() {
        let t = jiff::civil::date(2024, 3, 15).at(14, 0, 0, 0);
        assert_eq!(SessionId::auto_at(t).as_str(), "GAME_20240315_140000");
        assert!(SessionId::parse(SessionId::auto_now().as_str()).is_ok());
    }

    #[test]
    fn cameras_and_positions() {
        assert_eq!(CameraId::parse("CAM_L").unwrap().position(), Position::Left);
        assert_eq!(
            CameraId::parse("CAM_R").unwrap().position().as_str(),
            "right"
        );
        assert!(CameraId::parse("cam_c").is_err());
        assert!(CameraId::parse("CAM_X").is_err());
        assert_eq!(Position::parse("center").unwrap(), Position::Center);
        assert!(Position::parse("middle").is_err());
    }

    #[test]
    fn recording_ids() {
        let r = RecordingId::parse("JVvsRivals_Home_CAM_R").unwrap();
        assert_eq!(r.session.as_str(), "JVvsRivals_Home");
        assert_eq!(r.camera, CameraId::Right);
        assert_eq!(r.video_file_name(), "JVvsRivals_Home_CAM_R.mp4");
        for bad in [
            "CAM_C",
            "_CAM_C",
            "GAME_CAM_X",
            "GAME-CAM_C",
            "../x_CAM_C",
            "",
            "ééé_CAM_C€",
        ] {
            assert!(RecordingId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
