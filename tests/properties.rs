//! Property tests: the ID rule and manifest round trips hold for all inputs,
//! not just the ones we thought of.

use proptest::prelude::*;
use serde_json::Value;
use soccer_rig::base::ids::{CameraId, RecordingId, SessionId};
use soccer_rig::base::manifest::Manifest;

const EXAMPLE: &str = include_str!("data/protocol-example.json");

fn camera() -> impl Strategy<Value = CameraId> {
    prop_oneof![
        Just(CameraId::Left),
        Just(CameraId::Center),
        Just(CameraId::Right)
    ]
}

proptest! {
    /// Every string of the allowed alphabet and length parses and prints back.
    #[test]
    fn valid_session_ids_round_trip(s in "[A-Za-z0-9_-]{1,64}") {
        let id = SessionId::parse(&s).unwrap();
        prop_assert_eq!(id.as_str(), s.as_str());
    }

    /// Any string with a character outside the alphabet is rejected, and so
    /// can never become a path component that escapes its directory.
    #[test]
    fn session_ids_outside_the_rule_are_rejected(
        prefix in "[A-Za-z0-9_-]{0,20}",
        bad in "[^A-Za-z0-9_-]",
        suffix in "[A-Za-z0-9_-]{0,20}",
    ) {
        let s = format!("{prefix}{bad}{suffix}");
        prop_assert!(SessionId::parse(&s).is_err());
    }

    #[test]
    fn overlong_session_ids_are_rejected(s in "[A-Za-z0-9_-]{65,100}") {
        prop_assert!(SessionId::parse(&s).is_err());
    }

    /// Recording IDs split back into the same session and camera, even when
    /// the session itself ends in something camera-like.
    #[test]
    fn recording_ids_round_trip(s in "[A-Za-z0-9_-]{1,64}", cam in camera()) {
        let rec = RecordingId::new(SessionId::parse(&s).unwrap(), cam);
        let back = RecordingId::parse(&rec.to_string()).unwrap();
        prop_assert_eq!(back, rec);
    }

    /// Parsing never panics on arbitrary text.
    #[test]
    fn parsers_never_panic(s in "\\PC{0,80}") {
        let _ = SessionId::parse(&s);
        let _ = RecordingId::parse(&s);
        let _ = CameraId::parse(&s);
        let _ = Manifest::from_json(&s);
    }

    /// A valid manifest with arbitrary field values survives write + read
    /// unchanged, extra fields included.
    #[test]
    fn manifests_round_trip(
        s in "[A-Za-z0-9_-]{1,64}",
        cam in camera(),
        size in 1u64..u64::MAX,
        w in 1u32..20000, h in 1u32..20000, fps in 1u32..240, mbps in 0u32..500,
        dur in 0.001f64..1e6,
        offset in proptest::option::of(-1e4f64..1e4),
        hex in "[0-9a-f]{64}",
        extra_key in "x_[a-z]{1,10}",
        extra_val in "\\PC{0,20}",
    ) {
        let rec = RecordingId::new(SessionId::parse(&s).unwrap(), cam);
        let mut m = Manifest::from_json(EXAMPLE).unwrap();
        m.recording.id = rec.to_string();
        m.recording.session_id = rec.session.to_string();
        m.recording.camera_id = cam.to_string();
        m.recording.position = cam.position().to_string();
        m.file.name = rec.video_file_name();
        m.file.size_bytes = size;
        m.video.resolution.width = w;
        m.video.resolution.height = h;
        m.video.fps = fps;
        m.video.bitrate_mbps = mbps;
        m.video.duration_sec = dur;
        m.timing.sync_offset_ms = offset;
        m.checksum.value = hex.parse().unwrap();
        m.extra.insert(extra_key, Value::String(extra_val));
        prop_assert!(m.problems().is_empty(), "{:?}", m.problems());
        let text = m.to_json_pretty();
        let back = Manifest::from_json(&text).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.to_json_pretty(), text);
    }
}
