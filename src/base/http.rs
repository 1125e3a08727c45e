//! The one HTTP client setup shared by rig-upload and rig-check's health
//! probe, so both trust the same roots and send the same key (issue 10).
//!
//! An `https://` server is verified against `offload.ca_file` (the private
//! rig CA made by `scripts/make-rig-ca`, the usual case on a field LAN) or,
//! without it, against the system roots (`/etc/ssl/certs/ca-certificates.crt`,
//! falling back to the Mozilla roots built into ureq). Verification is never
//! turned off and an `https://` URL is never retried as `http://`: a bad
//! certificate is a [`is_tls_failure`] error, which callers do not retry.
//!
//! `offload.api_key` (or the first line of `offload.api_key_file`) is sent as
//! `Authorization: Bearer <key>`; messages never include it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use ureq::config::ConfigBuilder;
use ureq::tls::{RootCerts, TlsConfig};
use ureq::typestate::AgentScope;

use crate::base::config::OffloadConfig;

/// The system's CA bundle (Debian/Raspberry Pi OS `ca-certificates`).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client setup problem: names the config key and file, never a secret.
#[derive(Debug)]
pub enum HttpSetupError {
    /// A file named by a config key could not be read.
    Read {
        /// The config key (or what the file is, e.g. `system CA bundle`).
        key: String,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: io::Error,
    },
    /// A CA file that does not parse as PEM.
    NotPem {
        /// The config key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The PEM parser's error.
        source: ureq::Error,
    },
    /// A PEM file without a certificate.
    NoCertificate {
        /// The config key.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// `offload.api_key_file` holds no key line.
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// `offload.api_key_file`'s key line is not one word.
    KeyNotOneWord {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for HttpSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpSetupError::Read { key, path, source } => {
                write!(f, "{key} {}: cannot read: {source}", path.display())
            }
            HttpSetupError::NotPem { key, path, source } => write!(
                f,
                "{key} {}: not a PEM certificate file: {source}",
                path.display()
            ),
            HttpSetupError::NoCertificate { key, path } => write!(
                f,
                "{key} {}: holds no PEM certificate (expected -----BEGIN CERTIFICATE-----; \
                 use the ca.pem made by scripts/make-rig-ca)",
                path.display()
            ),
            HttpSetupError::NoKey { path } => {
                write!(f, "{API_KEY_FILE} {}: holds no key", path.display())
            }
            HttpSetupError::KeyNotOneWord { path } => write!(
                f,
                "{API_KEY_FILE} {}: the key must be one word on its own line",
                path.display()
            ),
        }
    }
}

