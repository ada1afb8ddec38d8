//! When a scheduled pipeline is due: tick times of a [`Schedule`] and the scheduler's decision for one
//! pipeline, as pure functions of an explicit `now` (the engine's scheduler passes its clock in, tests pass
//! whatever instant they need).
//!
//! Fixed intervals tick on multiples of the interval since the Unix epoch (15m ticks at :00, :15, :30, :45
//! UTC; 24h at midnight UTC; a source's 5s at :00, :05, :10 … of every minute), so every instance
//! computes the same ticks with no stored anchor. Cron expressions have five fields (minute, hour, day of month, month, day of week) and are evaluated in
//! their IANA time zone, so `0 3 * * *` in Europe/Rome is 03:00 in Rome across daylight-saving changes.
//!
//! The decision ([`decide`]) keeps two facts per pipeline: the last tick handled and whether a follow-up
//! run is pending. A tick that falls while the pipeline has a run in progress sets the pending flag (one
//! follow-up, however many ticks fall); ticks missed while Sluice was down collapse into the latest one,
//! so they cause one run.

use std::str::FromStr;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};

use crate::pipeline::{Schedule, Scheduled, SOURCE_INTERVALS};

/// Ticks searched forward when catching up, before settling for `now` as the latest tick.
const CATCH_UP_LIMIT: usize = 10_000;

/// A schedule checked and compiled, ready to compute ticks.
#[derive(Debug, Clone)]
pub enum Compiled {
    Every(chrono::Duration),
    Cron(Box<croner::Cron>, chrono_tz::Tz),
    /// `on_change`: no ticks; the scheduler follows the profile store's changes instead
    /// ([`crate::on_change`]).
    OnChange,
}

/// What is wrong with a schedule: the field at fault (`schedule`, `schedule.cron`, `schedule.timezone`)
/// and a message.
pub type ScheduleError = (&'static str, String);

impl Schedule {
    /// Checks an export pipeline's schedule and compiles it; the error names the field at fault.
    pub fn compile(&self) -> Result<Compiled, ScheduleError> {
        self.compile_for(Scheduled::Pipeline)
    }

    /// Checks the schedule of an export pipeline or a source and compiles it; the error names the field
    /// at fault and the values allowed. (`on_change` compiles for both: a source refuses it in
    /// [`crate::source::SourceSpec::check`], with its reason.)
    pub fn compile_for(&self, owner: Scheduled) -> Result<Compiled, ScheduleError> {
        match self {
            Schedule::OnChange => Ok(Compiled::OnChange),
            Schedule::Interval(s) => match self.interval_seconds(owner) {
                Some(secs) => Ok(Compiled::Every(chrono::Duration::seconds(i64::from(secs)))),
                None => Err(("schedule", unknown_interval(s, owner))),
            },
            Schedule::Cron { cron, timezone } => {
                let tz = chrono_tz::Tz::from_str(timezone.trim()).map_err(|_| {
                    (
                        "schedule.timezone",
                        format!("unknown time zone `{timezone}`: use an IANA name such as `UTC` or `Europe/Rome`"),
                    )
                })?;
                let fields = cron.split_whitespace().count();
                if fields != 5 {
                    return Err((
                        "schedule.cron",
                        format!(
                            "`{cron}` has {fields} fields; a cron expression has 5: minute hour day-of-month month day-of-week (e.g. `0 3 * * *`)"
                        ),
                    ));
                }
                let parsed = CronParser::builder()
                    .seconds(Seconds::Disallowed)
                    .year(Year::Disallowed)
                    .build()
                    .parse(cron.trim())
                    .map_err(|e| {
                        (
                            "schedule.cron",
                            format!("`{cron}` is not a valid cron expression: {e}"),
                        )
                    })?;
                let compiled = Compiled::Cron(Box::new(parsed), tz);
                // A pattern that never matches (`0 0 31 2 *`) would leave the pipeline silently idle.
                if compiled.next_after(Utc::now()).is_none() {
                    return Err((
                        "schedule.cron",
                        format!("`{cron}` never matches a real date"),
                    ));
                }
                Ok(compiled)
            }
        }
    }
}

impl Compiled {
    /// The first tick strictly after `t`; `None` when there is none (a cron pattern that never matches).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Compiled::Every(step) => {
                let step_s = step.num_seconds().max(1);
                let ticks = t.timestamp().div_euclid(step_s) + 1;
                Utc.timestamp_opt(ticks * step_s, 0).single()
            }
            // Cron matches keep the fraction of a second they are searched from: from whole seconds,
            // ticks are whole minutes, as interval ticks are whole multiples.
            Compiled::Cron(cron, tz) => cron
                .find_next_occurrence(&t.trunc_subsecs(0).with_timezone(tz), false)
                .ok()
                .map(|d| d.with_timezone(&Utc)),
            Compiled::OnChange => None,
        }
    }

    /// The latest tick at or before `now`, searching forward from `from` (a tick known to be due).
    fn latest_due(&self, from: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        if let Compiled::Every(step) = self {
            let step_s = step.num_seconds().max(1);
            let ticks = now.timestamp().div_euclid(step_s);
            return Utc.timestamp_opt(ticks * step_s, 0).single().unwrap_or(now);
        }
        let mut tick = from;
        for _ in 0..CATCH_UP_LIMIT {
            match self.next_after(tick) {
                Some(next) if next <= now => tick = next,
                _ => return tick,
            }
        }
        now
    }
}

