//! The `toolgate serve` command of the benches: a config against the fake API server (local
//! tokens, SQLite, the repository's policies, per-principal rate limits off) and no
//! `TOOLGATE_*` variable of the caller's environment. Used by `toolgate-bench` and
//! `toolgate-scale`.

use std::path::Path;

use anyhow::Result;
use tokio::process::Command;

/// The caller token in the tokens file written next to the config (role `toolgate.caller`).
pub const TOKEN: &str = "bench-caller-token-0123456789";

/// The command for a toolgate at `bin` on 127.0.0.1:`port` against the cluster of
/// `kubeconfig` (context `fake`), its files in `work` (the store as `db_name`).
pub fn toolgate_serve(
    bin: &Path,
    kubeconfig: &Path,
    work: &Path,
    port: u16,
    db_name: &str,
) -> Result<Command> {
    let tokens = work.join("tokens.yaml");
    std::fs::write(
        &tokens,
        format!("- {{token: {TOKEN}, sub: bench, name: Bench, roles: [toolgate.caller]}}\n"),
    )?;
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = work.join("toolgate.yaml");
    // Per-principal rate limits are off: the load client is one principal making thousands of
    // calls a second, and the peers have no such limit; the gate bench measures the limiter.
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\nlog: {{level: warn}}\nauth:\n  mode: local\n  anonymous: false\n  tokens_file: {}\n\
             store:\n  url: sqlite://{}\npolicies:\n  dir: {}\n\
             kubernetes:\n  clusters:\n    - {{name: fake, kubeconfig: {}, context: fake}}\n\
             limits: {{tool_calls_per_minute: 0, approval_requests_per_hour: 0}}\n",
            tokens.display(),
            work.join(db_name).display(),
            policies.display(),
            kubeconfig.display(),
        ),
    )?;
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--config"])
        .arg(&config)
        .env_remove("KUBECONFIG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TOOLGATE_") {
            cmd.env_remove(k);
        }
    }
    Ok(cmd)
}
