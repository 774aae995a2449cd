//! Signing in to the approvals web page with the identity provider (`auth.mode: zitadel`):
//! authorization code + PKCE against a real OpenID provider (`tests/oidc/provider.mjs`), in
//! headless Chromium (`tests/web/oidc_login.mjs`), plus the flow's refusals over plain HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::harness;
use crate::mcp;

const CHROMIUM: &str = "/usr/bin/chromium";
const PROJECT: &str = "306810123456789099";
const ORG: &str = "306810000000000001";
/// Zitadel's audience scope; the provider turns it into `aud: PROJECT`.
const RESOURCE: &str = "urn:zitadel:iam:org:project:id:306810123456789099:aud";
/// The page's web app: a public client (PKCE, no secret).
const WEB_CLIENT: &str = "toolgate-web";
const CALLER: &str = "caller-bot";
/// A confidential web app: the code is redeemed with Basic auth (and PKCE).
const CONFIDENTIAL_WEB_CLIENT: &str = "toolgate-web-confidential";
const CONFIDENTIAL_WEB_SECRET: &str = "web-secret-0123456789";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A caller (client_credentials) and the page's sign-in client, whose users are approvers.
fn provider_config() -> Value {
    let roles_claim = format!("urn:zitadel:iam:org:project:{PROJECT}:roles");
    json!({
        "clients": [
            {"client_id": CALLER, "client_secret": "caller-bot-secret-0123456789",
             "claims": {(roles_claim.clone()): {"toolgate.caller": {ORG: "acme.example"}}}},
            {"client_id": WEB_CLIENT,
             "grant_types": ["authorization_code"],
             "redirect_uris": ["http://127.0.0.1/approvals/callback"],
             "token_endpoint_auth_method": "none",
             "claims": {(roles_claim.clone()): {"toolgate.approver": {ORG: "acme.example"}}}},
            {"client_id": CONFIDENTIAL_WEB_CLIENT, "client_secret": CONFIDENTIAL_WEB_SECRET,
             "grant_types": ["authorization_code"],
             "redirect_uris": ["http://127.0.0.1/approvals/callback"],
             "claims": {(roles_claim): {"toolgate.approver": {ORG: "acme.example"}}}}
        ]
    })
}

/// The shared test provider (tests/integration/zitadel.rs) with this file's clients.
struct Provider(crate::zitadel::Provider);

