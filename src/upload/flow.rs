//! The flow for one recording (PROTOCOL.md "Upload Flow" and "Retry
//! Logic"): prepare, ask whether an interrupted run already delivered,
//! attempt with backoff, record the outcome, delete only after a matching
//! confirm.

use std::fs;
use std::time::{Duration, Instant};

use super::error::{AttemptError, OffloadError};
use super::options::OffloadOptions;
use super::prepare::{Prepared, prepare};
use super::report::{OffloadReport, Outcome, plural};
use super::retry::backoff_delay;
use super::source::Source;
use super::state::{OffloadState, OffloadStatus, now, read_state_lenient, write_offload_state};
use super::transport::Transport;
use crate::base::checksum::Sha256;
use crate::base::config::{Config, OffloadConfig};
use crate::base::fsx;
use crate::base::ids::RecordingId;
use crate::base::protocol;

/// One run's settings and HTTP agent.
pub(super) struct Uploader<'a> {
    offload: &'a OffloadConfig,
    opts: &'a OffloadOptions,
    transport: Transport,
    /// Read size for hashing, and the agent's write size.
    chunk: usize,
}

impl<'a> Uploader<'a> {
    /// The uploader of `config`'s `offload` section; a configuration that
    /// cannot work is an error before anything is tried.
    pub(super) fn new(
        config: &'a Config,
        opts: &'a OffloadOptions,
    ) -> Result<Uploader<'a>, OffloadError> {
        let offload = &config.offload;
        let chunk = usize::try_from(offload.chunk_size_kb)
            .unwrap_or(1024)
            .saturating_mul(1024)
            .max(4096);
        let transport = Transport::new(offload, chunk, opts.progress, opts.no_resume)?;
        Ok(Uploader {
            offload,
            opts,
            transport,
            chunk,
        })
    }

    /// The whole flow for one recording.
    pub(super) fn run(&self, src: &Source) -> Result<OffloadReport, OffloadError> {
        let started = Instant::now();
        let mut report = OffloadReport::starting(src, &self.transport.base, self.opts.dry_run);
        let previous = read_state_lenient(&src.state);
        // A dry run reports this too: a real run would send nothing, so
        // "would be sent" would be false (and --all skips it the same way).
        if let Some(prev) = &previous
            && prev.status == OffloadStatus::Offloaded
        {
            self.already_offloaded(&mut report, prev);
            return Ok(report);
        }
        let mut state = previous
            .clone()
            .unwrap_or_else(|| OffloadState::pending(&report.recording_id));
        state.attempts = 0;
        state.server_url = Some(self.transport.base.clone());
        match prepare(src, self.opts.rehash, self.chunk) {
            Ok(prepared) => {
                let interrupted = previous.as_ref().is_some_and(|p| {
                    matches!(p.status, OffloadStatus::Uploading | OffloadStatus::Failed)
                });
                self.send(src, &prepared, interrupted, &mut state, &mut report)?;
            }
            Err(fail) => self.unprepared(src, &mut state, &mut report, fail)?,
        }
        report.elapsed_sec = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The state file already says offloaded: report that, send nothing.
    fn already_offloaded(&self, report: &mut OffloadReport, prev: &OffloadState) {
        report.success = true;
        report.status = Outcome::AlreadyOffloaded;
        if let Ok(rec) = RecordingId::parse(&prev.recording_id) {
            // In --file mode the label is the manifest path; the
            // state knows the ID.
            report.recording_id = rec.to_string();
        }
        report.file_size = prev.file_size;
        report.checksum = prev.checksum;
        report.server_checksum = prev.server_checksum;
        report.local_deleted = prev.local_deleted;
        log::info!(
            "{}: already offloaded, {}",
            report.recording_id,
            if self.opts.dry_run {
                "nothing would be sent"
            } else {
                "nothing to do"
            }
        );
    }

    /// Preparation failed: final, recorded in the state (not on a dry run).
    fn unprepared(
        &self,
        src: &Source,
        state: &mut OffloadState,
        report: &mut OffloadReport,
        fail: AttemptError,
    ) -> Result<(), OffloadError> {
        log::error!("{}: {} (not retried)", report.recording_id, fail.message);
        self.record_failed(src, state, report, fail)
    }

    /// The recording is failed: the state says why (not on a dry run, which
    /// changes nothing), and so does the report.
    fn record_failed(
        &self,
        src: &Source,
        state: &mut OffloadState,
        report: &mut OffloadReport,
        fail: AttemptError,
    ) -> Result<(), OffloadError> {
        if !self.opts.dry_run {
            state.status = OffloadStatus::Failed;
            state.last_error = Some(fail.message.clone());
            state.updated_at = now();
            write_offload_state(&src.state, state)?;
        }
        report.error = Some(fail.code);
        report.message = Some(fail.message);
        Ok(())
    }

    /// A prepared recording: reported on a dry run, else sent (unless an
    /// interrupted run already delivered it) with retries.
    fn send(
        &self,
        src: &Source,
        prepared: &Prepared,
        interrupted: bool,
        state: &mut OffloadState,
        report: &mut OffloadReport,
    ) -> Result<(), OffloadError> {
        report.recording_id = prepared.rec.to_string();
        report.file_size = Some(prepared.size);
        report.checksum = Some(prepared.checksum);
        state.recording_id = prepared.rec.to_string();
        state.checksum = Some(prepared.checksum);
        state.file_size = Some(prepared.size);
        if self.opts.dry_run {
            report.success = true;
            report.status = Outcome::DryRun;
            return Ok(());
        }
        // A run that died after the server stored the file but before we
        // wrote "offloaded": ask before sending gigabytes again.
        if interrupted
            && self.offload.verify_checksum
            && self.already_on_server(src, prepared, state, report)?
        {
            return Ok(());
        }
        if let Some(fail) = self.attempts(src, prepared, state, report)? {
            self.give_up(src, prepared, state, report, fail)?;
        }
        Ok(())
    }

    /// Asks confirm whether the server holds these exact bytes; if so,
    /// records the recording offloaded and returns true.
    fn already_on_server(
        &self,
        src: &Source,
        prepared: &Prepared,
        state: &mut OffloadState,
        report: &mut OffloadReport,
    ) -> Result<bool, OffloadError> {
        match self.transport.confirm(prepared) {
            Ok(digest) if digest == prepared.checksum => {
                log::info!(
                    "{}: the server already holds these bytes (confirm digest matches); \
                     not sending again",
                    prepared.rec
                );
                report.server_checksum = Some(digest);
                self.finish_offloaded(src, state, report, digest, true)?;
                return Ok(true);
            }
            Ok(_) => log::info!("{}: the server holds other bytes; uploading", prepared.rec),
            Err(f) => log::info!(
                "{}: not on the server yet ({}); uploading",
                prepared.rec,
                f.message
            ),
        }
        Ok(false)
    }

    /// Up to `retry_count` attempts with backoff; `None` once offloaded,
    /// else the failure that ended them.
    fn attempts(
        &self,
        src: &Source,
        p: &Prepared,
        state: &mut OffloadState,
        report: &mut OffloadReport,
    ) -> Result<Option<AttemptError>, OffloadError> {
        let tries = self.offload.retry_count.max(1);
        let mut uploaded = false;
        let mut last: Option<AttemptError> = None;
        for attempt in 1..=tries {
            if attempt > 1 {
                self.wait_before(&p.rec, attempt, tries, last.as_ref());
            }
            log_attempt(&p.rec, attempt, tries, uploaded);
            begin_attempt(src, state, report, attempt)?;
            match self.attempt(src, p, &mut uploaded, report) {
                Ok(digest) => {
                    let verified = self.offload.verify_checksum;
                    report.server_checksum = Some(digest);
                    self.finish_offloaded(src, state, report, digest, verified)?;
                    return Ok(None);
                }
                Err(fail) => {
                    let again = fail.retry && attempt < tries;
                    log_failed_attempt(&p.rec, attempt, tries, &fail, again);
                    state.last_error = Some(fail.message.clone());
                    last = Some(fail);
                    if !again {
                        break;
                    }
                }
            }
        }
        Ok(Some(last.unwrap_or_else(|| {
            AttemptError::fatal("failed", "no attempt was made")
        })))
    }

    /// The backoff before attempt `attempt` (2 or later), logged with the
    /// reason the last one failed.
    fn wait_before(
        &self,
        rec: &RecordingId,
        attempt: u32,
        tries: u32,
        last: Option<&AttemptError>,
    ) {
        let delay = backoff_delay(self.offload.retry_delay_sec, attempt);
        log::warn!(
            "{rec}: waiting {delay:.2} s before attempt {attempt} of {tries} ({})",
            last.map_or("", |f| f.message.as_str())
        );
        std::thread::sleep(Duration::from_secs_f64(delay));
    }

    /// No attempts left: the recording is failed; the local copy is kept.
    fn give_up(
        &self,
        src: &Source,
        prepared: &Prepared,
        state: &mut OffloadState,
        report: &mut OffloadReport,
        fail: AttemptError,
    ) -> Result<(), OffloadError> {
        log::error!(
            "{}: failed after {} attempt{}: {}; the local recording is kept",
            prepared.rec,
            report.attempts,
            plural(report.attempts),
            fail.message
        );
        self.record_failed(src, state, report, fail)
    }

    /// Records success, then (only on a compared, matching digest and when
    /// configured) deletes the local recording.
    fn finish_offloaded(
        &self,
        src: &Source,
        state: &mut OffloadState,
        report: &mut OffloadReport,
        digest: Sha256,
        verified: bool,
    ) -> Result<(), OffloadError> {
        state.status = OffloadStatus::Offloaded;
        state.server_checksum = Some(digest);
        state.last_error = None;
        state.confirmed_at = Some(now());
        state.updated_at = now();
        write_offload_state(&src.state, state)?;
        report.success = true;
        report.status = Outcome::Offloaded;
        log::info!("{}: offloaded and confirmed", state.recording_id);
        if !self.offload.delete_after_confirm {
            return Ok(());
        }
        if !verified {
            log::warn!(
                "{}: not deleting the local recording: offload.verify_checksum is false, \
                 so the server's digest was not compared",
                state.recording_id
            );
            return Ok(());
        }
        delete_local(src, state, report)
    }

    /// Steps 2-7 once: upload (unless already accepted), confirm, compare.
    fn attempt(
        &self,
        src: &Source,
        p: &Prepared,
        uploaded: &mut bool,
        report: &mut OffloadReport,
    ) -> Result<Sha256, AttemptError> {
        if !*uploaded {
            let (reply, rate, resumed_from) = self.transport.upload(src, p)?;
            report.bytes_per_sec = Some(rate);
            report.resumed_from = resumed_from;
            check_accepted(p, &reply)?;
            *uploaded = true;
        }
        let digest = self.transport.confirm(p)?;
        if self.offload.verify_checksum && digest != p.checksum {
            // The server holds other bytes: send the file again.
            *uploaded = false;
            return Err(AttemptError::retry(
                protocol::code::CHECKSUM_MISMATCH,
                format!(
                    "the server's confirm digest {digest} differs from ours {}",
                    p.checksum
                ),
            ));
        }
        Ok(digest)
    }
}

