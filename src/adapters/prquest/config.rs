//! The `review.prquest` block: the kit's endpoint keys for the PR-QUEST service (no credentials
//! of its own: it sits inside the cluster behind a Cilium policy). `review::config` embeds it.

use std::time::Duration;

use crate::adapters::http::Endpoint;
use crate::adapters::http::config::resolve as endpoint;

crate::raw_endpoint! {
    /// PR-QUEST (Fission-AI/PR-QUEST), e.g. http://pr-quest-service.pipe-system.svc:3000.
    pub struct RawPrQuest {}
}

/// The validated block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrQuestConfig {
    pub endpoint: Endpoint,
}

/// `None` when the block or its `url` is unset (every analysis then runs in fallback mode).
pub fn resolve(raw: Option<&RawPrQuest>, problems: &mut Vec<String>) -> Option<PrQuestConfig> {
    let raw = raw?;
    let mut endpoint = endpoint(
        "review.prquest",
        raw.url.as_deref(),
        raw.endpoint_fields(),
        problems,
    )?;
    // Grouping waits on an LLM: a longer default than the kit's 30s.
    if raw.timeout.is_none() && raw.timeout_seconds.is_none() {
        endpoint.settings.timeout = Duration::from_secs(120);
    }
    Some(PrQuestConfig { endpoint })
}
