//! Who may talk to rig-receive: the IP allowlist and the API keys of
//! issue 10, both optional (off by default: PROTOCOL.md's trusted LAN).
//!
//! [`Access::check`] runs once per request, before routing and before any
//! byte of the body is read: an address outside `server.allow_ips` gets 403
//! `ip_not_allowed`; with keys configured, a missing or unknown
//! `Authorization: Bearer <key>` gets 401 `unauthorized`. A key may be bound
//! to cameras; the upload code asks the returned [`Grant`] once it knows the
//! camera, and a key bound to CAM_L uploading as CAM_R gets 403
//! `camera_not_allowed` before any file byte is written.
//!
//! Keys are compared in constant time (SHA-256 of both sides, then every byte
//! of every key, no early exit) and never appear in a message or log line.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::ApiError;
use crate::base::config::{ApiKeySpec, ServerConfig};
use crate::base::ids::CameraId;
use crate::base::protocol::{HEALTH_PATH, code};

/// An address block of `server.allow_ips`: `10.0.0.0/8`, `fd00::/8`, or a
/// single address (all bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`; the error says what is wrong.
    pub fn parse(s: &str) -> Result<IpNet, String> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{s:?} is not an IPv4/IPv6 address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?,
        };
        Ok(IpNet { addr, prefix })
    }

    /// Whether `ip` is in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u32) {
            match ip.to_canonical() {
                IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        };
        let ((want, wlen), (got, glen)) = (bits(self.addr), bits(ip));
        if wlen != glen {
            return false;
        }
        let shift = wlen - u32::from(self.prefix);
        shift >= wlen || (want >> shift) == (got >> shift)
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One configured key: its digest (the key itself is not kept) and cameras.
struct Key {
    digest: [u8; 32],
    cameras: Option<Vec<CameraId>>,
}

/// The access rules of one daemon, built once at start-up.
pub struct Access {
    allow: Vec<IpNet>,
    keys: Vec<Key>,
    public_status: bool,
}

/// What a request may do once [`Access::check`] let it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// `None`: any camera; `Some`: only these.
    cameras: Option<Vec<CameraId>>,
    /// Whether it may use the key-protected routes (downloads, the JSON
    /// API, stitch): no keys are configured, or it carried a valid one.
    /// False for a request let in only by `server.public_status`.
    fetch: bool,
}

impl Grant {
    /// Any camera, every route: an open server, or an unbound valid key.
    fn full(cameras: Option<Vec<CameraId>>) -> Grant {
        Grant {
            cameras,
            fetch: true,
        }
    }

    /// Whether links to the key-protected routes would work for this
    /// client; the status page leaves them out when not ([`super::page`]).
    pub fn may_fetch(&self) -> bool {
        self.fetch
    }

