//! `review.post_comment`: a comment on the analysed pull request's conversation
//! (`POST /repos/{o}/{r}/issues/{n}/comments`). A write to GitHub: the default policy holds it
//! for an approver, who sees the pull request and the exact text; it is sent once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{TOOLSET, analysis_target, engine};
use crate::core::context::ToolContext;
use crate::core::error::ToolError;
use crate::core::tool::{Preview, Risk, Target, TypedTool};

/// GitHub's limit on a comment body.
const MAX_BODY_CHARS: usize = 65_536;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentParams {
    /// The analysis id (names the pull request).
    pub id: String,
    /// Markdown text of the comment.
    pub body: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CommentOutput {
    pub pr: String,
    pub comment_id: u64,
    pub url: String,
}

pub struct PostComment;

fn checked(p: &CommentParams) -> Result<(), ToolError> {
    let n = p.body.trim().chars().count();
    if n == 0 || n > MAX_BODY_CHARS {
        return Err(ToolError::invalid_arguments(format!(
            "body: write 1 to {MAX_BODY_CHARS} characters (got {n})"
        )));
    }
    Ok(())
}

impl TypedTool for PostComment {
    type Params = CommentParams;
    type Output = CommentOutput;
    const NAME: &'static str = "review.post_comment";
    const TOOLSET: &'static str = TOOLSET;
    const TITLE: &'static str = "Comment on the pull request";
    const DESCRIPTION: &'static str =
        "Post a Markdown comment on the analysed GitHub pull request. Needs approval.";
    const RISK: Risk = Risk::Write;

    fn target(&self, p: &CommentParams) -> Option<Target> {
        Some(analysis_target(&p.id))
    }

    async fn preview(
        &self,
        ctx: &ToolContext,
        p: &CommentParams,
    ) -> Result<Option<Preview>, ToolError> {
        checked(p)?;
        let (_, result) = engine(ctx)?.finished(&p.id).await?;
        let pr = format!(
            "{}/{}#{}",
            result.pr.owner, result.pr.repo, result.pr.number
        );
        Ok(Some(Preview {
            summary: format!(
                "would post a comment of {} characters on {pr} ({})",
                p.body.chars().count(),
                result.pr.url
            ),
            detail: json!({ "pr": pr, "body": p.body }),
            ..Preview::default()
        }))
    }

    async fn call(&self, ctx: &ToolContext, p: CommentParams) -> Result<CommentOutput, ToolError> {
        checked(&p)?;
        let review = engine(ctx)?;
        let (_, result) = review.finished(&p.id).await?;
        let comment = review.post_comment(&p.id, &p.body).await?;
        Ok(CommentOutput {
            pr: format!(
                "{}/{}#{}",
                result.pr.owner, result.pr.repo, result.pr.number
            ),
            comment_id: comment.id,
            url: comment.html_url,
        })
    }
}
