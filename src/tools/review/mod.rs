//! review.* tools: analyse a GitHub pull request (PR-QUEST grouping, toolgate's risk rules,
//! cache by head SHA, a fallback when PR-QUEST is down), poll it, walk its steps with notes,
//! export it as Markdown, post a comment, and the reviewers' leaderboard. Tools reach the
//! engine (`src/review/`) only through `ctx.review`.

use std::sync::Arc;

use crate::core::context::ToolContext;
use crate::core::error::{ToolError, ToolErrorKind};
use crate::core::tool::{Target, Tool, typed};
use crate::review::{Review, ReviewError};

mod analyze;
mod comment;
mod steps;

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        typed(analyze::AnalyzePr),
        typed(analyze::GetAnalysis),
        typed(steps::GetSteps),
        typed(steps::AddNote),
        typed(steps::CompleteStep),
        typed(analyze::ExportMarkdown),
        typed(analyze::Leaderboard),
        typed(comment::PostComment),
    ]
}

const TOOLSET: &str = "review";

fn engine(ctx: &ToolContext) -> Result<&Arc<Review>, ToolError> {
    ctx.review.as_ref().ok_or_else(|| {
        ToolError::new(
            ToolErrorKind::Upstream,
            "review is not configured: add a `review:` section (review.prquest.url, review.github.token)",
        )
    })
}

/// The analysis a call acts on, for policy and audit.
fn analysis_target(id: &str) -> Target {
    Target {
        kind: Some("ReviewAnalysis".into()),
        name: Some(id.to_string()),
        ..Target::default()
    }
}

impl From<ReviewError> for ToolError {
    fn from(e: ReviewError) -> Self {
        let kind = match &e {
            ReviewError::Invalid(_) => ToolErrorKind::InvalidArguments,
            ReviewError::NotFound(_) => ToolErrorKind::NotFound,
            ReviewError::NotReady(_) => ToolErrorKind::InvalidArguments,
            ReviewError::Upstream(_) => ToolErrorKind::Upstream,
            ReviewError::Store(_) => ToolErrorKind::Internal,
        };
        ToolError::new(kind, e.to_string())
    }
}
