//! The approvals web page: a person approves in headless Chromium (Playwright,
//! `tests/web/approve.mjs`), and the page's login, CSRF, error display and escaping are checked
//! over plain HTTP.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::approvals_api::{api, real_patches, request_restart};
use crate::harness::{self, ALICE, BOB, CAROL};
use crate::mcp;

const CHROMIUM: &str = "/usr/bin/chromium";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn a_person_approves_in_a_real_browser() {
    let playwright = repo().join("node_modules/playwright-core");
    assert!(
        Path::new(CHROMIUM).exists() && playwright.exists(),
        "headless browser test needs Debian's chromium and playwright-core: run `apt-get install -y chromium` and `npm ci` in {}",
        repo().display()
    );
    let fake = mcp::seeded_fake().await;
    let tg = harness::start_with_tokens(&fake, "").await;
    let id = request_restart(&tg.url, ALICE).await;
    let (_, before) = api(
        &tg,
        "GET",
        &format!("/api/v1/approvals/{id}"),
        Some(BOB),
        None,
    )
    .await;

    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(repo().join("tests/web/approve.mjs"))
            .args([tg.url.as_str(), BOB, id.as_str()])
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

    assert_eq!(report["login_redirect"], "/approvals/login", "{report:#}");
    assert_eq!(report["signed_in_as"], "Bob");
    assert_eq!(
        report["session_cookie"],
        json!({"httpOnly": true, "sameSite": "Lax"})
    );
    assert_eq!(report["listed"], true);
    assert_eq!(report["state_before"], "pending");
    assert_eq!(report["preview_visible"], true);
    assert_eq!(
        report["preview_summary"], before["preview"]["summary"],
        "{report:#}"
    );
    let has_diff = before["preview"]["diff"]
        .as_str()
        .is_some_and(|d| !d.trim().is_empty());
    assert_eq!(
        report["diff_present"], has_diff,
        "the diff is shown iff the preview has one: {report:#}"
    );
    if has_diff {
        assert_eq!(report["diff_visible"], true);
        assert!(
            report["diff_added_lines"].as_u64().unwrap_or(0) > 0,
            "{report:#}"
        );
    }
    assert_eq!(
        report["csrf_missing_status"], 403,
        "POST without the CSRF token is refused"
    );
    assert_eq!(
        report["csrf_wrong_status"], 403,
        "POST with a wrong CSRF token is refused"
    );
    assert_eq!(report["state_after_refused"], "pending");
    assert_eq!(report["url_after"], format!("/approvals/{id}"));
    assert_eq!(report["final_state"], "executed", "{report:#}");
    assert_eq!(report["result_visible"], true);
    let decisions = report["decisions"].as_str().unwrap_or("");
    assert!(
        decisions.contains("Bob") && decisions.contains("approved from the browser"),
        "{decisions}"
    );
    assert!(
        report["audit"].as_str().unwrap_or("").contains("executed"),
        "{report:#}"
    );

    let (status, view) = api(
        &tg,
        "GET",
        &format!("/api/v1/approvals/{id}"),
        Some(CAROL),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["state"], "executed", "{view}");
    assert_eq!(view["decisions"][0]["reason"], "approved from the browser");
    assert_eq!(real_patches(&fake), 1, "the call ran once");
}

/// A browser-less client of the page: no redirects followed, cookies kept by hand.
struct PageClient {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl PageClient {
    fn new(base: &str) -> Self {
        toolgate::app::init_crypto();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            base: base.to_string(),
            http,
            cookies: Vec::new(),
        }
    }

    fn keep_cookies(&mut self, res: &reqwest::Response) {
        for c in res.headers().get_all(SET_COOKIE) {
            let Some((pair, _)) = c.to_str().ok().and_then(|c| c.split_once(';')) else {
                continue;
            };
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            self.cookies.retain(|(n, _)| n != name);
            if !value.is_empty() {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn get(&mut self, path: &str) -> (StatusCode, String, Option<String>) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.finish(res).await
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("POST");
        self.finish(res).await
    }

    async fn finish(&mut self, res: reqwest::Response) -> (StatusCode, String, Option<String>) {
        self.keep_cookies(&res);
        let status = res.status();
        let location = res
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, res.text().await.unwrap_or_default(), location)
    }

    /// Sign in with `token`; returns the CSRF token of the session's forms.
    async fn login(&mut self, token: &str) -> String {
        let (_, html, _) = self.get("/approvals/login").await;
        let login_csrf = hidden(&html, "csrf");
        let (status, _, location) = self
            .post(
                "/approvals/login",
                &[
                    ("token", token),
                    ("csrf", &login_csrf),
                    ("next", "/approvals"),
                ],
            )
            .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location.as_deref(), Some("/approvals"));
        let (status, html, _) = self.get("/approvals").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        hidden(&html, "csrf")
    }
}

