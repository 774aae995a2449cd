//! The health rules: a projected pod or deployment → its health state, which changes are worth
//! an intent, and the intents themselves (`RecordHealthCheckRequested` for health changes,
//! `IngestAlertRequested` for Warning events). No I/O here.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::adapters::kube::watch::{DeploymentFacts, PodFacts, WarningEvent};
use crate::intents::{Envelope, IntentType, Signal};

pub const SOURCE: &str = "toolgate/kubernetes";
/// Health-change dedup records are kept this long: a change is one resourceVersion, which a
/// restart, a re-list or a reconcile may see again, but never days later.
pub const HEALTH_DEDUP_MS: i64 = 7 * 86_400_000;

/// Pod waiting reasons that mean the image cannot be pulled.
const IMAGE_PULL: &[&str] = &["ImagePullBackOff", "ErrImagePull", "InvalidImageName"];

/// An object's health as the rules judge it (what is stored and compared).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// Pods: `Ready`, `Pending`, `NotReady`, `CrashLoopBackOff`, `ImagePullBackOff`,
    /// `OOMKilled`, `Failed`, `Succeeded`. Deployments: `Available`, `ReplicasUnavailable`,
    /// `RolloutStuck`.
    pub status: String,
    pub healthy: bool,
    /// Why, in a few words (`container app: CrashLoopBackOff after OOMKilled`, `1/3 available`).
    pub reason: String,
}

impl HealthState {
    fn new(status: &str, healthy: bool, reason: String) -> Self {
        Self {
            status: status.to_string(),
            healthy,
            reason,
        }
    }

    /// A state an object may reach without anything being wrong on the way (a start).
    fn quiet(&self) -> bool {
        matches!(
            self.status.as_str(),
            "Pending" | "Ready" | "Succeeded" | "Available"
        )
    }
}

/// A pod's health; `None` while it is being deleted (its end is not news).
pub fn pod_health(p: &PodFacts) -> Option<HealthState> {
    if p.deleting {
        return None;
    }
    let container = p.container.as_deref().unwrap_or("?");
    let state = match (p.waiting.as_deref(), p.terminated.as_deref()) {
        _ if p.phase == "Succeeded" => HealthState::new("Succeeded", true, "completed".into()),
        (_, Some("OOMKilled")) if !p.ready => HealthState::new(
            "OOMKilled",
            false,
            match p.waiting.as_deref() {
                Some(w) => format!("container {container}: {w} after OOMKilled"),
                None => format!("container {container}: OOMKilled"),
            },
        ),
        (Some("CrashLoopBackOff"), last) => HealthState::new(
            "CrashLoopBackOff",
            false,
            match last {
                Some(t) => format!("container {container}: CrashLoopBackOff after {t}"),
                None => format!("container {container}: CrashLoopBackOff"),
            },
        ),
        (Some(w), _) if IMAGE_PULL.contains(&w) => HealthState::new(
            "ImagePullBackOff",
            false,
            format!("container {container}: {w}"),
        ),
        _ if p.phase == "Failed" => HealthState::new("Failed", false, "phase Failed".into()),
        _ if p.ready => HealthState::new("Ready", true, "ready".into()),
        (Some(w), _) => HealthState::new("NotReady", false, format!("container {container}: {w}")),
        _ if p.phase == "Pending" || p.phase.is_empty() => {
            HealthState::new("Pending", true, "starting".into())
        }
        _ => HealthState::new("NotReady", false, format!("phase {}, not ready", p.phase)),
    };
    Some(state)
}

/// A deployment's health.
pub fn deployment_health(d: &DeploymentFacts) -> HealthState {
    let counts = format!("{}/{} available", d.available, d.replicas);
    if d.progress_failure.as_deref() == Some("ProgressDeadlineExceeded") {
        return HealthState::new(
            "RolloutStuck",
            false,
            format!("ProgressDeadlineExceeded; {counts}, {} updated", d.updated),
        );
    }
    if d.replicas > 0 && (d.unavailable > 0 || d.available < d.replicas) {
        return HealthState::new("ReplicasUnavailable", false, counts);
    }
    HealthState::new("Available", true, counts)
}

/// Whether going from `before` to `after` is news: the status changed, and it is not the
/// quiet start of a new object.
pub fn worth_reporting(before: Option<&HealthState>, after: &HealthState) -> bool {
    match before {
        None => !after.quiet(),
        Some(b) if b.status == after.status => false,
        Some(b) => !(b.status == "Pending" && after.quiet()),
    }
}

/// What an intent says about the object it is about.
pub struct Subject<'a> {
    pub cluster: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub resource_version: &'a str,
}

