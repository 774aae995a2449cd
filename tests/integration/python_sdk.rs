//! The official Python MCP SDK client (tests/python/mcp_driver.py, in the test venv) against
//! toolgate over stdio and over streamable HTTP.

use serde_json::{Value, json};

use crate::harness;
use crate::mcp::{READ_TOOLS, SECRET_B64, WRITE_TOOLS, seeded_fake};

async fn drive(plan: Value) -> Value {
    harness::run_python("mcp_driver.py", &plan).await
}

/// Called by the names the client sees listed (underscored), and one in the dotted form.
fn calls() -> Value {
    json!([
        {"name": "k8s_list_resources", "arguments": {"kind": "pods", "namespace": "shop"}},
        {"name": "k8s_get_resource", "arguments": {"kind": "deploy", "name": "web", "namespace": "shop"}},
        {"name": "k8s_get_logs", "arguments": {"pod": "web-0", "namespace": "shop", "tail_lines": 5}},
        {"name": "k8s_describe_resource", "arguments": {"kind": "pod", "name": "web-0", "namespace": "shop"}},
        {"name": "k8s.get_events", "arguments": {"namespace": "shop"}},
        {"name": "k8s_list_resources", "arguments": {"kind": "pods", "limit": "ten"}},
        {"name": "k8s_nonexistent", "arguments": {}},
        {"name": "k8s_delete_resource", "arguments": {"kind": "deploy", "name": "web", "namespace": "shop"}},
        {"name": "k8s_get_resource", "arguments": {"kind": "secret", "name": "db-credentials", "namespace": "shop"}},
        {"name": "approval_status", "arguments": {"approval_id": "$approval_id"}}
    ])
}

fn check_report(report: &Value) {
    assert_eq!(report["serverInfo"]["name"], json!("toolgate"));
    let listed: Vec<&str> = report["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for name in READ_TOOLS.iter().chain(WRITE_TOOLS.iter()) {
        let name = name.replace('.', "_");
        assert!(listed.contains(&name.as_str()), "{name} listed: {listed:?}");
    }
    let results = report["results"].as_array().expect("results");
    for (i, r) in results.iter().take(5).enumerate() {
        assert_eq!(r["isError"], json!(false), "read call {i}: {r}");
        assert!(
            r["structuredContent"].is_object(),
            "read call {i} has structured content"
        );
    }
    assert!(
        results[0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("web-0")
    );
    assert_eq!(results[5]["isError"], json!(true));
    assert!(
        results[5]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("`limit`")
    );
    assert_eq!(
        results[6]["protocolError"]["code"],
        json!(-32602),
        "{}",
        results[6]
    );
    assert_eq!(results[7]["isError"], json!(false), "{}", results[7]);
    assert_eq!(
        results[7]["structuredContent"]["status"],
        json!("approval_required"),
        "{}",
        results[7]
    );
    assert_eq!(results[8]["isError"], json!(false));
    assert!(
        !results[8].to_string().contains(SECRET_B64),
        "secret data leaked to the Python client"
    );
    // The SDK checked this answer against approval_status's listed outputSchema.
    assert_eq!(results[9]["isError"], json!(false), "{}", results[9]);
    assert_eq!(
        results[9]["structuredContent"]["state"],
        json!("pending"),
        "{}",
        results[9]
    );
}

#[tokio::test]
async fn python_sdk_over_stdio() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(&config, harness::config_yaml(&fake, dir.path(), "")).expect("config");
    let report = drive(json!({
        "transport": "stdio",
        "command": [env!("CARGO_BIN_EXE_toolgate"), "stdio", "--config", config],
        "calls": calls(),
    }))
    .await;
    check_report(&report);
}

#[tokio::test]
async fn python_sdk_over_http_with_cursor_paging() {
    let fake = seeded_fake().await;
    fake.seed_pods(500, &["p1", "p2", "p3", "p4", "p5"]);
    let tg = harness::start(&fake, "").await;
    let report = drive(json!({
        "transport": "http",
        "url": format!("{}/mcp", tg.url),
        "calls": calls(),
        "follow_cursor": {"name": "k8s_list_resources", "arguments": {"kind": "pods", "label_selector": "", "max_bytes": 8192}},
    }))
    .await;
    check_report(&report);
    let pages = report["pages"].as_array().expect("pages");
    assert!(
        pages.len() > 2,
        "the 501-pod list is cut into several pages"
    );
    let mut names: Vec<String> = Vec::new();
    for page in pages {
        let cols = page["columns"].as_array().expect("columns");
        let ni = cols.iter().position(|c| c == "name").expect("name column");
        let si = cols
            .iter()
            .position(|c| c == "namespace")
            .expect("namespace column");
        for row in page["rows"].as_array().expect("rows") {
            names.push(format!(
                "{}/{}",
                row[si].as_str().unwrap_or_default(),
                row[ni].as_str().unwrap_or_default()
            ));
        }
    }
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(total, 501, "500 seeded pods + web-0");
    assert_eq!(names.len(), 501, "no pod twice");
}
