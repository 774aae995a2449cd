//! The approvals web page: `/approvals` (list), `/approvals/{id}` (detail with the preview
//! diff, decisions, result and audit trail), approve/deny/cancel forms, and a token login with
//! an in-memory server-side session (in `auth.mode: zitadel`, the login is instead the OIDC
//! authorization-code flow with PKCE against the issuer, whose protocol lives in
//! `auth::page_login`). Server-rendered HTML (maud escapes every value), no
//! JavaScript. It translates forms to the dispatcher's approval methods and must not decide
//! anything itself: roles, self-approval, reasons and expiry are the core's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::auth::page_login::{
    CallbackQuery, MAX_PENDING_LOGINS, OIDC_LOGIN_TTL, OidcFailure, OidcLogins, random_token,
    same_secret,
};
use crate::config::{AuthConfig, ZitadelSettings};
use crate::core::approval::{ApprovalError, ApprovalView, rfc3339};
use crate::core::principal::Principal;
use crate::core::{ApprovalState, AuditRecord};
use crate::transport::http::AppState;

/// Session cookie (server-side session id) and the login form's double-submit cookie.
const SESSION_COOKIE: &str = "toolgate_session";
const LOGIN_COOKIE: &str = "toolgate_login";
/// How long a login lasts.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; the oldest go first.
const MAX_SESSIONS: usize = 10_000;
/// Requests shown on the list page.
const LIST_PENDING: i64 = 200;
const LIST_RECENT: i64 = 50;

/// The page routes (absolute paths) with their session store.
pub fn routes() -> Router<AppState> {
    routes_with(Arc::new(Sessions::new(SESSION_TTL, MAX_SESSIONS)))
}

fn routes_with(sessions: Arc<Sessions>) -> Router<AppState> {
    Router::new()
        .route("/approvals", get(index))
        .route("/approvals/login", get(login_form).post(login))
        .route("/approvals/callback", get(oidc_callback))
        .route("/approvals/logout", post(logout))
        .route("/approvals/{id}", get(detail))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/deny", post(deny))
        .route("/approvals/{id}/cancel", post(cancel))
        .layer(Extension(sessions))
        .layer(Extension(Arc::new(OidcLogins::new(
            OIDC_LOGIN_TTL,
            MAX_PENDING_LOGINS,
        ))))
        .layer(axum::middleware::map_response(page_headers))
}

/// No framing, no scripts, forms only to this origin, nothing cached.
async fn page_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

// ---- sessions ----

struct Session {
    principal: Principal,
    csrf: String,
    created: Instant,
    /// How long it lives: the page's limit, or less when the sign-in token expires sooner.
    ttl: Duration,
    /// Creation order, for evicting the oldest.
    seq: u64,
    /// One-shot message for the next page ("approved; the call executed").
    notice: Option<String>,
}

/// Server-side sessions, keyed by the SHA-256 of the cookie value (so lookups do not time
/// the secret itself and a memory dump holds no usable cookie).
pub struct Sessions {
    inner: Mutex<SessionMap>,
    ttl: Duration,
    max: usize,
}

#[derive(Default)]
struct SessionMap {
    by_key: HashMap<[u8; 32], Session>,
    next_seq: u64,
}

fn session_key(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            inner: Mutex::new(SessionMap::default()),
            ttl,
            max: max.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session for `principal`, ending when its sign-in token expires (`token_lifetime`)
    /// if that is sooner than the page's limit: its cookie value and lifetime.
    fn create(
        &self,
        principal: Principal,
        token_lifetime: Option<Duration>,
    ) -> Result<(String, Duration), getrandom::Error> {
        let id = random_token()?;
        let csrf = random_token()?;
        let mut guard = self.lock();
        let ttl = token_lifetime.map_or(self.ttl, |t| t.min(self.ttl));
        let seq = guard.next_seq;
        guard.next_seq += 1;
        let map = &mut guard.by_key;
        map.retain(|_, s| s.created.elapsed() < s.ttl);
        while map.len() >= self.max {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.seq).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            session_key(&id),
            Session {
                principal,
                csrf,
                created: Instant::now(),
                ttl,
                seq,
                notice: None,
            },
        );
        Ok((id, ttl))
    }

    /// The principal and CSRF token of a live session; also takes its one-shot notice.
    fn get(&self, id: &str) -> Option<(Principal, String, Option<String>)> {
        let key = session_key(id);
        let mut guard = self.lock();
        let map = &mut guard.by_key;
        let expired = map.get(&key).is_some_and(|s| s.created.elapsed() >= s.ttl);
        if expired {
            map.remove(&key);
            return None;
        }
        let s = map.get_mut(&key)?;
        Some((s.principal.clone(), s.csrf.clone(), s.notice.take()))
    }

    fn set_notice(&self, id: &str, notice: String) {
        if let Some(s) = self.lock().by_key.get_mut(&session_key(id)) {
            s.notice = Some(notice);
        }
    }

    fn remove(&self, id: &str) {
        self.lock().by_key.remove(&session_key(id));
    }
}