/// A 2xx upload reply must not deny the checksum or name another size.
fn check_accepted(
    p: &Prepared,
    reply: &crate::base::replies::UploadReply,
) -> Result<(), AttemptError> {
    if reply.success == Some(false) || reply.checksum_verified == Some(false) {
        return Err(AttemptError::retry(
            protocol::code::CHECKSUM_MISMATCH,
            format!(
                "the server accepted the upload but did not verify its checksum \
                 (success {:?}, checksum_verified {:?})",
                reply.success, reply.checksum_verified
            ),
        ));
    }
    if let Some(size) = reply.size.filter(|&n| n != p.size) {
        return Err(AttemptError::retry(
            "size_mismatch",
            format!("the server stored {size} bytes, the file has {}", p.size),
        ));
    }
    for w in &reply.manifest_warnings {
        log::warn!("{}: the server repaired our manifest: {w}", p.rec);
    }
    Ok(())
}

/// Logs the start of an attempt: an upload, or only the confirmation
/// once an upload was accepted.
fn log_attempt(rec: &RecordingId, attempt: u32, tries: u32, uploaded: bool) {
    log::info!(
        "{}: attempt {attempt} of {tries}: {}",
        rec,
        if uploaded {
            "confirm (the upload was already accepted)"
        } else {
            "upload"
        }
    );
}

