//! The ArgoCD poller: every `argocd.poll_interval` it reads every application of each configured
//! environment (label selector `<environment_label>=<environment>`; without environments, every
//! application grouped by that label) and writes, in one outbox transaction,
//! `RecordHealthCheckRequested` for each application whose health or sync status differs from
//! the last state stored (`argocd_app_state`, so a restart does not report unchanged
//! applications), then `RecordFleetStateRequested` per environment with the counts. A cycle
//! that cannot read every environment emits nothing and the next one waits longer (doubling,
//! at most 32 poll intervals or 5 minutes); the breaker keeps a down ArgoCD from being hammered.
//!
//! Must not touch the dispatch core or tools: it reads ArgoCD and writes the outbox.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{Envelope, IntentType, Intents, Signal};
use crate::adapters::argocd::{Application, ArgoCd, ListQuery};
use crate::store::AppStateRow;

pub const SOURCE: &str = "toolgate/argocd";
/// Dedup records of health changes and fleet cycles are kept a week.
const DEDUP_WINDOW_MS: i64 = 7 * 86_400_000;
/// The environment of applications without the environment label (no environments configured).
pub const UNLABELLED: &str = "unlabelled";
/// The longest wait between failing cycles.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Starts the poller unless `argocd.poll: false`.
pub fn spawn(argocd: Arc<ArgoCd>, intents: &Intents, shutdown: CancellationToken) {
    if !argocd.config().poll {
        return;
    }
    tokio::spawn(run(argocd, intents.clone(), shutdown));
}

