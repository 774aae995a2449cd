//! Pull request review: analysis jobs kept in the store and run in the background (head SHA →
//! cache by `owner/repo#n@sha` → diff → PR-QUEST grouping → risk → suggestions), a fallback
//! when PR-QUEST is down (own grouping, `degraded: true`, a durable retry with backoff,
//! administrators notified), review steps with notes and progress per reviewer, XP,
//! achievements, a leaderboard and a Markdown export. The `review.*` tools call [`Review`].
//!
//! Imports the store and the adapters (GitHub, PR-QUEST, memory); never the core, tools or
//! transports (the notify webhook reaches it as a callback set by the app).

pub mod config;
pub mod diff;
pub mod export;
pub mod grouping;
pub mod risk;
pub mod suggest;
pub mod url;
pub mod xp;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use self::config::ReviewConfig;
use self::grouping::Step;
use self::risk::{Assessment, Level};
use self::suggest::Suggestion;
use self::url::PrRef;
use crate::adapters::cognee::Memory;
use crate::adapters::github::{GitHub, GitHubError, PullRequest};
use crate::adapters::http::correlation;
use crate::adapters::prquest::{GroupMetadata, GroupRequest, PrQuest, PrQuestError, ReviewPlan};
use crate::store::{OutageNotice, ReviewAnalysisRow, Store, StoreError, now_ms};

/// How long a worker holds an analysis past its slowest upstream call before another may take
/// it (a worker renews the lease at every stage).
const LEASE_MARGIN: Duration = Duration::from_secs(60);

/// The pull request as analysed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PrInfo {
    pub owner: String,
    pub repo: String,
    pub number: u64,
    pub url: String,
    pub title: String,
    pub head_sha: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    pub additions: u64,
    pub deletions: u64,
    pub changed_files: u64,
}

/// What an analysis found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AnalysisResult {
    pub pr: PrInfo,
    /// `pr-quest` (its LLM's plan) or `toolgate` (grouping by directory and file type).
    pub grouping: String,
    /// PR-QUEST could not be used; the result is toolgate's own, and a retry may replace it.
    pub degraded: bool,
    pub summary: String,
    pub risk: Assessment,
    pub suggestions: Vec<Suggestion>,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub acceptance_checks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Bad arguments: the message says what is wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The analysis is not finished yet (or failed).
    #[error("{0}")]
    NotReady(String),
    #[error("{0}")]
    Upstream(String),
    #[error("the review store failed: {0}")]
    Store(String),
}

impl From<StoreError> for ReviewError {
    fn from(e: StoreError) -> Self {
        ReviewError::Store(e.to_string())
    }
}

/// An analysis as `review.get_analysis` shows it.
#[derive(Debug, Clone)]
pub struct Status {
    pub id: String,
    /// queued | running | complete | failed
    pub status: String,
    pub stage: String,
    pub progress: i64,
    pub pr: String,
    pub head_sha: Option<String>,
    /// Answered from an earlier analysis of the same head SHA.
    pub cached: bool,
    /// That analysis' id.
    pub source_id: Option<String>,
    pub degraded: bool,
    /// `waiting` while PR-QUEST is to be asked again, `done` once it answered.
    pub retry: Option<String>,
    pub retry_attempts: i64,
    pub error: Option<String>,
    pub result: Option<AnalysisResult>,
}

/// One step as `review.get_steps` shows it.
#[derive(Debug, Clone)]
pub struct StepView {
    pub step: Step,
    /// Completed by the caller.
    pub done: bool,
    /// (hunk id, hunk text).
    pub hunks: Vec<(String, String)>,
    /// Every reviewer's notes on it: `name: text`.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StepsView {
    pub pr: String,
    /// Steps the caller completed.
    pub completed: usize,
    pub steps: Vec<StepView>,
}

/// What `complete_step` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepOutcome {
    /// False when the step was already completed by this reviewer.
    pub newly: bool,
    pub completed: Vec<String>,
    pub total: usize,
    /// XP awarded now (the review is finished for this reviewer).
    pub xp: Option<i64>,
    /// Achievements awarded now.
    pub achievements: Vec<String>,
}

