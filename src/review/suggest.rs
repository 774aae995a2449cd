//! Suggestions: per rule that found something, an actionable fix with a code example where one
//! applies, the places it applies to, and documentation links from a table (built in, each
//! rule's links replaceable with `review.doc_links`). Ordered by impact: severity, then count.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::risk::{Finding, Level};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Suggestion {
    pub rule: String,
    pub impact: Level,
    pub fix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
    /// `file:line` of each finding it answers.
    pub locations: Vec<String>,
    pub docs: Vec<String>,
}

/// Built-in fixes: rule → (fix, example).
fn fix_of(rule: &str) -> (&'static str, Option<&'static str>) {
    match rule {
        "secret-added" => (
            "Remove the value from the change, rotate it (it is in the Git history now), and read it from OpenBao through a secret reference or an ExternalSecret.",
            Some(
                "env:\n  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef: {name: db, key: password}",
            ),
        ),
        "rbac-wildcard" => (
            "Name the verbs, resources and API groups the workload needs instead of `*`.",
            Some(
                "rules:\n  - apiGroups: [apps]\n    resources: [deployments]\n    verbs: [get, list, watch]",
            ),
        ),
        "rbac-cluster-admin" => (
            "Bind a Role or ClusterRole with only the permissions needed, in the namespace that needs them.",
            Some("roleRef: {kind: Role, name: app-reader, apiGroup: rbac.authorization.k8s.io}"),
        ),
        "privileged-container" => (
            "Drop privileged mode; add only the capability needed, and run as non-root.",
            Some(
                "securityContext:\n  privileged: false\n  allowPrivilegeEscalation: false\n  capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}",
            ),
        ),
        "host-namespace" => (
            "Keep the pod in its own network/PID/IPC namespaces and forbid privilege escalation; expose ports through a Service.",
            Some("hostNetwork: false\nsecurityContext: {allowPrivilegeEscalation: false}"),
        ),
        "unpinned-image" => (
            "Pin the image to a version and, for production, its digest (Cosign verifies signed digests).",
            Some("image: registry.example/app:1.4.2@sha256:<digest>"),
        ),
        "resource-limits-removed" => (
            "Keep memory (and usually CPU) limits so one container cannot starve the node.",
            Some("resources:\n  requests: {cpu: 100m, memory: 128Mi}\n  limits: {memory: 256Mi}"),
        ),
        "network-policy-deleted" => (
            "Keep the policy, or replace it with one that allows the new traffic explicitly; Cilium defaults to allow once no policy selects the pod.",
            None,
        ),
        "network-policy-widened" => (
            "Allow only the peers and ports the service talks to (pod/namespace selectors, FQDNs) instead of everything.",
            Some(
                "ingress:\n  - fromEndpoints:\n      - matchLabels: {app: frontend}\n    toPorts: [{ports: [{port: \"8080\", protocol: TCP}]}]",
            ),
        ),
        "tls-verification-disabled" => (
            "Keep certificate verification on; trust the internal CA by adding its bundle instead.",
            Some("tls:\n  ca_file: /etc/ssl/internal-ca.pem"),
        ),
        "breaking-api-change" => (
            "Deprecate the field first and remove it in a new API version; for protobuf, reserve the number and name.",
            Some("reserved 4;\nreserved \"old_field\";"),
        ),
        "forbidden-technology" => (
            "Replace it with the platform's counterpart: OpenBao for Vault, Kubernetes DNS for Consul, OpenTofu for Terraform, Podman/Buildah for Docker Desktop, Loki for Elastic.",
            None,
        ),
        _ => (
            "Look at the risk PR-QUEST named and say in a note whether it holds.",
            None,
        ),
    }
}

/// Built-in documentation links per rule.
pub fn default_links(rule: &str) -> Vec<String> {
    let links: &[&str] = match rule {
        "secret-added" => &[
            "https://openbao.org/docs/secrets/kv/kv-v2/",
            "https://kubernetes.io/docs/concepts/configuration/secret/",
        ],
        "rbac-wildcard" | "rbac-cluster-admin" => {
            &["https://kubernetes.io/docs/concepts/security/rbac-good-practices/"]
        }
        "privileged-container" | "host-namespace" => {
            &["https://kubernetes.io/docs/concepts/security/pod-security-standards/"]
        }
        "unpinned-image" => &[
            "https://kubernetes.io/docs/concepts/containers/images/#image-names",
            "https://docs.sigstore.dev/cosign/verifying/verify/",
        ],
        "resource-limits-removed" => {
            &["https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"]
        }
        "network-policy-deleted" | "network-policy-widened" => &[
            "https://docs.cilium.io/en/stable/security/policy/",
            "https://kubernetes.io/docs/concepts/services-networking/network-policies/",
        ],
        "tls-verification-disabled" => {
            &["https://kubernetes.io/docs/tasks/tls/managing-tls-in-a-cluster/"]
        }
        "breaking-api-change" => &[
            "https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definition-versioning/",
            "https://protobuf.dev/programming-guides/proto3/#deleting",
        ],
        "forbidden-technology" => &[
            "https://openbao.org/docs/",
            "https://opentofu.org/docs/",
            "https://grafana.com/docs/loki/latest/",
            "https://podman.io/docs",
        ],
        _ => &[],
    };
    links.iter().map(|s| s.to_string()).collect()
}

/// One suggestion per rule with findings, highest impact first. `links` overrides the table.
pub fn suggest(findings: &[Finding], links: &BTreeMap<String, Vec<String>>) -> Vec<Suggestion> {
    let mut by_rule: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_rule.entry(f.rule.as_str()).or_default().push(f);
    }
    let mut out: Vec<Suggestion> = by_rule
        .into_iter()
        .map(|(rule, found)| {
            let (fix, example) = fix_of(rule);
            Suggestion {
                rule: rule.to_string(),
                impact: found.iter().map(|f| f.severity).max().unwrap_or(Level::Low),
                fix: fix.to_string(),
                example: example.map(str::to_string),
                locations: found
                    .iter()
                    .filter(|f| !f.file.is_empty())
                    .map(|f| match f.line {
                        Some(n) => format!("{}:{n}", f.file),
                        None => f.file.clone(),
                    })
                    .collect(),
                docs: links
                    .get(rule)
                    .cloned()
                    .unwrap_or_else(|| default_links(rule)),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.impact
            .cmp(&a.impact)
            .then_with(|| b.locations.len().cmp(&a.locations.len()))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(rule: &str, severity: Level, line: u32) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            file: "a.yaml".into(),
            line: Some(line),
            message: String::new(),
            source: "heuristic".into(),
        }
    }

    #[test]
    fn ordered_by_impact_with_links_from_the_table_or_config() {
        let findings = vec![
            finding("unpinned-image", Level::Low, 3),
            finding("unpinned-image", Level::Low, 9),
            finding("secret-added", Level::Critical, 5),
        ];
        let mut links = BTreeMap::new();
        links.insert(
            "unpinned-image".to_string(),
            vec!["https://wiki.example/images".to_string()],
        );
        let s = suggest(&findings, &links);
        assert_eq!(s[0].rule, "secret-added");
        assert!(s[0].docs[0].starts_with("https://openbao.org"));
        assert_eq!(s[1].locations, vec!["a.yaml:3", "a.yaml:9"]);
        assert_eq!(s[1].docs, vec!["https://wiki.example/images"]);
        assert!(
            s[1].example
                .as_deref()
                .is_some_and(|e| e.contains("@sha256"))
        );
    }
}
