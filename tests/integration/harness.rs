//! Starting toolgate for tests: a config pointing at the fake API server, HTTP on 127.0.0.1:0.

use std::path::PathBuf;

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use toolgate::config::Config;

use crate::fake_kube::FakeKube;

pub struct Toolgate {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Drop for Toolgate {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Config YAML for a toolgate that reaches `fake` as cluster `fake`, plus `extra` top-level YAML.
pub fn config_yaml(fake: &FakeKube, extra: &str) -> String {
    format!(
        "kubernetes:\n  clusters:\n    - name: fake\n      kubeconfig: {}\n      context: fake\n  request_timeout_seconds: 5\n{extra}",
        fake.kubeconfig.display()
    )
}

pub async fn start(fake: &FakeKube, extra: &str) -> Toolgate {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_path = dir.path().join("toolgate.yaml");
    std::fs::write(&config_path, config_yaml(fake, extra)).expect("write config");
    // The process environment is left out so a developer's TOOLGATE_* cannot change tests.
    let config = Config::load_from(Some(&config_path), &[]).expect("test config is valid");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = toolgate::app::serve_on(listener, config, token).await {
            eprintln!("toolgate test server stopped: {e:#}");
        }
    });
    Toolgate {
        url,
        shutdown,
        _dir: dir,
    }
}

/// An HTTP client for tests (after installing the TLS provider reqwest needs).
pub fn http() -> reqwest::Client {
    toolgate::app::init_crypto();
    reqwest::Client::new()
}

/// The Python interpreter of the test venv (made by the README's test command).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TOOLGATE_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run the README's test command (scripts/test) once, it creates the venv with the MCP SDK",
        p.display()
    );
    p
}
