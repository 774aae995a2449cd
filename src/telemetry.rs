//! Logging: the `log` config section (raw block, validated settings) and the set-up from it:
//! tracing to stderr (stdout belongs to MCP stdio), text or JSON.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `text` (default) or `json`.
    pub format: Option<String>,
    /// tracing filter, e.g. `info` or `toolgate=debug,info`. Default `info`.
    pub level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// Validate the `log` block; every problem names its key.
pub fn resolve(raw: RawLog, problems: &mut Vec<String>) -> LogConfig {
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            problems.push(format!(
                "log.format: `{other}` is not supported; expected `text` or `json`"
            ));
            LogFormat::Text
        }
    };
    let level = raw.level.unwrap_or_else(|| "info,rmcp=warn".into());
    if EnvFilter::try_new(&level).is_err() {
        problems.push(format!("log.level: `{level}` is not a tracing filter; expected e.g. `info` or `toolgate=debug,info`"));
    }
    LogConfig { format, level }
}

/// The cap on rmcp's message logging, added to every filter.
const RMCP_MESSAGES: &str = "rmcp::service=info";

/// Install the global subscriber. `TOOLGATE_LOG` overrides the configured filter.
pub fn init(log: &LogConfig) {
    let filter = std::env::var("TOOLGATE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| {
            EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"))
        });
    // rmcp's service logs every MCP message in full at debug: tool answers (a revealed secret,
    // log lines) and arguments (a value to write) would reach the log whatever the level asked.
    let filter = match RMCP_MESSAGES.parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: keep the first subscriber.
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .flatten_event(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_and_level_are_checked() {
        let mut problems = Vec::new();
        let log = resolve(RawLog::default(), &mut problems);
        assert_eq!(
            (log.format, log.level.as_str()),
            (LogFormat::Text, "info,rmcp=warn")
        );
        let raw = RawLog {
            format: Some("json".into()),
            level: Some("toolgate=debug,info".into()),
        };
        assert_eq!(resolve(raw, &mut problems).format, LogFormat::Json);
        assert!(problems.is_empty(), "{problems:?}");
        let raw = RawLog {
            format: Some("xml".into()),
            level: Some("toolgate=loud".into()),
        };
        resolve(raw, &mut problems);
        assert_eq!(
            problems,
            [
                "log.format: `xml` is not supported; expected `text` or `json`",
                "log.level: `toolgate=loud` is not a tracing filter; expected e.g. `info` or `toolgate=debug,info`",
            ]
        );
    }
}
