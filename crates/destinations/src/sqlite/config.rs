//! SQLite destination settings: the path of the database file.
//!
//! A relative path is resolved from Sluice's working directory. The file and its missing parent folders
//! are created on first use (not at validation, which stays free of I/O): an embedded destination is for
//! trying Sluice out, where "just give a path" is what people expect.

use std::path::PathBuf;

use serde_json::Value as Json;
use sluice_core::FieldErrors;

use crate::settings::{Field, SettingsReader};

/// The settings of a SQLite destination, stated once (see [`crate::settings`]).
pub(crate) const FIELDS: &[Field] = &[Field::text(
    "path",
    "Database file",
    "the database file path",
    "Path of the SQLite file on the machine running Sluice. A relative path is resolved from Sluice's \
     working directory; the file and its folder are created when missing.",
)
.required()];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteSettings {
    pub path: PathBuf,
}

impl SqliteSettings {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Reads and validates `{"path": "…"}`, reporting every problem under its field name.
    pub fn from_json(json: &Json) -> Result<Self, FieldErrors> {
        let mut r = SettingsReader::new(json, FIELDS);
        let path = r.string("path");
        let mut errors = r.finish();
        if let Some(p) = &path {
            if p.contains('\0') {
                errors.add("path", "the database file path contains a NUL character");
            } else if p.ends_with('/') || p.ends_with(std::path::MAIN_SEPARATOR) {
                errors.add(
                    "path",
                    "the database file path names a folder: add a file name",
                );
            } else if p == ":memory:" {
                errors.add(
                    "path",
                    "an in-memory database would vanish after each run: give a file path",
                );
            }
        }
        match path {
            Some(p) if errors.is_empty() => Ok(Self {
                path: PathBuf::from(p),
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation() {
        assert_eq!(
            SqliteSettings::from_json(&json!({"path": "data/dest.sqlite"}))
                .unwrap()
                .path,
            PathBuf::from("data/dest.sqlite")
        );
        let e = SqliteSettings::from_json(&json!({"path": "", "host": "x"})).unwrap_err();
        assert!(e.get("path").is_some() && e.get("host").is_some(), "{e}");
        assert!(SqliteSettings::from_json(&json!({"path": "dir/"})).is_err());
        assert!(SqliteSettings::from_json(&json!({"path": ":memory:"})).is_err());
    }
}
