//! The secret.* tools over MCP against a running toolgate and a real OpenBao (the harness of
//! `openbao.rs`: dev server, Kubernetes login, KV v2, PKI role `web`, transit key `toolgate`).
//! Values are searched for in every place toolgate could keep them: the answers, the approval
//! requests as approvers and auditors see them, the SQLite store's bytes (approvals, audit,
//! tasks) and toolgate's log.

use rmcp::model::CallToolResult;
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

use crate::approvals_api::mcp_as;
use crate::fake_kube::objects;
use crate::gate::{decide, get_approval};
use crate::harness::{self, ALICE, BOB, FRANK, Toolgate};
use crate::mcp::{call, text_of};
use crate::openbao::{World, process};

const GRAFANA_KEY: &str = "glsa-9f8e7d6c5b4a39281706";
const DB_PASSWORD: &str = "pw-71c0ffee42d15ea5e";

/// OpenBao with two platform secrets (the same password in both) and toolgate serving it.
async fn started(extra: &str) -> (World, Toolgate) {
    let w = World::start("1h", "24h").await;
    seed(&w).await;
    let tg = harness::start(&w.fake, &format!("{}{extra}", w.block(""))).await;
    (w, tg)
}

async fn seed(w: &World) {
    w.bao
        .ok(
            "POST",
            "secret/data/platform/grafana",
            json!({"data": {"api_key": GRAFANA_KEY, "org": "7", "password": DB_PASSWORD}}),
        )
        .await;
    w.bao
        .ok(
            "POST",
            "secret/data/platform/db/main",
            json!({"data": {"password": DB_PASSWORD}}),
        )
        .await;
}

async fn tool(client: &RunningService<RoleClient, ()>, name: &str, args: Value) -> CallToolResult {
    call(client, name, args).await
}

fn structured(r: &CallToolResult) -> Value {
    r.structured_content.clone().unwrap_or(Value::Null)
}

fn failed(r: &CallToolResult) -> String {
    assert_eq!(r.is_error, Some(true), "expected a tool error: {r:?}");
    text_of(r)
}

/// Everything the SQLite store holds on disk (the database and its write-ahead log).
fn store_bytes(store_url: &str) -> Vec<u8> {
    let path = store_url.trim_start_matches("sqlite://");
    let path = path.split('?').next().unwrap_or(path);
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-journal"] {
        if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
            bytes.extend(b);
        }
    }
    assert!(!bytes.is_empty(), "no store at {path}");
    bytes
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The KV data of a secret as OpenBao holds it now (root token).
async fn kv(w: &World, path: &str) -> Value {
    w.bao
        .root("GET", &format!("secret/data/{path}"), None)
        .await
        .1["data"]
        .clone()
}

#[tokio::test]
async fn list_and_read_give_keys_versions_and_fingerprints_never_values() {
    let (_w, tg) = started("").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let tools = alice.list_all_tools().await.expect("tools/list");
    for name in [
        "secret_list",
        "secret_read",
        "secret_write",
        "secret_generate_certificate",
    ] {
        assert!(
            tools.iter().any(|t| t.name == name),
            "{name} is listed with openbao configured"
        );
    }

    let list = tool(&alice, "secret.list", json!({"path": "secret/platform"})).await;
    assert_ne!(list.is_error, Some(true), "{}", text_of(&list));
    let sc = structured(&list);
    assert_eq!(sc["path"], "secret/platform");
    let names: Vec<&str> = sc["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, vec!["db/", "grafana"], "{sc}");
    assert_eq!(sc["entries"][1]["version"], 1);
    assert_eq!(sc["entries"][1]["versions"], 1);

    let read = tool(
        &alice,
        "secret.read",
        json!({"path": "secret/platform/grafana"}),
    )
    .await;
    assert_ne!(read.is_error, Some(true), "{}", text_of(&read));
    let sc = structured(&read);
    assert_eq!(sc["version"], 1);
    assert!(sc["created_time"].as_str().is_some_and(|t| !t.is_empty()));
    let rows = sc["values"].as_array().expect("values");
    let keys: Vec<&str> = rows.iter().filter_map(|r| r["key"].as_str()).collect();
    assert_eq!(keys, vec!["api_key", "org", "password"]);
    assert!(rows.iter().all(|r| r.get("value").is_none()), "{sc}");
    let print = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .and_then(|r| r["fingerprint"].as_str())
            .expect("fingerprint")
            .to_string()
    };
    assert!(print("api_key").starts_with("hmac-sha256:v1:"), "{sc}");
    assert_eq!(print("api_key").len(), "hmac-sha256:v1:".len() + 32);
    // Not a bare hash of the value (which short values would give away).
    let bare = toolgate::core::audit::args_sha256(&json!(GRAFANA_KEY));
    assert!(!bare.contains(&print("api_key")[15..]));
    // The same value under another path has the same fingerprint.
    let db = tool(
        &alice,
        "secret.read",
        json!({"path": "secret/platform/db/main"}),
    )
    .await;
    assert_eq!(
        structured(&db)["values"][0]["fingerprint"].as_str(),
        Some(print("password").as_str())
    );
    for text in [
        text_of(&list),
        text_of(&read),
        text_of(&db),
        format!("{read:?}"),
    ] {
        assert!(
            !text.contains(GRAFANA_KEY) && !text.contains(DB_PASSWORD),
            "{text}"
        );
    }
    // Reads without reveal are not held and leave no value in the store.
    let bytes = store_bytes(&tg.store_url);
    assert!(!holds(&bytes, GRAFANA_KEY) && !holds(&bytes, DB_PASSWORD));
}

