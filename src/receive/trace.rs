//! What the request log line says about a request, filled in by its handler.

/// What the request log line says about an upload (or any request).
#[derive(Debug, Default)]
pub struct Trace {
    /// `{session}_{camera}` once known.
    pub recording: Option<String>,
    /// Body bytes read.
    pub bytes: u64,
    /// What the request's API key may do ([`super::access`]).
    pub grant: super::access::Grant,
}

/// The first value of a request header.
pub fn header(req: &tiny_http::Request, name: &'static str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str().to_string())
}
