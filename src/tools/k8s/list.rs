//! `k8s.list_resources`: any kind as compact kubectl-like rows, or full objects. With an output
//! budget it reads the API server in pages sized to what fits (`limit` + `continue`) and stops
//! when the budget is full, so an answer costs the same in a cluster of 200 pods or 50,000; the
//! cursor resumes at the API server's page of the cut, and an expired continue token (410)
//! restarts the list from the beginning with a note.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::get::to_yaml;
use super::redact::sanitize;
use super::rows::{Item, table};
use super::target::{Omitted, items, list_params, missing_namespace, scope, settle_kind};
use crate::core::budget::{Anchor, serialized_len};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Risk, Target, TypedTool};

/// Objects fetched per page when the caller sets no `limit` and the call has no output budget.
const DEFAULT_LIMIT: u32 = 500;
const MAX_LIMIT: u32 = 5000;
/// What a row is taken to cost before any of its kind was read, in bytes: on the low side, so
/// that the first page usually fills the budget in one request (a compact pod row is 60–150
/// bytes, a full object one to a few KB; the budget cuts what is read beyond). Later answers
/// use what rows of that kind cost before ([`RowBytes`]).
const COMPACT_ROW_GUESS: usize = 48;
const OBJECT_ROW_GUESS: usize = 512;
/// Kinds whose row size is remembered; past this the memory starts over.
const REMEMBERED_KINDS: usize = 1024;
/// Bytes of the budget left for the answer's other fields and its cursor.
const ENVELOPE_RESERVE: usize = 512;
/// Pages read for one answer at most (selectors can make the API server answer short pages).
const MAX_PAGES: usize = 16;
/// Told to the agent when its cursor's list could not be continued.
pub const RESTARTED: &str = "the continue token expired; the list restarted from the beginning";

/// How list results are shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    /// One array per object under `columns` (default; smallest).
    #[default]
    Compact,
    /// Full objects (JSON) in `rows`.
    Json,
    /// Full objects, one YAML document string each, in `rows`.
    Yaml,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Kind or short name, as kubectl takes it.
    pub kind: String,
    /// Namespace; omit for all.
    pub namespace: Option<String>,
    /// Label selector, e.g. `app=web`.
    pub label_selector: Option<String>,
    /// Field selector, e.g. `status.phase=Running`.
    pub field_selector: Option<String>,
    /// Objects per API page (default: what fits `max_bytes`).
    #[schemars(range(min = 1, max = 5000))]
    pub limit: Option<u32>,
    /// API server continue token (prefer `cursor`).
    #[serde(rename = "continue")]
    pub continue_token: Option<String>,
    /// `compact` rows (default) or objects as `json`/`yaml`.
    pub output: Option<ListFormat>,
    /// `group/version`, if the kind is ambiguous.
    pub api_version: Option<String>,
    /// Cluster (default: the default one).
    pub cluster: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ListOutput {
    pub cluster: String,
    pub kind: String,
    pub api_version: String,
    /// The namespace listed; absent for all namespaces or a cluster-scoped kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Names of the cells of each row (compact output only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Compact: one array of cells per object. json: full objects. yaml: one YAML string per object.
    pub rows: Vec<Value>,
    /// The API server's continue token for the next page, when there is one.
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    pub continue_token: Option<String>,
    /// Objects after this page, when the API server says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<i64>,
    /// Set when the list could not go on where the cursor said (its continue token expired)
    /// and started again from the beginning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where the rows were read (`core::budget::ANCHORS_FIELD`); the core takes it out.
    #[serde(rename = "_anchors", skip_serializing_if = "Vec::is_empty")]
    #[schemars(skip)]
    pub anchors: Vec<Anchor>,
}

#[derive(Default)]
pub struct ListResources {
    row_bytes: RowBytes,
}

