//! The tool surface as clients see it: the listing's size and schema shapes, toolsets and
//! read-only mode on every transport (MCP stdio and HTTP, JSON-RPC, A2A), the command-line
//! switches, and what a call of a hidden or unknown tool is told.

use std::path::Path;
use std::process::Stdio;

use reqwest::StatusCode;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use toolgate::core::flat_schema::{Contract, problems};

use crate::a2a::{send_v1, skill_ids};
use crate::approvals_api::api;
use crate::harness::{self, ALICE, BOB, Toolgate};
use crate::jsonrpc::{request, rpc};
use crate::mcp::{call, http_client, seeded_fake, text_of};

/// What `tools/list` answers over stdio, as the JSON-RPC `result` (raw, from the wire).
async fn stdio_listing(config: &Path, flags: &[&str]) -> Value {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("stdio")
        .arg("--config")
        .arg(config)
        .args(flags)
        .env_remove("TOOLGATE_LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn toolgate stdio");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "listing-test", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    ];
    for m in messages {
        stdin
            .write_all(format!("{m}\n").as_bytes())
            .await
            .expect("write");
    }
    let answer = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            let msg: Value = serde_json::from_str(&line).expect("JSON line");
            if msg["id"] == json!(2) {
                return msg;
            }
        }
        panic!("toolgate stdio ended before answering tools/list")
    })
    .await
    .expect("tools/list answered within 30s");
    drop(stdin);
    let _ = child.kill().await;
    answer["result"].clone()
}

fn names(listing: &Value) -> Vec<String> {
    listing["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_string))
        .collect()
}

/// `name  bytes` per tool and the total, to read when a listing grows.
fn sizes(listing: &Value) -> (usize, String) {
    let total = listing.to_string().len();
    let mut table = String::new();
    for tool in listing["tools"].as_array().expect("tools") {
        table.push_str(&format!(
            "  {:<26} {:>5} bytes\n",
            tool["name"].as_str().unwrap_or("?"),
            tool.to_string().len()
        ));
    }
    table.push_str(&format!("  {:<26} {total:>5} bytes", "total (result)"));
    (total, table)
}

fn write_config(dir: &Path, fake: &crate::fake_kube::FakeKube, extra: &str) -> std::path::PathBuf {
    let path = dir.join("toolgate.yaml");
    std::fs::write(&path, harness::config_yaml(fake, dir, extra)).expect("config");
    path
}

#[tokio::test]
async fn the_default_listing_fits_in_12_kb_and_every_toolset_in_1_kb_a_tool() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for names_mode in ["underscored", "dotted"] {
        let config = write_config(
            dir.path(),
            &fake,
            &format!("mcp:\n  tool_names: {names_mode}\n"),
        );
        let default = stdio_listing(&config, &[]).await;
        let (bytes, table) = sizes(&default);
        println!("default listing ({names_mode}):\n{table}");
        assert!(
            bytes <= 12 * 1024,
            "the default tools/list result is {bytes} bytes, over 12 KiB ({names_mode}):\n{table}"
        );
        let all = stdio_listing(&config, &["--toolsets", "all"]).await;
        let (bytes, table) = sizes(&all);
        let tools = names(&all).len();
        println!("every toolset ({names_mode}):\n{table}");
        assert_eq!(
            tools,
            toolgate::tools::all().len(),
            "`all` lists every tool"
        );
        assert!(
            bytes <= tools * 1024,
            "every toolset listed is {bytes} bytes for {tools} tools, over 1 KiB a tool ({names_mode}):\n{table}"
        );
        for tool in all["tools"].as_array().expect("tools") {
            let description = tool["description"].as_str().unwrap_or_default();
            assert!(
                description.chars().count() <= 600,
                "{}: description of {} characters",
                tool["name"],
                description.chars().count()
            );
            for (arg, schema) in tool["inputSchema"]["properties"]
                .as_object()
                .expect("properties")
            {
                let text = schema["description"].as_str().unwrap_or_default();
                assert!(
                    !text.is_empty() && text.len() <= 80,
                    "{}.{arg}: each argument is described in a few words: {text:?}",
                    tool["name"]
                );
            }
        }
    }
}

