//! The dispatch core: registry, dispatch, the one invoke path, approvals, audit, output budget.
//! Transports call only `dispatch` and the approval methods.

pub mod approval;
pub mod audit;
pub mod budget;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod invoke;
pub mod notify;
pub mod policy;
pub mod principal;
pub mod registry;
pub mod tool;
pub mod validate;
