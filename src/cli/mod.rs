//! Client-side subcommands of the `toolgate` binary that talk to a running server over HTTP.

pub mod approvals;
pub mod intents;
