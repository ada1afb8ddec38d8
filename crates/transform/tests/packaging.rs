//! The service files in `docs/deploy/` create the user Python workers switch to: systemd-sysusers makes
//! it from the packaged declaration (into a scratch root, not this machine's `/etc`), it is the user the
//! unit names in `SLUICE_SCRIPT_USER`, it is not root and cannot log in, and the unit keeps the
//! capabilities the switch needs.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/deploy")
}

/// The value of `Environment=NAME=value` in a unit.
fn environment<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn the_packaged_service_creates_its_script_user() {
    let unit = std::fs::read_to_string(deploy().join("sluice.service")).unwrap();
    let user = environment(&unit, sluice_transform::python::USER_VAR)
        .expect("the unit names the script user");
    assert_ne!(user, sluice_transform::python::DEFAULT_USER);
    assert!(
        unit.lines().all(|l| !l.trim().starts_with("User=")),
        "Sluice starts as root, or workers could not switch user"
    );
    let caps = unit
        .lines()
        .find_map(|l| l.trim().strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds the server's capabilities");
    // The switch, and ending a worker of another user (without CAP_KILL, abandoning scripts waits for
    // them: `setpriv --bounding-set -all,+setuid,+setgid` makes tests/abandon.rs fail).
    for needed in ["CAP_SETUID", "CAP_SETGID", "CAP_KILL"] {
        assert!(caps.split_whitespace().any(|c| c == needed), "{caps}");
    }
    assert!(
        unit.contains("ExecStartPre=+/usr/bin/systemd-sysusers sluice.conf"),
        "the service creates the user before it starts"
    );

    let root = std::env::temp_dir().join(format!("sluice-sysusers-{}", std::process::id()));
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let out = Command::new("systemd-sysusers")
        .arg(format!("--root={}", root.display()))
        .arg(deploy().join("sluice-sysusers.conf"))
        .output()
        .expect("systemd-sysusers runs (package systemd)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .unwrap_or_else(|| panic!("{user} is not in {passwd}"));
    let uid: u32 = entry[2].parse().unwrap();
    let gid: u32 = entry[3].parse().unwrap();
    assert!(uid != 0 && gid != 0, "{entry:?}");
    assert!(uid < 1000, "a system user: {entry:?}");
    assert_eq!(entry[5], "/nonexistent", "no home");
    assert!(entry[6].ends_with("nologin"), "no login shell: {entry:?}");
}
