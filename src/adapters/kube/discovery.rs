//! API discovery for one cluster and kind resolution: which resource a caller means by `po`,
//! `deployments.apps`, `Certificate` or `wd`. Uses the legacy discovery documents because they
//! carry short names, verbs and scope (kube's `Discovery` drops short names).

use ::kube::Client;
use ::kube::core::ApiResource;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIGroupList, APIResourceList, APIVersions};

use super::paths;

/// One resource type the cluster serves, at one group version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindInfo {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    /// PascalCase kind, e.g. `Deployment`.
    pub kind: String,
    /// Plural resource name used in URLs, e.g. `deployments`.
    pub plural: String,
    /// Lower-case singular name, e.g. `deployment`.
    pub singular: String,
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// Whether `version` is the group's preferred version.
    pub preferred: bool,
}

impl KindInfo {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The name kubectl accepts unambiguously: `deployments.apps`, or `pods` for the core group.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    fn answers_to(&self, name: &str) -> bool {
        self.plural == name
            || self.singular == name
            || self.kind.eq_ignore_ascii_case(name)
            || self.short_names.iter().any(|s| s == name)
    }
}

/// Outcome of matching a caller's kind against discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Found(KindInfo),
    /// Several groups serve that name with equal priority; the qualified names to choose from.
    Ambiguous(Vec<String>),
    /// Nothing matches; close names to suggest (singular forms).
    NotFound(Vec<String>),
}

/// Fetch every group version's resource list. Failing aggregated groups (e.g. a down
/// metrics-server) are skipped, as kubectl does; the core group and the group list must answer.
/// Paths are built from encoded segments like every other request: the server names the groups.
pub async fn discover(client: &Client) -> Result<Vec<KindInfo>, ::kube::Error> {
    let core_versions: APIVersions = get(client, "/api".to_string()).await?;
    let groups: APIGroupList = get(client, "/apis".to_string()).await?;

    // (group, version, group_version, preferred)
    let mut targets: Vec<(String, String, String, bool)> = Vec::new();
    for (i, v) in core_versions.versions.iter().enumerate() {
        targets.push((String::new(), v.clone(), v.clone(), i == 0));
    }
    for g in &groups.groups {
        let preferred = g
            .preferred_version
            .as_ref()
            .map(|p| p.group_version.clone());
        for v in &g.versions {
            let is_preferred = preferred.as_deref() == Some(v.group_version.as_str());
            targets.push((
                g.name.clone(),
                v.version.clone(),
                v.group_version.clone(),
                is_preferred,
            ));
        }
    }

    let fetched: Vec<_> = futures::stream::iter(targets.into_iter().filter_map(
        |(group, version, gv, preferred)| match paths::group_version(&group, &version) {
            Ok(path) => Some(async move {
                let list = get::<APIResourceList>(client, path).await;
                (group, version, gv, preferred, list)
            }),
            Err(e) => {
                tracing::warn!(group_version = %gv, error = %e, "discovery: skipping a group version that cannot be requested");
                None
            }
        },
    ))
    .buffer_unordered(8)
    .collect()
    .await;

    let mut kinds = Vec::new();
    for (group, version, gv, preferred, list) in fetched {
        match list {
            Ok(list) => kinds.extend(kinds_of(&group, &version, preferred, &list)),
            Err(e) if group.is_empty() => return Err(e),
            Err(e) => {
                tracing::warn!(group_version = %gv, error = %e, "discovery: skipping a group version that does not answer")
            }
        }
    }
    // Deterministic order: the same query resolves the same way on every refresh.
    kinds.sort_by(|a, b| (&a.group, &a.version, &a.plural).cmp(&(&b.group, &b.version, &b.plural)));
    Ok(kinds)
}

async fn get<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: String,
) -> Result<T, ::kube::Error> {
    let req = http::Request::get(path)
        .body(Vec::new())
        .map_err(::kube::Error::HttpError)?;
    client.request(req).await
}

fn kinds_of(group: &str, version: &str, preferred: bool, list: &APIResourceList) -> Vec<KindInfo> {
    list.resources
        .iter()
        // Subresources (`pods/log`, `deployments/scale`) are not kinds.
        .filter(|r| !r.name.contains('/'))
        .map(|r| KindInfo {
            group: r
                .group
                .clone()
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| group.to_string()),
            version: r
                .version
                .clone()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| version.to_string()),
            kind: r.kind.clone(),
            plural: r.name.to_ascii_lowercase(),
            singular: if r.singular_name.is_empty() {
                r.kind.to_ascii_lowercase()
            } else {
                r.singular_name.to_ascii_lowercase()
            },
            short_names: r
                .short_names
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
            preferred,
        })
        .collect()
}

