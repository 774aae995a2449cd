//! The SRE integration spec's YAML blocks (seed 004: `kubernetes_integration`,
//! `observability_integration`, `alertmanager_integration`, `argocd_integration`,
//! `ticketing_integration`, `paging_integration`) load as written: what toolgate already does is
//! moved onto its own sections before they are resolved; a key toolgate cannot honour yet is
//! refused naming the key, the issue that builds it and what to use meanwhile; a setting given
//! both here and in toolgate's section is refused naming both keys. Owns no behaviour of its own.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{RawCluster, RawConfig, RawDuration};
use crate::adapters::http::config::{RawCredential, RawCredentialSource};
use crate::intents::config::RawAutoCreateIncident;

/// The path toolgate serves the Alertmanager webhook on (the seed's `webhook_path`).
const ALERTMANAGER_PATH: &str = "/webhooks/alertmanager";

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawKubernetesIntegration {
    /// `true` (the k8s tools are always served; `false` is refused).
    pub enabled: Option<bool>,
    /// → `kubernetes.clusters`.
    pub clusters: Option<Vec<RawSeedCluster>>,
    /// → `kubernetes.watch.namespaces` and `.resource_types` (turns the watch on).
    pub watch: Option<RawSeedWatch>,
    /// → `kubernetes.watch.poll_interval`.
    pub poll_interval: Option<RawDuration>,
    /// → `kubernetes.log_tail_lines`.
    pub log_tail_lines: Option<i64>,
}

