//! The dispatch core: registry, dispatch, the one invoke path, approvals, audit, output budget,
//! readiness. Transports call only the core: the dispatcher's methods and the store types
//! re-exported here, never `crate::store` directly.

pub mod approval;
pub mod audit;
pub mod budget;
pub mod config;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod exposure;
pub mod facade;
pub mod flat_schema;
pub mod invoke;
pub mod notify;
pub mod policy;
pub mod principal;
pub mod rate_limit;
pub mod readiness;
pub mod registry;
pub mod tool;
pub mod validate;

/// The store's row types transports read and write through the dispatcher.
pub use crate::store::{
    ApprovalState, AuditRecord, DecisionRecord, Requester, StoreError, TaskQuery, TaskRecord,
    now_ms,
};
