//! The HTTP side of an offload: the agent, and the three requests of the
//! flow (PROTOCOL.md steps 2 and 5, and PROTOCOL-EXTENSIONS.md's upload
//! status for resuming).

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Seek};
use std::time::{Duration, Instant};

use super::error::{AttemptError, ConfigProblem, OffloadError};
use super::multipart::MultipartBody;
use super::prepare::{Prepared, video_error};
use super::progress::Progress;
use super::retry::{status_failure, transport_failure};
use super::source::Source;
use crate::base::checksum::Sha256;
use crate::base::config::OffloadConfig;
use crate::base::http;
use crate::base::protocol::{self, ConfirmRequest};
use crate::base::replies::{self, UploadReply};

/// What one upload request brought back: the reply, or a failure with, on
/// a 409 `offset_mismatch`, the server's `received_bytes`.
type UploadResult = Result<(UploadReply, f64), (AttemptError, Option<u64>)>;

/// One run's HTTP agent and the server it talks to.
pub(super) struct Transport {
    /// The server's base URL, no trailing `/`.
    pub(super) base: String,
    agent: ureq::Agent,
    /// `Authorization` value (offload.api_key); never logged.
    auth: Option<String>,
    /// Show upload progress.
    progress: bool,
    /// `--no-resume`, or the server answered 404/405 to a status request.
    no_resume: Cell<bool>,
}

/// The upload form's text fields: session, camera, checksum, manifest,
/// and the offset when resuming.
fn form_fields<'a>(
    p: &'a Prepared,
    checksum: &'a str,
    offset: &'a str,
    resuming: bool,
) -> Vec<(&'static str, &'a str)> {
    let mut fields = vec![
        (protocol::field::SESSION_ID, p.rec.session.as_str()),
        (protocol::field::CAMERA_ID, p.rec.camera.as_str()),
        (protocol::field::CHECKSUM, checksum),
        (protocol::field::MANIFEST, p.manifest_json.as_str()),
    ];
    if resuming {
        fields.push((protocol::field::OFFSET, offset));
    }
    fields
}

/// Bytes per second of a send (0 when it took no measurable time).
fn send_rate(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 { bytes as f64 / secs } else { 0.0 }
}

impl Transport {
    /// The agent for `offload`'s server: its timeouts, TLS roots and key,
    /// `chunk`-sized writes, no redirects.
    pub(super) fn new(
        offload: &OffloadConfig,
        chunk: usize,
        progress: bool,
        no_resume: bool,
    ) -> Result<Transport, OffloadError> {
        let base = offload.server_url.trim_end_matches('/').to_string();
        let probe = format!("{base}{}", protocol::UPLOAD_PATH);
        match probe.parse::<ureq::http::Uri>() {
            Ok(uri) if uri.host().is_some() => {}
            _ => {
                let url = offload.server_url.clone();
                return Err(OffloadError::Config(ConfigProblem::ServerUrl(url)));
            }
        }
        let setup = |e| OffloadError::Config(ConfigProblem::Http(e));
        let auth = http::api_key(offload)
            .map_err(setup)?
            .map(|k| http::bearer(&k));
        let agent: ureq::Agent = http::agent_builder(offload)
            .map_err(setup)?
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(offload.connect_timeout_sec)))
            .timeout_global(Some(Duration::from_secs(offload.upload_timeout_sec)))
            .output_buffer_size(chunk)
            // A redirect would need the body sent again; report it instead.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(format!("rig-upload/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Transport {
            base,
            agent,
            auth,
            progress,
            no_resume: Cell::new(no_resume),
        })
    }

    /// How many bytes of this recording the server already holds from an
    /// interrupted upload: 0 with `--no-resume`, when the server does not
    /// know the extension (404/405, remembered for the run) or answers
    /// anything unexpected. A network failure fails the attempt.
    fn resume_point(&self, p: &Prepared) -> Result<u64, AttemptError> {
        if self.no_resume.get() {
            return Ok(0);
        }
        let url = format!(
            "{}{}?session_id={}&camera_id={}&checksum={}",
            self.base,
            protocol::UPLOAD_STATUS_PATH,
            p.rec.session.as_str(),
            p.rec.camera.as_str(),
            p.checksum
        );
        let mut req = self.agent.get(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        let response = req
            .call()
            .map_err(|e| transport_failure("upload status", &url, e))?;
        let (status, text) = read_reply(response);
        if status == 401 || status == 403 {
            // The upload would be refused the same way: say so now, not retried.
            return Err(status_failure("upload status", status, &text));
        }
        if status == 404 || status == 405 {
            log::info!(
                "{}: the server does not resume uploads ({status} on status); sending whole files",
                p.rec
            );
            self.no_resume.set(true);
            return Ok(0);
        }
        Ok(received_bytes(p, status, &text))
    }

    /// Step 2: the streamed multipart upload, resumed when the server holds
    /// a prefix; a 409 `offset_mismatch` is followed once by a resume from
    /// the length the server names. Returns the reply, the rate and the
    /// byte the upload started at.
    pub(super) fn upload(
        &self,
        src: &Source,
        p: &Prepared,
    ) -> Result<(UploadReply, f64, u64), AttemptError> {
        let mut offset = self.resume_point(p)?;
        let mut corrected = false;
        loop {
            match self.upload_from(src, p, offset) {
                Err((fail, Some(have))) if !corrected && have <= p.size => {
                    log::warn!(
                        "{}: {}; resuming from byte {have} instead",
                        p.rec,
                        fail.message
                    );
                    corrected = true;
                    offset = have;
                }
                Err((fail, _)) => return Err(fail),
                Ok((reply, rate)) => return Ok((reply, rate, offset)),
            }
        }
    }

    /// One upload request sending the file from `offset` on. On a 409
    /// `offset_mismatch` the error carries the server's `received_bytes`.
    fn upload_from(&self, src: &Source, p: &Prepared, offset: u64) -> UploadResult {
        let fail = |f: AttemptError| (f, None);
        let file = open_at(src, offset).map_err(fail)?;
        if offset > 0 {
            log::info!(
                "{}: the server holds {offset} of {} bytes; sending the rest",
                p.rec,
                p.size
            );
        }
        let (offset_text, checksum_text) = (offset.to_string(), p.checksum.to_string());
        let fields = form_fields(p, &checksum_text, &offset_text, offset > 0);
        let progress = Progress::new(&p.rec.to_string(), p.size, self.progress);
        let mut body =
            MultipartBody::new(&fields, &p.rec.video_file_name(), file, p.size, progress);
        body.resume_at(offset);
        let url = format!("{}{}", self.base, protocol::UPLOAD_PATH);
        let started = Instant::now();
        let result = self
            .post(&url)
            .header("Content-Type", body.content_type())
            .header("Content-Length", body.len().to_string())
            .header("Expect", "100-continue")
            .send(ureq::SendBody::from_reader(&mut body));
        let secs = started.elapsed().as_secs_f64();
        body.finish_progress();
        if let Some(local) = body.take_local_error() {
            return Err(fail(local));
        }
        let response = result.map_err(|e| fail(transport_failure("upload", &url, e)))?;
        let (status, text) = read_reply(response);
        let rate = send_rate(p.size - offset, secs);
        upload_outcome(&url, status, &text, rate)
    }

    /// A POST with the API key, when one is configured.
    fn post(&self, url: &str) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let req = self.agent.post(url);
        match &self.auth {
            Some(a) => req.header("Authorization", a),
            None => req,
        }
    }

    /// Step 5: the server's digest of what it stored.
    pub(super) fn confirm(&self, p: &Prepared) -> Result<Sha256, AttemptError> {
        let url = format!("{}{}", self.base, protocol::CONFIRM_PATH);
        let req = ConfirmRequest {
            session_id: p.rec.session.to_string(),
            camera_id: p.rec.camera.to_string(),
        };
        let body = serde_json::to_string(&req).unwrap_or_default();
        let response = self
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.as_str())
            .map_err(|e| transport_failure("confirm", &url, e))?;
        let (status, text) = read_reply(response);
        if !(200..300).contains(&status) {
            return Err(status_failure("confirm", status, &text));
        }
        let reply = replies::confirm_reply(&text).map_err(|why| {
            let message = format!("{url} answered {status} but {why}: {text:.200}");
            AttemptError::retry("bad_response", message).caused_by(why)
        })?;
        let other = |got: &Option<String>, want: &str| got.as_deref().is_some_and(|g| g != want);
        if other(&reply.session_id, &req.session_id) || other(&reply.camera_id, &req.camera_id) {
            return Err(AttemptError::retry(
                "bad_response",
                format!(
                    "confirm answered for {}_{} instead of {}",
                    reply.session_id.as_deref().unwrap_or("?"),
                    reply.camera_id.as_deref().unwrap_or("?"),
                    p.rec
                ),
            ));
        }
        Ok(reply.checksum_sha256)
    }
}