impl std::error::Error for HttpSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpSetupError::Read { source, .. } => Some(source),
            HttpSetupError::NotPem { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The config key of the API key file, as errors name it.
const API_KEY_FILE: &str = "offload.api_key_file";

/// Root certificates from a PEM file; `key` names the config key in errors.
pub fn load_roots(path: &Path, key: &str) -> Result<RootCerts, HttpSetupError> {
    let pem = std::fs::read(path).map_err(|source| HttpSetupError::Read {
        key: key.to_string(),
        path: path.to_path_buf(),
        source,
    })?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(source) => {
                return Err(HttpSetupError::NotPem {
                    key: key.to_string(),
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(HttpSetupError::NoCertificate {
            key: key.to_string(),
            path: path.to_path_buf(),
        });
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// The roots an `https://` server must chain to (see the module docs).
pub fn roots(offload: &OffloadConfig) -> Result<RootCerts, HttpSetupError> {
    if let Some(ca) = &offload.ca_file {
        return load_roots(ca, "offload.ca_file");
    }
    let system = Path::new(SYSTEM_CA_BUNDLE);
    if system.exists() {
        match load_roots(system, "system CA bundle") {
            Ok(r) => return Ok(r),
            Err(e) => log::warn!("{e}; using the Mozilla roots built into ureq"),
        }
    }
    Ok(RootCerts::WebPki)
}

/// The API key to send: `offload.api_key`, else the first non-empty line of
/// `offload.api_key_file`, else none.
pub fn api_key(offload: &OffloadConfig) -> Result<Option<String>, HttpSetupError> {
    if let Some(k) = &offload.api_key {
        return Ok(Some(k.trim().to_string()));
    }
    let Some(path) = &offload.api_key_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|source| HttpSetupError::Read {
        key: API_KEY_FILE.to_string(),
        path: path.clone(),
        source,
    })?;
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| HttpSetupError::NoKey { path: path.clone() })?;
    if key.chars().any(char::is_whitespace) {
        return Err(HttpSetupError::KeyNotOneWord { path: path.clone() });
    }
    Ok(Some(key.to_string()))
}

/// `Authorization` header value for `key`.
pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// A ureq agent builder with the rig's TLS roots set; callers add their
/// timeouts and build. Status codes are returned, not turned into errors.
pub fn agent_builder(offload: &OffloadConfig) -> Result<ConfigBuilder<AgentScope>, HttpSetupError> {
    let tls = TlsConfig::builder().root_certs(roots(offload)?).build();
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false))
}

/// Whether a transport error is a TLS failure (bad or unknown certificate,
/// wrong host name, a server that does not speak TLS): not worth retrying,
/// the configuration must change.
pub fn is_tls_failure(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Tls(_) | ureq::Error::Pem(_) | ureq::Error::Rustls(_) => true,
        ureq::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::InvalidData
                && io.get_ref().is_some_and(|inner| {
                    let t = inner.to_string().to_ascii_lowercase();
                    t.contains("certificate")
                        || t.contains("tls")
                        || t.contains("handshake")
                        || t.contains("corrupt message")
                        || t.contains("peer")
                        || t.contains("alert")
                })
        }
        _ => false,
    }
}

/// A one-line hint for a TLS failure talking to `url`.
pub fn tls_hint(url: &str) -> String {
    format!(
        "TLS with {url} failed: the server's certificate is not trusted (set offload.ca_file \
         to the rig CA, ca.pem from scripts/make-rig-ca), does not name this host, or the \
         server does not speak HTTPS; not retried"
    )
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn offload_with_key_file(path: &Path) -> OffloadConfig {
        OffloadConfig {
            api_key_file: Some(path.to_path_buf()),
            ..OffloadConfig::default()
        }
    }

    #[test]
    fn an_unreadable_ca_file_names_key_and_file_and_keeps_the_cause() {
        let err = load_roots(Path::new("/nonexistent/ca.pem"), "offload.ca_file").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("offload.ca_file /nonexistent/ca.pem: cannot read: "),
            "{err}"
        );
        let cause = err.source().and_then(|e| e.downcast_ref::<io::Error>());
        assert_eq!(cause.map(io::Error::kind), Some(io::ErrorKind::NotFound));
    }

    #[test]
    fn a_file_without_certificates_says_what_to_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "nothing here\n").unwrap();
        let err = load_roots(&path, "offload.ca_file").unwrap_err();
        assert!(matches!(err, HttpSetupError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("scripts/make-rig-ca"), "{err}");
        assert!(err.source().is_none());
    }

    #[test]
    fn key_file_errors_name_the_file_and_never_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "# only a comment\n\n").unwrap();
        let err = api_key(&offload_with_key_file(&path)).unwrap_err();
        let want = format!("offload.api_key_file {}: holds no key", path.display());
        assert_eq!(err.to_string(), want);
        std::fs::write(&path, "two words-secret\n").unwrap();
        let err = api_key(&offload_with_key_file(&path)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("must be one word on its own line")
        );
        assert!(!err.to_string().contains("secret"), "{err}");
        std::fs::write(&path, "# the key\n  k3y-1  \n").unwrap();
        let key = api_key(&offload_with_key_file(&path)).unwrap();
        assert_eq!(key.as_deref(), Some("k3y-1"));
    }
}