/// Told about PR-QUEST outages (the app wires the approvals webhook in).
pub type Notifier = Arc<dyn Fn(String) + Send + Sync>;

pub struct Review {
    config: ReviewConfig,
    store: Store,
    github: Arc<GitHub>,
    prquest: Option<Arc<PrQuest>>,
    memory: Arc<Memory>,
    /// This process' worker id (claims and leases).
    worker: String,
    /// The lease of a claimed analysis, in milliseconds: longer than any one upstream call.
    lease_ms: i64,
    notifier: OnceLock<Notifier>,
    wake: tokio::sync::Notify,
    /// The server's shutdown: an analysis cut off by it stays `running` in the store and is
    /// taken up again at the next start (or by a replica once its lease ends).
    shutdown: OnceLock<CancellationToken>,
}

enum Outcome {
    Linked(String),
    Done {
        result: Box<AnalysisResult>,
        diff: String,
        group_request: String,
        retry: bool,
        error: Option<String>,
    },
}

impl Review {
    pub fn new(
        config: ReviewConfig,
        store: Store,
        github: Arc<GitHub>,
        prquest: Option<Arc<PrQuest>>,
        memory: Arc<Memory>,
    ) -> Self {
        let slowest = config
            .prquest
            .as_ref()
            .map(|p| p.endpoint.settings.timeout)
            .unwrap_or_default()
            .max(config.github.endpoint.settings.timeout);
        Self {
            lease_ms: millis(slowest * 2 + LEASE_MARGIN),
            config,
            store,
            github,
            prquest,
            memory,
            worker: uuid::Uuid::new_v4().to_string(),
            notifier: OnceLock::new(),
            wake: tokio::sync::Notify::new(),
            shutdown: OnceLock::new(),
        }
    }

    /// Where administrators hear about PR-QUEST outages (set once, at start).
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    pub fn web_host(&self) -> &str {
        self.github.web_host()
    }

    /// Validate the URL, store a queued analysis and start it; answers its id at once.
    pub async fn analyze(
        self: &Arc<Self>,
        pr_url: &str,
        skip_llm: bool,
        requested_by: &str,
    ) -> Result<(String, PrRef), ReviewError> {
        let pr = url::parse(pr_url, self.github.web_host()).map_err(ReviewError::Invalid)?;
        let id = uuid::Uuid::new_v4().to_string();
        let options = serde_json::json!({ "skip_llm": skip_llm }).to_string();
        self.store
            .insert_review_analysis(
                &id,
                &pr.slug(),
                &pr.url(self.github.web_host()),
                &options,
                requested_by,
            )
            .await?;
        let me = self.clone();
        let job = id.clone();
        tokio::spawn(async move { me.run_one(&job).await });
        Ok((id, pr))
    }

