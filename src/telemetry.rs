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

/// The cap on rmcp's message logging, added to a filter that would let more through.
const RMCP_MESSAGES: &str = "rmcp::service=info";

/// The filter of `level` (or `TOOLGATE_LOG`, `env`, when it parses) with rmcp's message
/// logging capped at info. rmcp's service logs every MCP message in full at debug: tool answers
/// (a revealed secret, log lines) and arguments (a value to write) would reach the log whatever
/// the level asked. The cap is added only to a filter that enables something above info: added
/// to `warn` it would raise rmcp to info instead of capping it.
pub fn filter(level: &str, env: Option<&str>) -> EnvFilter {
    let filter = env
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info")));
    let verbose = filter
        .max_level_hint()
        .is_none_or(|most| most > tracing_subscriber::filter::LevelFilter::INFO);
    match RMCP_MESSAGES.parse() {
        Ok(directive) if verbose => filter.add_directive(directive),
        _ => filter,
    }
}

/// Install the global subscriber. `TOOLGATE_LOG` overrides the configured filter.
pub fn init(log: &LogConfig) {
    let filter = filter(&log.level, std::env::var("TOOLGATE_LOG").ok().as_deref());
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

/// Test help: a `MakeWriter` target that keeps what a tracing subscriber writes.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl LogCapture {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut kept) = self.0.lock() {
            kept.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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

    /// The lines a subscriber with `filter` writes for rmcp's info and debug lines and a
    /// toolgate debug line.
    fn logged(filter: EnvFilter) -> String {
        let buf = LogCapture::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(move || out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "rmcp::service::server", "rmcp-info");
            tracing::debug!(target: "rmcp::service::server", "rmcp-debug");
            tracing::warn!(target: "rmcp::service::server", "rmcp-warn");
            tracing::debug!(target: "toolgate::core", "toolgate-debug");
        });
        let text = buf.text();
        let mut seen: Vec<&str> = ["rmcp-info", "rmcp-debug", "rmcp-warn", "toolgate-debug"]
            .into_iter()
            .filter(|m| text.contains(m))
            .collect();
        seen.sort_unstable();
        seen.join(" ")
    }

    #[test]
    fn rmcp_messages_are_capped_at_info_and_never_raised_above_the_level() {
        // warn: rmcp's per-session info lines stay out (the cap once raised them to info).
        assert_eq!(logged(filter("warn", None)), "rmcp-warn");
        // The default keeps rmcp at warn.
        assert_eq!(logged(filter("info,rmcp=warn", None)), "rmcp-warn");
        // debug everywhere: rmcp's message dumps (debug) stay out, its info lines come in.
        assert_eq!(
            logged(filter("debug", None)),
            "rmcp-info rmcp-warn toolgate-debug"
        );
        // TOOLGATE_LOG wins when it parses, and is capped the same way.
        assert_eq!(
            logged(filter("warn", Some("trace"))),
            "rmcp-info rmcp-warn toolgate-debug"
        );
        assert_eq!(logged(filter("warn", Some("not a = filter"))), "rmcp-warn");
    }
}
