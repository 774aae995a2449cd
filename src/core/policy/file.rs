//! The policy file format (YAML) and its validation: raw serde structs, resolved into compiled
//! rules with every problem of every file collected before anything is used.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cel::Env;
use serde::Deserialize;
use serde_yaml::Value as Yaml;

use super::condition::Condition;
use super::rule::Rule;
use super::{ApprovalRule, Effect};
use crate::core::tool::Risk;

pub(crate) const DEFAULT_APPROVER_ROLE: &str = "toolgate.approver";
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rules: Vec<Yaml>,
    /// Identity-provider roles → the toolgate permissions they grant.
    #[serde(default)]
    permissions: std::collections::BTreeMap<String, Vec<String>>,
}

/// One rule as written. Read field by field (not derived) so each problem names its field.
#[derive(Debug)]
struct RawRule {
    name: String,
    description: Option<String>,
    tools: Vec<String>,
    risk: Vec<Risk>,
    roles: Vec<String>,
    when: Option<String>,
    effect: Yaml,
}

const RULE_FIELDS: [&str; 7] = [
    "name",
    "description",
    "tools",
    "risk",
    "roles",
    "when",
    "effect",
];

impl RawRule {
    fn from_yaml(value: Yaml) -> Result<RawRule, Vec<String>> {
        let Yaml::Mapping(map) = value else {
            return Err(vec![format!(
                "must be a map with the fields {}",
                RULE_FIELDS.join(", ")
            )]);
        };
        let mut problems = Vec::new();
        for key in map.keys() {
            let known = key.as_str().is_some_and(|k| RULE_FIELDS.contains(&k));
            if !known {
                let key = serde_yaml::to_string(key).unwrap_or_default();
                problems.push(format!(
                    "unknown field `{}`; expected one of {}",
                    key.trim(),
                    RULE_FIELDS.join(", ")
                ));
            }
        }
        fn field<T: serde::de::DeserializeOwned>(
            map: &serde_yaml::Mapping,
            key: &str,
            problems: &mut Vec<String>,
        ) -> Option<T> {
            let value = map.get(key)?;
            serde_yaml::from_value(value.clone())
                .map_err(|e| problems.push(format!("{key}: {e}")))
                .ok()
        }
        let name: Option<String> = field(&map, "name", &mut problems);
        let description = field(&map, "description", &mut problems);
        let tools = field(&map, "tools", &mut problems);
        let risk = field(&map, "risk", &mut problems);
        let roles = field(&map, "roles", &mut problems);
        let when = field(&map, "when", &mut problems);
        let effect = map.get("effect").cloned();
        if name.is_none() && !map.contains_key("name") {
            problems.push("missing field `name`".into());
        }
        if effect.is_none() {
            problems.push("missing field `effect`".into());
        }
        match (name, effect) {
            (Some(name), Some(effect)) if problems.is_empty() => Ok(RawRule {
                name,
                description,
                tools: tools.unwrap_or_default(),
                risk: risk.unwrap_or_default(),
                roles: roles.unwrap_or_default(),
                when,
                effect,
            }),
            _ => Err(problems),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    approvals: Option<u32>,
    approver_roles: Option<Vec<String>>,
    /// A string such as "30m"; a bare number is refused with a hint.
    ttl: Option<Yaml>,
    reason_required: Option<bool>,
    allow_target_change: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeny {
    message: Option<String>,
}

/// The `*.yaml` / `*.yml` files of `dir`, sorted by name, as (file name, text).
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<(String, String)>, Vec<String>> {
    let shown = dir.display();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| vec![format!("policy directory {shown}: cannot read it: {e}")])?;
    let mut paths: Vec<(String, PathBuf)> = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!("policy directory {shown}: cannot list it: {e}"));
                continue;
            }
        };
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // `path.is_file()` follows symlinks: Kubernetes ConfigMap volumes mount files that way.
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if yaml && !name.starts_with('.') && path.is_file() {
            paths.push((name, path));
        }
    }
    paths.sort();
    if paths.is_empty() && problems.is_empty() {
        problems.push(format!(
            "policy directory {shown} holds no *.yaml or *.yml files"
        ));
    }
    let mut files = Vec::new();
    for (name, path) in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push((name, text)),
            Err(e) => problems.push(format!("{}: cannot read it: {e}", path.display())),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(problems)
    }
}

