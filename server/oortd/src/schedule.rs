//! Scheduled rules, as eKuiper's: `cron` and `duration` (the rule starts at
//! each time the cron expression gives and runs for the duration), and
//! `cronDatetimeRange` (periods that limit the starts, or, without `cron`,
//! the periods the rule runs in). Times are UTC.

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;
use oort_proto::v1::RuleOptions;

/// The longest a schedule is searched ahead for a start inside its periods.
const MAX_CRON_STEPS: usize = 100_000;

/// The most periods a schedule may have.
const MAX_RANGES: usize = 1_024;

/// When a scheduled rule runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The starts, and how long each run lasts.
    cron: Option<(Cron, chrono::Duration)>,
    /// The periods it applies in, by start; none means always.
    ranges: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Schedule {
    /// The schedule of a rule's options; `None` for a rule that runs when started.
    pub fn of(options: &RuleOptions) -> Result<Option<Self>, String> {
        let cron = match (options.cron.trim(), options.duration_ms) {
            ("", None) => None,
            ("", Some(_)) => return Err("duration needs a cron expression".into()),
            (_, None) => return Err("cron needs a duration: how long each run lasts".into()),
            (expression, Some(ms)) => {
                if ms <= 0 {
                    return Err(format!("duration must be positive, not {ms} ms"));
                }
                let cron = Cron::new(expression).parse().map_err(|e| format!("cron \"{expression}\": {e}"))?;
                Some((cron, chrono::Duration::milliseconds(ms)))
            }
        };
        if options.cron_datetime_range.len() > MAX_RANGES {
            return Err(format!(
                "{} periods in cron_datetime_range, more than {MAX_RANGES}",
                options.cron_datetime_range.len()
            ));
        }
        let mut ranges = Vec::with_capacity(options.cron_datetime_range.len());
        for (i, range) in options.cron_datetime_range.iter().enumerate() {
            let at = |ms: i64| {
                Utc.timestamp_millis_opt(ms).single().ok_or(format!("cron_datetime_range[{i}]: {ms} ms is not a time"))
            };
            let (begin, end) = (at(range.begin_ms)?, at(range.end_ms)?);
            if end <= begin {
                return Err(format!("cron_datetime_range[{i}] ends before it begins"));
            }
            ranges.push((begin, end));
        }
        ranges.sort();
        if cron.is_none() && ranges.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self { cron, ranges }))
    }

    /// The next run at or after `now`: when it starts and when it stops;
    /// `None` when the schedule has no run left.
    pub fn next(&self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let Some((cron, duration)) = &self.cron else {
            // Periods only: the one under way, or the next.
            return self.ranges.iter().find(|(_, end)| *end > now).map(|(begin, end)| ((*begin).max(now), *end));
        };
        let mut from = now;
        for _ in 0..MAX_CRON_STEPS {
            let start = cron.find_next_occurrence(&from, false).ok()?;
            if self.ranges.is_empty() || self.ranges.iter().any(|(b, e)| *b <= start && start < *e) {
                return Some((start, start + *duration));
            }
            // Past every period: no start left.
            if self.ranges.iter().all(|(_, end)| *end <= start) {
                return None;
            }
            from = start;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use oort_proto::v1::TimeRange;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn options(cron: &str, duration_ms: Option<i64>, ranges: &[(&str, &str)]) -> RuleOptions {
        RuleOptions {
            cron: cron.into(),
            duration_ms,
            cron_datetime_range: ranges
                .iter()
                .map(|(b, e)| TimeRange { begin_ms: at(b).timestamp_millis(), end_ms: at(e).timestamp_millis() })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn cron_and_duration_give_the_runs() {
        let s = Schedule::of(&options("*/10 * * * *", Some(60_000), &[])).unwrap().unwrap();
        let (start, stop) = s.next(at("2026-12-07T10:03:00Z")).unwrap();
        assert_eq!((start, stop), (at("2026-12-07T10:10:00Z"), at("2026-12-07T10:11:00Z")));
    }

    #[test]
    fn periods_limit_the_starts_or_are_the_runs() {
        let ranges = [("2026-12-07T12:00:00Z", "2026-12-07T13:00:00Z")];
        let s = Schedule::of(&options("0 * * * *", Some(1_000), &ranges)).unwrap().unwrap();
        assert_eq!(s.next(at("2026-12-07T10:03:00Z")).unwrap().0, at("2026-12-07T12:00:00Z"));
        assert_eq!(s.next(at("2026-12-07T12:00:00Z")), None, "13:00 is outside the period");
        let s = Schedule::of(&options("", None, &ranges)).unwrap().unwrap();
        assert_eq!(s.next(at("2026-12-07T12:30:00Z")), Some((at("2026-12-07T12:30:00Z"), at("2026-12-07T13:00:00Z"))));
        assert_eq!(s.next(at("2026-12-07T13:00:00Z")), None);
    }

    #[test]
    fn bad_schedules_are_refused() {
        assert!(Schedule::of(&RuleOptions::default()).unwrap().is_none());
        for (cron, duration, message) in [
            ("* * * * *", None, "needs a duration"),
            ("", Some(1), "needs a cron"),
            ("61 * * * *", Some(1), "cron \"61 * * * *\""),
            ("* * * * *", Some(0), "positive"),
        ] {
            let e = Schedule::of(&options(cron, duration, &[])).unwrap_err();
            assert!(e.contains(message), "{cron}: {e}");
        }
        let e = Schedule::of(&options("", None, &[("2026-12-07T13:00:00Z", "2026-12-07T12:00:00Z")])).unwrap_err();
        assert!(e.contains("ends before it begins"), "{e}");
        let many = vec![("2026-12-07T12:00:00Z", "2026-12-07T13:00:00Z"); MAX_RANGES + 1];
        assert!(Schedule::of(&options("", None, &many)).unwrap_err().contains("more than 1024"));
    }
}
