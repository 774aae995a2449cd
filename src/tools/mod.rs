//! Tool families, one module each. `all()` is the registry's content.

use std::sync::Arc;

use crate::core::tool::Tool;

pub mod approval;
pub mod argocd;
pub mod k8s;
pub mod knowledge;
pub mod memory;
pub mod obs;
pub mod page;
pub mod review;
pub mod secret;
pub mod ticket;

/// Every tool toolgate offers.
pub fn all() -> Vec<Arc<dyn Tool>> {
    let mut tools = Vec::new();
    tools.extend(k8s::tools());
    tools.extend(obs::tools());
    tools.extend(memory::tools());
    tools.extend(secret::tools());
    tools.extend(knowledge::tools());
    tools.extend(argocd::tools());
    tools.extend(review::tools());
    tools.extend(ticket::tools());
    tools.extend(page::tools());
    tools.push(crate::core::tool::typed(approval::ApprovalStatus));
    tools
}