/// Values of cookie `name` in the request (every `Cookie` header).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    secure: bool,
) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

fn secure_cookies(state: &AppState) -> bool {
    state.config.public_url.starts_with("https://")
}

/// A signed-in person on a page request. Without a live session the request is redirected
/// to the login page (which comes back here afterwards).
struct PageUser {
    session: String,
    principal: Principal,
    csrf: String,
    notice: Option<String>,
    sessions: Arc<Sessions>,
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(sessions) = parts.extensions.get::<Arc<Sessions>>().cloned() else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        if let Some(id) = cookie(&parts.headers, SESSION_COOKIE)
            && let Some((principal, csrf, notice)) = sessions.get(id)
        {
            return Ok(PageUser {
                session: id.to_string(),
                principal,
                csrf,
                notice,
                sessions,
            });
        }
        let path = parts.uri.path();
        let back = if parts.method == Method::GET {
            path
        } else {
            ["/approve", "/deny", "/cancel"]
                .iter()
                .find_map(|s| path.strip_suffix(s))
                .unwrap_or("/approvals")
        };
        let login = format!("/approvals/login?next={}", safe_next(back));
        if parts.method != Method::GET && matches!(state.config.auth, AuthConfig::Zitadel(_)) {
            // A form post must not be redirected on to the issuer (the page's CSP allows forms
            // only to this origin, redirects included): ask for a click instead.
            let body = html! {
                h1 { "Your session has ended" }
                p.error role="alert" { "Sign in again, then repeat what you were doing." }
                p { a #sign-in href=(login) { "Sign in" } }
            };
            return Err(page(
                StatusCode::UNAUTHORIZED,
                layout("Sign in", None, body),
            ));
        }
        Err(redirect(&login))
    }
}

/// Where login may send the browser back to: a path of this page, nothing else.
fn safe_next(next: &str) -> &str {
    let ok = next.starts_with("/approvals")
        && !next.contains("//")
        && !next.contains("..")
        && next
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok && !next.starts_with("/approvals/log") {
        next
    } else {
        "/approvals"
    }
}

/// Percent-encode one path segment.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn detail_path(id: &str) -> String {
    format!("/approvals/{}", segment(id))
}

/// 303 See Other to a path this module built (always a valid header value).
fn redirect(location: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

fn page(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

// ---- login / logout ----

#[derive(Debug, Default, Deserialize)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

#[derive(Debug, Default, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

async fn login_form(
    State(state): State<AppState>,
    Extension(oidc): Extension<Arc<OidcLogins>>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let next = query.map(|Query(q)| q.next).unwrap_or_default();
    if let AuthConfig::Zitadel(z) = &state.config.auth {
        return oidc_start(&state, &oidc, z, safe_next(&next)).await;
    }
    login_page(&state, StatusCode::OK, safe_next(&next), None)
}

/// The login form with a fresh double-submit token (cookie + hidden field).
fn login_page(state: &AppState, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let Ok(csrf) = random_token() else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot sign in",
            "no randomness available for a session token",
            None,
        );
    };
    let body = html! {
        h1 { "Sign in to approve" }
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form.card method="post" action="/approvals/login" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="next" value=(next);
            label for="token" { "Access token" }
            input #token type="password" name="token" autocomplete="current-password" autofocus;
            p.hint { "The bearer token from your toolgate tokens file. It is checked once; the page then keeps a session." }
            button type="submit" { "Sign in" }
        }
    };
    let mut res = page(status, layout("Sign in", None, body));
    if let Some(c) = set_cookie(
        LOGIN_COOKIE,
        &csrf,
        "/approvals/login",
        3600,
        secure_cookies(state),
    ) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