/// The message for an interval not allowed for `owner`, listing those that are.
fn unknown_interval(given: &str, owner: Scheduled) -> String {
    let allowed: Vec<&str> = owner.intervals().map(|(n, _)| n).collect();
    let allowed = allowed.join(", ");
    let short = SOURCE_INTERVALS.iter().any(|(n, _)| *n == given);
    match owner {
        Scheduled::Pipeline if short => format!(
            "`{given}` is for source pipelines: an export pipeline runs at most every 5m; to follow changes within seconds use \"on_change\". Use null (off), {allowed}, \"on_change\" or {{\"cron\": …, \"timezone\": …}}"
        ),
        Scheduled::Pipeline => format!(
            "unknown schedule `{given}`: use null (off), {allowed}, \"on_change\" or {{\"cron\": …, \"timezone\": …}}"
        ),
        Scheduled::Source => format!(
            "unknown schedule `{given}`: a source runs on null (on demand only), {allowed} or {{\"cron\": …, \"timezone\": …}}"
        ),
    }
}

/// What the scheduler remembers of one pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TickState {
    /// The last tick handled (a run started, a follow-up queued, or skipped while disabled); `None` before
    /// the scheduler first saw the pipeline with a schedule.
    pub last_tick: Option<DateTime<Utc>>,
    /// A tick fell while a run was in progress: run once more as soon as it ends.
    pub pending: bool,
}

/// The scheduler's decision for one pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The state to store, when it changes.
    pub save: Option<TickState>,
    /// Whether to start a run now.
    pub start: bool,
}

impl Decision {
    const NOTHING: Decision = Decision {
        save: None,
        start: false,
    };
}

/// Decides what to do with one pipeline at `now`. `busy`: the pipeline has a run queued or in progress
/// (on any instance). A schedule that does not compile counts as off (it was checked when saved), and so
/// does `on_change`, which has no ticks ([`crate::on_change::decide`] decides for it).
pub fn decide(
    schedule: Option<&Schedule>,
    enabled: bool,
    state: TickState,
    busy: bool,
    now: DateTime<Utc>,
) -> Decision {
    // Every interval counts here, a source's short ones too: which owner may use which was checked when
    // the schedule was saved.
    let compiled = schedule
        .filter(|s| !s.is_on_change())
        .and_then(|s| s.compile_for(Scheduled::Source).ok());
    let change = |next: TickState, start: bool| Decision {
        save: (next != state).then_some(next),
        start,
    };
    let Some(compiled) = compiled else {
        // Off: nothing is due, and a follow-up queued under the old schedule is dropped.
        return change(
            TickState {
                pending: false,
                ..state
            },
            false,
        );
    };
    let Some(last) = state.last_tick else {
        // First sight of this schedule: the first run is at its next tick, not now.
        return change(
            TickState {
                last_tick: Some(now),
                pending: false,
            },
            false,
        );
    };
    let due = compiled.next_after(last).filter(|t| *t <= now);
    if !enabled {
        // A disabled pipeline never runs: its ticks pass unused, so enabling it later starts no catch-up.
        let last_tick = due.map(|t| compiled.latest_due(t, now)).unwrap_or(last);
        return change(
            TickState {
                last_tick: Some(last_tick),
                pending: false,
            },
            false,
        );
    }
    match due {
        Some(tick) => {
            let last_tick = Some(compiled.latest_due(tick, now));
            if busy {
                change(
                    TickState {
                        last_tick,
                        pending: true,
                    },
                    false,
                )
            } else {
                change(
                    TickState {
                        last_tick,
                        pending: false,
                    },
                    true,
                )
            }
        }
        None if state.pending && !busy => change(
            TickState {
                pending: false,
                ..state
            },
            true,
        ),
        None => Decision::NOTHING,
    }
}