/// What a row costs on average, by cluster, kind and shape, learned from earlier answers: the
/// first page of an answer then asks for about as many objects as fit.
#[derive(Default)]
struct RowBytes(Mutex<HashMap<String, usize>>);

impl RowBytes {
    fn get(&self, key: &str) -> Option<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .copied()
    }

    /// Moves the remembered size a quarter of the way to `avg`.
    fn learn(&self, key: String, avg: usize) {
        let mut sizes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if sizes.len() >= REMEMBERED_KINDS && !sizes.contains_key(&key) {
            sizes.clear();
        }
        let size = sizes.entry(key).or_insert(avg);
        *size = (*size * 3 + avg).div_ceil(4);
    }
}

impl TypedTool for ListResources {
    type Params = ListParams;
    type Output = ListOutput;
    const NAME: &'static str = "k8s.list_resources";
    const TOOLSET: &'static str = "k8s";
    const TITLE: &'static str = "List Kubernetes objects";
    const DESCRIPTION: &'static str = "List objects of any kind as kubectl-like rows, by namespace and label/field selectors. Secret values are never shown.";
    const UNTRUSTED: Option<&'static str> = Some("Object fields are untrusted upstream data.");
    const RISK: Risk = Risk::Read;
    const IDEMPOTENT: bool = true;
    const BUDGET_FIELD: Option<&'static str> = Some("rows");

    async fn resolve(
        &self,
        ctx: &ToolContext,
        p: &mut ListParams,
    ) -> Result<Option<Target>, ToolError> {
        settle_kind(
            ctx,
            &mut p.cluster,
            &mut p.kind,
            &mut p.api_version,
            &mut p.namespace,
            &[],
            Omitted::AllNamespaces,
        )
        .await
    }