/// `RecordHealthCheckRequested` for one change. The key is the object at its
/// resourceVersion and new status: a re-list, a reconcile, a replica or a restart that sees the
/// same change again writes nothing.
pub fn health_signal(
    s: &Subject<'_>,
    before: Option<&HealthState>,
    after: &HealthState,
    observed_at: jiff::Timestamp,
) -> Signal {
    let key = format!(
        "k8s:{}:{}:{}/{}:{}:{}",
        s.cluster, s.kind, s.namespace, s.name, s.resource_version, after.status
    );
    let envelope = Envelope::new(
        IntentType::RecordHealthCheckRequested,
        key.clone(),
        SOURCE,
        format!("k8s:{}:{}:{}/{}", s.cluster, s.kind, s.namespace, s.name),
        observed_at,
        json!({
            "source": "kubernetes",
            "cluster": s.cluster,
            "namespace": s.namespace,
            "kind": s.kind,
            "name": s.name,
            "before": before,
            "after": after,
            "healthy": after.healthy,
            "reason": after.reason,
            "resource_version": s.resource_version,
            "observed_at": observed_at.to_string(),
        }),
    );
    Signal {
        dedup_key: key,
        intents: vec![envelope],
    }
}

/// `IngestAlertRequested` for a Warning event. The dedup key is (cluster, involved object,
/// reason): the same warning again within the window is the same alert.
pub fn warning_signal(cluster: &str, e: &WarningEvent, now: jiff::Timestamp) -> Signal {
    let object = format!(
        "{}/{}/{}",
        e.involved_kind, e.involved_namespace, e.involved_name
    );
    let key = format!("k8s-event:{cluster}:{object}:{}", e.reason);
    let fingerprint = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.as_bytes());
        digest[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let last = e.last_seen.unwrap_or(now).to_string();
    let envelope = Envelope::new(
        IntentType::IngestAlertRequested,
        format!("{key}:{last}"),
        SOURCE,
        format!("k8s:{cluster}:{object}"),
        now,
        json!({
            "source": "kubernetes",
            "fingerprint": fingerprint,
            "status": "firing",
            "labels": {
                "alertname": e.reason,
                "severity": "warning",
                "cluster": cluster,
                "namespace": e.involved_namespace,
                "kind": e.involved_kind,
                "name": e.involved_name,
            },
            "annotations": {"summary": e.message},
            "startsAt": last,
            "cluster": cluster,
            "involved_object": {
                "kind": e.involved_kind,
                "namespace": e.involved_namespace,
                "name": e.involved_name,
            },
            "reason": e.reason,
            "message": e.message,
            "count": e.count,
            "last_timestamp": last,
            "reporting_component": e.source,
            "event": format!("{}/{}", e.namespace, e.name),
        }),
    );
    Signal {
        dedup_key: key,
        intents: vec![envelope],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(phase: &str, ready: bool, waiting: Option<&str>, terminated: Option<&str>) -> PodFacts {
        PodFacts {
            namespace: "n".into(),
            name: "p".into(),
            phase: phase.into(),
            ready,
            waiting: waiting.map(String::from),
            terminated: terminated.map(String::from),
            container: Some("app".into()),
            ..PodFacts::default()
        }
    }

    fn status(p: &PodFacts) -> String {
        pod_health(p).map(|h| h.status).unwrap_or_default()
    }

    #[test]
    fn pod_rules() {
        assert_eq!(status(&pod("Running", true, None, None)), "Ready");
        assert_eq!(
            status(&pod("Running", true, None, Some("OOMKilled"))),
            "Ready",
            "an old OOM of a pod that recovered is not news"
        );
        assert_eq!(
            status(&pod(
                "Running",
                false,
                Some("CrashLoopBackOff"),
                Some("OOMKilled")
            )),
            "OOMKilled"
        );
        assert_eq!(
            status(&pod(
                "Running",
                false,
                Some("CrashLoopBackOff"),
                Some("Error")
            )),
            "CrashLoopBackOff"
        );
        assert_eq!(
            status(&pod("Pending", false, Some("ErrImagePull"), None)),
            "ImagePullBackOff"
        );
        assert_eq!(status(&pod("Pending", false, None, None)), "Pending");
        assert_eq!(status(&pod("Running", false, None, None)), "NotReady");
        assert_eq!(status(&pod("Failed", false, None, None)), "Failed");
        let mut gone = pod("Running", true, None, None);
        gone.deleting = true;
        assert_eq!(pod_health(&gone), None);
    }

    #[test]
    fn deployment_rules() {
        let mut d = DeploymentFacts {
            replicas: 3,
            available: 3,
            updated: 3,
            ..DeploymentFacts::default()
        };
        assert_eq!(deployment_health(&d).status, "Available");
        d.available = 1;
        d.unavailable = 2;
        let h = deployment_health(&d);
        assert_eq!(
            (h.status.as_str(), h.reason.as_str()),
            ("ReplicasUnavailable", "1/3 available")
        );
        d.progress_failure = Some("ProgressDeadlineExceeded".into());
        assert_eq!(deployment_health(&d).status, "RolloutStuck");
    }

    #[test]
    fn starts_are_quiet_changes_are_news() {
        let ready = HealthState::new("Ready", true, String::new());
        let pending = HealthState::new("Pending", true, String::new());
        let crash = HealthState::new("CrashLoopBackOff", false, String::new());
        assert!(!worth_reporting(None, &ready));
        assert!(!worth_reporting(None, &pending));
        assert!(!worth_reporting(Some(&pending), &ready));
        assert!(worth_reporting(None, &crash));
        assert!(worth_reporting(Some(&ready), &crash));
        assert!(worth_reporting(Some(&crash), &ready));
        assert!(!worth_reporting(Some(&crash), &crash));
    }
}
