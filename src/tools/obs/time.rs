//! Times and durations as agents write them: `now`, `now-1h`, `now-1h30m`, RFC3339
//! (`2026-11-23T10:00:00Z`), unix seconds (`1795428000`, `1795428000.5`); durations in
//! Prometheus style (`30s`, `5m`, `1h30m`, `1d`, `1w`, `500ms`) or plain seconds.

use std::time::Duration;

use jiff::Timestamp;

use crate::core::error::ToolError;

const TIME_HELP: &str = "use now, now-1h (units ms s m h d w), an RFC3339 time such as 2026-11-23T10:00:00Z, or unix seconds";

/// The `start`/`end` arguments of a query: `end` defaults to now, `start` to `default_start`
/// (an error when `None`: the argument is required); `start` must come before `end`.
pub fn time_range(
    start: Option<&str>,
    end: Option<&str>,
    now: Timestamp,
    default_start: Option<Timestamp>,
) -> Result<(Timestamp, Timestamp), ToolError> {
    let start = match (start, default_start) {
        (Some(s), _) => parse_time("start", s, now)?,
        (None, Some(d)) => d,
        (None, None) => {
            return Err(ToolError::invalid_arguments(
                "argument `start`: required for a range query, e.g. now-1h",
            ));
        }
    };
    let end = match end {
        Some(e) => parse_time("end", e, now)?,
        None => now,
    };
    if end <= start {
        return Err(ToolError::invalid_arguments(format!(
            "`start` ({start}) must be before `end` ({end})"
        )));
    }
    Ok((start, end))
}

/// [`time_range`] from now, `start` defaulting to an hour ago (log and trace searches).
pub fn time_range_last_hour_by_default(
    start: Option<&str>,
    end: Option<&str>,
) -> Result<(Timestamp, Timestamp), ToolError> {
    let now = Timestamp::now();
    time_range(
        start,
        end,
        now,
        Some(now - jiff::SignedDuration::from_hours(1)),
    )
}

/// Parse `text` (argument `arg`) relative to `now`.
pub fn parse_time(arg: &str, text: &str, now: Timestamp) -> Result<Timestamp, ToolError> {
    let t = text.trim();
    let bad = || {
        ToolError::invalid_arguments(format!(
            "argument `{arg}`: `{t}` is not a time; {TIME_HELP}"
        ))
    };
    if let Some(rest) = t.strip_prefix("now") {
        let rest = rest.trim();
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, amount) = match rest.split_at(1) {
            ("-", a) => (-1, a),
            ("+", a) => (1, a),
            _ => return Err(bad()),
        };
        let d = duration_units(amount.trim()).ok_or_else(bad)?;
        let signed = jiff::SignedDuration::try_from(d).map_err(|_| bad())? * sign;
        return now.checked_add(signed).map_err(|_| bad());
    }
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(secs) = t.parse::<f64>()
        && secs.is_finite()
    {
        let nanos = (secs * 1e9).round();
        if nanos.abs() < 9.0e18 {
            return Timestamp::from_nanosecond(nanos as i128).map_err(|_| bad());
        }
    }
    Err(bad())
}

/// Parse a duration argument: Prometheus units or plain (fractional) seconds; must be > 0.
pub fn parse_duration(arg: &str, text: &str) -> Result<Duration, ToolError> {
    let t = text.trim();
    let parsed = match t.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 && secs < 1e9 => {
            Some(Duration::from_secs_f64(secs))
        }
        Ok(_) => None,
        Err(_) => duration_units(t),
    };
    parsed.filter(|d| !d.is_zero()).ok_or_else(|| {
        ToolError::invalid_arguments(format!(
            "argument `{arg}`: `{t}` is not a duration; use e.g. 30s, 5m, 1h30m (units ms s m h d w y) or seconds"
        ))
    })
}

/// `1h30m`, `500ms`, `2d` (the upstream kit's duration grammar, Prometheus' form).
pub(crate) fn duration_units(text: &str) -> Option<Duration> {
    crate::adapters::http::parse_duration(text)
}

/// RFC3339 with the precision the value has.
pub fn rfc3339(t: Timestamp) -> String {
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-11-23T12:00:00Z".parse().expect("ts")
    }

    #[test]
    fn relative_absolute_and_unix_times() {
        let at = |s: &str| parse_time("t", s, now()).map(|t| t.to_string());
        assert_eq!(at("now").expect("now"), "2026-11-23T12:00:00Z");
        assert_eq!(at("now-1h").expect("rel"), "2026-11-23T11:00:00Z");
        assert_eq!(at("now-1h30m").expect("rel"), "2026-11-23T10:30:00Z");
        assert_eq!(at("now+5m").expect("rel"), "2026-11-23T12:05:00Z");
        assert_eq!(
            at("2026-11-23T10:00:00+01:00").expect("rfc"),
            "2026-11-23T09:00:00Z"
        );
        assert_eq!(at("1795428000").expect("unix"), "2026-11-23T10:00:00Z");
        assert_eq!(at("1795428000.5").expect("unix"), "2026-11-23T10:00:00.5Z");
        let err = at("yesterday").expect_err("bad");
        assert!(
            err.message
                .contains("argument `t`: `yesterday` is not a time"),
            "{}",
            err.message
        );
        assert!(at("now-1x").is_err());
        assert!(at("now*2").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("step", "30s").expect("s"),
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_duration("step", "1h30m").expect("hm"),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("step", "15").expect("n"),
            Duration::from_secs(15)
        );
        assert_eq!(
            parse_duration("step", "0.5").expect("f"),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration("step", "250ms").expect("ms"),
            Duration::from_millis(250)
        );
        assert!(parse_duration("step", "0").is_err());
        assert!(parse_duration("step", "-5").is_err());
        assert!(parse_duration("step", "5 minutes").is_err());
    }
}
