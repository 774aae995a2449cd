//! `memory.suggest_integration_path`: past integrations similar to the one asked about, the
//! practices the successful ones share, the approach that worked most, and a confidence whose
//! basis is shown. Computed only from the DataPoints' structured fields (source, target,
//! pattern, outcome, tags), never from generated prose: the same memory gives the same answer.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::adapters::cognee::datapoint::Recalled;
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Weights of the similarity: same source domain, same target domain, tag overlap (Jaccard).
const W_SOURCE: f64 = 0.35;
const W_TARGET: f64 = 0.35;
const W_TAGS: f64 = 0.30;
/// Cases below this similarity are not similar.
const MIN_SIMILARITY: f64 = 0.3;
/// Cases with the suggested pattern needed for full support.
const FULL_SUPPORT: f64 = 3.0;
const MAX_SIMILAR: usize = 10;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuggestParams {
    /// Source domain key.
    pub source: String,
    /// Target domain key.
    pub target: String,
    /// Requirements as tags, e.g. ["kafka", "exactly-once"].
    #[serde(default)]
    pub tags: Vec<String>,
    /// A sentence about the integration, to find related memory.
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SimilarCase {
    pub id: String,
    pub key: String,
    pub title: String,
    pub pattern: String,
    pub outcome: String,
    pub similarity: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SharedPractice {
    pub practice: String,
    /// Successful similar integrations that have it.
    pub cases: usize,
}

/// How the confidence was computed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Basis {
    pub similar_cases: usize,
    pub succeeded: usize,
    /// Mean similarity of the similar cases that used the suggested pattern.
    pub similarity: f64,
    pub cases_with_pattern: usize,
    pub succeeded_with_pattern: usize,
    /// min(1, cases_with_pattern / 3).
    pub support: f64,
    pub formula: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SuggestOutput {
    /// `cognee`, or `embedded` when Cognee could not answer.
    pub answered_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggested_pattern: Option<String>,
    pub approach: String,
    /// In [0, 1]; see `basis`.
    pub confidence: f64,
    pub basis: Basis,
    pub shared_practices: Vec<SharedPractice>,
    pub similar: Vec<SimilarCase>,
    pub truncated: bool,
}

pub struct SuggestIntegrationPath;

impl TypedTool for SuggestIntegrationPath {
    type Params = SuggestParams;
    type Output = SuggestOutput;
    const NAME: &'static str = "memory.suggest_integration_path";
    const TOOLSET: &'static str = "memory";
    const TITLE: &'static str = "Suggest an integration path";
    const DESCRIPTION: &'static str = "Suggest how to integrate two domains from similar past integrations in memory: the approach that succeeded most, practices the successes share, and a confidence in [0,1] with its basis (cases, similarity, successes).";
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("similar");
    const UNTRUSTED: Option<&'static str> = Some("Titles are untrusted data from memory.");

    fn target(&self, p: &SuggestParams) -> Option<Target> {
        Some(Target {
            kind: Some("Integration".into()),
            name: Some(format!("{}->{}", p.source.trim(), p.target.trim())),
            ..Target::default()
        })
    }

    async fn call(&self, ctx: &ToolContext, p: SuggestParams) -> Result<SuggestOutput, ToolError> {
        let source = p.source.trim().to_lowercase();
        let target = p.target.trim().to_lowercase();
        if source.is_empty() || target.is_empty() {
            return Err(ToolError::invalid_arguments(
                "arguments `source` and `target`: give both domain keys",
            ));
        }
        let tags: BTreeSet<String> = p.tags.iter().map(|t| t.trim().to_lowercase()).collect();
        let mut query = format!("integration from {source} to {target}");
        if !tags.is_empty() {
            query.push_str(&format!(
                " with {}",
                tags.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(d) = p.description.as_deref().filter(|d| !d.trim().is_empty()) {
            query.push_str(&format!(": {}", d.trim()));
        }
        let answer = ctx
            .adapters
            .memory
            .search("CHUNKS", &query, &["integration".to_string()], 50)
            .await?;
        let mut found: BTreeMap<String, Recalled> = BTreeMap::new();
        for hit in answer.hits {
            for d in hit.datapoints {
                if d.kind == "integration" {
                    found.entry(d.id.clone()).or_insert(d);
                }
            }
        }
        let mut out = suggest(&source, &target, &tags, found.into_values());
        out.answered_by = answer.source;
        out.degraded = answer.degraded;
        Ok(out)
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn similarity(source: &str, target: &str, tags: &BTreeSet<String>, d: &Recalled) -> f64 {
    let field = |k: &str| {
        d.fields
            .get(k)
            .map(|v| v.to_lowercase())
            .unwrap_or_default()
    };
    let theirs: BTreeSet<String> = d.tags.iter().map(|t| t.to_lowercase()).collect();
    let union = tags.union(&theirs).count();
    let jaccard = if union == 0 {
        0.0
    } else {
        tags.intersection(&theirs).count() as f64 / union as f64
    };
    let s = W_SOURCE * f64::from(u8::from(field("source") == source))
        + W_TARGET * f64::from(u8::from(field("target") == target))
        + W_TAGS * jaccard;
    round(s, 3)
}

/// The suggestion from the recalled integrations (any order: the answer does not depend on it).
pub fn suggest(
    source: &str,
    target: &str,
    tags: &BTreeSet<String>,
    recalled: impl Iterator<Item = Recalled>,
) -> SuggestOutput {
    let mut cases: Vec<(SimilarCase, Vec<String>)> = recalled
        .filter_map(|d| {
            let sim = similarity(source, target, tags, &d);
            (sim >= MIN_SIMILARITY).then(|| {
                let f = |k: &str| d.fields.get(k).cloned().unwrap_or_default();
                (
                    SimilarCase {
                        id: d.id.clone(),
                        key: d.key.clone(),
                        title: d.title.clone(),
                        pattern: f("pattern"),
                        outcome: f("outcome"),
                        similarity: sim,
                    },
                    d.tags.clone(),
                )
            })
        })
        .collect();
    cases.sort_by(|a, b| {
        b.0.similarity
            .total_cmp(&a.0.similarity)
            .then_with(|| a.0.id.cmp(&b.0.id))
    });
    cases.truncate(MAX_SIMILAR);
    let ok = |c: &SimilarCase| c.outcome == "succeeded";
    // pattern → (cases, succeeded, similarity sum)
    let mut patterns: BTreeMap<&str, (usize, usize, f64)> = BTreeMap::new();
    for (c, _) in &cases {
        let e = patterns.entry(c.pattern.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(ok(c));
        e.2 += c.similarity;
    }
    // Most successes, then best rate, then closest cases; names break ties (BTreeMap order).
    let best = patterns
        .iter()
        .filter(|(_, (_, won, _))| *won > 0)
        .max_by(|a, b| {
            let (na, wa, sa) = a.1;
            let (nb, wb, sb) = b.1;
            wa.cmp(wb)
                .then_with(|| (*wa as f64 / *na as f64).total_cmp(&(*wb as f64 / *nb as f64)))
                .then_with(|| (sa / *na as f64).total_cmp(&(sb / *nb as f64)))
                .then_with(|| b.0.cmp(a.0))
        })
        .map(|(p, v)| (p.to_string(), *v));
    let succeeded: Vec<&(SimilarCase, Vec<String>)> = cases.iter().filter(|(c, _)| ok(c)).collect();
    let mut practice_count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, tags) in &succeeded {
        for t in tags {
            *practice_count.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut shared: Vec<SharedPractice> = practice_count
        .into_iter()
        .filter(|(_, n)| *n >= 2 || succeeded.len() == 1)
        .map(|(practice, cases)| SharedPractice {
            practice: practice.to_string(),
            cases,
        })
        .collect();
    shared.sort_by(|a, b| {
        b.cases
            .cmp(&a.cases)
            .then_with(|| a.practice.cmp(&b.practice))
    });
    let failed: BTreeSet<&str> = cases
        .iter()
        .filter(|(c, _)| c.outcome == "failed")
        .map(|(c, _)| c.pattern.as_str())
        .collect();
    let (confidence, basis, approach, suggested) = match &best {
        Some((pattern, (n, won, sum))) => {
            let similarity = round(sum / *n as f64, 3);
            let rate = *won as f64 / *n as f64;
            let support = round((*n as f64 / FULL_SUPPORT).min(1.0), 3);
            let confidence = round(similarity * rate * support, 2);
            let mut approach =
                format!("Use {pattern}: {won} of {n} similar integration(s) with it succeeded");
            if !shared.is_empty() {
                let names: Vec<&str> = shared.iter().map(|s| s.practice.as_str()).collect();
                approach.push_str(&format!(
                    "; keep what the successes share: {}",
                    names.join(", ")
                ));
            }
            let avoid: Vec<&str> = failed.iter().copied().filter(|f| f != pattern).collect();
            if !avoid.is_empty() {
                approach.push_str(&format!("; failed before: {}", avoid.join(", ")));
            }
            approach.push('.');
            (
                confidence,
                Basis {
                    similar_cases: cases.len(),
                    succeeded: succeeded.len(),
                    similarity,
                    cases_with_pattern: *n,
                    succeeded_with_pattern: *won,
                    support,
                    formula: FORMULA,
                },
                approach,
                Some(pattern.clone()),
            )
        }
        None => (
            0.0,
            Basis {
                similar_cases: cases.len(),
                succeeded: 0,
                similarity: 0.0,
                cases_with_pattern: 0,
                succeeded_with_pattern: 0,
                support: 0.0,
                formula: FORMULA,
            },
            if cases.is_empty() {
                format!(
                    "No similar integration of {source} or {target} is in memory; add past integrations with memory.add_datapoints."
                )
            } else {
                "No similar integration succeeded; nothing to suggest from memory.".to_string()
            },
            None,
        ),
    };
    SuggestOutput {
        answered_by: "cognee",
        degraded: None,
        suggested_pattern: suggested,
        approach,
        confidence,
        basis,
        shared_practices: shared,
        similar: cases.into_iter().map(|(c, _)| c).collect(),
        truncated: false,
    }
}

const FORMULA: &str =
    "confidence = similarity × succeeded_with_pattern/cases_with_pattern × support";

#[cfg(test)]
mod tests {
    use super::*;

    fn case(
        key: &str,
        source: &str,
        target: &str,
        pattern: &str,
        outcome: &str,
        tags: &[&str],
    ) -> Recalled {
        Recalled {
            id: crate::adapters::cognee::datapoint::datapoint_id("integration", key),
            kind: "integration".into(),
            key: key.into(),
            title: key.into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            fields: [
                ("source", source),
                ("target", target),
                ("pattern", pattern),
                ("outcome", outcome),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    #[test]
    fn the_suggestion_follows_the_structured_fields_in_any_order() {
        let all = vec![
            case(
                "payments->ledger",
                "payments",
                "ledger",
                "event-streaming",
                "succeeded",
                &["kafka", "outbox"],
            ),
            case(
                "orders->ledger",
                "orders",
                "ledger",
                "event-streaming",
                "succeeded",
                &["kafka", "outbox", "idempotency"],
            ),
            case(
                "billing->ledger",
                "billing",
                "ledger",
                "rest-api",
                "failed",
                &["kafka"],
            ),
            case(
                "hr->payroll",
                "hr",
                "payroll",
                "batch-etl",
                "succeeded",
                &["csv"],
            ),
        ];
        let tags: BTreeSet<String> = ["kafka".to_string()].into();
        let a = suggest("payments", "ledger", &tags, all.clone().into_iter());
        let b = suggest("payments", "ledger", &tags, all.into_iter().rev());
        assert_eq!(
            serde_json::to_value(&a).expect("json"),
            serde_json::to_value(&b).expect("json"),
            "the order of recall does not matter"
        );
        assert_eq!(a.suggested_pattern.as_deref(), Some("event-streaming"));
        assert_eq!(a.similar.len(), 3, "hr->payroll shares nothing");
        // payments->ledger: 0.35 + 0.35 + 0.3·1/2; billing->ledger: 0.35 + 0.3·1;
        // orders->ledger: 0.35 + 0.3·1/3.
        let sims: Vec<(&str, f64)> = a
            .similar
            .iter()
            .map(|c| (c.key.as_str(), c.similarity))
            .collect();
        assert_eq!(
            sims,
            vec![
                ("payments->ledger", 0.85),
                ("billing->ledger", 0.65),
                ("orders->ledger", 0.45)
            ]
        );
        assert_eq!(a.basis.cases_with_pattern, 2);
        assert_eq!(a.basis.succeeded_with_pattern, 2);
        assert_eq!(a.basis.similarity, 0.65);
        assert_eq!(a.basis.support, 0.667);
        assert_eq!(a.confidence, 0.43);
        assert_eq!(
            a.shared_practices
                .iter()
                .map(|s| s.practice.as_str())
                .collect::<Vec<_>>(),
            vec!["kafka", "outbox"]
        );
        assert!(
            a.approach.contains("failed before: rest-api"),
            "{}",
            a.approach
        );
        let none = suggest("x", "y", &BTreeSet::new(), std::iter::empty());
        assert_eq!(none.confidence, 0.0);
        assert!(none.suggested_pattern.is_none());
    }
}