    async fn call(&self, ctx: &ToolContext, p: ListParams) -> Result<ListOutput, ToolError> {
        let t = scope(
            ctx,
            p.cluster.as_deref(),
            &p.kind,
            p.api_version.as_deref(),
            p.namespace.as_deref(),
            Omitted::AllNamespaces,
        )
        .await?;
        if !t.kind.info.supports("list") {
            return Err(ToolError::invalid_arguments(format!(
                "{} cannot be listed (verbs: {})",
                t.kind.info.qualified(),
                t.kind.info.verbs.join(", ")
            )));
        }
        let format = p.output.unwrap_or_default();
        let query = list_params(
            p.label_selector.as_deref(),
            p.field_selector.as_deref(),
            None,
            None,
        );
        let info = &t.kind.info;
        let with_namespace = info.namespaced && t.namespace.is_none();
        let now = jiff::Timestamp::now();
        // Compact rows read a typed view of each object (`view`); the other formats whole
        // objects.
        let rows =
            |objects: &[Item<'_>]| table(&info.group, &info.kind, objects, with_namespace, now);
        let whole = |objects: &[Value]| -> Result<Vec<Value>, ToolError> {
            match format {
                ListFormat::Yaml => objects
                    .iter()
                    .map(|o| to_yaml(&with_type(o, info)).map(Value::String))
                    .collect(),
                _ => Ok(objects.iter().map(|o| with_type(o, info)).collect()),
            }
        };
        let shape = format!(
            "{}\0{}\0{}\0{format:?}\0{with_namespace}",
            t.cluster.name(),
            info.group,
            info.kind
        );
        let prior = match self.row_bytes.get(&shape) {
            Some(learned) => Prior::Learned(learned),
            None => Prior::Guess(match format {
                ListFormat::Compact => COMPACT_ROW_GUESS,
                ListFormat::Json | ListFormat::Yaml => OBJECT_ROW_GUESS,
            }),
        };
        // The core's cursor wins over the tool's own `continue` argument.
        let start = ctx
            .page
            .upstream
            .clone()
            .or_else(|| p.continue_token.clone().filter(|c| !c.is_empty()));
        // Pages sized to the output budget, unless the caller chose the page size.
        let budget = ctx.page.max_bytes.filter(|_| p.limit.is_none());
        let mut read = Read::new(start, ctx.page.skip);
        let mut note = None;
        loop {
            // A cursor inside a page: read up to it once more, as metadata only, for the API
            // server's token there. Every later page then starts at a token of its own, and a
            // cursor deep in the list costs what the first answer did.
            let skipping = budget.is_some() && read.skip > 0;
            let limit = match (budget, p.limit) {
                _ if skipping => u32::try_from(read.skip).unwrap_or(MAX_LIMIT),
                (Some(max_bytes), _) => read.next_page_size(max_bytes, prior),
                (None, Some(limit)) => limit,
                (None, None) => DEFAULT_LIMIT,
            };
            let mut q = query.clone().limit(limit.clamp(1, MAX_LIMIT));
            q.continue_token = read.token.clone();
            q.metadata_only = skipping;
            let page = if skipping || format != ListFormat::Compact {
                t.list_page(&q).await?.map(Fetched::Whole)
            } else {
                t.list_page_text(&q).await?.map(Fetched::Text)
            };
            let Some(page) = page else {
                // The API server forgot the list this token walked (compacted after ~5
                // minutes). Going on with the token it offers would mix two states of the
                // cluster; a new list is consistent, and the agent is told.
                if note.is_some() {
                    return Err(ToolError::upstream(
                        "the API server expired a continue token the list had just been given; try again",
                    ));
                }
                note = Some(RESTARTED.to_string());
                read = Read::new(None, 0);
                continue;
            };
            match page {
                Fetched::Whole(list) if skipping => {
                    read.skip_page(&list);
                    if read.token.is_none() {
                        break;
                    }
                    continue;
                }
                Fetched::Whole(mut list) => {
                    sanitize(&mut list);
                    let objects = items(&list);
                    let skipped = read.skip.min(objects.len());
                    let rows = whole(&objects[skipped..])?;
                    read.add_page(PageMeta::of(&list), objects.len(), None, rows);
                }
                Fetched::Text(text) => {
                    let page = t.parse_page(&text)?;
                    let objects = page.items.items();
                    let skipped = read.skip.min(objects.len());
                    let tbl = rows(&objects[skipped..]);
                    let meta = page.metadata.0.as_ref();
                    let meta = PageMeta {
                        token: meta
                            .and_then(|m| m.continue_token.non_empty())
                            .map(String::from),
                        remaining: meta.and_then(|m| m.remaining_item_count.0),
                    };
                    read.add_page(meta, objects.len(), Some(tbl.columns), tbl.rows);
                }
            }
            let full = budget.is_none_or(|max| read.bytes + ENVELOPE_RESERVE >= max);
            if full || read.token.is_none() || read.pages >= MAX_PAGES {
                break;
            }
        }
        if let Some(avg) = read.bytes.checked_div(read.rows.len()) {
            self.row_bytes.learn(shape, avg);
        }
        if read.objects == 0
            && let Some(ns) = &t.namespace
            && let Some(err) = missing_namespace(t.cluster.as_ref(), ns).await
        {
            return Err(err);
        }
        Ok(ListOutput {
            cluster: t.cluster.name().to_string(),
            kind: info.kind.clone(),
            api_version: info.api_version(),
            namespace: t.namespace.clone(),
            // An answer without rows still names its columns.
            columns: match (read.columns, format) {
                (Some(columns), _) => Some(columns),
                (None, ListFormat::Compact) => Some(rows(&[]).columns),
                (None, _) => None,
            },
            rows: read.rows,
            continue_token: read.token,
            remaining_item_count: read.remaining,
            note,
            anchors: read.anchors,
        })
    }
}

/// What a row is taken to cost before any of this answer was read.
#[derive(Debug, Clone, Copy)]
enum Prior {
    /// Learned from earlier answers of the same kind and shape.
    Learned(usize),
    /// Nothing learned yet: a size on the low side.
    Guess(usize),
}

/// The rows read so far for one answer, and where the next page starts.
struct Read {
    columns: Option<Vec<String>>,
    rows: Vec<Value>,
    anchors: Vec<Anchor>,
    /// Serialized bytes of `rows`, as the core's budget counts them.
    bytes: usize,
    /// Objects the API server sent (before any skip).
    objects: usize,
    pages: usize,
    /// Continue token of the next page; `None` after the last one.
    token: Option<String>,
    /// Items of the next page delivered before.
    skip: usize,
    remaining: Option<i64>,
}

impl Read {
    /// Reading from the page of `token` (`None`: the first), whose first `skip` items were
    /// delivered before.
    fn new(token: Option<String>, skip: usize) -> Self {
        Self {
            columns: None,
            rows: Vec::new(),
            anchors: Vec::new(),
            bytes: 0,
            objects: 0,
            pages: 0,
            token,
            skip,
            remaining: None,
        }
    }

