//! When an `on_change` export pipeline runs: as soon as the profiles it may read have changed, debounced.
//!
//! The scheduler polls the profile store's change history (how many profiles changed or were deleted
//! since the cursor taken when the pipeline's last run started) and asks [`decide`]. A burst of writes
//! makes one run: the run starts once the count of pending changes has stopped growing for
//! [`Debounce::quiet`], or [`Debounce::max_wait`] after the changes were first seen, whichever comes first
//! (so a steady stream of writes still makes a run every `max_wait`, not never). A pipeline with a run
//! going waits for it; changes that arrived meanwhile make one more run after it, however many there
//! were, because starting a run moves the cursor past everything before it.
//!
//! The [`Watch`] (when changes were first seen, and when their count last grew) only times the start; it
//! lives in each instance's memory. Which instance starts the run is not decided here: the scheduler moves
//! the stored cursor by compare-and-set, and only the instance that moved it starts.

use chrono::{DateTime, TimeDelta, Utc};

/// How long pending changes wait before they make a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Debounce {
    /// Start once the number of pending changes has not grown for this long.
    pub quiet: TimeDelta,
    /// Start at the latest this long after the changes were first seen, even while writes go on.
    pub max_wait: TimeDelta,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            quiet: TimeDelta::seconds(2),
            max_wait: TimeDelta::seconds(10),
        }
    }
}

/// What this instance has seen of a pipeline's pending changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub first_seen: DateTime<Utc>,
    pub last_grew: DateTime<Utc>,
    /// Profiles changed or deleted since the cursor, at the last look.
    pub count: u64,
}

/// Why a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Profiles changed since the last run started.
    Changes,
    /// The pipeline has no change cursor yet (just created, or just switched to `on_change`), or its
    /// cursor is not one the profile store understands (the store was replaced): what changed since its
    /// last run is unknown, so one run brings it in step.
    CatchUp,
    /// Nothing changed, but the pipeline's `reconcile_every` has passed.
    Reconcile,
}

/// The decision for one pipeline at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub start: Option<Start>,
    /// What to remember until the next look (`None`: nothing pending).
    pub watch: Option<Watch>,
}

/// Decides for one `on_change` pipeline at `now`. `changes`: profiles changed or deleted since the stored
/// cursor, `None` when there is no usable cursor. `busy`: a run of the pipeline is queued or going (on any
/// instance). `reconcile_due`: the pipeline's `reconcile_every` has passed.
pub fn decide(
    enabled: bool,
    busy: bool,
    changes: Option<u64>,
    watch: Option<Watch>,
    reconcile_due: bool,
    now: DateTime<Utc>,
    debounce: Debounce,
) -> Decision {
    let nothing = |watch| Decision { start: None, watch };
    if !enabled {
        // A disabled pipeline never runs; the cursor stays where it was, so changes made meanwhile make
        // a run once it is enabled again.
        return nothing(None);
    }
    let Some(count) = changes else {
        let start = (!busy).then_some(Start::CatchUp);
        return Decision { start, watch: None };
    };
    if count == 0 {
        let start = (reconcile_due && !busy).then_some(Start::Reconcile);
        return Decision { start, watch: None };
    }
    let watch = match watch {
        None => Watch {
            first_seen: now,
            last_grew: now,
            count,
        },
        Some(w) if w.count != count => Watch {
            last_grew: now,
            count,
            ..w
        },
        Some(w) => w,
    };
    if busy {
        return nothing(Some(watch));
    }
    let due =
        now - watch.last_grew >= debounce.quiet || now - watch.first_seen >= debounce.max_wait;
    Decision {
        start: due.then_some(Start::Changes),
        watch: Some(watch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    /// Steps a pipeline through looks at the given seconds with the given pending counts; returns the
    /// seconds at which a run started (the counts reset after a start, as the cursor moves).
    fn replay(looks: &[(i64, u64)], busy_at: &[i64]) -> Vec<i64> {
        let mut watch = None;
        let mut started = Vec::new();
        let mut since_start = 0;
        for &(s, total) in looks {
            let pending = total - since_start;
            let d = decide(
                true,
                busy_at.contains(&s),
                Some(pending),
                watch,
                false,
                t(s),
                Debounce::default(),
            );
            watch = d.watch;
            if d.start.is_some() {
                assert_eq!(d.start, Some(Start::Changes));
                started.push(s);
                since_start = total;
                watch = None;
            }
        }
        started
    }

    #[test]
    fn a_burst_makes_one_run_after_a_quiet_moment() {
        // 50 writes over three seconds, then quiet: one run, two seconds after the count stopped growing.
        let looks = [
            (0, 0),
            (1, 10),
            (2, 30),
            (3, 50),
            (4, 50),
            (5, 50),
            (6, 50),
            (9, 50),
        ];
        assert_eq!(replay(&looks, &[]), vec![5]);
    }

    #[test]
    fn a_steady_stream_still_runs_every_max_wait() {
        let looks: Vec<(i64, u64)> = (0..25).map(|s| (s, s as u64 * 3)).collect();
        assert_eq!(replay(&looks, &[]), vec![11, 22]);
    }

    #[test]
    fn changes_during_a_run_make_one_run_after_it() {
        // A run is going from 0 to 8 while changes arrive: nothing starts until it ends, then one run.
        let looks: Vec<(i64, u64)> = (0..12).map(|s| (s, (s as u64).min(6))).collect();
        assert_eq!(replay(&looks, &[1, 2, 3, 4, 5, 6, 7, 8]), vec![9]);
    }

    #[test]
    fn nothing_changed_starts_nothing_unless_a_reconcile_is_due() {
        let d = decide(true, false, Some(0), None, false, t(0), Debounce::default());
        assert_eq!(
            d,
            Decision {
                start: None,
                watch: None
            }
        );
        let d = decide(true, false, Some(0), None, true, t(0), Debounce::default());
        assert_eq!(d.start, Some(Start::Reconcile));
        let d = decide(true, true, Some(0), None, true, t(0), Debounce::default());
        assert_eq!(d.start, None, "never two runs at once");
    }

    #[test]
    fn without_a_cursor_one_catch_up_run_starts() {
        let d = decide(true, false, None, None, false, t(0), Debounce::default());
        assert_eq!(d.start, Some(Start::CatchUp));
        let d = decide(true, true, None, None, false, t(0), Debounce::default());
        assert_eq!(d.start, None);
    }

    #[test]
    fn disabled_pipelines_never_start_and_forget_what_they_saw() {
        let w = Watch {
            first_seen: t(0),
            last_grew: t(0),
            count: 5,
        };
        for changes in [None, Some(0), Some(5)] {
            let d = decide(
                false,
                false,
                changes,
                Some(w),
                true,
                t(60),
                Debounce::default(),
            );
            assert_eq!(
                d,
                Decision {
                    start: None,
                    watch: None
                }
            );
        }
    }
}
