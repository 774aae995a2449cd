//! The dispatch core: registry, dispatch, output budget. Transports call only `dispatch`.

pub mod budget;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod principal;
pub mod registry;
pub mod tool;
pub mod validate;
