//! scripts/install, staged with DESTDIR into a temp dir for each role: which
//! files land where, what the units run as, that config.yaml is the right
//! one (both sections for `all`) and is never overwritten, and that a staged
//! install only prints the commands that create the server's user and
//! storage. The binaries are the ones cargo built for these tests (BINDIR),
//! so nothing is compiled again.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use soccer_rig::base::config::Config;

const PREFIX: &str = "/usr";
const NODE_BINS: [&str; 5] = [
    "rig-record",
    "rig-upload",
    "rig-manifest",
    "rig-check",
    "rig-offload-all",
];
const SERVER_BINS: [&str; 4] = ["rig-receive", "rig-stitch", "rig-manifest", "rig-check"];
const UNITS: [&str; 3] = [
    "rig-receive.service",
    "rig-stitch.service",
    "rig-stitch.timer",
];

/// The directory holding the binaries cargo built for the tests.
fn bindir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_rig-upload"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf()
}

fn install(role: &str, destdir: &Path) -> Output {
    Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install"))
        .arg(role)
        .env("DESTDIR", destdir)
        .env("PREFIX", PREFIX)
        .env("BINDIR", bindir())
        .env_remove("SYSCONFDIR")
        .env_remove("SYSTEMDDIR")
        .env_remove("DATADIR")
        .env_remove("RIG_USER")
        .output()
        .expect("run bash scripts/install")
}

fn ok(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "install failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn example(name: &str) -> String {
    fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name),
    )
    .unwrap()
}

fn staged(dest: &Path, path: &str) -> PathBuf {
    dest.join(path.trim_start_matches('/'))
}

fn bin(dest: &Path, name: &str) -> PathBuf {
    staged(dest, &format!("{PREFIX}/bin/{name}"))
}

fn config(dest: &Path) -> PathBuf {
    staged(dest, "/etc/soccer-rig/config.yaml")
}

fn unit(dest: &Path, name: &str) -> PathBuf {
    // PREFIX=/usr is a package-style install: units go where packages put them.
    staged(dest, &format!("/lib/systemd/system/{name}"))
}

/// A staged server role prints idempotent commands for the user and the
/// storage, and runs none of them.
fn assert_server_setup_printed(out: &str, dest: &Path) {
    assert!(out.contains("DESTDIR is set: not creating"), "{out}");
    assert!(
        out.contains("getent passwd soccer-rig > /dev/null || useradd --system --user-group"),
        "{out}"
    );
    assert!(out.contains("--no-create-home --shell "), "{out}");
    for d in ["", "/sessions", "/processing", "/temp"] {
        let want = format!(
            "[ -d /data/soccer-rig{d} ] || install -d -o soccer-rig -g soccer-rig -m 0750 /data/soccer-rig{d}"
        );
        assert!(out.contains(&want), "{want}\n{out}");
    }
    assert!(
        !staged(dest, "/data").exists(),
        "nothing is created for the target"
    );
}

#[test]
fn node_role_gets_the_node_programs_and_config_only() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let out = ok(&install("node", dest));
    for b in NODE_BINS {
        assert!(bin(dest, b).is_file(), "{b}");
    }
    for b in ["rig-receive", "rig-stitch"] {
        assert!(!bin(dest, b).exists(), "{b} is the server's");
    }
    assert!(staged(dest, "/usr/share/man/man1/rig-upload.1").is_file());
    assert!(staged(dest, "/usr/share/man/man7/soccer-rig.7").is_file());
    assert!(!staged(dest, "/usr/share/man/man8/rig-receive.8").exists());
    assert!(staged(dest, "/usr/share/soccer-rig/rig-upload.cron").is_file());
    assert!(staged(dest, "/usr/share/soccer-rig/rig-check-node.cron").is_file());
    assert!(
        !staged(dest, "/usr/share/soccer-rig/rig-check.cron").exists(),
        "the server's audits"
    );
    assert_eq!(
        fs::read_to_string(config(dest)).unwrap(),
        example("node-config.example.yaml")
    );
    assert!(staged(dest, "/etc/soccer-rig/node-config.example.yaml").is_file());
    assert!(!staged(dest, "/etc/soccer-rig/server-config.example.yaml").exists());
    for u in UNITS {
        assert!(!unit(dest, u).exists(), "{u} is the server's");
    }
    assert!(!out.contains("useradd"), "a node needs no user: {out}");
}

