//! What a request is answered with, and its tiny_http response.

use std::io::{self, Read};

use serde::Serialize;

use super::ApiError;
use crate::base::protocol::ErrorResponse;

/// The result of one request, for the reply and the log line.
pub struct Reply {
    pub(super) status: u16,
    pub(super) body: Body,
    /// Extra headers (Content-Type comes from the body).
    pub(super) headers: Vec<(&'static str, String)>,
}

/// What a reply carries.
pub enum Body {
    /// `application/json` text.
    Json(String),
    /// `text/html; charset=utf-8` text.
    Html(String),
    /// A file or part of one, streamed with a known `Content-Length`: the
    /// reader yields exactly `len` bytes, so memory does not grow with them.
    Stream {
        /// The bytes.
        reader: Box<dyn Read + Send>,
        /// How many.
        len: u64,
        /// Their Content-Type.
        content_type: &'static str,
    },
}

impl Reply {
    /// A reply with a body and no extra headers.
    pub fn new(status: u16, body: Body) -> Reply {
        Reply {
            status,
            body,
            headers: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

pub(super) fn json_reply<T: Serialize>(status: u16, value: &T) -> Reply {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    Reply::new(status, Body::Json(body))
}

pub(super) fn error_reply(e: &ApiError) -> Reply {
    let body = ErrorResponse {
        success: false,
        error: e.code.to_string(),
        message: e.message.clone(),
    };
    if e.fields.is_empty() {
        return json_reply(e.status, &body);
    }
    let mut v = serde_json::to_value(&body).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        for (name, value) in &e.fields {
            map.insert((*name).into(), value.clone());
        }
    }
    json_reply(e.status, &v)
}

/// The tiny_http response of a reply. `Content-Length` is sent instead of
/// chunking (unless the client asks for chunks with `TE`), so a video
/// player knows the size and can seek.
pub(super) fn response_of(reply: Reply) -> tiny_http::ResponseBox {
    fn text(t: String, content_type: &str) -> (Box<dyn Read + Send>, u64, &str) {
        let len = t.len() as u64;
        (Box::new(io::Cursor::new(t.into_bytes())), len, content_type)
    }
    let (reader, len, content_type): (Box<dyn Read + Send>, u64, &str) = match reply.body {
        Body::Json(t) => text(t, "application/json"),
        Body::Html(t) => text(t, "text/html; charset=utf-8"),
        Body::Stream {
            reader,
            len,
            content_type,
        } => (reader, len, content_type),
    };
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let mut response = tiny_http::Response::new(
        tiny_http::StatusCode(reply.status),
        Vec::new(),
        reader,
        Some(len),
        None,
    )
    .with_chunked_threshold(usize::MAX);
    let headers = std::iter::once(("Content-Type", content_type.to_string())).chain(reply.headers);
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    response
}
