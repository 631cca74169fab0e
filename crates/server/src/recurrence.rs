//! Occurrence times of recurring schedules, and the leader's firing plan.
//!
//! Pure: every function takes the time it works from. Only the leader plans firings (its
//! decisions go into the log); any node computes upcoming times for display. Apply never
//! calls this module, so two builds whose cron or time-zone data differ cannot diverge.
//!
//! Cron expressions have seconds (`sec min hour day-of-month month day-of-week`; a
//! five-field expression means second 0) and are evaluated in an IANA time zone with the
//! daylight-saving rules of the Open Cron Pattern Specification: a fixed-time job whose
//! wall-clock time falls into a spring-forward gap runs at the first instant after the gap;
//! in a fall-back overlap it runs once, at the earlier instant; an interval job (wildcards or
//! steps in second, minute or hour) runs at every real instant that matches.

use chrono::DateTime;
use chrono::TimeZone;
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::CronParser;
use croner::parser::Seconds;

use raftsched_core::state::MisfirePolicy;
use raftsched_core::state::Occurrence;
use raftsched_core::state::OccurrenceAction;
use raftsched_core::state::Recurrence;
use raftsched_core::state::Schedule;
use raftsched_core::state::limits;

/// An occurrence older than this when the leader first can fire it counts as misfired, so
/// an election of well under a second does not.
pub const MISFIRE_TOLERANCE_MS: u64 = 1000;
/// Occurrences the leader looks at per schedule and plan; a longer backlog is worked off over
/// several rounds.
pub const MAX_OCCURRENCES_SCANNED: usize = 10_000;

/// A recurrence ready to compute times: a parsed cron expression and its zone, or an interval
/// with its anchor.
#[derive(Debug, Clone)]
pub enum Compiled {
    Cron { cron: Box<Cron>, zone: Tz },
    Every { interval_ms: u64, anchor_ms: u64 },
}

/// Parses a recurrence; the error says what to fix.
pub fn compile(recurrence: &Recurrence, anchor_ms: u64) -> Result<Compiled, String> {
    match recurrence {
        Recurrence::Cron { expression, time_zone } => {
            let cron = CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(expression)
                .map_err(|e| format!("cron expression {expression:?}: {e}"))?;
            let zone: Tz = time_zone.parse().map_err(|_| {
                format!("unknown time zone {time_zone:?}: use an IANA name such as Europe/Paris or UTC")
            })?;
            Ok(Compiled::Cron {
                cron: Box::new(cron),
                zone,
            })
        }
        Recurrence::Every { interval_ms } => Ok(Compiled::Every {
            interval_ms: (*interval_ms).max(1),
            anchor_ms,
        }),
    }
}

impl Compiled {
    /// The first occurrence strictly after `after_ms` (ms since the Unix epoch), if any.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        match self {
            Compiled::Every { interval_ms, anchor_ms } => {
                if after_ms < *anchor_ms {
                    return Some(*anchor_ms);
                }
                let steps = (after_ms - anchor_ms) / interval_ms + 1;
                anchor_ms.checked_add(steps.checked_mul(*interval_ms)?)
            }
            Compiled::Cron { cron, zone } => {
                // Occurrences fall on whole seconds: strictly after the second `after_ms` is in.
                let seconds = i64::try_from(after_ms / 1000).ok()?;
                let start: DateTime<Tz> = zone.timestamp_opt(seconds, 0).single()?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }
}

/// The first occurrence of `schedule` after `after_ms` within its bounds.
pub fn next_in_bounds(schedule: &Schedule, compiled: &Compiled, after_ms: u64) -> Option<u64> {
    let spec = &schedule.spec;
    let after_ms = after_ms.max(spec.start_ms.saturating_sub(1));
    let next = compiled.next_after(after_ms)?;
    (spec.end_ms == 0 || next <= spec.end_ms).then_some(next)
}

/// Up to `count` occurrences after both the schedule's cursor and `now_ms`: what `schedule
/// get` shows as next fire times.
pub fn upcoming(schedule: &Schedule, compiled: &Compiled, now_ms: u64, count: usize) -> Vec<u64> {
    let mut times = Vec::with_capacity(count);
    let mut after = schedule.cursor_ms.max(now_ms);
    while times.len() < count {
        let Some(next) = next_in_bounds(schedule, compiled, after) else {
            break;
        };
        times.push(next);
        after = next;
    }
    times
}