impl std::ops::Deref for Provider {
    type Target = crate::zitadel::Provider;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Provider {
    async fn start() -> Self {
        Provider(crate::zitadel::Provider::start_with(|_| provider_config()).await)
    }

    async fn caller_token(&self) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(CALLER, Some("caller-bot-secret-0123456789"))
            .form(&[("grant_type", "client_credentials"), ("resource", RESOURCE)])
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body: Value = response.json().await.expect("token JSON");
        assert!(status.is_success(), "caller token: {status} {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}

fn zitadel_auth(issuer: &str, web_client: Option<&str>) -> String {
    let mut yaml = format!(
        "auth:\n  mode: zitadel\n  issuer: {issuer}\n  project_id: \"{PROJECT}\"\n  audiences: [\"{PROJECT}\"]\n"
    );
    if let Some(id) = web_client {
        yaml.push_str(&format!("  web_client_id: {id}\n"));
    }
    yaml
}

/// A client that follows no redirects, so each step of the flow can be looked at.
fn no_redirects() -> reqwest::Client {
    toolgate::app::init_crypto();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `Set-Cookie` header for cookie `name`.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

fn assert_browser_prerequisites() {
    let playwright = repo().join("node_modules/playwright-core");
    assert!(
        Path::new(CHROMIUM).exists() && playwright.exists(),
        "headless browser test needs Debian's chromium and playwright-core: run `apt-get install -y chromium` and `npm ci` in {}",
        repo().display()
    );
}

/// A caller (client_credentials JWT) asks for a change that needs approval: its id.
async fn hold_a_restart(provider: &Provider, tg: &harness::Toolgate) -> String {
    let caller = provider.caller_token().await;
    let client = crate::gate::client_as(&tg.url, &caller).await;
    let held = mcp::call(
        &client,
        "k8s.rollout_restart",
        json!({"kind": "deployment", "name": "web", "namespace": "shop"}),
    )
    .await;
    client.cancel().await.ok();
    held.structured_content.clone().expect("structured content")["approval_id"]
        .as_str()
        .expect("approval id")
        .to_string()
}

/// `tests/web/oidc_login.mjs`: its JSON report.
async fn sign_in_and_approve(tg: &harness::Toolgate, id: &str, login: &str) -> Value {
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(repo().join("tests/web/oidc_login.mjs"))
            .args([tg.url.as_str(), id, login])
            .current_dir(repo())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser script finished within 120 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!("no JSON from the browser script\nstdout: {stdout}\nstderr: {stderr}")
        });
    eprintln!("browser report: {report:#}");
    assert_eq!(
        report["ok"], true,
        "browser run failed: {report:#}\nstderr: {stderr}"
    );
    report
}

#[tokio::test]
async fn an_approver_signs_in_with_the_identity_provider_and_approves_in_a_browser() {
    assert_browser_prerequisites();
    let provider = Provider::start().await;
    let fake = mcp::seeded_fake().await;
    let tg = harness::start(&fake, &zitadel_auth(&provider.issuer, Some(WEB_CLIENT))).await;
    let id = hold_a_restart(&provider, &tg).await;

    let report = sign_in_and_approve(&tg, &id, "jane.approver").await;
    assert_eq!(
        report["idp_origin"],
        json!(provider.issuer),
        "sent to the provider"
    );
    assert_eq!(
        report["prelogin_cookie"],
        json!({"httpOnly": true, "sameSite": "Lax", "path": "/approvals/callback"})
    );
    assert_eq!(
        report["landed_on"],
        json!(format!("/approvals/{id}")),
        "back where it started"
    );
    assert_eq!(report["signed_in_as"], json!("jane.approver"));
    assert_eq!(
        report["session_cookie"],
        json!({"httpOnly": true, "sameSite": "Lax", "secure": false, "path": "/approvals"}),
        "plain http here, so not Secure"
    );
    assert_eq!(
        report["prelogin_cookie_after"], false,
        "the pre-login cookie is cleared"
    );
    // The session lives as long as the sign-in's access token (the provider's default 600 s),
    // not the page's 8 hours.
    let left = report["session_seconds_left"].as_i64().unwrap_or(-1);
    assert!((1..=600).contains(&left), "session cookie lives {left} s");
    assert_eq!(report["state_before"], "pending");
    assert_eq!(report["final_state"], "executed", "{report:#}");
    let decisions = report["decisions"].as_str().unwrap_or_default();
    assert!(
        decisions.contains("jane.approver") && decisions.contains("approve"),
        "{decisions}"
    );
    assert_eq!(report["saw_callback"], true);
    assert_eq!(
        report["replayed_callback_status"], 400,
        "a callback is good once"
    );
}

#[tokio::test]
async fn a_confidential_web_app_redeems_the_code_with_its_secret() {
    assert_browser_prerequisites();
    let provider = Provider::start().await;
    let fake = mcp::seeded_fake().await;
    let auth = zitadel_auth(&provider.issuer, Some(CONFIDENTIAL_WEB_CLIENT))
        + &format!("  web_client_secret: {CONFIDENTIAL_WEB_SECRET}\n");
    let tg = harness::start(&fake, &auth).await;
    let id = hold_a_restart(&provider, &tg).await;
    let report = sign_in_and_approve(&tg, &id, "sam.approver").await;
    assert_eq!(report["signed_in_as"], json!("sam.approver"));
    assert_eq!(report["final_state"], "executed", "{report:#}");
}

#[tokio::test]
async fn the_sign_in_redirect_carries_pkce_and_a_wrong_state_is_refused() {
    let provider = Provider::start().await;
    let fake = mcp::seeded_fake().await;
    let tg = harness::start(&fake, &zitadel_auth(&provider.issuer, Some(WEB_CLIENT))).await;
    let http = no_redirects();

    // A form post without a session is not redirected on to the issuer (CSP form-action).
    let post = http
        .post(format!("{}/approvals/abc/approve", tg.url))
        .form(&[("reason", "late")])
        .send()
        .await
        .expect("POST approve");
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED);
    let body = post.text().await.expect("body");
    assert!(
        body.contains(r#"href="/approvals/login?next=/approvals/abc""#),
        "{body}"
    );

    // An unsigned visitor is sent to the login, which sends them to the issuer.
    let login = http
        .get(format!("{}/approvals/login?next=/approvals/abc", tg.url))
        .send()
        .await
        .expect("GET login");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let location = login.headers()[LOCATION]
        .to_str()
        .expect("ascii")
        .to_string();
    let to = reqwest::Url::parse(&location).expect("absolute URL");
    assert_eq!(
        format!("{}/auth", provider.issuer),
        to.as_str().split('?').next().unwrap_or_default()
    );
    let params: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(params["response_type"], "code");
    assert_eq!(params["client_id"], WEB_CLIENT);
    assert_eq!(
        params["redirect_uri"],
        format!("{}/approvals/callback", tg.url)
    );
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["code_challenge"].len(), 43, "base64url SHA-256");
    assert!(
        params["state"].len() >= 43 && params["nonce"].len() >= 43,
        "{params:?}"
    );
    assert_eq!(
        params["scope"],
        format!("openid profile {RESOURCE} urn:zitadel:iam:org:projects:roles")
    );
    let pre = set_cookie(&login, "toolgate_oidc").expect("pre-login cookie");
    assert!(
        pre.contains("HttpOnly")
            && pre.contains("SameSite=Lax")
            && pre.contains("Path=/approvals/callback"),
        "{pre}"
    );
    assert!(!pre.contains("Secure"), "plain http: {pre}");
    let pre_value = pre.split(';').next().unwrap_or_default().to_string();

    // A callback whose state is not this browser's is refused, and uses the sign-in up.
    let (status, session, body) = callback(
        &http,
        &tg.url,
        "code=stolen-code&state=not-the-state",
        Some(&pre_value),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!session);
    assert!(body.contains("state mismatch"), "{body}");
    assert!(
        !body.contains("stolen-code") && !body.contains(&params["state"]),
        "{body}"
    );
    let query = format!("code=stolen-code&state={}", params["state"]);
    let (status, _, _) = callback(&http, &tg.url, &query, Some(&pre_value)).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the refused sign-in is gone"
    );