#[tokio::test]
async fn bad_secret_paths_and_arguments_are_refused_before_policy() {
    let (_w, tg) = started("").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    for (path, says) in [
        ("secret/../sys/policies", "`..`"),
        ("secret//platform/grafana", "`//`"),
        ("secret/%2e%2e/platform", "percent-encoding"),
        ("secret/platform/grafana/", "ends with `/`"),
        ("sys/policies/acl/toolgate", "openbao.kv_mounts"),
    ] {
        for (name, args) in [
            ("secret.read", json!({"path": path})),
            ("secret.list", json!({"path": path})),
            (
                "secret.write",
                json!({"path": path, "values": {"k": "v-secret-1"}}),
            ),
        ] {
            let r = tool(&alice, name, args).await;
            let text = failed(&r);
            assert!(text.contains("secret path"), "{name} {path}: {text}");
            assert!(text.to_lowercase().contains(says), "{name} {path}: {text}");
            assert!(!text.contains("v-secret-1"), "{text}");
        }
    }
    let missing = tool(&alice, "secret.write", json!({"path": "secret/platform/x"})).await;
    assert!(
        failed(&missing).contains("`values` is missing"),
        "{}",
        text_of(&missing)
    );
    let cas = tool(
        &alice,
        "secret.write",
        json!({"path": "secret/platform/x", "values": {"k": "v"}, "cas": "3"}),
    )
    .await;
    assert!(failed(&cas).contains("cas"), "{}", text_of(&cas));
    // The sealed form is toolgate's own: a caller cannot send it.
    let sealed = tool(
        &alice,
        "secret.write",
        json!({"path": "secret/platform/x", "sealed": {"k": "vault:v1:AAAA"}}),
    )
    .await;
    assert!(failed(&sealed).contains("sealed"), "{}", text_of(&sealed));
    // Nothing was held: no approval request exists.
    let (status, list) =
        crate::approvals_api::api(&tg, "GET", "/api/v1/approvals", Some(BOB), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        list["approvals"].as_array().map(Vec::len),
        Some(0),
        "{list}"
    );
}