/// A seed cluster: toolgate's cluster keys plus the seed's `kubeconfig_secret_ref`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeedCluster {
    pub name: String,
    /// → the cluster's `kubeconfig_secret_ref` (a kubeconfig in OpenBao).
    pub kubeconfig_secret_ref: Option<String>,
    pub kubeconfig: Option<String>,
    pub context: Option<String>,
    pub in_cluster: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeedWatch {
    pub namespaces: Option<Vec<String>>,
    pub resource_types: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawObservabilityIntegration {
    /// `true` (upstreams are configured by their `url`; `false` is refused).
    pub enabled: Option<bool>,
    /// → `observability.prometheus` (`url`, `timeout`).
    pub prometheus: Option<RawSeedUpstream>,
    /// → `webhooks.alertmanager`.
    pub alertmanager: Option<RawSeedAlertmanager>,
    /// → `observability.loki`.
    pub loki: Option<RawSeedUpstream>,
    /// → `observability.tempo`.
    pub tempo: Option<RawSeedUpstream>,
    /// → `observability.grafana` (`secret_ref` → its `auth.bearer_token`).
    pub grafana: Option<RawSeedGrafana>,
    /// → `sli_calculation.schedule`.
    pub sli_calculation: Option<RawSeedSli>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeedUpstream {
    pub url: Option<String>,
    pub timeout: Option<RawDuration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeedGrafana {
    pub url: Option<String>,
    pub timeout: Option<RawDuration>,
    /// The API key in OpenBao → `observability.grafana.auth.bearer_token: {secret_ref: …}`.
    pub secret_ref: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeedSli {
    pub schedule: Option<String>,
}

/// `argocd_integration` (seed §3) → the `argocd` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawArgoCdIntegration {
    /// `false`: no ArgoCD (the block's other keys are then ignored).
    pub enabled: Option<bool>,
    /// Must be `polling` (the only mode toolgate has).
    pub mode: Option<String>,
    /// → `argocd.poll_interval`.
    pub poll_interval: Option<RawDuration>,
    /// `host:port` (https) or a URL → `argocd.url`.
    pub argocd_server: Option<String>,
    /// → `argocd.environments`.
    pub environments: Option<Vec<String>>,
    /// The API token in OpenBao → `argocd.auth.bearer_token: {secret_ref: …}` (toolgate's
    /// addition: the seed names no credential).
    pub secret_ref: Option<String>,
}

/// `alertmanager_integration` (seed §5) and `observability_integration.alertmanager` (§4).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeedAlertmanager {
    /// → `webhooks.alertmanager.enabled`.
    pub enabled: Option<bool>,
    /// Must be `/webhooks/alertmanager` (the path toolgate serves).
    pub webhook_path: Option<String>,
    pub idempotency: Option<RawSeedIdempotency>,
    /// → `webhooks.alertmanager.auto_create_incident`.
    pub auto_create_incident: Option<RawAutoCreateIncident>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSeedIdempotency {
    /// Must be `fingerprint` (toolgate keys by fingerprint + startsAt + status).
    pub key_source: Option<String>,
    /// → `webhooks.alertmanager.dedup_window_seconds`.
    pub dedup_window: Option<RawDuration>,
}

/// Move the seed blocks of `raw` onto toolgate's sections; every refusal goes to `problems`.
pub fn apply(raw: &mut RawConfig, problems: &mut Vec<String>) {
    let mut set = Setter {
        by: BTreeMap::new(),
        problems,
    };
    if let Some(k8s) = raw.kubernetes_integration.take() {
        kubernetes(raw, k8s, &mut set);
    }
    if let Some(obs) = raw.observability_integration.take() {
        observability(raw, obs, &mut set);
    }
    if let Some(am) = raw.alertmanager_integration.take() {
        alertmanager(raw, "alertmanager_integration", am, &mut set);
    }
    if let Some(argo) = raw.argocd_integration.take() {
        argocd(raw, argo, &mut set);
    }
    // The ticketing and paging blocks are toolgate's `ticketing` and `paging` sections as
    // written; one or the other, not both.
    if let Some(block) = raw.ticketing_integration.take() {
        if raw.ticketing.is_some() {
            set.problems.push(
                "ticketing_integration and ticketing: give one of them (they are the same section)"
                    .into(),
            );
        } else {
            raw.ticketing = Some(block);
        }
    }
    if let Some(block) = raw.paging_integration.take() {
        if raw.paging.is_some() {
            set.problems.push(
                "paging_integration and paging: give one of them (they are the same section)"
                    .into(),
            );
        } else {
            raw.paging = Some(block);
        }
    }
}

/// Puts seed values into toolgate's raw sections, remembering which seed key set what.
struct Setter<'a> {
    /// toolgate key → the seed key that set it.
    by: BTreeMap<String, String>,
    problems: &'a mut Vec<String>,
}

impl Setter<'_> {
    /// `*target = value` unless `target` (toolgate's `target_key`) is already set: by the
    /// user's own section, or by another seed key to another value (§5 repeats §4 "for
    /// backwards compatibility during migration", so equal values agree): then a problem naming
    /// both keys.
    fn put<T: PartialEq>(
        &mut self,
        target: &mut Option<T>,
        target_key: &str,
        value: Option<T>,
        seed_key: &str,
    ) {
        let Some(value) = value else { return };
        if let Some(current) = target {
            if self.by.contains_key(target_key) && *current == value {
                return;
            }
            let other = self
                .by
                .get(target_key)
                .cloned()
                .unwrap_or_else(|| target_key.to_string());
            self.problems.push(format!(
                "`{seed_key}` and `{other}` both set {target_key}; keep one of them"
            ));
            return;
        }
        *target = Some(value);
        self.by.insert(target_key.to_string(), seed_key.to_string());
    }

    fn refuse(&mut self, key: &str, why: &str) {
        self.problems.push(format!("{key}: {why}"));
    }
}

fn kubernetes(raw: &mut RawConfig, seed: RawKubernetesIntegration, set: &mut Setter<'_>) {
    let b = "kubernetes_integration";
    if seed.enabled == Some(false) {
        set.refuse(
            &format!("{b}.enabled"),
            "false cannot turn off the k8s.* tools; remove the block, or deny k8s.* in the policy",
        );
    }
    let k8s = raw.kubernetes.get_or_insert_default();
    if seed.watch.is_some() || seed.poll_interval.is_some() {
        let watch = k8s.watch.get_or_insert_default();
        let (namespaces, resource_types) = seed
            .watch
            .map(|w| (w.namespaces, w.resource_types))
            .unwrap_or_default();
        set.put(
            &mut watch.namespaces,
            "kubernetes.watch.namespaces",
            namespaces,
            &format!("{b}.watch.namespaces"),
        );
        set.put(
            &mut watch.resource_types,
            "kubernetes.watch.resource_types",
            resource_types,
            &format!("{b}.watch.resource_types"),
        );
        set.put(
            &mut watch.poll_interval,
            "kubernetes.watch.poll_interval",
            seed.poll_interval,
            &format!("{b}.poll_interval"),
        );
    }
    set.put(
        &mut k8s.log_tail_lines,
        "kubernetes.log_tail_lines",
        seed.log_tail_lines,
        &format!("{b}.log_tail_lines"),
    );
    let clusters = seed.clusters.map(|list| {
        list.into_iter()
            .map(|c| RawCluster {
                name: c.name,
                context: c.context,
                kubeconfig: c.kubeconfig,
                kubeconfig_secret_ref: c.kubeconfig_secret_ref,
                in_cluster: c.in_cluster,
            })
            .collect()
    });
    set.put(
        &mut k8s.clusters,
        "kubernetes.clusters",
        clusters,
        &format!("{b}.clusters"),
    );
}

fn observability(raw: &mut RawConfig, seed: RawObservabilityIntegration, set: &mut Setter<'_>) {
    let b = "observability_integration";
    if seed.enabled == Some(false) {
        set.refuse(
            &format!("{b}.enabled"),
            "false is not supported: an upstream is configured by its url; remove the block or the \
             upstreams you do not want",
        );
    }
    let obs = raw.observability.get_or_insert_default();
    if let Some(p) = seed.prometheus {
        let t = obs.prometheus.get_or_insert_default();
        upstream(
            set,
            b,
            "prometheus",
            p,
            &mut t.url,
            &mut t.timeout,
            t.timeout_seconds.is_some(),
        );
    }
    if let Some(l) = seed.loki {
        let t = obs.loki.get_or_insert_default();
        upstream(
            set,
            b,
            "loki",
            l,
            &mut t.url,
            &mut t.timeout,
            t.timeout_seconds.is_some(),
        );
    }
    if let Some(l) = seed.tempo {
        let t = obs.tempo.get_or_insert_default();
        upstream(
            set,
            b,
            "tempo",
            l,
            &mut t.url,
            &mut t.timeout,
            t.timeout_seconds.is_some(),
        );
    }
    if let Some(g) = seed.grafana {
        let t = obs.grafana.get_or_insert_default();
        if let Some(secret_ref) = g.secret_ref {
            // The API key, as `auth.bearer_token: {secret_ref: …}` (Grafana takes API keys and
            // service-account tokens as bearer tokens).
            let auth = t.auth.get_or_insert_default();
            let value = RawCredential::Source(RawCredentialSource {
                secret_ref: Some(secret_ref),
                ..RawCredentialSource::default()
            });
            set.put(
                &mut auth.bearer_token,
                "observability.grafana.auth.bearer_token",
                Some(value),
                &format!("{b}.grafana.secret_ref"),
            );
        }
        let seed = RawSeedUpstream {
            url: g.url,
            timeout: g.timeout,
        };
        upstream(
            set,
            b,
            "grafana",
            seed,
            &mut t.url,
            &mut t.timeout,
            t.timeout_seconds.is_some(),
        );
    }
    if let Some(am) = seed.alertmanager {
        alertmanager(raw, &format!("{b}.alertmanager"), am, set);
    }
    if let Some(sli) = seed.sli_calculation {
        let target = raw.sli_calculation.get_or_insert_default();
        set.put(
            &mut target.schedule,
            "sli_calculation.schedule",
            sli.schedule,
            &format!("{b}.sli_calculation.schedule"),
        );
    }
}

/// `url` and `timeout` of one observability upstream.
fn upstream(
    set: &mut Setter<'_>,
    block: &str,
    name: &str,
    seed: RawSeedUpstream,
    url: &mut Option<String>,
    timeout: &mut Option<RawDuration>,
    has_timeout_seconds: bool,
) {
    let seed_key = |k: &str| format!("{block}.{name}.{k}");
    let key = |k: &str| format!("observability.{name}.{k}");
    set.put(url, &key("url"), seed.url, &seed_key("url"));
    if has_timeout_seconds && seed.timeout.is_some() {
        set.problems.push(format!(
            "`{}` and `{}` both set {}; keep one of them",
            seed_key("timeout"),
            key("timeout_seconds"),
            key("timeout")
        ));
        return;
    }
    set.put(timeout, &key("timeout"), seed.timeout, &seed_key("timeout"));
}

fn argocd(raw: &mut RawConfig, seed: RawArgoCdIntegration, set: &mut Setter<'_>) {
    let b = "argocd_integration";
    if seed.enabled == Some(false) {
        return;
    }
    if let Some(mode) = &seed.mode
        && mode != "polling"
    {
        set.refuse(
            &format!("{b}.mode"),
            &format!("`{mode}`: toolgate reads ArgoCD by polling only; set `polling` or remove it"),
        );
    }
    let target = raw.argocd.get_or_insert_default();
    let url = seed.argocd_server.map(|s| {
        let s = s.trim().trim_end_matches('/');
        if s.starts_with("http://") || s.starts_with("https://") {
            s.to_string()
        } else {
            // The seed writes `host:443`: ArgoCD's API server speaks TLS.
            format!("https://{s}")
        }
    });
    set.put(
        &mut target.url,
        "argocd.url",
        url,
        &format!("{b}.argocd_server"),
    );
    set.put(
        &mut target.poll_interval,
        "argocd.poll_interval",
        seed.poll_interval,
        &format!("{b}.poll_interval"),
    );
    set.put(
        &mut target.environments,
        "argocd.environments",
        seed.environments,
        &format!("{b}.environments"),
    );
    if let Some(secret_ref) = seed.secret_ref {
        let auth = target.auth.get_or_insert_default();
        let value = RawCredential::Source(RawCredentialSource {
            secret_ref: Some(secret_ref),
            ..RawCredentialSource::default()
        });
        set.put(
            &mut auth.bearer_token,
            "argocd.auth.bearer_token",
            Some(value),
            &format!("{b}.secret_ref"),
        );
    }
}

fn alertmanager(raw: &mut RawConfig, b: &str, seed: RawSeedAlertmanager, set: &mut Setter<'_>) {
    if let Some(path) = &seed.webhook_path
        && path.trim_end_matches('/') != ALERTMANAGER_PATH
    {
        set.refuse(
            &format!("{b}.webhook_path"),
            &format!(
                "`{path}`: toolgate serves the Alertmanager webhook at {ALERTMANAGER_PATH} only; \
                 point the receiver there and set this to {ALERTMANAGER_PATH} or remove it"
            ),
        );
    }
    let webhooks = raw.webhooks.get_or_insert_default();
    let am = webhooks.alertmanager.get_or_insert_default();
    set.put(
        &mut am.enabled,
        "webhooks.alertmanager.enabled",
        seed.enabled,
        &format!("{b}.enabled"),
    );
    if let Some(idem) = seed.idempotency {
        if let Some(source) = &idem.key_source
            && source != "fingerprint"
        {
            set.refuse(
                &format!("{b}.idempotency.key_source"),
                &format!(
                    "`{source}`: toolgate keys each alert by fingerprint + startsAt + status only; \
                     set `fingerprint` or remove it"
                ),
            );
        }
        set.put(
            &mut am.dedup_window_seconds,
            "webhooks.alertmanager.dedup_window_seconds",
            idem.dedup_window,
            &format!("{b}.idempotency.dedup_window"),
        );
    }
    if let Some(auto) = seed.auto_create_incident {
        let target = am.auto_create_incident.get_or_insert_default();
        set.put(
            &mut target.enabled,
            "webhooks.alertmanager.auto_create_incident.enabled",
            auto.enabled,
            &format!("{b}.auto_create_incident.enabled"),
        );
        set.put(
            &mut target.min_severity,
            "webhooks.alertmanager.auto_create_incident.min_severity",
            auto.min_severity,
            &format!("{b}.auto_create_incident.min_severity"),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{ClusterSource, Config, ConfigError};
    use crate::intents::config::Severity;

    // The blocks as seed 004 (SRE integration specification) writes them, verbatim.
    const KUBERNETES: &str = r#"kubernetes_integration:
  enabled: true
  clusters:
    - name: local
      kubeconfig_secret_ref: platform/local-kubeconfig
    - name: dev
      kubeconfig_secret_ref: platform/dev-kubeconfig
    - name: staging
      kubeconfig_secret_ref: platform/staging-kubeconfig
    - name: production
      kubeconfig_secret_ref: platform/production-kubeconfig
  watch:
    namespaces: ["ameide-*", "argocd", "monitoring"]
    resource_types: [pods, deployments, services, events]
  poll_interval: 60s
  log_tail_lines: 500
"#;
    const ARGOCD: &str = r#"argocd_integration:
  enabled: true
  mode: polling
  poll_interval: 30s
  argocd_server: argocd-server.argocd.svc.cluster.local:443
  environments:
    - local
    - dev
    - staging
    - production
"#;
    const OBSERVABILITY: &str = r#"observability_integration:
  enabled: true
  prometheus:
    url: http://prometheus.monitoring.svc.cluster.local:9090
    timeout: 30s
  alertmanager:
    webhook_path: /webhooks/alertmanager
    idempotency:
      key_source: fingerprint
      dedup_window: 5m
    auto_create_incident:
      enabled: true
      min_severity: high
  loki:
    url: http://loki.monitoring.svc.cluster.local:3100
    timeout: 30s
  tempo:
    url: http://tempo.monitoring.svc.cluster.local:3200
    timeout: 30s
  grafana:
    url: http://grafana.monitoring.svc.cluster.local:3000
    secret_ref: platform/grafana-api-key
  sli_calculation:
    schedule: "*/5 * * * *"  # Every 5 minutes
"#;
    const ALERTMANAGER: &str = r#"alertmanager_integration:
  enabled: true
  webhook_path: /webhooks/alertmanager
  idempotency:
    key_source: fingerprint
    dedup_window: 5m
  auto_create_incident:
    enabled: true
    min_severity: high
"#;
    const TICKETING: &str = r#"ticketing_integration:
  enabled: true
  default_provider: jira
  jira:
    base_url: https://company.atlassian.net
    project_key: SRE
    secret_ref: platform/jira-credentials
  github:
    repo: org/sre-incidents
    secret_ref: platform/github-token
"#;
    const PAGING: &str = r#"paging_integration:
  enabled: true
  default_provider: pagerduty
  pagerduty:
    routing_key_ref: platform/pagerduty-routing-key
  escalation:
    critical: immediate
    high: business_hours_only
    business_hours:
      start: "09:00"
      end: "18:00"
      timezone: UTC
"#;

    fn load(yaml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).expect("write");
        Config::load_from(Some(&path), &[])
    }

    fn problems(yaml: &str) -> Vec<String> {
        load(yaml).expect_err("refused").problems
    }

    #[test]
    fn the_observability_block_maps_onto_toolgates_sections_its_secret_ref_needs_openbao() {
        let got = problems(OBSERVABILITY);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(
            got[0].starts_with(
                "observability_integration.grafana.secret_ref: `platform/grafana-api-key` is a \
                 secret reference, read from OpenBao, and no openbao section is configured; add one"
            ),
            "{got:#?}"
        );
        // With OpenBao, the reference is Grafana's bearer token.
        let c = load(&format!(
            "{OBSERVABILITY}openbao: {{address: 'http://127.0.0.1:8200', auth: {{token: t}}}}\n"
        ))
        .expect("loads with openbao");
        let grafana = c.observability.grafana.as_ref().expect("grafana");
        assert_eq!(
            format!("{:?}", grafana.auth),
            "Bearer(Credential(openbao platform/grafana-api-key))"
        );
        let without_ref = OBSERVABILITY.replace("    secret_ref: platform/grafana-api-key\n", "");
        let c = load(&without_ref).expect("loads");
        let o = &c.observability;
        let prom = o.prometheus.as_ref().expect("prometheus");
        assert_eq!(
            prom.url,
            "http://prometheus.monitoring.svc.cluster.local:9090"
        );
        assert_eq!(prom.settings.timeout, Duration::from_secs(30));
        let loki = o.loki.as_ref().expect("loki");
        assert_eq!(loki.url, "http://loki.monitoring.svc.cluster.local:3100");
        assert_eq!(loki.settings.timeout, Duration::from_secs(30));
        let tempo = o.tempo.as_ref().expect("tempo");
        assert_eq!(tempo.url, "http://tempo.monitoring.svc.cluster.local:3200");
        let grafana = o.grafana.as_ref().expect("grafana");
        assert_eq!(
            grafana.url,
            "http://grafana.monitoring.svc.cluster.local:3000"
        );
        let am = &c.webhooks.alertmanager;
        assert!(am.enabled);
        assert_eq!(am.dedup_window, Duration::from_secs(300));
        assert!(am.auto_create_incident.enabled);
        assert_eq!(am.auto_create_incident.min_severity, Severity::High);
        assert_eq!(c.sli_calculation.schedule, "*/5 * * * *");
    }

    #[test]
    fn the_alertmanager_block_loads_as_written() {
        let c = load(ALERTMANAGER).expect("loads");
        let am = &c.webhooks.alertmanager;
        assert!(am.enabled);
        assert_eq!(am.dedup_window, Duration::from_secs(300));
        assert!(am.auto_create_incident.enabled);
        assert_eq!(am.auto_create_incident.min_severity, Severity::High);
        let off = ALERTMANAGER.replace(
            "  enabled: true\n  webhook_path",
            "  enabled: false\n  webhook_path",
        );
        assert!(!load(&off).expect("loads").webhooks.alertmanager.enabled);
        // What toolgate does differently is refused by key, not ignored.
        let other = ALERTMANAGER
            .replace(
                "webhook_path: /webhooks/alertmanager",
                "webhook_path: /hooks/am",
            )
            .replace("key_source: fingerprint", "key_source: labels");
        assert_eq!(
            problems(&other),
            [
                "alertmanager_integration.webhook_path: `/hooks/am`: toolgate serves the \
                 Alertmanager webhook at /webhooks/alertmanager only; point the receiver there and \
                 set this to /webhooks/alertmanager or remove it",
                "alertmanager_integration.idempotency.key_source: `labels`: toolgate keys each \
                 alert by fingerprint + startsAt + status only; set `fingerprint` or remove it",
            ]
        );
    }

    #[test]
    fn the_kubernetes_block_maps_clusters_and_the_watch() {
        let got = problems(KUBERNETES);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(
            got[0].starts_with(
                "kubernetes_integration.clusters[0].kubeconfig_secret_ref: `platform/local-kubeconfig` is a secret reference, read from OpenBao, and no openbao section is configured"
            ),
            "{got:#?}"
        );
        assert!(got[3].starts_with("kubernetes_integration.clusters[3].kubeconfig_secret_ref"));
        // The watch and the poll interval land on `kubernetes.watch`.
        let c = load(&format!(
            "{KUBERNETES}openbao: {{address: 'http://127.0.0.1:8200', auth: {{token: t}}}}\n"
        ))
        .expect("loads with openbao");
        let w = c.kubernetes.watch.as_ref().expect("the watch is on");
        assert_eq!(w.namespaces, ["ameide-*", "argocd", "monitoring"]);
        assert!(w.watches("ameide-dev") && w.watches("argocd") && !w.watches("kube-system"));
        assert_eq!(
            w.literal_namespaces(),
            None,
            "a glob: one watch of all namespaces"
        );
        assert!(w.services);
        assert_eq!(w.kinds.len(), 3);
        assert_eq!(w.poll_interval, Duration::from_secs(60));
        // Given in both places, it is refused naming both keys.
        let both = format!(
            "{KUBERNETES}kubernetes: {{watch: {{poll_interval: 30s}}}}\n\
             openbao: {{address: 'http://127.0.0.1:8200', auth: {{token: t}}}}\n"
        );
        assert_eq!(
            problems(&both),
            [
                "`kubernetes_integration.poll_interval` and `kubernetes.watch.poll_interval` both set kubernetes.watch.poll_interval; keep one of them"
            ]
        );
        // With OpenBao, each cluster's kubeconfig is read from it.
        let without_watch: String = KUBERNETES
            .lines()
            .filter(|l| {
                !["watch:", "namespaces:", "resource_types:", "poll_interval:"]
                    .iter()
                    .any(|k| l.trim_start().starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let c = load(&format!(
            "{without_watch}openbao: {{address: 'http://127.0.0.1:8200', auth: {{token: t}}}}\n"
        ))
        .expect("loads with openbao");
        let ClusterSource::KubeconfigSecret {
            kubeconfig,
            context,
        } = &c.kubernetes.clusters[3].source
        else {
            panic!("{:?}", c.kubernetes.clusters[3].source)
        };
        assert_eq!(
            kubeconfig.describe(),
            "openbao platform/production-kubeconfig"
        );
        assert_eq!(*context, None);

        // With kubeconfig files instead of OpenBao references, and without the watch, it loads.
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").expect("write");
        let yaml = format!(
            "kubernetes_integration:\n  enabled: true\n  clusters:\n\
             \x20   - {{name: dev, kubeconfig: {k}, context: dev}}\n\
             \x20   - {{name: production, in_cluster: true}}\n  log_tail_lines: 300\n",
            k = kubeconfig.display()
        );
        let c = load(&yaml).expect("loads");
        let k = &c.kubernetes;
        assert_eq!(k.log_tail_lines, 300);
        assert_eq!(k.default_cluster, "dev");
        assert_eq!(k.clusters.len(), 2);
        assert_eq!(
            k.clusters[0].source,
            ClusterSource::Kubeconfig {
                path: Some(kubeconfig.clone()),
                context: Some("dev".into())
            }
        );
        assert_eq!(k.clusters[1].source, ClusterSource::InCluster);
    }

    #[test]
    fn the_argocd_block_loads_as_written() {
        let c = load(ARGOCD).expect("loads");
        let a = c.argocd.as_ref().expect("argocd");
        assert_eq!(
            a.endpoint.url,
            "https://argocd-server.argocd.svc.cluster.local:443"
        );
        assert_eq!(a.poll_interval, Duration::from_secs(30));
        assert_eq!(a.environments, ["local", "dev", "staging", "production"]);
        assert!(a.poll);
        // Its token from OpenBao (toolgate's `secret_ref`), like Grafana's API key.
        let with_ref = format!(
            "{ARGOCD}  secret_ref: platform/argocd-token\nopenbao: {{address: 'http://127.0.0.1:8200', auth: {{token: t}}}}\n"
        );
        let c = load(&with_ref).expect("loads with openbao");
        assert_eq!(
            format!("{:?}", c.argocd.as_ref().expect("argocd").endpoint.auth),
            "Bearer(Credential(openbao platform/argocd-token))"
        );
        let got = problems(&format!("{ARGOCD}  secret_ref: platform/argocd-token\n"));
        assert!(
            got[0].starts_with(
                "argocd_integration.secret_ref: `platform/argocd-token` is a secret reference"
            ),
            "{got:?}"
        );
        assert_eq!(
            problems(&ARGOCD.replace("mode: polling", "mode: webhook")),
            [
                "argocd_integration.mode: `webhook`: toolgate reads ArgoCD by polling only; set `polling` or remove it"
            ]
        );
        assert_eq!(
            problems(&format!("{ARGOCD}argocd: {{poll_interval: 10s}}\n")),
            [
                "`argocd_integration.poll_interval` and `argocd.poll_interval` both set argocd.poll_interval; keep one of them"
            ]
        );
        assert!(
            load("argocd_integration: {enabled: false, argocd_server: 'x:443'}\n")
                .expect("loads")
                .argocd
                .is_none()
        );
    }

    #[test]
    fn ticketing_and_paging_blocks_load_as_written_github_issues_included() {
        // Their references are read from OpenBao: without it, each is named.
        let got = problems(&format!("{TICKETING}{PAGING}"));
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(
            got[0].starts_with("paging_integration.pagerduty.routing_key_ref"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("ticketing_integration.github.secret_ref"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with("ticketing_integration.jira.secret_ref"),
            "{got:#?}"
        );
        let bao = "openbao: {address: 'http://127.0.0.1:8200', auth: {token: t}}\n";
        let c = load(&format!("{TICKETING}{PAGING}{bao}")).expect("the seed blocks load");
        let t = c.incidents.ticketing.as_ref().expect("ticketing");
        assert_eq!(t.default_provider, "jira");
        let jira = t.jira.as_ref().expect("jira");
        assert_eq!(jira.endpoint.url, "https://company.atlassian.net");
        assert_eq!(jira.project_key, "SRE");
        let (email, token) = jira.basic.as_ref().expect("basic credentials");
        assert_eq!(email.describe(), "openbao platform/jira-credentials#email");
        assert_eq!(
            token.describe(),
            "openbao platform/jira-credentials#api_token"
        );
        let p = c.incidents.paging.as_ref().expect("paging");
        assert_eq!(p.default_provider, "pagerduty");
        let pd = p.pagerduty.as_ref().expect("pagerduty");
        assert_eq!(pd.events.url, "https://events.pagerduty.com");
        assert_eq!(
            pd.routing_key.describe(),
            "openbao platform/pagerduty-routing-key"
        );
        assert!(pd.api.is_none());
        assert_eq!(p.escalation.business_hours.zone_name, "UTC");
        // The github block loads too: the repository, and the token by its secret reference.
        let gh = t.github.as_ref().expect("github");
        assert_eq!(
            (gh.owner.as_str(), gh.repo.as_str()),
            ("org", "sre-incidents")
        );
        assert_eq!(gh.github.endpoint.url, "https://api.github.com");
        match &gh.github.endpoint.auth {
            crate::adapters::http::HttpAuth::Bearer(token) => {
                assert_eq!(token.describe(), "openbao platform/github-token")
            }
            other => panic!("a bearer token, not {other:?}"),
        }
        // GitHub as the default provider, as the seed allows.
        let github = TICKETING.replace("default_provider: jira", "default_provider: github");
        let c = load(&format!("{github}{bao}")).expect("github as the default loads");
        assert_eq!(
            c.incidents
                .ticketing
                .as_ref()
                .map(|t| t.default_provider.as_str()),
            Some("github")
        );
        // A repository that is not owner/name is refused, naming the key.
        let bad = TICKETING.replace("org/sre-incidents", "sre-incidents");
        let got = problems(&format!("{bad}{bao}"));
        assert_eq!(
            got,
            ["ticketing.github.repo: `sre-incidents` is not owner/name (e.g. org/sre-incidents)"]
        );
        // The block and toolgate's own section at once: one of them.
        let both = format!("{TICKETING}ticketing: {{enabled: false}}\n{bao}");
        assert_eq!(
            problems(&both),
            ["ticketing_integration and ticketing: give one of them (they are the same section)"]
        );
    }

    #[test]
    fn all_six_blocks_load_together_and_a_block_switched_off_asks_for_nothing() {
        // A block switched off asks for nothing, so it loads.
        let off = "argocd_integration: {enabled: false}\nticketing_integration: {enabled: false}\n\
                   paging_integration: {enabled: false}\n";
        assert!(load(off).is_ok());
        // All six blocks at once: every refusal is reported together (the ticketing and
        // paging blocks' three secret references without OpenBao among them).
        let all = [
            KUBERNETES,
            ARGOCD,
            OBSERVABILITY,
            ALERTMANAGER,
            TICKETING,
            PAGING,
        ]
        .concat();
        let got = problems(&all);
        // Nothing is refused: the eight problems are the blocks' secret references (four
        // kubeconfigs, Grafana, PagerDuty, Jira, GitHub) without an OpenBao to read them from.
        assert_eq!(got.len(), 8, "{got:#?}");
        assert!(
            got.iter()
                .all(|p| p.contains("no openbao section is configured")),
            "{got:#?}"
        );
        let bao = "openbao: {address: 'http://127.0.0.1:8200', auth: {token: t}}\n";
        assert!(
            load(&format!("{all}{bao}")).is_ok(),
            "with OpenBao all six load"
        );
        // §4 and §5 repeat the webhook's settings with the same values: they agree, so no
        // problem comes of it.
        let c = load(&format!(
            "{ALERTMANAGER}{}",
            OBSERVABILITY.replace("    secret_ref: platform/grafana-api-key\n", "")
        ))
        .expect("agreeing blocks load");
        assert_eq!(
            c.webhooks.alertmanager.dedup_window,
            Duration::from_secs(300)
        );
    }

    #[test]
    fn a_setting_given_twice_is_refused_naming_both_keys() {
        let yaml = "observability_integration:\n  prometheus: {url: 'http://a:9090', timeout: 30s}\n\
                    observability:\n  prometheus: {url: 'http://b:9090', timeout_seconds: 10}\n\
                    kubernetes_integration: {log_tail_lines: 100}\nkubernetes: {log_tail_lines: 200}\n";
        assert_eq!(
            problems(yaml),
            [
                "`kubernetes_integration.log_tail_lines` and `kubernetes.log_tail_lines` both set kubernetes.log_tail_lines; keep one of them",
                "`observability_integration.prometheus.url` and `observability.prometheus.url` both set observability.prometheus.url; keep one of them",
                "`observability_integration.prometheus.timeout` and `observability.prometheus.timeout_seconds` both set observability.prometheus.timeout; keep one of them",
            ]
        );
        // Two seed blocks that both set the webhook's window.
        let both = format!(
            "{ALERTMANAGER}observability_integration:\n  alertmanager:\n    idempotency: {{dedup_window: 10m}}\n"
        );
        assert_eq!(
            problems(&both),
            ["`alertmanager_integration.idempotency.dedup_window` and \
              `observability_integration.alertmanager.idempotency.dedup_window` both set \
              webhooks.alertmanager.dedup_window_seconds; keep one of them"]
        );
        // And an environment override counts as toolgate's own key.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, ALERTMANAGER).expect("write");
        let env = [(
            "TOOLGATE_WEBHOOKS_ALERTMANAGER_DEDUP_WINDOW_SECONDS".to_string(),
            "1m".to_string(),
        )];
        let err = Config::load_from(Some(&path), &env).expect_err("twice");
        assert_eq!(
            err.problems,
            ["`alertmanager_integration.idempotency.dedup_window` and \
              `webhooks.alertmanager.dedup_window_seconds` both set \
              webhooks.alertmanager.dedup_window_seconds; keep one of them"]
        );
    }

    #[test]
    fn unknown_keys_in_a_seed_block_name_the_closest_key() {
        let got = problems("kubernetes_integration:\n  log_tail_line: 5\n");
        assert!(
            got[0].ends_with(
                "unknown key `kubernetes_integration.log_tail_line`; did you mean `log_tail_lines`?"
            ),
            "{got:?}"
        );
        let got = problems("observability_integrations: {}\n");
        assert!(
            got[0].ends_with(
                "unknown key `observability_integrations`; did you mean `observability_integration`?"
            ),
            "{got:?}"
        );
    }
}