    async fn row(&self, id: &str) -> Result<ReviewAnalysisRow, ReviewError> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(ReviewError::Invalid(format!(
                "id `{id}` is not an analysis id; use the id review.analyze_pr answered (a UUID)"
            )));
        }
        self.store.get_review_analysis(id).await?.ok_or_else(|| {
            ReviewError::NotFound(format!(
                "no analysis `{id}`; start one with review.analyze_pr"
            ))
        })
    }

    /// The analysis that holds the result: the row itself, or the one it links to.
    async fn source(&self, id: &str) -> Result<ReviewAnalysisRow, ReviewError> {
        let row = self.row(id).await?;
        match &row.source_id {
            Some(source) if row.state == "linked" => self.row(source).await,
            _ => Ok(row),
        }
    }

    pub async fn status(&self, id: &str) -> Result<Status, ReviewError> {
        let row = self.row(id).await?;
        let linked = row.state == "linked";
        let source = if linked {
            self.source(id).await?
        } else {
            row.clone()
        };
        let result =
            match &source.result {
                Some(text) => Some(serde_json::from_str::<AnalysisResult>(text).map_err(|e| {
                    ReviewError::Store(format!("analysis {} result: {e}", source.id))
                })?),
                None => None,
            };
        let (stage, progress) = if linked && source.state != "complete" {
            (
                format!("waiting for analysis {} of the same head", source.id),
                source.progress,
            )
        } else if linked {
            ("cached".to_string(), 100)
        } else {
            (row.stage.clone(), row.progress)
        };
        Ok(Status {
            id: row.id.clone(),
            status: if linked {
                source.state.clone()
            } else {
                row.state.clone()
            },
            stage,
            progress,
            pr: row.pr_key.clone(),
            head_sha: row.head_sha.clone(),
            cached: linked,
            source_id: row.source_id.clone().filter(|_| linked),
            degraded: source.degraded,
            retry: source.retry_state.clone(),
            retry_attempts: source.retry_attempts,
            error: source.last_error.clone(),
            result,
        })
    }

    /// A finished analysis' result (following a cache link), with the row holding it.
    pub async fn finished(
        &self,
        id: &str,
    ) -> Result<(ReviewAnalysisRow, AnalysisResult), ReviewError> {
        let source = self.source(id).await?;
        match (source.state.as_str(), &source.result) {
            ("complete", Some(text)) => {
                let result = serde_json::from_str(text).map_err(|e| {
                    ReviewError::Store(format!("analysis {} result: {e}", source.id))
                })?;
                Ok((source, result))
            }
            ("failed", _) => Err(ReviewError::NotReady(format!(
                "analysis {id} failed: {}",
                source.last_error.as_deref().unwrap_or("no reason kept")
            ))),
            (state, _) => Err(ReviewError::NotReady(format!(
                "analysis {id} is {state} ({}%); poll review.get_analysis until it is complete",
                source.progress
            ))),
        }
    }

    /// The diff of a finished analysis, parsed.
    pub async fn files(&self, row: &ReviewAnalysisRow) -> Vec<diff::DiffFile> {
        diff::parse(row.diff.as_deref().unwrap_or_default())
    }

    /// Reviewers by XP, at most `limit`.
    pub async fn leaderboard(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::store::LeaderRow>, ReviewError> {
        Ok(self.store.review_leaderboard(i64::from(limit)).await?)
    }

    /// Steps of a finished analysis with their hunks' text, and what `sub` did on each.
    pub async fn steps(&self, id: &str, sub: &str) -> Result<StepsView, ReviewError> {
        let (row, result) = self.finished(id).await?;
        let files = diff::parse(row.diff.as_deref().unwrap_or_default());
        let mut hunks = std::collections::BTreeMap::new();
        for f in &files {
            for (i, h) in f.hunks.iter().enumerate() {
                hunks.insert(f.hunk_id(i), h.text());
            }
        }
        let reviewers = self.store.reviewers(&row.id).await?;
        let done = reviewers
            .into_iter()
            .find(|r| r.reviewer_sub == sub)
            .map(|r| r.steps)
            .unwrap_or_default();
        let notes = self.store.review_notes(&row.id).await?;
        let steps = result
            .steps
            .iter()
            .map(|s| StepView {
                done: done.contains(&s.step_id),
                hunks: s
                    .hunks
                    .iter()
                    .map(|h| (h.clone(), hunks.get(h).cloned().unwrap_or_default()))
                    .collect(),
                notes: notes
                    .iter()
                    .filter(|n| n.step_id == s.step_id)
                    .map(|n| format!("{}: {}", n.reviewer_name, n.text))
                    .collect(),
                step: s.clone(),
            })
            .collect();
        Ok(StepsView {
            pr: row.pr_key,
            completed: done.len(),
            steps,
        })
    }

    /// Adds a note of `sub` to a step of a finished analysis.
    pub async fn add_note(
        &self,
        id: &str,
        step_id: &str,
        text: &str,
        sub: &str,
        name: &str,
    ) -> Result<usize, ReviewError> {
        let (row, result) = self.finished(id).await?;
        check_step(&result, step_id)?;
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 4000 {
            return Err(ReviewError::Invalid(
                "text: write 1 to 4000 characters".into(),
            ));
        }
        self.store
            .add_review_note(&row.id, sub, name, step_id, text)
            .await?;
        Ok(self
            .store
            .review_notes(&row.id)
            .await?
            .iter()
            .filter(|n| n.reviewer_sub == sub)
            .count())
    }

    /// Marks a step done for `sub`; once every step is, awards XP and achievements (once).
    pub async fn complete_step(
        &self,
        id: &str,
        step_id: &str,
        sub: &str,
        name: &str,
    ) -> Result<StepOutcome, ReviewError> {
        let (row, result) = self.finished(id).await?;
        check_step(&result, step_id)?;
        let newly = self
            .store
            .complete_review_step(&row.id, sub, name, step_id)
            .await?;
        let me = self
            .store
            .reviewers(&row.id)
            .await?
            .into_iter()
            .find(|r| r.reviewer_sub == sub)
            .ok_or_else(|| ReviewError::Store("the reviewer row vanished".into()))?;
        let total = result.steps.len();
        let mut outcome = StepOutcome {
            newly,
            completed: me.steps.clone(),
            total,
            xp: None,
            achievements: Vec::new(),
        };
        let all_done = result.steps.iter().all(|s| me.steps.contains(&s.step_id));
        if !all_done || me.completed_at_ms.is_some() {
            return Ok(outcome);
        }
        let notes = self.store.review_notes(&row.id).await?;
        let mine: Vec<_> = notes.iter().filter(|n| n.reviewer_sub == sub).collect();
        let lines = result.pr.additions + result.pr.deletions;
        let effort = xp::Effort {
            lines_changed: lines,
            steps_completed: total as u64,
            notes: mine.len() as u64,
            minutes: u64::try_from((now_ms() - me.started_at_ms).max(0) / 60_000).unwrap_or(0),
        };
        let points = xp::xp(effort);
        if self.store.finish_review(&row.id, sub, points).await? {
            outcome.xp = Some(points);
            let finished = self.store.finished_reviews(sub).await?;
            let every_step = result
                .steps
                .iter()
                .all(|s| mine.iter().any(|n| n.step_id == s.step_id));
            for a in xp::achievements(finished, result.risk.level, every_step, lines) {
                if self.store.award_achievement(sub, a, &row.id).await? {
                    outcome.achievements.push(a.to_string());
                }
            }
        }
        Ok(outcome)
    }

    /// The Markdown export; also added to Cognee as a review DataPoint when memory is
    /// configured (`Some(outcome)`: `added`, `queued` or the reason it was not).
    pub async fn export(&self, id: &str) -> Result<(String, Option<String>), ReviewError> {
        let (row, result) = self.finished(id).await?;
        let reviewers = self.store.reviewers(&row.id).await?;
        let notes = self.store.review_notes(&row.id).await?;
        let text = export::markdown(&row.id, &result, &reviewers, &notes, now_ms());
        let memory = if self.memory.configured() {
            Some(self.remember(&row, &result, &text).await)
        } else {
            None
        };
        Ok((text, memory))
    }

    async fn remember(
        &self,
        row: &ReviewAnalysisRow,
        result: &AnalysisResult,
        text: &str,
    ) -> String {
        use crate::adapters::cognee::AddOutcome;
        use crate::adapters::cognee::datapoint::{DataPointInput, validate};
        let verdict = if result.risk.level >= Level::Moderate {
            "changes_requested"
        } else {
            "approved"
        };
        let input = DataPointInput {
            kind: "review".into(),
            key: row.cache_key.clone().unwrap_or_else(|| row.id.clone()),
            title: format!("Review of {} ({})", row.pr_key, result.pr.title),
            summary: Some(text.chars().take(4000).collect()),
            tags: vec![
                "pr-review".into(),
                result.risk.level.as_str().to_lowercase(),
            ],
            subject: Some(row.pr_key.clone()),
            verdict: Some(verdict.into()),
            ..DataPointInput::default()
        };
        let points = match validate(std::slice::from_ref(&input)) {
            Ok(p) => p,
            Err(problems) => return format!("not added: {}", problems.join("; ")),
        };
        match self.memory.add(&points).await {
            Ok(AddOutcome::Added(_)) => "added".into(),
            Ok(AddOutcome::Queued { .. }) => "queued".into(),
            Ok(AddOutcome::Indexed) => "indexed".into(),
            Err(e) => format!("not added: {e}"),
        }
    }

    /// Post `body` as a comment on the analysed pull request.
    pub async fn post_comment(
        &self,
        id: &str,
        body: &str,
    ) -> Result<crate::adapters::github::Comment, ReviewError> {
        let (_, result) = self.finished(id).await?;
        self.github
            .comment(&result.pr.owner, &result.pr.repo, result.pr.number, body)
            .await
            .map_err(|e| ReviewError::Upstream(e.to_string()))
    }

    /// The worker: queued analyses (and those of a dead worker) and due PR-QUEST retries,
    /// every `poll_interval`, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let _ = self.shutdown.set(shutdown.clone());
        if self.store.backend_name() == "sqlite" {
            // One process owns a SQLite file: what its last run left running starts again.
            match self.store.requeue_running_reviews().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    analyses = n,
                    "review: resuming analyses cut off by the last stop"
                ),
                Err(e) => tracing::warn!(error = %e, "review: cannot requeue analyses"),
            }
        }
        loop {
            match self.store.due_review_analyses(20).await {
                Ok(ids) => {
                    for id in ids {
                        let me = self.clone();
                        tokio::spawn(async move { me.run_one(&id).await });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "review: cannot list queued analyses"),
            }
            self.retry_due().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    async fn run_one(self: Arc<Self>, id: &str) {
        match self
            .store
            .claim_review_analysis(id, &self.worker, self.lease_ms)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(analysis = id, error = %e, "review: cannot claim the analysis");
                return;
            }
        }
        // One correlation id for every upstream request of this analysis.
        let corr = uuid::Uuid::new_v4().to_string();
        let work = correlation::scope(corr.clone(), self.analyse(id, &corr));
        let outcome = match self.shutdown.get() {
            Some(stop) => tokio::select! {
                _ = stop.cancelled() => {
                    tracing::info!(analysis = id, "review: stopping; the analysis resumes at the next start");
                    return;
                }
                outcome = work => outcome,
            },
            None => work.await,
        };
        let stored = match outcome {
            Ok(Outcome::Linked(owner)) => self
                .store
                .link_review_analysis(id, &owner)
                .await
                .map(|_| ()),
            Ok(Outcome::Done {
                result,
                diff,
                group_request,
                retry,
                error,
            }) => {
                let text = serde_json::to_string(&result).unwrap_or_default();
                let retry_at = retry.then(|| now_ms() + millis(self.config.retry_backoff));
                self.store
                    .complete_review_analysis(
                        id,
                        &self.worker,
                        &text,
                        &diff,
                        &group_request,
                        result.degraded,
                        retry_at,
                        error.as_deref(),
                    )
                    .await
                    .map(|_| ())
            }
            Err(message) => {
                tracing::info!(analysis = id, request_id = %corr, error = %message, "review: analysis failed");
                self.store.fail_review_analysis(id, &message).await
            }
        };
        if let Err(e) = stored {
            tracing::warn!(analysis = id, error = %e, "review: cannot store the analysis outcome");
        }
    }

    async fn stage(&self, id: &str, stage: &str, progress: i64) -> Result<(), String> {
        match self
            .store
            .review_progress(id, &self.worker, stage, progress, self.lease_ms)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err("another worker took the analysis over".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn analyse(&self, id: &str, corr: &str) -> Result<Outcome, String> {
        let row = self
            .store
            .get_review_analysis(id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the analysis vanished")?;
        let pr = url::parse(&row.pr_url, self.github.web_host())?;
        let skip_llm = serde_json::from_str::<serde_json::Value>(&row.options)
            .ok()
            .and_then(|o| o.get("skip_llm").and_then(serde_json::Value::as_bool))
            .unwrap_or(false);
        self.stage(id, "head", 10).await?;
        let pull = self
            .github
            .pull(&pr.owner, &pr.repo, pr.number)
            .await
            .map_err(github_error)?;
        let key = pr.cache_key(&pull.head_sha);
        let owner = self
            .store
            .claim_review_head(id, &pull.head_sha, &key)
            .await
            .map_err(|e| e.to_string())?;
        if owner != id {
            return Ok(Outcome::Linked(owner));
        }
        self.stage(id, "diff", 30).await?;
        let diff = self
            .github
            .diff(&pr.owner, &pr.repo, pr.number)
            .await
            .map_err(github_error)?;
        if diff.len() > self.config.max_diff_bytes {
            return Err(format!(
                "the diff of {} is {}, over the {} review.max_diff_bytes: it was not analysed. Split the pull request, or raise review.max_diff_bytes",
                pr.slug(),
                mib(diff.len()),
                mib(self.config.max_diff_bytes)
            ));
        }
        let files = diff::parse(&diff);
        let request = GroupRequest {
            diff_index: grouping::diff_index(&files),
            metadata: GroupMetadata {
                pr_title: Some(pull.title.clone()).filter(|t| !t.trim().is_empty()),
                pr_description: pull.body.clone().filter(|b| !b.trim().is_empty()),
            },
        };
        self.stage(id, "grouping", 50).await?;
        let (plan, retry, error) = match (
            &self.prquest,
            skip_llm,
            request.diff_index.files.is_empty(),
        ) {
            (_, true, _) | (_, _, true) => (None, false, None),
            (None, _, _) => (
                None,
                false,
                Some("PR-QUEST is not configured (review.prquest.url)".to_string()),
            ),
            (Some(pq), false, false) => match pq.group(&request).await {
                Ok(plan) => {
                    self.prquest_answered().await;
                    (Some(plan), false, None)
                }
                Err(e) if e.is_outage() => {
                    self.outage(id, &pr, corr, &e).await;
                    (None, true, Some(e.to_string()))
                }
                Err(e) => {
                    // Refused or not understood: asking again would not help, so no retry.
                    tracing::warn!(
                        analysis = id,
                        request_id = %corr,
                        pr = %pr.slug(),
                        error = %e,
                        "review: PR-QUEST refused the grouping; analysed with toolgate's own grouping"
                    );
                    (None, false, Some(e.to_string()))
                }
            },
        };
        self.stage(id, "risk", 80).await?;
        let degraded = error.is_some();
        let result = build_result(&pr, &pull, &files, plan.as_ref(), degraded, &self.config);
        Ok(Outcome::Done {
            result: Box::new(result),
            diff,
            group_request: serde_json::to_string(&request).unwrap_or_default(),
            retry,
            error,
        })
    }

    /// PR-QUEST failed: log with the correlation id, count, and tell administrators — once
    /// per outage, and again only after `notice_interval` while it lasts (the decision is in
    /// the store, so it holds across restarts and replicas); notices held back are counted in
    /// a metric and in the next notice.
    async fn outage(&self, id: &str, pr: &PrRef, corr: &str, e: &PrQuestError) {
        tracing::warn!(
            analysis = id,
            request_id = %corr,
            pr = %pr.slug(),
            error = %e,
            "review: PR-QUEST unavailable; analysed with toolgate's own grouping, queued for retry"
        );
        crate::metrics::review_fallback();
        let Some(notify) = self.notifier.get() else {
            return;
        };
        let now = now_ms();
        let decision = self
            .store
            .review_outage_notice(PRQUEST, now, millis(self.config.notice_interval))
            .await
            .unwrap_or_else(|err| {
                // Better one notice too many than an outage nobody hears of.
                tracing::warn!(error = %err, "review: cannot read the notice interval; notifying");
                OutageNotice::Send {
                    suppressed: 0,
                    since_ms: now,
                }
            });
        match decision {
            OutageNotice::Suppressed => crate::metrics::review_fallback_notice("suppressed"),
            OutageNotice::Send {
                suppressed,
                since_ms,
            } => {
                crate::metrics::review_fallback_notice("sent");
                notify(notice_text(
                    id,
                    &pr.slug(),
                    corr,
                    &e.to_string(),
                    since_ms,
                    suppressed,
                    self.config.notice_interval,
                ));
            }
        }
    }

    /// PR-QUEST answered: an outage under way is over (the next failure is told at once).
    async fn prquest_answered(&self) {
        match self.store.review_upstream_recovered(PRQUEST).await {
            Ok(true) => tracing::info!("review: PR-QUEST answers again; its outage is over"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "review: cannot record PR-QUEST's recovery"),
        }
    }

    /// Ask PR-QUEST again for degraded analyses whose retry is due.
    async fn retry_due(&self) {
        let Some(pq) = &self.prquest else { return };
        let due = match self.store.due_review_retries(10).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "review: cannot list retries");
                return;
            }
        };
        for row in due {
            let Some(seen) = row.next_retry_at_ms else {
                continue;
            };
            match self
                .store
                .claim_review_retry(&row.id, seen, now_ms() + self.lease_ms)
                .await
            {
                Ok(true) => {}
                _ => continue,
            }
            let corr = uuid::Uuid::new_v4().to_string();
            let answer = correlation::scope(corr.clone(), self.retry_one(pq, &row)).await;
            let stored = match answer {
                Ok(result) => {
                    tracing::info!(analysis = %row.id, request_id = %corr, "review: PR-QUEST answered again; the analysis is complete");
                    crate::metrics::review_retry("completed");
                    let text = serde_json::to_string(&result).unwrap_or_default();
                    self.store.finish_review_retry(&row.id, &text).await
                }
                Err(message) => {
                    crate::metrics::review_retry("failed");
                    let attempts = u32::try_from(row.retry_attempts + 1).unwrap_or(u32::MAX);
                    let wait = backoff(
                        self.config.retry_backoff,
                        self.config.retry_max_backoff,
                        attempts,
                    );
                    tracing::info!(analysis = %row.id, request_id = %corr, error = %message, attempts, "review: PR-QUEST retry failed");
                    self.store
                        .record_review_retry_failure(&row.id, now_ms() + millis(wait), &message)
                        .await
                }
            };
            if let Err(e) = stored {
                tracing::warn!(analysis = %row.id, error = %e, "review: cannot store the retry outcome");
            }
        }
    }

    async fn retry_one(
        &self,
        pq: &PrQuest,
        row: &ReviewAnalysisRow,
    ) -> Result<AnalysisResult, String> {
        let request: GroupRequest =
            serde_json::from_str(row.group_request.as_deref().unwrap_or_default())
                .map_err(|e| format!("stored grouping request: {e}"))?;
        let old: AnalysisResult = serde_json::from_str(row.result.as_deref().unwrap_or_default())
            .map_err(|e| format!("stored result: {e}"))?;
        let plan = pq.group(&request).await.map_err(|e| e.to_string())?;
        self.prquest_answered().await;
        let files = diff::parse(row.diff.as_deref().unwrap_or_default());
        let pr = PrRef {
            owner: old.pr.owner.clone(),
            repo: old.pr.repo.clone(),
            number: old.pr.number,
        };
        let pull = PullRequest {
            number: old.pr.number,
            title: old.pr.title.clone(),
            body: None,
            state: String::new(),
            head_sha: old.pr.head_sha.clone(),
            html_url: old.pr.url.clone(),
            author: old.pr.author.clone(),
            additions: old.pr.additions,
            deletions: old.pr.deletions,
            changed_files: old.pr.changed_files,
        };
        Ok(build_result(
            &pr,
            &pull,
            &files,
            Some(&plan),
            false,
            &self.config,
        ))
    }

    /// Start the worker now rather than at its next tick (tests, new retries).
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