/// Compile one file's rules; problems are pushed as "file: rule `x`: …".
pub(crate) fn parse_file(
    env: &Env,
    file: &str,
    text: &str,
    rules: &mut Vec<Rule>,
    grants: &mut std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    problems: &mut Vec<String>,
) {
    if text.trim().is_empty() {
        return;
    }
    let raw: RawFile = match serde_yaml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(format!("{file}: {e}"));
            return;
        }
    };
    for (role, permissions) in raw.permissions {
        if permissions.iter().any(|p| p.trim().is_empty()) {
            problems.push(format!(
                "{file}: permissions of role `{role}`: an empty permission name"
            ));
        }
        grants.entry(role).or_default().extend(permissions);
    }
    let mut names: Vec<String> = Vec::new();
    for (index, value) in raw.rules.into_iter().enumerate() {
        let label = match value.get("name").and_then(Yaml::as_str) {
            Some(name) => format!("rule `{name}`"),
            None => format!("rule #{}", index + 1),
        };
        let raw = match RawRule::from_yaml(value) {
            Ok(raw) => raw,
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| format!("{file}: {label}: {e}")));
                continue;
            }
        };
        let mut report = |what: String| problems.push(format!("{file}: {label}: {what}"));
        if raw.name.trim().is_empty() || raw.name.contains('#') {
            report("name: must be non-empty and must not contain `#`".into());
            continue;
        }
        if names.contains(&raw.name) {
            report("name: another rule in this file has the same name".into());
        }
        names.push(raw.name.clone());
        let id = format!("{file}#{}", raw.name);
        for (field, values) in [("tools", &raw.tools), ("roles", &raw.roles)] {
            if values.iter().any(|v| v.trim().is_empty()) {
                report(format!("{field}: entries must be non-empty"));
            }
        }
        let when = match raw.when.as_deref().map(str::trim) {
            None => None,
            Some("") => {
                report("condition: is empty; leave `when` out to match without a condition".into());
                None
            }
            Some(source) => match Condition::compile(env, source) {
                Ok(condition) => Some(condition),
                Err(errors) => {
                    for e in errors {
                        report(format!(
                            "condition: line {}, column {}: {}",
                            e.line, e.column, e.message
                        ));
                    }
                    None
                }
            },
        };
        let effect = match parse_effect(raw.effect, &id) {
            Ok(effect) => effect,
            Err(e) => {
                report(format!("effect: {e}"));
                continue;
            }
        };
        rules.push(Rule {
            id,
            description: raw.description,
            tools: raw.tools,
            risks: raw.risk,
            roles: raw.roles,
            when,
            effect,
        });
    }
}

const EFFECT_FORMS: &str = "expected `allow`, `deny`, `require_approval`, or a map with one of them as its only key (`require_approval: {approvals: 2}`, `deny: {message: …}`)";

/// `allow` | `deny` | `require_approval` | `{require_approval: {…}}` | `{deny: {message}}`.
fn parse_effect(value: Yaml, id: &str) -> Result<Effect, String> {
    let (kind, options) = match value {
        Yaml::String(kind) => (kind, Yaml::Null),
        Yaml::Mapping(map) if map.len() == 1 => match map.into_iter().next() {
            Some((Yaml::String(kind), options)) => (kind, options),
            _ => return Err(EFFECT_FORMS.into()),
        },
        _ => return Err(EFFECT_FORMS.into()),
    };
    let empty =
        matches!(&options, Yaml::Null) || matches!(&options, Yaml::Mapping(m) if m.is_empty());
    match kind.as_str() {
        "allow" if empty => Ok(Effect::Allow),
        "allow" => Err("allow takes no options".into()),
        "deny" => {
            let raw: RawDeny = if empty {
                RawDeny::default()
            } else {
                serde_yaml::from_value(options).map_err(|e| format!("deny: {e}"))?
            };
            let message = raw
                .message
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("denied by policy rule {id}"));
            Ok(Effect::Deny { message })
        }
        "require_approval" => {
            let raw: RawApproval = if empty {
                RawApproval::default()
            } else {
                serde_yaml::from_value(options).map_err(|e| format!("require_approval: {e}"))?
            };
            approval(raw).map(Effect::RequireApproval)
        }
        other => Err(format!("unknown effect `{other}`; {EFFECT_FORMS}")),
    }
}