/// When the pipeline runs next by its schedule: `None` when it is off, disabled or never matches; `now`
/// when a follow-up is pending or a tick is already due.
pub fn next_run_at(
    schedule: Option<&Schedule>,
    enabled: bool,
    state: TickState,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !enabled {
        return None;
    }
    let compiled = schedule
        .filter(|s| !s.is_on_change())?
        .compile_for(Scheduled::Source)
        .ok()?;
    if state.pending {
        return Some(now);
    }
    let next = compiled.next_after(state.last_tick.unwrap_or(now))?;
    Some(next.max(now))
}

/// When a scheduler that looked at `now` has to look again for one pipeline or source: its first tick
/// strictly after `now`; `None` when it has none (off, disabled, `on_change`, a cron that never matches).
/// A follow-up waiting for a run to end is not a reason to look sooner: the end of the run is.
pub fn next_look(
    schedule: Option<&Schedule>,
    enabled: bool,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if !enabled {
        return None;
    }
    schedule
        .filter(|s| !s.is_on_change())?
        .compile_for(Scheduled::Source)
        .ok()?
        .next_after(now)
}

/// The shortest and longest reconcile interval, in minutes: shorter than the shortest schedule would
/// make every run a reconcile; a year covers any sensible spacing.
const EVERY_MINUTES: (i64, i64) = (5, 366 * 24 * 60);

/// Parses a reconcile interval: a whole number and a unit, `m` (minutes), `h`, `d` or `w`, as in `30m`,
/// `12h`, `1d`, `1w` (the schedule's fixed intervals are all valid).
pub fn parse_every(text: &str) -> Result<chrono::Duration, String> {
    let hint = "use a number and a unit: m (minutes), h (hours), d (days) or w (weeks), e.g. `1d`";
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let per = match unit {
        "m" => 1,
        "h" => 60,
        "d" => 24 * 60,
        "w" => 7 * 24 * 60,
        _ => return Err(format!("`{text}` is not an interval: {hint}")),
    };
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not an interval: {hint}"))?;
    let minutes = n.saturating_mul(per);
    if minutes < EVERY_MINUTES.0 || minutes > EVERY_MINUTES.1 {
        return Err(format!(
            "`{text}` is out of range: reconcile at most every 5m and at least every 366d"
        ));
    }
    Ok(chrono::Duration::minutes(minutes))
}

