//! Incident follow-through: the domain's incident facts (`IncidentCreated`,
//! `IncidentAcknowledged`, `IncidentResolved`, `IncidentClosed` on `sre.domain.facts.v1`)
//! become tickets and pages. [`FollowThrough::apply`] takes one fact and records every side
//! effect in the store's `incident_links` row before the next, so a redelivered or replayed
//! fact changes nothing and a crash resumes where it stopped; [`consumer`] feeds it from
//! JetStream or a JSON Lines file and acks only after `apply` returned. One incident's facts
//! are applied one at a time across replicas: a lock in the process, and a claim in the store
//! (a lease row, renewed while the side effects run) between processes.
//!
//! Uses the ticket and pager adapters and the store; must not touch the dispatch core, tools
//! or transports. toolgate never emits facts: it only reads them.

pub mod config;
pub mod consumer;
pub mod escalation;
pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::adapters::pager::{PageError, PageRequest, Paging};
use crate::adapters::ticket::{NewTicket, TicketError, Ticketing};
use crate::store::{IncidentLink, Store};
use escalation::{Decision, Escalation};

/// How a note says a ticket was created from a later fact.
const BEFORE_CREATED: &str = "arrived before IncidentCreated";

/// The envelope version this consumer reads.
pub const FACT_VERSION: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactKind {
    Created,
    Acknowledged,
    Resolved,
    Closed,
}

impl FactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FactKind::Created => "IncidentCreated",
            FactKind::Acknowledged => "IncidentAcknowledged",
            FactKind::Resolved => "IncidentResolved",
            FactKind::Closed => "IncidentClosed",
        }
    }
}

/// One incident fact, as read from its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub kind: FactKind,
    /// The stream sequence (JetStream) or line number (file): orders facts.
    pub seq: u64,
    pub incident_id: String,
    pub severity: String,
    pub title: String,
    pub description: String,
    /// Service or cluster the incident is about (the page's source).
    pub source: String,
    /// Per-incident provider overrides (`payload.ticket_provider`, `payload.page_provider`).
    pub ticket_provider: Option<String>,
    pub page_provider: Option<String>,
}

/// What an envelope turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Fact(Fact),
    /// A fact of another type (`AlertIngested` …): acknowledged, nothing done.
    Other(String),
    /// Unparseable or of an unknown version: dead-lettered with this reason.
    Poison(String),
}

/// Reads one envelope (`{type, version, id, occurred_at, source, correlation_id, payload}`).
pub fn parse(bytes: &[u8], seq: u64) -> Parsed {
    let doc: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Parsed::Poison(format!("not JSON: {e}")),
    };
    let Some(kind) = doc.get("type").and_then(Value::as_str) else {
        return Parsed::Poison("no `type`: not a fact envelope".into());
    };
    match doc.get("version").and_then(Value::as_u64) {
        Some(FACT_VERSION) => {}
        Some(v) => {
            return Parsed::Poison(format!(
                "{kind} version {v} is unknown; this consumer reads version {FACT_VERSION}"
            ));
        }
        None => return Parsed::Poison(format!("{kind}: no numeric `version`")),
    }
    let kind = match kind {
        "IncidentCreated" => FactKind::Created,
        "IncidentAcknowledged" => FactKind::Acknowledged,
        "IncidentResolved" => FactKind::Resolved,
        "IncidentClosed" => FactKind::Closed,
        other => return Parsed::Other(other.to_string()),
    };
    let payload = &doc["payload"];
    let text = |k: &str| payload.get(k).and_then(Value::as_str).map(str::to_string);
    let Some(incident_id) = text("incident_id").filter(|i| !i.trim().is_empty() && i.len() <= 200)
    else {
        return Parsed::Poison(format!(
            "{}: payload.incident_id is missing, empty or longer than 200 bytes",
            kind.as_str()
        ));
    };
    Parsed::Fact(Fact {
        kind,
        seq,
        severity: text("severity")
            .map(|s| s.to_ascii_lowercase())
            .unwrap_or_else(|| "unknown".into()),
        title: text("title")
            .or_else(|| text("summary"))
            .unwrap_or_else(|| format!("Incident {incident_id}")),
        description: text("description").unwrap_or_default(),
        source: text("service")
            .or_else(|| text("cluster"))
            .or_else(|| {
                doc.get("source")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "sre-domain".into()),
        ticket_provider: text("ticket_provider"),
        page_provider: text("page_provider"),
        incident_id,
    })
}

/// What applying a fact did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Seen before (redelivery, replay): nothing changed.
    Duplicate,
}

impl Applied {
    pub fn as_str(self) -> &'static str {
        match self {
            Applied::Applied => "applied",
            Applied::Duplicate => "duplicate",
        }
    }
}

