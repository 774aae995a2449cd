//! Which tools this server offers: the toolsets switched on (`--toolsets`, `mcp.toolsets`) and
//! read-only mode (`--read-only`, `mcp.read_only`). The registry lists only offered tools and
//! dispatch refuses the others, so every transport (MCP stdio and HTTP, JSON-RPC, A2A) and the
//! approved-call path see the same surface. Policy never widens it.

use std::collections::BTreeSet;

use crate::core::error::ToolError;
use crate::core::tool::{Risk, ToolSpec};

/// `--toolsets all`: every registered toolset.
pub const ALL: &str = "all";

/// Toolsets offered by default whatever is configured; the others (obs, secret, and later
/// memory, knowledge, review, argocd, ticket, page) by default only when their upstream is
/// configured, since their tools could only answer "not configured".
pub const CORE_TOOLSETS: [&str; 2] = ["k8s", "approval"];

/// The offered surface.
#[derive(Debug, Clone, Default)]
pub struct Exposure {
    /// Toolsets switched on; `None` = every toolset.
    toolsets: Option<BTreeSet<String>>,
    read_only: bool,
}

impl Exposure {
    /// Every tool (tests, `toolgate tools`).
    pub fn everything() -> Self {
        Self::default()
    }

    /// The surface asked for: `asked` toolset names (`None`: the default — core toolsets plus
    /// those in `configured`), checked against `registered` (the toolsets tools belong to).
    /// Problems name the bad entry and the valid names.
    pub fn resolve(
        asked: Option<&[String]>,
        read_only: bool,
        registered: &BTreeSet<&'static str>,
        configured: &[&str],
    ) -> Result<Self, Vec<String>> {
        let toolsets = match asked {
            None => Some(
                registered
                    .iter()
                    .filter(|t| CORE_TOOLSETS.contains(t) || configured.contains(t))
                    .map(|t| t.to_string())
                    .collect(),
            ),
            Some([]) => {
                return Err(vec![format!(
                    "mcp.toolsets: an empty list would offer no tool; name toolsets ({}) or `{ALL}`",
                    names(registered)
                )]);
            }
            Some(asked) if asked.iter().any(|a| a == ALL) => None,
            Some(asked) => {
                let problems: Vec<String> = asked
                    .iter()
                    .filter(|a| !registered.contains(a.as_str()))
                    .map(|a| unknown_toolset(a, registered))
                    .collect();
                if !problems.is_empty() {
                    return Err(problems);
                }
                Some(asked.iter().cloned().collect())
            }
        };
        Ok(Self {
            toolsets,
            read_only,
        })
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Whether `spec` is listed and may be called.
    pub fn offers(&self, spec: &ToolSpec) -> bool {
        self.refusal(spec).is_none()
    }

    /// `Err` with the reason when `spec` is not offered; `called` is the name the caller used.
    pub fn check(&self, spec: &ToolSpec, called: &str) -> Result<(), NotOffered> {
        match self.refusal(spec) {
            None => Ok(()),
            Some(Refusal::ReadOnly) => Err(NotOffered {
                rule: "read-only mode",
                error: ToolError::forbidden(format!(
                    "tool `{called}` is not available: read-only mode is on (--read-only / mcp.read_only) and it is a {} tool of toolset `{}`; only read tools are offered. Nothing was executed.",
                    spec.risk.as_str(),
                    spec.toolset
                )),
            }),
            Some(Refusal::Toolset) => {
                let enabled = self.toolsets.iter().flatten().cloned().collect::<Vec<_>>();
                let mut with = enabled.clone();
                with.push(spec.toolset.to_string());
                Err(NotOffered {
                    rule: "toolsets",
                    error: ToolError::forbidden(format!(
                        "tool `{called}` is not available: it belongs to toolset `{}`, which this server does not offer (offered: {}). Start toolgate with `--toolsets {}` (or set mcp.toolsets) to offer it. Nothing was executed.",
                        spec.toolset,
                        enabled.join(", "),
                        with.join(",")
                    )),
                })
            }
        }
    }

    fn refusal(&self, spec: &ToolSpec) -> Option<Refusal> {
        if let Some(on) = &self.toolsets
            && !on.contains(spec.toolset)
        {
            return Some(Refusal::Toolset);
        }
        if self.read_only && spec.risk != Risk::Read {
            return Some(Refusal::ReadOnly);
        }
        None
    }

    /// `toolsets k8s, approval; read-only`, for the start-up log.
    pub fn describe(&self) -> String {
        let sets = match &self.toolsets {
            None => ALL.to_string(),
            Some(on) => on.iter().cloned().collect::<Vec<_>>().join(", "),
        };
        if self.read_only {
            format!("toolsets {sets}; read-only")
        } else {
            format!("toolsets {sets}")
        }
    }
}

enum Refusal {
    Toolset,
    ReadOnly,
}

/// Why a tool is not offered: the switch that hides it (for the audit record) and the tool
/// error the caller gets.
#[derive(Debug)]
pub struct NotOffered {
    pub rule: &'static str,
    pub error: ToolError,
}

fn names(registered: &BTreeSet<&'static str>) -> String {
    registered.iter().copied().collect::<Vec<_>>().join(", ")
}

fn unknown_toolset(asked: &str, registered: &BTreeSet<&'static str>) -> String {
    let closest = registered
        .iter()
        .map(|t| (strsim::levenshtein(asked, t), *t))
        .filter(|(d, t)| *d <= 2.max(t.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, t)| format!("did you mean `{t}`? "))
        .unwrap_or_default();
    format!(
        "mcp.toolsets: unknown toolset `{asked}`; {closest}toolsets: {}, or `{ALL}`",
        names(registered)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn spec(toolset: &'static str, risk: Risk) -> ToolSpec {
        ToolSpec {
            name: "x.tool",
            toolset,
            title: "",
            description: String::new(),
            risk,
            budget: None,
            idempotent: false,
            open_world: true,
            max_seconds: None,
            input_schema: Arc::default(),
            output_schema: Arc::default(),
            lists_output_schema: false,
            untrusted: false,
            text_lines: None,
        }
    }

    fn registered() -> BTreeSet<&'static str> {
        ["k8s", "obs", "approval"].into_iter().collect()
    }

    #[test]
    fn the_default_is_the_core_plus_what_is_configured() {
        let bare = Exposure::resolve(None, false, &registered(), &[]).expect("default");
        assert!(bare.offers(&spec("k8s", Risk::Write)));
        assert!(bare.offers(&spec("approval", Risk::Read)));
        assert!(!bare.offers(&spec("obs", Risk::Read)));
        let with_obs = Exposure::resolve(None, false, &registered(), &["obs"]).expect("obs");
        assert!(with_obs.offers(&spec("obs", Risk::Read)));
        let all = Exposure::resolve(Some(&["all".into()]), false, &registered(), &[]).expect("all");
        assert!(all.offers(&spec("obs", Risk::Write)));
    }

    #[test]
    fn refusals_say_why_and_how_to_offer_the_tool() {
        let only_obs =
            Exposure::resolve(Some(&["obs".into()]), false, &registered(), &[]).expect("obs");
        let refused = only_obs
            .check(&spec("k8s", Risk::Read), "k8s_get_logs")
            .expect_err("hidden");
        assert_eq!(refused.rule, "toolsets");
        let err = refused.error;
        assert!(err.message.contains("`k8s_get_logs`"), "{}", err.message);
        assert!(err.message.contains("toolset `k8s`"), "{}", err.message);
        assert!(
            err.message.contains("--toolsets obs,k8s"),
            "{}",
            err.message
        );

        let read_only = Exposure::resolve(None, true, &registered(), &[]).expect("ro");
        assert!(read_only.offers(&spec("k8s", Risk::Read)));
        for risk in [Risk::Write, Risk::Critical, Risk::Sensitive] {
            let refused = read_only
                .check(&spec("k8s", risk), "k8s.delete_resource")
                .expect_err("read-only");
            assert_eq!(refused.rule, "read-only mode");
            let err = refused.error;
            assert!(
                err.message.contains("read-only mode is on"),
                "{}",
                err.message
            );
            assert!(err.message.contains(risk.as_str()), "{}", err.message);
        }
    }

    #[test]
    fn unknown_or_empty_toolsets_are_config_problems() {
        let problems = Exposure::resolve(
            Some(&["k8z".into(), "obs".into(), "tickets".into()]),
            false,
            &registered(),
            &[],
        )
        .expect_err("unknown");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("`k8z`") && problems[0].contains("did you mean `k8s`?"));
        assert!(problems[1].contains("toolsets: approval, k8s, obs, or `all`"));
        assert!(Exposure::resolve(Some(&[]), false, &registered(), &[]).is_err());
    }
}