#[tokio::test]
async fn every_listed_schema_is_flat_in_every_name_mode() {
    let fake = seeded_fake().await;
    for names_mode in ["underscored", "dotted"] {
        let tg = harness::start(
            &fake,
            &format!("mcp:\n  tool_names: {names_mode}\n  toolsets: [all]\n"),
        )
        .await;
        let client = http_client(&tg.url).await;
        let tools = client.list_all_tools().await.expect("tools/list");
        assert_eq!(tools.len(), toolgate::tools::all().len());
        let mut found = Vec::new();
        for tool in &tools {
            let input = (*tool.input_schema).clone();
            found.extend(
                problems(&input, Contract::Deserialize)
                    .into_iter()
                    .map(|p| format!("{} inputSchema {p}", tool.name)),
            );
            if let Some(output) = &tool.output_schema {
                found.extend(
                    problems(output, Contract::Serialize)
                        .into_iter()
                        .map(|p| format!("{} outputSchema {p}", tool.name)),
                );
            }
            let name = tool.name.to_string();
            if names_mode == "underscored" {
                // The function-name pattern of the OpenAI and Anthropic APIs.
                assert!(
                    !name.is_empty()
                        && name.len() <= 64
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                    "{name}"
                );
            } else {
                assert!(name.contains('.'), "{name}");
            }
        }
        assert!(found.is_empty(), "{names_mode}: {found:#?}");
        // Tools whose answer is read as text list no output schema; approval.status does.
        let status = tools
            .iter()
            .find(|t| t.name.replace('.', "_") == "approval_status")
            .expect("approval status listed");
        assert!(status.output_schema.is_some());
        assert!(
            tools
                .iter()
                .filter(|t| t.name.starts_with("k8s"))
                .all(|t| t.output_schema.is_none())
        );
        client.cancel().await.ok();
    }
}

/// A policy that lets callers run everything at once: read-only mode must not care.
fn allow_everything(dir: &Path) -> String {
    std::fs::write(
        dir.join("allow.yaml"),
        "rules:\n  - name: everything\n    roles: [toolgate.caller]\n    effect: allow\n",
    )
    .expect("policy");
    format!("policies:\n  dir: {}\n", dir.display())
}

