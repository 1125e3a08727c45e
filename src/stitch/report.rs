//! What rig-stitch reports: a finished stitch, the alignment table, a
//! `--pending` run, and the queue as a table for `--list`.

use serde::Serialize;

use crate::base::jobs::{self, Job, JobStatus, JobsFile};

use super::plan::{CameraOffset, Plan};
use super::round3;
use super::sync::SyncReport;

/// What a finished stitch produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StitchReport {
    /// The job that ran it.
    pub job_id: String,
    /// The panorama.
    pub output: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Its duration as ffprobe reads it, seconds.
    pub duration_sec: f64,
    /// Wall time of the encode, seconds.
    pub elapsed_sec: f64,
    /// The plan that was carried out (offsets, sizes, warnings).
    pub plan: Plan,
}

impl StitchReport {
    /// A few lines for people.
    pub fn human(&self) -> String {
        let p = &self.plan;
        let mut s = format!(
            "{}: {}x{} panorama, {} frames ({:.3} s at {} fps) in {:.1} s -> {}\n",
            p.session_id,
            p.output_width,
            p.output_height,
            p.frames,
            self.duration_sec,
            round3(p.fps),
            self.elapsed_sec,
            self.output
        );
        s.push_str(&plan_lines(p));
        s
    }
}

/// The alignment table of a plan.
pub fn plan_lines(p: &Plan) -> String {
    let mut s = format!("  frame 0 = {}\n", p.common_start);
    for c in &p.cameras {
        s.push_str(&camera_line(c));
    }
    if let Some(sync) = &p.sync {
        s.push_str(&sync.lines());
    }
    s.push_str(&format!("  output {} ({})\n", p.output_rule, p.encoder));
    for w in &p.warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
    s
}

/// One camera's row of the alignment table.
fn camera_line(c: &CameraOffset) -> String {
    format!(
        "  {}  start {}  skip {:>9.3} ms (wanted {:.3} ms, {} frames){}\n",
        c.camera,
        c.start_time,
        c.applied_ms,
        c.offset_ms,
        c.skipped_frames,
        if c.ntp_synced { "" } else { "  NOT NTP-SYNCED" }
    )
}

/// What `rig-stitch SESSION_ID` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// The panorama was made.
    Stitched(StitchReport),
    /// The session's last job is done and its panorama exists; nothing was
    /// run (use `--force`).
    AlreadyDone {
        /// That job.
        job: Job,
    },
}

/// One job of a `--pending` run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingItem {
    /// The job.
    pub job_id: String,
    /// Its session.
    pub session_id: String,
    /// `done` or `failed` (or `queued` when interrupted).
    pub status: JobStatus,
    /// The panorama, when done.
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Per camera, left to right, the offsets the plan applied, when the
    /// stitch got as far as a plan. Cron runs `--pending`, so this is where
    /// a misaligned panorama can be explained without the logs.
    pub cameras: Vec<CameraOffset>,
    /// The plan's warnings (unsynced clocks, normalized inputs, clock and
    /// content disagreeing).
    pub warnings: Vec<String>,
    /// Clock and content offsets per camera, when the plan got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncReport>,
}

impl PendingItem {
    /// The item's lines for people: the verdict, then each camera's offset
    /// and each warning.
    pub fn human(&self) -> String {
        let detail = self
            .output
            .as_deref()
            .or(self.error.as_deref())
            .unwrap_or("");
        let mut s = format!(
            "{} {}: {} {detail}\n",
            self.job_id, self.session_id, self.status
        );
        for c in &self.cameras {
            s.push_str(&camera_line(c));
        }
        if let Some(sync) = &self.sync {
            s.push_str(&sync.lines());
        }
        for w in &self.warnings {
            s.push_str(&format!("  warning: {w}\n"));
        }
        s
    }
}

/// What `rig-stitch --pending` did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PendingReport {
    /// Jobs run, in order.
    pub jobs: Vec<PendingItem>,
    /// Jobs found `running` with no live holder and queued again.
    pub requeued: Vec<String>,
    /// Set when another `--pending` run held the lock and nothing was done.
    pub skipped_locked: bool,
}

impl PendingReport {
    /// Whether every job run succeeded.
    pub fn all_ok(&self) -> bool {
        self.jobs.iter().all(|j| j.status == JobStatus::Done)
    }
}

/// The queue as a table for `--list`. A `running` job whose holder is gone
/// is shown as `running?` (the next run re-queues it).
pub fn list_table(file: &JobsFile) -> String {
    if file.jobs.is_empty() {
        return "no jobs\n".to_string();
    }
    let mut rows = vec![[
        "JOB".to_string(),
        "STATUS".to_string(),
        "PROGRESS".to_string(),
        "CREATED".to_string(),
        "FINISHED".to_string(),
        "OUTPUT / ERROR".to_string(),
    ]];
    rows.extend(file.jobs.iter().map(job_row));
    render_table(&rows)
}

/// One job's row of the `--list` table.
fn job_row(j: &Job) -> [String; 6] {
    let status = if j.status == JobStatus::Running && !jobs::holder_alive(j) {
        "running?".to_string()
    } else {
        j.status.to_string()
    };
    let detail = match (&j.output, &j.error) {
        (_, Some(e)) => e.clone(),
        (Some(o), None) => o.clone(),
        (None, None) => match j.pid {
            Some(p) => format!("pid {p}"),
            None => String::new(),
        },
    };
    [
        j.id.clone(),
        status,
        format!("{:.1}%", j.progress),
        short_time(&j.created_at),
        j.finished_at.as_deref().map(short_time).unwrap_or_default(),
        detail,
    ]
}

/// The rows in aligned columns: the progress column right-aligned, the
/// last one as is, no trailing blanks.
fn render_table(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, (c, w)) in r.iter().zip(widths).enumerate() {
            if i == 5 {
                line.push_str(c);
            } else if i == 2 {
                line.push_str(&format!("{c:>w$}  "));
            } else {
                line.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `2024-03-15T14:00:00.123456Z` as `2024-03-15 14:00:00Z`.
fn short_time(t: &str) -> String {
    match t.split_once('.') {
        Some((head, _)) if t.ends_with('Z') => format!("{}Z", head.replacen('T', " ", 1)),
        _ => t.to_string(),
    }
}