/// The leader's decisions for every occurrence of `schedule` due by `now_ms` (after its
/// cursor), in order: fire on-time occurrences; for misfired ones (older than
/// [`MISFIRE_TOLERANCE_MS`]) apply the misfire policy. Consecutive skips are merged into one
/// decision. At most [`limits::MAX_OCCURRENCES_PER_FIRING`] decisions; the rest are planned
/// once these are applied.
pub fn plan_firing(schedule: &Schedule, compiled: &Compiled, now_ms: u64) -> Vec<Occurrence> {
    let mut due = Vec::new();
    let mut after = schedule.cursor_ms;
    let mut more = false;
    while let Some(next) = next_in_bounds(schedule, compiled, after) {
        if next > now_ms {
            break;
        }
        if due.len() == MAX_OCCURRENCES_SCANNED {
            more = true;
            break;
        }
        due.push(next);
        after = next;
    }
    let late_before = now_ms.saturating_sub(MISFIRE_TOLERANCE_MS);
    let last_misfired = due.iter().rposition(|at| *at < late_before);
    let policy = schedule.spec.misfire;
    let mut decisions: Vec<Occurrence> = Vec::new();
    for (i, &at) in due.iter().enumerate() {
        let misfired = at < late_before;
        let fire = !misfired
            || match policy {
                MisfirePolicy::Skip => false,
                // With more backlog to come, the latest missed occurrence is in a later plan.
                MisfirePolicy::FireOnce => Some(i) == last_misfired && !more,
                MisfirePolicy::CatchUp { window_ms } => at >= now_ms.saturating_sub(window_ms),
            };
        if fire {
            if decisions.len() == limits::MAX_OCCURRENCES_PER_FIRING {
                break;
            }
            decisions.push(Occurrence {
                scheduled_ms: at,
                action: OccurrenceAction::Fire,
            });
            continue;
        }
        if let Some(Occurrence {
            scheduled_ms,
            action: OccurrenceAction::Skip { count, .. },
        }) = decisions.last_mut()
        {
            *scheduled_ms = at;
            *count += 1;
            continue;
        }
        if decisions.len() == limits::MAX_OCCURRENCES_PER_FIRING {
            break;
        }
        decisions.push(Occurrence {
            scheduled_ms: at,
            action: OccurrenceAction::Skip {
                first_ms: at,
                count: 1,
                reason: format!(
                    "misfired: no leader could fire it within {MISFIRE_TOLERANCE_MS} ms of its time; misfire policy {}",
                    policy.describe()
                ),
            },
        });
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> u64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp_millis() as u64
    }

    fn cron(expression: &str, zone: &str) -> Compiled {
        let recurrence = Recurrence::Cron {
            expression: expression.into(),
            time_zone: zone.into(),
        };
        compile(&recurrence, 0).unwrap()
    }

    fn next_n(compiled: &Compiled, from: &str, n: usize) -> Vec<String> {
        let mut after = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            after = compiled.next_after(after).unwrap();
            out.push(
                DateTime::from_timestamp_millis(after as i64)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
            );
        }
        out
    }

    #[test]
    fn every_second_and_interval() {
        let c = cron("* * * * * *", "UTC");
        assert_eq!(
            c.next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-01T00:00:01Z"))
        );
        assert_eq!(
            c.next_after(utc("2026-01-01T00:00:00.500Z")),
            Some(utc("2026-01-01T00:00:01Z"))
        );
        let every = compile(&Recurrence::Every { interval_ms: 1500 }, 1000).unwrap();
        assert_eq!(every.next_after(0), Some(1000));
        assert_eq!(every.next_after(1000), Some(2500));
        assert_eq!(every.next_after(2499), Some(2500));
        assert_eq!(every.next_after(2500), Some(4000));
    }

    #[test]
    fn five_fields_mean_second_zero() {
        let c = cron("30 9 * * MON-FRI", "UTC");
        // 2026-01-03 is a Saturday: next is Monday the 5th.
        assert_eq!(
            next_n(&c, "2026-01-03T00:00:00Z", 2),
            ["2026-01-05T09:30:00Z", "2026-01-06T09:30:00Z"]
        );
    }

    #[test]
    fn paris_spring_forward_gap_runs_once_after_the_gap() {
        // 2026-03-29: at 02:00 CET Paris clocks jump to 03:00 CEST; 02:30 does not exist.
        let c = cron("0 30 2 * * *", "Europe/Paris");
        assert_eq!(
            next_n(&c, "2026-03-27T12:00:00Z", 4),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // in the gap: 03:00 CEST, the first instant after it
                "2026-03-30T00:30:00Z", // 02:30 CEST
                "2026-03-31T00:30:00Z",
            ]
        );
        // A daily 09:00 job moves from 08:00 UTC to 07:00 UTC.
        let nine = cron("0 0 9 * * *", "Europe/Paris");
        assert_eq!(
            next_n(&nine, "2026-03-28T00:00:00Z", 2),
            ["2026-03-28T08:00:00Z", "2026-03-29T07:00:00Z"]
        );
    }

    #[test]
    fn paris_fall_back_overlap_runs_a_fixed_job_once_and_an_interval_job_twice() {
        // 2026-10-25: at 03:00 CEST Paris clocks go back to 02:00 CET; 02:30 happens twice.
        let fixed = cron("0 30 2 * * *", "Europe/Paris");
        assert_eq!(
            next_n(&fixed, "2026-10-24T12:00:00Z", 3),
            [
                "2026-10-25T00:30:00Z", // the earlier 02:30 (CEST) only
                "2026-10-26T01:30:00Z", // 02:30 CET
                "2026-10-27T01:30:00Z",
            ]
        );
        let half_hourly = cron("0 */30 2 * * *", "Europe/Paris");
        assert_eq!(
            next_n(&half_hourly, "2026-10-24T23:00:00Z", 4),
            [
                "2026-10-25T00:00:00Z", // 02:00 CEST
                "2026-10-25T00:30:00Z", // 02:30 CEST
                "2026-10-25T01:00:00Z", // 02:00 CET
                "2026-10-25T01:30:00Z", // 02:30 CET
            ]
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_explained() {
        let bad = compile(
            &Recurrence::Cron {
                expression: "61 * * * * *".into(),
                time_zone: "UTC".into(),
            },
            0,
        )
        .unwrap_err();
        assert!(bad.contains("cron expression"), "{bad}");
        let zone = compile(
            &Recurrence::Cron {
                expression: "* * * * * *".into(),
                time_zone: "Mars/Olympus".into(),
            },
            0,
        )
        .unwrap_err();
        assert!(zone.contains("unknown time zone"), "{zone}");
    }
}
