//! Drift: what to do when a destination table no longer holds what the sync state says was written.
//!
//! Three checks, cheapest first, all decided here from facts the engine gathers:
//! - the table's identity ([`identity_changed`]): a table dropped and created again holds none of the
//!   rows, so the sync state is reset and everything is written again;
//! - its row count ([`count_check`]): fewer rows than Sluice keeps there means rows were deleted or the
//!   table truncated, and the run reconciles before writing. Where the database offers a cheap change
//!   marker ([`TableState`]), the count is skipped while the marker is the one recorded after the last
//!   count, so that a run with nothing to do stays cheap on a large table;
//! - a reconcile ([`compare`]): the rows of a page of sync entries read back and hashed as they were
//!   when written; an entry whose row is missing or hashes differently is marked [`STALE`], so that the
//!   run's ordinary decision writes its row again. Entries are never dropped for a row that is merely
//!   changed (the entry still holds the key), and rows with no entry are not Sluice's and are left alone.

use std::collections::HashMap;

use crate::hash::RowHash;
use crate::sync::{SyncEntry, SyncKey};

/// The hash of an entry whose row must be written again. Row hashes are 128-bit digests: a row hashing
/// to exactly this is out of reach, and if one did it would only be written once more.
pub const STALE: RowHash = 0;

/// Whether the table is not the one the sync state describes: both identities known and different. An
/// unknown recorded identity (before the first run, or from a version that did not record it) is not a
/// change: the row count still checks that table.
pub fn identity_changed(recorded: Option<&str>, current: Option<&str>) -> bool {
    matches!((recorded, current), (Some(r), Some(c)) if r != c)
}

/// What the sync state records about its table: the identity, and the change marker that held when the
/// row count last agreed with the sync state (if the database has one). Kept as one text, the identity
/// first, so a state recorded before markers existed reads as an identity alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableState {
    pub identity: Option<String>,
    pub marker: Option<String>,
}

/// Separates the identity from the marker in the stored text; neither contains it (both are written by
/// the destinations from numbers and names of the database's catalogue).
const MARKER_SEPARATOR: char = '\u{1f}';

impl TableState {
    pub fn parse(stored: Option<&str>) -> TableState {
        match stored {
            None => TableState::default(),
            Some(s) => match s.split_once(MARKER_SEPARATOR) {
                Some((identity, marker)) => TableState {
                    identity: Some(identity.to_string()),
                    marker: (!marker.is_empty()).then(|| marker.to_string()),
                },
                None => TableState {
                    identity: Some(s.to_string()),
                    marker: None,
                },
            },
        }
    }

    /// The stored text; `None` when the identity is unknown (nothing worth recording).
    pub fn stored(&self) -> Option<String> {
        let identity = self.identity.as_deref()?;
        Some(match &self.marker {
            Some(m) => format!("{identity}{MARKER_SEPARATOR}{m}"),
            None => identity.to_string(),
        })
    }

    /// Whether the row count may be skipped: the database gave a marker and it is the one recorded when
    /// the count last agreed.
    pub fn count_unneeded(&self, current_marker: Option<&str>) -> bool {
        matches!((self.marker.as_deref(), current_marker), (Some(r), Some(c)) if r == c)
    }
}

/// What the row count at the start of a run says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountCheck {
    /// At least as many rows as Sluice keeps there: nothing seen (rows added by others are theirs).
    Fine,
    /// Fewer rows than Sluice keeps: some were deleted by someone else.
    Missing { table: u64, believed: u64 },
}

/// Compares the table's row count with the rows Sluice believes it keeps there: entries in step with
/// their profiles, and the rows of leavers it keeps (`left`). More rows than that is not drift: other
/// writers' rows are not Sluice's, and a table shared with them would otherwise reconcile on every run.
pub fn count_check(table: u64, live: u64, left: u64) -> CountCheck {
    let believed = live + left;
    if table < believed {
        CountCheck::Missing { table, believed }
    } else {
        CountCheck::Fine
    }
}

/// What a reconcile found for a page of sync entries, and how the sync state changes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Repair {
    /// Entries to record with the [`STALE`] hash: their rows are written again by the run.
    pub stale: Vec<SyncEntry>,
    /// Profile ids of left entries whose kept row is gone: nothing of Sluice's is there any more.
    pub forget: Vec<String>,
    /// Rows missing from the table, of profiles in step (written again) or left (forgotten).
    pub missing: u64,
    /// Rows whose values differ from what was written.
    pub changed: u64,
}

