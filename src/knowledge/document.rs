//! What the index holds: documents of three kinds, each with an id, a title, a body, tags, a
//! source anchor (file and heading, alert link), links to other documents and timestamps.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A section of a runbook file.
    Runbook,
    /// A past incident, or an alert toolgate received (firing or resolved).
    Incident,
    /// A backlog item: a known problem and the work that fixes it.
    Backlog,
    /// A DataPoint added through `memory.add_datapoints` (the fallback of `memory.*`); searched
    /// only when asked for by kind, never by the `knowledge.*` tools.
    #[schemars(skip)]
    DataPoint,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Runbook,
        Kind::Incident,
        Kind::Backlog,
        Kind::DataPoint,
    ];
    /// What a search without kinds looks at: everything but DataPoints.
    pub const SRE: [Kind; 3] = [Kind::Runbook, Kind::Incident, Kind::Backlog];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Runbook => "runbook",
            Kind::Incident => "incident",
            Kind::Backlog => "backlog",
            Kind::DataPoint => "datapoint",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// One indexed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// Unique across kinds: `file.md#anchor`, `INC-…`, `BL-…`, `alert:<fingerprint>:<start>`.
    pub id: String,
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub tags: Vec<String>,
    /// Where it comes from: `runbooks/postgres.md#replication-lag`, an alert's generator URL.
    pub source: String,
    /// `firing` / `resolved` for alerts, a backlog item's state; free text.
    pub status: Option<String>,
    /// Ids of related documents (an incident's backlog items, a backlog item's runbooks).
    pub links: Vec<String>,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Document {
    /// A digest of everything indexed, so unchanged documents are not written (or embedded)
    /// again.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for part in [
            self.kind.as_str(),
            &self.title,
            &self.body,
            &self.tags.join("\u{1f}"),
            &self.source,
            self.status.as_deref().unwrap_or(""),
            &self.links.join("\u{1f}"),
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        h.update(self.created_ms.to_le_bytes());
        h.update(self.updated_ms.to_le_bytes());
        format!("{:x}", h.finalize())
    }

    /// The text a vector is made of.
    pub fn embedding_text(&self) -> String {
        let mut text = format!("{}\n{}", self.title, self.body);
        if !self.tags.is_empty() {
            text.push_str("\ntags: ");
            text.push_str(&self.tags.join(", "));
        }
        // Embedding models read a few thousand tokens at most.
        if text.len() > 8000 {
            let mut cut = 8000;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        text
    }
}
