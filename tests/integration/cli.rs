//! The `toolgate` command line: config errors before binding, tools listing, schema drift.

use std::process::Command;

fn toolgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_toolgate"));
    // A developer's own TOOLGATE_* must not change what these tests see.
    for (k, _) in std::env::vars() {
        if k.starts_with("TOOLGATE_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

#[test]
fn config_problems_are_all_reported_with_exit_64_before_binding() {
    let port = crate::daemons::free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\nlog:\n  format: xml\ntools:\n  timeout_seconds: 0\nnope: 1\n"
        ),
    )
    .expect("write");
    let out = toolgate()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `nope`"), "{err}");

    std::fs::write(
        &path,
        format!("listen: 127.0.0.1:{port}\nlog:\n  format: xml\ntools:\n  timeout_seconds: 0\n"),
    )
    .expect("write");
    let out = toolgate()
        .args(["serve", "--config"])
        .arg(&path)
        .env("TOOLGATE_STORE_URL", "mysql://x")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "log.format: `xml`",
        "tools.timeout_seconds: 0",
        "store.url: `mysql://x`",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in {err}");
    }
    // Nothing was bound: the port is still free.
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

#[test]
fn tools_lists_every_tool_with_toolset_risk_and_approval() {
    let out = toolgate().args(["tools", "--json"]).output().expect("run");
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let list = list.as_array().expect("array");
    let find = |name: &str| {
        list.iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(find("k8s.get_logs")["risk"], "read");
    assert_eq!(find("k8s.get_logs")["needs_approval"], false);
    assert_eq!(find("k8s.delete_resource")["risk"], "write");
    assert_eq!(find("k8s.delete_resource")["needs_approval"], true);
    assert_eq!(find("k8s.get_logs")["toolset"], "k8s");
    assert_eq!(find("obs.query_metrics")["toolset"], "obs");
    assert_eq!(find("approval.status")["toolset"], "approval");

    let table = toolgate().arg("tools").output().expect("run");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("k8s.exec_command")
            && l.contains(" k8s ")
            && l.contains("write")
            && l.contains("required")),
        "{text}"
    );
}

#[test]
fn tool_schemas_match_the_types() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tool-schemas");
    let out = toolgate()
        .args(["schemas", "--check", "--dir", dir])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "tool-schemas/ drifted; run `cargo run -- schemas`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And the check does fail on drift.
    let tmp = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).expect("copy");
    }
    std::fs::write(tmp.path().join("k8s.get_logs.json"), "{}\n").expect("tamper");
    let out = toolgate()
        .args(["schemas", "--check", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("k8s.get_logs.json: differs"));
}