/// The recording, opened and positioned at `offset`.
fn open_at(src: &Source, offset: u64) -> Result<File, AttemptError> {
    let mut file = File::open(&src.video).map_err(|e| video_error(src, e))?;
    if offset > 0 {
        file.seek(io::SeekFrom::Start(offset)).map_err(|e| {
            AttemptError::fatal(
                "file_unreadable",
                format!("recording {}: {e}", src.video.display()),
            )
            .caused_by(e)
        })?;
    }
    Ok(file)
}

/// What an upload status reply says to resume from: its `received_bytes`,
/// or 0 (send the whole file) when it makes no sense or is no such reply.
fn received_bytes(p: &Prepared, status: u16, text: &str) -> u64 {
    let parsed = if (200..300).contains(&status) {
        replies::status_reply(text).ok()
    } else {
        None
    };
    match parsed {
        Some(have) if have <= p.size => have,
        Some(have) => {
            log::warn!(
                "{}: the server holds {have} bytes, more than the file's {}; sending it whole",
                p.rec,
                p.size
            );
            0
        }
        None => {
            log::warn!(
                "{}: upload status answered {status} {:.200}; sending the whole file",
                p.rec,
                text.trim()
            );
            0
        }
    }
}

/// An upload's reply read: the 2xx reply with the rate, else the
/// classified failure and, on a 409 `offset_mismatch`, where to resume.
fn upload_outcome(url: &str, status: u16, text: &str, rate: f64) -> UploadResult {
    if (200..300).contains(&status) {
        let reply = replies::upload_reply(text).map_err(|why| {
            let message =
                format!("{url} answered {status} with a body that is no JSON object: {text:.200}");
            (
                AttemptError::retry("bad_response", message).caused_by(why),
                None,
            )
        })?;
        return Ok((reply, rate));
    }
    let have = (status == 409)
        .then(|| serde_json::from_str::<serde_json::Value>(text).ok())
        .flatten()
        .filter(|v| v["error"] == protocol::code::OFFSET_MISMATCH)
        .and_then(|v| v["received_bytes"].as_u64());
    Err((status_failure("upload", status, text), have))
}

/// Status code and body text (at most 64 KiB) of a reply.
fn read_reply(mut response: ureq::http::Response<ureq::Body>) -> (u16, String) {
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    (status, text)
}
