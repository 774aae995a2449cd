//! Real server binaries (Prometheus, Alertmanager, NATS) as child processes on 127.0.0.1:
//! killed when dropped, their output kept in a log file that failures print.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Daemon {
    name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

/// A port that refuses connections for as long as the returned socket lives: bound, so no
/// other test can take it, but not listening.
pub fn dead_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(([127, 0, 0, 1], 0).into()).expect("bind");
    let port = socket.local_addr().expect("addr").port();
    (socket, port)
}

/// A port nothing listens on right now, for a server a test is about to start on it.
///
/// Chosen at random below the kernel's ephemeral range (`ip_local_port_range`): a port
/// from that range, once released, can be handed to any outgoing connection of the tests
/// running beside this one before the server binds it (a CI run failed so). Below the
/// range only another test picking the same random port could take it.
pub fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .filter(|low| *low > 20_000)
        .unwrap_or(32_768);
    let base = 10_000u16;
    for _ in 0..500 {
        let mut bytes = [0u8; 2];
        getrandom::fill(&mut bytes).expect("random bytes");
        let port = base + u16::from_le_bytes(bytes) % (low - base);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found between {base} and {low}")
}

/// Panics with an install hint when `program` is not on PATH (tests never skip).
pub fn require(program: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{program}` not found; install it with `apt-get install -y {package}` (scripts/test does)"
    );
}

impl Daemon {
    pub fn spawn(program: &str, args: &[String], log: &Path) -> Daemon {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open daemon log");
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        Daemon {
            name: program.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `url` answers 2xx; panics with the daemon's log otherwise.
    pub async fn wait_http(&mut self, url: &str) {
        let client = crate::harness::http();
        for _ in 0..300 {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            if let Ok(r) = client.get(url).timeout(Duration::from_secs(2)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{} did not answer {url}:\n{}", self.name, self.log_text());
    }

    /// Waits until a TCP connect to 127.0.0.1:`port` succeeds.
    pub async fn wait_tcp(&mut self, port: u16) {
        for _ in 0..300 {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited with {status}:\n{}", self.name, self.log_text());
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} did not listen on {port}:\n{}",
            self.name,
            self.log_text()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 100 ms for up to `secs` seconds; panics with `what` when it never holds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 10 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}