/// The value of the first hidden input `name` in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"))
        + marker.len();
    html[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn the_page_needs_a_session_checks_csrf_and_shows_refusals() {
    let fake = mcp::seeded_fake().await;
    let tg = harness::start_with_tokens(&fake, "").await;
    let id = request_restart(&tg.url, ALICE).await;
    let detail = format!("/approvals/{id}");

    // Without a session every page leads to the login, and comes back afterwards.
    let mut anon = PageClient::new(&tg.url);
    let (status, _, location) = anon.get(&detail).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, Some(format!("/approvals/login?next={detail}")));
    let (status, _, location) = anon
        .post(&format!("{detail}/approve"), &[("reason", "x")])
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a POST without a session does nothing"
    );
    assert_eq!(location, Some(format!("/approvals/login?next={detail}")));

    // Login: the form's own token is needed, a wrong access token is shown on the page.
    let (status, html, _) = anon
        .post("/approvals/login", &[("token", BOB), ("csrf", "forged")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{html}");
    let (_, html, _) = anon.get("/approvals/login").await;
    let login_csrf = hidden(&html, "csrf");
    let (status, html, _) = anon
        .post(
            "/approvals/login",
            &[("token", "wrong-token-0123456789"), ("csrf", &login_csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("That token is not valid."), "{html}");
    let (_, html, _) = anon.get("/approvals/login").await;
    let login_csrf = hidden(&html, "csrf");
    let (status, html, _) = anon
        .post("/approvals/login", &[("token", " "), ("csrf", &login_csrf)])
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an empty token is not the anonymous caller"
    );
    assert!(html.contains("Enter your access token."), "{html}");

    // Alice (caller only) signs in; her approval is refused on the page, reason kept.
    let mut alice = PageClient::new(&tg.url);
    let csrf = alice.login(ALICE).await;
    let session = alice
        .cookies
        .iter()
        .find(|(n, _)| n == "toolgate_session")
        .map(|(_, v)| v.clone());
    assert!(
        session.is_some_and(|s| s.len() >= 43),
        "a 256-bit session id"
    );
    let (status, html, _) = alice
        .post(
            &format!("{detail}/approve"),
            &[("csrf", &csrf), ("reason", "mine <b>now</b>")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        html.contains(r#"data-code="forbidden""#) && html.contains("toolgate.approver"),
        "{html}"
    );
    assert!(
        html.contains("mine &lt;b&gt;now&lt;/b&gt;"),
        "the reason is kept, escaped: {html}"
    );
    assert!(!html.contains("<b>now</b>"));
    let (status, html, _) = alice
        .post(&format!("{detail}/approve"), &[("reason", "no csrf")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(html.contains("CSRF"), "{html}");

    // Carol denies with a reason full of markup: shown escaped, and the request never runs.
    let mut carol = PageClient::new(&tg.url);
    let csrf = carol.login(CAROL).await;
    let (status, _, location) = carol
        .post(
            &format!("{detail}/deny"),
            &[("csrf", &csrf), ("reason", "<script>alert(1)</script>")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_deref(), Some(detail.as_str()));
    let (status, html, _) = carol.get(&detail).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<td id="state">denied</td>"#), "{html}");
    assert!(html.contains("You denied this request"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !html.contains("<script>"),
        "{html}"
    );
    let (status, html, _) = carol
        .post(&format!("{detail}/approve"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(html.contains(r#"data-code="not_pending""#), "{html}");
    assert_eq!(real_patches(&fake), 0);

    // Sign out ends the session server-side.
    let (status, _, _) = carol.post("/approvals/logout", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, location) = carol.get("/approvals").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.unwrap_or_default().starts_with("/approvals/login"));
}

#[tokio::test]
async fn pages_forbid_framing_and_scripts() {
    let fake = mcp::seeded_fake().await;
    let tg = harness::start_with_tokens(&fake, "").await;
    let res = harness::http()
        .get(format!("{}/approvals/login", tg.url))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    let csp = h
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(
        h.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    assert_eq!(
        h.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let cookie = h
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
}
