//! Policy: which calls run at once, which wait for approvals, which are refused. Owns the YAML
//! rule files (`policies/*.yaml`), their CEL conditions, the decision and its explanation, and
//! the reloadable handle. It must not touch approvals, audit or tools: it only decides.
//!
//! Rules are read in file-name order, then in file order. Every rule that matches a call is
//! considered and the strictest wins: deny > require_approval (more approvals first; on a tie
//! the earlier rule) > allow (the earlier rule). When nothing matches, the call is denied.

mod condition;
mod explain;
mod file;
mod rule;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cel::Env;

pub use crate::core::tool::Target;
pub use explain::explain;

use crate::core::principal::Principal;
use crate::core::tool::Risk;

use condition::LazyInput;
use rule::{Outcome, Rule};

/// The shipped defaults, used when no policy directory is configured.
pub const DEFAULT_POLICY: &str = include_str!("../../../policies/default.yaml");
/// The file name rules of [`PolicySet::builtin_default`] are reported under.
pub const DEFAULT_POLICY_FILE: &str = "default.yaml";
/// The rule name of a decision no rule made.
pub const NO_RULE: &str = "(none)";

/// What a policy decides about: one call, before it runs.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInput<'a> {
    pub tool: &'a str,
    pub risk: Risk,
    pub args: &'a serde_json::Value,
    pub principal: &'a Principal,
    pub target: &'a Target,
}

/// How many humans of which roles must approve, and for how long the request stays open.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRule {
    pub approvals: u32,
    pub approver_roles: Vec<String>,
    pub ttl: Duration,
    pub reason_required: bool,
    /// Execute even if the target's resourceVersion changed since the preview (default false).
    pub allow_target_change: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Allow,
    RequireApproval(ApprovalRule),
    Deny { message: String },
}

impl Effect {
    /// Order of strictness: deny > require_approval (by approvals) > allow.
    fn strictness(&self) -> (u8, u32) {
        match self {
            Effect::Allow => (0, 0),
            Effect::RequireApproval(rule) => (1, rule.approvals),
            Effect::Deny { .. } => (2, 0),
        }
    }

    /// `allow`, `require_approval` or `deny`, for spans, audit and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::RequireApproval(_) => "require_approval",
            Effect::Deny { .. } => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::Allow => f.write_str("allow"),
            Effect::RequireApproval(rule) => {
                let plural = if rule.approvals == 1 { "" } else { "s" };
                write!(
                    f,
                    "require_approval: {} approval{plural} by {}, ttl {}",
                    rule.approvals,
                    rule.approver_roles.join(" or "),
                    file::format_ttl(rule.ttl)
                )?;
                if rule.reason_required {
                    f.write_str(", reason required")?;
                }
                if rule.allow_target_change {
                    f.write_str(", runs even if the target changed")?;
                }
                Ok(())
            }
            Effect::Deny { message } => write!(f, "deny: {message}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub effect: Effect,
    /// "file.yaml#rule-name", or "(none)" when nothing matched
    pub rule: String,
}

/// Every problem found in the policy files, one per line:
/// "default.yaml: rule `x`: condition: line 1, column 12: <cel message>".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct PolicyErrors {
    pub problems: Vec<String>,
}

/// A compiled, immutable set of rules.
pub struct PolicySet {
    rules: Vec<Rule>,
    env: Arc<Env>,
    /// Identity-provider role → permissions it grants (the `permissions:` map of the files).
    grants: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicySet")
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PolicySet {
    /// Every `*.yaml` / `*.yml` file of `dir`, in file-name order. A missing or empty directory
    /// is an error naming it.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        let files = file::read_dir(dir).map_err(|problems| PolicyErrors { problems })?;
        let sources: Vec<(&str, &str)> = files
            .iter()
            .map(|(name, text)| (name.as_str(), text.as_str()))
            .collect();
        PolicySet::from_sources(&sources)
    }

    /// Compile (file name, YAML text) pairs, in the order given. Reports every problem at once.
    pub fn from_sources(sources: &[(&str, &str)]) -> Result<PolicySet, PolicyErrors> {
        let env = condition::environment();
        let mut rules = Vec::new();
        let mut grants = std::collections::BTreeMap::new();
        let mut problems = Vec::new();
        for (name, text) in sources {
            file::parse_file(&env, name, text, &mut rules, &mut grants, &mut problems);
        }
        if problems.is_empty() && rules.is_empty() {
            let names: Vec<&str> = sources.iter().map(|(name, _)| *name).collect();
            problems.push(format!(
                "{}: no rules; every call would be denied",
                if names.is_empty() {
                    "(no files)".to_string()
                } else {
                    names.join(", ")
                }
            ));
        }
        if problems.is_empty() {
            Ok(PolicySet { rules, env, grants })
        } else {
            Err(PolicyErrors { problems })
        }
    }

