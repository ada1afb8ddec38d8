//! Builds the admin UI (`web/`) with npm so that `cargo build` alone yields a binary with the UI inside.
//! Set `SLUICE_SKIP_UI_BUILD=1` to skip (the binary then serves a note instead of the UI).

use std::path::Path;
use std::process::Command;

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
    if !web.join("node_modules").exists() {
        run(Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&web));
    }
    run(Command::new(npm)
        .args(["run", "build", "--silent"])
        .current_dir(&web));
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