/// Whether a scheduled run starting at `now` is to be a reconcile: the pipeline reconciles every
/// `every` and its last reconcile started at `last` (`None`: never). An interval that does not parse
/// counts as off (it was checked when saved).
pub fn reconcile_due(every: Option<&str>, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let Some(every) = every.and_then(|e| parse_every(e).ok()) else {
        return false;
    };
    match last {
        None => true,
        // A little in the future is a reconcile started by hand after the tick being run; an interval or
        // more means the clock was set back, and waiting for it to catch up would skip reconciles.
        Some(last) => now - last >= every || last - now >= every,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn every(s: &str) -> Schedule {
        Schedule::Interval(s.into())
    }

    fn cron(c: &str, tz: &str) -> Schedule {
        Schedule::Cron {
            cron: c.into(),
            timezone: tz.into(),
        }
    }

    fn state(last: &str, pending: bool) -> TickState {
        TickState {
            last_tick: Some(at(last)),
            pending,
        }
    }

    #[test]
    fn intervals_tick_on_multiples_of_the_interval() {
        let c = every("15m").compile().unwrap();
        assert_eq!(
            c.next_after(at("2026-11-29T10:07:12Z")),
            Some(at("2026-11-29T10:15:00Z"))
        );
        assert_eq!(
            c.next_after(at("2026-11-29T10:15:00Z")),
            Some(at("2026-11-29T10:30:00Z")),
            "strictly after"
        );
        let d = every("24h").compile().unwrap();
        assert_eq!(
            d.next_after(at("2026-11-29T23:59:59Z")),
            Some(at("2026-11-30T00:00:00Z"))
        );
        for (name, _) in crate::pipeline::INTERVALS {
            assert!(every(name).compile().is_ok(), "{name}");
        }
    }

    #[test]
    fn cron_follows_its_time_zone_across_daylight_saving() {
        let c = cron("0 3 * * *", "Europe/Rome").compile().unwrap();
        // Winter: Rome is UTC+1.
        assert_eq!(
            c.next_after(at("2026-11-29T10:00:00Z")),
            Some(at("2026-11-30T02:00:00Z"))
        );
        // Summer: UTC+2.
        assert_eq!(
            c.next_after(at("2026-07-01T10:00:00Z")),
            Some(at("2026-07-02T01:00:00Z"))
        );
        let utc = cron("*/10 * * * 1-5", "UTC").compile().unwrap();
        // Saturday 2026-11-28 → Monday 2026-11-30 00:00.
        assert_eq!(
            utc.next_after(at("2026-11-28T12:00:00Z")),
            Some(at("2026-11-30T00:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_name_the_field_and_say_why() {
        let (f, m) = every("7m").compile().unwrap_err();
        assert_eq!(f, "schedule");
        assert!(m.contains("7m") && m.contains("15m"), "{m}");
        let (f, m) = cron("0 3 * *", "UTC").compile().unwrap_err();
        assert_eq!(f, "schedule.cron");
        assert!(m.contains("4 fields"), "{m}");
        let (f, m) = cron("0 25 * * *", "UTC").compile().unwrap_err();
        assert_eq!(f, "schedule.cron");
        assert!(m.contains("0 25 * * *"), "{m}");
        let (f, m) = cron("0 3 * * *", "Mars/Olympus").compile().unwrap_err();
        assert_eq!(f, "schedule.timezone");
        assert!(m.contains("Mars/Olympus"), "{m}");
        let (f, m) = cron("0 0 31 2 *", "UTC").compile().unwrap_err();
        assert_eq!(f, "schedule.cron");
        assert!(m.contains("never"), "{m}");
        let s: Schedule = serde_json::from_value(json!({"cron": "0 3 * * *"})).unwrap();
        assert!(s.compile().is_ok(), "the time zone defaults to UTC");
    }

    #[test]
    fn first_sight_waits_for_the_next_tick() {
        let now = at("2026-11-29T10:07:00Z");
        let d = decide(Some(&every("5m")), true, TickState::default(), false, now);
        assert_eq!(
            d,
            Decision {
                save: Some(TickState {
                    last_tick: Some(now),
                    pending: false
                }),
                start: false
            }
        );
        assert_eq!(
            next_run_at(Some(&every("5m")), true, d.save.unwrap(), now),
            Some(at("2026-11-29T10:10:00Z"))
        );
    }

    #[test]
    fn a_due_tick_starts_one_run_and_records_the_tick() {
        let s = every("5m");
        let st = state("2026-11-29T10:05:00Z", false);
        let before = decide(Some(&s), true, st, false, at("2026-11-29T10:09:59Z"));
        assert_eq!(before, Decision::NOTHING);
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:10:01Z"));
        assert!(d.start);
        assert_eq!(d.save, Some(state("2026-11-29T10:10:00Z", false)));
        // The same tick seen again (another loop, another instance) starts nothing.
        let again = decide(
            Some(&s),
            true,
            d.save.unwrap(),
            false,
            at("2026-11-29T10:10:02Z"),
        );
        assert_eq!(again, Decision::NOTHING);
    }

    #[test]
    fn ticks_during_a_run_queue_exactly_one_follow_up() {
        let s = every("5m");
        let mut st = state("2026-11-29T10:00:00Z", false);
        let mut minute = 5;
        // Three ticks fall while the run goes on.
        for _ in 0..3 {
            let now = at(&format!("2026-11-29T10:{minute:02}:30Z"));
            let d = decide(Some(&s), true, st, true, now);
            assert!(!d.start);
            st = d.save.unwrap_or(st);
            assert!(st.pending);
            minute += 5;
        }
        assert_eq!(st.last_tick, Some(at("2026-11-29T10:15:00Z")));
        // The run ends: one follow-up starts, and then nothing until the next tick.
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:16:00Z"));
        assert!(d.start);
        st = d.save.unwrap();
        assert!(!st.pending);
        let d = decide(Some(&s), true, st, true, at("2026-11-29T10:17:00Z"));
        assert_eq!(d, Decision::NOTHING);
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:18:00Z"));
        assert_eq!(d, Decision::NOTHING);
    }

    #[test]
    fn ticks_missed_while_down_cause_one_run() {
        let s = cron("0 * * * *", "Europe/Rome");
        let st = state("2026-11-29T01:00:00Z", false);
        // Down for nine hours: one run, and the last tick is the latest one passed.
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:20:00Z"));
        assert!(d.start);
        assert_eq!(d.save, Some(state("2026-11-29T10:00:00Z", false)));
        let d2 = decide(
            Some(&s),
            true,
            d.save.unwrap(),
            false,
            at("2026-11-29T10:21:00Z"),
        );
        assert_eq!(d2, Decision::NOTHING);
        let iv = every("5m");
        let d = decide(
            Some(&iv),
            true,
            state("2026-11-20T00:00:00Z", false),
            false,
            at("2026-11-29T10:21:00Z"),
        );
        assert!(d.start);
        assert_eq!(d.save, Some(state("2026-11-29T10:20:00Z", false)));
    }

    #[test]
    fn disabled_or_unscheduled_pipelines_never_start() {
        let s = every("5m");
        let st = state("2026-11-29T10:00:00Z", true);
        let now = at("2026-11-29T10:31:00Z");
        let d = decide(Some(&s), false, st, false, now);
        assert!(!d.start);
        assert_eq!(
            d.save,
            Some(state("2026-11-29T10:30:00Z", false)),
            "the ticks pass and the follow-up is dropped"
        );
        assert_eq!(next_run_at(Some(&s), false, st, now), None);
        let d = decide(None, true, st, false, now);
        assert!(!d.start);
        assert_eq!(d.save, Some(state("2026-11-29T10:00:00Z", false)));
        assert_eq!(next_run_at(None, true, st, now), None);
    }

    #[test]
    fn next_run_at_is_now_when_a_follow_up_waits() {
        let s = every("1h");
        let now = at("2026-11-29T10:31:00Z");
        assert_eq!(
            next_run_at(Some(&s), true, state("2026-11-29T10:00:00Z", true), now),
            Some(now)
        );
        assert_eq!(
            next_run_at(Some(&s), true, state("2026-11-29T10:00:00Z", false), now),
            Some(at("2026-11-29T11:00:00Z"))
        );
    }

    #[test]
    fn second_intervals_tick_on_multiples_since_the_epoch() {
        let c = every("5s").compile_for(Scheduled::Source).unwrap();
        assert_eq!(
            c.next_after(at("2026-11-29T10:07:12.300Z")),
            Some(at("2026-11-29T10:07:15Z"))
        );
        assert_eq!(
            c.next_after(at("2026-11-29T10:07:15Z")),
            Some(at("2026-11-29T10:07:20Z")),
            "strictly after"
        );
        assert_eq!(
            c.next_after(at("2026-11-29T10:07:59.999Z")),
            Some(at("2026-11-29T10:08:00Z"))
        );
        let m = every("2m").compile_for(Scheduled::Source).unwrap();
        assert_eq!(
            m.next_after(at("2026-11-29T10:07:12Z")),
            Some(at("2026-11-29T10:08:00Z"))
        );
        for (name, secs) in crate::pipeline::SOURCE_INTERVALS {
            let Compiled::Every(step) = every(name).compile_for(Scheduled::Source).unwrap() else {
                panic!("{name}")
            };
            assert_eq!(step.num_seconds(), i64::from(secs), "{name}");
        }
        for (name, _) in crate::pipeline::INTERVALS {
            assert!(every(name).compile_for(Scheduled::Source).is_ok(), "{name}");
        }
    }

    #[test]
    fn short_intervals_are_for_sources_only() {
        for (name, _) in crate::pipeline::SOURCE_INTERVALS {
            let (f, m) = every(name).compile().unwrap_err();
            assert_eq!(f, "schedule");
            assert!(
                m.contains(name) && m.contains("source") && m.contains("on_change"),
                "{m}"
            );
            assert!(m.contains("5m, 15m") && !m.contains("5s,"), "{m}");
        }
        for bad in ["7s", "0s", "1s", "5", "5 s", "90s", "60s", "1M"] {
            let (f, m) = every(bad).compile_for(Scheduled::Source).unwrap_err();
            assert_eq!(f, "schedule");
            assert!(
                m.contains(bad) && m.contains("5s, 10s, 15s, 30s, 1m, 2m, 5m"),
                "{m}"
            );
            assert!(!m.contains("on_change"), "{m}");
        }
    }

    #[test]
    fn a_five_second_source_runs_each_tick_and_queues_one_follow_up() {
        let s = every("5s");
        let d = decide(
            Some(&s),
            true,
            TickState::default(),
            false,
            at("2026-11-29T10:00:01.200Z"),
        );
        assert!(!d.start, "the first run is at the next tick");
        let mut st = d.save.unwrap();
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:00:04.990Z"));
        assert_eq!(d, Decision::NOTHING);
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:00:05.010Z"));
        assert!(d.start);
        st = d.save.unwrap();
        assert_eq!(st, state("2026-11-29T10:00:05Z", false));
        // The run takes 12 s: two ticks fall during it, one follow-up.
        for now in ["2026-11-29T10:00:10.001Z", "2026-11-29T10:00:15.001Z"] {
            let d = decide(Some(&s), true, st, true, at(now));
            assert!(!d.start);
            st = d.save.unwrap_or(st);
            assert!(st.pending);
        }
        assert_eq!(st.last_tick, Some(at("2026-11-29T10:00:15Z")));
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:00:17Z"));
        assert!(d.start);
        st = d.save.unwrap();
        assert_eq!(st, state("2026-11-29T10:00:15Z", false));
        let d = decide(Some(&s), true, st, false, at("2026-11-29T10:00:19Z"));
        assert_eq!(d, Decision::NOTHING, "nothing more until the 10:00:20 tick");
        // Down for an hour: one run, at the latest tick.
        let d = decide(Some(&s), true, st, false, at("2026-11-29T11:00:03Z"));
        assert!(d.start);
        assert_eq!(d.save, Some(state("2026-11-29T11:00:00Z", false)));
    }

    #[test]
    fn the_next_look_is_the_next_tick() {
        let now = at("2026-11-29T10:00:01.200Z");
        assert_eq!(
            next_look(Some(&every("5s")), true, now),
            Some(at("2026-11-29T10:00:05Z"))
        );
        assert_eq!(
            next_look(Some(&every("1h")), true, now),
            Some(at("2026-11-29T11:00:00Z"))
        );
        assert_eq!(
            next_look(Some(&cron("*/10 * * * *", "UTC")), true, now),
            Some(at("2026-11-29T10:10:00Z"))
        );
        assert_eq!(next_look(Some(&every("5s")), false, now), None);
        assert_eq!(next_look(None, true, now), None);
        assert_eq!(next_look(Some(&Schedule::OnChange), true, now), None);
        assert_eq!(next_look(Some(&every("7s")), true, now), None);
    }

    #[test]
    fn reconcile_intervals_parse_and_fall_due() {
        assert_eq!(parse_every("1d").unwrap(), chrono::Duration::days(1));
        assert_eq!(parse_every(" 12h ").unwrap(), chrono::Duration::hours(12));
        assert_eq!(parse_every("1w").unwrap(), chrono::Duration::weeks(1));
        for (name, _) in crate::pipeline::INTERVALS {
            assert!(parse_every(name).is_ok(), "{name}");
        }
        for bad in [
            "",
            "d",
            "1",
            "1x",
            "-1d",
            "1.5h",
            "1 d",
            "4m",
            "0h",
            "367d",
            "99999999999999999999w",
        ] {
            let e = parse_every(bad).unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{bad}: {e}");
        }
        let now = at("2026-01-01T01:00:00Z");
        assert!(reconcile_due(Some("1h"), None, now));
        assert!(reconcile_due(
            Some("1h"),
            Some(at("2026-01-01T00:00:00Z")),
            now
        ));
        assert!(!reconcile_due(
            Some("1h"),
            Some(at("2026-01-01T00:00:01Z")),
            now
        ));
        assert!(reconcile_due(
            Some("1h"),
            Some(at("2026-01-01T02:00:00Z")),
            now
        ));
        assert!(!reconcile_due(
            Some("1h"),
            Some(at("2026-01-01T01:00:30Z")),
            now
        ));
        assert!(!reconcile_due(None, None, now));
        assert!(!reconcile_due(Some("soon"), None, now));
    }
}
