//! toolgate's own risk rules over a parsed diff, each named, each finding with its file and
//! line, and the overall level (the highest severity found) with its reasons. PR-QUEST's
//! `risk_calls` (the LLM's findings) join as findings of rule `pr-quest-risk-call`.
//! Secret values never appear in a finding: the rule says what kind of secret, not its text.

use std::sync::OnceLock;

use regex::{Regex, RegexSet};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::diff::{DiffFile, Line, LineKind};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    None,
    Low,
    Moderate,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "NONE",
            Level::Low => "LOW",
            Level::Moderate => "MODERATE",
            Level::Critical => "CRITICAL",
        }
    }
}

/// Every rule: name, severity, what it looks for (README "Review" lists them).
pub const RULES: &[(&str, Level, &str)] = &[
    (
        "secret-added",
        Level::Critical,
        "a private key, cloud or API token, or a literal password added",
    ),
    (
        "rbac-wildcard",
        Level::Critical,
        "RBAC rule with `*` verbs, resources or apiGroups added",
    ),
    (
        "rbac-cluster-admin",
        Level::Critical,
        "a binding to cluster-admin added",
    ),
    (
        "privileged-container",
        Level::Critical,
        "privileged: true added",
    ),
    (
        "host-namespace",
        Level::Moderate,
        "hostNetwork, hostPID, hostIPC or allowPrivilegeEscalation: true added",
    ),
    (
        "unpinned-image",
        Level::Low,
        "an image with :latest or no tag or digest",
    ),
    (
        "resource-limits-removed",
        Level::Moderate,
        "resources.limits removed",
    ),
    (
        "network-policy-deleted",
        Level::Critical,
        "a NetworkPolicy or CiliumNetworkPolicy deleted",
    ),
    (
        "network-policy-widened",
        Level::Moderate,
        "a network policy opened to everything (`{}`, 0.0.0.0/0, world/all entities)",
    ),
    (
        "tls-verification-disabled",
        Level::Critical,
        "TLS certificate verification turned off",
    ),
    (
        "breaking-api-change",
        Level::Moderate,
        "a field removed from a CRD, OpenAPI schema or protobuf message",
    ),
    (
        "forbidden-technology",
        Level::Critical,
        "HashiCorp Vault, Consul, Terraform, Docker Desktop or Elastic",
    ),
    (
        "pr-quest-risk-call",
        Level::Low,
        "a risk PR-QUEST's LLM named in its plan",
    ),
];

pub fn severity_of(rule: &str) -> Level {
    RULES
        .iter()
        .find(|(name, _, _)| *name == rule)
        .map(|(_, level, _)| *level)
        .unwrap_or(Level::Low)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub rule: String,
    pub severity: Level,
    /// Empty for PR-QUEST's risk calls (they name no file).
    pub file: String,
    /// Line in the new file (added lines) or the old file (removed lines).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub message: String,
    /// `heuristic` or `pr-quest`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Assessment {
    pub level: Level,
    /// One line per finding, highest severity first.
    pub reasons: Vec<String>,
    pub findings: Vec<Finding>,
}

