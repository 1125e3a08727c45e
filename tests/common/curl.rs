//! curl, the client no code of ours wrote, as the tests drive it: a status
//! and a body, JSON or text, or the headers too; multipart forms built from
//! `(name, value)` fields the way `curl -F` sends them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `curl -s -S -w '\n%{http_code}' ARGS`: (HTTP status, body). Status 0 =
/// no reply (refused, reset, timed out: curl's message is on its stderr).
pub fn text(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl must be installed (apt-get install curl)");
    let text = super::stdout(&out);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// [`text`], the body parsed as JSON (`Null` when it is not JSON).
pub fn json(args: &[&str]) -> (u16, Value) {
    let (status, body) = text(args);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// `curl -s -S -D HEAD -o BODY ARGS`, which must succeed: (status,
/// headers with lower-cased names, body bytes).
pub fn with_headers(args: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("h"), dir.path().join("b"));
    let out = Command::new("curl")
        .args(["-s", "-S", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .output()
        .expect("curl must be installed (apt-get install curl)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        super::stderr(&out)
    );
    let (status, headers) = super::wire::reply_head(&std::fs::read_to_string(&head).unwrap());
    (status, headers, std::fs::read(&body).unwrap_or_default())
}

/// `-F name=value` for each field, in order (a value `@PATH` sends a file,
/// `<PATH` a file's text, as curl does).
pub fn form_args(fields: &[(&str, String)]) -> Vec<String> {
    fields
        .iter()
        .flat_map(|(name, value)| ["-F".to_string(), format!("{name}={value}")])
        .collect()
}

/// A multipart `POST {base}/api/v1/upload` of `fields` (see [`form_args`]),
/// with curl's `extra` args first: (status, body text).
pub fn upload(base: &str, fields: &[(&str, String)], extra: &[&str]) -> (u16, String) {
    let form = form_args(fields);
    let target = format!("{base}/api/v1/upload");
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(form.iter().map(String::as_str));
    args.push(&target);
    text(&args)
}

/// [`upload`], the body parsed as JSON (`Null` when it is not JSON).
pub fn upload_json(base: &str, fields: &[(&str, String)], extra: &[&str]) -> (u16, Value) {
    let (status, body) = upload(base, fields, extra);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// The `file` field for `path` sent as `video/mp4`.
pub fn mp4(path: &Path) -> String {
    format!("@{};type=video/mp4", path.display())
}
