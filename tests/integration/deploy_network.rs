//! The Cilium policies of `deploy/` against the traffic toolgate really has: every route the
//! server serves has an ingress rule for its audience (and no other audience reaches it), every
//! upstream key of the config reference has an egress policy that admits the shipped config's
//! address, nothing else is open, and one shape test per rule. Also domain isolation
//! (`deploy/cilium`) and PR-QUEST's own policy (`deploy/pr-quest`).

use std::collections::BTreeSet;

use regex::Regex;
use reqwest::Url;
use serde_yaml::Value;

use crate::deploy::{BASE, NAMESPACE, REPLICAS, find, render, repo, strings, text};

const PR_QUEST: &str = "deploy/pr-quest";
const CILIUM: &str = "deploy/cilium";
const PORT: &str = "3000";

/// Every config key naming an upstream toolgate calls, and the CiliumNetworkPolicy that lets the
/// call out (`*` stands for one key segment). The test below finds every upstream key in the
/// config reference (`toolgate::config::config_paths`, the schema toolgate publishes for its
/// config): one without a row here fails. When an integration adds a key, add its row (and its
/// policy in deploy/kustomize/base/ciliumnetworkpolicy-egress.yaml).
const EGRESS: &[(&str, &str)] = &[
    ("kubernetes.clusters", "toolgate"),
    ("store.url", "toolgate-egress-postgres"),
    ("auth.issuer", "toolgate-egress-zitadel"),
    (
        "*.*.auth.zitadel_service_token.issuer",
        "toolgate-egress-zitadel",
    ),
    (
        "*.auth.zitadel_service_token.issuer",
        "toolgate-egress-zitadel",
    ),
    ("approvals.webhook_url", "toolgate-egress-approvals-webhook"),
    ("*.prometheus.url", "toolgate-egress-prometheus"),
    (
        "sli_calculation.prometheus_url",
        "toolgate-egress-prometheus",
    ),
    ("*.loki.url", "toolgate-egress-loki"),
    ("*.tempo.url", "toolgate-egress-tempo"),
    ("*.grafana.url", "toolgate-egress-grafana"),
    ("*.alertmanager.url", "toolgate-egress-alertmanager"),
    ("openbao.address", "toolgate-egress-openbao"),
    ("memory.cognee.url", "toolgate-egress-cognee"),
    ("intents.nats.url", "toolgate-egress-nats"),
    ("knowledge.embeddings.url", "toolgate-egress-embeddings"),
    ("knowledge.topics.url", "toolgate-egress-nats"),
    // Review, ArgoCD, ticketing, paging and the incident facts consumer.
    ("review.prquest.url", "toolgate-egress-pr-quest"),
    ("review.github.url", "toolgate-egress-github"),
    ("argocd.url", "toolgate-egress-argocd"),
    ("argocd_integration.argocd_server", "toolgate-egress-argocd"),
    ("ticketing.jira.url", "toolgate-egress-jira"),
    ("ticketing.github.url", "toolgate-egress-github"),
    ("paging.pagerduty.url", "toolgate-egress-pagerduty"),
    ("paging.pagerduty.events_url", "toolgate-egress-pagerduty"),
    ("paging.opsgenie.url", "toolgate-egress-opsgenie"),
    ("paging.pagerduty.api_url", "toolgate-egress-pagerduty"),
    (
        "paging_integration.pagerduty.url",
        "toolgate-egress-pagerduty",
    ),
    (
        "paging_integration.pagerduty.api_url",
        "toolgate-egress-pagerduty",
    ),
    (
        "paging_integration.opsgenie.url",
        "toolgate-egress-opsgenie",
    ),
    ("ticketing.jira.base_url", "toolgate-egress-jira"),
    ("ticketing_integration.jira.url", "toolgate-egress-jira"),
    (
        "ticketing_integration.jira.base_url",
        "toolgate-egress-jira",
    ),
    ("ticketing_integration.github.url", "toolgate-egress-github"),
    ("facts.nats.url", "toolgate-egress-nats"),
];

