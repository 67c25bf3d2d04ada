//! Workspace binaries run as child processes, with their output in a log file.

use crate::TempDir;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// Path of a workspace binary built into the same target directory as the
/// running test (`target/<profile>/<name>`). `scripts/test.sh` builds them
/// before the tests run.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/test-binary → target/<profile>/
    let dir = exe
        .parent()
        .and_then(|p| {
            if p.ends_with("deps") {
                p.parent()
            } else {
                Some(p)
            }
        })
        .expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A running child process; killed when dropped.
pub struct Proc {
    pub name: String,
    child: Option<tokio::process::Child>,
    log: PathBuf,
    _dir: TempDir,
}

impl Proc {
    /// Starts the workspace binary `name` with extra environment variables;
    /// stdout and stderr go to a log file.
    pub fn spawn(name: &str, envs: &[(&str, String)]) -> Proc {
        Self::spawn_path(&bin_path(name), name, envs)
    }

    pub fn spawn_path(path: &std::path::Path, name: &str, envs: &[(&str, String)]) -> Proc {
        let dir = TempDir::new(name);
        let log = dir.path().join("out.log");
        let f = std::fs::File::create(&log).expect("log file");
        let f2 = f.try_clone().expect("log file");
        let mut cmd = tokio::process::Command::new(path);
        cmd.stdout(Stdio::from(f))
            .stderr(Stdio::from(f2))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .current_dir(dir.path());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Proc {
            name: name.to_string(),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Everything the process printed so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (e.g. `libc::SIGTERM` = 15) without waiting.
    pub fn signal(&self, sig: i32) {
        self.send(&[&format!("-{sig}")]);
    }

    /// Sends the signal named `name` (`STOP`, `CONT`, …): by name, so the
    /// platform's numbering does not matter.
    pub fn signal_named(&self, name: &str) {
        self.send(&["-s", name]);
    }

    /// `kill HOW… PID`.
    fn send(&self, how: &[&str]) {
        if let Some(pid) = self.pid() {
            let _ = std::process::Command::new("kill")
                .args(how)
                .arg(pid.to_string())
                .status();
        }
    }

    /// SIGTERM, then waits up to `limit` for the exit code.
    pub async fn terminate(&mut self, limit: Duration) -> Option<i32> {
        self.signal(15);
        let c = self.child.as_mut()?;
        let st = tokio::time::timeout(limit, c.wait()).await.ok()?.ok()?;
        self.child = None;
        st.code()
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Whether it has exited (and its code).
    pub fn try_exit_code(&mut self) -> Option<Option<i32>> {
        let c = self.child.as_mut()?;
        c.try_wait().ok().flatten().map(|s| s.code())
    }

    /// Waits until `url` answers 2xx; panics with the process's logs if it
    /// does not within 30 s or the process exits.
    pub async fn wait_ready(&mut self, url: &str) {
        for _ in 0..600 {
            if let Some(code) = self.try_exit_code() {
                panic!(
                    "{} exited ({code:?}) before ready:\n{}",
                    self.name,
                    self.logs()
                );
            }
            if wait_http_ok(url, Duration::from_millis(200)).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} not ready at {url}:\n{}", self.name, self.logs());
    }
}

/// One GET; true on a 2xx within `timeout`. Plain HTTP/1.1 over TCP, so the
/// test kit needs no HTTP client.
pub async fn wait_http_ok(url: &str, timeout: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut buf = vec![0u8; 64];
        let n = s.read(&mut buf).await.ok()?;
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        Some(head.starts_with("HTTP/1.1 2") || head.starts_with("HTTP/1.0 2"))
    };
    matches!(tokio::time::timeout(timeout, fut).await, Ok(Some(true)))
}
