//! Starting toolgate for tests: a config pointing at the fake API server, HTTP on 127.0.0.1:0.

use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use toolgate::config::Config;

use crate::fake_kube::FakeKube;

pub struct Toolgate {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    /// The store this server uses (`sqlite://…` in the temp dir unless the test gave one).
    pub store_url: String,
    shutdown: CancellationToken,
    _dir: TempDir,
}

impl Toolgate {
    /// `GET /metrics`: the server's metrics as Prometheus text.
    pub async fn metrics(&self) -> String {
        http()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

impl Drop for Toolgate {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Test principals in every test server's tokens file.
pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-0123456789";
pub const CAROL: &str = "carol-token-0123456789";
/// Holds only the identity-provider role `sre-oncall`, which maps to nothing by default.
pub const DAVE: &str = "dave-token-0123456789";
/// A second plain caller (not the requester of anyone else's calls).
pub const ERIN: &str = "erin-token-0123456789";
/// An auditor: sees every approval request and its result, decides none.
pub const FRANK: &str = "frank-token-0123456789";

/// Extra approvers in every tokens file (for concurrency tests).
pub const APPROVERS: usize = 100;

pub fn approver(i: usize) -> String {
    format!("approver-{i:03}-token-0123456789")
}

/// Config YAML for a toolgate that reaches `fake` as cluster `fake`, keeps its store, tokens
/// file and nothing else in `dir`, uses the repository's policies, plus `extra` top-level YAML
/// (which may override `store`; a top-level `kubernetes:` block in it adds its keys, such as
/// `retry:` or `breaker:`, to the cluster's block).
pub fn config_yaml(fake: &FakeKube, dir: &Path, extra: &str) -> String {
    let (kubernetes, extra) = take_top_level_block(extra, "kubernetes");
    let tokens = dir.join("tokens.yaml");
    let mut list = format!(
        "- {{token: {ALICE}, sub: alice, name: Alice, roles: [toolgate.caller]}}\n\
         - {{token: {BOB}, sub: bob, name: Bob, roles: [toolgate.caller, toolgate.approver]}}\n\
         - {{token: {CAROL}, sub: carol, name: Carol, roles: [toolgate.approver]}}\n\
         - {{token: {DAVE}, sub: dave, name: Dave, roles: [sre-oncall]}}\n\
         - {{token: {ERIN}, sub: erin, name: Erin, roles: [toolgate.caller]}}\n\
         - {{token: {FRANK}, sub: frank, name: Frank, roles: [toolgate.auditor]}}\n"
    );
    for i in 0..APPROVERS {
        list.push_str(&format!(
            "- {{token: {}, sub: approver-{i}, roles: [toolgate.approver]}}\n",
            approver(i)
        ));
    }
    std::fs::write(&tokens, list).expect("write tokens");
    let store = if extra.contains("store:") {
        String::new()
    } else {
        format!(
            "store:\n  url: sqlite://{}\n",
            dir.join("toolgate.db").display()
        )
    };
    let approvals = if extra.contains("approvals:") {
        ""
    } else {
        "approvals:\n  sweep_interval_seconds: 1\n"
    };
    // Rate limits are off unless a test sets them: many tests call far more often than an
    // agent would (`rate_limits.rs` tests the limits themselves).
    let limits = if extra.contains("limits:") {
        ""
    } else {
        "limits:\n  tool_calls_per_minute: 0\n  approval_requests_per_hour: 0\n"
    };
    let policies = if extra.contains("policies:") {
        String::new()
    } else {
        format!(
            "policies:\n  dir: {}\n",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies")
        )
    };
    // An `auth:` block in `extra` gets the tokens file added instead of a second `auth:` key.
    let tokens_line = format!("auth:\n  tokens_file: {}\n", tokens.display());
    // Only a top-level `auth:` (at the start of a line), not a nested one such as
    // `observability.grafana.auth:`.
    let top_level = if extra.starts_with("auth:\n") {
        Some(0)
    } else {
        extra.find("\nauth:\n").map(|i| i + 1)
    };
    let (auth, extra) = if let Some(at) = top_level {
        (
            String::new(),
            format!(
                "{}{tokens_line}{}",
                &extra[..at],
                &extra[at + "auth:\n".len()..]
            ),
        )
    } else {
        (tokens_line, extra.to_string())
    };
    format!(
        "kubernetes:\n  clusters:\n    - name: fake\n      kubeconfig: {}\n      context: fake\n  request_timeout_seconds: 5\n\
         {kubernetes}{auth}{approvals}{limits}{store}{policies}{extra}",
        fake.kubeconfig.display(),
    )
}

/// The indented lines of the top-level block `key:` in `yaml` (empty when there is none) and
/// `yaml` without that block.
fn take_top_level_block(yaml: &str, key: &str) -> (String, String) {
    let head = format!("{key}:");
    let (mut block, mut rest, mut inside) = (String::new(), String::new(), false);
    for line in yaml.split_inclusive('\n') {
        if line.trim_end() == head {
            inside = true;
        } else if inside && line.starts_with(' ') {
            block.push_str(line);
        } else {
            inside = false;
            rest.push_str(line);
        }
    }
    (block, rest)
}

pub async fn start(fake: &FakeKube, extra: &str) -> Toolgate {
    start_edited(fake, extra, |yaml| yaml).await
}

/// Same as `start`, with the config YAML changed by `edit` before it is loaded (e.g. another
/// cluster in `kubernetes.clusters`).
pub async fn start_edited(
    fake: &FakeKube,
    extra: &str,
    edit: impl FnOnce(String) -> String,
) -> Toolgate {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = format!("http://{addr}");
    let config_path = dir.path().join("toolgate.yaml");
    // The server's own address, so links it hands out (approve_url, resource metadata) work.
    let own = format!("listen: {addr}\npublic_url: {url}\n");
    std::fs::write(
        &config_path,
        edit(own + &config_yaml(fake, dir.path(), extra)),
    )
    .expect("write config");
    // The process environment is left out so a developer's TOOLGATE_* cannot change tests.
    let config = Config::load_from(Some(&config_path), &[]).expect("test config is valid");
    let store_url = config.store_url.clone();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = toolgate::app::serve_on(listener, config, token).await {
            eprintln!("toolgate test server stopped: {e:#}");
        }
    });
    // Wait until the server answers (it opens its store before serving).
    let client = http();
    for _ in 0..100 {
        if client.get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Toolgate {
        url,
        store_url,
        shutdown,
        _dir: dir,
    }
}

/// Same as `start`; the tokens ALICE (caller), BOB (caller + approver), CAROL (approver) are
/// always configured.
pub async fn start_with_tokens(fake: &FakeKube, extra: &str) -> Toolgate {
    start(fake, extra).await
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

/// Runs a Python client script of tests/python in the test venv: the JSON `plan` on its stdin,
/// its JSON report from stdout. Fails the test when the script fails or takes over 2 minutes.
pub async fn run_python(script: &str, plan: &serde_json::Value) -> serde_json::Value {
    use tokio::io::AsyncWriteExt;
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new(python())
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(plan.to_string().as_bytes())
        .await
        .expect("write plan");
    drop(stdin);
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        child.wait_with_output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} finished in time"))
    .expect("Python client ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("bad report ({e}): {stderr}"))
}
