//! The sync decision: what a run writes, given the rows it computed and what the pipeline last wrote.
//!
//! A pipeline's *sync state* holds, per profile, the key its row was written under and the hash of the
//! row ([`SyncEntry`]). Deciding what to do with a page of computed rows is pure: pair each row with its
//! profile's entry (both come in profile-id order), say whether the row is unchanged, new or changed,
//! arbitrate keys between profiles, and list the rows whose profiles left. The engine does the I/O
//! around it (read the entries, look up who holds a key, delete, upsert, record); the preview asks the
//! same questions of its sample and gets the same answers.
//!
//! Keys are kept as text in the sync state ([`SyncKey`]): the text of the converted key value, so that
//! `1` in an integer column and `"1"` in a text column are told apart by the column, not the text, and a
//! key read back becomes a value of the key column's type again ([`SyncKey::to_value`]).

use std::fmt;

use crate::table::ColumnType;
use crate::value::Value;

/// A key column's value as the sync state stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncKey(String);

impl SyncKey {
    /// The key of a row's (converted) key value; `None` for null, which no row can be written under.
    ///
    /// The text is the value's plain text (`Value`'s `Display`): the form entries have always been
    /// stored in, so entries written by earlier versions still match.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => None,
            // Most keys are text: copied as they are, without going through the formatter.
            Value::String(s) => Some(Self(s.to_string())),
            other => Some(Self(other.to_string())),
        }
    }

    /// A key as it was stored.
    pub fn from_stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The value that matches this key in a column of type `ty` (`None`: a type Sluice cannot read,
    /// taken as text). Fails when the stored text is not a value of that type — the column's type
    /// changed since the key was written, and the row can no longer be found by it.
    pub fn to_value(&self, ty: Option<&ColumnType>) -> Result<Value, String> {
        match ty {
            Some(ColumnType::Int { .. }) => self.0.parse().map(Value::Int).map_err(|_| {
                format!(
                    "the recorded key `{}` is not an integer, as the key column now is",
                    self.0
                )
            }),
            Some(ColumnType::Uuid) => {
                uuid::Uuid::parse_str(&self.0)
                    .map(Value::Uuid)
                    .map_err(|_| {
                        format!(
                            "the recorded key `{}` is not a UUID, as the key column now is",
                            self.0
                        )
                    })
            }
            _ => Ok(Value::String(self.0.as_str().into())),
        }
    }
}

impl fmt::Display for SyncKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a pipeline last confirmed writing for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncEntry {
    pub profile_id: String,
    /// The key the profile's row was written under.
    pub key: SyncKey,
    /// The hash of the row as written (see [`crate::hash::hash_row`]).
    pub hash: u128,
    /// The profile left the audience (or was deleted) while the pipeline kept rows of leavers
    /// (`on_leave: keep`): its row is still in the table under `key`, but the key is free for another
    /// profile to take. Remembered so that switching to `on_leave: delete` removes the row, and so that
    /// the profile coming back counts as an update of its row.
    pub left: bool,
}

impl SyncEntry {
    /// The entry of a row written now.
    pub fn written(profile_id: impl Into<String>, key: SyncKey, hash: u128) -> Self {
        Self {
            profile_id: profile_id.into(),
            key,
            hash,
            left: false,
        }
    }
}

/// What the transformation made of one profile of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A row: its key (`None` when the key value is null) and its hash.
    Row { key: Option<SyncKey>, hash: u128 },
    /// Not in the audience: filtered out, or skipped by the transformation (a script returning null).
    Skipped,
    /// The transformation failed for this profile. Nothing is known of its row: its entry stays.
    Failed,
}

/// What a run does with one profile of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The row is as last written: nothing to do.
    Unchanged,
    /// Write the row under `key`.
    Write {
        key: SyncKey,
        hash: u128,
        /// Whether a row with this key is known to exist (this profile's, kept after it left, or one
        /// whose key this profile takes over): an update rather than an insert.
        update: bool,
        /// The key this profile's row had until now, when it changed: nobody's row any more.
        old_key: Option<SyncKey>,
    },
    /// Not in the audience (see [`Outcome::Skipped`]); its row, if any, is among the leavers.
    Skipped,
    /// The transformation failed (see [`Outcome::Failed`]).
    TransformFailed,
    /// The key value is null: the row cannot be written.
    NullKey,
    /// Another profile with a lower `_id` holds the key, in this page or in the sync state.
    KeyTaken { key: SyncKey, holder: String },
}

