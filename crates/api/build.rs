//! Builds the admin UI (`web/`) with npm so that `cargo build` alone yields a binary with the UI inside.
//! Set `SLUICE_SKIP_UI_BUILD=1` to skip (the binary then serves a note instead of the UI).
//!
//! Cargo keeps a build script's output to itself until the script ends, and its status line then reads only
//! `sluice-api(build)` for a minute or more, which looks stuck. So the steps are also written straight to
//! the terminal (`/dev/tty`) when there is one.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn main() {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
    println!("cargo:rerun-if-env-changed=SLUICE_SKIP_UI_BUILD");
    for p in [
        "src",
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(p).display());
    }
    if std::env::var_os("SLUICE_SKIP_UI_BUILD").is_some() || !web.join("package.json").exists() {
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        println!("cargo:warning=npm not found: building without the admin UI");
        return;
    }
    let start = Instant::now();
    if !web.join("node_modules").exists() {
        say("installing the admin UI's packages (npm ci, once)...");
        run(Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&web));
    }
    say("building the admin UI (npm run build in web/)...");
    run(Command::new(npm)
        .args(["run", "build", "--silent"])
        .current_dir(&web));
    say(&format!(
        "admin UI built in {} s; the Rust build goes on",
        start.elapsed().as_secs()
    ));
}

/// Writes one progress line to the terminal cargo runs in, if any, in cargo's own style. The line is
/// cleared first because cargo's status bar may be drawn on it; cargo redraws the bar below.
fn say(what: &str) {
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = write!(
            tty,
            "\r\x1b[K\x1b[1;32m{:>12}\x1b[0m sluice-api: {what}\n",
            "UI"
        );
    }
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert!(
        status.success(),
        "{cmd:?} failed ({status}); fix the web UI build or set SLUICE_SKIP_UI_BUILD=1"
    );
}
