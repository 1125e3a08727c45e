//! The real `rig-receive`, started for a test: on a loopback port (`:0`
//! picks a free one), with a root and a config file, its bound address read
//! from its first line (`listening on http://HOST:PORT`, or `https://`).
//!
//! One type, [`Receiver`], for every test binary; SIGKILLed on drop if the
//! test did not stop it. A test file adds the methods only it needs in its
//! own `impl Receiver` block (the type is in the same crate).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use soccer_rig::base::ids::RecordingId;
use soccer_rig::base::layout::ServerLayout;

/// Where rig-receive's log goes.
pub enum Log {
    /// `RUST_LOG=warn`, to the test's own stderr (shown when a test fails).
    Warn,
    /// The default level, thrown away.
    Quiet,
    /// At this `RUST_LOG` level, into this file (read it with
    /// [`Receiver::log_text`]).
    File(PathBuf, &'static str),
}

impl Log {
    /// Sets `cmd`'s `RUST_LOG` and stderr; the log file, if any.
    fn route(self, cmd: &mut Command) -> Option<PathBuf> {
        match self {
            Log::Warn => {
                cmd.env("RUST_LOG", "warn").stderr(Stdio::inherit());
                None
            }
            Log::Quiet => {
                cmd.env_remove("RUST_LOG").stderr(Stdio::null());
                None
            }
            Log::File(path, level) => {
                let file = fs::File::create(&path).expect("create the log file");
                cmd.env("RUST_LOG", level).stderr(file);
                Some(path)
            }
        }
    }
}

/// Reads rig-receive's first line, `listening on URL`: the URL and the
/// address in it. Panics with the line (and the log) on anything else.
fn listening_on(stdout: &mut impl BufRead, log: Option<&Path>) -> (String, SocketAddr) {
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the listening line");
    let Some(url) = line.trim().strip_prefix("listening on ") else {
        let text = log.map(fs::read_to_string);
        panic!("rig-receive printed {line:?}; log: {text:?}");
    };
    let addr = url
        .split("://")
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (url.to_string(), addr)
}

/// A running rig-receive.
pub struct Receiver {
    child: Child,
    /// Kept open so that later lines on stdout never meet a closed pipe.
    _stdout: BufReader<ChildStdout>,
    /// `http://HOST:PORT` (or `https://` when the config sets TLS).
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// Its `--root`.
    pub root: PathBuf,
    /// The layout of [`Receiver::root`].
    pub layout: ServerLayout,
    log: Option<PathBuf>,
    /// The temporary directory holding root and config, when this owns it
    /// (removed after the process is killed).
    dir: Option<tempfile::TempDir>,
}

impl Receiver {
    /// Starts `rig-receive --listen LISTEN --root ROOT --config CONFIG`.
    pub fn spawn(config: &Path, root: &Path, listen: &str, log: Log) -> Receiver {
        let cmd = Command::new(env!("CARGO_BIN_EXE_rig-receive"));
        Receiver::spawn_via(cmd, config, root, listen, log)
    }

    /// [`Receiver::spawn`] through `cmd`, which starts rig-receive with the
    /// arguments added here (a shell that sets a limit and then runs
    /// `exec "$0" "$@"`, with the binary as `$0`, for instance).
    pub fn spawn_via(
        mut cmd: Command,
        config: &Path,
        root: &Path,
        listen: &str,
        log: Log,
    ) -> Receiver {
        cmd.args(["--listen", listen, "--root"])
            .arg(root)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped());
        let log = log.route(&mut cmd);
        let mut child = cmd.spawn().expect("start rig-receive");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (url, addr) = listening_on(&mut stdout, log.as_deref());
        Receiver {
            child,
            _stdout: stdout,
            url,
            addr,
            root: root.to_path_buf(),
            layout: ServerLayout::under(root),
            log,
            dir: None,
        }
    }

    /// Starts it in `dir`: root `dir/server`, config `dir/server.yaml`
    /// holding exactly `yaml`.
    pub fn under(dir: &Path, yaml: &str, log: Log) -> Receiver {
        fs::create_dir_all(dir).unwrap();
        let config = dir.join("server.yaml");
        fs::write(&config, yaml).unwrap();
        Receiver::spawn(&config, &dir.join("server"), "127.0.0.1:0", log)
    }

    /// [`Receiver::under`] a temporary directory it owns.
    pub fn owning(dir: tempfile::TempDir, yaml: &str, log: Log) -> Receiver {
        let mut r = Receiver::under(dir.path(), yaml, log);
        r.dir = Some(dir);
        r
    }

    /// [`Receiver::owning`] a new temporary directory.
    pub fn in_temp(yaml: &str, log: Log) -> Receiver {
        Receiver::owning(tempfile::tempdir().unwrap(), yaml, log)
    }

    /// Kills it (SIGKILL) and starts another on the same directory (which
    /// it must own) with config `yaml`.
    pub fn restart_with(mut self, yaml: &str, log: Log) -> Receiver {
        let dir = self.dir.take().expect("a receiver that owns its directory");
        drop(self);
        Receiver::owning(dir, yaml, log)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where a recording is stored.
    pub fn stored(&self, rec: &RecordingId) -> PathBuf {
        self.layout.recording(&rec.session, rec.camera)
    }

    /// The log file's text ([`Log::File`] only).
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log.as_ref().expect("started with Log::File")).unwrap()
    }

    /// Every file under sessions/ and temp/ (nothing stored, nothing left
    /// = empty).
    pub fn stored_and_left(&self) -> Vec<PathBuf> {
        [&self.layout.sessions, &self.layout.temp]
            .iter()
            .flat_map(|d| walkdir::WalkDir::new(d).into_iter().flatten())
            .filter(|e| e.file_type().is_file())
            .map(|e| e.path().to_path_buf())
            .collect()
    }

    /// Sends SIGTERM and returns at once.
    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGTERM, then waits for the exit: its code (None if by a signal).
    pub fn terminate(mut self) -> Option<i32> {
        self.signal_term();
        self.child.wait().unwrap().code()
    }

    /// Waits up to `limit` for the process to exit; its exit code (-1 if
    /// by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> i32 {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < until,
                "rig-receive did not exit in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}