    /// `policies/default.yaml` as compiled into the binary.
    pub fn builtin_default() -> PolicySet {
        match PolicySet::from_sources(&[(DEFAULT_POLICY_FILE, DEFAULT_POLICY)]) {
            Ok(set) => set,
            // A unit test keeps this from happening; should it, fail closed.
            Err(e) => {
                tracing::error!(error = %e, "the built-in policy does not compile; every call is denied");
                PolicySet {
                    rules: Vec::new(),
                    env: condition::environment(),
                    grants: Default::default(),
                }
            }
        }
    }

    pub fn decide(&self, input: &PolicyInput) -> Decision {
        self.evaluate(input).0
    }

    /// Every permission a principal holds: its roles (a role named like a permission is that
    /// permission) plus what the `permissions:` map grants those roles.
    pub fn permissions(&self, principal: &Principal) -> std::collections::BTreeSet<String> {
        let mut out: std::collections::BTreeSet<String> = principal.roles.iter().cloned().collect();
        for role in &principal.roles {
            if let Some(granted) = self.grants.get(role) {
                out.extend(granted.iter().cloned());
            }
        }
        out
    }

    /// The one decision on permissions, used by the gate and by every surface.
    pub fn check_permission(&self, principal: &Principal, permission: &str) -> bool {
        self.permissions(principal).contains(permission)
    }

    /// The principal with its roles expanded to its permissions, as rules and approvals see it.
    pub fn effective(&self, principal: &Principal) -> Principal {
        let mut p = principal.clone();
        p.roles = self.permissions(principal).into_iter().collect();
        p
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Rule ids ("file.yaml#rule-name"), in evaluation order.
    pub fn rule_ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.id.as_str())
    }

    /// Tool globs that match none of `tools` (likely typos), as "file.yaml#rule: `glob`".
    pub fn unused_tool_patterns(&self, tools: &[&str]) -> Vec<String> {
        self.rules
            .iter()
            .flat_map(|r| r.tools.iter().map(move |g| (r, g)))
            .filter(|(_, glob)| !tools.iter().any(|t| rule::glob_match(glob, t)))
            .map(|(r, glob)| format!("{}: `{glob}`", r.id))
            .collect()
    }

    /// The decision and how every rule applied, in rule order.
    fn evaluate(&self, input: &PolicyInput) -> (Decision, Vec<(&Rule, Outcome)>) {
        let cel_input = LazyInput::new(&self.env, input);
        let outcomes: Vec<(&Rule, Outcome)> = self
            .rules
            .iter()
            .map(|r| (r, r.apply(input, &cel_input)))
            .collect();
        let mut winner: Option<(&Rule, &Effect)> = None;
        for (rule, outcome) in &outcomes {
            let effect = match outcome {
                Outcome::Matched(effect) | Outcome::Failed { effect, .. } => effect,
                Outcome::Missed(_) => continue,
            };
            if winner.is_none_or(|(_, best)| effect.strictness() > best.strictness()) {
                winner = Some((rule, effect));
            }
        }
        let decision = match winner {
            Some((rule, effect)) => Decision {
                effect: effect.clone(),
                rule: rule.id.clone(),
            },
            None => Decision {
                effect: Effect::Deny {
                    message: no_rule_message(input),
                },
                rule: NO_RULE.to_string(),
            },
        };
        (decision, outcomes)
    }
}

fn no_rule_message(input: &PolicyInput) -> String {
    let roles = if input.principal.roles.is_empty() {
        "no roles".to_string()
    } else {
        format!("roles: {}", input.principal.roles.join(", "))
    };
    format!(
        "no policy rule allows {} for {} ({roles}); nothing was executed. Ask an operator for a role or a policy rule that covers this tool.",
        input.tool, input.principal.sub
    )
}

/// The live policy set, swapped whole on reload. Clones share it.
#[derive(Debug, Clone)]
pub struct PolicyHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    current: RwLock<Arc<PolicySet>>,
    dir: Option<PathBuf>,
}

impl PolicyHandle {
    /// `dir` is what [`PolicyHandle::reload`] re-reads; `None` keeps `set` for good.
    pub fn new(set: PolicySet, dir: Option<PathBuf>) -> Self {
        Self {
            inner: Arc::new(HandleInner {
                current: RwLock::new(Arc::new(set)),
                dir,
            }),
        }
    }

    pub fn current(&self) -> Arc<PolicySet> {
        let guard = self
            .inner
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    /// Re-read the directory; on success swap the set and return its rule count, on error keep
    /// the old set. Without a directory, nothing changes.
    pub fn reload(&self) -> Result<usize, PolicyErrors> {
        let Some(dir) = &self.inner.dir else {
            return Ok(self.current().rule_count());
        };
        let set = PolicySet::load_dir(dir)?;
        let count = set.rule_count();
        let mut guard = self
            .inner
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = Arc::new(set);
        Ok(count)
    }

    pub fn dir(&self) -> Option<&Path> {
        self.inner.dir.as_deref()
    }
}

#[cfg(test)]
mod tests;