/// Compares a page of sync entries with the hashes of the rows read back under their keys (`found`: the
/// hash of each row present, by key, computed as when it was written).
pub fn compare(entries: Vec<SyncEntry>, found: &HashMap<SyncKey, RowHash>) -> Repair {
    let mut repair = Repair::default();
    for entry in entries {
        match found.get(&entry.key) {
            None => {
                repair.missing += 1;
                if entry.left {
                    repair.forget.push(entry.profile_id);
                } else {
                    repair.stale.push(SyncEntry {
                        hash: STALE,
                        ..entry
                    });
                }
            }
            // A kept row of a leaver is no longer kept in step with a profile: it is left as it is.
            Some(_) if entry.left => {}
            Some(hash) if *hash != entry.hash => {
                repair.changed += 1;
                repair.stale.push(SyncEntry {
                    hash: STALE,
                    ..entry
                });
            }
            Some(_) => {}
        }
    }
    repair
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_state_reads_back_what_it_stored_and_an_identity_alone() {
        let full = TableState {
            identity: Some("oid:42".into()),
            marker: Some("16384:7".into()),
        };
        assert_eq!(TableState::parse(full.stored().as_deref()), full);
        let bare = TableState::parse(Some("oid:42"));
        assert_eq!(bare.identity.as_deref(), Some("oid:42"));
        assert_eq!(bare.marker, None);
        assert_eq!(bare.stored().as_deref(), Some("oid:42"));
        assert_eq!(TableState::parse(None), TableState::default());
        assert_eq!(TableState::default().stored(), None);
    }

    #[test]
    fn the_count_is_skipped_only_for_the_recorded_marker() {
        let state = TableState {
            identity: Some("oid:42".into()),
            marker: Some("16384:7".into()),
        };
        assert!(state.count_unneeded(Some("16384:7")));
        assert!(!state.count_unneeded(Some("16384:8")), "a deletion since");
        assert!(!state.count_unneeded(Some("16390:7")), "truncated since");
        assert!(!state.count_unneeded(None), "no marker now");
        assert!(!TableState::parse(Some("oid:42")).count_unneeded(Some("16384:7")));
    }

    fn entry(id: &str, key: &str, hash: RowHash, left: bool) -> SyncEntry {
        SyncEntry {
            profile_id: id.into(),
            key: SyncKey::from_stored(key),
            hash,
            left,
        }
    }

    #[test]
    fn identities_change_only_when_both_are_known() {
        assert!(!identity_changed(None, Some("oid:1")));
        assert!(!identity_changed(Some("oid:1"), None));
        assert!(!identity_changed(Some("oid:1"), Some("oid:1")));
        assert!(identity_changed(Some("oid:1"), Some("oid:2")));
    }

    #[test]
    fn fewer_rows_than_believed_is_drift_and_more_is_not() {
        assert_eq!(count_check(10, 10, 0), CountCheck::Fine);
        assert_eq!(count_check(15, 10, 2), CountCheck::Fine);
        assert_eq!(
            count_check(11, 10, 2),
            CountCheck::Missing {
                table: 11,
                believed: 12
            }
        );
        assert_eq!(
            count_check(0, 3, 0),
            CountCheck::Missing {
                table: 0,
                believed: 3
            }
        );
    }

    #[test]
    fn missing_and_changed_rows_are_marked_stale_and_the_rest_kept() {
        let entries = vec![
            entry("a", "ka", 1, false),
            entry("b", "kb", 2, false),
            entry("c", "kc", 3, false),
            entry("d", "kd", 4, true),
            entry("e", "ke", 5, true),
        ];
        let found: HashMap<SyncKey, RowHash> = [
            ("ka", 1),
            ("kb", 99),
            ("ke", 77),
            // A row that is not Sluice's: no entry holds its key.
            ("other", 6),
        ]
        .into_iter()
        .map(|(k, h)| (SyncKey::from_stored(k), h))
        .collect();
        let repair = compare(entries, &found);
        assert_eq!(
            repair.stale,
            vec![
                entry("b", "kb", STALE, false),
                entry("c", "kc", STALE, false)
            ]
        );
        assert_eq!(repair.forget, vec!["d".to_string()]);
        assert_eq!((repair.missing, repair.changed), (2, 1));
    }
}