struct Patterns {
    secrets: Vec<(Regex, &'static str)>,
    placeholder: Regex,
    rbac_wildcard_inline: Regex,
    rbac_key: Regex,
    list_star: Regex,
    cluster_admin: Regex,
    privileged: Regex,
    host_ns: Regex,
    image: Regex,
    from: Regex,
    limits: Regex,
    np_kind: Regex,
    np_wide: Regex,
    tls_off: Regex,
    proto_field: Regex,
    yaml_key: Regex,
    forbidden: Vec<(Regex, &'static str, &'static str)>,
    /// `secrets`, then `tls_off`, then `forbidden`, in one set: every added line is searched
    /// once for all of them, and only the patterns that matched are looked at one by one (the
    /// per-line searches were most of an analysis' time).
    any_line: RegexSet,
}

/// Where `tls_off` and `forbidden` start in `Patterns::any_line`.
struct LineSetIndex {
    tls_off: usize,
    forbidden: usize,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).unwrap_or_else(|e| panic!("risk pattern {s}: {e}"));
        let mut p = Patterns {
            secrets: vec![
                (re(r"-----BEGIN (RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY"), "a private key"),
                (re(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "an AWS access key id"),
                (re(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}"), "a GitHub token"),
                (re(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), "a Slack token"),
                (re(r"\bhvs\.[A-Za-z0-9_-]{20,}"), "an OpenBao/Vault token"),
                (re(r"\bsk-[A-Za-z0-9_-]{20,}"), "an API secret key"),
                (re(r#"(?i)\b[a-z0-9_.-]*(password|passwd|secret|api[_-]?key|access[_-]?key|token)[a-z0-9_.-]*["']?\s*[:=]\s*["']?[^\s"'$<{}]{8,}"#), "a literal credential"),
            ],
            placeholder: re(r"(?i)(\$\{|\{\{|<[a-z_-]+>|changeme|example|placeholder|xxxx|\*\*\*|secretKeyRef|valueFrom|_file\b|secret_ref|env:)"),
            rbac_wildcard_inline: re(r#"^\s*-?\s*(verbs|resources|apiGroups)\s*:\s*\[[^\]]*["']\*["']"#),
            rbac_key: re(r"^\s*-?\s*(verbs|resources|apiGroups)\s*:\s*$"),
            list_star: re(r#"^\s*-\s*["']\*["']\s*$"#),
            cluster_admin: re(r#"^\s*name\s*:\s*["']?cluster-admin["']?\s*$"#),
            privileged: re(r"^\s*-?\s*privileged\s*:\s*true\b"),
            host_ns: re(r"^\s*-?\s*(hostNetwork|hostPID|hostIPC|allowPrivilegeEscalation)\s*:\s*true\b"),
            image: re(r#"^\s*-?\s*image\s*:\s*["']?([^\s"'#]+)"#),
            from: re(r"(?i)^\s*FROM\s+(--platform=\S+\s+)?(\S+)"),
            limits: re(r"^\s*limits\s*:"),
            np_kind: re(r"^\s*kind\s*:\s*(NetworkPolicy|CiliumNetworkPolicy|CiliumClusterwideNetworkPolicy)\b"),
            np_wide: re(r#"(?i)(0\.0\.0\.0/0|::/0|^\s*-\s*\{\}\s*$|^\s*-?\s*(ingress|egress)\s*:\s*\[\s*\{\}\s*\]|^\s*-\s*["']?(world|all)["']?\s*$|(from|to)Entities\s*:\s*\[[^\]]*(world|all))"#),
            tls_off: re(r#"(?i)(insecureSkipVerify\s*[:=]\s*true|insecure[_-]skip[_-]tls[_-]verify(\s*[:=]\s*true|\b)|verify\s*=\s*False\b|ssl[_-]?verify\s*[:=]\s*(false|0)\b|tls[_-]?verify\s*[:=]\s*(false|0)\b|tls_skip_verify\s*[:=]\s*true|rejectUnauthorized\s*:\s*false|NODE_TLS_REJECT_UNAUTHORIZED\s*=\s*["']?0|danger_accept_invalid_certs\s*\(\s*true|CERT_NONE\b|\bcurl\b.*\s(-k|--insecure)\b)"#),
            proto_field: re(r"^\s*(optional\s+|repeated\s+|required\s+)?[A-Za-z_][\w.<>, ]*\s+([A-Za-z_]\w*)\s*=\s*\d+\s*(\[.*\])?\s*;"),
            yaml_key: re(r"^\s*([A-Za-z_][\w-]*)\s*:\s*$"),
            forbidden: vec![
                (re(r"(?i)(hashicorp/vault|\bimage\s*:\s*[\w./-]*\bvault(:|\s|$)|\bimport\s+hvac\b|\bhvac==|provider\s+\x22vault\x22|\bvault\s+(kv|login|operator|server)\b)"), "HashiCorp Vault", "OpenBao"),
                (re(r"(?i)(hashicorp/consul|\bimage\s*:\s*[\w./-]*\bconsul(:|\s|$)|consul-k8s|CONSUL_HTTP_ADDR|\bconsul\s+(agent|kv|members)\b)"), "HashiCorp Consul", "Kubernetes DNS"),
                (re(r"(?i)(hashicorp/terraform|hashicorp/setup-terraform|app\.terraform\.io|\bterraform\s+(init|plan|apply|destroy)\b)"), "HashiCorp Terraform", "OpenTofu"),
                (re(r"(?i)(docker[ -]desktop|docker\.for\.(mac|win))"), "Docker Desktop", "Podman/Buildah"),
                (re(r"(?i)(docker\.elastic\.co|\belasticsearch\b|\bkibana\b|\blogstash\b|\bfilebeat\b|\belastic/(eck|helm-charts))"), "Elastic Stack", "Loki"),
            ],
            any_line: RegexSet::empty(),
        };
        let sources: Vec<&str> = p
            .secrets
            .iter()
            .map(|(r, _)| r.as_str())
            .chain([p.tls_off.as_str()])
            .chain(p.forbidden.iter().map(|(r, _, _)| r.as_str()))
            .collect();
        p.any_line = RegexSet::new(&sources)
            .unwrap_or_else(|e| panic!("risk pattern set: {e}"));
        p
    })
}

impl Patterns {
    fn line_set_index(&self) -> LineSetIndex {
        LineSetIndex {
            tls_off: self.secrets.len(),
            forbidden: self.secrets.len() + 1,
        }
    }
}

fn is_yaml(path: &str) -> bool {
    path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")
}

fn is_dockerfile(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("Dockerfile")
        || name.starts_with("Containerfile")
        || name.ends_with(".dockerfile")
}

fn snippet(text: &str) -> String {
    let t = text.trim();
    let cut: String = t.chars().take(100).collect();
    if cut.len() < t.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

struct Collector<'a> {
    file: &'a DiffFile,
    out: &'a mut Vec<Finding>,
}

impl Collector<'_> {
    fn add(&mut self, rule: &str, line: &Line, message: String) {
        self.out.push(Finding {
            rule: rule.to_string(),
            severity: severity_of(rule),
            file: self.file.path.clone(),
            line: match line.kind {
                LineKind::Removed => line.old,
                _ => line.new,
            },
            message,
            source: "heuristic".into(),
        });
    }
}

/// An image reference without a tag or digest, or with `:latest`.
fn unpinned(image: &str) -> bool {
    if image.contains('@') {
        return false;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag == "latest" || tag.is_empty(),
        None => true,
    }
}

/// Every heuristic finding of `files`.
pub fn scan(files: &[DiffFile]) -> Vec<Finding> {
    let p = patterns();
    let at = p.line_set_index();
    let mut out = Vec::new();
    for file in files {
        let mut c = Collector {
            file,
            out: &mut out,
        };
        let yaml = is_yaml(&file.path);
        let all_lines = || file.hunks.iter().flat_map(|h| h.lines.iter());
        let is_np = all_lines().any(|l| p.np_kind.is_match(&l.text));
        let is_schema = file.path.ends_with(".proto")
            || (yaml
                && (file.path.contains("crd")
                    || file.path.contains("openapi")
                    || file.path.contains("swagger")
                    || all_lines().any(|l| {
                        let t = l.text.trim_start();
                        t.starts_with("kind: CustomResourceDefinition")
                            || t.starts_with("openapi:")
                            || t.starts_with("swagger:")
                            || t.starts_with("openAPIV3Schema:")
                    })));
        let dockerfile = is_dockerfile(&file.path);
        // Stage names of multi-stage builds are not images.
        let stages: Vec<String> = if dockerfile {
            all_lines()
                .filter_map(|l| {
                    let lower = l.text.to_ascii_lowercase();
                    lower.split_once(" as ").map(|(_, s)| s.trim().to_string())
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut rbac_list: Option<&str> = None;
        for hunk in &file.hunks {
            for line in &hunk.lines {
                let text = line.text.as_str();
                if line.kind != LineKind::Added {
                    if line.kind == LineKind::Context
                        && let Some(k) = p.rbac_key.captures(text)
                    {
                        rbac_list = k.get(1).map(|m| m.as_str());
                    }
                    continue;
                }
                let hits = p.any_line.matches(text);
                for (i, (_, what)) in p.secrets.iter().enumerate() {
                    if hits.matched(i)
                        && !(what == &"a literal credential" && p.placeholder.is_match(text))
                    {
                        c.add(
                            "secret-added",
                            line,
                            format!("{what} is added in clear text"),
                        );
                        break;
                    }
                }
                if yaml {
                    if let Some(k) = p.rbac_key.captures(text) {
                        rbac_list = k.get(1).map(|m| m.as_str());
                    } else if let Some(m) = p.rbac_wildcard_inline.captures(text) {
                        let key = m.get(1).map(|m| m.as_str()).unwrap_or("verbs");
                        c.add(
                            "rbac-wildcard",
                            line,
                            format!("`*` {key} grant everything: {}", snippet(text)),
                        );
                    } else if p.list_star.is_match(text)
                        && let Some(key) = rbac_list
                    {
                        c.add(
                            "rbac-wildcard",
                            line,
                            format!("`*` in {key} grants everything"),
                        );
                    } else if !text.trim_start().starts_with('-') {
                        rbac_list = None;
                    }
                    if p.cluster_admin.is_match(text) {
                        c.add(
                            "rbac-cluster-admin",
                            line,
                            "binds cluster-admin (every permission in every namespace)".into(),
                        );
                    }
                    if p.privileged.is_match(text) {
                        c.add(
                            "privileged-container",
                            line,
                            "a privileged container has the node's full power".into(),
                        );
                    }
                    if let Some(m) = p.host_ns.captures(text) {
                        let key = m.get(1).map(|m| m.as_str()).unwrap_or_default();
                        c.add("host-namespace", line, format!("{key}: true shares the node's namespaces or lets the process gain privileges"));
                    }
                    if let Some(m) = p.image.captures(text)
                        && let Some(image) = m.get(1).map(|m| m.as_str())
                        && unpinned(image)
                    {
                        c.add(
                            "unpinned-image",
                            line,
                            format!("image `{image}` is not pinned to a version or digest"),
                        );
                    }
                    if is_np && p.np_wide.is_match(text) {
                        c.add(
                            "network-policy-widened",
                            line,
                            format!("opens the policy wide: {}", snippet(text)),
                        );
                    }
                }
                if dockerfile
                    && let Some(m) = p.from.captures(text)
                    && let Some(image) = m.get(2).map(|m| m.as_str())
                    && image != "scratch"
                    && !stages.iter().any(|s| s.eq_ignore_ascii_case(image))
                    && unpinned(image)
                {
                    c.add(
                        "unpinned-image",
                        line,
                        format!("base image `{image}` is not pinned to a version or digest"),
                    );
                }
                if hits.matched(at.tls_off) {
                    c.add(
                        "tls-verification-disabled",
                        line,
                        format!("turns off certificate checks: {}", snippet(text)),
                    );
                }
                for (i, (_, what, instead)) in p.forbidden.iter().enumerate() {
                    if hits.matched(at.forbidden + i) {
                        c.add(
                            "forbidden-technology",
                            line,
                            format!("{what} is forbidden on this platform; use {instead} instead"),
                        );
                        break;
                    }
                }
            }
        }
        if yaml {
            let limits_added = file.added().any(|l| p.limits.is_match(&l.text));
            if !limits_added
                && file.status != "deleted"
                && let Some(line) = file.removed().find(|l| p.limits.is_match(&l.text))
            {
                c.add(
                    "resource-limits-removed",
                    line,
                    "resources.limits removed: the container may use the whole node".into(),
                );
            }
            let np_removed = file.removed().find(|l| p.np_kind.is_match(&l.text));
            let np_kept = file.added().any(|l| p.np_kind.is_match(&l.text));
            if let Some(line) = np_removed
                && !np_kept
            {
                c.add(
                    "network-policy-deleted",
                    line,
                    "a network policy is deleted: the traffic it held back flows again".into(),
                );
            }
        }
        if is_schema {
            let added_names: Vec<String> = file
                .added()
                .filter_map(|l| field_name(p, &file.path, &l.text))
                .collect();
            for line in file.removed() {
                if let Some(name) = field_name(p, &file.path, &line.text)
                    && !added_names.contains(&name)
                {
                    c.add(
                        "breaking-api-change",
                        line,
                        format!("field `{name}` is removed: clients that send or read it break"),
                    );
                }
            }
        }
    }
    out
}

fn field_name(p: &Patterns, path: &str, text: &str) -> Option<String> {
    let re = if path.ends_with(".proto") {
        &p.proto_field
    } else {
        &p.yaml_key
    };
    let caps = re.captures(text)?;
    let name = caps
        .get(if path.ends_with(".proto") { 2 } else { 1 })?
        .as_str();
    // Schema keywords are structure, not fields.
    const KEYWORDS: [&str; 8] = [
        "properties",
        "items",
        "schema",
        "spec",
        "versions",
        "openAPIV3Schema",
        "additionalProperties",
        "required",
    ];
    (!KEYWORDS.contains(&name)).then(|| name.to_string())
}

/// PR-QUEST's `risk_calls`: a risk the LLM named; a security or breaking one weighs more.
pub fn from_risk_calls(calls: &[String]) -> Vec<Finding> {
    calls
        .iter()
        .map(|call| {
            let lower = call.to_lowercase();
            let severity = if [
                "security",
                "secret",
                "breaking",
                "critical",
                "vulnerab",
                "privilege",
            ]
            .iter()
            .any(|w| lower.contains(w))
            {
                Level::Moderate
            } else {
                Level::Low
            };
            Finding {
                rule: "pr-quest-risk-call".into(),
                severity,
                file: String::new(),
                line: None,
                message: call.chars().take(300).collect(),
                source: "pr-quest".into(),
            }
        })
        .collect()
}

/// The overall level and reasons of `findings` (sorted highest first, then by file and line).
pub fn assess(mut findings: Vec<Finding>) -> Assessment {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.file.cmp(&b.file))
            .then_with(|| a.line.cmp(&b.line))
    });
    let level = findings.first().map(|f| f.severity).unwrap_or(Level::None);
    let reasons = findings
        .iter()
        .map(|f| match (f.file.is_empty(), f.line) {
            (true, _) => format!("{}: {} ({})", f.severity.as_str(), f.message, f.rule),
            (false, Some(n)) => format!(
                "{}: {} at {}:{n}: {}",
                f.severity.as_str(),
                f.rule,
                f.file,
                f.message
            ),
            (false, None) => format!(
                "{}: {} in {}: {}",
                f.severity.as_str(),
                f.rule,
                f.file,
                f.message
            ),
        })
        .collect();
    Assessment {
        level,
        reasons,
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::diff::parse;

    fn rules_of(diff: &str) -> Vec<String> {
        scan(&parse(diff)).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn a_clean_change_is_none_and_levels_order() {
        let diff = "diff --git a/src/a.rs b/src/a.rs\n--- a/src/a.rs\n+++ b/src/a.rs\n@@ -1 +1 @@\n-let x = 1;\n+let x = 2;\n";
        assert!(rules_of(diff).is_empty());
        assert_eq!(assess(Vec::new()).level, Level::None);
        assert!(
            Level::Critical > Level::Moderate
                && Level::Moderate > Level::Low
                && Level::Low > Level::None
        );
    }

    #[test]
    fn secrets_are_named_never_shown() {
        let diff = "diff --git a/c.env b/c.env\n--- a/c.env\n+++ b/c.env\n@@ -0,0 +1,3 @@\n+AWS_KEY=AKIAABCDEFGHIJKLMNOP\n+password: ${DB_PASSWORD}\n+db_password = \"hunter2hunter2\"\n";
        let found = scan(&parse(diff));
        let lines: Vec<Option<u32>> = found.iter().map(|f| f.line).collect();
        assert_eq!(lines, vec![Some(1), Some(3)], "{found:?}");
        assert!(
            found
                .iter()
                .all(|f| !f.message.contains("AKIA") && !f.message.contains("hunter2"))
        );
    }

    #[test]
    fn pr_quest_risk_calls_join_the_assessment() {
        let mut findings = from_risk_calls(&[
            "Possible breaking change in the API".into(),
            "Check naming".into(),
        ]);
        findings.push(Finding {
            rule: "unpinned-image".into(),
            severity: Level::Low,
            file: "k.yaml".into(),
            line: Some(3),
            message: "m".into(),
            source: "heuristic".into(),
        });
        let a = assess(findings);
        assert_eq!(a.level, Level::Moderate);
        assert!(
            a.reasons[0].starts_with("MODERATE: Possible breaking change"),
            "{:?}",
            a.reasons
        );
        assert_eq!(a.reasons.len(), 3);
    }
}
