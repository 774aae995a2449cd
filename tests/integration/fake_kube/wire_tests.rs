//! What Go clients (client-go) send besides JSON: SelfSubjectAccessReviews in protobuf and
//! lists as server-side Tables. Request bytes are written out here from the Kubernetes
//! protobuf definitions (see `access_review`), not produced by the fake's own encoder.

use serde_json::Value;

use super::FakeKube;

const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const SSAR_URL: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";

/// A length-delimited field with a one-byte key and a one-byte length.
fn ld(key: u8, bytes: &[u8]) -> Vec<u8> {
    assert!(bytes.len() < 128, "test helper: one-byte lengths only");
    let mut out = vec![key, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// `k8s\0` + runtime.Unknown{typeMeta=1, raw=2, contentEncoding=3, contentType=4}.
fn envelope(spec: &[u8]) -> Vec<u8> {
    // TypeMeta{apiVersion=1, kind=2}
    let type_meta = [
        ld(0x0a, b"authorization.k8s.io/v1"),
        ld(0x12, b"SelfSubjectAccessReview"),
    ]
    .concat();
    // SelfSubjectAccessReview{metadata=1 (creationTimestamp=8: zero Time), spec=2, status=3}
    let object = [ld(0x0a, &ld(0x42, b"")), ld(0x12, spec), ld(0x1a, b"")].concat();
    [
        b"k8s\0".to_vec(),
        ld(0x0a, &type_meta),
        ld(0x12, &object),
        ld(0x1a, b""),
        ld(0x22, b""),
    ]
    .concat()
}

/// SelfSubjectAccessReviewSpec{resourceAttributes=1{namespace=1, verb=2, group=3, version=4,
/// resource=5, subresource=6, name=7}} — every string present, as gogo-protobuf writes them.
fn list_pods_everywhere() -> Vec<u8> {
    let attrs = [
        ld(0x0a, b""),
        ld(0x12, b"list"),
        ld(0x1a, b""),
        ld(0x22, b"v1"),
        ld(0x2a, b"pods"),
        ld(0x32, b""),
        ld(0x3a, b""),
    ]
    .concat();
    ld(0x0a, &attrs)
}

/// Top-level length-delimited fields of a message with one-byte keys and lengths (all the
/// messages in these answers are short) plus varint fields, as (key, payload).
fn walk(mut buf: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while let [key, rest @ ..] = buf {
        match key & 7 {
            0 => {
                let [v, rest @ ..] = rest else {
                    panic!("truncated varint")
                };
                assert!(v & 0x80 == 0, "one-byte varints only");
                out.push((*key, vec![*v]));
                buf = rest;
            }
            2 => {
                let [len, rest @ ..] = rest else {
                    panic!("truncated length")
                };
                assert!(len & 0x80 == 0, "one-byte lengths only");
                let (payload, rest) = rest.split_at(usize::from(*len));
                out.push((*key, payload.to_vec()));
                buf = rest;
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
    out
}

fn field(fields: &[(u8, Vec<u8>)], key: u8) -> Vec<u8> {
    fields
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("field with key {key:#x} missing"))
}

#[tokio::test]
async fn protobuf_self_subject_access_review_is_allowed_in_protobuf() {
    let fake = FakeKube::start().await;
    let resp = crate::harness::http()
        .post(format!("{}{SSAR_URL}", fake.url))
        .header("content-type", PROTOBUF)
        .header("accept", format!("{PROTOBUF}, */*"))
        .body(envelope(&list_pods_everywhere()))
        .send()
        .await
        .expect("post review");
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some(PROTOBUF)
    );
    let body = resp.bytes().await.expect("body");
    let unknown = body.strip_prefix(b"k8s\0").expect("k8s\\0 magic prefix");
    let envelope = walk(unknown);
    let type_meta = walk(&field(&envelope, 0x0a));
    assert_eq!(field(&type_meta, 0x0a), b"authorization.k8s.io/v1");
    assert_eq!(field(&type_meta, 0x12), b"SelfSubjectAccessReview");
    let object = walk(&field(&envelope, 0x12));
    assert_eq!(
        field(&object, 0x12),
        list_pods_everywhere(),
        "the spec comes back as sent"
    );
    let status = walk(&field(&object, 0x1a));
    assert_eq!(field(&status, 0x08), [1], "status.allowed = true");
    assert_eq!(field(&status, 0x20), [0], "status.denied = false");
    assert!(!field(&status, 0x12).is_empty(), "status.reason is set");
}

#[tokio::test]
async fn protobuf_review_without_attributes_is_invalid_and_garbage_is_a_bad_request() {
    let fake = FakeKube::start().await;
    let http = crate::harness::http();
    let post = |body: Vec<u8>| {
        http.post(format!("{}{SSAR_URL}", fake.url))
            .header("content-type", PROTOBUF)
            .header("accept", "application/json")
            .body(body)
            .send()
    };
    let resp = post(envelope(b"")).await.expect("post");
    assert_eq!(resp.status().as_u16(), 422);
    let status: Value = resp.json().await.expect("Status json");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "Invalid");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("exactly one of nonResourceAttributes or resourceAttributes"),
        "{status}"
    );
    let resp = post(b"not protobuf".to_vec()).await.expect("post");
    assert_eq!(resp.status().as_u16(), 400);
    let status: Value = resp.json().await.expect("Status json");
    assert_eq!(status["reason"], "BadRequest");
}

#[tokio::test]
async fn protobuf_review_answered_in_json_when_json_is_preferred() {
    let fake = FakeKube::start().await;
    let resp = crate::harness::http()
        .post(format!("{}{SSAR_URL}", fake.url))
        .header("content-type", PROTOBUF)
        .header("accept", "application/json")
        .body(envelope(&list_pods_everywhere()))
        .send()
        .await
        .expect("post review");
    assert_eq!(resp.status().as_u16(), 201);
    let review: Value = resp.json().await.expect("json review");
    assert_eq!(review["kind"], "SelfSubjectAccessReview");
    assert_eq!(review["status"]["allowed"], true);
    assert_eq!(review["spec"]["resourceAttributes"]["verb"], "list");
    assert_eq!(review["spec"]["resourceAttributes"]["resource"], "pods");
}

#[tokio::test]
async fn table_list_as_go_clients_ask_has_every_pod_of_every_namespace() {
    let fake = FakeKube::start().await;
    let namespaces = ["prod", "staging", "dev", "batch", "infra"];
    fake.seed_pods(200, &namespaces);
    let resp = crate::harness::http()
        .get(format!("{}/api/v1/pods", fake.url))
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        )
        .send()
        .await
        .expect("list");
    assert_eq!(resp.status().as_u16(), 200);
    let table: Value = resp.json().await.expect("table json");
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columnDefinitions")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        &columns[..5],
        ["Name", "Ready", "Status", "Restarts", "Age"]
    );
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 200);
    for ns in namespaces {
        let n = rows
            .iter()
            .filter(|r| r["object"]["metadata"]["namespace"] == ns)
            .count();
        assert_eq!(n, 40, "pods in {ns}");
    }
    assert_eq!(
        rows[0]["object"]["kind"], "PartialObjectMetadata",
        "includeObject defaults to Metadata"
    );
}

#[tokio::test]
async fn json_self_subject_access_review_is_allowed() {
    let fake = FakeKube::start().await;
    let resp = crate::harness::http()
        .post(format!("{}{SSAR_URL}", fake.url))
        .json(&serde_json::json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "spec": {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
        }))
        .send()
        .await
        .expect("post review");
    assert_eq!(resp.status().as_u16(), 201);
    let review: Value = resp.json().await.expect("json review");
    assert_eq!(review["status"]["allowed"], true);
    assert_eq!(review["spec"]["nonResourceAttributes"]["path"], "/healthz");
}
