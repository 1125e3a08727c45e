//! The report for people.

use std::fmt::Write;

use super::report::{LeftoverKind, RecordingReport, ServerReport, SessionReport};
use crate::base::units::human_bytes;

impl ServerReport {
    /// The report for people: one block per session, then leftovers, queue,
    /// storage and a one-line verdict.
    pub fn human(&self) -> String {
        let mut out = String::new();
        self.write_head(&mut out);
        for session in &self.sessions {
            write_session(&mut out, session);
        }
        self.write_partials(&mut out);
        self.write_leftovers(&mut out);
        self.write_queue_and_storage(&mut out);
        let _ = writeln!(out, "\n{}", self.verdict());
        out
    }

    /// The first line: where, how, how much.
    fn write_head(&self, out: &mut String) {
        let s = &self.summary;
        let _ = writeln!(
            out,
            "rig-check server: {} ({} check{}): {} sessions, {} recordings, {} hashed in {:.1} s",
            self.sessions_path.display(),
            self.mode,
            self.session_filter
                .as_deref()
                .map(|f| format!(", session {f}"))
                .unwrap_or_default(),
            s.sessions,
            s.recordings,
            human_bytes(s.bytes_hashed),
            s.elapsed_sec
        );
    }

    fn write_partials(&self, out: &mut String) {
        if !self.partials.is_empty() {
            let _ = writeln!(
                out,
                "\npartials of interrupted uploads, kept for a resume ({}):",
                self.partials.len()
            );
            for p in &self.partials {
                let _ = writeln!(
                    out,
                    "  OK    {} partial, {} bytes, age {:.1} h",
                    p.recording_id, p.received_bytes, p.age_hours
                );
            }
        }
    }

    fn write_leftovers(&self, out: &mut String) {
        if !self.leftovers.is_empty() {
            let _ = writeln!(out, "\nleftovers ({}):", self.leftovers.len());
            for l in &self.leftovers {
                let kind = match l.kind {
                    LeftoverKind::Temp => "temp",
                    LeftoverKind::Stray => "stray",
                };
                let _ = writeln!(
                    out,
                    "  WARN  {kind:<5} {}{} ({}{}): {}",
                    l.path.display(),
                    if l.is_dir { "/" } else { "" },
                    human_bytes(l.size_bytes),
                    l.modified
                        .as_deref()
                        .map(|m| format!(", modified {m}"))
                        .unwrap_or_default(),
                    l.hint
                );
            }
        }
        for e in &self.walk_errors {
            let _ = writeln!(out, "  FAIL  cannot read {}: {}", e.field, e.message);
        }
    }

    fn write_queue_and_storage(&self, out: &mut String) {
        let q = &self.queue;
        let queue_text = match &q.error {
            Some(e) => e.clone(),
            None if !q.present => "absent (nothing queued yet)".to_string(),
            None => q
                .jobs
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = writeln!(
            out,
            "\n{}  queue    {}: {queue_text}",
            q.status,
            q.path.display()
        );
        if !q.orphans.is_empty() {
            let _ = writeln!(
                out,
                "      jobs for sessions not on disk: {}",
                q.orphans.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "{}  storage  {}",
            self.storage.status, self.storage.message
        );
    }

    /// The last line: status and what it rests on.
    fn verdict(&self) -> String {
        let s = &self.summary;
        let mut parts = vec![format!(
            "{} of {} recordings OK",
            s.recordings_ok, s.recordings
        )];
        for (k, v) in &s.recordings_not_ok {
            parts.push(format!("{v} {}", k.replace('_', " ")));
        }
        let incomplete = s.sessions - s.sessions_complete;
        if incomplete > 0 {
            parts.push(format!("{incomplete} incomplete session(s)"));
        }
        if s.leftovers > 0 {
            parts.push(format!("{} leftover(s)", s.leftovers));
        }
        format!("{}: {}", self.status, parts.join(", "))
    }
}

/// One session's block: its line, its recordings, its notes.
fn write_session(out: &mut String, session: &SessionReport) {
    let _ = writeln!(out, "\n{}", session_line(session));
    for r in &session.recordings {
        write_recording(out, r);
    }
    for n in &session.notes {
        let _ = writeln!(out, "  {}  {}", n.status, n.message);
    }
}

/// A session's status, ID, cameras, panorama and job on one line.
fn session_line(session: &SessionReport) -> String {
    let pano = match session.panorama.size_bytes {
        Some(n) => format!("panorama {}", human_bytes(n)),
        None => "no panorama".to_string(),
    };
    let job = match &session.job {
        Some(j) => format!("job {} {}", j.id, j.status),
        None => "no job".to_string(),
    };
    let cams = if session.complete {
        format!("complete ({})", session.cameras_present.join(" "))
    } else {
        format!("INCOMPLETE, missing {}", session.cameras_missing.join(" "))
    };
    format!(
        "{}  {}  {cams}; {pano}; {job}",
        session.status, session.session_id
    )
}

/// One recording's line, its problems and its fix.
fn write_recording(out: &mut String, r: &RecordingReport) {
    let size = r.size_bytes.map(human_bytes).unwrap_or_else(|| "-".into());
    let digest = r
        .sha256
        .map(|d| format!("  sha256 {}", &d.to_string()[..16]))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {}  {:<16}  {size:>10}{digest}",
        r.camera_id,
        r.status.label()
    );
    for p in &r.problems {
        let _ = writeln!(out, "      {}: {}", p.field, p.message);
    }
    if let Some(fix) = &r.fix {
        let _ = writeln!(out, "      fix: {fix}");
    }
}
