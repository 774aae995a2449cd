//! When an incident pages: `critical` at once, `high` only within business hours (a local
//! time window in an IANA zone, DST-correct through jiff), lower severities never. A page held
//! back is deferred until the next opening.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Immediate,
    BusinessHoursOnly,
    Never,
}

#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub start: Time,
    pub end: Time,
    pub zone: TimeZone,
    /// The zone's name as written, for messages.
    pub zone_name: String,
    pub days: Vec<Weekday>,
}

impl Default for BusinessHours {
    fn default() -> Self {
        Self {
            start: Time::constant(9, 0, 0, 0),
            end: Time::constant(18, 0, 0, 0),
            zone: TimeZone::UTC,
            zone_name: "UTC".into(),
            days: WEEKDAYS.to_vec(),
        }
    }
}

const WEEKDAYS: [Weekday; 5] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
];

fn parse_time(key: &str, text: &str) -> Result<Time, String> {
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| format!("{key}: `{text}` is not HH:MM"))?;
    let (h, m): (i8, i8) = match (h.parse(), m.parse()) {
        (Ok(h), Ok(m)) => (h, m),
        _ => return Err(format!("{key}: `{text}` is not HH:MM")),
    };
    Time::new(h, m, 0, 0).map_err(|_| format!("{key}: `{text}` is not a time of day (00:00–23:59)"))
}

fn parse_day(text: &str) -> Option<Weekday> {
    Some(match text.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

impl BusinessHours {
    pub fn parse(
        start: &str,
        end: &str,
        zone: &str,
        days: Option<&[String]>,
    ) -> Result<Self, String> {
        let start = parse_time("start", start)?;
        let end = parse_time("end", end)?;
        if end <= start {
            return Err(format!("end {end} must be after start {start} (same day)"));
        }
        let tz = TimeZone::get(zone).map_err(|_| {
            format!("timezone: `{zone}` is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)")
        })?;
        let days = match days {
            None => WEEKDAYS.to_vec(),
            Some(list) => list
                .iter()
                .map(|d| {
                    parse_day(d).ok_or_else(|| format!("days: `{d}` is not a weekday (mon … sun)"))
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            start,
            end,
            zone: tz,
            zone_name: zone.to_string(),
            days,
        })
    }

    /// Whether `now` is within business hours (start inclusive, end exclusive, local time).
    pub fn is_open(&self, now: Timestamp) -> bool {
        let local = now.to_zoned(self.zone.clone());
        let time = local.time();
        self.days.contains(&local.weekday()) && time >= self.start && time < self.end
    }

    /// The next opening strictly after `now` (a start time on a working day), as an instant:
    /// a start inside a DST gap moves forward with the clocks.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        let today = now.to_zoned(self.zone.clone()).date();
        for offset in 0..=8_i64 {
            let date = today.checked_add(offset.days()).ok()?;
            if !self.days.contains(&date.weekday()) {
                continue;
            }
            let opening = date
                .to_datetime(self.start)
                .to_zoned(self.zone.clone())
                .ok()?;
            if opening.timestamp() > now {
                return Some(opening.timestamp());
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
pub struct Escalation {
    pub critical: When,
    pub high: When,
    pub business_hours: BusinessHours,
}

impl Default for Escalation {
    fn default() -> Self {
        Self {
            critical: When::Immediate,
            high: When::BusinessHoursOnly,
            business_hours: BusinessHours::default(),
        }
    }
}

/// What to do about paging an incident of some severity at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Page,
    /// Page at this instant unless resolved before.
    Defer(Timestamp),
    Never,
}

impl Escalation {
    pub fn decide(&self, severity: &str, now: Timestamp) -> Decision {
        let when = match severity {
            "critical" => self.critical,
            "high" => self.high,
            _ => When::Never,
        };
        match when {
            When::Immediate => Decision::Page,
            When::Never => Decision::Never,
            When::BusinessHoursOnly if self.business_hours.is_open(now) => Decision::Page,
            When::BusinessHoursOnly => match self.business_hours.next_open(now) {
                Some(at) => Decision::Defer(at),
                None => Decision::Never,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn berlin() -> Escalation {
        Escalation {
            business_hours: BusinessHours::parse("09:00", "18:00", "Europe/Berlin", None)
                .expect("hours"),
            ..Escalation::default()
        }
    }

    #[test]
    fn high_pages_at_17_59_and_defers_at_18_01_local_on_both_sides_of_a_dst_change() {
        let e = berlin();
        // Friday 2026-10-23, CEST (UTC+2): 17:59 local is 15:59Z.
        assert_eq!(e.decide("high", at("2026-10-23T15:59:00Z")), Decision::Page);
        // 18:01 CEST on Friday: deferred to Monday 09:00 CET (UTC+1, after the change on
        // Sunday 25 October), i.e. 08:00Z — not 07:00Z as a fixed +2 offset would say.
        assert_eq!(
            e.decide("high", at("2026-10-23T16:01:00Z")),
            Decision::Defer(at("2026-10-26T08:00:00Z"))
        );
        // Monday after the change, CET: 17:59 local is 16:59Z, 18:01 is 17:01Z.
        assert_eq!(e.decide("high", at("2026-10-26T16:59:00Z")), Decision::Page);
        assert_eq!(
            e.decide("high", at("2026-10-26T17:01:00Z")),
            Decision::Defer(at("2026-10-27T08:00:00Z"))
        );
        // 16:30Z on Monday is 17:30 CET (open), though it would be 18:30 CEST (closed).
        assert_eq!(e.decide("high", at("2026-10-26T16:30:00Z")), Decision::Page);
    }

    #[test]
    fn spring_forward_moves_the_opening_with_the_clocks() {
        let e = berlin();
        // Friday 2026-03-27 18:01 CET → Monday 30 March 09:00 CEST = 07:00Z.
        assert_eq!(
            e.decide("high", at("2026-03-27T17:01:00Z")),
            Decision::Defer(at("2026-03-30T07:00:00Z"))
        );
    }

    #[test]
    fn critical_pages_at_once_and_lower_severities_never() {
        let e = berlin();
        let night = at("2026-10-24T01:00:00Z");
        assert_eq!(e.decide("critical", night), Decision::Page);
        assert_eq!(e.decide("medium", night), Decision::Never);
        assert_eq!(e.decide("low", at("2026-10-23T10:00:00Z")), Decision::Never);
    }

    #[test]
    fn bad_hours_are_refused_with_the_reason() {
        let e = BusinessHours::parse("09:00", "18:00", "Mars/Olympus", None).expect_err("zone");
        assert!(e.contains("IANA"), "{e}");
        let e = BusinessHours::parse("18:00", "09:00", "UTC", None).expect_err("order");
        assert!(e.contains("after start"), "{e}");
        let e = BusinessHours::parse("9", "18:00", "UTC", None).expect_err("format");
        assert!(e.contains("HH:MM"), "{e}");
    }
}
