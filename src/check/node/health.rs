//! The server, as the node sees it: `GET /api/v1/health`.

use std::io::Read;
use std::time::Duration;

use serde_json::json;

use super::{CheckItem, MAX_SMALL_BYTES, NodeOptions, item};
use crate::base::config::Config;
use crate::base::protocol::HEALTH_PATH;
use crate::base::replies::HealthReply;
use crate::check::Status;

/// `GET /api/v1/health`; returns the check and the server's free GB.
pub(super) fn check_server(
    url: &str,
    config: &Config,
    opts: &NodeOptions,
) -> (CheckItem, Option<f64>) {
    let health = format!("{}{HEALTH_PATH}", url.trim_end_matches('/'));
    let fail = |message: String, http: Option<u16>| {
        let fix = "start rig-receive on the server, check the network and \
                   offload.server_url (or --server)";
        let value = json!({"url": health, "reachable": http.is_some(), "http_status": http,
                           "status": null, "storage_free_gb": null, "active_uploads": null});
        (
            item("server", Status::Fail, message, Some(fix), value),
            None,
        )
    };
    let (code, body) = match get_health(&health, config, opts) {
        Ok(reply) => reply,
        Err((message, http)) => return fail(message, http),
    };
    if code != 200 {
        return fail(format!("{health} answered HTTP {code}"), Some(code));
    }
    let h = match crate::base::replies::health_reply(&body) {
        Ok(h) => h,
        Err(why) => {
            return fail(
                format!("{health} answered 200 but not a health reply: {why}"),
                Some(code),
            );
        }
    };
    let value = json!({"url": health, "reachable": true, "http_status": code,
                       "status": h.status, "storage_free_gb": h.storage_free_gb,
                       "active_uploads": h.active_uploads});
    (health_item(&health, &h, value), h.storage_free_gb)
}

/// The status and body of `GET health` (bounded in time and size); on
/// failure, the message and the HTTP status if one came.
fn get_health(
    health: &str,
    config: &Config,
    opts: &NodeOptions,
) -> Result<(u16, String), (String, Option<u16>)> {
    use crate::base::http;
    let agent = health_agent(config, opts).map_err(|e| (e, None))?;
    let mut req = agent.get(health);
    if let Some(key) = http::api_key(&config.offload).map_err(|e| (e.to_string(), None))? {
        req = req.header("Authorization", http::bearer(&key));
    }
    let mut resp = req.call().map_err(|e| (call_failure(health, &e), None))?;
    let code = resp.status().as_u16();
    let mut body = String::new();
    resp.body_mut()
        .as_reader()
        .take(MAX_SMALL_BYTES)
        .read_to_string(&mut body)
        .map_err(|e| {
            (
                format!("{health}: reading the reply failed: {e}"),
                Some(code),
            )
        })?;
    Ok((code, body))
}

/// An HTTP client for the health check: the offload settings, the connect
/// timeout no longer than the whole check's, no proxy, HTTP errors as
/// replies.
fn health_agent(config: &Config, opts: &NodeOptions) -> Result<ureq::Agent, String> {
    let connect =
        Duration::from_secs(config.offload.connect_timeout_sec.max(1)).min(opts.health_timeout);
    let builder = crate::base::http::agent_builder(&config.offload).map_err(|e| e.to_string())?;
    Ok(builder
        .timeout_connect(Some(connect))
        .timeout_global(Some(opts.health_timeout))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into())
}

/// Why the request to `health` got no reply, with a hint for TLS failures.
fn call_failure(health: &str, e: &ureq::Error) -> String {
    if crate::base::http::is_tls_failure(e) {
        format!("{} ({e})", crate::base::http::tls_hint(health))
    } else {
        format!("{health} unreachable: {e}")
    }
}

/// The check a health reply makes: PASS when healthy with its figures,
/// WARN when not healthy or when it does not tell its free space (another
/// PROTOCOL.md server, e.g. the Python reference).
fn health_item(health: &str, h: &HealthReply, value: serde_json::Value) -> CheckItem {
    let uploads = h.active_uploads.map_or_else(
        || "upload count unknown".into(),
        |n| format!("{n} upload(s) active"),
    );
    let (free, figure) = match h.storage_free_gb {
        Some(gb) => (true, format!("{gb:.1} GB free, {uploads}")),
        None => (false, format!("free space unknown, {uploads}")),
    };
    if h.status != "healthy" {
        return item(
            "server",
            Status::Warn,
            format!("{health} reports {:?}: {figure}", h.status),
            Some("free space on the server (rig-check server shows what is there)"),
            value,
        );
    }
    if !free {
        return item(
            "server",
            Status::Warn,
            format!("{health} healthy: {figure} (the server does not report it)"),
            Some("check the server's free space there; the backlog check is skipped"),
            value,
        );
    }
    item(
        "server",
        Status::Pass,
        format!("{health} healthy: {figure}"),
        None,
        value,
    )
}
