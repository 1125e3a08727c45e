//! After the capture: the file made durable and checked against what was
//! written, the manifest built from reality and written, and the optional
//! offload.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use super::capture::{Ended, Plan};
use super::progress::{ProgressLog, start_time};
use super::pump::PumpEnd;
use super::watch::Watched;
use super::{RecordError, Recorded, StopReason};
use crate::base::checksum::FileDigest;
use crate::base::config::Config;
use crate::base::fsx;
use crate::base::host::ClockSync;
use crate::base::ids::RecordingId;
use crate::base::layout::PiLayout;
use crate::base::manifest::describe::{self, DescribeOptions};
use crate::base::manifest::{Manifest, QualityInfo};

/// Turns an ended capture into a [`Recorded`]: the file synced and checked,
/// the manifest written (see the module docs of [`crate::record`]).
pub(super) fn finish(
    config: &Config,
    plan: &Plan,
    layout: &PiLayout,
    video: PathBuf,
    clock: ClockSync,
    ended: Ended,
    mut w: Watched,
) -> Result<Recorded, RecordError> {
    let Ended {
        status,
        pump,
        fsyncs,
        sync_error,
        log,
        spawned,
    } = ended;
    let Closed {
        digest,
        io_errors,
        last_byte,
    } = close_file(pump, sync_error, layout, &plan.rec);
    note_problems(&mut w, plan, &video, &digest, io_errors, status, &log);
    check_written(plan, &video, &digest, &w.problems, &log)?;
    let times = timing(&log, plan, spawned, last_byte);
    let describe_opts = describe_options(config, plan, clock, &digest, times);
    let manifest = build_manifest(plan, &video, &describe_opts, &log, &mut w)?;
    let manifest_path = store_manifest(&manifest, layout, &plan.rec)?;
    let offload = config
        .offload
        .upload_on_record_stop
        .then(|| offload_after_stop(config, &plan.rec));
    Ok(Recorded {
        recording: plan.rec.clone(),
        video_path: video,
        manifest_path,
        manifest,
        digest,
        frames: log.last.frame,
        dropped_frames: log.last.drop_frames,
        measured_fps: log.measured_fps(),
        stop: w.reason,
        fsyncs,
        problems: w.problems,
        offload,
    })
}

/// How to describe the recording: the known digest, clock and timing,
/// the device from this host, the configured bitrate.
fn describe_options(
    config: &Config,
    plan: &Plan,
    clock: ClockSync,
    digest: &FileDigest,
    times: DescribeOptions,
) -> DescribeOptions {
    DescribeOptions {
        ffprobe: config.processing.ffprobe_path.clone(),
        clock: Some(clock),
        digest: Some(digest.clone()),
        device_from_host: true,
        bitrate_mbps: Some(plan.settings.bitrate_mbps),
        ..times
    }
}

/// The recording file after the capture: closed and synced.
struct Closed {
    digest: FileDigest,
    /// The write error, then the first fsync error (the capture's or the
    /// final one).
    io_errors: (Option<io::Error>, Option<io::Error>),
    /// When its last byte was written.
    last_byte: Option<jiff::Timestamp>,
}

/// Finishes the pump's writer and makes the file durable.
fn close_file(
    pump: PumpEnd,
    sync_error: Option<io::Error>,
    layout: &PiLayout,
    rec: &RecordingId,
) -> Closed {
    let PumpEnd {
        writer,
        error: write_error,
        last_byte,
    } = pump;
    let (file, digest) = writer.finish();
    let final_sync = sync_file(file, layout, rec);
    let sync_error = sync_error.or(final_sync.err());
    Closed {
        digest,
        io_errors: (write_error, sync_error),
        last_byte,
    }
}

/// Writes the manifest next to the recording; its path.
fn store_manifest(
    manifest: &Manifest,
    layout: &PiLayout,
    rec: &RecordingId,
) -> Result<PathBuf, RecordError> {
    let manifest_path = layout.manifest(rec);
    write_manifest_new(manifest, &manifest_path)?;
    log::info!("manifest {}", manifest_path.display());
    Ok(manifest_path)
}

/// What went wrong while capturing, though the recording may be kept: a
/// failed write or fsync, ffmpeg failing, a source that ended by itself.
fn note_problems(
    w: &mut Watched,
    plan: &Plan,
    video: &Path,
    digest: &FileDigest,
    (write_error, sync_error): (Option<io::Error>, Option<io::Error>),
    status: Option<ExitStatus>,
    log: &ProgressLog,
) {
    let problems = &mut w.problems;
    if let Some(e) = write_error {
        problems.push(format!(
            "writing {} failed after {} bytes: {e}",
            video.display(),
            digest.size
        ));
    }
    if let Some(e) = sync_error {
        problems.push(format!("fsync of {} failed: {e}", video.display()));
    }
    if let Some(s) = status
        && !s.success()
        && w.reason != StopReason::Failed
    {
        problems.push(format!("ffmpeg exited with {s}: {}", log.tail_text()));
    }
    if w.reason == StopReason::SourceEnded && plan.duration.is_none() {
        problems.push(format!(
            "the source ended on its own after {:.1} s, before a stop was asked",
            w.started.elapsed().as_secs_f64()
        ));
    }
}

