//! The node report for people.

use std::fmt::Write;

use super::{BacklogItem, NodeReport};
use crate::base::units::human_bytes;
use crate::check::Status;

impl NodeReport {
    /// The report for people: one line per check, fixes under failures,
    /// the backlog, and a one-line verdict.
    pub fn human(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rig-check node: {} ({}), storage {}",
            self.hostname.as_deref().unwrap_or("unknown host"),
            self.camera_id,
            self.storage_root.display()
        );
        for c in &self.checks {
            let _ = writeln!(out, "{}  {:<12}  {}", c.status, c.name, c.message);
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "      fix: {fix}");
            }
        }
        if !self.backlog.is_empty() {
            let _ = writeln!(out, "\nbacklog ({}):", self.backlog.len());
            for b in &self.backlog {
                backlog_lines(&mut out, b);
            }
        }
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        let _ = writeln!(
            out,
            "\n{}: {} checks, {} failed, {} warned",
            self.status,
            self.checks.len(),
            count(Status::Fail),
            count(Status::Warn)
        );
        out
    }
}

/// One recording of the backlog: its line, then its problems.
fn backlog_lines(out: &mut String, b: &BacklogItem) {
    let mut line = format!(
        "  {}  {}  {}",
        b.recording_id,
        b.state,
        b.size_bytes.map(human_bytes).unwrap_or_else(|| "-".into())
    );
    if let Some(a) = b.attempts {
        line.push_str(&format!(", {a} attempt(s)"));
    }
    if let Some(e) = &b.last_error {
        line.push_str(&format!(", last error: {e}"));
    }
    match b.verified {
        Some(true) => line.push_str(", verified"),
        Some(false) => line.push_str(", VERIFY FAILED"),
        None => {}
    }
    let _ = writeln!(out, "{line}");
    for p in &b.problems {
        let _ = writeln!(out, "      {p}");
    }
}
