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

#[cfg(test)]
mod tests {
    use super::*;

    /// Validators are compiled at a tool's first call, not at start: this is what still finds
    /// a schema that does not compile before any release does.
    #[test]
    fn every_tool_schema_compiles() {
        let registry = crate::core::registry::Registry::new(all()).expect("registry");
        assert!(registry.entries().len() > 20);
        for entry in registry.entries() {
            let validator = entry.validator().expect("schema compiles");
            // The compiled validator is the checked one: unknown arguments are refused.
            assert!(
                !validator.is_valid(&serde_json::json!({"no_such_argument_anywhere": 1})),
                "{}: unknown arguments are refused",
                entry.spec().name
            );
        }
    }
}