    /// 403 `camera_not_allowed` unless the request's key may act as `camera`.
    pub fn camera(&self, camera: CameraId) -> Result<(), ApiError> {
        match &self.cameras {
            Some(list) if !list.contains(&camera) => Err(ApiError::new(
                403,
                code::CAMERA_NOT_ALLOWED,
                format!(
                    "this API key may not upload as {camera}; give the node the key bound to \
                     {camera} (server.api_keys)"
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn digest(key: &[u8]) -> [u8; 32] {
    *crate::base::checksum::Sha256::of(key).as_bytes()
}

/// Constant-time equality of two equal-length byte strings.
pub fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // Keep the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

fn parse_cameras(list: &[&str], what: &str) -> Result<Vec<CameraId>, String> {
    list.iter()
        .map(|c| CameraId::parse(c.trim()).map_err(|e| format!("{what}: {e}")))
        .collect()
}

impl Access {
    /// The rules of `server:` (reads `api_keys_file`); errors name the key or
    /// file and line, never a key itself.
    pub fn from_config(server: &ServerConfig) -> Result<Access, String> {
        let allow = server
            .allow_ips
            .iter()
            .map(|s| IpNet::parse(s).map_err(|e| format!("server.allow_ips: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut keys = Vec::new();
        let mut add = |key: &str, cameras: Option<Vec<CameraId>>, what: &str| {
            if key.is_empty() || key.chars().any(char::is_whitespace) {
                return Err(format!(
                    "{what}: an API key must be non-empty, without spaces"
                ));
            }
            keys.push(Key {
                digest: digest(key.as_bytes()),
                cameras,
            });
            Ok(())
        };
        for (i, spec) in server.api_keys.iter().enumerate() {
            let what = format!("server.api_keys entry {}", i + 1);
            match spec {
                ApiKeySpec::Key(k) => add(k, None, &what)?,
                ApiKeySpec::Bound { key, cameras } => {
                    let list: Vec<&str> = cameras.iter().map(String::as_str).collect();
                    add(key, Some(parse_cameras(&list, &what)?), &what)?;
                }
            }
        }
        if let Some(path) = &server.api_keys_file {
            let text = read_secret_file(path, "server.api_keys_file")?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if line.is_empty() {
                    continue;
                }
                let what = format!("server.api_keys_file {} line {}", path.display(), n + 1);
                let mut words = line.split_whitespace();
                let key = words.next().unwrap_or("");
                let cameras = match words.next() {
                    None => None,
                    Some(list) => Some(parse_cameras(
                        &list
                            .split(',')
                            .filter(|c| !c.is_empty())
                            .collect::<Vec<_>>(),
                        &what,
                    )?),
                };
                if words.next().is_some() {
                    return Err(format!(
                        "{what}: expected KEY [CAM_L,CAM_C,...], found more words"
                    ));
                }
                add(key, cameras, &what)?;
            }
            if keys.is_empty() {
                return Err(format!(
                    "server.api_keys_file {}: holds no key; every request would be refused",
                    path.display()
                ));
            }
        }
        Ok(Access {
            allow,
            keys,
            public_status: server.public_status,
        })
    }

    /// No allowlist and no keys: PROTOCOL.md's open, trusted-LAN server.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.keys.is_empty()
    }

    /// One line for the start-up log (counts only, no secrets).
    pub fn describe(&self) -> String {
        let ips = if self.allow.is_empty() {
            "any address".to_string()
        } else {
            self.allow
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let keys = match self.keys.len() {
            0 => "no API key required".to_string(),
            n => format!(
                "{n} API key(s) required{}",
                if self.public_status {
                    " (status page and health open)"
                } else {
                    ""
                }
            ),
        };
        format!("access: {ips}; {keys}")
    }

    /// Lets a request in or says why not. `authorization` is the raw
    /// `Authorization` header value, if any.
    pub fn check(
        &self,
        peer: Option<&SocketAddr>,
        method: &tiny_http::Method,
        path: &str,
        authorization: Option<&str>,
    ) -> Result<Grant, ApiError> {
        if !self.allow.is_empty() {
            let allowed = peer.is_some_and(|p| self.allow.iter().any(|n| n.contains(p.ip())));
            if !allowed {
                let who = peer.map_or("an unknown address".to_string(), |p| p.ip().to_string());
                return Err(ApiError::new(
                    403,
                    code::IP_NOT_ALLOWED,
                    format!("{who} is not in server.allow_ips of this server"),
                ));
            }
        }
        if self.keys.is_empty() {
            return Ok(Grant::full(None));
        }
        let public = self.public_status && is_status(method, path);
        match self.key_of(authorization) {
            Ok(grant) => Ok(grant),
            // The public page without (or with a wrong) key: status only.
            Err(_) if public => Ok(Grant::default()),
            Err(e) => Err(e),
        }
    }

    /// The grant of the request's `Authorization` key, or 401.
    fn key_of(&self, authorization: Option<&str>) -> Result<Grant, ApiError> {
        let unauthorized = |m: &str| Err(ApiError::new(401, code::UNAUTHORIZED, m.to_string()));
        let Some(value) = authorization else {
            return unauthorized(
                "this server needs an API key: send Authorization: Bearer <key> \
                 (offload.api_key or offload.api_key_file)",
            );
        };
        let given = value
            .trim()
            .strip_prefix("Bearer ")
            .or_else(|| value.trim().strip_prefix("bearer "))
            .map(str::trim);
        let Some(given) = given else {
            return unauthorized("the Authorization header must be Bearer <key>");
        };
        let given = digest(given.as_bytes());
        // Every key is compared, whichever matches, so timing says nothing.
        let mut found: Option<&Key> = None;
        for key in &self.keys {
            if ct_eq(&key.digest, &given) && found.is_none() {
                found = Some(key);
            }
        }
        match found {
            Some(key) => Ok(Grant::full(key.cameras.clone())),
            None => unauthorized(
                "the API key is not one of this server's; check offload.api_key against \
                 server.api_keys",
            ),
        }
    }
}

/// The read-only paths `server.public_status` leaves open.
fn is_status(method: &tiny_http::Method, path: &str) -> bool {
    use tiny_http::Method::{Get, Head};
    matches!(method, Get | Head)
        && (path == "/" || path == HEALTH_PATH || path.ends_with("/thumb.jpg"))
}

/// Reads a file holding secrets; a message names the file, never its content.
pub fn read_secret_file(path: &Path, key: &str) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{key} {}: cannot read: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_v4_v6_and_mapped() {
        let n = IpNet::parse("192.168.1.0/24").unwrap();
        assert!(n.contains(ip("192.168.1.77")));
        assert!(!n.contains(ip("192.168.2.1")));
        assert!(n.contains(ip("::ffff:192.168.1.5")));
        assert!(!n.contains(ip("fd00::1")));
        let n = IpNet::parse("fd00::/8").unwrap();
        assert!(n.contains(ip("fd12::1")));
        assert!(!n.contains(ip("fe80::1")));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(IpNet::parse("::/0").unwrap().contains(ip("::1")));
        let one = IpNet::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("cam.local").is_err());
    }

    fn access(yaml: &str) -> Access {
        let c = crate::base::config::Config::from_yaml(yaml, None).unwrap();
        Access::from_config(&c.server).unwrap()
    }

    #[test]
    fn keys_bound_and_unbound() {
        let a = access(
            "server:\n  api_keys:\n    - open-key\n    - {key: left-key, cameras: [CAM_L]}\n",
        );
        let m = tiny_http::Method::Post;
        let p = "/api/v1/upload";
        let e = a.check(None, &m, p, None).unwrap_err();
        assert_eq!((e.status, e.code), (401, code::UNAUTHORIZED));
        let e = a.check(None, &m, p, Some("Bearer nope")).unwrap_err();
        assert_eq!(e.status, 401);
        assert!(!e.message.contains("nope"));
        let g = a.check(None, &m, p, Some("Bearer open-key")).unwrap();
        assert!(g.camera(CameraId::parse("CAM_R").unwrap()).is_ok());
        let g = a.check(None, &m, p, Some("Bearer left-key")).unwrap();
        assert!(g.camera(CameraId::parse("CAM_L").unwrap()).is_ok());
        let e = g.camera(CameraId::parse("CAM_R").unwrap()).unwrap_err();
        assert_eq!((e.status, e.code), (403, code::CAMERA_NOT_ALLOWED));
        // Health and the page stay open by default, but without a valid key
        // the page may not link to downloads.
        let get = tiny_http::Method::Get;
        assert!(a.check(None, &get, HEALTH_PATH, None).is_ok());
        assert!(!a.check(None, &get, "/", None).unwrap().may_fetch());
        assert!(
            !a.check(None, &get, "/", Some("Bearer nope"))
                .unwrap()
                .may_fetch()
        );
        assert!(
            a.check(None, &get, "/", Some("Bearer open-key"))
                .unwrap()
                .may_fetch()
        );
        assert!(
            access("server: {}\n")
                .check(None, &get, "/", None)
                .unwrap()
                .may_fetch()
        );
        let closed = access("server:\n  api_keys: [k]\n  public_status: false\n");
        assert_eq!(
            closed
                .check(None, &get, HEALTH_PATH, None)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn keys_file_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("keys");
        std::fs::write(&f, "# rig keys\nalpha CAM_L,CAM_C\n\nbeta  # any camera\n").unwrap();
        let yaml = format!("server:\n  api_keys_file: {}\n", f.display());
        let a = access(&yaml);
        let m = tiny_http::Method::Post;
        let g = a.check(None, &m, "/x", Some("Bearer alpha")).unwrap();
        assert!(g.camera(CameraId::parse("CAM_R").unwrap()).is_err());
        let g = a.check(None, &m, "/x", Some("Bearer beta")).unwrap();
        assert!(g.camera(CameraId::parse("CAM_R").unwrap()).is_ok());
        std::fs::write(&f, "alpha CAM_Q\n").unwrap();
        let c = crate::base::config::Config::from_yaml(&yaml, None).unwrap();
        let e = Access::from_config(&c.server).err().unwrap();
        assert!(e.contains("line 1") && !e.contains("alpha"), "{e}");
    }

    #[test]
    fn allowlist_before_keys() {
        let a = access("server:\n  allow_ips: [10.0.0.0/8]\n  api_keys: [k]\n");
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let e = a
            .check(Some(&peer), &tiny_http::Method::Get, HEALTH_PATH, None)
            .unwrap_err();
        assert_eq!((e.status, e.code), (403, code::IP_NOT_ALLOWED));
    }
}
