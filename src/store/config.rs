//! The store's config sections: `store` (where the rows live, how reads' audit records reach
//! the disk) and `retention` (how long finished rows are kept). Raw blocks (all optional,
//! `deny_unknown_fields`) are embedded in `config::RawConfig`; `resolve_*` validate them and
//! report every problem by its key. Durations are the kit's config vocabulary, the one thing
//! of another layer the store names (in this file only).

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Durability, Retention};
use crate::adapters::http::config::{RawDuration, parse_duration};

// ---- store ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://PATH` (default `sqlite://toolgate.db`) or `postgres://…`.
    pub url: Option<String>,
    /// When the audit record of a read call reaches the disk. `deferred` (default): committed
    /// before the answer (survives a crash of toolgate), synced within a second or by the next
    /// synced record; a power loss can lose that last second of read records. `synced`: synced
    /// before the answer, like the records of writes, approvals and decisions always are.
    pub read_audit_durability: Option<Durability>,
}

/// The validated `store` block.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub url: String,
    pub read_audit_durability: Durability,
}

/// Validate the `store` block.
pub fn resolve_store(raw: RawStore, problems: &mut Vec<String>) -> StoreConfig {
    let read_audit_durability = raw.read_audit_durability.unwrap_or(Durability::Deferred);
    let url = raw.url.unwrap_or_else(|| "sqlite://toolgate.db".into());
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        problems.push(format!(
            "store.url: `{url}` is not supported; expected sqlite://PATH or postgres://…"
        ));
    }
    StoreConfig {
        url,
        read_audit_durability,
    }
}

// ---- retention ----

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Sent outbox intents, counted from when they were sent. Default `7d`; `0` or `off` keeps
    /// them forever.
    pub outbox: Option<RawDuration>,
    /// Finished A2A tasks (completed, failed, canceled, rejected), counted from their last
    /// change. Default `30d`; `0` or `off` keeps them forever.
    pub a2a_tasks: Option<RawDuration>,
    /// Finished approval requests and their decisions, counted from their last change. Default
    /// `90d`; `0` or `off` keeps them forever.
    pub approvals: Option<RawDuration>,
    /// How often the pruning job runs. Default `1h`; at least `1s`.
    pub interval: Option<RawDuration>,
}

/// A retention window: `None` when `0` / `off`; a problem naming `retention.{key}` when it is no
/// duration.
fn retention_window(
    key: &str,
    raw: Option<RawDuration>,
    default: Duration,
    problems: &mut Vec<String>,
) -> Option<Duration> {
    let Some(raw) = raw else {
        return Some(default);
    };
    let window = match &raw {
        RawDuration::Text(text) if text.trim().eq_ignore_ascii_case("off") => return None,
        RawDuration::Seconds(n) => Some(Duration::from_secs(*n)),
        RawDuration::Text(text) => parse_duration(text.trim()),
    };
    match window {
        Some(window) if window.is_zero() => None,
        Some(window) => Some(window),
        None => {
            problems.push(format!(
                "retention.{key}: `{}` is not a duration; expected e.g. 30s, 5m, 1h or 7d, \
                 or 0 / off to keep these rows forever",
                raw.as_written()
            ));
            Some(default)
        }
    }
}

