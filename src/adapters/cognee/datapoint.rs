//! DataPoints: typed governance records (domain, integration, review, incident) with a stable id
//! (UUIDv5 of kind and natural key), index fields and relations, and the one document each
//! becomes for Cognee's `add` (Markdown named `<id>.md`). The document is a pure function of the
//! DataPoint — fields in a fixed order, no timestamps — so adding it again uploads the same bytes,
//! which Cognee finds by content hash and does not store twice. Documents are parsed back from
//! search results ([`parse_documents`]), so answers can be computed from structured fields.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The namespace of DataPoint ids: UUIDv5 of the URL `urn:toolgate:memory`.
fn namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:toolgate:memory")
}

/// The line that marks a toolgate DataPoint document (and carries its id).
pub const MARKER: &str = "toolgate-datapoint:";

pub const KINDS: [&str; 4] = ["domain", "integration", "review", "incident"];
pub const OUTCOMES: [&str; 3] = ["succeeded", "failed", "in_progress"];
pub const VERDICTS: [&str; 3] = ["approved", "changes_requested", "rejected"];

/// A DataPoint as a caller sends it ([`validate`] checks it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(description = "kind, key, title; fields by kind; relations.")]
pub struct DataPointInput {
    #[schemars(extend("enum" = KINDS))]
    pub kind: String,
    /// Unique per kind: domain name, src->dst, review or incident id.
    pub key: String,
    pub title: String,
    pub summary: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// integration: source domain key.
    pub source: Option<String>,
    /// integration: target domain key.
    pub target: Option<String>,
    /// integration: approach, e.g. event-streaming.
    pub pattern: Option<String>,
    /// integration: succeeded|failed|in_progress.
    pub outcome: Option<String>,
    /// review: key of what was reviewed.
    pub subject: Option<String>,
    /// review: approved|changes_requested|rejected.
    pub verdict: Option<String>,
    /// incident: severity, e.g. sev1.
    pub severity: Option<String>,
    /// incident: affected service.
    pub service: Option<String>,
    /// Edges to other DataPoints.
    #[serde(default)]
    pub relations: Vec<RelationInput>,
}

/// An edge to another DataPoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(description = "")]
pub struct RelationInput {
    /// e.g. depends_on, reviews, affects.
    #[serde(rename = "type")]
    pub relation: String,
    #[schemars(extend("enum" = KINDS))]
    pub kind: String,
    pub key: String,
}

/// An edge, with the id of the DataPoint it points to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Relation {
    #[serde(rename = "type")]
    pub relation: String,
    pub kind: String,
    pub key: String,
    pub id: String,
}

/// A validated DataPoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataPoint {
    pub id: String,
    pub kind: String,
    pub key: String,
    pub title: String,
    pub summary: Option<String>,
    pub tags: Vec<String>,
    /// Kind-specific index fields, by name (ordered, so the document is stable).
    pub fields: BTreeMap<String, String>,
    pub relations: Vec<Relation>,
}

/// The stable id of the DataPoint of `kind` with natural key `key` (case and surrounding
/// spaces of the key do not matter).
pub fn datapoint_id(kind: &str, key: &str) -> String {
    Uuid::new_v5(
        &namespace(),
        format!("{kind}:{}", key.trim().to_lowercase()).as_bytes(),
    )
    .to_string()
}

