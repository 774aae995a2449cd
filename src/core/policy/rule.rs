//! One compiled rule and how it matches a call: tool globs, risk levels, roles, condition.

use super::condition::{Condition, LazyInput};
use super::{Effect, PolicyInput};
use crate::core::tool::Risk;

/// A compiled rule; `id` is "file.yaml#rule-name".
#[derive(Debug)]
pub(crate) struct Rule {
    pub id: String,
    pub description: Option<String>,
    /// Empty: every tool.
    pub tools: Vec<String>,
    /// Empty: every risk.
    pub risks: Vec<Risk>,
    /// Empty: every principal; else the principal must hold one of them.
    pub roles: Vec<String>,
    pub when: Option<Condition>,
    pub effect: Effect,
}

/// Why a rule did not apply to a call (for `policy explain`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Miss {
    Tool,
    Risk,
    Role,
    Condition,
}

/// How a rule applies to a call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Matched(Effect),
    /// The condition could not be evaluated: the rule counts as a deny.
    Failed {
        error: String,
        effect: Effect,
    },
    Missed(Miss),
}

impl Rule {
    /// The cheap checks first; the condition only runs when they pass.
    pub fn apply(&self, input: &PolicyInput, cel_input: &LazyInput) -> Outcome {
        if !self.tools.is_empty() && !self.tools.iter().any(|g| glob_match(g, input.tool)) {
            return Outcome::Missed(Miss::Tool);
        }
        if !self.risks.is_empty() && !self.risks.contains(&input.risk) {
            return Outcome::Missed(Miss::Risk);
        }
        if !self.roles.is_empty() && !self.roles.iter().any(|r| input.principal.roles.contains(r)) {
            return Outcome::Missed(Miss::Role);
        }
        let Some(when) = &self.when else {
            return Outcome::Matched(self.effect.clone());
        };
        match when.evaluate(cel_input.context()) {
            Ok(true) => Outcome::Matched(self.effect.clone()),
            Ok(false) => Outcome::Missed(Miss::Condition),
            Err(error) => {
                tracing::warn!(
                    rule = %self.id,
                    tool = input.tool,
                    principal = %input.principal.sub,
                    %error,
                    "policy condition could not be evaluated; the rule counts as deny"
                );
                let message = format!("policy rule {} could not be evaluated: {error}", self.id);
                Outcome::Failed {
                    error,
                    effect: Effect::Deny { message },
                }
            }
        }
    }
}

/// Glob over a tool name: `*` matches any run of characters (dots too), `?` exactly one.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Position after the last `*` and the name index it was tried at, for backtracking.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_tool_names() {
        let cases = [
            ("k8s.*", "k8s.get_resource", true),
            ("k8s.*", "k8s.", true),
            ("k8s.*", "obs.query_metrics", false),
            ("obs.query_*", "obs.query_metrics", true),
            ("obs.query_*", "obs.get_alerts", false),
            ("*", "anything.at_all", true),
            ("*.delete_*", "k8s.delete_resource", true),
            ("*.delete_*", "k8s.get_resource", false),
            ("k8s.get_resource", "k8s.get_resource", true),
            ("k8s.get_resource", "k8s.get_resources", false),
            ("k8s.get_?esource", "k8s.get_resource", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("*_status", "approval.status", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), want, "{pattern} vs {name}");
        }
    }
}