#[tokio::test]
async fn a_reveal_needs_a_granting_rule_and_a_direct_allow_does_not_reveal() {
    let w = World::start("1h", "24h").await;
    seed(&w).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Reveal granted only under platform/db/; a second rule that allows reveals outright
    // under platform/grafana must not reveal anything without an approval.
    std::fs::write(
        dir.path().join("p.yaml"),
        r#"rules:
  - name: fingerprints
    tools: [secret.read]
    roles: [toolgate.caller]
    when: '!(has(args.reveal) && args.reveal == true)'
    effect: allow
  - name: reveal-db
    tools: [secret.read]
    roles: [toolgate.caller]
    when: 'args.reveal == true && target.mount == "secret" && target.path.startsWith("platform/db/")'
    effect: {require_approval: {approvals: 1, approver_roles: [toolgate.approver], ttl: 10m, reason_required: true}}
  - name: careless-allow
    tools: [secret.read]
    roles: [toolgate.caller]
    when: 'args.reveal == true && target.path == "platform/grafana"'
    effect: allow
  - name: status
    tools: [approval.status]
    roles: [toolgate.caller]
    effect: allow
"#,
    )
    .expect("policy");
    let tg = harness::start(
        &w.fake,
        &format!(
            "{}policies:\n  dir: {}\n",
            w.block(""),
            dir.path().display()
        ),
    )
    .await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let other = tool(
        &alice,
        "secret.read",
        json!({"path": "secret/platform/db/../grafana", "reveal": true}),
    )
    .await;
    assert!(failed(&other).contains("`..`"));
    w.bao
        .ok(
            "POST",
            "secret/data/platform/other",
            json!({"data": {"k": DB_PASSWORD}}),
        )
        .await;
    let denied = tool(
        &alice,
        "secret.read",
        json!({"path": "secret/platform/other", "reveal": true}),
    )
    .await;
    let text = failed(&denied);
    assert!(text.contains("Nothing was executed"), "{text}");
    let direct = tool(
        &alice,
        "secret.read",
        json!({"path": "secret/platform/grafana", "reveal": true}),
    )
    .await;
    let text = failed(&direct);
    assert!(
        text.contains("runs only after an approver approved it"),
        "{text}"
    );
    assert!(!text.contains(GRAFANA_KEY));
    let held = tool(
        &alice,
        "secret.read",
        json!({"path": "secret/platform/db/main", "reveal": true}),
    )
    .await;
    assert_eq!(structured(&held)["status"], "approval_required", "{held:?}");
}

#[tokio::test]
async fn an_approved_reveal_reaches_only_its_requester_and_is_kept_nowhere() {
    let w = World::start("1h", "24h").await;
    seed(&w).await;
    let mut tg = process(&w, "").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let held = tool(
        &alice,
        "secret.read",
        json!({"path": "secret/platform/grafana", "reveal": true}),
    )
    .await;
    let sc = structured(&held);
    assert_eq!(sc["status"], "approval_required", "{held:?}");
    let id = sc["approval_id"].as_str().expect("id").to_string();
    let pending = get_approval(&tg.url, BOB, &id).await;
    assert_eq!(
        pending["args"]["version"], 1,
        "the reveal is pinned to a version: {pending}"
    );
    assert_eq!(pending["target"]["mount"], "secret");
    assert_eq!(pending["target"]["path"], "platform/grafana");
    assert!(
        pending["preview"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("api_key, org, password")),
        "{pending}"
    );
    // The default policy asks for a reason.
    let (status, body) = decide(&tg.url, BOB, &id, "approve", None).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = decide(
        &tg.url,
        BOB,
        &id,
        "approve",
        Some("rotate the Grafana token, INC-42"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "executed", "{body}");

    // The requester gets the values through approval.status, marked secret and untrusted.
    let status = tool(&alice, "approval.status", json!({"approval_id": id})).await;
    let result = structured(&status)["result"].clone();
    assert_eq!(result["secret"], true, "{result}");
    assert_eq!(result["untrusted"], true, "{result}");
    let api_key = result["values"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["key"] == "api_key"))
        .cloned()
        .expect("api_key row");
    assert_eq!(api_key["value"], GRAFANA_KEY, "{result}");
    assert!(
        result["reveal"]
            .as_str()
            .is_some_and(|r| r.contains("INC-42")),
        "{result}"
    );
    // Approvers and auditors see the fingerprints only; so does another caller (not found).
    for token in [BOB, FRANK] {
        let seen = get_approval(&tg.url, token, &id).await;
        assert_eq!(seen["state"], "executed");
        let text = seen.to_string();
        assert!(
            !text.contains(GRAFANA_KEY) && text.contains("hmac-sha256:"),
            "{text}"
        );
    }
    let bob = mcp_as(&tg.url, BOB).await;
    let as_bob = tool(&bob, "approval.status", json!({"approval_id": id})).await;
    assert!(!format!("{as_bob:?}").contains(GRAFANA_KEY));

    let _ = alice.cancel().await;
    let _ = bob.cancel().await;
    let _ = tg.child.kill().await;
    let bytes = store_bytes(&tg.store_url);
    for value in [GRAFANA_KEY, DB_PASSWORD] {
        assert!(!holds(&bytes, value), "{value} is in the store");
    }
    let log = std::fs::read_to_string(&tg.log).expect("log");
    assert!(log.contains("secret.read"), "the log has the calls: {log}");
    let leaked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(GRAFANA_KEY) || l.contains(DB_PASSWORD))
        .collect();
    assert!(leaked.is_empty(), "a value was logged: {leaked:?}");
}