#[test]
fn server_role_gets_units_running_as_the_rig_user_and_prints_its_setup() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let out = ok(&install("server", dest));
    for b in SERVER_BINS {
        assert!(bin(dest, b).is_file(), "{b}");
    }
    for b in ["rig-record", "rig-upload", "rig-offload-all"] {
        assert!(!bin(dest, b).exists(), "{b} is the node's");
    }
    assert!(staged(dest, "/usr/share/man/man8/rig-receive.8").is_file());
    assert!(!staged(dest, "/usr/share/man/man1/rig-record.1").exists());
    assert_eq!(
        fs::read_to_string(config(dest)).unwrap(),
        example("server-config.example.yaml")
    );
    assert!(!staged(dest, "/etc/soccer-rig/node-config.example.yaml").exists());
    for cron in ["rig-check.cron", "rig-stitch.cron"] {
        let text = fs::read_to_string(staged(dest, &format!("/usr/share/soccer-rig/{cron}")))
            .unwrap_or_else(|e| panic!("{cron}: {e}"));
        assert!(
            text.contains("PATH=/usr/bin:"),
            "{cron}: PREFIX first:\n{text}"
        );
        assert!(text.contains(" rig-"), "{cron}");
    }
    assert!(!staged(dest, "/usr/share/soccer-rig/rig-upload.cron").exists());

    let receive = fs::read_to_string(unit(dest, "rig-receive.service")).unwrap();
    let stitch = fs::read_to_string(unit(dest, "rig-stitch.service")).unwrap();
    assert!(unit(dest, "rig-stitch.timer").is_file());
    assert!(
        receive.contains("ExecStart=/usr/bin/rig-receive --config"),
        "units point at PREFIX: {receive}"
    );
    assert!(stitch.contains("ExecStart=/usr/bin/rig-stitch --pending"));
    for (name, text) in [("rig-receive", &receive), ("rig-stitch", &stitch)] {
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.contains(&"User=soccer-rig"), "{name}: {text}");
        assert!(lines.contains(&"Group=soccer-rig"), "{name}: {text}");
        assert!(!lines.contains(&"User=root"), "{name}");
    }
    assert_server_setup_printed(&out, dest);
}

#[test]
fn all_role_gets_one_config_with_both_sections_and_never_overwrites_it() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let out = ok(&install("all", dest));
    for b in NODE_BINS.iter().chain(SERVER_BINS.iter()) {
        assert!(bin(dest, b).is_file(), "{b}");
    }
    for u in UNITS {
        assert!(unit(dest, u).is_file(), "{u}");
    }
    assert!(staged(dest, "/etc/soccer-rig/node-config.example.yaml").is_file());
    assert!(staged(dest, "/etc/soccer-rig/server-config.example.yaml").is_file());
    assert_server_setup_printed(&out, dest);

    // Both examples, whole, in one file that config.rs reads as one config.
    let text = fs::read_to_string(config(dest)).unwrap();
    assert!(text.contains(&example("node-config.example.yaml")));
    assert!(text.contains(&example("server-config.example.yaml")));
    let c = Config::from_yaml(&text, None).expect("the combined config parses");
    c.check().expect("the combined config is valid");
    let d = Config::default();
    assert_eq!(
        (&c.offload, &c.node, &c.recording),
        (&d.offload, &d.node, &d.recording)
    );
    assert_eq!(
        (&c.storage, &c.server, &c.processing),
        (&d.storage, &d.server, &d.processing)
    );

    // An edited config survives a second install; the examples are renewed.
    let edited = text.replace("auto_upload: false", "auto_upload: true");
    assert_ne!(edited, text);
    fs::write(config(dest), &edited).unwrap();
    let example_path = staged(dest, "/etc/soccer-rig/node-config.example.yaml");
    fs::write(&example_path, "stale").unwrap();
    let again = ok(&install("all", dest));
    assert!(
        again.contains("/etc/soccer-rig/config.yaml exists: left as it is"),
        "{again}"
    );
    assert_eq!(fs::read_to_string(config(dest)).unwrap(), edited);
    assert_eq!(
        fs::read_to_string(&example_path).unwrap(),
        example("node-config.example.yaml")
    );
}

#[test]
fn a_config_left_by_another_role_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    ok(&install("node", dest));
    let out = ok(&install("server", dest));
    assert!(out.contains("config.yaml exists: left as it is"), "{out}");
    assert_eq!(
        fs::read_to_string(config(dest)).unwrap(),
        example("node-config.example.yaml")
    );
}

#[test]
fn bad_role_and_values_are_refused_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = install("camera", dir.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("role must be node, server or all, got 'camera'"),
        "{err}"
    );

    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install"))
        .arg("server")
        .env("DESTDIR", dir.path())
        .env("BINDIR", bindir())
        .env("DATADIR", "relative dir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("DATADIR must be an absolute path"), "{err}");
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing installed"
    );
}