fn approval(raw: RawApproval) -> Result<ApprovalRule, String> {
    let approvals = raw.approvals.unwrap_or(1);
    if approvals == 0 {
        return Err("require_approval: approvals must be at least 1 (use `allow` for none)".into());
    }
    let approver_roles = raw
        .approver_roles
        .unwrap_or_else(|| vec![DEFAULT_APPROVER_ROLE.to_string()]);
    if approver_roles.is_empty() || approver_roles.iter().any(|r| r.trim().is_empty()) {
        return Err(
            "require_approval: approver_roles must list at least one non-empty role".into(),
        );
    }
    let ttl = match raw.ttl {
        None => Ok(DEFAULT_TTL),
        Some(Yaml::String(text)) => parse_ttl(&text),
        Some(Yaml::Number(n)) => parse_ttl(&n.to_string()),
        Some(_) => Err("expected a duration such as 30m, 1h or 2h30m".to_string()),
    }
    .map_err(|e| format!("require_approval: ttl: {e}"))?;
    Ok(ApprovalRule {
        approvals,
        approver_roles,
        ttl,
        reason_required: raw.reason_required.unwrap_or(false),
        allow_target_change: raw.allow_target_change.unwrap_or(false),
    })
}

/// "30m", "1h", "2h30m", "90s", "1d": numbers each followed by a unit (d, h, m, s).
pub(crate) fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("`{text}` {why}; expected a duration such as 30m, 1h or 2h30m");
    let text = text.trim();
    if text.is_empty() {
        return Err(bad("is empty"));
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: u64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad(&format!("has the unknown unit `{c}`"))),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| bad(&format!("has no number before `{c}`")))?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| bad("is too long"))?;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad("ends without a unit"));
    }
    if total == 0 {
        return Err(bad("is zero"));
    }
    Ok(Duration::from_secs(total))
}

/// "1h", "2h30m", "45s": the inverse of [`parse_ttl`].
pub(crate) fn format_ttl(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parses_units_and_rejects_nonsense() {
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2h30m"), Ok(Duration::from_secs(9000)));
        assert_eq!(parse_ttl("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "30",
            "h",
            "1x",
            "1h30",
            "0m",
            "-1h",
            "1.5h",
            "99999999999999999999d",
        ] {
            let err = parse_ttl(bad).expect_err(bad);
            assert!(err.contains("expected a duration"), "{bad}: {err}");
        }
        assert_eq!(format_ttl(Duration::from_secs(9000)), "2h30m");
        assert_eq!(format_ttl(DEFAULT_TTL), "1h");
    }

    #[test]
    fn effects_in_every_form() {
        let y = |s: &str| serde_yaml::from_str::<Yaml>(s).expect("test yaml");
        assert_eq!(parse_effect(y("allow"), "f#r"), Ok(Effect::Allow));
        assert_eq!(
            parse_effect(y("deny"), "f#r"),
            Ok(Effect::Deny {
                message: "denied by policy rule f#r".into()
            })
        );
        assert_eq!(
            parse_effect(y("{deny: {message: no}}"), "f#r"),
            Ok(Effect::Deny {
                message: "no".into()
            })
        );
        let defaults = ApprovalRule {
            approvals: 1,
            approver_roles: vec!["toolgate.approver".into()],
            ttl: DEFAULT_TTL,
            reason_required: false,
            allow_target_change: false,
        };
        assert_eq!(
            parse_effect(y("require_approval"), "f#r"),
            Ok(Effect::RequireApproval(defaults.clone()))
        );
        assert_eq!(
            parse_effect(
                y(
                    "require_approval: {approvals: 2, approver_roles: [sre.lead], ttl: 2h30m, reason_required: true, allow_target_change: true}"
                ),
                "f#r"
            ),
            Ok(Effect::RequireApproval(ApprovalRule {
                approvals: 2,
                approver_roles: vec!["sre.lead".into()],
                ttl: Duration::from_secs(9000),
                reason_required: true,
                allow_target_change: true,
            }))
        );
        for (bad, why) in [
            ("permit", "unknown effect `permit`"),
            ("{allow: {x: 1}}", "allow takes no options"),
            ("require_approval: {approvals: 0}", "at least 1"),
            (
                "require_approval: {aprovals: 2}",
                "unknown field `aprovals`",
            ),
            ("require_approval: {ttl: soon}", "ttl: `soon`"),
            ("require_approval: {approver_roles: []}", "approver_roles"),
            ("[allow]", "expected `allow`"),
            ("{allow: null, deny: null}", "expected `allow`"),
        ] {
            let err = parse_effect(y(bad), "f#r").expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
