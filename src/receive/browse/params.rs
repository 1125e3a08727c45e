//! What a request names: IDs in the path (percent-decoded) and the
//! listing's query parameters.

use super::{DEFAULT_LIMIT, MAX_LIMIT, PAGE_SESSIONS};
use crate::base::ids::SessionId;
use crate::base::protocol::code;
use crate::receive::ApiError;

/// Percent-decodes one path segment (IDs need no encoding, but a client
/// may encode anyway); invalid escapes stay as they are.
pub(super) fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A session ID from the path: 400 when it breaks the ID rule.
pub(super) fn session_param(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(&decode(raw)).map_err(|e| {
        ApiError::new(
            400,
            code::INVALID_FIELD,
            format!("session in the path: {e}"),
        )
    })
}

// ---------------------------------------------------------------------------
// Handlers.

/// Listing filters: `?complete=true`, `?limit=N`, `?offset=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Query {
    pub(super) complete: Option<bool>,
    pub(super) limit: usize,
    pub(super) offset: usize,
}

impl Query {
    pub(super) fn page() -> Query {
        Query {
            complete: None,
            limit: PAGE_SESSIONS,
            offset: 0,
        }
    }

    pub(super) fn parse(query: &str) -> Result<Query, ApiError> {
        let mut q = Query {
            complete: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match name {
                "complete" => q.complete = Some(parse_bool(name, &value)?),
                "limit" => q.limit = parse_limit(name, &value)?,
                "offset" => {
                    q.offset = value
                        .parse()
                        .map_err(|_| bad_param(name, &value, "must be a number, 0 or more"))?
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// 400 naming the query parameter, its value and what it must be.
fn bad_param(name: &str, value: &str, want: &str) -> ApiError {
    ApiError::new(
        400,
        code::INVALID_FIELD,
        format!("query parameter {name}={value:?}: {want}"),
    )
}

/// `true`/`1` or `false`/`0`.
fn parse_bool(name: &str, value: &str) -> Result<bool, ApiError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad_param(name, value, "must be true or false")),
    }
}

/// A page size from 1 to [`MAX_LIMIT`].
fn parse_limit(name: &str, value: &str) -> Result<usize, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            bad_param(
                name,
                value,
                &format!("must be a number from 1 to {MAX_LIMIT}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn percent_decoding() {
        assert_eq!(decode("GAME%5F1"), "GAME_1");
        assert_eq!(decode("%3Cscript%3E"), "<script>");
        assert_eq!(decode("50%"), "50%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
