//! `scripts/check-layers`: the import direction check run by the test command. It is fed
//! copies of source trees with violations planted in them, and must name each by file, line
//! and rule; a clean tree passes.

use std::path::Path;
use std::process::Command;

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check-layers")
}

/// Runs the check on `dir`: (exit code, stdout lines).
fn check(dir: &Path) -> (i32, Vec<String>) {
    let out = Command::new("bash")
        .arg(script())
        .arg(dir)
        .output()
        .expect("run scripts/check-layers");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    (out.status.code().unwrap_or(-1), lines)
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn a_clean_tree_passes_and_comments_are_not_imports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    write(src, "main.rs", "use crate::app::serve;\n");
    write(
        src,
        "app.rs",
        "use crate::transport::http::router;\nuse crate::store::Store;\n",
    );
    write(
        src,
        "transport/jsonrpc.rs",
        "use crate::core::{TaskRecord, dispatch::Dispatcher};\n// crate::store::Store is not reached\n/// see crate::adapters::kube\n",
    );
    write(
        src,
        "tools/k8s/get.rs",
        "use crate::adapters::kube::KubeApi;\nuse crate::core::tool::Tool;\n",
    );
    write(src, "core/dispatch.rs", "use crate::store::Store;\n");
    let (code, lines) = check(src);
    assert_eq!((code, lines), (0, Vec::<String>::new()));
}

#[test]
fn each_rule_fails_with_file_line_and_rule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    // (file, text, line of the violation, rule)
    let cases = [
        (
            "adapters/kube.rs",
            "use crate::core::error::ToolError;\n",
            1,
            "adapters must not import core",
        ),
        (
            "adapters/loki.rs",
            "fn f() { crate::tools::all(); }\n",
            1,
            "adapters must not import tools",
        ),
        (
            "tools/k8s.rs",
            "use crate::{config::Config, store::Store};\n",
            1,
            "tools must not import store",
        ),
        (
            "tools/obs.rs",
            "\nuse crate::transport::mcp;\n",
            2,
            "tools must not import transport",
        ),
        (
            "transport/a2a/tasks.rs",
            "use crate::store::TaskRecord;\n",
            1,
            "transport must not import store",
        ),
        (
            "transport/http.rs",
            "use crate::core::policy::PolicySet;\n",
            1,
            "transport must not import core::policy",
        ),
        (
            "transport/mcp.rs",
            "let k = crate::adapters::kube::KubeAdapter::new;\n",
            1,
            "transport must not import adapters",
        ),
        (
            "core/registry.rs",
            "use crate::tools::all;\n",
            1,
            "core must not import tools",
        ),
        (
            "core/dispatch.rs",
            "use crate::{\n    config::Config,\n    transport::http,\n};\n",
            3,
            "core must not import transport",
        ),
        (
            "store/mod.rs",
            "use crate::core::principal::Principal;\n",
            1,
            "store must not import core",
        ),
        (
            "intents/sli.rs",
            "    crate::app::init_crypto();\n",
            1,
            "nothing but main.rs imports app",
        ),
    ];
    for (rel, text, _, _) in &cases {
        write(src, rel, text);
    }
    let (code, lines) = check(src);
    assert_ne!(code, 0, "violations fail the check: {lines:?}");
    for (rel, _, line, rule) in &cases {
        let want = format!("{}/{rel}:{line}: {rule}", src.display());
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "missing `{want}` in {lines:?}"
        );
    }
    assert_eq!(
        lines.len(),
        cases.len(),
        "one finding per planted violation: {lines:?}"
    );
}

#[test]
fn transport_and_auth_follow_the_rules_and_a_planted_violation_in_a_copy_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    copy_tree(&src, dir.path());
    let (_, lines) = check(dir.path());
    let root = dir.path().display().to_string();
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| {
            l.starts_with(&format!("{root}/transport/")) || l.starts_with(&format!("{root}/auth/"))
        })
        .collect();
    assert!(ours.is_empty(), "transport/auth violations: {ours:?}");
    let file = dir.path().join("transport/jsonrpc.rs");
    let mut text = std::fs::read_to_string(&file).expect("read");
    let at = text.lines().count() + 1;
    text.push_str("use crate::store::Store;\n");
    std::fs::write(&file, text).expect("write");
    let (code, lines) = check(dir.path());
    assert_ne!(code, 0);
    let want = format!("{root}/transport/jsonrpc.rs:{at}: transport must not import store");
    assert!(lines.iter().any(|l| l.starts_with(&want)), "{lines:?}");
}

#[test]
fn only_a_layers_config_file_may_name_the_kits_config_vocabulary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    // Allowed: config sections parse durations and credentials with the kit's types.
    write(
        src,
        "transport/config.rs",
        "use crate::adapters::http::config::RawDuration;\nuse crate::adapters::http::Upstream;\n",
    );
    write(
        src,
        "store/config.rs",
        "use crate::adapters::http::config::{RawDuration, parse_duration};\n",
    );
    // Refused: the rest of the kit from a config file, the vocabulary from any other file.
    write(
        src,
        "store/retention.rs",
        "fn f() { crate::adapters::http::config::parse_duration(\"1s\"); }\n",
    );
    write(
        src,
        "transport/mcp_config.rs",
        "use crate::adapters::http::config::RawDuration;\n",
    );
    let (code, lines) = check(src);
    assert_ne!(code, 0, "{lines:?}");
    let root = src.display();
    assert_eq!(
        lines,
        [
            format!(
                "{root}/store/retention.rs:1: store must not import adapters (crate::adapters)"
            ),
            format!(
                "{root}/transport/config.rs:2: transport must not import adapters (crate::adapters)"
            ),
            format!(
                "{root}/transport/mcp_config.rs:1: transport must not import adapters (crate::adapters)"
            ),
        ]
    );
}