async fn login(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let next = safe_next(&form.next).to_string();
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(expected, &form.csrf) {
        return login_page(
            &state,
            StatusCode::FORBIDDEN,
            &next,
            Some("The sign-in form expired or did not come from this page; try again."),
        );
    }
    let token = form.token.trim();
    if token.is_empty() {
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("Enter your access token."),
        );
    }
    let mut auth_headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            Some("That token is not valid."),
        );
    };
    auth_headers.insert(header::AUTHORIZATION, value);
    let principal = match state.auth.authenticate(&auth_headers).await {
        Ok(p) => p,
        Err(_) => {
            return login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                &next,
                Some("That token is not valid."),
            );
        }
    };
    // A pasted JWT ends the session when it expires; a static token gets the page's limit.
    let lifetime = crate::auth::page_login::token_lifetime(token, None);
    let Ok((id, ttl)) = sessions.create(principal.clone(), lifetime) else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Cannot sign in",
            "no randomness available for a session token",
            None,
        );
    };
    tracing::info!(principal = %principal.sub, "approvals page sign-in");
    let secure = secure_cookies(&state);
    let mut res = redirect(&next);
    let cookies = [
        set_cookie(SESSION_COOKIE, &id, "/approvals", ttl.as_secs(), secure),
        set_cookie(LOGIN_COOKIE, "", "/approvals/login", 0, secure),
    ];
    for c in cookies.into_iter().flatten() {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

// ---- OIDC sign-in (auth.mode zitadel): the protocol is `auth::page_login`'s ----

/// The pre-login cookie: binds a callback to the browser that started the sign-in.
const OIDC_COOKIE: &str = "toolgate_oidc";
const OIDC_COOKIE_PATH: &str = "/approvals/callback";

fn callback_url(state: &AppState) -> String {
    format!(
        "{}/approvals/callback",
        state.config.public_url.trim_end_matches('/')
    )
}

fn sign_in_failed(failure: OidcFailure) -> Response {
    let OidcFailure(status, message) = failure;
    let body = html! {
        h1 { "Cannot sign in" }
        p.error role="alert" { (message) }
        p { a href="/approvals/login" { "Sign in again" } }
    };
    page(status, layout("Cannot sign in", None, body))
}

/// `GET /approvals/login` in zitadel mode: send the browser to the issuer.
async fn oidc_start(
    state: &AppState,
    oidc: &OidcLogins,
    z: &ZitadelSettings,
    next: &str,
) -> Response {
    let started = match oidc.authorize(z, &callback_url(state), next).await {
        Ok(s) => s,
        Err(failure) => return sign_in_failed(failure),
    };
    let Ok(location) = HeaderValue::from_str(&started.location) else {
        return sign_in_failed(OidcFailure(
            StatusCode::SERVICE_UNAVAILABLE,
            "The identity provider could not be reached (bad authorization_endpoint); try again shortly.".into(),
        ));
    };
    let mut res = StatusCode::SEE_OTHER.into_response();
    res.headers_mut().insert(header::LOCATION, location);
    if let Some(c) = set_cookie(
        OIDC_COOKIE,
        &started.cookie,
        OIDC_COOKIE_PATH,
        OIDC_LOGIN_TTL.as_secs(),
        secure_cookies(state),
    ) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// `GET /approvals/callback?code&state`: finish the sign-in the browser started here.
async fn oidc_callback(
    State(state): State<AppState>,
    Extension(sessions): Extension<Arc<Sessions>>,
    Extension(oidc): Extension<Arc<OidcLogins>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, QueryRejection>,
) -> Response {
    let secure = secure_cookies(&state);
    let clear = set_cookie(OIDC_COOKIE, "", OIDC_COOKIE_PATH, 0, secure);
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let mut res = match oidc_finish(&state, &sessions, &oidc, &headers, query).await {
        Ok(((session, ttl), next)) => {
            let mut res = redirect(&next);
            if let Some(c) = set_cookie(
                SESSION_COOKIE,
                &session,
                "/approvals",
                ttl.as_secs(),
                secure,
            ) {
                res.headers_mut().append(header::SET_COOKIE, c);
            }
            res
        }
        Err(failure) => {
            tracing::warn!(reason = %failure.1, "approvals page: OIDC sign-in refused");
            sign_in_failed(failure)
        }
    };
    if let Some(c) = clear {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

/// Finishes the sign-in and opens a session: its cookie value and `next`.
async fn oidc_finish(
    state: &AppState,
    sessions: &Sessions,
    oidc: &OidcLogins,
    headers: &HeaderMap,
    query: CallbackQuery,
) -> Result<((String, Duration), String), OidcFailure> {
    let AuthConfig::Zitadel(z) = &state.config.auth else {
        return Err(OidcFailure(
            StatusCode::NOT_FOUND,
            "Signing in through an identity provider is not configured here.".into(),
        ));
    };
    let (principal, next, lifetime) = oidc
        .finish(
            z,
            state.auth.as_ref(),
            &callback_url(state),
            cookie(headers, OIDC_COOKIE),
            query,
        )
        .await?;
    let session = sessions.create(principal.clone(), lifetime).map_err(|_| {
        OidcFailure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no randomness available for a session token".into(),
        )
    })?;
    tracing::info!(principal = %principal.sub, "approvals page sign-in (OIDC)");
    Ok((session, safe_next(&next).to_string()))
}

#[derive(Debug, Default, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(state): State<AppState>,
    user: PageUser,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !same_secret(&user.csrf, &form.csrf) {
        return csrf_refused(&user);
    }
    user.sessions.remove(&user.session);
    let mut res = redirect("/approvals/login");
    if let Some(c) = set_cookie(SESSION_COOKIE, "", "/approvals", 0, secure_cookies(&state)) {
        res.headers_mut().append(header::SET_COOKIE, c);
    }
    res
}

fn csrf_refused(user: &PageUser) -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form is stale or was not sent by this page (CSRF check failed). Reload the page and try again.",
        Some(user),
    )
}

