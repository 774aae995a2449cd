//! The upstream kit: everything an outbound call needs, for every upstream, in one place.
//! Client construction with rustls (the crypto provider is installed here), CA bundles and
//! client certificates; connect and total timeouts; retries with exponential backoff and full
//! jitter for idempotent requests only; a circuit breaker per upstream that only upstream
//! faults open; a response byte cap; credentials from secret sources (inline, environment,
//! files re-read on change, secret references through an installed provider), read again when
//! the upstream refuses them (401/403); a correlation id on every request; per-upstream metrics and the
//! health `/readyz` reports. Usable over reqwest (`Upstream`) or as a tower layer (`GuardLayer`,
//! kube's client).
//!
//! A leaf: imports nothing of toolgate. Adapters build on it; nothing here knows a protocol.

pub mod auth;
pub mod breaker;
pub mod client;
pub mod config;
pub mod correlation;
pub mod guard;
pub mod layer;
pub mod metrics;
pub mod retry;
pub mod secret;
pub mod session;
pub mod upstream;

pub use auth::{HttpAuth, ServiceTokenSpec, TokenProvider, install_token_provider};
pub use breaker::{BREAKER_COOLDOWN, BREAKER_THRESHOLD, BreakerConfig, BreakerState};
pub use client::{TlsSettings, init_crypto};
pub use config::{Endpoint, RawDuration, parse_duration};
pub use guard::{CircuitOpen, Guard, Health, Outcome};
pub use layer::{GuardLayer, TimedOut};
pub use retry::{Retry, RetryPolicy};
pub use secret::{
    Credential, Secret, SecretError, SecretRefProvider, SecretRefSpec, SecretSource,
    install_secret_ref_provider,
};
pub use session::Session;
pub use upstream::{CallError, Reply, Settings, Upstream, retry_after, seconds_text};
