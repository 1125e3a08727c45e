//! PROTOCOL.md "Retry Logic": which failures are worth another attempt,
//! and how long to wait before it.

use std::io;

use super::error::AttemptError;
use crate::base::http;
use crate::base::protocol;
use crate::base::replies;

/// Seconds to wait before attempt `attempt` (2 or later):
/// `retry_delay_sec * 2^(attempt-2)`, so 5, 10, 20, 40 s by default.
pub(super) fn backoff_delay(retry_delay_sec: f64, attempt: u32) -> f64 {
    retry_delay_sec * f64::from(1u32 << attempt.saturating_sub(2).min(30))
}

/// Classifies a non-2xx reply: 5xx, 408, a 400/422 checksum mismatch
/// (however the server words it, [`replies::is_mismatch`]) and 409
/// `upload_in_progress` are retried, every other status is final. The server's message is kept.
pub(super) fn status_failure(step: &str, status: u16, text: &str) -> AttemptError {
    let replies::ErrorReply { code, message } = replies::error_reply(status, text);
    // 409 `upload_in_progress` is the server's claim on the recording, most
    // often held by our own attempt that died with the Wi-Fi: the server
    // lets it go at its stall timeout, so waiting (like a 503) succeeds
    // where giving up would fail a resumable run. Other 409s stay final.
    let retry = status >= 500
        || status == 408
        || ((status == 400 || status == 422) && code == protocol::code::CHECKSUM_MISMATCH)
        || (status == 409 && code == protocol::code::UPLOAD_IN_PROGRESS);
    let message = format!("{step}: server answered {status} {code}: {message}");
    if retry {
        AttemptError::retry(&code, message)
    } else {
        AttemptError::fatal(&code, message)
    }
}

/// Classifies a transport error: network trouble is retried, a request we
/// could not even form is not. The error is kept as the source.
pub(super) fn transport_failure(step: &str, url: &str, e: ureq::Error) -> AttemptError {
    if http::is_tls_failure(&e) {
        let message = format!("{step}: {} ({e})", http::tls_hint(url));
        return AttemptError::fatal("tls_error", message).caused_by(e);
    }
    let failure = match &e {
        ureq::Error::Timeout(t) => {
            AttemptError::retry("timeout", format!("{step} {url}: timed out ({t})"))
        }
        ureq::Error::Io(io) => AttemptError::retry(io_code(io), format!("{step} {url}: {io}")),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
            AttemptError::retry("connection_failed", format!("{step} {url}: {e}"))
        }
        ureq::Error::Protocol(_) => {
            AttemptError::retry("bad_response", format!("{step} {url}: {e}"))
        }
        ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
            AttemptError::fatal("invalid_request", format!("{step} {url}: {e}"))
        }
        other => AttemptError::retry("network_error", format!("{step} {url}: {other}")),
    };
    failure.caused_by(e)
}

/// The code of a network I/O error: refused, reset, timed out, or other.
fn io_code(io: &io::Error) -> &'static str {
    match io.kind() {
        io::ErrorKind::ConnectionRefused => "connection_refused",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => "connection_reset",
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout",
        _ => "network_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_configured_delay() {
        let waits: Vec<f64> = (2..=5).map(|n| backoff_delay(5.0, n)).collect();
        assert_eq!(waits, [5.0, 10.0, 20.0, 40.0]);
        assert_eq!(backoff_delay(0.5, 3), 1.0);
    }

    #[test]
    fn transport_errors_keep_their_cause() {
        let refused = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let f = transport_failure("upload", "http://h/x", ureq::Error::Io(refused));
        assert!(f.retry);
        assert_eq!(f.code, "connection_refused");
        assert_eq!(f.message, "upload http://h/x: refused");
        let source = std::error::Error::source(&f).expect("the ureq error");
        assert!(source.to_string().contains("refused"), "{source}");
    }

    #[test]
    fn status_classification_follows_the_table() {
        let e = |code: &str| format!(r#"{{"success":false,"error":"{code}","message":"m"}}"#);
        assert!(status_failure("upload", 503, "").retry);
        assert!(status_failure("upload", 500, &e("internal_error")).retry);
        assert!(status_failure("upload", 422, &e("checksum_mismatch")).retry);
        assert!(status_failure("upload", 408, &e("request_timeout")).retry);
        assert!(!status_failure("upload", 422, &e("other")).retry);
        assert!(status_failure("upload", 409, &e("upload_in_progress")).retry);
        assert!(!status_failure("upload", 409, &e("offset_mismatch")).retry);
        assert!(!status_failure("upload", 409, &e("job_in_progress")).retry);
        assert!(!status_failure("upload", 409, "not json").retry);
        let f = status_failure("upload", 400, &e("missing_field"));
        assert!(!f.retry);
        assert_eq!(f.code, "missing_field");
        assert!(f.message.contains("400 missing_field: m"), "{}", f.message);
        assert!(!status_failure("upload", 413, &e("payload_too_large")).retry);
        assert!(!status_failure("upload", 404, "nope").retry);
        // Other servers' words for a mismatch (the Python reference's 400).
        let python = r#"{"success": false, "error": "Checksum mismatch", "expected": "a", "calculated": "b"}"#;
        let f = status_failure("upload", 400, python);
        assert!(f.retry);
        assert_eq!(f.code, "checksum_mismatch");
        assert!(f.message.contains("Checksum mismatch"), "{}", f.message);
        assert!(status_failure("upload", 422, r#"{"error": "CHECKSUM-MISMATCH"}"#).retry);
        assert!(!status_failure("upload", 403, python).retry);
    }
}