/// Polls until `shutdown`.
pub async fn run(argocd: Arc<ArgoCd>, intents: Intents, shutdown: CancellationToken) {
    let interval = argocd.config().poll_interval;
    loop {
        let at = crate::store::now_ms();
        match cycle(&argocd, &intents, at).await {
            Ok(apps) => {
                argocd.poll_status().record_ok(at, apps);
                record_metrics("ok", at, true);
            }
            Err(e) => {
                argocd.poll_status().record_failure(at, &e);
                record_metrics("failed", at, false);
                tracing::warn!(error = %e, failures = argocd.poll_status().failures_in_a_row(), "ArgoCD poll failed; backing off");
            }
        }
        let wait = backoff(interval, argocd.poll_status().failures_in_a_row());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The wait after `failures` failed cycles in a row: the interval, doubled per failure, at most
/// 32 intervals or [`MAX_BACKOFF`] (never less than the interval).
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let cap = (interval * 32).min(MAX_BACKOFF).max(interval);
    interval.saturating_mul(1 << failures.min(10)).min(cap)
}

/// One cycle at `at_ms`: read, compare, emit, remember. Returns how many applications it saw.
pub async fn cycle(argocd: &ArgoCd, intents: &Intents, at_ms: i64) -> Result<usize, String> {
    let config = argocd.config();
    let label = &config.environment_label;
    let mut groups: BTreeMap<String, Vec<Application>> = BTreeMap::new();
    if config.environments.is_empty() {
        for app in argocd
            .list(&ListQuery::default())
            .await
            .map_err(|e| e.to_string())?
        {
            let env = match app.label(label) {
                "" => UNLABELLED.to_string(),
                e => e.to_string(),
            };
            groups.entry(env).or_default().push(app);
        }
    } else {
        for env in &config.environments {
            let q = ListQuery {
                projects: Vec::new(),
                selector: Some(format!("{label}={env}")),
            };
            let apps = argocd
                .list(&q)
                .await
                .map_err(|e| format!("environment {env}: {e}"))?;
            groups.insert(env.clone(), apps);
        }
    }
    let store = intents.store();
    let previous: HashMap<String, AppStateRow> = store
        .argocd_app_states()
        .await
        .map_err(|e| format!("reading the last application states: {e}"))?
        .into_iter()
        .map(|r| (r.app.clone(), r))
        .collect();
    let at = jiff::Timestamp::from_millisecond(at_ms).unwrap_or_else(|_| jiff::Timestamp::now());
    let bucket = at_ms
        / i64::try_from(config.poll_interval.as_millis())
            .unwrap_or(i64::MAX)
            .max(1);
    let mut signals = Vec::new();
    let mut changed = Vec::new();
    let mut seen = 0;
    let mut fleet = Vec::new();
    for (env, apps) in &mut groups {
        apps.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        seen += apps.len();
        for app in apps.iter() {
            let key = format!("{}/{}", app.namespace, app.name);
            let (health, sync) = (state_of(&app.health), state_of(&app.sync));
            let before = previous.get(&key);
            if before.is_some_and(|b| b.health == health && b.sync == sync) {
                continue;
            }
            let seq = before.map(|b| b.seq).unwrap_or(0) + 1;
            signals.push(health_signal(app, env, &key, before, seq, at));
            changed.push(AppStateRow {
                app: key,
                environment: env.clone(),
                health: health.to_string(),
                sync: sync.to_string(),
                seq,
            });
        }
        fleet.push(fleet_signal(env, apps, bucket, at));
    }
    signals.extend(fleet);
    intents
        .emit(SOURCE, &signals, DEDUP_WINDOW_MS)
        .await
        .map_err(|e| format!("writing intents: {e}"))?;
    store
        .put_argocd_app_states(&changed)
        .await
        .map_err(|e| format!("remembering application states: {e}"))?;
    set_applications(&groups);
    Ok(seen)
}

/// `Unknown` for a status ArgoCD has not filled in yet.
fn state_of(s: &str) -> &str {
    if s.is_empty() { "Unknown" } else { s }
}

fn health_signal(
    app: &Application,
    env: &str,
    key: &str,
    before: Option<&AppStateRow>,
    seq: i64,
    at: jiff::Timestamp,
) -> Signal {
    let idempotency_key = format!("argocd:health:{key}:{seq}");
    let after = json!({"health": state_of(&app.health), "sync": state_of(&app.sync)});
    let reason = [
        app.health_message.as_deref(),
        app.operation_message.as_deref(),
    ]
    .into_iter()
    .flatten()
    .next()
    .unwrap_or_default();
    let envelope = Envelope::new(
        IntentType::RecordHealthCheckRequested,
        idempotency_key.clone(),
        SOURCE,
        format!("argocd:app:{key}"),
        jiff::Timestamp::now(),
        json!({
            "kind": "Application",
            "name": app.name,
            "namespace": app.namespace,
            "environment": env,
            "project": app.project,
            "before": before.map(|b| json!({"health": b.health, "sync": b.sync})),
            "after": after,
            "reason": reason,
            "revision": app.revision,
            "operation_phase": app.operation_phase,
            "destination": app.destination,
            "observed_at": at.to_string(),
        }),
    );
    Signal {
        dedup_key: idempotency_key,
        intents: vec![envelope],
    }
}

fn fleet_signal(env: &str, apps: &[Application], bucket: i64, at: jiff::Timestamp) -> Signal {
    let mut health: BTreeMap<&str, usize> = BTreeMap::new();
    let mut sync: BTreeMap<&str, usize> = BTreeMap::new();
    for a in apps {
        *health.entry(state_of(&a.health)).or_default() += 1;
        *sync.entry(state_of(&a.sync)).or_default() += 1;
    }
    let names = |pred: &dyn Fn(&Application) -> bool| -> Vec<&str> {
        apps.iter()
            .filter(|a| pred(a))
            .map(|a| a.name.as_str())
            .collect()
    };
    let idempotency_key = format!("argocd:fleet:{env}:{bucket}");
    let envelope = Envelope::new(
        IntentType::RecordFleetStateRequested,
        idempotency_key.clone(),
        SOURCE,
        format!("argocd:fleet:{env}"),
        jiff::Timestamp::now(),
        json!({
            "environment": env,
            "observed_at": at.to_string(),
            "applications": apps.len(),
            "health": health,
            "sync": sync,
            "out_of_sync": names(&|a| a.sync == "OutOfSync"),
            "degraded": names(&|a| a.health == "Degraded"),
        }),
    );
    Signal {
        dedup_key: idempotency_key,
        intents: vec![envelope],
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EnvironmentLabels {
    environment: String,
}

struct Families {
    polls: Family<OutcomeLabels, Counter>,
    last_poll: Gauge,
    last_success: Gauge,
    applications: Family<EnvironmentLabels, Gauge>,
}

fn families() -> &'static Families {
    static F: OnceLock<Families> = OnceLock::new();
    F.get_or_init(|| Families {
        polls: Family::default(),
        last_poll: Gauge::default(),
        last_success: Gauge::default(),
        applications: Family::default(),
    })
}

/// Add the poller's families to `registry` (once, at start-up).
pub fn register_metrics(registry: &mut Registry) {
    let f = families();
    registry.register(
        "argocd_polls",
        "ArgoCD poll cycles by outcome",
        f.polls.clone(),
    );
    registry.register(
        "argocd_last_poll_timestamp_seconds",
        "When the ArgoCD poller last finished a cycle (unix seconds)",
        f.last_poll.clone(),
    );
    registry.register(
        "argocd_last_successful_poll_timestamp_seconds",
        "When an ArgoCD poll cycle last worked (unix seconds)",
        f.last_success.clone(),
    );
    registry.register(
        "argocd_applications",
        "Applications the last ArgoCD poll saw, by environment",
        f.applications.clone(),
    );
}

fn record_metrics(outcome: &str, at_ms: i64, ok: bool) {
    let f = families();
    f.polls
        .get_or_create(&OutcomeLabels {
            outcome: outcome.to_string(),
        })
        .inc();
    f.last_poll.set(at_ms / 1000);
    if ok {
        f.last_success.set(at_ms / 1000);
    }
}

fn set_applications(groups: &BTreeMap<String, Vec<Application>>) {
    let f = families();
    for (env, apps) in groups {
        f.applications
            .get_or_create(&EnvironmentLabels {
                environment: env.clone(),
            })
            .set(i64::try_from(apps.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_cycles_wait_longer_up_to_a_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(30), 0), s(30));
        assert_eq!(backoff(s(30), 1), s(60));
        assert_eq!(backoff(s(30), 3), s(240));
        assert_eq!(backoff(s(30), 9), s(300));
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(200), 20), ms(6400));
        // An interval longer than the cap is never shortened.
        assert_eq!(backoff(s(600), 2), s(600));
    }
}