impl Verdict {
    /// The message a failed row is reported with, for the verdicts that fail the row.
    pub fn failure(&self, key_column: &str) -> Option<String> {
        match self {
            Verdict::NullKey => Some(format!("the key column `{key_column}` is null")),
            Verdict::KeyTaken { .. } => Some(format!(
                "duplicate key: a profile with a lower _id produces the same value of key column `{key_column}`"
            )),
            _ => None,
        }
    }
}

/// Why a page cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    #[error("internal error: profiles came out of order ({0} after {1})")]
    OutOfOrder(String, String),
}

/// What to change in the sync state once the destination confirmed a page's writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// Applied after `deletes`, in this order (see the store's `sync_apply`): leavers marked as kept
    /// first, then the rows written, so that a written row takes over a leaver's key.
    pub upserts: Vec<SyncEntry>,
    /// Profile ids whose entries go: their rows were deleted.
    pub deletes: Vec<String>,
    /// Rows written that were new, and that replaced a known row (see [`Verdict::Write`]'s `update`).
    pub inserted: u64,
    pub updated: u64,
}

/// The sync decision for one page: a verdict per profile (in page order) and the entries whose profiles
/// left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    ids: Vec<&'a str>,
    pub verdicts: Vec<Verdict>,
    /// Entries of the page's id range with no row in it: their profiles left the audience or were
    /// deleted. Entries already marked `left` are among them.
    pub leavers: Vec<SyncEntry>,
    key_is_profile_id: bool,
}

/// Pairs a page of profiles (ordered by id, strictly) with the sync entries of the same id range (any
/// order) and decides each profile's verdict, before anything is known of keys held outside the page
/// (see [`Decision::keys_to_check`] and [`Decision::arbitrate`]).
///
/// Within a page a key belongs to the profile with the lowest `_id`. `key_is_profile_id` says that keys
/// are the profile ids themselves, which cannot repeat, so nothing is checked for them.
pub fn decide<'a>(
    page: impl IntoIterator<Item = (&'a str, Outcome)>,
    mut entries: Vec<SyncEntry>,
    key_is_profile_id: bool,
) -> Result<Decision<'a>, DecideError> {
    if !entries.is_sorted_by(|a, b| a.profile_id <= b.profile_id) {
        entries.sort_unstable_by(|a, b| a.profile_id.cmp(&b.profile_id));
    }
    let page = page.into_iter();
    let mut ids: Vec<&'a str> = Vec::with_capacity(page.size_hint().0);
    let mut verdicts = Vec::with_capacity(page.size_hint().0);
    let mut leavers = Vec::new();
    let mut pending = entries.into_iter().peekable();
    let mut held: std::collections::HashMap<SyncKey, &'a str> = std::collections::HashMap::new();
    for (id, outcome) in page {
        if let Some(prev) = ids.last() {
            if *prev >= id {
                return Err(DecideError::OutOfOrder(id.to_string(), prev.to_string()));
            }
        }
        ids.push(id);
        let mut entry = None;
        while let Some(e) = pending.peek() {
            match e.profile_id.as_str().cmp(id) {
                std::cmp::Ordering::Less => leavers.push(pending.next().expect("peeked")),
                std::cmp::Ordering::Equal => {
                    entry = pending.next();
                    break;
                }
                std::cmp::Ordering::Greater => break,
            }
        }
        let verdict = match outcome {
            Outcome::Skipped => {
                leavers.extend(entry);
                Verdict::Skipped
            }
            Outcome::Failed => Verdict::TransformFailed,
            Outcome::Row { key: None, .. } => Verdict::NullKey,
            Outcome::Row {
                key: Some(key),
                hash,
            } => {
                let taken = if key_is_profile_id {
                    None
                } else {
                    match held.entry(key.clone()) {
                        std::collections::hash_map::Entry::Occupied(o) => Some(*o.get()),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(id);
                            None
                        }
                    }
                };
                match (taken, entry) {
                    (Some(holder), _) => Verdict::KeyTaken {
                        key,
                        holder: holder.to_string(),
                    },
                    (None, Some(e)) if !e.left && e.key == key && e.hash == hash => {
                        Verdict::Unchanged
                    }
                    (None, entry) => {
                        let same_key = entry.as_ref().is_some_and(|e| e.key == key);
                        Verdict::Write {
                            update: same_key,
                            old_key: entry.filter(|e| e.key != key).map(|e| e.key),
                            key,
                            hash,
                        }
                    }
                }
            }
        };
        verdicts.push(verdict);
    }
    leavers.extend(pending);
    Ok(Decision {
        ids,
        verdicts,
        leavers,
        key_is_profile_id,
    })
}

