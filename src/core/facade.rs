//! What the core offers transports besides `dispatch` and the approval actions: A2A task rows,
//! approval-change notifications, permission checks (readiness: `core::readiness`) and the tools a caller may see.
//! Transports ask here instead of reaching the store, the policy or an adapter; this file must
//! not decide anything about a call (policy, approvals and audit stay in dispatch/approval).

use tokio::sync::broadcast;

use crate::core::dispatch::Dispatcher;
use crate::core::principal::Principal;
use crate::core::registry::Entry;
use crate::store::{StoreError, TaskQuery, TaskRecord};

/// The permission a caller of the tool surfaces (/mcp, /rpc, /a2a) must hold.
pub const CALLER_PERMISSION: &str = "toolgate.caller";

impl Dispatcher {
    /// Stores a new A2A task.
    pub async fn insert_task(&self, task: &TaskRecord) -> Result<(), StoreError> {
        self.gate().store.insert_task(task).await
    }

    /// One A2A task by id, whoever owns it (the transport filters by owner).
    pub async fn task(&self, id: &str) -> Result<Option<TaskRecord>, StoreError> {
        self.gate().store.get_task(id).await
    }

    /// Replaces a task that is still in state `from`; `false` when it moved meanwhile.
    pub async fn update_task(
        &self,
        id: &str,
        from: &str,
        next: &TaskRecord,
    ) -> Result<bool, StoreError> {
        self.gate().store.update_task(id, from, next).await
    }

    /// A page of one owner's tasks and the total that match.
    pub async fn list_tasks(
        &self,
        query: &TaskQuery,
    ) -> Result<(Vec<TaskRecord>, i64), StoreError> {
        self.gate().store.list_tasks(query).await
    }

    /// Ids of approval requests as they change (in this process).
    pub fn approval_changes(&self) -> broadcast::Receiver<String> {
        self.gate().subscribe()
    }

    /// Whether `principal` holds `permission` under the current policy.
    pub fn permitted(&self, principal: &Principal, permission: &str) -> bool {
        self.gate()
            .policy
            .current()
            .check_permission(principal, permission)
    }

    /// The tools `principal` may see listed: those this server offers (toolsets, read-only
    /// mode) for a caller, none for anyone else (policy still decides each call).
    pub fn visible_tools(&self, principal: &Principal) -> Vec<&Entry> {
        if !self.permitted(principal, CALLER_PERMISSION) {
            return Vec::new();
        }
        self.registry().offered().collect()
    }
}