/// Validate every item; the first problem of each bad item names its index and field. `Err`
/// holds every problem: then nothing may be sent.
pub fn validate(items: &[DataPointInput]) -> Result<Vec<DataPoint>, Vec<String>> {
    let mut problems = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    // id → (index, kind and key) of its first occurrence.
    let mut seen: BTreeMap<String, (usize, String)> = BTreeMap::new();
    if items.is_empty() {
        problems.push("datapoints: empty; send at least one DataPoint".to_string());
    }
    for (i, item) in items.iter().enumerate() {
        match validate_one(i, item) {
            Ok(dp) => {
                match seen.get(&dp.id) {
                    Some((first, what)) => problems.push(format!(
                        "datapoints[{i}].key: `{}` repeats datapoints[{first}] ({what}); send each DataPoint once",
                        item.key
                    )),
                    None => {
                        seen.insert(dp.id.clone(), (i, format!("{} {}", dp.kind, dp.key)));
                    }
                }
                out.push(dp);
            }
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn validate_one(i: usize, item: &DataPointInput) -> Result<DataPoint, String> {
    let at = |field: &str| format!("datapoints[{i}].{field}");
    let kind = item.kind.trim();
    if !KINDS.contains(&kind) {
        return Err(format!(
            "{}: `{}` is not a DataPoint kind; use one of {}",
            at("kind"),
            item.kind,
            KINDS.join(", ")
        ));
    }
    let key = single_line(&at("key"), &item.key, 200)?;
    let title = single_line(&at("title"), &item.title, 300)?;
    let summary = match &item.summary {
        Some(s) if s.chars().count() > 4000 => {
            return Err(format!(
                "{}: {} characters; at most 4000",
                at("summary"),
                s.chars().count()
            ));
        }
        Some(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    let mut tags = Vec::new();
    for (t, tag) in item.tags.iter().enumerate() {
        let tag = word(&at(&format!("tags[{t}]")), tag)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    tags.sort();
    let mut fields = BTreeMap::new();
    let (required, allowed): (&[&str], &[&str]) = match kind {
        "integration" => (
            &["source", "target", "pattern", "outcome"],
            &["source", "target", "pattern", "outcome"],
        ),
        "review" => (&["subject", "verdict"], &["subject", "verdict"]),
        "incident" => (&["severity"], &["severity", "service"]),
        _ => (&[], &[]),
    };
    let given = [
        ("source", &item.source),
        ("target", &item.target),
        ("pattern", &item.pattern),
        ("outcome", &item.outcome),
        ("subject", &item.subject),
        ("verdict", &item.verdict),
        ("severity", &item.severity),
        ("service", &item.service),
    ];
    for (name, value) in given {
        match value {
            Some(_) if !allowed.contains(&name) => {
                return Err(format!(
                    "{}: not a field of {kind} DataPoints (they have {})",
                    at(name),
                    if allowed.is_empty() {
                        "no kind-specific fields".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ));
            }
            Some(v) => {
                let v = match name {
                    "outcome" => one_of(&at(name), v, &OUTCOMES)?,
                    "verdict" => one_of(&at(name), v, &VERDICTS)?,
                    "pattern" => word(&at(name), v)?,
                    _ => single_line(&at(name), v, 200)?,
                };
                fields.insert(name.to_string(), v);
            }
            None if required.contains(&name) => {
                return Err(format!(
                    "{}: missing; {kind} DataPoints need {}",
                    at(name),
                    required.join(", ")
                ));
            }
            None => {}
        }
    }
    let mut relations = Vec::new();
    for (r, rel) in item.relations.iter().enumerate() {
        let at = |field: &str| format!("datapoints[{i}].relations[{r}].{field}");
        let relation = word(&at("type"), &rel.relation)?;
        let rkind = rel.kind.trim();
        if !KINDS.contains(&rkind) {
            return Err(format!(
                "{}: `{}` is not a DataPoint kind; use one of {}",
                at("kind"),
                rel.kind,
                KINDS.join(", ")
            ));
        }
        let rkey = single_line(&at("key"), &rel.key, 200)?;
        relations.push(Relation {
            id: datapoint_id(rkind, &rkey),
            relation,
            kind: rkind.to_string(),
            key: rkey,
        });
    }
    Ok(DataPoint {
        id: datapoint_id(kind, &key),
        kind: kind.to_string(),
        key,
        title,
        summary,
        tags,
        fields,
        relations,
    })
}

fn single_line(at: &str, value: &str, max: usize) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("{at}: empty; give a value"));
    }
    if v.contains(['\n', '\r']) {
        return Err(format!("{at}: must be one line"));
    }
    if v.chars().count() > max {
        return Err(format!("{at}: longer than {max} characters"));
    }
    Ok(v.to_string())
}

/// A tag-like word: lower case letters, digits, `-`, `_`, `.`, `:`.
fn word(at: &str, value: &str) -> Result<String, String> {
    let v = single_line(at, value, 100)?.to_lowercase();
    if !v
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!(
            "{at}: `{value}` must be one word (letters, digits, - _ . :), e.g. event-streaming"
        ));
    }
    Ok(v)
}

fn one_of(at: &str, value: &str, allowed: &[&str]) -> Result<String, String> {
    let v = value.trim().to_lowercase();
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(format!(
            "{at}: `{value}` is not one of {}",
            allowed.join(", ")
        ))
    }
}

/// One file for Cognee's `add`: its name and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub file_name: String,
    pub text: String,
}

impl DataPoint {
    /// The document Cognee stores: a Markdown file named by the id, fields one per line in a
    /// fixed order, relations written out (Cognee's graph extraction reads them as edges).
    pub fn document(&self) -> Document {
        let mut t = format!("# {} {}: {}\n\n", self.kind, self.key, self.title);
        t.push_str(&format!("{MARKER} {}\n", self.id));
        t.push_str(&format!("kind: {}\nkey: {}\n", self.kind, self.key));
        for (name, value) in &self.fields {
            t.push_str(&format!("{name}: {value}\n"));
        }
        if !self.tags.is_empty() {
            t.push_str(&format!("tags: {}\n", self.tags.join(", ")));
        }
        if let Some(summary) = &self.summary {
            t.push_str(&format!("\n## Summary\n\n{summary}\n"));
        }
        if !self.relations.is_empty() {
            t.push_str("\n## Relations\n\n");
            for r in &self.relations {
                t.push_str(&format!(
                    "- {} {} {} ({}: {})\n",
                    self.key, r.relation, r.key, r.kind, r.id
                ));
            }
        }
        Document {
            file_name: format!("{}.md", self.id),
            text: t,
        }
    }
}

/// A DataPoint read back from text Cognee returned (a chunk or a document): its id, kind, key,
/// title and index fields. Relations and summary are not needed by any answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recalled {
    pub id: String,
    pub kind: String,
    pub key: String,
    pub title: String,
    pub tags: Vec<String>,
    pub fields: BTreeMap<String, String>,
}