fn check_step(result: &AnalysisResult, step_id: &str) -> Result<(), ReviewError> {
    if result.steps.iter().any(|s| s.step_id == step_id) {
        return Ok(());
    }
    let ids: Vec<&str> = result.steps.iter().map(|s| s.step_id.as_str()).collect();
    Err(ReviewError::Invalid(format!(
        "step `{step_id}` is not a step of this analysis; steps: {}",
        ids.join(", ")
    )))
}

/// The upstream name under which PR-QUEST's outages are kept (`review_notices`).
const PRQUEST: &str = "pr-quest";

/// The administrators' notice of a fallback analysis.
fn notice_text(
    id: &str,
    pr: &str,
    corr: &str,
    error: &str,
    since_ms: i64,
    suppressed: i64,
    interval: Duration,
) -> String {
    let since = jiff::Timestamp::from_millisecond(since_ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| since_ms.to_string());
    let mut text = format!(
        "toolgate review: PR-QUEST is unavailable ({error}), failing since {since}. Analysis {id} of {pr} ran in fallback mode (no LLM grouping) and is queued for retry. Correlation id {corr}."
    );
    if suppressed > 0 {
        text.push_str(&format!(
            " {suppressed} earlier fallback analyses were not announced (one notice per outage, again after review.notice_interval {}).",
            jiff::SignedDuration::try_from(interval)
                .map(|d| format!("{d:#}"))
                .unwrap_or_else(|_| format!("{interval:?}"))
        ));
    }
    text
}

