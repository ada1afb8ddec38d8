//! The data directory holds the secret key, the admin token and the embedded stores (profiles, and
//! destination settings): only the user Sluice runs as may read it.
//!
//! At every start the directory is made 0700 and everything in it 0600 (sub-directories 0700), which
//! also repairs a directory an older Sluice left 0755 with 0644 files; and the process umask becomes
//! 0077, so what is created later (SQLite's `-wal` and `-shm` files, new databases) is private too.

use std::path::Path;

use anyhow::{Context, Result};

/// Log targets capped at info whatever `SLUICE_LOG` asks: `tokio_postgres` logs every statement's
/// parameters at debug, `mysql_async`/`mysql_common` and the HTTP stack log traffic, which holds
/// profile values and credentials.
pub const LOG_CAPS: &[&str] = &[
    "tokio_postgres=info",
    "postgres_protocol=info",
    "mysql_async=info",
    "mysql_common=info",
    "klickhouse=info",
    "reqwest=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
];

/// Makes `dir` (created when missing) and everything in it private to this user.
pub fn make_private(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    restrict(dir)
}

#[cfg(unix)]
fn restrict(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let set = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot make {} private (mode {mode:o})", path.display()))
    };
    set(dir, 0o700)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        // Links are left alone: their targets may be anywhere, and not Sluice's to change.
        let kind = entry.file_type()?;
        if kind.is_dir() {
            restrict(&path)?;
        } else if kind.is_file() {
            set(&path, 0o600)?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(_dir: &Path) -> Result<()> {
    Ok(())
}