/// Every toolgate DataPoint document in `text` (several when a chunk holds several).
pub fn parse_documents(text: &str) -> Vec<Recalled> {
    let mut out: Vec<Recalled> = Vec::new();
    let mut title = String::new();
    let mut current: Option<Recalled> = None;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(head) = line.strip_prefix("# ") {
            out.extend(current.take());
            // `# kind key: title`
            title = head
                .split_once(": ")
                .map(|(_, t)| t.to_string())
                .unwrap_or_default();
            continue;
        }
        if let Some(id) = line.strip_prefix(MARKER) {
            out.extend(current.take());
            current = Some(Recalled {
                id: id.trim().to_string(),
                kind: String::new(),
                key: String::new(),
                title: std::mem::take(&mut title),
                tags: Vec::new(),
                fields: BTreeMap::new(),
            });
            continue;
        }
        let Some(dp) = current.as_mut() else { continue };
        if line.starts_with("## ") {
            out.extend(current.take());
            continue;
        }
        if let Some((name, value)) = line.split_once(": ") {
            let value = value.trim().to_string();
            match name {
                "kind" => dp.kind = value,
                "key" => dp.key = value,
                "tags" => dp.tags = value.split(", ").map(str::to_string).collect(),
                "source" | "target" | "pattern" | "outcome" | "subject" | "verdict"
                | "severity" | "service" => {
                    dp.fields.insert(name.to_string(), value);
                }
                _ => {}
            }
        }
    }
    out.extend(current);
    out.retain(|r| !r.kind.is_empty() && !r.key.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integration(key: &str) -> DataPointInput {
        DataPointInput {
            kind: "integration".into(),
            key: key.into(),
            title: "Payments to ledger".into(),
            summary: Some("Outbox and Kafka.".into()),
            tags: vec!["Kafka".into(), "outbox".into(), "kafka".into()],
            source: Some("payments".into()),
            target: Some("ledger".into()),
            pattern: Some("event-streaming".into()),
            outcome: Some("succeeded".into()),
            relations: vec![RelationInput {
                relation: "depends_on".into(),
                kind: "domain".into(),
                key: "ledger".into(),
            }],
            ..DataPointInput::default()
        }
    }

    #[test]
    fn ids_are_stable_and_documents_are_byte_identical() {
        let a = validate(&[integration("payments->ledger")]).expect("valid");
        let b = validate(&[integration(" Payments->Ledger ")]).expect("valid");
        assert_eq!(a[0].id, datapoint_id("integration", "payments->ledger"));
        assert_eq!(a[0].id, b[0].id, "case and spaces of the key do not matter");
        assert_ne!(a[0].id, datapoint_id("domain", "payments->ledger"));
        assert_eq!(a[0].tags, vec!["kafka", "outbox"]);
        let doc = a[0].document();
        assert_eq!(
            doc,
            validate(&[integration("payments->ledger")]).expect("v")[0].document()
        );
        assert_eq!(doc.file_name, format!("{}.md", a[0].id));
        assert!(
            doc.text.contains(
                "outcome: succeeded\npattern: event-streaming\nsource: payments\ntarget: ledger\n"
            ),
            "{}",
            doc.text
        );
        assert!(doc.text.contains(&format!(
            "depends_on ledger (domain: {})",
            datapoint_id("domain", "ledger")
        )));
        let back = parse_documents(&doc.text);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].id, a[0].id);
        assert_eq!(back[0].fields["pattern"], "event-streaming");
        assert_eq!(back[0].title, "Payments to ledger");
        assert_eq!(back[0].tags, vec!["kafka", "outbox"]);
    }

    #[test]
    fn every_bad_item_is_named_with_its_field() {
        let mut bad_outcome = integration("a->b");
        bad_outcome.outcome = Some("done".into());
        let mut no_pattern = integration("c->d");
        no_pattern.pattern = None;
        let domain_with_verdict = DataPointInput {
            kind: "domain".into(),
            key: "payments".into(),
            title: "Payments".into(),
            verdict: Some("approved".into()),
            ..DataPointInput::default()
        };
        let bad_kind = DataPointInput {
            kind: "team".into(),
            ..DataPointInput::default()
        };
        let problems = validate(&[
            integration("ok->fine"),
            bad_outcome,
            no_pattern,
            domain_with_verdict,
            bad_kind,
            integration("OK->fine"),
        ])
        .expect_err("bad");
        assert_eq!(
            problems,
            vec![
                "datapoints[1].outcome: `done` is not one of succeeded, failed, in_progress",
                "datapoints[2].pattern: missing; integration DataPoints need source, target, pattern, outcome",
                "datapoints[3].verdict: not a field of domain DataPoints (they have no kind-specific fields)",
                "datapoints[4].kind: `team` is not a DataPoint kind; use one of domain, integration, review, incident",
                "datapoints[5].key: `OK->fine` repeats datapoints[0] (integration ok->fine); send each DataPoint once",
            ]
        );
    }
}