/// Keys that look like upstream URLs but are never called, and why.
const NOT_CALLED: &[(&str, &str)] = &[
    (
        "public_url",
        "the address clients use to reach toolgate (links)",
    ),
    (
        "observability.grafana.public_url",
        "dashboard links for people",
    ),
];

/// Whether a config key names something toolgate connects to.
fn is_upstream_key(path: &[String]) -> bool {
    let last = path.last().map(String::as_str).unwrap_or_default();
    matches!(last, "url" | "address" | "issuer" | "server" | "host")
        || last.ends_with("_url")
        || last.ends_with("_server")
}

fn key_matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    p.len() == k.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k)
}

/// Base and replicas together: the replicas overlay adds the PostgreSQL policy.
fn toolgate_policies() -> Vec<Value> {
    let mut docs: Vec<Value> = Vec::new();
    for dir in [BASE, REPLICAS] {
        for doc in render(dir) {
            if doc["kind"] == "CiliumNetworkPolicy"
                && !docs
                    .iter()
                    .any(|d| d["metadata"]["name"] == doc["metadata"]["name"])
            {
                docs.push(doc);
            }
        }
    }
    docs
}

fn rules<'a>(policy: &'a Value, direction: &str) -> &'a [Value] {
    policy["spec"][direction]
        .as_sequence()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Cilium's DNS pattern: `*` stands for any run of DNS characters within one label; `*` alone
/// for every name.
fn dns_matches(pattern: &str, name: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let re = format!(
        "(?i)^{}\\.?$",
        regex::escape(pattern.trim_end_matches('.')).replace(r"\*", "[-a-zA-Z0-9_]*")
    );
    Regex::new(&re).expect("pattern").is_match(name)
}

/// The names the DNS rules of these policies let the pod resolve.
fn dns_allows(policies: &[Value], name: &str) -> bool {
    policies.iter().flat_map(|p| rules(p, "egress")).any(|r| {
        r["toPorts"].as_sequence().into_iter().flatten().any(|tp| {
            tp["rules"]["dns"]
                .as_sequence()
                .into_iter()
                .flatten()
                .any(
                    |d| match (d["matchName"].as_str(), d["matchPattern"].as_str()) {
                        (Some(n), _) => n.eq_ignore_ascii_case(name),
                        (_, Some(p)) => dns_matches(p, name),
                        _ => false,
                    },
                )
        })
    })
}

fn ports(rule: &Value) -> Vec<(String, String)> {
    rule["toPorts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|tp| tp["ports"].as_sequence().into_iter().flatten())
        .map(|p| {
            (
                text(&p["port"]).to_string(),
                text(&p["protocol"]).to_string(),
            )
        })
        .collect()
}

/// Whether an HTTP rule list admits `method path` (Cilium matches method and path as extended
/// regular expressions against the whole value).
fn http_admits(rule: &Value, method: &str, path: &str) -> bool {
    rule["toPorts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|tp| tp["rules"]["http"].as_sequence().into_iter().flatten())
        .any(|h| {
            let full = |re: &str, s: &str| {
                Regex::new(&format!("^(?:{re})$"))
                    .unwrap_or_else(|e| panic!("bad regex {re}: {e}"))
                    .is_match(s)
            };
            h["method"].as_str().is_none_or(|m| full(m, method))
                && h["path"].as_str().is_none_or(|p| full(p, path))
        })
}

fn ingress_from<'a>(policy: &'a Value, key: &str, value: &str) -> &'a Value {
    rules(policy, "ingress")
        .iter()
        .find(|r| {
            r["fromEndpoints"]
                .as_sequence()
                .is_some_and(|eps| eps.iter().any(|e| e["matchLabels"][key] == value))
        })
        .unwrap_or_else(|| panic!("no ingress rule from {key}={value}"))
}