/// `start` and `end` of the recording (see the module docs of
/// [`crate::record`]), as describe options.
fn timing(
    log: &ProgressLog,
    plan: &Plan,
    spawned: jiff::Timestamp,
    last_byte: Option<jiff::Timestamp>,
) -> DescribeOptions {
    let start = start_time(log.first, plan.settings.fps, spawned);
    let end = last_byte.unwrap_or_else(jiff::Timestamp::now).max(start);
    DescribeOptions {
        start: Some(start),
        end: Some(end),
        ..DescribeOptions::default()
    }
}

/// The file's data and its directory entry made durable; the file closed.
fn sync_file(file: File, layout: &PiLayout, rec: &RecordingId) -> std::io::Result<()> {
    file.sync_all()
        .and_then(|()| fsx::sync_dir(&layout.recording_dir(rec)))
}

/// Something was recorded, and the file holds exactly the bytes written.
/// An empty file is removed (it is ours and holds nothing).
fn check_written(
    plan: &Plan,
    video: &Path,
    digest: &FileDigest,
    problems: &[String],
    log: &ProgressLog,
) -> Result<(), RecordError> {
    if digest.size == 0 {
        let _ = fs::remove_file(video);
        let mut why = problems.join("; ");
        if why.is_empty() {
            why = log.tail_text();
        }
        return Err(RecordError::new(
            "capture_failed",
            format!("ffmpeg wrote no video for source {:?}: {why}", plan.spec),
        )
        .with_encoded(log));
    }
    let on_disk = fs::metadata(video).map(|m| m.len()).ok();
    if on_disk != Some(digest.size) {
        return Err(RecordError::new(
            "capture_failed",
            format!(
                "{}: holds {on_disk:?} bytes but {} were written; something else wrote \
                 to it. Kept as is; check it with rig-manifest create --recover",
                video.display(),
                digest.size
            ),
        ));
    }
    Ok(())
}

/// The manifest from ffprobe's report and what the capture measured; a
/// recording shorter than `--duration` is added to the problems.
fn build_manifest(
    plan: &Plan,
    video: &Path,
    opts: &DescribeOptions,
    log: &ProgressLog,
    w: &mut Watched,
) -> Result<Manifest, RecordError> {
    let mut manifest = describe::describe(video, &plan.rec, opts).map_err(|e| {
        let earlier = if w.problems.is_empty() {
            String::new()
        } else {
            format!(" (earlier: {})", w.problems.join("; "))
        };
        let size = opts.digest.as_ref().map_or(0, |d| d.size);
        let msg = format!(
            "{} ({size} bytes) is kept, but no valid manifest could be built: {e}{earlier}",
            video.display(),
        );
        RecordError::new("manifest_failed", msg)
            .with_encoded(log)
            .because(e)
    })?;
    if let (Some(start), Some(end)) = (opts.start, opts.end) {
        extend_end(&mut manifest, start, end);
    }
    manifest.quality = Some(QualityInfo {
        dropped_frames: Some(log.last.drop_frames),
        temperature_avg_c: w.temps.average(),
        temperature_max_c: w.temps.max(),
        extra: Default::default(),
    });
    if let Some(d) = plan.duration {
        let got = manifest.video.duration_sec;
        let frame = 1.0 / f64::from(plan.settings.fps);
        if got < d - 2.0 * frame {
            w.problems.push(format!(
                "recorded {got:.3} s of the {d} s asked for (stopped by {})",
                w.reason.as_str()
            ));
        }
    }
    Ok(manifest)
}

/// A live source cannot deliver N seconds of video in less than N seconds:
/// when ffmpeg buffered its input (probing a `cmd:` stream) and wrote it in
/// a burst, the last byte lands early; the end is then the start plus the
/// video's duration.
fn extend_end(manifest: &mut Manifest, start: jiff::Timestamp, end: jiff::Timestamp) {
    let by_duration = start
        .checked_add(jiff::SignedDuration::from_secs_f64(
            manifest.video.duration_sec,
        ))
        .unwrap_or(end);
    if by_duration > end {
        manifest.timing.end_time = crate::base::manifest::format_time(by_duration);
    }
}

/// Validates and writes a manifest atomically, refusing to replace one.
fn write_manifest_new(m: &Manifest, path: &Path) -> Result<(), RecordError> {
    let fail = |e: String| {
        RecordError::new(
            "manifest_failed",
            format!("{}: {e}; the recording is kept", path.display()),
        )
    };
    m.validate().map_err(|e| fail(e.to_string()).because(e))?;
    let mut f = fsx::AtomicFile::create(path).map_err(|e| fail(e.to_string()).because(e))?;
    f.write_all(m.to_json_pretty().as_bytes())
        .map_err(|e| fail(e.to_string()).because(e))?;
    f.commit_new().map_err(|e| fail(e.to_string()).because(e))
}

/// Offloads the recording just made (`offload.upload_on_record_stop`) with
/// the same code as rig-upload. Its outcome is reported, not fatal: the
/// recording and its manifest are safe on disk either way, and the offload
/// state file tells the next `rig-upload --all` what is left to do.
fn offload_after_stop(config: &Config, rec: &RecordingId) -> String {
    let opts = crate::upload::OffloadOptions {
        wait_for_lock: true,
        progress: true,
        ..Default::default()
    };
    match crate::upload::offload_recording(config, rec, &opts) {
        Ok(report) => {
            let summary = report.summary();
            if report.is_success() {
                log::info!("{summary}");
            } else {
                log::warn!("{summary}; rig-upload --all will try again");
            }
            summary
        }
        Err(e) => {
            let msg = format!("not offloaded: {e}; run rig-upload for {rec}");
            log::warn!("{msg}");
            msg
        }
    }
}