/// Why a fact could not be applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Trying again later may work (a provider down): redeliver. Otherwise dead-letter.
    pub transient: bool,
    pub reason: String,
    /// The provider asked not to be called again before this long (a 429's `Retry-After`, a
    /// rate limit's reset): the redelivery waits at least this.
    pub retry_after: Option<std::time::Duration>,
}

impl Failure {
    /// A failure that trying again later may cure.
    pub fn transient(reason: impl Into<String>) -> Self {
        Failure {
            transient: true,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A failure that will not go away by itself.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Failure {
            transient: false,
            ..Failure::transient(reason)
        }
    }
}

impl From<TicketError> for Failure {
    fn from(e: TicketError) -> Self {
        Failure {
            transient: e.is_transient(),
            retry_after: e.retry_after(),
            reason: format!("ticket: {e}"),
        }
    }
}

impl From<PageError> for Failure {
    fn from(e: PageError) -> Self {
        Failure {
            transient: e.is_transient(),
            retry_after: e.retry_after(),
            reason: format!("page: {e}"),
        }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Failure::transient(format!("store: {e}"))
    }
}

/// The clock escalation and the deferred-page check read (tests set it).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// How long a replica's claim on an incident lasts unless renewed (it is renewed every third
/// of this while the side effects run; a replica that dies frees it when it runs out).
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);
/// How long a fact waits for another replica's claim on its incident before it is handed
/// back for redelivery.
pub const CLAIM_WAIT: Duration = Duration::from_secs(5);

/// Applies facts: tickets, pages, and the record of both.
pub struct FollowThrough {
    store: Store,
    ticketing: Option<Arc<Ticketing>>,
    paging: Option<Arc<Paging>>,
    escalation: Escalation,
    clock: Clock,
    /// One fact per incident at a time in this process.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// This process's name in `incident_claims` (one fact per incident across replicas).
    holder: String,
    lease: Duration,
}

/// A label for the incident that ticket systems accept (no spaces).
pub fn incident_label(id: &str) -> String {
    let clean: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("incident-{clean}")
}

