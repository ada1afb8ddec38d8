//! SQLite destination settings: the path of the database file.
//!
//! The file and its missing parent folders are created on first use: an embedded destination is for
//! trying Sluice out, where "just give a path" is what people expect.
//!
//! A server confines these files to one folder ([`confine_to`]; `sluice serve` gives the data
//! directory's `destinations/` unless told otherwise), because a path is written by whoever holds an API
//! token and Sluice writes tables into it: pointed at `metadata.db`, a destination overwrote Sluice's own
//! store. Under a folder, a relative path is resolved inside it; a path that leaves it (absolute
//! elsewhere, `..`, or a symbolic link leading out) and Sluice's own file names are refused, naming the
//! field. The check runs when the settings are read and again when the file is opened, so a link made in
//! between does not lead out either. Without a folder (tools and tests), a relative path is resolved from
//! the working directory.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value as Json;
use sluice_core::FieldErrors;

use crate::settings::{Field, SettingsReader};

/// The settings of a SQLite destination, stated once (see [`crate::settings`]).
pub(crate) const FIELDS: &[Field] = &[Field::text(
    "path",
    "Database file",
    "the database file path",
    "Path of the SQLite file on the machine running Sluice, inside the server's folder for SQLite files \
     (by default the data directory's destinations/): a relative path is resolved inside it, and a path \
     leading out of it is refused. The file and its sub-folders are created when missing.",
)
.required()];

/// The folder SQLite destination files must live under, for this process.
static FOLDER: OnceLock<PathBuf> = OnceLock::new();

/// Confines every SQLite destination of this process to `dir` (created when missing). Set once, at start;
/// a second call with another folder is refused.
pub fn confine_to(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    let set = FOLDER.get_or_init(|| dir.clone());
    if *set != dir {
        return Err(std::io::Error::other(format!(
            "SQLite destinations are already confined to {}",
            set.display()
        )));
    }
    Ok(())
}

/// The folder SQLite destinations are confined to, if any.
pub fn folder() -> Option<&'static Path> {
    FOLDER.get().map(PathBuf::as_path)
}

/// Files of Sluice's own data directory, which no destination may be (nor their journals).
pub const OWN_FILES: &[&str] = &[
    "metadata.db",
    "profiles.db",
    "secret.key",
    "admin.token",
    "instance.lock",
    "instance.id",
];

/// Where `given` leads under `dir` (an existing, canonical folder): the path to open, or why it is refused.
pub fn confine(dir: &Path, given: &Path) -> Result<PathBuf, String> {
    if let Some(name) = given.file_name().and_then(|n| n.to_str()) {
        let base = ["-wal", "-shm", "-journal"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        if OWN_FILES.contains(&base) {
            return Err(format!(
                "`{name}` is the name of one of Sluice's own files; give the database file another name"
            ));
        }
    }
    let outside = || {
        format!(
            "the database file must be inside the destinations folder {}: give a path relative to it, \
             without `..` leading out",
            dir.display()
        )
    };
    // `..` is resolved by the names, before any link is followed; what exists is then resolved by the
    // file system, links included, and must still be inside.
    let joined = dir.join(given);
    let mut path = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                if !path.pop() {
                    return Err(outside());
                }
            }
            Component::CurDir => {}
            other => path.push(other),
        }
    }
    if !path.starts_with(dir) || path == dir {
        return Err(outside());
    }
    let mut existing = path.as_path();
    let mut missing = Vec::new();
    while std::fs::symlink_metadata(existing).is_err() {
        missing.push(existing.file_name().ok_or_else(outside)?);
        existing = existing.parent().ok_or_else(outside)?;
    }
    let real = existing.canonicalize().map_err(|_| {
        format!(
            "{} is a symbolic link to nothing; give another path",
            existing.display()
        )
    })?;
    let real = missing.iter().rev().fold(real, |p, c| p.join(c));
    if !real.starts_with(dir) {
        return Err(format!(
            "the path leads out of the destinations folder {} through a symbolic link",
            dir.display()
        ));
    }
    if real.is_dir() {
        return Err("the database file path names a folder: add a file name".into());
    }
    Ok(real)
}

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
        let mut resolved = path.as_deref().map(PathBuf::from);
        if let (Some(dir), Some(p), true) = (folder(), &resolved, errors.is_empty()) {
            match confine(dir, p) {
                Ok(real) => resolved = Some(real),
                Err(message) => errors.add("path", message),
            }
        }
        match resolved {
            Some(path) if errors.is_empty() => Ok(Self { path }),
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

    #[test]
    fn paths_stay_inside_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let dir = root.join("destinations");
        std::fs::create_dir(&dir).unwrap();
        // Relative paths, with sub-folders and harmless `..`, resolve inside.
        assert_eq!(
            confine(&dir, Path::new("demo.db")).unwrap(),
            dir.join("demo.db")
        );
        assert_eq!(
            confine(&dir, Path::new("team/a/../b.db")).unwrap(),
            dir.join("team/b.db")
        );
        assert_eq!(
            confine(&dir, &dir.join("abs.db")).unwrap(),
            dir.join("abs.db"),
            "an absolute path inside the folder is fine"
        );
        // Out of it, by `..` or an absolute path.
        for bad in [
            "../metadata2.db",
            "a/../../x.db",
            "..",
            "/etc/passwd",
            "/tmp/x.db",
        ] {
            let e = confine(&dir, Path::new(bad)).unwrap_err();
            assert!(e.contains("inside the destinations folder"), "{bad}: {e}");
        }
        let e = confine(&dir, &root.join("outside.db")).unwrap_err();
        assert!(e.contains("inside the destinations folder"), "{e}");
        // Sluice's own files, wherever they would be.
        for own in [
            "metadata.db",
            "x/profiles.db",
            "secret.key",
            "admin.token",
            "metadata.db-wal",
        ] {
            let e = confine(&dir, Path::new(own)).unwrap_err();
            assert!(e.contains("Sluice's own files"), "{own}: {e}");
        }
        // A folder is not a file.
        std::fs::create_dir(dir.join("sub")).unwrap();
        assert!(confine(&dir, Path::new("sub")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_out_of_the_folder_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let dir = root.join("destinations");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(root.join("metadata.db"), b"").unwrap();
        std::os::unix::fs::symlink(root.join("metadata.db"), dir.join("innocent.db")).unwrap();
        std::os::unix::fs::symlink(&root, dir.join("up")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), dir.join("dangling.db")).unwrap();
        for bad in ["innocent.db", "up/other.db", "up/destinations/../x.db"] {
            let e = confine(&dir, Path::new(bad)).unwrap_err();
            assert!(
                e.contains("symbolic link") || e.contains("inside"),
                "{bad}: {e}"
            );
        }
        assert!(confine(&dir, Path::new("dangling.db")).is_err());
        // A link that stays inside is followed.
        std::fs::create_dir(dir.join("real")).unwrap();
        std::os::unix::fs::symlink(dir.join("real"), dir.join("alias")).unwrap();
        assert_eq!(
            confine(&dir, Path::new("alias/t.db")).unwrap(),
            dir.join("real/t.db")
        );
    }
}