/// Validate the `retention` block.
pub fn resolve_retention(raw: RawRetention, problems: &mut Vec<String>) -> Retention {
    let outbox = retention_window("outbox", raw.outbox, Retention::DEFAULT_OUTBOX, problems);
    let a2a_tasks = retention_window(
        "a2a_tasks",
        raw.a2a_tasks,
        Retention::DEFAULT_A2A_TASKS,
        problems,
    );
    let approvals = retention_window(
        "approvals",
        raw.approvals,
        Retention::DEFAULT_APPROVALS,
        problems,
    );
    let interval = match retention_window(
        "interval",
        raw.interval,
        Retention::DEFAULT_INTERVAL,
        problems,
    ) {
        Some(interval) if interval >= Duration::from_secs(1) => interval,
        Some(interval) => {
            problems.push(format!(
                "retention.interval: {}ms is too short; expected at least 1s",
                interval.as_millis()
            ));
            Retention::DEFAULT_INTERVAL
        }
        None => {
            problems.push(
                "retention.interval: cannot be 0 / off; to stop pruning set retention.outbox, \
                 retention.a2a_tasks and retention.approvals to off"
                    .into(),
            );
            Retention::DEFAULT_INTERVAL
        }
    };
    Retention {
        outbox,
        a2a_tasks,
        approvals,
        interval,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::config::test_config_file as write_config;
    use crate::config::test_env as env;

    #[test]
    fn the_store_url_is_sqlite_or_postgres() {
        use super::{RawStore, resolve_store};
        use crate::store::Durability;
        let mut problems = Vec::new();
        let store = resolve_store(RawStore::default(), &mut problems);
        assert_eq!(store.url, "sqlite://toolgate.db");
        assert_eq!(store.read_audit_durability, Durability::Deferred);
        for url in ["sqlite::memory:", "postgres://db/t", "postgresql://db/t"] {
            let raw = RawStore {
                url: Some(url.into()),
                read_audit_durability: Some(Durability::Synced),
            };
            let store = resolve_store(raw, &mut problems);
            assert_eq!(store.read_audit_durability, Durability::Synced);
        }
        assert!(problems.is_empty(), "{problems:?}");
        let raw = RawStore {
            url: Some("mysql://db/t".into()),
            ..RawStore::default()
        };
        resolve_store(raw, &mut problems);
        assert_eq!(
            problems,
            ["store.url: `mysql://db/t` is not supported; expected sqlite://PATH or postgres://…"]
        );
    }

    #[test]
    fn an_unknown_read_audit_durability_is_named_with_the_choices() {
        let err = Config::load_from(
            None,
            &env(&[("TOOLGATE_STORE_READ_AUDIT_DURABILITY", "fast")]),
        )
        .expect_err("invalid");
        let text = err.to_string();
        assert!(text.contains("read_audit_durability"), "{text}");
        assert!(
            text.contains("synced") && text.contains("deferred"),
            "{text}"
        );
    }

    #[test]
    fn retention_defaults_off_and_environment_overrides() {
        use crate::store::Retention;
        use std::time::Duration;
        let c = Config::load_from(None, &[]).expect("defaults are valid");
        assert_eq!(c.retention, Retention::default());
        assert_eq!(c.retention.outbox, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(
            c.retention.a2a_tasks,
            Some(Duration::from_secs(30 * 86_400))
        );
        assert_eq!(
            c.retention.approvals,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(c.retention.interval, Duration::from_secs(3_600));

        let (_dir, path) = write_config(
            "retention:\n  outbox: off\n  a2a_tasks: 0\n  approvals: 1h30m\n  interval: 30s\n",
        );
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        assert_eq!(c.retention.outbox, None);
        assert_eq!(c.retention.a2a_tasks, None);
        assert_eq!(c.retention.approvals, Some(Duration::from_secs(5_400)));
        assert_eq!(c.retention.interval, Duration::from_secs(30));

        let overrides = [
            ("TOOLGATE_RETENTION_OUTBOX", "5m"),
            ("TOOLGATE_RETENTION_A2A_TASKS", "7d"),
            ("TOOLGATE_RETENTION_APPROVALS", "0"),
        ];
        let interval_off = [&overrides[..], &[("TOOLGATE_RETENTION_INTERVAL", "OFF")]].concat();
        let c = Config::load_from(Some(&path), &env(&interval_off))
            .expect_err("interval cannot be off");
        assert_eq!(
            c.lines(),
            [
                "retention.interval: cannot be 0 / off; to stop pruning set retention.outbox, retention.a2a_tasks and retention.approvals to off"
            ]
        );
        let c = Config::load_from(Some(&path), &env(&overrides)).expect("valid");
        assert_eq!(c.retention.outbox, Some(Duration::from_secs(300)));
        assert_eq!(c.retention.a2a_tasks, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.retention.approvals, None);
    }

    #[test]
    fn bad_retention_values_name_their_key() {
        use std::time::Duration;
        let err = Config::load_from(None, &env(&[("TOOLGATE_RETENTION_OUTBOX", "7 days")]))
            .expect_err("invalid");
        assert_eq!(
            err.lines(),
            [
                "retention.outbox: `7 days` is not a duration; expected e.g. 30s, 5m, 1h or 7d, or 0 / off to keep these rows forever"
            ]
        );
        // Units written out, a fraction, and an interval below a second.
        let (_dir, path) = write_config(
            "retention:\n  a2a_tasks: 3 weeks\n  approvals: 1.5h\n  interval: 500ms\n",
        );
        let text = Config::load_from(Some(&path), &[])
            .expect_err("invalid")
            .to_string();
        for needle in [
            "retention.a2a_tasks: `3 weeks` is not a duration",
            "retention.approvals: `1.5h` is not a duration",
            "retention.interval: 500ms is too short; expected at least 1s",
        ] {
            assert!(text.contains(needle), "{needle} missing in {text}");
        }
        // A bare number is seconds, as everywhere in the config; a zero with a unit is off.
        std::fs::write(&path, "retention:\n  a2a_tasks: 3600\n  approvals: 0s\n").expect("write");
        let c = Config::load_from(Some(&path), &[]).expect("valid");
        assert_eq!(c.retention.a2a_tasks, Some(Duration::from_secs(3600)));
        assert_eq!(c.retention.approvals, None);
        std::fs::write(&path, "retention:\n  sent: 1d\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("unknown key");
        assert!(
            err.to_string().contains(
                "unknown key `retention.sent`; the keys here are outbox, a2a_tasks, approvals, interval"
            ),
            "{err}"
        );
        std::fs::write(&path, "retention:\n  outbox: [1d]\n").expect("write");
        let err = Config::load_from(Some(&path), &[]).expect_err("not a scalar");
        assert!(
            err.to_string()
                .contains("retention.outbox: expected a duration such as 30s"),
            "{err}"
        );
    }
}