#[test]
fn the_man_pages_give_the_cron_line_scripts_rig_upload_cron_gives() {
    let cron = example("rig-upload.cron");
    let line = cron
        .lines()
        .find(|l| l.starts_with("* * * * * "))
        .expect("rig-upload.cron has an every-minute line");
    // "* * * * * USER COMMAND": the manual pages show the same command.
    let fields: Vec<&str> = line.splitn(7, ' ').collect();
    assert_eq!(fields[5], "root", "{line}");
    let command = fields[6];
    assert!(command.starts_with("rig-upload --all --auto"), "{line}");
    let man = |name: &str| {
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man").join(name)).unwrap()
    };
    assert!(
        man("soccer-rig.7").contains(&format!(".Dl {line}")),
        "soccer-rig.7 shows {line:?}"
    );
    assert!(
        man("rig-upload.1").contains(&format!(".Dl * * * * * {command}")),
        "rig-upload.1 shows {command:?}"
    );
}

/// SYSCONFDIR reaches the unit's --config and the cron files; PREFIX
/// /usr/local keeps units in /etc/systemd/system; uninstall removes every
/// file install listed and keeps config.yaml.
#[test]
fn sysconfdir_reaches_units_and_uninstall_removes_what_install_listed() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    let script = |name: &str| format!("{}/scripts/{name}", env!("CARGO_MANIFEST_DIR"));
    let run = |name: &str, role: Option<&str>| {
        let mut c = Command::new("bash");
        c.arg(script(name));
        if let Some(r) = role {
            c.arg(r);
        }
        c.env("DESTDIR", dest)
            .env("PREFIX", "/usr/local")
            .env("SYSCONFDIR", "/opt/etc")
            .env("BINDIR", bindir())
            .env_remove("SYSTEMDDIR")
            .env_remove("DATADIR")
            .env_remove("RIG_USER")
            .output()
            .unwrap()
    };
    ok(&run("install", Some("all")));
    let receive = staged(dest, "/etc/systemd/system/rig-receive.service");
    let text = fs::read_to_string(&receive).unwrap();
    assert!(
        text.contains(
            "ExecStart=/usr/local/bin/rig-receive --config /opt/etc/soccer-rig/config.yaml"
        ),
        "{text}"
    );
    let upload =
        fs::read_to_string(staged(dest, "/usr/local/share/soccer-rig/rig-upload.cron")).unwrap();
    assert!(
        upload.contains("/opt/etc/soccer-rig/config.yaml"),
        "{upload}"
    );
    let conf = staged(dest, "/opt/etc/soccer-rig/config.yaml");
    assert!(conf.is_file());
    let list = staged(dest, "/usr/local/share/soccer-rig/installed-files");
    let listed = fs::read_to_string(&list).unwrap();
    assert!(
        listed.lines().any(|l| l == "/usr/local/bin/rig-receive"),
        "{listed}"
    );
    assert!(
        !listed.contains("config.yaml\n"),
        "config.yaml is never removed: {listed}"
    );

    let out = run("uninstall", None);
    let text = ok(&out);
    assert!(text.contains("kept: the configuration"), "{text}");
    for line in listed.lines() {
        assert!(!staged(dest, line).exists(), "{line} left behind");
    }
    assert!(
        !staged(dest, "/usr/local/bin").exists(),
        "empty directories go too"
    );
    assert!(conf.is_file(), "config.yaml stays");
}

/// Under sudo there is no cargo on PATH: with the binaries built in
/// target/release, install uses them and needs no cargo.
#[test]
fn install_without_cargo_uses_built_binaries_or_says_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    fs::create_dir_all(tree.join("scripts")).unwrap();
    for d in ["scripts", "man"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join(d);
        for e in fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                fs::create_dir_all(tree.join(d)).unwrap();
                fs::copy(e.path(), tree.join(d).join(e.file_name())).unwrap();
            }
        }
    }
    let dest = dir.path().join("dest");
    let run = || {
        Command::new("/bin/bash")
            .arg(tree.join("scripts/install"))
            .arg("node")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("DESTDIR", &dest)
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cargo is not on PATH") && err.contains("make"),
        "{err}"
    );

    fs::create_dir_all(tree.join("target/release")).unwrap();
    for b in ["rig-record", "rig-upload", "rig-manifest", "rig-check"] {
        fs::copy(bindir().join(b), tree.join("target/release").join(b)).unwrap();
    }
    let text = ok(&run());
    assert!(
        text.contains("using the binaries in target/release"),
        "{text}"
    );
    assert!(staged(&dest, "/usr/local/bin/rig-record").is_file());
}