// ---- pages ----

async fn index(State(state): State<AppState>, user: PageUser) -> Response {
    let pending = state
        .dispatcher
        .approvals_for(&user.principal, Some(ApprovalState::Pending), LIST_PENDING)
        .await;
    let recent = state
        .dispatcher
        .approvals_for(&user.principal, None, LIST_RECENT + LIST_PENDING)
        .await;
    let (pending, recent) = match (pending, recent) {
        (Ok(p), Ok(r)) => (p, r),
        (Err(e), _) | (_, Err(e)) => {
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot list requests",
                &e.to_string(),
                Some(&user),
            );
        }
    };
    let recent: Vec<ApprovalView> = recent
        .into_iter()
        .filter(|v| v.state != ApprovalState::Pending)
        .take(LIST_RECENT as usize)
        .collect();
    let body = html! {
        @if let Some(notice) = &user.notice { p.notice role="status" { (notice) } }
        h1 { "Pending approvals" }
        @if pending.is_empty() {
            p.empty { "Nothing is waiting for a decision." }
        } @else {
            (approval_table(&pending, true))
        }
        h2 { "Recently decided" }
        @if recent.is_empty() {
            p.empty { "No decided requests yet." }
        } @else {
            (approval_table(&recent, false))
        }
    };
    page(StatusCode::OK, layout("Approvals", Some(&user), body))
}