/// Split an `api_version` argument into (group, version): `apps/v1` → (apps, v1), `v1` → ("", v1),
/// `cert-manager.io` → (cert-manager.io, any version).
fn split_api_version(api_version: &str) -> (String, Option<String>) {
    let av = api_version.trim().to_ascii_lowercase();
    match av.split_once('/') {
        Some((g, v)) => (g.to_string(), Some(v.to_string()).filter(|v| !v.is_empty())),
        None if looks_like_version(&av) => (String::new(), Some(av)),
        None => (av, None),
    }
}

fn looks_like_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    rest.chars().next().is_some_and(|c| c.is_ascii_digit())
}

/// Sort key of a version: GA before beta before alpha, then the higher number.
fn version_rank(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    let (tier, minor_text) = if tail.is_empty() {
        (3, "")
    } else if let Some(m) = tail.strip_prefix("beta") {
        (2, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (1, m)
    } else {
        (0, "")
    };
    (tier, major, minor_text.parse().unwrap_or(0))
}

/// How strongly a group wins a name clash, lower first: core, then Kubernetes' own groups, then
/// extensions (CRDs, aggregated APIs). `events` → core `v1`, not `events.k8s.io`.
fn group_priority(group: &str) -> u8 {
    if group.is_empty() {
        0
    } else if !group.contains('.') || group.ends_with(".k8s.io") {
        1
    } else {
        2
    }
}

/// Match a caller's kind (`po`, `Pod`, `pods`, `deployments.apps`, `deploy.v1.apps`) and optional
/// `api_version` against discovered kinds, case-insensitively.
pub fn resolve(kinds: &[KindInfo], query: &str, api_version: Option<&str>) -> Resolution {
    let q = query.trim().to_ascii_lowercase();
    let mut candidates: Vec<&KindInfo> = kinds.iter().filter(|k| k.answers_to(&q)).collect();
    if candidates.is_empty()
        && let Some((name, rest)) = q.split_once('.')
    {
        candidates = kinds
            .iter()
            .filter(|k| {
                k.answers_to(name)
                    && (k.group == rest || format!("{}.{}", k.version, k.group) == rest)
            })
            .collect();
    }
    if let Some(av) = api_version.filter(|a| !a.trim().is_empty()) {
        let (group, version) = split_api_version(av);
        candidates.retain(|k| k.group == group && version.as_ref().is_none_or(|v| &k.version == v));
    }
    if candidates.is_empty() {
        return Resolution::NotFound(suggest(kinds, &q));
    }

    let best_priority = candidates
        .iter()
        .map(|k| group_priority(&k.group))
        .min()
        .unwrap_or(0);
    candidates.retain(|k| group_priority(&k.group) == best_priority);
    let mut groups: Vec<&str> = candidates.iter().map(|k| k.group.as_str()).collect();
    groups.sort_unstable();
    groups.dedup();
    if groups.len() > 1 {
        let mut names: Vec<String> = candidates.iter().map(|k| k.qualified()).collect();
        names.sort();
        names.dedup();
        return Resolution::Ambiguous(names);
    }
    // One group: its preferred version, else the most stable/highest one.
    candidates.sort_by(|a, b| {
        b.preferred
            .cmp(&a.preferred)
            .then_with(|| version_rank(&b.version).cmp(&version_rank(&a.version)))
    });
    match candidates.first() {
        Some(k) => Resolution::Found((*k).clone()),
        None => Resolution::NotFound(Vec::new()),
    }
}

/// Up to three names close to `q` (a small edit distance, or a prefix), as singular names.
fn suggest(kinds: &[KindInfo], q: &str) -> Vec<String> {
    let name = q.split('.').next().unwrap_or(q);
    // Short names are two or three letters: two edits would match almost anything.
    let max_distance = if name.len() <= 4 { 1 } else { 2 };
    let mut scored: Vec<(usize, String)> = Vec::new();
    for k in kinds {
        let forms = [k.plural.as_str(), k.singular.as_str()]
            .into_iter()
            .chain(k.short_names.iter().map(String::as_str));
        let best = forms
            .map(|f| {
                let d = strsim::levenshtein(f, name);
                if name.len() >= 3 && f.starts_with(name) {
                    d.min(1)
                } else {
                    d
                }
            })
            .min()
            .unwrap_or(usize::MAX);
        if best <= max_distance && best < name.len() {
            scored.push((best, k.singular.clone()));
        }
    }
    scored.sort();
    let mut out: Vec<String> = Vec::new();
    for (_, s) in scored {
        if !out.contains(&s) {
            out.push(s);
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        short: &[&str],
        preferred: bool,
    ) -> KindInfo {
        KindInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced: true,
            verbs: vec!["get".into(), "list".into()],
            preferred,
        }
    }

    fn cluster() -> Vec<KindInfo> {
        vec![
            kind("", "v1", "Pod", "pods", &["po"], true),
            kind("", "v1", "Service", "services", &["svc"], true),
            kind("", "v1", "ConfigMap", "configmaps", &["cm"], true),
            kind("", "v1", "Event", "events", &["ev"], true),
            kind("events.k8s.io", "v1", "Event", "events", &["ev"], true),
            kind("apps", "v1", "Deployment", "deployments", &["deploy"], true),
            kind(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                &["hpa"],
                true,
            ),
            kind(
                "autoscaling",
                "v1",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                &["hpa"],
                false,
            ),
            kind("example.com", "v1", "Widget", "widgets", &["wd"], true),
            kind(
                "example.com",
                "v1beta1",
                "Widget",
                "widgets",
                &["wd"],
                false,
            ),
            kind(
                "cert-manager.io",
                "v1",
                "Certificate",
                "certificates",
                &["cert"],
                true,
            ),
            kind(
                "other.io",
                "v1",
                "Certificate",
                "certificates",
                &["cert"],
                true,
            ),
        ]
    }

    fn found(q: &str, av: Option<&str>) -> KindInfo {
        match resolve(&cluster(), q, av) {
            Resolution::Found(k) => k,
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn every_kubectl_form_resolves() {
        for q in ["po", "pods", "pod", "Pod", "PODS"] {
            assert_eq!(found(q, None).plural, "pods", "{q}");
        }
        for q in [
            "deploy",
            "deployments",
            "Deployment",
            "deployment",
            "deployments.apps",
            "deploy.v1.apps",
        ] {
            let k = found(q, None);
            assert_eq!(
                (k.group.as_str(), k.plural.as_str()),
                ("apps", "deployments"),
                "{q}"
            );
        }
        assert_eq!(found("svc", None).kind, "Service");
        assert_eq!(found("cm", None).kind, "ConfigMap");
        assert_eq!(found("wd", None).api_version(), "example.com/v1");
    }

    #[test]
    fn core_group_wins_and_preferred_version_is_used() {
        assert_eq!(found("events", None).group, "");
        assert_eq!(found("events.events.k8s.io", None).group, "events.k8s.io");
        assert_eq!(found("hpa", None).version, "v2");
        assert_eq!(found("hpa", Some("autoscaling/v1")).version, "v1");
        assert_eq!(found("wd", Some("example.com/v1beta1")).version, "v1beta1");
        assert_eq!(
            found("Event", Some("events.k8s.io/v1")).group,
            "events.k8s.io"
        );
        assert_eq!(found("pod", Some("v1")).kind, "Pod");
    }

    #[test]
    fn clashes_between_extensions_are_reported() {
        match resolve(&cluster(), "cert", None) {
            Resolution::Ambiguous(names) => {
                assert_eq!(
                    names,
                    vec!["certificates.cert-manager.io", "certificates.other.io"]
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            found("cert", Some("cert-manager.io/v1")).group,
            "cert-manager.io"
        );
        assert_eq!(found("certificates.other.io", None).group, "other.io");
    }

    #[test]
    fn misspellings_get_suggestions() {
        assert_eq!(
            resolve(&cluster(), "deplyment", None),
            Resolution::NotFound(vec!["deployment".into()])
        );
        assert_eq!(
            resolve(&cluster(), "pod", Some("apps/v1")),
            Resolution::NotFound(vec!["pod".into()])
        );
        assert_eq!(
            resolve(&cluster(), "zzzzzz", None),
            Resolution::NotFound(vec![])
        );
    }

    #[test]
    fn versions_rank_ga_over_beta_over_alpha() {
        let mut v = vec!["v1alpha1", "v2beta2", "v1", "v2", "v1beta1"];
        v.sort_by_key(|s| std::cmp::Reverse(version_rank(s)));
        assert_eq!(v, vec!["v2", "v1", "v2beta2", "v1beta1", "v1alpha1"]);
    }
}
