//! The dispatch core: registry, dispatch, output budget. Transports call only `dispatch`.

pub mod approval;
pub mod audit;
pub mod budget;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod notify;
pub mod policy;
pub mod principal;
pub mod readiness;
pub mod registry;
pub mod tool;
pub mod validate;