/// Records in the state file and the report that attempt `attempt` is
/// under way.
fn begin_attempt(
    src: &Source,
    state: &mut OffloadState,
    report: &mut OffloadReport,
    attempt: u32,
) -> Result<(), OffloadError> {
    state.status = OffloadStatus::Uploading;
    state.attempts = attempt;
    state.updated_at = now();
    write_offload_state(&src.state, state)?;
    report.attempts = attempt;
    Ok(())
}

/// One line per failed attempt, saying whether another follows.
fn log_failed_attempt(
    rec: &RecordingId,
    attempt: u32,
    tries: u32,
    fail: &AttemptError,
    again: bool,
) {
    log::warn!(
        "{rec}: attempt {attempt} of {tries} failed: {} [{}]{}",
        fail.message,
        fail.code,
        if !fail.retry {
            "; not retried"
        } else if !again {
            "; no attempts left"
        } else {
            ""
        }
    );
}

/// Deletes the local recording after a matching confirm, and says so in
/// the state; a failed delete is only a warning (the state stays true).
fn delete_local(
    src: &Source,
    state: &mut OffloadState,
    report: &mut OffloadReport,
) -> Result<(), OffloadError> {
    match fs::remove_file(&src.video) {
        Ok(()) => {
            if let Some(dir) = src.video.parent() {
                let _ = fsx::sync_dir(dir);
            }
            log::info!(
                "{}: deleted local {} after the confirm digest matched",
                state.recording_id,
                src.video.display()
            );
            state.local_deleted = true;
            state.updated_at = now();
            write_offload_state(&src.state, state)?;
            report.local_deleted = true;
        }
        Err(e) => log::warn!(
            "{}: could not delete {}: {e}",
            state.recording_id,
            src.video.display()
        ),
    }
    Ok(())
}
