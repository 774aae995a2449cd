//! The `observability` config section: Prometheus, Loki, Tempo and Grafana blocks (the kit's
//! endpoint keys, plus Loki's tenant and Grafana's public URL) and the validated upstreams
//! `Observability::new` builds its clients from. `config.rs` embeds the block, merges
//! environment overrides and collects the problems; the checks live here, beside their user.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::http::Endpoint;
use crate::adapters::http::config::resolve as endpoint;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawObservability {
    /// Prometheus (or any server with its HTTP API) for `obs.query_metrics`.
    pub prometheus: Option<RawObsUpstream>,
    /// Loki for `obs.search_logs`.
    pub loki: Option<RawLoki>,
    /// Tempo for `obs.get_trace` and `obs.search_traces`.
    pub tempo: Option<RawObsUpstream>,
    /// Grafana for `obs.get_dashboard_url` and `obs.annotate`.
    pub grafana: Option<RawGrafana>,
}

crate::raw_endpoint! {
    /// An observability upstream (the kit's keys only).
    pub struct RawObsUpstream {}
}

crate::raw_endpoint! {
    /// Loki.
    pub struct RawLoki {
        /// Tenant sent as `X-Scope-OrgID` (multi-tenant Loki). Default: none.
        pub tenant: Option<String>,
    }
}

crate::raw_endpoint! {
    /// Grafana; a service-account token goes in `auth.bearer_token`.
    pub struct RawGrafana {
        /// Base URL people open in a browser, for dashboard links. Default: `url`.
        pub public_url: Option<String>,
    }
}

/// Which observability upstreams are configured (`None`: its tools say "not configured").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservabilityConfig {
    pub prometheus: Option<Endpoint>,
    pub loki: Option<Endpoint>,
    /// Loki's `X-Scope-OrgID`.
    pub loki_tenant: Option<String>,
    pub tempo: Option<Endpoint>,
    pub grafana: Option<Endpoint>,
    /// Base of dashboard links; `grafana.url` unless `public_url` is set.
    pub grafana_public_url: Option<String>,
}

/// Validate the `observability` block; every problem names its key.
pub fn resolve(raw: RawObservability, problems: &mut Vec<String>) -> ObservabilityConfig {
    let p = raw.prometheus.unwrap_or_default();
    let t = raw.tempo.unwrap_or_default();
    let l = raw.loki.unwrap_or_default();
    let g = raw.grafana.unwrap_or_default();
    let prometheus = endpoint(
        "observability.prometheus",
        p.url.as_deref(),
        p.endpoint_fields(),
        problems,
    );
    let tempo = endpoint(
        "observability.tempo",
        t.url.as_deref(),
        t.endpoint_fields(),
        problems,
    );
    let loki = endpoint(
        "observability.loki",
        l.url.as_deref(),
        l.endpoint_fields(),
        problems,
    );
    if let Some(tenant) = &l.tenant
        && (tenant.trim().is_empty() || tenant.contains(['\r', '\n']))
    {
        problems
            .push("observability.loki.tenant: must be a non-empty single-line tenant id".into());
    }
    let grafana = endpoint(
        "observability.grafana",
        g.url.as_deref(),
        g.endpoint_fields(),
        problems,
    );
    let grafana_public_url = match g.public_url {
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            Some(url.trim_end_matches('/').to_string())
        }
        Some(url) => {
            problems.push(format!(
                "observability.grafana.public_url: `{url}` must start with http:// or https://"
            ));
            None
        }
        None => grafana.as_ref().map(|g| g.url.clone()),
    };
    ObservabilityConfig {
        prometheus,
        loki,
        loki_tenant: l.tenant,
        tempo,
        grafana,
        grafana_public_url,
    }
}

#[cfg(test)]
mod tests {
    use crate::adapters::http::HttpAuth;
    use crate::config::Config;
    use crate::config::test_config_file as write_config;
    use crate::config::test_env as env;

    #[test]
    fn observability_upstreams_resolve_with_secrets_from_the_environment() {
        let (_dir, path) = write_config(
            "observability:\n  prometheus:\n    url: http://prom:9090/\n    timeout_seconds: 5\n  loki:\n    url: http://loki:3100\n    tenant: team-a\n    auth: {username: u}\n  grafana:\n    url: http://grafana:3000\n",
        );
        let err = Config::load_from(Some(&path), &[]).expect_err("password missing");
        assert!(
            err.to_string()
                .contains("observability.loki.auth: basic auth needs both username and password"),
            "{err}"
        );
        let c = Config::load_from(
            Some(&path),
            &env(&[
                ("TOOLGATE_OBSERVABILITY_LOKI_AUTH_PASSWORD", "pw"),
                ("TOOLGATE_OBSERVABILITY_GRAFANA_AUTH_BEARER_TOKEN", "glsa_x"),
            ]),
        )
        .expect("valid");
        let o = &c.observability;
        let prom = o.prometheus.as_ref().expect("prometheus");
        assert_eq!(prom.url, "http://prom:9090");
        assert_eq!(prom.settings.timeout, std::time::Duration::from_secs(5));
        assert_eq!(o.loki_tenant.as_deref(), Some("team-a"));
        assert_eq!(
            o.loki.as_ref().map(|l| l.auth.clone()),
            Some(HttpAuth::Basic {
                username: "u".into(),
                password: crate::adapters::http::Credential::inline("pw")
            })
        );
        let grafana = o.grafana.as_ref().expect("grafana");
        assert_eq!(
            grafana.auth,
            HttpAuth::Bearer(crate::adapters::http::Credential::inline("glsa_x"))
        );
        assert!(
            !format!("{grafana:?}").contains("glsa_x"),
            "secrets never print"
        );
        assert_eq!(o.grafana_public_url.as_deref(), Some("http://grafana:3000"));
        assert!(o.tempo.is_none());
    }

    #[test]
    fn bad_observability_settings_are_all_reported() {
        let (_dir, path) = write_config(
            "observability:\n  prometheus:\n    url: prom:9090\n    timeout_seconds: 0\n  tempo:\n    url: http://u:p@tempo:3200\n    tls: {ca_file: /nonexistent/ca.pem}\n",
        );
        let text = Config::load_from(Some(&path), &[])
            .expect_err("invalid")
            .to_string();
        for needle in [
            "observability.prometheus.url: `prom:9090` is not an http:// or https:// URL",
            "observability.prometheus.timeout_seconds: 0 is out of range",
            "observability.tempo.url: must not carry credentials",
            "observability.tempo.tls.ca_file: file `/nonexistent/ca.pem` does not exist",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        std::fs::write(&path, "observability:\n  prometheus:\n    tenant: x\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("tenant is Loki's");
        assert!(
            err.to_string()
                .contains("unknown key `observability.prometheus.tenant`"),
            "{err}"
        );
    }
}
