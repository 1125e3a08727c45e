use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Method};
use crate::util::{is_timeout, Abandoned, ReadDeadline, RefinedTcpStream};
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// Longest request or header line accepted (soccer-rig patch).
const MAX_HEADER_LINE: usize = 16 * 1024;

/// Most headers accepted in one request (soccer-rig patch).
const MAX_HEADERS: usize = 128;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // soccer-rig patch 7: set by a request that left its body unread; the
    // bytes that follow are body, not a request, so none is read
    abandoned: Abandoned,

    // true if the connection goes through SSL
    secure: bool,

    // soccer-rig patch 9: the read deadline of the socket, and how long the
    // connection may wait for a request and for its headers
    deadline: Option<Arc<ReadDeadline>>,
    idle_timeout: Option<Duration>,
    header_timeout: Option<Duration>,
}

/// soccer-rig patch 9: how long a connection waits for the first byte of a
/// request (`idle`, then it closes without a reply), and for the rest of its
/// request line and headers (`header`, then 408).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderTimeouts {
    pub idle: Option<Duration>,
    pub header: Option<Duration>,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// soccer-rig patch 9: a well-formed request line of another HTTP
    /// version than 1.0 or 1.1
    UnsupportedVersion,
    /// soccer-rig patch 9: no byte of a next request within the idle time
    Idle,
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        deadline: Option<Arc<ReadDeadline>>,
        timeouts: HeaderTimeouts,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            abandoned: Abandoned::default(),
            secure,
            deadline,
            idle_timeout: timeouts.idle,
            header_timeout: timeouts.header,
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> IoResult<AsciiString> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_byte()?;

            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf)
                    .map_err(|_| IoError::new(ErrorKind::InvalidInput, "Header is not in ASCII"));
            }

            prev_byte_was_cr = byte == b'\r';

            // soccer-rig patch: a line without CRLF must not grow memory forever.
            if buf.len() >= MAX_HEADER_LINE {
                return Err(IoError::new(
                    ErrorKind::InvalidInput,
                    "Header line too long",
                ));
            }
            buf.push(byte);
        }
    }

    fn next_byte(&mut self) -> IoResult<u8> {
        match self.next_header_source.by_ref().bytes().next() {
            Some(b) => b,
            None => Err(IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF")),
        }
    }

    /// soccer-rig patch 9: sets the socket's read deadline `time` from now.
    fn deadline_in(&self, time: Option<Duration>) {
        if let Some(d) = &self.deadline {
            d.set(time.map(|t| Instant::now() + t));
        }
    }

    /// soccer-rig patch 9: waits up to the idle time for the first byte of
    /// a request (`Idle` when none comes), then gives the request line and
    /// headers the header time.
    fn wait_for_request(&mut self) -> Result<u8, ReadError> {
        self.deadline_in(self.idle_timeout);
        let first = self.next_byte().map_err(|e| {
            if is_timeout(&e) {
                ReadError::Idle
            } else {
                ReadError::ReadIoError(e)
            }
        })?;
        self.deadline_in(self.header_timeout);
        Ok(first)
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // soccer-rig patch 7: wait until the previous request let go of the
        // stream, then stop if it left its body unread (its reply said
        // `Connection: close`): what follows on the stream is body bytes,
        // which must not be parsed as a request.
        self.next_header_source.wait_turn();
        if self.abandoned.is_set() {
            return Err(ReadError::ReadIoError(IoError::new(
                ErrorKind::ConnectionAborted,
                "the previous request's body was left unread; closing",
            )));
        }
        let (method, path, version, headers) = {
            // reading the request line
            let (method, path, version) = {
                let first = self.wait_for_request()?;
                let rest = self.read_next_line().map_err(ReadError::ReadIoError)?;
                let mut line = String::with_capacity(rest.len() + 1);
                line.push(char::from(first));
                line.push_str(rest.as_str());
                if first == b'\n' || !first.is_ascii() {
                    return Err(ReadError::WrongRequestLine);
                }

                parse_request_line(line.trim())?
            };
            // soccer-rig patch 9: any other version is answered 505 and the
            // connection closed before a header is read.
            if version != HTTPVersion(1, 0) && version != HTTPVersion(1, 1) {
                return Err(ReadError::UnsupportedVersion);
            }

            // getting all headers
            let headers = {
                let mut headers = Vec::new();
                loop {
                    let line = self.read_next_line().map_err(ReadError::ReadIoError)?;

                    if line.is_empty() {
                        break;
                    };
                    // soccer-rig patch: bounded number of headers.
                    if headers.len() >= MAX_HEADERS {
                        return Err(ReadError::WrongHeader(version));
                    }
                    headers.push(match FromStr::from_str(line.as_str().trim()) {
                        // TODO: remove this conversion
                        Ok(h) => h,
                        _ => return Err(ReadError::WrongHeader(version)),
                    });
                }

                headers
            };

            (method, path, version, headers)
        };

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            // soccer-rig patch 9: a peer gone before its address was read
            // is no panic (upstream unwrapped the error)
            self.remote_addr.as_ref().ok().copied().flatten(),
            data_source,
            writer,
            self.abandoned.clone(),
            self.deadline.clone(),
        )
        .map_err(|e| {
            use crate::request;
            self.deadline_in(None);
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;
        // soccer-rig patch 9: the body is read under the stall timeout,
        // unless the handler sets a deadline (`Request::set_read_deadline`).
        self.deadline_in(None);

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        use crate::{Response, StatusCode};

        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        loop {
            let rq = match self.read() {
                Err(ReadError::WrongRequestLine) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(400, "bad_request", "malformed HTTP request line");
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::WrongHeader(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(400, "bad_request", "malformed HTTP header");
                    response.raw_print(writer, ver, &[], false, None).ok();
                    return None; // we don't know where the next request would start,
                                 // se we have to close
                }

                Err(ReadError::UnsupportedVersion) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(
                        505,
                        "http_version_not_supported",
                        "this server only supports HTTP versions 1.0 and 1.1",
                    );
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None;
                }

                Err(ReadError::Idle) => return None,

                Err(ReadError::ReadIoError(ref err)) if is_timeout(err) => {
                    // request timeout
                    let writer = self.sink.next().unwrap();
                    let response = json_error(
                        408,
                        "request_timeout",
                        "the request headers did not arrive in time",
                    );
                    response
                        .raw_print(writer, HTTPVersion(1, 1), &[], false, None)
                        .ok();
                    return None; // closing the connection
                }

                Err(ReadError::ExpectationFailed(ver)) => {
                    let writer = self.sink.next().unwrap();
                    let response = json_error(
                        417,
                        "expectation_failed",
                        "only Expect: 100-continue is supported",
                    );
                    response.raw_print(writer, ver, &[], true, None).ok();
                    return None; // TODO: should be recoverable, but needs handling in case of body
                }

                Err(ReadError::ReadIoError(_)) => return None,

                Ok(rq) => rq,
            };

            // soccer-rig patch 9: the HTTP version is checked in `read`,
            // before the request exists: upstream answered 505 here through
            // a writer that waits for the one this request holds, which
            // deadlocked the connection (two fds and a thread) forever.

            // updating the status of the connection
            let connection_header = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv("Connection"))
                .map(|h| h.value.as_str());

            let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

            match lowercase {
                Some(ref val) if val.contains("close") => self.no_more_requests = true,
                Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
                Some(ref val)
                    if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
                {
                    self.no_more_requests = true
                }
                None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
                _ => (),
            };

            // returning the request
            return Some(rq);
        }
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}

/// soccer-rig patch: the errors tiny_http answers on its own carry the same
/// JSON body as every rig-receive error (`{"success": false, "error",
/// "message"}`), so a client never has to parse two formats.
fn json_error(status: u16, code: &str, message: &str) -> crate::Response<std::io::Cursor<Vec<u8>>> {
    let body = format!(r#"{{"success":false,"error":"{code}","message":"{message}"}}"#);
    let header = crate::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
        .expect("a static, valid header");
    crate::Response::from_data(body.into_bytes())
        .with_status_code(crate::StatusCode(status))
        .with_header(header)
}
