//! memory.* tools: governance knowledge in Cognee — add DataPoints (queued while Cognee is
//! down), cognify them into its graph, check runs, search, and suggest an integration path from
//! similar past integrations. Tools reach Cognee only through `ctx.adapters.memory`.

use std::sync::Arc;

use crate::adapters::cognee::MemoryError;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Tool, typed};

mod add;
mod cognify;
mod search;
mod suggest;

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(add::AddDatapoints),
        typed(cognify::Cognify),
        typed(cognify::Status),
        typed(search::Search),
        typed(suggest::SuggestIntegrationPath),
    ]
}

/// How a memory failure reads to the model (the adapter knows no tool errors).
impl From<MemoryError> for ToolError {
    fn from(e: MemoryError) -> Self {
        let kind = match &e {
            MemoryError::NotConfigured
            | MemoryError::Unavailable(_)
            | MemoryError::BadAnswer(_)
            | MemoryError::Queue(_) => ToolErrorKind::Upstream,
            MemoryError::Unauthorized { .. } => ToolErrorKind::Forbidden,
            MemoryError::Rejected { .. } | MemoryError::Invalid(_) => {
                ToolErrorKind::InvalidArguments
            }
        };
        ToolError::new(kind, e.to_string())
    }
}