    // Without the pre-login cookie, the right state is not enough either.
    let (state, _) = begin_sign_in(&http, &tg.url).await;
    let (status, _, _) = callback(&http, &tg.url, &format!("code=x&state={state}"), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An error from the issuer (the person declined) is shown, not a session.
    let (state, pre_value) = begin_sign_in(&http, &tg.url).await;
    let query = format!("error=access_denied&state={state}");
    let (status, session, body) = callback(&http, &tg.url, &query, Some(&pre_value)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!session);
    assert!(body.contains("access_denied"), "{body}");

    // An invented code is refused by the issuer's token endpoint.
    let (state, pre_value) = begin_sign_in(&http, &tg.url).await;
    let query = format!("code=invented-code&state={state}");
    let (status, session, body) = callback(&http, &tg.url, &query, Some(&pre_value)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!session);
    assert!(body.contains("invalid_grant"), "{body}");
    assert!(!body.contains("invented-code"), "{body}");
}

/// Starts a page sign-in: the `state` sent to the issuer and the pre-login cookie (`name=value`).
async fn begin_sign_in(http: &reqwest::Client, url: &str) -> (String, String) {
    let login = http
        .get(format!("{url}/approvals/login"))
        .send()
        .await
        .expect("GET login");
    let to = reqwest::Url::parse(login.headers()[LOCATION].to_str().expect("ascii")).expect("URL");
    let state = to
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state");
    let pre = set_cookie(&login, "toolgate_oidc").expect("pre-login cookie");
    let pre_value = pre.split(';').next().unwrap_or_default().to_string();
    (state, pre_value)
}

/// The sign-in callback with `query` (and the pre-login cookie when given): its status, whether
/// it set a session cookie, and its body.
async fn callback(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    pre_login: Option<&str>,
) -> (StatusCode, bool, String) {
    let mut req = http.get(format!("{url}/approvals/callback?{query}"));
    if let Some(cookie) = pre_login {
        req = req.header(COOKIE, cookie);
    }
    let res = req.send().await.expect("callback");
    let status = res.status();
    let session = set_cookie(&res, "toolgate_session").is_some();
    (status, session, res.text().await.expect("body"))
}

#[tokio::test]
async fn without_a_web_client_the_page_says_what_is_missing_and_the_api_still_works() {
    let provider = Provider::start().await;
    let fake = mcp::seeded_fake().await;
    let tg = harness::start(&fake, &zitadel_auth(&provider.issuer, None)).await;
    let login = no_redirects()
        .get(format!("{}/approvals/login", tg.url))
        .send()
        .await
        .expect("GET login");
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = login.text().await.expect("body");
    assert!(
        body.contains("page login needs auth.web_client_id"),
        "{body}"
    );
    assert!(
        !body.contains("name=\"token\""),
        "no token form in zitadel mode: {body}"
    );

    let caller = provider.caller_token().await;
    let client = crate::gate::client_as(&tg.url, &caller).await;
    let list = mcp::call(
        &client,
        "k8s.list_resources",
        json!({"kind": "pods", "namespace": "shop"}),
    )
    .await;
    assert_ne!(list.is_error, Some(true), "API callers still work");
    client.cancel().await.ok();
}
