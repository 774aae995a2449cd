//! Long-running signal sources: they watch or poll upstreams and write intents to the outbox
//! (never facts). Each reaches its upstream through its adapter and reports its own health for
//! `/readyz`. Must not touch the dispatch core's calls, tools or transports.

pub mod kubernetes;