impl FollowThrough {
    pub fn new(
        store: Store,
        ticketing: Option<Arc<Ticketing>>,
        paging: Option<Arc<Paging>>,
        escalation: Escalation,
    ) -> Self {
        Self {
            store,
            ticketing,
            paging,
            escalation,
            clock: Arc::new(Timestamp::now),
            locks: Mutex::new(HashMap::new()),
            holder: format!("toolgate-{}", uuid::Uuid::new_v4()),
            lease: CLAIM_LEASE,
        }
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs `work` while this process holds the store's claim on incident `id` (waiting up to
    /// [`CLAIM_WAIT`] for another replica to finish; then a transient failure, so the fact is
    /// delivered again). The claim is renewed while `work` runs and released after.
    async fn claimed<T>(
        &self,
        id: &str,
        work: impl std::future::Future<Output = Result<T, Failure>>,
    ) -> Result<T, Failure> {
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let waiting_since = tokio::time::Instant::now();
        while !self
            .store
            .claim_incident(id, &self.holder, lease_ms)
            .await?
        {
            if waiting_since.elapsed() >= CLAIM_WAIT {
                return Err(Failure::transient(format!(
                    "incident {id} is being handled by another replica; trying again later"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let renew = async {
            let mut tick = tokio::time::interval(self.lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                match self.store.claim_incident(id, &self.holder, lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(incident = %id, "the claim on the incident was lost while applying a fact")
                    }
                    Err(e) => {
                        tracing::warn!(incident = %id, error = %e, "renewing the claim on the incident failed")
                    }
                }
            }
        };
        let result = tokio::select! {
            result = work => result,
            () = renew => Err(Failure::transient("the claim renewal ended")),
        };
        if let Err(e) = self.store.release_incident(id, &self.holder).await {
            // It runs out by itself after the lease.
            tracing::warn!(incident = %id, error = %e, "releasing the claim on the incident failed");
        }
        result
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Applies `fact`; every side effect is recorded before the next one. Holds the incident
    /// in this process and, through the store, across replicas.
    pub async fn apply(&self, fact: &Fact) -> Result<Applied, Failure> {
        let lock = self.lock_for(&fact.incident_id);
        let _held = lock.lock().await;
        self.claimed(&fact.incident_id, self.apply_held(fact)).await
    }

    async fn apply_held(&self, fact: &Fact) -> Result<Applied, Failure> {
        let existing = self.store.get_incident_link(&fact.incident_id).await?;
        if let Some(link) = &existing
            && fact.seq != 0
            && (fact.seq as i64) <= link.last_seq
        {
            return Ok(Applied::Duplicate);
        }
        let mut link = existing.unwrap_or_else(|| IncidentLink {
            incident_id: fact.incident_id.clone(),
            severity: fact.severity.clone(),
            title: fact.title.clone(),
            state: "new".into(),
            ticket_state: "none".into(),
            page_state: "none".into(),
            ..IncidentLink::default()
        });
        let before = link.clone();
        match fact.kind {
            FactKind::Created => {
                if matches!(link.state.as_str(), "resolved" | "closed") {
                    // Out of order (the ticket came from a later fact): noted once. A replay
                    // of a Created already applied changes nothing.
                    if link.notes.contains(BEFORE_CREATED)
                        && !link.notes.contains("IncidentCreated arrived after")
                    {
                        let text = format!(
                            "IncidentCreated arrived after the incident was {}; nothing to do",
                            link.state
                        );
                        self.note(&mut link, &text).await?;
                    }
                } else {
                    self.ensure_ticket(&mut link, fact, None).await?;
                    self.ensure_page(&mut link, fact).await?;
                    if link.state == "new" {
                        link.state = "open".into();
                    }
                }
            }
            FactKind::Acknowledged => {
                self.ensure_ticket(&mut link, fact, Some("IncidentAcknowledged"))
                    .await?;
                if link.page_state == "triggered" {
                    self.pager(&link, fact)?
                        .acknowledge(&fact.incident_id)
                        .await?;
                    link.page_state = "acknowledged".into();
                    self.store.put_incident_link(&link).await?;
                } else if link.page_state == "deferred" {
                    link.page_state = "skipped".into();
                    link.page_deferred_until_ms = None;
                    self.note(
                        &mut link,
                        "acknowledged before business hours: the deferred page is not sent",
                    )
                    .await?;
                }
                if matches!(link.state.as_str(), "new" | "open") {
                    link.state = "acknowledged".into();
                }
            }
            FactKind::Resolved | FactKind::Closed => {
                let closing = fact.kind == FactKind::Closed;
                self.ensure_ticket(&mut link, fact, Some(fact.kind.as_str()))
                    .await?;
                let (wanted, transition) = match (&self.ticketing, closing) {
                    (Some(t), false) => ("resolved", t.resolve_transition.clone()),
                    (Some(t), true) => ("closed", t.close_transition.clone()),
                    (None, _) => ("none", String::new()),
                };
                if let (Some(t), Some(key)) = (&self.ticketing, link.ticket_key.clone())
                    && link.ticket_state != wanted
                    && link.ticket_state != "closed"
                {
                    let provider = t.provider(link.ticket_provider.as_deref())?;
                    provider.transition(&key, &transition).await?;
                    link.ticket_state = wanted.into();
                    self.store.put_incident_link(&link).await?;
                }
                match link.page_state.as_str() {
                    "triggered" | "acknowledged" => {
                        self.pager(&link, fact)?.resolve(&fact.incident_id).await?;
                        link.page_state = "resolved".into();
                        self.store.put_incident_link(&link).await?;
                    }
                    "deferred" => {
                        link.page_state = "skipped".into();
                        link.page_deferred_until_ms = None;
                        self.note(
                            &mut link,
                            "resolved before business hours: the deferred page is not sent",
                        )
                        .await?;
                    }
                    _ => {}
                }
                if link.state != "closed" || closing {
                    link.state = if closing { "closed" } else { "resolved" }.into();
                }
            }
        }
        // A replay (new sequence, same fact) only moves last_seq: not a change.
        let changed = link != before;
        link.last_seq = link.last_seq.max(fact.seq as i64);
        self.store.put_incident_link(&link).await?;
        Ok(if changed {
            Applied::Applied
        } else {
            Applied::Duplicate
        })
    }

    async fn note(&self, link: &mut IncidentLink, text: &str) -> Result<(), Failure> {
        if !link.notes.is_empty() {
            link.notes.push('\n');
        }
        link.notes.push_str(text);
        if let (Some(t), Some(key)) = (&self.ticketing, &link.ticket_key) {
            t.provider(link.ticket_provider.as_deref())?
                .comment(key, &format!("toolgate: {text}"))
                .await?;
        }
        self.store.put_incident_link(link).await?;
        Ok(())
    }

    /// The incident's ticket, created (or found by its label after a crash) when missing.
    /// `out_of_order`: the fact that found no ticket though one was expected.
    async fn ensure_ticket(
        &self,
        link: &mut IncidentLink,
        fact: &Fact,
        out_of_order: Option<&str>,
    ) -> Result<(), Failure> {
        let Some(ticketing) = &self.ticketing else {
            return Ok(());
        };
        if link.ticket_key.is_some() {
            return Ok(());
        }
        let provider = ticketing.provider(fact.ticket_provider.as_deref())?;
        let label = incident_label(&fact.incident_id);
        let ticket = match provider.find_labelled(&label).await? {
            Some(found) => found,
            None => {
                let mut description = format!(
                    "Incident {} ({} severity) from {}.",
                    fact.incident_id, fact.severity, fact.source
                );
                if !fact.description.is_empty() {
                    description.push_str("\n\n");
                    description.push_str(&fact.description);
                }
                if let Some(kind) = out_of_order {
                    description.push_str(&format!(
                        "\n\nOpened by toolgate from {kind}: the IncidentCreated fact had not arrived (out of order)."
                    ));
                } else {
                    description.push_str("\n\nOpened by toolgate from the IncidentCreated fact.");
                }
                provider
                    .create(&NewTicket {
                        summary: format!("[{}] {}", fact.severity, link.title),
                        description,
                        labels: vec![
                            "toolgate".into(),
                            label,
                            format!("severity-{}", fact.severity),
                        ],
                        severity: fact.severity.clone(),
                    })
                    .await?
            }
        };
        link.ticket_provider = Some(provider.name().to_string());
        link.ticket_key = Some(ticket.key);
        link.ticket_state = "open".into();
        if let Some(kind) = out_of_order {
            let text = format!("{kind} {BEFORE_CREATED}: ticket created from it");
            if !link.notes.is_empty() {
                link.notes.push('\n');
            }
            link.notes.push_str(&text);
        }
        self.store.put_incident_link(link).await?;
        Ok(())
    }

    fn pager(
        &self,
        link: &IncidentLink,
        fact: &Fact,
    ) -> Result<&Arc<dyn crate::adapters::pager::Pager>, Failure> {
        let paging = self
            .paging
            .as_ref()
            .ok_or_else(|| Failure::permanent("paging is no longer configured"))?;
        Ok(paging.provider(
            link.page_provider
                .as_deref()
                .or(fact.page_provider.as_deref()),
        )?)
    }

    async fn ensure_page(&self, link: &mut IncidentLink, fact: &Fact) -> Result<(), Failure> {
        let Some(paging) = &self.paging else {
            return Ok(());
        };
        if link.page_state != "none" {
            return Ok(());
        }
        let provider = paging.provider(fact.page_provider.as_deref())?;
        link.page_provider = Some(provider.name().to_string());
        match self.escalation.decide(&fact.severity, (self.clock)()) {
            Decision::Page => {
                provider.trigger(&page_request(link, fact)).await?;
                link.page_state = "triggered".into();
            }
            Decision::Defer(at) => {
                link.page_state = "deferred".into();
                link.page_deferred_until_ms = Some(at.as_millisecond());
                let text = format!(
                    "{} severity outside business hours: page deferred to {at}",
                    fact.severity
                );
                if !link.notes.is_empty() {
                    link.notes.push('\n');
                }
                link.notes.push_str(&text);
            }
            Decision::Never => link.page_state = "skipped".into(),
        }
        self.store.put_incident_link(link).await?;
        Ok(())
    }

    /// Sends the deferred pages that are due; returns how many were sent.
    pub async fn send_due_pages(&self) -> Result<usize, Failure> {
        let now = (self.clock)();
        let due = self.store.due_deferred_pages(now.as_millisecond()).await?;
        let mut sent = 0;
        for candidate in due {
            let lock = self.lock_for(&candidate.incident_id);
            let _held = lock.lock().await;
            if self
                .claimed(
                    &candidate.incident_id,
                    self.send_deferred(&candidate.incident_id),
                )
                .await?
            {
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// Sends the incident's deferred page if it is still deferred; true when it was sent.
    async fn send_deferred(&self, id: &str) -> Result<bool, Failure> {
        let Some(mut link) = self.store.get_incident_link(id).await? else {
            return Ok(false);
        };
        if link.page_state != "deferred" {
            return Ok(false);
        }
        let fact = Fact {
            kind: FactKind::Created,
            seq: 0,
            incident_id: link.incident_id.clone(),
            severity: link.severity.clone(),
            title: link.title.clone(),
            description: String::new(),
            source: "sre-domain".into(),
            ticket_provider: None,
            page_provider: None,
        };
        self.pager(&link, &fact)?
            .trigger(&page_request(&link, &fact))
            .await?;
        link.page_state = "triggered".into();
        link.page_deferred_until_ms = None;
        self.store.put_incident_link(&link).await?;
        Ok(true)
    }
}

fn page_request(link: &IncidentLink, fact: &Fact) -> PageRequest {
    PageRequest {
        incident_id: fact.incident_id.clone(),
        summary: format!("[{}] {}", fact.severity, link.title),
        severity: fact.severity.clone(),
        source: fact.source.clone(),
        details: json!({
            "incident_id": fact.incident_id,
            "ticket": link.ticket_key,
        }),
    }
}