impl<'a> Decision<'a> {
    /// The profile id of page position `i`.
    pub fn id(&self, i: usize) -> &'a str {
        self.ids[i]
    }

    /// Page positions of the rows to write, in page order.
    pub fn writes(&self) -> impl Iterator<Item = usize> + '_ {
        self.verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| matches!(v, Verdict::Write { .. }))
            .map(|(i, _)| i)
    }

    /// Keys of the rows to write whose holders outside this decision must be known before writing:
    /// none when keys are profile ids.
    pub fn keys_to_check(&self) -> Vec<SyncKey> {
        if self.key_is_profile_id {
            return Vec::new();
        }
        self.verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Write { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    /// Applies who holds the keys of [`Decision::keys_to_check`] in the sync state (`owners`: their
    /// entries). A key held by a profile with a lower `_id` stays with it, and the row that wanted it
    /// fails — unless that profile gives the key up in this page (it left, or its row moved to another
    /// key) or its row was kept after it left. A key held by a higher `_id` passes to this row, an update
    /// of the row under that key.
    pub fn arbitrate(&mut self, owners: &[SyncEntry]) {
        if owners.is_empty() {
            return;
        }
        let releasing: std::collections::HashSet<&str> = self
            .leavers
            .iter()
            .map(|e| e.profile_id.as_str())
            .chain(self.verdicts.iter().zip(&self.ids).filter_map(|(v, id)| {
                matches!(
                    v,
                    Verdict::Write {
                        old_key: Some(_),
                        ..
                    }
                )
                .then_some(*id)
            }))
            .collect();
        let by_key: std::collections::HashMap<&SyncKey, &SyncEntry> =
            owners.iter().map(|e| (&e.key, e)).collect();
        for (v, id) in self.verdicts.iter_mut().zip(&self.ids) {
            let Verdict::Write { key, update, .. } = v else {
                continue;
            };
            let Some(owner) = by_key.get(key) else {
                continue;
            };
            if owner.profile_id == *id {
                continue;
            }
            let blocks = !owner.left
                && owner.profile_id.as_str() < *id
                && !releasing.contains(owner.profile_id.as_str());
            if blocks {
                *v = Verdict::KeyTaken {
                    key: key.clone(),
                    holder: owner.profile_id.clone(),
                };
            } else {
                // The row under this key exists (its holder's): writing it is an update.
                *update = true;
            }
        }
    }

    /// Keys of the rows to delete before writing, under `on_leave: delete`: the rows of leavers and the
    /// rows left under a key that a profile gave up, except keys that a row of this page takes over
    /// (writing it replaces the row). Nothing under `keep`.
    pub fn deletions(&self, on_leave: crate::pipeline::OnLeave) -> Vec<SyncKey> {
        if on_leave != crate::pipeline::OnLeave::Delete {
            return Vec::new();
        }
        let claimed = self.claimed();
        let mut seen = std::collections::HashSet::new();
        self.leavers
            .iter()
            .map(|e| &e.key)
            .chain(self.verdicts.iter().filter_map(|v| match v {
                Verdict::Write {
                    old_key: Some(k), ..
                } => Some(k),
                _ => None,
            }))
            .filter(|k| !claimed.contains(k) && seen.insert(*k))
            .cloned()
            .collect()
    }

    /// Keys that rows of this page write.
    fn claimed(&self) -> std::collections::HashSet<&SyncKey> {
        self.verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Write { key, .. } => Some(key),
                _ => None,
            })
            .collect()
    }

    /// What the sync state records once the writes (and, under `delete`, the deletions of
    /// [`Decision::deletions`]) are confirmed; `rejected` holds the page positions of rows the
    /// destination refused, which record nothing.
    ///
    /// A leaver's entry goes when its row was deleted. Otherwise it is kept and marked `left`: under
    /// `keep`, so that the row is remembered; under `delete` when a row of this page takes its key over,
    /// so that the row is still known if that write is refused (an accepted write takes the key, and the
    /// entry with it).
    pub fn into_records(
        self,
        on_leave: crate::pipeline::OnLeave,
        rejected: &std::collections::HashSet<usize>,
    ) -> Records {
        let mut out = Records::default();
        let delete = on_leave == crate::pipeline::OnLeave::Delete;
        let claimed: std::collections::HashSet<&SyncKey> = if delete {
            self.claimed()
        } else {
            Default::default()
        };
        for e in &self.leavers {
            if delete && !claimed.contains(&e.key) {
                out.deletes.push(e.profile_id.clone());
            } else if !e.left {
                out.upserts.push(SyncEntry {
                    left: true,
                    ..e.clone()
                });
            }
        }
        drop(claimed);
        for (i, v) in self.verdicts.into_iter().enumerate() {
            let Verdict::Write {
                key, hash, update, ..
            } = v
            else {
                continue;
            };
            if rejected.contains(&i) {
                continue;
            }
            if update {
                out.updated += 1;
            } else {
                out.inserted += 1;
            }
            out.upserts.push(SyncEntry::written(self.ids[i], key, hash));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_to_text_and_back_by_the_column_type() {
        let int = ColumnType::Int {
            bits: 64,
            unsigned: false,
        };
        let k = SyncKey::from_value(&Value::Int(-42)).unwrap();
        assert_eq!(k.as_str(), "-42");
        assert_eq!(k.to_value(Some(&int)).unwrap(), Value::Int(-42));
        // The same text in a text column is a string.
        let text = ColumnType::Text { max_len: None };
        assert_eq!(
            k.to_value(Some(&text)).unwrap(),
            Value::String("-42".into())
        );
        let u = uuid::Uuid::from_u128(0x1234);
        let k = SyncKey::from_value(&Value::Uuid(u)).unwrap();
        assert_eq!(k.as_str(), u.hyphenated().to_string());
        assert_eq!(k.to_value(Some(&ColumnType::Uuid)).unwrap(), Value::Uuid(u));
        assert_eq!(SyncKey::from_value(&Value::Null), None);
        let s = SyncKey::from_value(&Value::String("a@b".into())).unwrap();
        assert_eq!(s, SyncKey::from_stored("a@b"));
        assert_eq!(s.to_value(None).unwrap(), Value::String("a@b".into()));
    }

    #[test]
    fn a_key_that_no_longer_fits_its_column_is_an_error_not_a_guess() {
        let k = SyncKey::from_stored("abc");
        let e = k
            .to_value(Some(&ColumnType::Int {
                bits: 32,
                unsigned: false,
            }))
            .unwrap_err();
        assert!(e.contains("`abc`"), "{e}");
        assert!(k.to_value(Some(&ColumnType::Uuid)).is_err());
    }

    use crate::pipeline::OnLeave;
    use std::collections::HashSet;

    fn key(k: &str) -> SyncKey {
        SyncKey::from_stored(k)
    }
    fn row(k: &str, hash: u128) -> Outcome {
        Outcome::Row {
            key: Some(key(k)),
            hash,
        }
    }
    fn entry(id: &str, k: &str, hash: u128) -> SyncEntry {
        SyncEntry::written(id, key(k), hash)
    }
    fn left(id: &str, k: &str, hash: u128) -> SyncEntry {
        SyncEntry {
            left: true,
            ..entry(id, k, hash)
        }
    }
    fn write(k: &str, hash: u128, update: bool, old: Option<&str>) -> Verdict {
        Verdict::Write {
            key: key(k),
            hash,
            update,
            old_key: old.map(key),
        }
    }
    fn none() -> HashSet<usize> {
        HashSet::new()
    }

    #[test]
    fn rows_pair_with_their_entries_and_the_rest_left() {
        let page = vec![
            ("p1", row("k1", 1)),     // unchanged
            ("p3", row("k3", 30)),    // changed
            ("p5", row("k5", 5)),     // new
            ("p6", Outcome::Skipped), // left the audience, had a row
            ("p7", Outcome::Failed),  // its entry stays
            ("p8", Outcome::Row { key: None, hash: 8 }),
        ];
        // Entries in any order; p2 and p9 have no profile in the page.
        let entries = vec![
            entry("p9", "k9", 9),
            entry("p3", "k3", 3),
            entry("p1", "k1", 1),
            entry("p2", "k2", 2),
            entry("p6", "k6", 6),
            entry("p7", "k7", 7),
        ];
        let d = decide(page, entries, false).unwrap();
        assert_eq!(
            d.verdicts,
            vec![
                Verdict::Unchanged,
                write("k3", 30, true, None),
                write("k5", 5, false, None),
                Verdict::Skipped,
                Verdict::TransformFailed,
                Verdict::NullKey,
            ]
        );
        let leavers: Vec<&str> = d.leavers.iter().map(|e| e.profile_id.as_str()).collect();
        assert_eq!(leavers, ["p2", "p6", "p9"]);
        assert_eq!(d.writes().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(d.keys_to_check(), [key("k3"), key("k5")]);
        assert!(d.verdicts[5]
            .failure("id")
            .unwrap()
            .contains("`id` is null"));
    }

    #[test]
    fn a_page_out_of_order_is_refused() {
        let page = vec![("b", row("1", 1)), ("a", row("2", 2))];
        assert!(matches!(
            decide(page, vec![], false),
            Err(DecideError::OutOfOrder(..))
        ));
        let twice = vec![("a", row("1", 1)), ("a", row("2", 2))];
        assert!(decide(twice, vec![], true).is_err());
    }

    #[test]
    fn within_a_page_the_lowest_id_keeps_a_key() {
        let page = vec![("a", row("k", 1)), ("b", row("k", 2)), ("c", row("j", 3))];
        let d = decide(page, vec![], false).unwrap();
        assert_eq!(
            d.verdicts[1],
            Verdict::KeyTaken {
                key: key("k"),
                holder: "a".into()
            }
        );
        assert!(d.verdicts[1]
            .failure("email")
            .unwrap()
            .contains("duplicate key"));
        // Keys that are profile ids cannot repeat and are not looked up.
        let page = vec![("a", row("a", 1)), ("b", row("b", 2))];
        let d = decide(page, vec![], true).unwrap();
        assert!(d.keys_to_check().is_empty());
        assert_eq!(d.writes().count(), 2);
    }

    #[test]
    fn keys_held_in_the_sync_state_go_to_the_lower_id_unless_given_up() {
        let page = vec![
            ("b", row("held-by-a", 1)),   // a < b holds it: fails
            ("c", row("held-by-z", 2)),   // z > c: c takes it, an update of z's row
            ("d", row("kept-by-e", 3)),   // e left earlier, its row kept: free
            ("f", row("moved-by-a5", 4)), // a5 moves its row away in this page
            ("g", row("left-by-a0", 5)),  // a0 leaves in this page
            ("h", row("mine", 6)),        // h holds its own key
        ];
        let entries = vec![entry("a0", "left-by-a0", 9), entry("h", "mine", 1)];
        let mut page_with_mover = page.clone();
        page_with_mover.insert(0, ("a5", row("elsewhere", 7)));
        let mut entries = entries;
        entries.push(entry("a5", "moved-by-a5", 7));
        let mut d = decide(page_with_mover, entries, false).unwrap();
        let owners = vec![
            entry("a", "held-by-a", 1),
            entry("z", "held-by-z", 1),
            left("e", "kept-by-e", 1),
            entry("a5", "moved-by-a5", 7),
            entry("a0", "left-by-a0", 9),
            entry("h", "mine", 1),
        ];
        d.arbitrate(&owners);
        assert_eq!(
            d.verdicts[0],
            write("elsewhere", 7, false, Some("moved-by-a5"))
        );
        assert_eq!(
            d.verdicts[1],
            Verdict::KeyTaken {
                key: key("held-by-a"),
                holder: "a".into()
            }
        );
        assert_eq!(d.verdicts[2], write("held-by-z", 2, true, None));
        assert_eq!(d.verdicts[3], write("kept-by-e", 3, true, None));
        assert_eq!(d.verdicts[4], write("moved-by-a5", 4, true, None));
        assert_eq!(d.verdicts[5], write("left-by-a0", 5, true, None));
        assert_eq!(d.verdicts[6], write("mine", 6, true, None));
    }

    #[test]
    fn leavers_are_deleted_or_kept_by_the_rule() {
        let page = vec![
            ("a", row("ka2", 1)), // moved from ka
            ("b", row("kc", 2)),  // takes the key of c, who leaves
            ("d", Outcome::Skipped),
        ];
        let entries = vec![
            entry("a", "ka", 1),
            entry("c", "kc", 3),
            entry("d", "kd", 4),
            left("e", "ke", 5), // left while rows were kept
        ];
        let d = decide(page, entries, false).unwrap();

        // keep: nothing is deleted; leavers are remembered, once.
        assert!(d.deletions(OnLeave::Keep).is_empty());
        let r = d.clone().into_records(OnLeave::Keep, &none());
        assert!(r.deletes.is_empty());
        assert_eq!(
            r.upserts,
            vec![
                left("c", "kc", 3),
                left("d", "kd", 4),
                entry("a", "ka2", 1),
                entry("b", "kc", 2),
            ]
        );
        assert_eq!((r.inserted, r.updated), (2, 0));

        // delete: the rows of leavers (kept ones too) and the row under a given-up key go, except a key
        // that a row of the page takes over.
        assert_eq!(
            d.deletions(OnLeave::Delete),
            [key("kd"), key("ke"), key("ka")]
        );
        let r = d.clone().into_records(OnLeave::Delete, &none());
        assert_eq!(r.deletes, ["d", "e"]);
        // c's row is taken over by b: remembered as left in case b's write is refused.
        assert_eq!(
            r.upserts,
            vec![
                left("c", "kc", 3),
                entry("a", "ka2", 1),
                entry("b", "kc", 2)
            ]
        );
    }

    #[test]
    fn refused_rows_record_nothing() {
        let page = vec![("a", row("1", 1)), ("b", row("2", 2))];
        let d = decide(page, vec![entry("b", "2", 1)], false).unwrap();
        let r = d.clone().into_records(OnLeave::Keep, &HashSet::from([0]));
        assert_eq!(r.upserts, vec![entry("b", "2", 2)]);
        assert_eq!((r.inserted, r.updated), (0, 1));
    }

    #[test]
    fn a_profile_that_comes_back_updates_its_kept_row() {
        // Same row as when it left: still written (an update), since its entry says it left.
        let d = decide(vec![("a", row("k", 7))], vec![left("a", "k", 7)], false).unwrap();
        assert_eq!(d.verdicts, vec![write("k", 7, true, None)]);
        let r = d.clone().into_records(OnLeave::Keep, &none());
        assert_eq!(r.upserts, vec![entry("a", "k", 7)]);
        assert_eq!((r.inserted, r.updated), (0, 1));
        // Back under another key: the kept row is given up (deleted under `delete`).
        let d = decide(vec![("a", row("k2", 7))], vec![left("a", "k", 7)], false).unwrap();
        assert_eq!(d.verdicts, vec![write("k2", 7, false, Some("k"))]);
        assert_eq!(d.deletions(OnLeave::Delete), [key("k")]);
    }

    #[test]
    fn a_page_of_leavers_alone() {
        // A read of changes hands deleted profiles' entries with no page.
        let entries = vec![entry("x", "kx", 1), left("y", "ky", 2)];
        let d = decide(Vec::<(&str, Outcome)>::new(), entries, false).unwrap();
        assert_eq!(d.leavers.len(), 2);
        assert_eq!(d.deletions(OnLeave::Delete), [key("kx"), key("ky")]);
        let r = d.clone().into_records(OnLeave::Keep, &none());
        assert_eq!(r.upserts, vec![left("x", "kx", 1)]);
    }
}
