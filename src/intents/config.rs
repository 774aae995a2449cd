//! Config sections of the inbound integrations and the intents they emit: `webhooks`,
//! `intents`, `sli_calculation`. Raw (all optional, `deny_unknown_fields`) types are embedded in
//! `config::RawConfig`; `resolve` validates them and reports every problem.

use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::Credential;
use crate::adapters::http::config::{RawCredential, RawDuration};

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    pub alertmanager: Option<RawAlertmanagerWebhook>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanagerWebhook {
    /// Serve `POST /webhooks/alertmanager`. Default true.
    pub enabled: Option<bool>,
    /// What Alertmanager's `http_config` sends: a bearer token or basic auth. Default: none.
    pub auth: Option<RawWebhookAuth>,
    /// A delivery of the same alert (fingerprint + startsAt + status) within this window is
    /// answered 200 and dropped (`5m`, or a number of seconds). Default 5m.
    pub dedup_window_seconds: Option<RawDuration>,
    /// Largest accepted body; larger gets 413. Default 1048576.
    pub max_body_bytes: Option<usize>,
    pub auto_create_incident: Option<RawAutoCreateIncident>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookAuth {
    /// Expected `Authorization: Bearer …` credentials: the value, `{file: PATH}`, `{env: VAR}`
    /// or `{secret_ref: …}` (or the TOOLGATE_WEBHOOKS_ALERTMANAGER_AUTH_BEARER_TOKEN variable).
    pub bearer_token: Option<RawCredential>,
    /// Expected basic-auth user (with `password`).
    pub username: Option<String>,
    /// Expected basic-auth password, in the same forms as `bearer_token` (or the
    /// TOOLGATE_WEBHOOKS_ALERTMANAGER_AUTH_PASSWORD variable).
    pub password: Option<RawCredential>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAutoCreateIncident {
    /// Also emit `CreateIncidentRequested` for firing alerts at or above `min_severity`.
    /// Default false.
    pub enabled: Option<bool>,
    /// `critical`, `high` (default), `warning` or `info`, compared with `labels.severity`.
    pub min_severity: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawIntents {
    /// `log` (default: intents stay in the store's outbox and are logged) or `nats`.
    pub sink: Option<String>,
    pub nats: Option<RawNats>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNats {
    /// Server URL(s), comma-separated, e.g. nats://nats.messaging:4222.
    pub url: Option<String>,
    /// Subject intents are published on. Default `sre.domain.intents.v1`.
    pub subject: Option<String>,
    /// JetStream stream holding the subject, created when missing. Default `SRE_DOMAIN_INTENTS`.
    pub stream: Option<String>,
    /// NATS credentials file (`.creds`: user JWT and NKey seed).
    pub credentials_file: Option<String>,
    /// Connect and publish-ack timeout (`5s`, or a number of seconds). Default 5s.
    pub timeout_seconds: Option<RawDuration>,
    /// Reconnects after the connection drops: `attempts` (default 10; 0 is not allowed) with
    /// the kit's backoff (`backoff`, `max_backoff`); the next publish connects anew after that.
    pub retry: Option<crate::adapters::http::config::RawRetry>,
    /// Consecutive failed publishes that stop publishing for `cooldown` (the kit's breaker).
    pub breaker: Option<crate::adapters::http::config::RawBreaker>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSliCalculation {
    /// Cron schedule (5 fields, or 6 with seconds first), UTC. Default `*/5 * * * *`.
    pub schedule: Option<String>,
    /// Prometheus base URL the SLI queries go to, e.g. http://prometheus.monitoring:9090.
    pub prometheus_url: Option<String>,
    /// Timeout of one Prometheus query (`30s`, or a number of seconds). Default 30s.
    pub timeout_seconds: Option<RawDuration>,
    /// The SLIs; none: no SLI windows are computed.
    pub slis: Option<Vec<RawSli>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSli {
    /// Name carried in the intent, e.g. `checkout-availability`.
    pub name: String,
    /// PromQL for good events over the window; `$window` is replaced by the window, e.g.
    /// `sum(increase(http_requests_total{code!~"5.."}[$window]))`.
    pub good: String,
    /// PromQL for all events over the window.
    pub total: String,
    /// Prometheus duration, e.g. `5m`. Default `5m`.
    pub window: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info = 1,
    Warning = 2,
    High = 3,
    Critical = 4,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Severity> {
        match text.trim().to_ascii_lowercase().as_str() {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookAuth {
    None,
    Bearer(Credential),
    Basic {
        username: String,
        password: Credential,
    },
}

#[derive(Debug, Clone)]
pub struct AutoCreateIncident {
    pub enabled: bool,
    pub min_severity: Severity,
}

#[derive(Debug, Clone)]
pub struct AlertmanagerWebhookConfig {
    pub enabled: bool,
    pub auth: WebhookAuth,
    pub dedup_window: Duration,
    pub max_body_bytes: usize,
    pub auto_create_incident: AutoCreateIncident,
}

#[derive(Debug, Clone)]
pub struct WebhooksConfig {
    pub alertmanager: AlertmanagerWebhookConfig,
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    pub subject: String,
    pub stream: String,
    pub credentials_file: Option<PathBuf>,
    pub timeout: Duration,
    /// Bounded reconnects (`attempts`) and their backoff.
    pub reconnect: crate::adapters::http::RetryPolicy,
    pub breaker: crate::adapters::http::BreakerConfig,
}

#[derive(Debug, Clone)]
pub enum IntentSink {
    Log,
    Nats(NatsConfig),
}

#[derive(Debug, Clone)]
pub struct IntentsConfig {
    pub sink: IntentSink,
}

#[derive(Debug, Clone)]
pub struct SliDefinition {
    pub name: String,
    pub good: String,
    pub total: String,
    /// As written (`5m`), substituted for `$window`.
    pub window_text: String,
    pub window: Duration,
}

#[derive(Debug, Clone)]
pub struct SliConfig {
    /// Validated cron pattern.
    pub schedule: String,
    pub prometheus_url: Option<String>,
    pub timeout: Duration,
    pub slis: Vec<SliDefinition>,
}

pub const DEFAULT_SUBJECT: &str = "sre.domain.intents.v1";
pub const DEFAULT_STREAM: &str = "SRE_DOMAIN_INTENTS";

/// Parses a cron pattern: 5 fields, or 6 with seconds first.
pub fn parse_schedule(pattern: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

/// A Prometheus duration (`90s`, `5m`, `1h30m`, `1d`, `1w`), not zero: the obs tools' parser.
pub fn parse_prometheus_duration(text: &str) -> Option<Duration> {
    crate::adapters::http::parse_duration(text.trim()).filter(|d| !d.is_zero())
}

pub fn resolve(
    webhooks: Option<RawWebhooks>,
    intents: Option<RawIntents>,
    sli: Option<RawSliCalculation>,
    problems: &mut Vec<String>,
) -> (WebhooksConfig, IntentsConfig, SliConfig) {
    (
        resolve_webhooks(webhooks.unwrap_or_default(), problems),
        resolve_intents(intents.unwrap_or_default(), problems),
        resolve_sli(sli.unwrap_or_default(), problems),
    )
}

fn resolve_webhooks(raw: RawWebhooks, problems: &mut Vec<String>) -> WebhooksConfig {
    let am = raw.alertmanager.unwrap_or_default();
    let key = "webhooks.alertmanager";
    let raw_auth = am.auth.unwrap_or_default();
    let blank = |c: &RawCredential| matches!(c, RawCredential::Value(v) if v.trim().is_empty());
    let auth = match (raw_auth.bearer_token, raw_auth.username, raw_auth.password) {
        (None, None, None) => WebhookAuth::None,
        (Some(token), None, None) if !blank(&token) => token
            .resolve(&format!("{key}.auth.bearer_token"), problems)
            .map(WebhookAuth::Bearer)
            .unwrap_or(WebhookAuth::None),
        (None, Some(username), Some(password)) if !username.is_empty() && !blank(&password) => {
            password
                .resolve(&format!("{key}.auth.password"), problems)
                .map(|password| WebhookAuth::Basic { username, password })
                .unwrap_or(WebhookAuth::None)
        }
        _ => {
            problems.push(format!(
                "{key}.auth: give either bearer_token, or username with password (non-empty), as in Alertmanager's http_config"
            ));
            WebhookAuth::None
        }
    };
    let window = RawDuration::resolve_or(
        am.dedup_window_seconds.as_ref(),
        &format!("{key}.dedup_window_seconds"),
        Duration::from_secs(300),
        (Duration::from_secs(1), Duration::from_secs(7 * 86_400)),
        problems,
    );
    let max_body = am.max_body_bytes.unwrap_or(1 << 20);
    if !(1024..=64 << 20).contains(&max_body) {
        problems.push(format!(
            "{key}.max_body_bytes: {max_body} is out of range; expected 1024..=67108864"
        ));
    }
    let raw_auto = am.auto_create_incident.unwrap_or_default();
    let min_severity = match raw_auto.min_severity.as_deref() {
        None => Severity::High,
        Some(text) => Severity::parse(text).unwrap_or_else(|| {
            problems.push(format!(
                "{key}.auto_create_incident.min_severity: `{text}` is not a severity; expected critical, high, warning or info"
            ));
            Severity::High
        }),
    };
    WebhooksConfig {
        alertmanager: AlertmanagerWebhookConfig {
            enabled: am.enabled.unwrap_or(true),
            auth,
            dedup_window: window,
            max_body_bytes: max_body,
            auto_create_incident: AutoCreateIncident {
                enabled: raw_auto.enabled.unwrap_or(false),
                min_severity,
            },
        },
    }
}

fn resolve_intents(raw: RawIntents, problems: &mut Vec<String>) -> IntentsConfig {
    let sink = match raw.sink.as_deref() {
        None | Some("log") => {
            if raw.nats.is_some() && raw.sink.is_none() {
                problems.push(
                    "intents.nats is set but intents.sink is not; add `sink: nats` to publish to NATS"
                        .into(),
                );
            }
            IntentSink::Log
        }
        Some("nats") => {
            let nats = raw.nats.unwrap_or_default();
            let url = nats.url.unwrap_or_default();
            if url.trim().is_empty() {
                problems.push(
                    "intents.nats.url: required with intents.sink nats, e.g. nats://nats.messaging:4222"
                        .into(),
                );
            }
            let subject = nats.subject.unwrap_or_else(|| DEFAULT_SUBJECT.into());
            if !crate::adapters::nats::valid_subject(&subject, false) {
                problems.push(format!(
                    "intents.nats.subject: `{subject}` is not a literal subject; expected e.g. {DEFAULT_SUBJECT}"
                ));
            }
            let stream = nats.stream.unwrap_or_else(|| DEFAULT_STREAM.into());
            if stream.is_empty() || stream.contains(['.', '*', '>', ' ', '/', '\\']) {
                problems.push(format!(
                    "intents.nats.stream: `{stream}` is not a valid stream name (no dots, spaces, wildcards); expected e.g. {DEFAULT_STREAM}"
                ));
            }
            let credentials_file = nats.credentials_file.map(PathBuf::from);
            if let Some(path) = &credentials_file
                && !path.is_file()
            {
                problems.push(format!(
                    "intents.nats.credentials_file: file `{}` does not exist",
                    path.display()
                ));
            }
            // The kit's vocabulary and checks for `retry:` and `breaker:`.
            let kit = crate::adapters::http::config::resolve_settings(
                "intents.nats",
                &crate::adapters::http::config::EndpointFields {
                    timeout: None,
                    timeout_seconds: None,
                    connect_timeout: None,
                    retry: nats.retry.as_ref(),
                    breaker: nats.breaker.as_ref(),
                    max_response_bytes: None,
                    auth: None,
                    tls: None,
                },
                problems,
            );
            let mut reconnect = kit.retry;
            if nats.retry.as_ref().and_then(|r| r.attempts).is_none() {
                reconnect.attempts = 10;
            }
            let breaker = kit.breaker;
            let timeout = RawDuration::resolve_or(
                nats.timeout_seconds.as_ref(),
                "intents.nats.timeout_seconds",
                Duration::from_secs(5),
                (Duration::from_millis(100), Duration::from_secs(300)),
                problems,
            );
            IntentSink::Nats(NatsConfig {
                url,
                subject,
                stream,
                credentials_file,
                timeout,
                reconnect,
                breaker,
            })
        }
        Some(other) => {
            problems.push(format!(
                "intents.sink: `{other}` is not supported; expected `log` or `nats`"
            ));
            IntentSink::Log
        }
    };
    IntentsConfig { sink }
}

fn resolve_sli(raw: RawSliCalculation, problems: &mut Vec<String>) -> SliConfig {
    let schedule = raw.schedule.unwrap_or_else(|| "*/5 * * * *".into());
    if let Err(e) = parse_schedule(&schedule) {
        problems.push(format!(
            "sli_calculation.schedule: `{schedule}` is not a cron pattern ({e}); expected e.g. `*/5 * * * *`"
        ));
    }
    let prometheus_url = raw
        .prometheus_url
        .map(|u| u.trim_end_matches('/').to_string());
    if let Some(url) = &prometheus_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        problems.push(format!(
            "sli_calculation.prometheus_url: `{url}` must start with http:// or https://"
        ));
    }
    let timeout = RawDuration::resolve_or(
        raw.timeout_seconds.as_ref(),
        "sli_calculation.timeout_seconds",
        Duration::from_secs(30),
        (Duration::from_millis(100), Duration::from_secs(300)),
        problems,
    );
    let mut slis: Vec<SliDefinition> = Vec::new();
    for raw_sli in raw.slis.unwrap_or_default() {
        let name = raw_sli.name.trim().to_string();
        if name.is_empty() {
            problems.push("sli_calculation.slis: an SLI has an empty name".into());
            continue;
        }
        if slis.iter().any(|s| s.name == name) {
            problems.push(format!(
                "sli_calculation.slis: the name `{name}` appears twice"
            ));
        }
        for (what, q) in [("good", &raw_sli.good), ("total", &raw_sli.total)] {
            if q.trim().is_empty() {
                problems.push(format!("sli_calculation.slis[{name}].{what}: empty PromQL"));
            }
        }
        let window_text = raw_sli.window.unwrap_or_else(|| "5m".into());
        let window = match parse_prometheus_duration(&window_text) {
            Some(d) => d,
            None => {
                problems.push(format!(
                    "sli_calculation.slis[{name}].window: `{window_text}` is not a Prometheus duration; expected e.g. 5m, 1h, 30s"
                ));
                Duration::from_secs(300)
            }
        };
        slis.push(SliDefinition {
            name,
            good: raw_sli.good,
            total: raw_sli.total,
            window_text,
            window,
        });
    }
    SliConfig {
        schedule,
        prometheus_url,
        timeout,
        slis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_schedules() {
        assert_eq!(
            parse_prometheus_duration("5m"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_prometheus_duration("1h30m"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_prometheus_duration("5"), None);
        assert_eq!(parse_prometheus_duration("m5"), None);
        assert_eq!(parse_prometheus_duration("0s"), None);
        assert!(parse_schedule("*/5 * * * *").is_ok());
        assert!(parse_schedule("*/2 * * * * *").is_ok());
        assert!(parse_schedule("every five minutes").is_err());
    }

    #[test]
    fn every_problem_in_the_sections_is_reported() {
        let raw: crate::config::RawConfig = serde_yaml::from_str(
            "webhooks:\n  alertmanager:\n    auth: {bearer_token: x, username: u}\n    dedup_window_seconds: 0\n    auto_create_incident: {min_severity: page}\n\
             intents:\n  sink: nats\n  nats: {subject: 'sre.>', stream: a.b}\n\
             sli_calculation:\n  schedule: nope\n  slis:\n    - {name: s, good: '', total: up, window: 5x}\n",
        )
        .expect("yaml");
        let mut problems = Vec::new();
        let (webhooks, intents, sli) = resolve(
            raw.webhooks,
            raw.intents,
            raw.sli_calculation,
            &mut problems,
        );
        let text = problems.join("\n");
        for want in [
            "webhooks.alertmanager.auth: give either bearer_token",
            "dedup_window_seconds: 0 is out of range",
            "min_severity: `page` is not a severity",
            "intents.nats.url: required",
            "intents.nats.subject: `sre.>` is not a literal subject",
            "intents.nats.stream: `a.b` is not a valid stream name",
            "sli_calculation.schedule: `nope` is not a cron pattern",
            "sli_calculation.slis[s].good: empty PromQL",
            "sli_calculation.slis[s].window: `5x` is not a Prometheus duration",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
        assert_eq!(problems.len(), 9, "{text}");
        assert_eq!(webhooks.alertmanager.auth, WebhookAuth::None);
        assert!(matches!(intents.sink, IntentSink::Nats(_)));
        assert_eq!(sli.slis.len(), 1);

        let mut problems = Vec::new();
        let (webhooks, intents, sli) = resolve(None, None, None, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let am = webhooks.alertmanager;
        assert!(am.enabled && !am.auto_create_incident.enabled);
        assert_eq!(am.dedup_window, Duration::from_secs(300));
        assert_eq!(am.auto_create_incident.min_severity, Severity::High);
        assert!(matches!(intents.sink, IntentSink::Log));
        assert_eq!(sli.schedule, "*/5 * * * *");
    }

    #[test]
    fn secrets_come_from_the_environment_and_never_print() {
        let env: Vec<(String, String)> = [
            (
                "TOOLGATE_WEBHOOKS_ALERTMANAGER_AUTH_BEARER_TOKEN",
                "tok-98765",
            ),
            ("TOOLGATE_INTENTS_SINK", "nats"),
            ("TOOLGATE_INTENTS_NATS_URL", "nats://nats.messaging:4222"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c = crate::config::Config::load_from(None, &env).expect("valid");
        assert_eq!(
            c.webhooks.alertmanager.auth,
            WebhookAuth::Bearer(Credential::inline("tok-98765"))
        );
        assert!(matches!(&c.intents.sink, IntentSink::Nats(n) if n.subject == DEFAULT_SUBJECT));
        assert!(!format!("{c:?}").contains("tok-98765"));
    }

    #[test]
    fn severities_are_ordered() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::High > Severity::Warning);
        assert!(Severity::Warning > Severity::Info);
        assert_eq!(Severity::parse("Critical"), Some(Severity::Critical));
        assert_eq!(Severity::parse("page"), None);
    }
}