fn github_error(e: GitHubError) -> String {
    e.to_string()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `base · 2^(attempts-1)`, at most `max`.
pub fn backoff(base: Duration, max: Duration, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(max)
}

/// The result of one analysis: risk from toolgate's rules and PR-QUEST's risk calls, steps from
/// PR-QUEST's plan or toolgate's grouping, suggestions per rule.
pub fn build_result(
    pr: &PrRef,
    pull: &PullRequest,
    files: &[diff::DiffFile],
    plan: Option<&ReviewPlan>,
    degraded: bool,
    config: &ReviewConfig,
) -> AnalysisResult {
    let mut findings = risk::scan(files);
    if let Some(plan) = plan {
        findings.extend(risk::from_risk_calls(&plan.end_state.risk_calls));
    }
    let assessment = risk::assess(findings);
    let suggestions = suggest::suggest(&assessment.findings, &config.doc_links);
    let (added, removed) = diff::line_counts(files);
    let (steps, summary, checks, grouping) = match plan {
        Some(plan) => (
            grouping::from_plan(plan),
            plan.pr_overview.summary.clone(),
            plan.end_state.acceptance_checks.clone(),
            "pr-quest",
        ),
        None => (
            grouping::fallback(files, &assessment.findings),
            format!(
                "{} file(s) changed, +{added} −{removed}; grouped by directory and file type{}",
                files.len(),
                if degraded {
                    " because PR-QUEST was unavailable"
                } else {
                    ""
                }
            ),
            Vec::new(),
            "toolgate",
        ),
    };
    AnalysisResult {
        pr: PrInfo {
            owner: pr.owner.clone(),
            repo: pr.repo.clone(),
            number: pr.number,
            url: if pull.html_url.is_empty() {
                pr.url("github.com")
            } else {
                pull.html_url.clone()
            },
            title: pull.title.clone(),
            head_sha: pull.head_sha.clone(),
            author: pull.author.clone(),
            additions: if pull.additions > 0 {
                pull.additions
            } else {
                added
            },
            deletions: if pull.deletions > 0 {
                pull.deletions
            } else {
                removed
            },
            changed_files: if pull.changed_files > 0 {
                pull.changed_files
            } else {
                files.len() as u64
            },
        },
        grouping: grouping.into(),
        degraded,
        summary,
        risk: assessment,
        suggestions,
        steps,
        acceptance_checks: checks,
    }
}
