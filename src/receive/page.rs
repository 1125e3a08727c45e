//! `GET /`: one small HTML page a coach opens on a phone after the match,
//! to see whether all three cameras arrived, whether the panorama is ready,
//! and to fetch a file.
//!
//! It is built from the same data as the JSON API ([`super::summary`]), in
//! one pass, with inline CSS and no script and no external asset: it works
//! with JavaScript off and on a network with no internet. While an upload or
//! a stitch is under way it reloads itself every [`BUSY_REFRESH_SEC`] s (a
//! `<meta http-equiv="refresh">`), else every [`IDLE_REFRESH_SEC`] s.
//!
//! With API keys configured, the page is public (`server.public_status`)
//! but downloads and the JSON API are not, and a phone's browser cannot
//! send `Authorization`: a request without a valid key gets the page with
//! sizes and status but no link to a key-protected route, and a note that
//! downloads need an API key ([`render`]'s `links`). The thumbnails stay:
//! their route is public too.
//!
//! Every piece of text that comes from outside the program goes through
//! [`escape`]: session IDs are user-chosen (the ID rule keeps `<` out of
//! them, but the page does not rely on it) and manifests are written by
//! the Pis, so a hostname such as `<b>x</b>` shows as text.

use std::fmt::Write;

use super::summary::{CameraSummary, SessionList, SessionSummary, Stats};
use crate::base::jobs::JobStatus;
use crate::base::units::human_bytes;