/// A `tools.call` on `/rpc` that the tool refused: its message.
async fn rpc_refusal(tg: &Toolgate, name: &str, arguments: Value) -> String {
    let body = request(
        json!(2),
        "tools.call",
        json!({"name": name, "arguments": arguments}),
    );
    let answer = rpc(&tg.url, ALICE, body).await;
    assert_eq!(answer["result"]["isError"], json!(true), "{answer}");
    answer["result"]["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// An A2A message whose call is rejected: the task, as text.
async fn a2a_refusal(tg: &Toolgate, call: Value) -> String {
    let task = send_v1(tg, ALICE, call).await;
    assert_eq!(task["status"]["state"], "TASK_STATE_REJECTED", "{task}");
    task.to_string()
}

fn changes(fake: &crate::fake_kube::FakeKube) -> Vec<String> {
    fake.requests()
        .iter()
        .filter(|r| ["POST", "PUT", "PATCH", "DELETE"].contains(&r.method.as_str()))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn read_only_mode_lists_and_runs_only_reads_on_every_transport_whatever_the_policy() {
    let fake = seeded_fake().await;
    let policies = tempfile::tempdir().expect("tempdir");
    let tg = harness::start(
        &fake,
        &format!(
            "{}mcp:\n  read_only: true\n",
            allow_everything(policies.path())
        ),
    )
    .await;

    // MCP: only read tools listed; a write is refused by name, reads still run.
    let client = http_client(&tg.url).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let listed: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(listed.contains(&"k8s_get_logs".to_string()), "{listed:?}");
    assert!(
        !listed.contains(&"k8s_delete_resource".to_string()),
        "{listed:?}"
    );
    for tool in &tools {
        let hints = tool.annotations.as_ref().expect("annotations");
        assert_eq!(hints.read_only_hint, Some(true), "{}", tool.name);
    }
    let refused = call(
        &client,
        "k8s_delete_resource",
        json!({"kind": "deploy", "name": "web", "namespace": "shop"}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    let text = text_of(&refused);
    assert!(
        text.contains("`k8s_delete_resource`")
            && text.contains("read-only mode is on")
            && text.contains("toolset `k8s`"),
        "{text}"
    );
    let read = call(
        &client,
        "k8s_list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    client.cancel().await.ok();

    // JSON-RPC: the same list and the same refusal.
    let list = rpc(&tg.url, ALICE, request(json!(1), "tools.list", json!({}))).await;
    let rpc_names = names(&list["result"]);
    assert!(rpc_names.contains(&"k8s.get_logs".to_string()));
    assert!(
        !rpc_names.iter().any(|n| n == "k8s.rollout_restart"),
        "{rpc_names:?}"
    );
    let message = rpc_refusal(
        &tg,
        "k8s.rollout_restart",
        json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    assert!(message.contains("read-only mode is on"), "{message}");

    // A2A: the call is rejected, saying why.
    let task = a2a_refusal(
        &tg,
        json!({"tool": "k8s.exec_command", "arguments": {"pod": "web-0", "namespace": "shop", "command": ["id"]}}),
    )
    .await;
    assert!(task.contains("read-only mode is on"), "{task}");

    // Each attempt is audited as denied by read-only mode.
    let store = toolgate::store::Store::connect(&tg.store_url)
        .await
        .expect("store");
    let denied: Vec<String> = store
        .audit_tail(100)
        .await
        .expect("audit")
        .into_iter()
        .filter(|r| {
            r.entry.decision == "denied" && r.entry.rule.as_deref() == Some("read-only mode")
        })
        .map(|r| format!("{} {}", r.entry.transport, r.entry.tool))
        .collect();
    assert_eq!(
        denied,
        [
            "mcp-http k8s.delete_resource",
            "jsonrpc k8s.rollout_restart",
            "a2a k8s.exec_command"
        ]
    );

    // Nothing reached the cluster, nothing waits for anyone.
    assert_eq!(changes(&fake), Vec::<String>::new());
    assert!(fake.execs().is_empty());
    let (status, queue) = api(&tg, "GET", "/api/v1/approvals", Some(BOB), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        queue["approvals"].as_array().map(Vec::len),
        Some(0),
        "{queue}"
    );
}

#[tokio::test]
async fn toolsets_hide_other_tools_and_refuse_them_by_name_on_every_transport() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "mcp:\n  toolsets: [obs]\n").await;

    let client = http_client(&tg.url).await;
    let tools = client.list_all_tools().await.expect("tools/list");
    assert!(!tools.is_empty());
    assert!(
        tools.iter().all(|t| t.name.starts_with("obs_")),
        "{:?}",
        tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>()
    );
    let refused = call(
        &client,
        "k8s_list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    let text = text_of(&refused);
    assert!(
        text.contains("`k8s_list_resources`")
            && text.contains("toolset `k8s`")
            && text.contains("--toolsets obs,k8s"),
        "{text}"
    );
    client.cancel().await.ok();

    let list = rpc(&tg.url, ALICE, request(json!(1), "tools.list", json!({}))).await;
    assert!(
        names(&list["result"]).iter().all(|n| n.starts_with("obs.")),
        "{list}"
    );
    let message = rpc_refusal(&tg, "approval.status", json!({"approval_id": "x"})).await;
    assert!(message.contains("toolset `approval`"), "{message}");

    let task = a2a_refusal(
        &tg,
        json!({"tool": "k8s.get_logs", "arguments": {"pod": "web-0", "namespace": "shop"}}),
    )
    .await;
    assert!(task.contains("toolset `k8s`"), "{task}");
    let card: Value = harness::http()
        .get(format!("{}/.well-known/agent-card.json", tg.url))
        .send()
        .await
        .expect("card")
        .json()
        .await
        .expect("JSON");
    assert_eq!(skill_ids(&card), ["obs"]);

    let pods: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/pods"))
        .map(|r| r.path.clone())
        .collect();
    assert!(
        pods.is_empty(),
        "a hidden tool reached the cluster: {pods:?}"
    );
}

#[tokio::test]
async fn obs_is_offered_by_default_once_an_observability_upstream_is_configured() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = stdio_listing(&write_config(dir.path(), &fake, ""), &[]).await;
    let bare = names(&bare);
    assert!(bare.contains(&"k8s_get_logs".to_string()), "{bare:?}");
    assert!(bare.contains(&"approval_status".to_string()), "{bare:?}");
    assert!(!bare.iter().any(|n| n.starts_with("obs_")), "{bare:?}");

    let with_prometheus = write_config(
        dir.path(),
        &fake,
        "observability:\n  prometheus:\n    url: http://127.0.0.1:9\n",
    );
    let listed = names(&stdio_listing(&with_prometheus, &[]).await);
    assert!(
        listed.contains(&"obs_query_metrics".to_string()),
        "{listed:?}"
    );
    // Every toolset but those whose own section is not configured (knowledge, memory, review,
    // secret, argocd, ticket, page).
    let offered = toolgate::tools::all()
        .iter()
        .filter(|t| {
            !matches!(
                t.spec().toolset,
                "knowledge" | "memory" | "review" | "secret" | "argocd" | "ticket" | "page"
            )
        })
        .count();
    assert_eq!(listed.len(), offered, "{listed:?}");

    // `review` once a `review:` section exists.
    let with_review = write_config(
        dir.path(),
        &fake,
        "review:\n  github:\n    token: ghp_test\n",
    );
    let listed = names(&stdio_listing(&with_review, &[]).await);
    assert!(
        listed.contains(&"review_analyze_pr".to_string()),
        "{listed:?}"
    );
    assert!(!listed.iter().any(|n| n.starts_with("obs_")), "{listed:?}");

    // `knowledge` and `memory` once a `knowledge:` section exists (the embedded index answers
    // for memory without Cognee). The 12 KiB bound is the bare default's (above); with both
    // toolsets the listing is larger, printed here.
    let with_knowledge = write_config(
        dir.path(),
        &fake,
        &format!(
            "knowledge:\n  runbooks_dir: {}/tests/fixtures/knowledge/runbooks\n",
            env!("CARGO_MANIFEST_DIR")
        ),
    );
    let listing = stdio_listing(&with_knowledge, &[]).await;
    let (bytes, table) = sizes(&listing);
    println!("default listing with knowledge ({bytes} bytes):\n{table}");
    let listed = names(&listing);
    for name in [
        "knowledge_search_runbooks",
        "memory_search",
        "memory_add_datapoints",
    ] {
        assert!(listed.contains(&name.to_string()), "{name}: {listed:?}");
    }
}

#[tokio::test]
async fn the_command_line_picks_toolsets_and_read_only_and_refuses_unknown_toolsets() {
    let fake = seeded_fake().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &fake, "mcp:\n  toolsets: [all]\n");
    let listed = names(&stdio_listing(&config, &["--toolsets", "k8s", "--read-only"]).await);
    assert_eq!(
        listed,
        [
            "k8s_get_resource",
            "k8s_list_resources",
            "k8s_get_logs",
            "k8s_describe_resource",
            "k8s_get_events",
            "k8s_list_clusters"
        ]
    );
    for command in ["stdio", "serve"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
            .args([command, "--config"])
            .arg(&config)
            .args(["--toolsets", "k8s,tickets"])
            .env_remove("TOOLGATE_LISTEN")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(64), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("mcp.toolsets: unknown toolset `tickets`")
                && err.contains(
                    "toolsets: approval, argocd, k8s, knowledge, memory, obs, page, review, secret, ticket, or `all`"
                ),
            "{command}: {err}"
        );
    }
}

#[tokio::test]
async fn a_name_in_neither_form_gets_the_three_closest_listed_names() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let client = http_client(&tg.url).await;
    let err = client
        .call_tool(CallToolRequestParams::new("k8s_get_log").with_arguments(Default::default()))
        .await
        .expect_err("unknown tool is a protocol error");
    let text = err.to_string();
    assert!(
        text.contains("unknown tool `k8s_get_log`") && text.contains("did you mean: k8s_get_logs"),
        "{text}"
    );
    let suggested = text
        .split("did you mean: ")
        .nth(1)
        .and_then(|rest| rest.split('?').next())
        .unwrap_or_default()
        .split(", ")
        .count();
    assert!((1..=3).contains(&suggested), "{text}");
    // A hidden tool is never suggested; called by its exact name it says where it lives.
    let err = client
        .call_tool(CallToolRequestParams::new("obs_search_log").with_arguments(Default::default()))
        .await
        .expect_err("unknown");
    let text = err.to_string();
    let suggestions = text
        .split("did you mean: ")
        .nth(1)
        .and_then(|rest| rest.split('?').next())
        .unwrap_or_default();
    assert!(
        !suggestions.is_empty() && !suggestions.contains("obs_"),
        "{text}"
    );
    let hidden = call(&client, "obs_search_logs", json!({})).await;
    assert_eq!(hidden.is_error, Some(true));
    let text = text_of(&hidden);
    assert!(text.contains("--toolsets approval,k8s,obs"), "{text}");
    assert!(
        text.contains("`obs_search_logs`") && text.contains("toolset `obs`"),
        "{text}"
    );
    client.cancel().await.ok();
}
