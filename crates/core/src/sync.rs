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
            Some(ColumnType::Uuid) => uuid::Uuid::parse_str(&self.0)
                .map(Value::Uuid)
                .map_err(|_| {
                    format!(
                        "the recorded key `{}` is not a UUID, as the key column now is",
                        self.0
                    )
                }),
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
}