    /// Objects to ask for so that their rows about fill what is left of `max_bytes`: rows are
    /// taken to cost what those of this answer cost on average (plus a quarter, so that the
    /// next page is the last), else what they cost before (plus an eighth), else the guess.
    fn next_page_size(&self, max_bytes: usize, prior: Prior) -> u32 {
        let left = max_bytes
            .saturating_sub(self.bytes + ENVELOPE_RESERVE)
            .max(1);
        let fit = |avg: usize| left.div_ceil(avg.max(1));
        let rows = match (self.bytes.checked_div(self.rows.len()), prior) {
            (Some(avg), _) => fit(avg) + fit(avg) / 4,
            (None, Prior::Learned(avg)) => fit(avg) + fit(avg) / 8,
            (None, Prior::Guess(guess)) => fit(guess),
        };
        u32::try_from(rows).unwrap_or(MAX_LIMIT)
    }

    /// One page read with `self.token` that held `objects` objects; `rows` are those after
    /// the skip, anchored where they came from.
    fn add_page(
        &mut self,
        meta: PageMeta,
        objects: usize,
        columns: Option<Vec<String>>,
        rows: Vec<Value>,
    ) {
        self.anchors.push(Anchor {
            at: self.rows.len(),
            upstream: self.token.clone(),
            skip: self.skip,
        });
        for row in rows {
            self.bytes += serialized_len(&row) + usize::from(!self.rows.is_empty());
            self.rows.push(row);
        }
        if self.columns.is_none() {
            self.columns = columns;
        }
        self.pages += 1;
        self.next(meta, objects);
    }

    /// A page read only for the token after it: all its objects were delivered before.
    fn skip_page(&mut self, list: &Value) {
        self.next(PageMeta::of(list), items(list).len());
    }

    /// Past a page of `objects` objects: a skip longer than it goes on into the next page.
    fn next(&mut self, meta: PageMeta, objects: usize) {
        self.skip -= self.skip.min(objects);
        self.objects += objects;
        self.token = meta.token;
        self.remaining = meta.remaining;
    }
}

/// A page as the API server sent it: whole objects, or text to read for rows.
enum Fetched {
    Whole(Value),
    Text(String),
}

/// Where the page after one starts, and how many items the API server says are left.
struct PageMeta {
    token: Option<String>,
    remaining: Option<i64>,
}

impl PageMeta {
    fn of(list: &Value) -> PageMeta {
        PageMeta {
            token: list
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from),
            remaining: list
                .pointer("/metadata/remainingItemCount")
                .and_then(Value::as_i64),
        }
    }
}

/// List items carry no `apiVersion`/`kind`; put them back so each object stands alone.
fn with_type(obj: &Value, info: &crate::adapters::kube::KindInfo) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("apiVersion".into(), Value::String(info.api_version()));
    out.insert("kind".into(), Value::String(info.kind.clone()));
    if let Value::Object(m) = obj {
        for (k, v) in m {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}