/// Seconds between reloads while an upload or a stitch is under way.
pub const BUSY_REFRESH_SEC: u32 = 5;
/// Seconds between reloads otherwise.
pub const IDLE_REFRESH_SEC: u32 = 30;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration as `h:mm:ss` (`m:ss` under an hour, seconds under a minute).
pub fn human_duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let s = secs.round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM UTC`.
fn human_time(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| rfc3339.to_string())
}

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
background:#f3f4f6;color:#111827}\
header{background:#14532d;color:#fff;padding:12px 16px}\
h1{margin:0;font-size:1.25rem}\
.facts{display:flex;flex-wrap:wrap;gap:6px 14px;margin:6px 0 0;font-size:.9rem}\
.warn-box{background:#fef3c7;color:#78350f;padding:8px 16px;margin:0}\
main{max-width:46rem;margin:0 auto;padding:8px}\
.session{background:#fff;border-radius:10px;padding:12px;margin:10px 0;\
box-shadow:0 1px 3px rgba(0,0,0,.12)}\
.head{display:flex;flex-wrap:wrap;align-items:center;gap:6px 10px}\
h2{margin:0;font-size:1.05rem;word-break:break-all}\
.badge{border-radius:999px;padding:1px 10px;font-size:.8rem;font-weight:600}\
.ok{background:#dcfce7;color:#14532d}.bad{background:#fee2e2;color:#7f1d1d}\
.busy{background:#fef3c7;color:#78350f}\
.thumb{float:right;width:34%;max-width:160px;height:auto;margin:0 0 6px 10px;border-radius:6px;\
background:#e5e7eb}\
.cams{clear:both;display:grid;grid-template-columns:repeat(3,1fr);gap:6px;margin:8px 0}\
.cam{display:flex;flex-direction:column;border-radius:8px;padding:6px 8px;font-size:.85rem;\
text-decoration:none;color:inherit;min-width:0;overflow-wrap:anywhere}\
.cam strong{font-size:.95rem}\
a.cam{border:1px solid #16a34a}\
.stitch,.meta{margin:4px 0;font-size:.9rem}.meta{color:#4b5563}\
footer{text-align:center;font-size:.8rem;color:#6b7280;padding:12px}\
a{color:#15803d}";

/// What the page says instead of links when the client has no valid key.
pub const KEY_NOTE: &str = "Downloads and the JSON API need an API key (Authorization: Bearer); \
                            this page shows status only.";

/// The whole page: `stats` at the top, then `list`'s sessions, newest first.
/// `links`: whether to link to the recordings, panoramas and JSON routes
/// (false when they would answer this client 401).
pub fn render(stats: &Stats, list: &SessionList, links: bool) -> String {
    let busy = stats.active_uploads > 0
        || stats.queue_depth > 0
        || list.sessions.iter().any(|s| s.uploading);
    let refresh = if busy {
        BUSY_REFRESH_SEC
    } else {
        IDLE_REFRESH_SEC
    };
    let mut h = String::with_capacity(4096 + list.sessions.len() * 1500);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{refresh}\">\
         <title>soccer-rig: sessions</title><style>{STYLE}</style></head>\n<body>\n"
    );
    header(&mut h, stats);
    for w in stats.warnings.iter().chain(&list.warnings) {
        let _ = writeln!(h, "<p class=\"warn-box\">{}</p>", escape(w));
    }
    if !links {
        let _ = writeln!(h, "<p class=\"warn-box\">{}</p>", escape(KEY_NOTE));
    }
    sessions(&mut h, list, links);
    let json = if links {
        " <a href=\"/api/v1/sessions\">JSON</a> &middot; <a href=\"/api/v1/stats\">stats</a>"
    } else {
        ""
    };
    let _ = write!(
        h,
        "</main>\n<footer>Refreshes every {refresh} s.{json}</footer>\n</body></html>\n"
    );
    h
}

/// The head: free space, uploads, the stitch queue, totals.
fn header(h: &mut String, stats: &Stats) {
    h.push_str("<header><h1>soccer-rig sessions</h1><p class=\"facts\">");
    let free = stats
        .storage_free_bytes
        .map_or_else(|| "unknown".to_string(), human_bytes);
    let _ = write!(
        h,
        "<span>Free space: <strong>{}</strong></span>",
        escape(&free)
    );
    let _ = write!(
        h,
        "<span>Uploads: <strong>{}</strong> active</span>",
        stats.active_uploads
    );
    let _ = write!(
        h,
        "<span>Stitch queue: <strong>{}</strong></span>",
        stats.queue_depth
    );
    let _ = write!(
        h,
        "<span>{} sessions, {} recordings, {}</span>",
        stats.sessions,
        stats.recordings,
        escape(&human_bytes(stats.bytes))
    );
    h.push_str("</p>");
    if !stats.uploading.is_empty() {
        let names: Vec<String> = stats.uploading.iter().map(|r| escape(r)).collect();
        let _ = write!(
            h,
            "<p class=\"facts\">Uploading now: {}</p>",
            names.join(", ")
        );
    }
    h.push_str("</header>\n");
}

/// `<main>` up to its end tag: one section per session, and how many more
/// there are.
fn sessions(h: &mut String, list: &SessionList, links: bool) {
    h.push_str("<main>\n");
    if list.sessions.is_empty() {
        h.push_str("<p>No sessions yet. Recordings appear here as the cameras upload them.</p>\n");
    }
    for s in &list.sessions {
        session(h, s, links);
    }
    if list.total > list.sessions.len() {
        let all = if links {
            "; <a href=\"/api/v1/sessions?limit=1000\">all of them as JSON</a>"
        } else {
            ""
        };
        let _ = writeln!(
            h,
            "<p class=\"meta\">Showing the newest {} of {} sessions{all}.</p>",
            list.sessions.len(),
            list.total
        );
    }
}

fn session(h: &mut String, s: &SessionSummary, links: bool) {
    let id = escape(&s.session_id);
    let (class, badge) = badge(s);
    let _ = write!(h, "<section class=\"session\" id=\"s-{id}\">");
    if let Some(url) = &s.thumbnail_url {
        let _ = write!(
            h,
            "<img class=\"thumb\" src=\"{}\" alt=\"a frame of {id}\" loading=\"lazy\" \
             width=\"320\" height=\"180\">",
            escape(url)
        );
    }
    let _ = write!(
        h,
        "<div class=\"head\"><h2>{id}</h2><span class=\"badge {class}\">{}</span></div>",
        escape(&badge)
    );
    h.push_str("<div class=\"cams\">");
    for c in &s.cameras {
        camera(h, c, links);
    }
    h.push_str("</div>");
    panorama(h, s, links);
    session_meta(h, s);
    h.push_str("</section>\n");
}

/// The class and text of a session's badge: complete, uploading, or what
/// is missing.
fn badge(s: &SessionSummary) -> (&'static str, String) {
    if s.complete {
        ("ok", "all 3 cameras".to_string())
    } else if s.uploading {
        ("busy", "uploading".to_string())
    } else {
        ("bad", format!("missing {}", s.cameras_missing.join(", ")))
    }
}

/// A session's last upload and bytes recorded, when known.
fn session_meta(h: &mut String, s: &SessionSummary) {
    let mut meta = Vec::new();
    if let Some(t) = &s.uploaded_at {
        meta.push(format!("last upload {}", escape(&human_time(t))));
    }
    if s.recording_bytes > 0 {
        meta.push(format!(
            "{} recorded",
            escape(&human_bytes(s.recording_bytes))
        ));
    }
    if !meta.is_empty() {
        let _ = write!(h, "<p class=\"meta\">{}</p>", meta.join(" &middot; "));
    }
}

/// The session's panorama line: ready (a link), stitching, queued, failed,
/// or waiting.
fn panorama(h: &mut String, s: &SessionSummary, links: bool) {
    h.push_str("<p class=\"stitch\">Panorama: ");
    let job = s.job.as_ref();
    // A panorama already there stays reachable while a re-stitch runs.
    let ready = s.panorama.as_ref().map(|p| {
        let size = escape(&human_bytes(p.size_bytes));
        if links {
            format!("<a href=\"{}\">ready, {size}</a>", escape(&p.url))
        } else {
            format!("ready, {size}")
        }
    });
    let busy = |h: &mut String, badge: String| {
        if let Some(r) = &ready {
            let _ = write!(h, "{r} &middot; ");
        }
        h.push_str(&badge);
    };
    match (&ready, job.map(|j| j.status)) {
        (_, Some(JobStatus::Running)) => busy(
            h,
            format!(
                "<span class=\"badge busy\">stitching {:.0}%</span>",
                job.map_or(0.0, |j| j.progress)
            ),
        ),
        (_, Some(JobStatus::Queued)) => {
            busy(h, "<span class=\"badge busy\">queued</span>".into());
        }
        (Some(r), _) => h.push_str(r),
        (None, Some(JobStatus::Failed)) => {
            let why = job.and_then(|j| j.error.as_deref()).unwrap_or("no reason");
            let _ = write!(h, "<span class=\"badge bad\">failed</span> {}", escape(why));
        }
        (None, _) if s.complete => h.push_str("not stitched yet"),
        (None, _) => h.push_str("waits for all three cameras"),
    }
    h.push_str("</p>");
}

fn camera(h: &mut String, c: &CameraSummary, links: bool) {
    let name = escape(c.camera_id);
    let host = c
        .hostname
        .as_deref()
        .map(|n| format!("<span>{}</span>", escape(n)))
        .unwrap_or_default();
    match (&c.url, c.present) {
        (Some(url), true) => stored_camera(h, c, &name, &host, cell_tags(url, links)),
        _ if c.uploading => {
            let _ = write!(
                h,
                "<div class=\"cam busy\"><strong>{name}</strong><span>uploading&hellip;</span></div>"
            );
        }
        _ => {
            let _ = write!(
                h,
                "<div class=\"cam bad\"><strong>{name}</strong><span>missing</span></div>"
            );
        }
    }
}

/// The cell of a stored camera: its size, duration and host, whether it is
/// being uploaded again; `tags` open and close it.
fn stored_camera(
    h: &mut String,
    c: &CameraSummary,
    name: &str,
    host: &str,
    (open, close): (String, &str),
) {
    let size = c.size_bytes.map(human_bytes).unwrap_or_default();
    let dur = c.duration_sec.map(human_duration).unwrap_or_default();
    let again = if c.uploading {
        "<span>re-uploading</span>"
    } else {
        ""
    };
    let _ = write!(
        h,
        "{open}<strong>{name}</strong><span>{}</span><span>{}</span>{host}{again}{close}",
        escape(&size),
        escape(&dur)
    );
}

/// The tags opening and closing a stored camera's cell. Without a key on a
/// keyed server (`links` false) the cell is no link: the download would
/// answer 401.
fn cell_tags(url: &str, links: bool) -> (String, &'static str) {
    if links {
        (
            format!("<a class=\"cam ok\" href=\"{}\">", escape(url)),
            "</a>",
        )
    } else {
        ("<div class=\"cam ok\">".to_string(), "</div>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<b>\"a\" & 'b'</b>"),
            "&lt;b&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/b&gt;"
        );
        assert_eq!(escape("GAME_1"), "GAME_1");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_500), "1.5 kB");
        assert_eq!(human_bytes(20_000_000_000), "20.0 GB");
        assert_eq!(human_duration(2.04), "2.0 s");
        assert_eq!(human_duration(5400.5), "1:30:01");
        assert_eq!(human_duration(61.0), "1:01");
        assert_eq!(
            human_time("2024-03-15T14:00:00.123456Z"),
            "2024-03-15 14:00 UTC"
        );
    }
}
