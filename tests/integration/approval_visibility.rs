//! Who sees an approval request and its result, on every surface (REST, JSON-RPC, the
//! `approval.status` tool): its requester, the people who may decide it, and auditors. Anyone
//! else, even with a valid token, sees nothing and cannot tell the request exists.

use serde_json::{Value, json};

use crate::approvals_api::{mcp_as, request_restart};
use crate::gate::decide;
use crate::harness::{self, ALICE, BOB, CAROL, DAVE, ERIN, FRANK};
use crate::mcp::{call, seeded_fake, text_of};

async fn get(url: &str, token: &str, path: &str) -> (u16, Value) {
    let resp = harness::http()
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn rpc(url: &str, token: &str, method: &str, params: Value) -> Value {
    harness::http()
        .post(format!("{url}/rpc"))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("POST /rpc")
        .json()
        .await
        .expect("JSON-RPC answer")
}

fn listed(list: &Value) -> Vec<String> {
    list["approvals"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn only_the_requester_its_approvers_and_auditors_see_a_request_and_its_result() {
    let fake = seeded_fake().await;
    let tg = harness::start(&fake, "").await;
    let id = request_restart(&tg.url, ALICE).await;
    let (status, body) = decide(&tg.url, CAROL, &id, "approve", None).await;
    assert_eq!(status, 200, "{body}");
    let mut executed = Value::Null;
    for _ in 0..100 {
        let (_, v) = get(&tg.url, ALICE, &format!("/api/v1/approvals/{id}")).await;
        executed = v;
        if executed["state"] == "executed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(executed["state"], "executed", "{executed}");

    // The requester, an approver who may decide it, and an auditor: the request and its result.
    for (who, token) in [
        ("requester", ALICE),
        ("approver", CAROL),
        ("auditor", FRANK),
    ] {
        let (status, v) = get(&tg.url, token, &format!("/api/v1/approvals/{id}")).await;
        assert_eq!(status, 200, "{who}: {v}");
        assert!(v["result"].is_object(), "{who}: {v}");
        let (status, list) = get(&tg.url, token, "/api/v1/approvals").await;
        assert_eq!(status, 200, "{who}: {list}");
        assert_eq!(listed(&list), vec![id.clone()], "{who}");
    }
    // /rpc serves callers only (tools are its point): the requester reads it there too.
    let answer = rpc(&tg.url, ALICE, "approvals.get", json!({"id": id})).await;
    assert_eq!(answer["result"]["id"], json!(id), "{answer}");
    assert!(answer["result"]["result"].is_object(), "{answer}");

    // Another caller and a token without any toolgate role: nothing, as if it did not exist.
    for (who, token) in [("other caller", ERIN), ("no toolgate role", DAVE)] {
        let (status, v) = get(&tg.url, token, &format!("/api/v1/approvals/{id}")).await;
        assert_eq!(status, 404, "{who}: {v}");
        let (missing, _) = get(&tg.url, token, "/api/v1/approvals/no-such-id").await;
        assert_eq!(
            missing, status,
            "{who}: the same answer as for an unknown id"
        );
        assert!(!v.to_string().contains("restart"), "{who}: {v}");
        let (status, list) = get(&tg.url, token, "/api/v1/approvals").await;
        assert_eq!(status, 200, "{who}: {list}");
        assert_eq!(listed(&list), Vec::<String>::new(), "{who}: {list}");
        let (_, pending) = get(&tg.url, token, "/api/v1/approvals?state=executed").await;
        assert_eq!(listed(&pending), Vec::<String>::new(), "{who}: {pending}");
        let answer = rpc(&tg.url, token, "approvals.get", json!({"id": id})).await;
        assert!(answer["error"].is_object(), "{who}: {answer}");
        assert!(answer.get("result").is_none(), "{who}: {answer}");
        let answer = rpc(&tg.url, token, "approvals.list", json!({})).await;
        assert_eq!(
            listed(&answer["result"]),
            Vec::<String>::new(),
            "{who}: {answer}"
        );
    }

    // approval.status: the requester gets the result, another caller who learnt the id does not.
    let alice = mcp_as(&tg.url, ALICE).await;
    let own = call(&alice, "approval.status", json!({"approval_id": id})).await;
    assert_eq!(own.is_error, Some(false), "{}", text_of(&own));
    let sc = own.structured_content.clone().expect("structured");
    assert_eq!(sc["state"], "executed", "{sc}");
    let erin = mcp_as(&tg.url, ERIN).await;
    let other = call(&erin, "approval.status", json!({"approval_id": id})).await;
    let text = text_of(&other);
    assert_eq!(other.is_error, Some(true), "{text}");
    assert!(
        text.contains("not found") || text.contains("no approval"),
        "{text}"
    );
    assert!(!text.contains("restart") && !text.contains("web"), "{text}");
    // BOB is an approver too: he may see what he may decide.
    let (status, _) = get(&tg.url, BOB, &format!("/api/v1/approvals/{id}")).await;
    assert_eq!(status, 200);
}
