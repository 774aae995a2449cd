//! `toolgate policy explain`: the decision, the rule that made it, every rule that matched with
//! its effect, and why each other rule did not.

use std::fmt::Write;

use super::rule::{Miss, Outcome, Rule};
use super::{PolicyInput, PolicySet};

/// Human-readable explanation for `toolgate policy explain`: decision, the winning rule, and
/// every rule that matched with its effect.
pub fn explain(set: &PolicySet, input: &PolicyInput) -> String {
    let (decision, outcomes) = set.evaluate(input);
    let mut out = String::new();
    let roles = if input.principal.roles.is_empty() {
        "no roles".to_string()
    } else {
        format!("roles: {}", input.principal.roles.join(", "))
    };
    let target = input.target.describe();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "decision: {}", decision.effect);
    let _ = writeln!(out, "rule:     {}", decision.rule);
    let _ = writeln!(
        out,
        "call:     {} (risk {}) by {} ({roles})",
        input.tool,
        input.risk.as_str(),
        input.principal.sub
    );
    let _ = writeln!(out, "target:   {target}");
    let _ = writeln!(
        out,
        "\nmatched rules (strictest wins: deny > require_approval with more approvals > allow; ties go to the earlier rule):"
    );
    let mut any = false;
    for (rule, outcome) in &outcomes {
        let mark = if rule.id == decision.rule { "*" } else { " " };
        match outcome {
            Outcome::Matched(effect) => {
                let _ = writeln!(out, "{mark} {}: {effect}", rule.id);
            }
            Outcome::Failed { error, effect } => {
                let _ = writeln!(
                    out,
                    "{mark} {}: {effect} (the condition failed: {error})",
                    rule.id
                );
            }
            Outcome::Missed(_) => continue,
        }
        if let Some(description) = &rule.description {
            let _ = writeln!(out, "    {}", one_line(description));
        }
        any = true;
    }
    if !any {
        let _ = writeln!(out, "  (none: the call is denied)");
    }
    let missed: Vec<String> = outcomes
        .iter()
        .filter_map(|(rule, outcome)| match outcome {
            Outcome::Missed(miss) => Some(format!("  {}: {}", rule.id, why(rule, miss, input))),
            _ => None,
        })
        .collect();
    if !missed.is_empty() {
        let _ = writeln!(out, "\nrules that did not match:");
        for line in missed {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

fn why(rule: &Rule, miss: &Miss, input: &PolicyInput) -> String {
    match miss {
        Miss::Tool => format!("tool {} is not in [{}]", input.tool, rule.tools.join(", ")),
        Miss::Risk => format!(
            "risk {} is not in [{}]",
            input.risk.as_str(),
            rule.risks
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Miss::Role => format!("principal holds none of [{}]", rule.roles.join(", ")),
        Miss::Condition => match &rule.when {
            Some(when) => format!("condition is false: {}", one_line(&when.source)),
            None => "condition is false".to_string(),
        },
    }
}

fn one_line(source: &str) -> String {
    source.split_whitespace().collect::<Vec<_>>().join(" ")
}
