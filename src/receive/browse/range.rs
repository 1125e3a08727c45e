//! `Range` (RFC 9110 14.1.2) and `If-None-Match`, as plain functions of
//! header values.

/// Which part of a file of `len` bytes a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send it all (no Range, or one to ignore: other unit, several ranges,
    /// bad syntax).
    Full,
    /// Send bytes `start..=end` as 206.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416: no byte of the file is in the range.
    Unsatisfiable,
}

/// Interprets a `Range` header value for a file of `len` bytes (RFC 9110
/// 14.1.2): `bytes=a-b`, `bytes=a-` and `bytes=-n`.
pub fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some((unit, spec)) = value.trim().split_once('=') else {
        return RangeAnswer::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    match (first.is_empty(), last.is_empty()) {
        (true, true) => RangeAnswer::Full,
        (true, false) => suffix_range(last, len),
        (false, _) => first_last_range(first, last, len),
    }
}

/// A decimal number of digits only (no sign, no space); `None` otherwise.
fn digits(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `bytes=-n`: the last n bytes.
fn suffix_range(last: &str, len: u64) -> RangeAnswer {
    match digits(last) {
        None => RangeAnswer::Full,
        Some(0) => RangeAnswer::Unsatisfiable,
        Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
        Some(n) => RangeAnswer::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        },
    }
}

/// `bytes=a-b` or `bytes=a-`; the end is clipped to the file.
fn first_last_range(first: &str, last: &str, len: u64) -> RangeAnswer {
    let Some(start) = digits(first) else {
        return RangeAnswer::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match digits(last) {
            Some(e) if e >= start => Some(e),
            _ => return RangeAnswer::Full,
        }
    };
    if start >= len {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Partial {
        start,
        end: end.map_or(len - 1, |e| e.min(len - 1)),
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison).
pub(super) fn none_match(value: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    value
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeAnswer::*;
        let p = |s, e| Partial { start: s, end: e };
        assert_eq!(parse_range("bytes=0-99", 1000), p(0, 99));
        assert_eq!(parse_range("bytes=100-", 1000), p(100, 999));
        assert_eq!(parse_range("bytes=-100", 1000), p(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), p(0, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), p(900, 999));
        assert_eq!(parse_range("BYTES=1-1", 1000), p(1, 1));
        assert_eq!(parse_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=1000-2000", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=-1", 0), Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "nonsense",
        ] {
            assert_eq!(parse_range(ignored, 1000), Full, "{ignored}");
        }
    }

    #[test]
    fn if_none_match_lists() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"b\""));
        assert!(!none_match("\"a\"", "\"b\""));
    }
}