fn approval_table(views: &[ApprovalView], pending: bool) -> Markup {
    html! {
        table.list {
            thead { tr {
                th { "Request" } th { "State" } th { "Tool" } th { "Target" } th { "Requester" }
                th { "Approvals" } th { (if pending { "Expires" } else { "Created" }) } th { "Preview" }
            } }
            tbody {
                @for v in views {
                    tr {
                        td { a href=(detail_path(&v.id)) title=(v.id) { (short_id(&v.id)) } }
                        td { (state_badge(v.state)) }
                        td { code { (v.tool) } }
                        td { (target_text(&v.target)) }
                        td { (v.requester.name) }
                        td { (v.approvals) " / " (v.required_approvals) }
                        td { (if pending { &v.expires_at } else { &v.created_at }) }
                        td { (v.preview.get("summary").and_then(Value::as_str).unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// What the detail page shows besides the request itself.
#[derive(Default)]
struct DetailExtras<'a> {
    error: Option<&'a ApprovalError>,
    reason: &'a str,
}

async fn detail(State(state): State<AppState>, user: PageUser, Path(id): Path<String>) -> Response {
    render_detail(&state, &user, &id, DetailExtras::default()).await
}

async fn render_detail(
    state: &AppState,
    user: &PageUser,
    id: &str,
    extras: DetailExtras<'_>,
) -> Response {
    let view = match state.dispatcher.approval_for(&user.principal, id).await {
        Ok(v) => v,
        Err(e) => return approval_error_page(&e, user),
    };
    let audit = match state.dispatcher.approval_audit(id).await {
        Ok(a) => a,
        Err(e) => return approval_error_page(&e, user),
    };
    let status = extras
        .error
        .and_then(|e| StatusCode::from_u16(e.http_status()).ok())
        .unwrap_or(StatusCode::OK);
    page(
        status,
        layout(
            &format!("{} — approval", view.tool),
            Some(user),
            detail_body(&view, &audit, user, &extras),
        ),
    )
}

fn approval_error_page(e: &ApprovalError, user: &PageUser) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_page(status, "Approval request", &e.to_string(), Some(user))
}

fn detail_body(
    v: &ApprovalView,
    audit: &[AuditRecord],
    user: &PageUser,
    extras: &DetailExtras<'_>,
) -> Markup {
    let path = detail_path(&v.id);
    let summary = v.preview.get("summary").and_then(Value::as_str);
    let diff = v
        .preview
        .get("diff")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty());
    let preview_detail = v.preview.get("detail").filter(|d| !d.is_null());
    let is_requester = user.principal.sub == v.requester.sub;
    html! {
        p { a href="/approvals" { "← all approvals" } }
        @if let Some(notice) = &user.notice { p.notice role="status" { (notice) } }
        @if let Some(error) = extras.error {
            p.error role="alert" data-code=(error.code()) { (error.to_string()) }
        }
        h1 { code { (v.tool) } " " (state_badge(v.state)) }
        @if let Some(reason) = &v.state_reason { p.state-reason { (reason) } }
        table.facts {
            tr { th { "Request" } td { code #approval-id { (v.id) } } }
            tr { th { "State" } td #state { (v.state.as_str()) } }
            tr { th { "Risk" } td { (v.risk) } }
            tr { th { "Target" } td { (target_text(&v.target)) } }
            tr { th { "Requester" } td { (v.requester.name) " (" (v.requester.sub) ") via " (v.requester.transport) } }
            tr { th { "Created" } td { (v.created_at) } }
            tr { th { "Expires" } td { (v.expires_at) } }
            tr { th { "Approvals" } td { (v.approvals) " of " (v.required_approvals) " needed, by " (v.approver_roles.join(" or ")) } }
            tr { th { "Reason required" } td { (if v.reason_required { "yes" } else { "no" }) } }
            tr { th { "Policy rule" } td { code { (v.rule) } } }
            tr { th { "Arguments SHA-256" } td { code { (v.args_sha256) } } }
        }
        h2 { "Preview" }
        section #preview {
            p.summary { (summary.unwrap_or("(no preview summary)")) }
            @if let Some(diff) = diff {
                (diff_view(diff))
            }
            @if let Some(version) = v.preview.get("target_version").and_then(Value::as_str) {
                p.hint { "Target resourceVersion at preview: " code { (version) } "; the call is refused if it changed." }
            }
            @if let Some(d) = preview_detail {
                details { summary { "Preview detail" } pre.json { (pretty(d)) } }
            }
        }
        h2 { "Arguments" }
        pre.json #args { (pretty(&v.args)) }
        @if v.state == ApprovalState::Pending {
            h2 { "Decide" }
            @if is_requester {
                p.hint { "You requested this call; another person must approve it." }
            }
            form.card.decide method="post" action=(format!("{path}/approve")) {
                input type="hidden" name="csrf" value=(user.csrf);
                label for="reason" { "Reason" @if v.reason_required { " (required)" } }
                textarea #reason name="reason" rows="2" { (extras.reason) }
                div.buttons {
                    button.approve type="submit" formaction=(format!("{path}/approve")) { "Approve" }
                    button.deny type="submit" formaction=(format!("{path}/deny")) { "Deny" }
                }
            }
            @if is_requester {
                form.cancel method="post" action=(format!("{path}/cancel")) {
                    input type="hidden" name="csrf" value=(user.csrf);
                    button type="submit" { "Cancel my request" }
                }
            }
        }
        h2 { "Decisions" }
        @if v.decisions.is_empty() {
            p.empty { "No decisions yet." }
        } @else {
            table.list #decisions {
                thead { tr { th { "When" } th { "Who" } th { "Decision" } th { "Reason" } } }
                tbody {
                    @for d in &v.decisions {
                        tr {
                            td.when { (rfc3339(d.at_ms)) }
                            td { (d.approver_name) " (" (d.approver_sub) ")" }
                            td { (d.decision) }
                            td { (d.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if let Some(result) = &v.result {
            h2 { "Result" }
            pre.json #result { (pretty(result)) }
        }
        h2 { "Audit trail" }
        table.list #audit {
            thead { tr { th { "#" } th { "When" } th { "Who" } th { "Via" } th { "Event" } th { "Summary" } } }
            tbody {
                @for r in audit {
                    tr {
                        td { (r.seq) }
                        td.when { (rfc3339(r.entry.at_ms)) }
                        td { (r.entry.principal_name) }
                        td { (r.entry.transport) }
                        td { (r.entry.decision) }
                        td { (r.entry.result_summary.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

// ---- decisions ----

#[derive(Debug, Default, Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

#[derive(Clone, Copy)]
enum Action {
    Approve,
    Deny,
}

async fn approve(
    state: State<AppState>,
    user: PageUser,
    id: Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    decide(state, user, id, form, Action::Approve).await
}

async fn deny(
    state: State<AppState>,
    user: PageUser,
    id: Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
) -> Response {
    decide(state, user, id, form, Action::Deny).await
}

async fn decide(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    form: Result<Form<DecisionForm>, FormRejection>,
    action: Action,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !same_secret(&user.csrf, &form.csrf) {
        return csrf_refused(&user);
    }
    let reason = Some(form.reason.trim().to_string()).filter(|r| !r.is_empty());
    let result = match action {
        Action::Approve => state.dispatcher.approve(&user.principal, &id, reason).await,
        Action::Deny => state.dispatcher.deny(&user.principal, &id, reason).await,
    };
    match result {
        Ok(view) => {
            let notice = match (action, view.state) {
                (Action::Deny, _) => "You denied this request; it will not run.".to_string(),
                (Action::Approve, ApprovalState::Executed) => {
                    "You approved this request; the call ran and its result is below.".to_string()
                }
                (Action::Approve, ApprovalState::Failed) => {
                    "You approved this request; the call ran and failed (see the result below)."
                        .to_string()
                }
                (Action::Approve, ApprovalState::Pending) => format!(
                    "You approved this request; {} of {} approvals so far.",
                    view.approvals, view.required_approvals
                ),
                (Action::Approve, s) => format!("You approved this request; it is now {s}."),
            };
            user.sessions.set_notice(&user.session, notice);
            redirect(&detail_path(&id))
        }
        Err(e) => {
            render_detail(
                &state,
                &user,
                &id,
                DetailExtras {
                    error: Some(&e),
                    reason: &form.reason,
                },
            )
            .await
        }
    }
}

async fn cancel(
    State(state): State<AppState>,
    user: PageUser,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if !same_secret(&user.csrf, &form.csrf) {
        return csrf_refused(&user);
    }
    match state.dispatcher.cancel(&user.principal, &id).await {
        Ok(_) => {
            user.sessions.set_notice(
                &user.session,
                "You cancelled this request; it will not run.".into(),
            );
            redirect(&detail_path(&id))
        }
        Err(e) => {
            render_detail(
                &state,
                &user,
                &id,
                DetailExtras {
                    error: Some(&e),
                    reason: "",
                },
            )
            .await
        }
    }
}

// ---- pieces ----

fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// "Deployment shop/web on cluster fake" from `{cluster?, namespace?, kind?, name?}`.
pub fn target_text(target: &Value) -> String {
    let s = |k: &str| {
        target
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let mut out = String::new();
    if let Some(kind) = s("kind") {
        out.push_str(kind);
        out.push(' ');
    }
    match (s("namespace"), s("name")) {
        (Some(ns), Some(name)) => out.push_str(&format!("{ns}/{name}")),
        (None, Some(name)) => out.push_str(name),
        (Some(ns), None) => out.push_str(&format!("in namespace {ns}")),
        (None, None) => {}
    }
    if let Some(cluster) = s("cluster") {
        out.push_str(&format!(" on cluster {cluster}"));
    }
    let out = out.trim().to_string();
    if out.is_empty() { "—".into() } else { out }
}

fn state_badge(state: ApprovalState) -> Markup {
    html! { span class=(format!("state state-{}", state.as_str())) { (state.as_str()) } }
}

/// A unified diff with added, removed, hunk and header lines marked for colour.
fn diff_view(diff: &str) -> Markup {
    html! {
        pre.diff #diff {
            @for line in diff.lines() {
                @let class = if line.starts_with("+++") || line.starts_with("---") {
                    "meta"
                } else if line.starts_with('+') {
                    "add"
                } else if line.starts_with('-') {
                    "del"
                } else if line.starts_with("@@") {
                    "hunk"
                } else {
                    "ctx"
                };
                span class=(class) { (line) } "\n"
            }
        }
    }
}

fn error_page(status: StatusCode, title: &str, message: &str, user: Option<&PageUser>) -> Response {
    let body = html! {
        p { a href="/approvals" { "← all approvals" } }
        h1 { (title) }
        p.error role="alert" { (message) }
    };
    page(status, layout(title, user, body))
}

const STYLE: &str = r#"
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
header .who{margin-left:auto;font-size:.9rem}
header form{display:inline;margin:0}
header button{background:none;border:1px solid #8a93a6;color:#fff;border-radius:4px;padding:.15rem .5rem;cursor:pointer}
main{max-width:72rem;margin:0 auto;padding:1rem 1.2rem 3rem}
h1 code,h1{font-size:1.35rem}
table{border-collapse:collapse;background:#fff;width:100%;margin:.4rem 0 1rem}
th,td{border:1px solid #dde1e8;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.when{white-space:nowrap}
table.facts th{width:12rem;background:#eef0f4}
table.list thead th{background:#eef0f4}
pre{background:#fff;border:1px solid #dde1e8;padding:.6rem;overflow:auto;white-space:pre}
pre.diff{font-size:13px;background:#fbfbfc}
pre.diff .add{background:#e6ffec;color:#116329;display:inline-block;width:100%}
pre.diff .del{background:#ffebe9;color:#82071e;display:inline-block;width:100%}
pre.diff .hunk{color:#6639ba}
pre.diff .meta{color:#57606a;font-weight:600}
.state{display:inline-block;border-radius:999px;padding:.05rem .6rem;font-size:.85rem;font-weight:600;background:#eaeef2;color:#24292f}
.state-pending{background:#fff8c5;color:#7d4e00}
.state-executed{background:#dafbe1;color:#116329}
.state-approved,.state-executing{background:#ddf4ff;color:#0550ae}
.state-failed,.state-denied,.state-interrupted{background:#ffebe9;color:#82071e}
.error{background:#ffebe9;border:1px solid #ff8182;padding:.5rem .7rem;border-radius:4px}
.notice{background:#dafbe1;border:1px solid #4ac26b;padding:.5rem .7rem;border-radius:4px}
.hint,.empty{color:#57606a}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.8rem;max-width:40rem}
.card label{display:block;font-weight:600;margin-bottom:.3rem}
.card input[type=password],.card textarea{width:100%;box-sizing:border-box;font:inherit;padding:.35rem}
.buttons{margin-top:.6rem;display:flex;gap:.6rem}
button{font:inherit;padding:.35rem .9rem;border-radius:4px;border:1px solid #8a93a6;background:#fff;cursor:pointer}
button.approve{background:#1f883d;color:#fff;border-color:#1f883d}
button.deny{background:#cf222e;color:#fff;border-color:#cf222e}
form.cancel{margin-top:.6rem}
"#;

fn layout(title: &str, user: Option<&PageUser>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · toolgate" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a href="/approvals" { "toolgate approvals" }
                    @if let Some(user) = user {
                        span.who {
                            "Signed in as " strong #who { (user.principal.name) } " (" (user.principal.roles.join(", ")) ") "
                            form method="post" action="/approvals/logout" {
                                input type="hidden" name="csrf" value=(user.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_page() {
        assert_eq!(safe_next("/approvals/abc-1"), "/approvals/abc-1");
        assert_eq!(safe_next("https://evil.example/approvals"), "/approvals");
        assert_eq!(safe_next("//evil.example/approvals"), "/approvals");
        assert_eq!(safe_next("/approvals/../mcp"), "/approvals");
        assert_eq!(safe_next("/approvals/login"), "/approvals");
        assert_eq!(safe_next("/approvals/x\r\nSet-Cookie: a=b"), "/approvals");
    }

    #[test]
    fn ids_are_encoded_in_links() {
        assert_eq!(detail_path("a b/\"<x>"), "/approvals/a%20b%2F%22%3Cx%3E");
    }

    #[test]
    fn diff_lines_are_classified_and_escaped() {
        let out =
            diff_view("--- a\n+++ b\n@@ -1 +1 @@\n-old <b>\n+new & \"x\"\n same").into_string();
        assert!(
            out.contains(r#"<span class="del">-old &lt;b&gt;</span>"#),
            "{out}"
        );
        assert!(
            out.contains(r#"<span class="add">+new &amp; &quot;x&quot;</span>"#),
            "{out}"
        );
        assert!(out.contains(r#"<span class="meta">--- a</span>"#), "{out}");
        assert!(
            out.contains(r#"<span class="hunk">@@ -1 +1 @@</span>"#),
            "{out}"
        );
        assert!(!out.contains("<b>"), "{out}");
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; toolgate_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
        let c = set_cookie(SESSION_COOKIE, "v", "/approvals", 60, true).expect("valid");
        let c = c.to_str().expect("ascii");
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"),
            "{c}"
        );
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(Duration::from_secs(3600), 2);
        let p = Principal::new("bob", "Bob", vec!["toolgate.approver".into()]);
        let (a, _) = s.create(p.clone(), None).expect("random");
        let (b, _) = s.create(p.clone(), None).expect("random");
        assert_ne!(a, b);
        assert!(s.get(&a).is_some());
        let (c, _) = s.create(p.clone(), None).expect("random");
        assert!(s.get(&a).is_none(), "the oldest session was evicted");
        assert!(s.get(&b).is_some() && s.get(&c).is_some());
        s.set_notice(&c, "hi".into());
        assert_eq!(s.get(&c).and_then(|(_, _, n)| n).as_deref(), Some("hi"));
        assert_eq!(
            s.get(&c).and_then(|(_, _, n)| n),
            None,
            "notices are shown once"
        );
        s.remove(&c);
        assert!(s.get(&c).is_none());
        let short = Sessions::new(Duration::ZERO, 10);
        let (d, _) = short.create(p.clone(), None).expect("random");
        assert!(short.get(&d).is_none(), "expired");
    }

    #[test]
    fn a_session_ends_when_its_sign_in_token_expires() {
        let s = Sessions::new(Duration::from_secs(8 * 3600), 10);
        let p = Principal::new("bob", "Bob", vec!["toolgate.approver".into()]);
        // A token that lives 10 minutes bounds the session (and the cookie) to 10 minutes.
        let (_, ttl) = s
            .create(p.clone(), Some(Duration::from_secs(600)))
            .expect("random");
        assert_eq!(ttl, Duration::from_secs(600));
        // A token already expired: the session is dead at once.
        let (gone, ttl) = s.create(p.clone(), Some(Duration::ZERO)).expect("random");
        assert_eq!(ttl, Duration::ZERO);
        assert!(s.get(&gone).is_none());
        // A longer token never stretches the page's own limit.
        let (_, ttl) = s
            .create(p, Some(Duration::from_secs(86_400)))
            .expect("random");
        assert_eq!(ttl, Duration::from_secs(8 * 3600));
    }

    #[test]
    fn target_reads_like_kubectl() {
        let t = serde_json::json!({"cluster": "fake", "namespace": "shop", "kind": "Deployment", "name": "web"});
        assert_eq!(target_text(&t), "Deployment shop/web on cluster fake");
        assert_eq!(target_text(&serde_json::json!({})), "—");
    }
}