/// The `.rs` files below `dir`.
fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The routes the server serves, read from the router's source: every `.route("PATH"` and
/// `.nest("PATH"` (or a `const` path defined anywhere in src/) under src/transport, tests
/// excluded.
fn served_routes() -> Vec<String> {
    let call = Regex::new(r#"\.(?:route|nest)\(\s*(?:"([^"]+)"|([A-Z_][A-Z0-9_]*))"#).expect("re");
    let sources: Vec<String> = rust_files(&repo().join("src"))
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read source"))
        .collect();
    let constant = |name: &str| {
        let def = Regex::new(&format!(r#"const {name}: &str = "([^"]+)""#)).expect("re");
        sources
            .iter()
            .find_map(|s| def.captures(s).map(|c| c[1].to_string()))
            .unwrap_or_else(|| panic!("route constant {name} not found in src/"))
    };
    let mut routes = BTreeSet::new();
    for path in rust_files(&repo().join("src/transport")) {
        let source = std::fs::read_to_string(&path).expect("read source");
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        for c in call.captures_iter(code) {
            match (c.get(1), c.get(2)) {
                (Some(literal), _) => routes.insert(literal.as_str().to_string()),
                (_, Some(name)) => routes.insert(constant(name.as_str())),
                _ => false,
            };
        }
    }
    assert!(routes.len() > 10, "too few routes found: {routes:?}");
    routes.into_iter().collect()
}

/// A concrete path for a route (`{id}` → a sample value).
fn sample(route: &str) -> String {
    Regex::new(r"\{[^}]+\}")
        .expect("re")
        .replace_all(route, "a1b2c3")
        .into_owned()
}

#[test]
fn every_route_the_server_serves_has_an_ingress_rule() {
    let docs = render(BASE);
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate");
    let ingress = rules(policy, "ingress");
    let mut missing = Vec::new();
    for route in served_routes() {
        let path = sample(&route);
        let admitted = ["GET", "POST", "DELETE"]
            .iter()
            .any(|m| ingress.iter().any(|r| http_admits(r, m, &path)));
        if !admitted {
            missing.push(route);
        }
    }
    assert!(
        missing.is_empty(),
        "routes no ingress rule admits (add them to deploy/kustomize/base/ciliumnetworkpolicy.yaml for their audience): {missing:?}"
    );
}

#[test]
fn every_ingress_rule_is_port_3000_with_l7_rules_so_nothing_else_is_open() {
    let docs = render(BASE);
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate");
    assert_eq!(
        policy["spec"]["endpointSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "toolgate"
    );
    let ingress = rules(policy, "ingress");
    assert_eq!(
        ingress.len(),
        5,
        "agents, approvers, Alertmanager, Prometheus, probes"
    );
    for rule in ingress {
        assert_eq!(
            ports(rule),
            [(PORT.to_string(), "TCP".to_string())],
            "{rule:?}"
        );
        let http = rule["toPorts"][0]["rules"]["http"].as_sequence();
        assert!(
            http.is_some_and(|h| !h.is_empty()),
            "an ingress rule without L7 HTTP rules opens every path: {rule:?}"
        );
        // Peers are named, never every endpoint or the world.
        for e in strings(&rule["fromEntities"]) {
            assert_eq!(e, "host", "{rule:?}");
        }
        assert!(rule["fromCIDR"].is_null() && rule["fromCIDRSet"].is_null());
        for ep in rule["fromEndpoints"].as_sequence().into_iter().flatten() {
            assert!(
                ep["matchLabels"]
                    .as_mapping()
                    .is_some_and(|m| !m.is_empty()),
                "an empty selector admits every pod: {rule:?}"
            );
        }
    }
    // No policy besides `toolgate` opens ingress to toolgate.
    for p in toolgate_policies() {
        if p["metadata"]["name"] != "toolgate" {
            assert!(
                p["spec"]["ingress"].is_null(),
                "{}",
                text(&p["metadata"]["name"])
            );
        }
    }
}

#[test]
fn agents_reach_the_tool_surfaces_and_discovery_only() {
    let docs = render(BASE);
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate");
    let rule = ingress_from(
        policy,
        "k8s:io.cilium.k8s.namespace.labels.pipe.ameide.io/agents",
        "true",
    );
    for (m, p) in [
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("DELETE", "/mcp"),
        ("POST", "/rpc"),
        ("POST", "/a2a"),
        ("GET", "/.well-known/agent-card.json"),
        ("GET", "/.well-known/oauth-protected-resource"),
        ("GET", "/.well-known/oauth-protected-resource/mcp"),
    ] {
        assert!(http_admits(rule, m, p), "agents cannot {m} {p}");
    }
    for (m, p) in [
        ("GET", "/approvals"),
        ("POST", "/api/v1/approvals/a1/approve"),
        ("GET", "/api/v1/approvals"),
        ("POST", "/webhooks/alertmanager"),
        ("GET", "/metrics"),
        ("GET", "/mcpx"),
        ("GET", "/.well-known/agent-cardXjson"),
        ("PUT", "/mcp"),
    ] {
        assert!(!http_admits(rule, m, p), "agents can {m} {p}");
    }
}

#[test]
fn approvers_come_through_the_ingress_controller_to_the_approval_routes_only() {
    let docs = render(BASE);
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate");
    let rule = ingress_from(policy, "k8s:io.kubernetes.pod.namespace", "ingress-nginx");
    assert_eq!(
        rule["fromEndpoints"][0]["matchLabels"]["k8s:app.kubernetes.io/name"],
        "ingress-nginx"
    );
    for (m, p) in [
        ("GET", "/approvals"),
        ("GET", "/approvals/login"),
        ("POST", "/approvals/login"),
        ("GET", "/approvals/callback"),
        ("POST", "/approvals/logout"),
        ("GET", "/approvals/a1"),
        ("POST", "/approvals/a1/approve"),
        ("GET", "/api/v1/approvals"),
        ("GET", "/api/v1/approvals/a1"),
        ("POST", "/api/v1/approvals/a1/approve"),
        ("POST", "/api/v1/approvals/a1/deny"),
        ("POST", "/api/v1/approvals/a1/cancel"),
        ("GET", "/api/v1/openapi.json"),
    ] {
        assert!(http_admits(rule, m, p), "approvers cannot {m} {p}");
    }
    for (m, p) in [
        ("POST", "/mcp"),
        ("POST", "/rpc"),
        ("POST", "/a2a"),
        ("POST", "/webhooks/alertmanager"),
        ("GET", "/metrics"),
        ("POST", "/api/v1/approvals/a1/delete"),
        ("DELETE", "/api/v1/approvals/a1"),
    ] {
        assert!(!http_admits(rule, m, p), "approvers can {m} {p}");
    }
}

#[test]
fn alertmanager_may_only_post_to_the_webhook() {
    let docs = render(BASE);
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate");
    let rule = ingress_from(policy, "k8s:app.kubernetes.io/name", "alertmanager");
    assert_eq!(
        rule["fromEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
        "monitoring"
    );
    let http = rule["toPorts"][0]["rules"]["http"]
        .as_sequence()
        .expect("http");
    assert_eq!(http.len(), 1, "{http:?}");
    assert_eq!(http[0]["method"], "POST");
    assert_eq!(
        http[0]["path"],
        toolgate::transport::webhooks::ALERTMANAGER_PATH
    );
    assert!(!http_admits(rule, "GET", "/webhooks/alertmanager"));
    assert!(!http_admits(rule, "POST", "/webhooks/alertmanager/x"));
    assert!(!http_admits(rule, "POST", "/mcp"));
}

#[test]
fn prometheus_may_only_scrape_metrics_and_the_kubelet_only_probe() {
    let docs = render(BASE);
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate");
    let scrape = ingress_from(policy, "k8s:app.kubernetes.io/name", "prometheus");
    assert_eq!(
        scrape["fromEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
        "monitoring"
    );
    assert!(http_admits(scrape, "GET", "/metrics"));
    assert!(!http_admits(scrape, "POST", "/mcp"));
    assert!(!http_admits(scrape, "GET", "/readyz"));

    let probes = rules(policy, "ingress")
        .iter()
        .find(|r| strings(&r["fromEntities"]) == ["host"])
        .expect("probe rule");
    let deployment = find(&docs, "Deployment", "toolgate");
    let c = crate::deploy::container(deployment);
    for probe in ["livenessProbe", "readinessProbe"] {
        let path = text(&c[probe]["httpGet"]["path"]);
        assert!(
            http_admits(probes, "GET", path),
            "{probe} {path} is dropped"
        );
    }
    assert!(!http_admits(probes, "POST", "/mcp"));
    assert!(!http_admits(probes, "GET", "/metrics"));
}

#[test]
fn egress_reaches_the_api_server_and_dns_for_the_allowed_names_only() {
    let docs = render(BASE);
    let policy = find(&docs, "CiliumNetworkPolicy", "toolgate");
    let egress = rules(policy, "egress");
    assert_eq!(egress.len(), 2, "{egress:?}");
    assert_eq!(strings(&egress[0]["toEntities"]), ["kube-apiserver"]);
    let dns = &egress[1];
    assert_eq!(
        dns["toEndpoints"][0]["matchLabels"]["k8s:k8s-app"],
        "kube-dns"
    );
    assert_eq!(
        dns["toEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
        "kube-system"
    );
    let mut protocols: Vec<String> = ports(dns)
        .into_iter()
        .map(|(p, proto)| format!("{p}/{proto}"))
        .collect();
    protocols.sort();
    assert_eq!(protocols, ["53/TCP", "53/UDP"]);
    let names = dns["toPorts"][0]["rules"]["dns"]
        .as_sequence()
        .expect("L7 DNS rules");
    assert!(!names.is_empty());
    for n in names {
        assert_ne!(n["matchPattern"], "*", "DNS must name the allowed names");
    }
    let policies = vec![policy.clone()];
    assert!(dns_allows(
        &policies,
        "prometheus.monitoring.svc.cluster.local"
    ));
    assert!(dns_allows(&policies, "api.github.com"));
    assert!(dns_allows(&policies, "acme.atlassian.net"));
    assert!(!dns_allows(&policies, "evil.example.com"));
    assert!(!dns_allows(&policies, "a.b.atlassian.net.evil.example"));
    // Names are looked up as written, so the DNS rule is what decides (see deployment.yaml).
    let deployment = find(&docs, "Deployment", "toolgate");
    let options = &deployment["spec"]["template"]["spec"]["dnsConfig"]["options"];
    assert_eq!(options[0]["name"], "ndots");
    assert_eq!(options[0]["value"], "1");
}

/// Each egress policy: selects toolgate, and each of its rules names one destination (pods by
/// namespace and label, or names by toFQDNs on 443) with explicit ports; never CIDRs, services,
/// whole entities or empty selectors.
#[test]
fn every_egress_policy_names_its_destination_and_ports() {
    let policies = toolgate_policies();
    let base = find(&policies, "CiliumNetworkPolicy", "toolgate").clone();
    for p in policies
        .iter()
        .filter(|p| p["metadata"]["name"] != "toolgate")
    {
        let name = text(&p["metadata"]["name"]);
        assert!(name.starts_with("toolgate-egress-"), "{name}");
        assert_eq!(
            p["spec"]["endpointSelector"]["matchLabels"]["app.kubernetes.io/name"], "toolgate",
            "{name}"
        );
        assert!(
            p["spec"]["description"].is_string(),
            "{name} has no description"
        );
        for rule in rules(p, "egress") {
            for field in [
                "toCIDR",
                "toCIDRSet",
                "toServices",
                "toEntities",
                "toGroups",
                "toNodes",
            ] {
                assert!(rule[field].is_null(), "{name}: {field} in {rule:?}");
            }
            let ps = ports(rule);
            assert!(
                !ps.is_empty(),
                "{name}: a rule without ports opens every port: {rule:?}"
            );
            if let Some(fqdns) = rule["toFQDNs"].as_sequence() {
                assert_eq!(ps, [("443".to_string(), "TCP".to_string())], "{name}");
                for f in fqdns {
                    let n = f["matchName"]
                        .as_str()
                        .or(f["matchPattern"].as_str())
                        .expect("matchName or matchPattern");
                    assert_ne!(n, "*", "{name}");
                    let sample = n.replace('*', "acme");
                    assert!(
                        dns_allows(&policies, &sample),
                        "{name}: {n} is not in a DNS rule, so it never resolves"
                    );
                }
            } else {
                let eps = rule["toEndpoints"]
                    .as_sequence()
                    .expect("toEndpoints or toFQDNs");
                for ep in eps {
                    let labels = &ep["matchLabels"];
                    let ns = labels["k8s:io.kubernetes.pod.namespace"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: no namespace in {ep:?}"));
                    assert!(
                        labels["k8s:app.kubernetes.io/name"].is_string()
                            || labels["k8s:k8s-app"].is_string(),
                        "{name}: {ep:?} selects a whole namespace"
                    );
                    if labels["k8s:k8s-app"] != "kube-dns" {
                        assert!(
                            dns_allows(&policies, &format!("svc.{ns}.svc.cluster.local")),
                            "{name}: no DNS rule for *.{ns}.svc.cluster.local"
                        );
                    }
                }
            }
        }
    }
    drop(base);
}

/// The one source of truth: every upstream key of the config reference has a row in EGRESS,
/// every row's policy is rendered, every egress policy is some row's (nothing else open), and
/// each upstream the shipped config sets is admitted by its policy, host and port.
#[test]
fn every_upstream_in_the_config_reference_has_an_egress_rule() {
    let keys: Vec<String> = toolgate::config::config_paths()
        .into_iter()
        .filter(|p| is_upstream_key(p) || p.join(".") == "kubernetes.clusters")
        .map(|p| p.join("."))
        .collect();
    assert!(keys.iter().any(|k| k == "openbao.address"), "{keys:?}");
    let policies = toolgate_policies();
    let mut unmapped = Vec::new();
    for key in &keys {
        if NOT_CALLED.iter().any(|(k, _)| k == key) {
            continue;
        }
        match EGRESS.iter().find(|(pattern, _)| key_matches(pattern, key)) {
            Some((_, policy)) => {
                assert!(
                    policies.iter().any(|p| p["metadata"]["name"] == *policy),
                    "{key}: policy {policy} is not rendered by {BASE} or {REPLICAS}"
                );
            }
            None => unmapped.push(key.clone()),
        }
    }
    assert!(
        unmapped.is_empty(),
        "config keys naming upstreams without an egress rule (add a policy to deploy/kustomize/base/ciliumnetworkpolicy-egress.yaml and a row to EGRESS in tests/integration/deploy_network.rs): {unmapped:?}"
    );
    for p in &policies {
        let name = text(&p["metadata"]["name"]);
        assert!(
            EGRESS.iter().any(|(_, policy)| *policy == name),
            "{name} opens egress no config key needs"
        );
    }

    // The shipped config's upstreams, host and port, against their policies.
    let docs = render(BASE);
    let configmap = find(&docs, "ConfigMap", "toolgate-config");
    let shipped: Value =
        serde_yaml::from_str(text(&configmap["data"]["config.yaml"])).expect("yaml");
    let mut checked = 0;
    for key in keys
        .iter()
        .filter(|k| !NOT_CALLED.iter().any(|(n, _)| n == *k))
    {
        let value = key.split('.').fold(&shipped, |v, k| &v[k]);
        let Some(url) = value.as_str() else { continue };
        let (_, policy) = EGRESS
            .iter()
            .find(|(pattern, _)| key_matches(pattern, key))
            .expect("mapped above");
        let policy = find(&policies, "CiliumNetworkPolicy", policy);
        let url = Url::parse(url).unwrap_or_else(|e| panic!("{key}: {url}: {e}"));
        let host = url.host_str().expect("host");
        let port = url
            .port_or_known_default()
            .or(match url.scheme() {
                "nats" => Some(4222),
                _ => None,
            })
            .expect("port")
            .to_string();
        assert!(
            dns_allows(&policies, host),
            "{key}: {host} is not in a DNS rule"
        );
        let admitted = rules(policy, "egress").iter().any(|rule| {
            let port_ok = ports(rule).iter().any(|(p, _)| *p == port);
            let dest_ok = match host.strip_suffix(".svc.cluster.local") {
                Some(svc_ns) => {
                    let ns = svc_ns.rsplit('.').next().unwrap_or_default();
                    rule["toEndpoints"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .any(|ep| ep["matchLabels"]["k8s:io.kubernetes.pod.namespace"] == ns)
                }
                None => rule["toFQDNs"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|f| {
                        f["matchName"].as_str() == Some(host)
                            || f["matchPattern"]
                                .as_str()
                                .is_some_and(|p| dns_matches(p, host))
                    }),
            };
            port_ok && dest_ok
        });
        assert!(
            admitted,
            "{key}: {url} (host {host}, port {port}) is not admitted by {}",
            text(&policy["metadata"]["name"])
        );
        checked += 1;
    }
    assert!(checked >= 6, "the shipped config sets upstreams: {checked}");
}

#[test]
fn key_patterns_and_dns_patterns_match_as_cilium_and_the_table_mean() {
    assert!(key_matches(
        "*.prometheus.url",
        "observability.prometheus.url"
    ));
    assert!(key_matches(
        "*.prometheus.url",
        "observability_integration.prometheus.url"
    ));
    assert!(!key_matches(
        "*.prometheus.url",
        "sli_calculation.prometheus_url"
    ));
    assert!(!key_matches("*.url", "a.b.url"));
    assert!(dns_matches("*.atlassian.net", "acme.atlassian.net"));
    assert!(!dns_matches("*.atlassian.net", "a.acme.atlassian.net"));
    assert!(!dns_matches("*.atlassian.net", "atlassian.net.evil"));
    assert!(is_upstream_key(&[
        "argocd_integration".into(),
        "argocd_server".into()
    ]));
    assert!(!is_upstream_key(&["mcp".into(), "allowed_hosts".into()]));
}

#[test]
fn pr_quest_egress_is_its_two_calls_to_the_pr_quest_pods() {
    let policies = toolgate_policies();
    let policy = find(&policies, "CiliumNetworkPolicy", "toolgate-egress-pr-quest");
    let rule = &rules(policy, "egress")[0];
    assert_eq!(ports(rule), [(PORT.to_string(), "TCP".to_string())]);
    assert!(http_admits(rule, "GET", "/api/diff"));
    assert!(http_admits(rule, "POST", "/api/group"));
    assert!(!http_admits(rule, "POST", "/api/diff"));
    assert!(!http_admits(rule, "GET", "/"));
    // The selector is PR-QUEST's pods as deploy/pr-quest renders them.
    let pq = render(PR_QUEST);
    let pod_labels =
        &find(&pq, "Deployment", "pr-quest-service")["spec"]["template"]["metadata"]["labels"];
    let selector = &rule["toEndpoints"][0]["matchLabels"];
    assert_eq!(selector["k8s:io.kubernetes.pod.namespace"], NAMESPACE);
    assert_eq!(
        selector["k8s:app.kubernetes.io/name"],
        pod_labels["app.kubernetes.io/name"]
    );
    let service = find(&pq, "Service", "pr-quest-service");
    assert_eq!(service["metadata"]["namespace"], NAMESPACE);
    assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(3000));
}

#[test]
fn pr_quest_admits_only_toolgate_and_reaches_only_github_the_llm_api_and_openbao() {
    let pq = render(PR_QUEST);
    let policy = find(&pq, "CiliumNetworkPolicy", "pr-quest-service");
    assert_eq!(
        policy["spec"]["endpointSelector"]["matchLabels"]["app.kubernetes.io/name"],
        "pr-quest-service"
    );
    let ingress = rules(policy, "ingress");
    assert_eq!(ingress.len(), 2, "toolgate and the probes");
    let from_toolgate = ingress_from(policy, "k8s:app.kubernetes.io/name", "toolgate");
    assert_eq!(
        from_toolgate["fromEndpoints"][0]["matchLabels"]["k8s:io.kubernetes.pod.namespace"],
        NAMESPACE
    );
    assert!(http_admits(from_toolgate, "GET", "/api/diff"));
    assert!(http_admits(from_toolgate, "POST", "/api/group"));
    assert!(!http_admits(from_toolgate, "GET", "/"));
    assert_eq!(strings(&ingress[1]["fromEntities"]), ["host"]);
    let egress = rules(policy, "egress");
    let fqdns: BTreeSet<&str> = egress
        .iter()
        .flat_map(|r| r["toFQDNs"].as_sequence().into_iter().flatten())
        .filter_map(|f| f["matchName"].as_str())
        .collect();
    assert_eq!(
        fqdns,
        BTreeSet::from(["api.github.com", "github.com", "api.openai.com"])
    );
    let pq_policies = vec![policy.clone()];
    for name in &fqdns {
        assert!(dns_allows(&pq_policies, name), "{name} never resolves");
    }
    for rule in egress {
        assert!(rule["toEntities"].is_null() && rule["toCIDR"].is_null());
        assert!(!ports(rule).is_empty());
    }
}

/// Domain isolation: each domain's pods admit their own domain, the hub, Prometheus and the
/// kubelet, never another domain; every rule has its comment in the file.
#[test]
fn domains_talk_only_through_the_pipe_hub() {
    let docs = render(CILIUM);
    let policy = find(
        &docs,
        "CiliumClusterwideNetworkPolicy",
        "pipe-domain-isolation",
    );
    let label = "k8s:io.cilium.k8s.namespace.labels.pipe.ameide.io/domain";
    let specs = policy["specs"].as_sequence().expect("specs");
    let domains: Vec<&str> = specs
        .iter()
        .map(|s| text(&s["endpointSelector"]["matchLabels"][label]))
        .collect();
    assert!(domains.len() >= 2, "{domains:?}");
    for (spec, domain) in specs.iter().zip(&domains) {
        assert!(spec["description"].is_string());
        assert!(spec["egress"].is_null(), "egress stays with each workload");
        let ingress = spec["ingress"].as_sequence().expect("ingress");
        let mut hub = false;
        for rule in ingress {
            if let Some(entities) = rule["fromEntities"].as_sequence() {
                assert_eq!(strings(&rule["fromEntities"]), ["host"], "{entities:?}");
                continue;
            }
            let labels = &rule["fromEndpoints"][0]["matchLabels"];
            assert_eq!(rule["fromEndpoints"].as_sequence().map(Vec::len), Some(1));
            if let Some(peer) = labels[label].as_str() {
                assert_eq!(
                    peer, *domain,
                    "domain {domain} admits domain {peer} directly"
                );
            } else {
                let ns = text(&labels["k8s:io.kubernetes.pod.namespace"]);
                match ns {
                    "pipe-system" => hub = true,
                    "monitoring" => assert_eq!(labels["k8s:app.kubernetes.io/name"], "prometheus"),
                    other => panic!("domain {domain} admits namespace {other}"),
                }
            }
        }
        assert!(hub, "domain {domain} does not admit the hub");
    }
    // A comment line above every rule of the file.
    let source =
        std::fs::read_to_string(repo().join(CILIUM).join("domain-isolation.yaml")).expect("read");
    let lines: Vec<&str> = source.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if t.starts_with("- fromEndpoints:")
            || t.starts_with("- fromEntities:")
            || t.starts_with("- description:")
        {
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                "line {}: a rule without its comment: {line}",
                i + 1
            );
        }
    }
}