#[tokio::test]
async fn a_write_is_sealed_while_held_and_written_with_check_and_set() {
    let (w, tg) = started("").await;
    let alice = mcp_as(&tg.url, ALICE).await;
    let new_key = "glsa-rotated-0a1b2c3d4e5f6789";
    let held = tool(
        &alice,
        "secret.write",
        json!({"path": "secret/platform/grafana", "values": {"api_key": new_key}}),
    )
    .await;
    let sc = structured(&held);
    assert_eq!(sc["status"], "approval_required", "{held:?}");
    assert!(!format!("{held:?}").contains(new_key));
    let id = sc["approval_id"].as_str().expect("id").to_string();
    let pending = get_approval(&tg.url, BOB, &id).await;
    assert_eq!(
        pending["args"]["cas"], 1,
        "cas from the version read at settle: {pending}"
    );
    let change = &pending["args"]["fingerprints"]["api_key"];
    assert!(
        change["old"]
            .as_str()
            .is_some_and(|o| o.starts_with("hmac-sha256:")),
        "{pending}"
    );
    assert_ne!(change["old"], change["new"]);
    assert!(
        pending["args"]["sealed"]["api_key"]
            .as_str()
            .is_some_and(|s| s.starts_with("vault:v1:"))
    );
    assert!(
        pending.get("args").and_then(|a| a.get("values")).is_none(),
        "{pending}"
    );
    assert!(!pending.to_string().contains(new_key));
    // The approved call decrypts and writes with cas 1; the keys not named are kept.
    let (status, body) = decide(&tg.url, BOB, &id, "approve", Some("rotation")).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("executed")),
        "{body}"
    );
    assert_eq!(body["result"]["version"], 2, "{body}");
    assert!(!body.to_string().contains(new_key));
    let now = kv(&w, "platform/grafana").await;
    assert_eq!(now["data"]["api_key"], new_key);
    assert_eq!(now["data"]["org"], "7");
    assert_eq!(now["metadata"]["version"], 2);

    // A ciphertext moved to another path does not decrypt there (its context is the path).
    let moved = pending["args"]["sealed"]["api_key"]
        .as_str()
        .expect("sealed");
    let (code, _) = w
        .bao
        .root(
            "POST",
            "transit/decrypt/toolgate",
            Some(json!({"ciphertext": moved, "context": base64_of("toolgate secret.write secret/platform/db/main")})),
        )
        .await;
    assert_eq!(code, 400, "bound to its path");

    // Someone writes in between: the approved write fails with a clear CAS error.
    let third = "glsa-third-99887766554433";
    let held = tool(
        &alice,
        "secret.write",
        json!({"path": "secret/platform/grafana", "values": {"api_key": third}}),
    )
    .await;
    let id2 = structured(&held)["approval_id"]
        .as_str()
        .expect("id")
        .to_string();
    w.bao
        .ok(
            "POST",
            "secret/data/platform/grafana",
            json!({"data": {"api_key": "by-someone-else"}}),
        )
        .await;
    let (_, body) = decide(&tg.url, BOB, &id2, "approve", Some("again")).await;
    assert_eq!(body["state"], "failed", "{body}");
    let reason = body["state_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("check-and-set failed") && reason.contains("version 2"),
        "{reason}"
    );
    assert_eq!(
        kv(&w, "platform/grafana").await["data"]["api_key"],
        "by-someone-else"
    );

    let bytes = store_bytes(&tg.store_url);
    for value in [new_key, third, GRAFANA_KEY] {
        assert!(!holds(&bytes, value), "{value} is in the store");
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test]
async fn a_certificate_goes_into_a_tls_secret_and_its_key_nowhere_else() {
    let (w, tg) = started("").await;
    w.fake.insert(objects::namespace("shop"));
    let alice = mcp_as(&tg.url, ALICE).await;
    let args = json!({"role": "web", "common_name": "api.example.test",
                      "alt_names": ["www.example.test"], "ip_sans": ["10.0.0.7"], "ttl": "2h",
                      "namespace": "shop", "name": "api-tls"});
    let bad = tool(&alice, "secret.generate_certificate", json!({"role": "web", "common_name": "a.example.test", "namespace": "shop", "name": "Bad_Name"})).await;
    assert!(failed(&bad).contains("Bad_Name"), "{}", text_of(&bad));
    let held = tool(&alice, "secret.generate_certificate", args).await;
    let sc = structured(&held);
    assert_eq!(sc["status"], "approval_required", "{held:?}");
    let id = sc["approval_id"].as_str().expect("id").to_string();
    let pending = get_approval(&tg.url, BOB, &id).await;
    let summary = pending["preview"]["summary"].as_str().unwrap_or_default();
    for part in [
        "PKI role web",
        "api.example.test",
        "10.0.0.7",
        "TTL 2h",
        "create TLS Secret shop/api-tls",
    ] {
        assert!(summary.contains(part), "{part} missing in {summary}");
    }
    assert_eq!(pending["target"]["kind"], "Secret");
    assert_eq!(pending["target"]["mount"], "pki");
    let (status, body) = decide(&tg.url, BOB, &id, "approve", Some("new endpoint")).await;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("executed")),
        "{body}"
    );
    let result = body["result"].clone();

    let secret = w
        .fake
        .get("v1", "Secret", Some("shop"), "api-tls")
        .expect("TLS Secret written");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let field = |k: &str| {
        String::from_utf8(
            b64.decode(secret["data"][k].as_str().expect(k))
                .expect("base64"),
        )
        .expect("utf8")
    };
    let (crt, key) = (field("tls.crt"), field("tls.key"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(crt.as_bytes()).expect("PEM");
    let x509 = pem.parse_x509().expect("certificate");
    let lifetime = x509.validity().not_after.timestamp() - jiff::Timestamp::now().as_second();
    assert!((lifetime - 7200).abs() <= 60, "TTL 2h, got {lifetime} s");
    let sans = format!(
        "{:?}",
        x509.subject_alternative_name()
            .expect("SAN")
            .expect("SANs")
            .value
            .general_names
    );
    for name in ["api.example.test", "www.example.test"] {
        assert!(sans.contains(name), "{name} missing in {sans}");
    }
    assert_eq!(
        result["serial_number"].as_str().map(|s| s.replace(':', "")),
        Some(x509.raw_serial_as_string().replace(':', "")),
        "{result}"
    );
    // The key pairs with the certificate.
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key PEM");
    let signer = rustls::crypto::ring::sign::any_supported_type(&der).expect("key");
    let spki = signer.public_key().expect("public key");
    assert_eq!(
        spki.as_ref(),
        x509.public_key().raw,
        "the key is the certificate's"
    );
    let fingerprint = {
        use sha2::Digest;
        sha2::Sha256::digest(&pem.contents)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    assert_eq!(result["certificate_sha256"], fingerprint, "{result}");
    assert!(
        result["chain_sha256"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );

    // The key is nowhere but in the Secret.
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let probe = &key_body[..40];
    let status = tool(&alice, "approval.status", json!({"approval_id": id})).await;
    for text in [
        body.to_string(),
        text_of(&status),
        format!("{status:?}"),
        get_approval(&tg.url, FRANK, &id).await.to_string(),
    ] {
        assert!(!text.contains(probe), "the private key leaked: {text}");
    }
    assert!(
        !holds(&store_bytes(&tg.store_url), probe),
        "the private key is in the store"
    );
}

#[tokio::test]
async fn with_openbao_down_the_secret_tools_say_so_and_k8s_tools_still_answer() {
    let (mut w, tg) = started("  retry: {attempts: 1}\n").await;
    w.fake.insert(objects::namespace("shop"));
    w.fake
        .insert(objects::configmap("shop", "app", &[("k", "v")]));
    let alice = mcp_as(&tg.url, ALICE).await;
    let up = tool(&alice, "secret.list", json!({"path": "secret/platform"})).await;
    assert_ne!(up.is_error, Some(true), "{}", text_of(&up));
    w.bao.kill().await;
    for (name, args) in [
        ("secret.list", json!({"path": "secret/platform"})),
        ("secret.read", json!({"path": "secret/platform/grafana"})),
    ] {
        let r = tool(&alice, name, args).await;
        assert!(
            failed(&r).contains("OpenBao is down"),
            "{name}: {}",
            text_of(&r)
        );
    }
    let k8s = tool(
        &alice,
        "k8s.get_resource",
        json!({"kind": "configmap", "name": "app", "namespace": "shop"}),
    )
    .await;
    assert_ne!(k8s.is_error, Some(true), "{}", text_of(&k8s));
}
