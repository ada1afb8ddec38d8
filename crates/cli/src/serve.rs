//! `sluice serve`: opens the stores, recovers runs a previous process left unfinished, starts the
//! scheduler and serves.
//!
//! A data directory belongs to one process: it is locked (an exclusive SQLite lock on `instance.lock`,
//! released by the OS whatever way the process ends), and a second `sluice serve` on it is refused. So
//! embedded SQLite metadata has one process, and each of several instances sharing a PostgreSQL metadata
//! store has its own directory, where it keeps its name (`instance.id`): started again after a crash, it
//! fails the runs its previous process left at once instead of waiting for their lease to run out.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sluice_engine::{Engine, EngineConfig};
use sluice_store::SecretBox;

use crate::ServerArgs;

/// Name of the file in the data directory that keeps a generated admin token.
pub const TOKEN_FILE: &str = "admin.token";

/// Name of the quickstart's log file in the data directory.
pub const LOG_FILE: &str = "sluice.log";

/// Where the quickstart logs: a file in the data directory, unless SLUICE_LOG asks for a log on stderr.
pub fn quickstart_log(data_dir: &Path) -> Option<std::path::PathBuf> {
    if std::env::var_os("SLUICE_LOG").is_some() {
        return None;
    }
    Some(data_dir.join(LOG_FILE))
}

/// Logs to stderr at `info` (or what SLUICE_LOG says); with `file`, the `info` log goes to that file and
/// only warnings and errors to stderr, so that what the command prints stays readable.
pub fn init_logging(file: Option<std::path::PathBuf>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{fmt, EnvFilter, Layer};
    let capped = |mut filter: EnvFilter| {
        // Whatever SLUICE_LOG asks, these stay at info: at debug they log statement parameters (profile
        // values) and protocol traffic (see crate::data_dir::LOG_CAPS).
        for cap in crate::data_dir::LOG_CAPS {
            filter = filter.add_directive(cap.parse().expect("a valid directive"));
        }
        filter
    };
    let default = || EnvFilter::new("info,tower_http=warn");
    if let Some(path) = file {
        match open_log(&path) {
            Ok(f) => {
                tracing_subscriber::registry()
                    .with(
                        fmt::layer()
                            .compact()
                            .with_ansi(false)
                            .with_writer(std::sync::Mutex::new(f))
                            .with_filter(capped(default())),
                    )
                    .with(
                        fmt::layer()
                            .compact()
                            .with_writer(std::io::stderr)
                            .with_filter(EnvFilter::new("warn")),
                    )
                    .init();
                return;
            }
            Err(e) => eprintln!(
                "warning: cannot write the log to {} ({e}): logging to stderr",
                path.display()
            ),
        }
    }
    let filter = capped(EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| default()));
    let json = std::env::var("SLUICE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// Opens the log file for appending, private to its owner as everything in the data directory is.
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// The engine over the stores named by `args`.
pub async fn open_engine(args: &ServerArgs) -> Result<Engine> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let mut config = engine_config(args)?;
    crate::data_dir::make_private(&args.data_dir)?;
    lock_data_dir(&args.data_dir)?;
    let sqlite_dir = args.sqlite_dir();
    sluice_destinations::sqlite::config::confine_to(&sqlite_dir).with_context(|| {
        format!(
            "SLUICE_SQLITE_DIR (--sqlite-dir): cannot use {} for SQLite destinations",
            sqlite_dir.display()
        )
    })?;
    config.instance = Some(instance_name(&args.data_dir)?);
    let secrets = match &args.secret_key {
        Some(k) => SecretBox::from_base64(k).context("SLUICE_SECRET_KEY is not a valid key")?,
        None => SecretBox::load_or_create(&args.data_dir).context("cannot load the secret key")?,
    };
    let meta = sluice_store::open_metadata(args.metadata_url.as_deref(), &args.data_dir, secrets)
        .await
        .context("cannot open the metadata store")?;
    let profiles = sluice_store::open_profiles(args.profiles_url.as_deref(), &args.data_dir)
        .await
        .context("cannot open the profile store")?;
    let engine = Engine::new(meta, profiles, config);
    let n = engine
        .recover()
        .await
        .context("cannot recover unfinished runs")?;
    if n > 0 {
        tracing::warn!(
            runs = n,
            "marked runs left unfinished by a previous process as failed"
        );
    }
    Ok(engine)
}

/// The engine's settings from the server's, each checked with a message naming the setting.
fn engine_config(args: &ServerArgs) -> Result<EngineConfig> {
    if args.max_concurrent_runs == 0 {
        bail!("SLUICE_MAX_CONCURRENT_RUNS (--max-concurrent-runs) must be at least 1");
    }
    if args.max_runs_per_destination == 0 {
        bail!("SLUICE_MAX_RUNS_PER_DESTINATION (--max-runs-per-destination) must be at least 1");
    }
    if args.max_concurrent_dry_runs == 0 {
        bail!("SLUICE_MAX_CONCURRENT_DRY_RUNS (--max-concurrent-dry-runs) must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.failed_rows_threshold) {
        bail!(
            "SLUICE_FAILED_ROWS_THRESHOLD (--failed-rows-threshold) is a share of the rows between 0 and 1 (0.1 is 10%), not {}",
            args.failed_rows_threshold
        );
    }
    if args.run_lease_seconds < 3 {
        bail!("SLUICE_RUN_LEASE_SECONDS (--run-lease-seconds) must be at least 3");
    }
    if args.scheduler_interval_seconds == 0 {
        bail!(
            "SLUICE_SCHEDULER_INTERVAL_SECONDS (--scheduler-interval-seconds) must be at least 1"
        );
    }
    if args.on_change_max_wait_seconds == 0 || args.on_change_max_wait_seconds > 86_400 {
        bail!("SLUICE_ON_CHANGE_MAX_WAIT_SECONDS (--on-change-max-wait-seconds) must be between 1 and 86400");
    }
    if args.on_change_quiet_seconds > args.on_change_max_wait_seconds {
        bail!(
            "SLUICE_ON_CHANGE_QUIET_SECONDS (--on-change-quiet-seconds, {}) must not be longer than SLUICE_ON_CHANGE_MAX_WAIT_SECONDS (--on-change-max-wait-seconds, {})",
            args.on_change_quiet_seconds,
            args.on_change_max_wait_seconds
        );
    }
    let alert_webhook = args
        .alert_webhook
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    if let Some(url) = alert_webhook {
        // The message echoes the URL, which the user gave; it is not logged.
        sluice_core::pipeline::check_webhook_url(url)
            .map_err(|m| anyhow::anyhow!("SLUICE_ALERT_WEBHOOK (--alert-webhook): {m}"))?;
    }
    Ok(EngineConfig {
        batch_size: args.batch_size,
        rows_in_flight_bytes: args
            .rows_in_flight_mib
            .map_or(sluice_engine::DEFAULT_ROWS_IN_FLIGHT_BYTES, |m| {
                (m as usize) << 20
            }),
        max_concurrent_runs: args.max_concurrent_runs,
        max_runs_per_destination: args.max_runs_per_destination,
        max_concurrent_dry_runs: args.max_concurrent_dry_runs,
        max_waiting_dry_runs: args.max_waiting_dry_runs,
        failed_rows_threshold: args.failed_rows_threshold,
        alert_webhook: alert_webhook.map(str::to_string),
        deny_private_webhooks: args.deny_private_webhooks,
        lease: Duration::from_secs(args.run_lease_seconds),
        scheduler_interval: Duration::from_secs(args.scheduler_interval_seconds),
        on_change_debounce: sluice_core::on_change::Debounce {
            // Both bounded above by a day, so the conversions cannot overflow.
            quiet: chrono::TimeDelta::seconds(args.on_change_quiet_seconds as i64),
            max_wait: chrono::TimeDelta::seconds(args.on_change_max_wait_seconds as i64),
        },
        ..EngineConfig::default()
    })
}

/// Name of the file in the data directory that keeps this instance's name.
const INSTANCE_FILE: &str = "instance.id";

/// The name this instance claims runs under: kept in the data directory, made on first start.
fn instance_name(dir: &Path) -> Result<String> {
    let path = dir.join(INSTANCE_FILE);
    if let Ok(name) = std::fs::read_to_string(&path) {
        if !name.trim().is_empty() {
            return Ok(name.trim().to_string());
        }
    }
    let name = sluice_engine::new_id("inst");
    std::fs::write(&path, &name).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(name)
}

/// Holds the data directory's lock for the life of the process.
static DATA_DIR_LOCK: OnceLock<Mutex<rusqlite::Connection>> = OnceLock::new();

/// Takes the data directory for this process alone, or says which setting lets several instances share.
pub(crate) fn lock_data_dir(dir: &Path) -> Result<()> {
    if DATA_DIR_LOCK.get().is_some() {
        return Ok(());
    }
    let path = dir.join("instance.lock");
    // The first SQLite file a server opens: SQLite's process-wide settings must come before it.
    sluice_store::sqlite::configure_sqlite();
    let conn = rusqlite::Connection::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    conn.busy_timeout(Duration::ZERO)?;
    if let Err(e) = conn.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE; CREATE TABLE IF NOT EXISTS held (x);",
    ) {
        bail!(
            "another Sluice process is using the data directory {} ({e}); stop it, or give each instance its own \
             data directory and point them all at one PostgreSQL metadata store (SLUICE_METADATA_URL) to run several",
            dir.display()
        );
    }
    let _ = DATA_DIR_LOCK.set(Mutex::new(conn));
    Ok(())
}

/// The admin token: given, or kept in the data directory, or generated now (printed once, saved 0600).
pub fn admin_token(args: &ServerArgs) -> Result<(String, bool)> {
    if let Some(t) = args.admin_token.as_deref().filter(|t| !t.trim().is_empty()) {
        return Ok((t.trim().to_string(), false));
    }
    let path = args.data_dir.join(TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok((t.trim().to_string(), false));
        }
    }
    let token = format!("slc_{}", uuid::Uuid::new_v4().simple());
    write_private(&path, &token)?;
    Ok((token, true))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

pub async fn serve(args: ServerArgs) -> Result<()> {
    let engine = open_engine(&args).await?;
    serve_with(args, engine).await
}

/// The listener's and the API's limits from the settings, each checked with a message naming it.
fn listener_limits(args: &ServerArgs) -> Result<(crate::listener::Limits, sluice_api::BodyLimits)> {
    if args.max_connections == 0 {
        bail!("SLUICE_MAX_CONNECTIONS (--max-connections) must be at least 1");
    }
    if args.header_read_timeout_seconds == 0 {
        bail!(
            "SLUICE_HEADER_READ_TIMEOUT_SECONDS (--header-read-timeout-seconds) must be at least 1"
        );
    }
    if args.idle_timeout_seconds == 0 {
        bail!("SLUICE_IDLE_TIMEOUT_SECONDS (--idle-timeout-seconds) must be at least 1");
    }
    if args.max_body_bytes < 1024 || args.max_profiles_body_bytes < 1024 {
        bail!(
            "SLUICE_MAX_BODY_BYTES (--max-body-bytes) and SLUICE_MAX_PROFILES_BODY_BYTES \
             (--max-profiles-body-bytes) must be at least 1024"
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(crate::listener::tls_config(cert, key)?),
        _ => bail!(
            "SLUICE_TLS_CERT (--tls-cert) and SLUICE_TLS_KEY (--tls-key) go together: give both, or neither"
        ),
    };
    let limits = crate::listener::Limits {
        header_read_timeout: Duration::from_secs(args.header_read_timeout_seconds),
        idle_timeout: Duration::from_secs(args.idle_timeout_seconds),
        max_connections: args.max_connections,
        tls,
    };
    let body = sluice_api::BodyLimits {
        default: args.max_body_bytes,
        profiles: args.max_profiles_body_bytes,
    };
    Ok((limits, body))
}

pub async fn serve_with(args: ServerArgs, engine: Engine) -> Result<()> {
    let (token, generated) = admin_token(&args)?;
    // A thread, not a task: the runtime's threads are exactly the ones that may be asleep.
    std::thread::Builder::new()
        .name("sluice-memory".into())
        .spawn(|| loop {
            std::thread::sleep(Duration::from_secs(1));
            sluice::release_freed_memory();
        })
        .context("cannot start the memory thread")?;
    let (limits, body_limits) = listener_limits(&args)?;
    let scheme = if limits.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheduler = sluice_engine::scheduler::spawn(
        engine.clone(),
        Arc::new(sluice_engine::scheduler::SystemClock),
    );
    let state = sluice_api::AppState::new(engine.clone(), Arc::<str>::from(token.as_str()))
        .with_metrics_token_required(args.metrics_token_required)
        .with_loopback_hosts_only(addr.ip().is_loopback())
        .with_body_limits(body_limits);
    if let Some(path) = &args.workspace {
        crate::workspace::apply_at_start(&state, path).await?;
    }
    let app = sluice_api::router(state);
    println!("Sluice is serving on {scheme}://{addr} (UI at /, API at /v1)");
    if generated {
        println!(
            "Admin token (shown once; kept in {}): {token}",
            args.data_dir.join(TOKEN_FILE).display()
        );
    } else if args.admin_token.is_none() {
        println!(
            "Admin token: in {}",
            args.data_dir.join(TOKEN_FILE).display()
        );
    }
    crate::listener::serve(listener, app, limits, shutdown()).await?;
    scheduler.abort();
    let left = engine.shutdown(Duration::from_secs(10)).await;
    // Runs had their grace; a script still running must not hold the runtime's shutdown, which waits
    // for the blocking threads that evaluate scripts.
    sluice_transform::abandon_scripts();
    if left > 0 {
        tracing::warn!(
            runs = left,
            "runs still going at shutdown; they will be marked failed and repaired by their next run"
        );
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::engine_config;
    use crate::{Cli, Command};

    fn server_args(flags: &[&str]) -> crate::ServerArgs {
        let argv = ["sluice", "serve"].iter().chain(flags).copied();
        match Cli::try_parse_from(argv).expect("arguments parse").command {
            Command::Serve(args) => args,
            _ => unreachable!("`serve` parses as serve"),
        }
    }

    #[test]
    fn dry_run_slots_reach_the_engine_and_none_is_refused() {
        let config = engine_config(&server_args(&[
            "--max-concurrent-dry-runs",
            "3",
            "--max-waiting-dry-runs",
            "0",
        ]))
        .unwrap();
        assert_eq!(
            (config.max_concurrent_dry_runs, config.max_waiting_dry_runs),
            (3, 0)
        );
        let err = engine_config(&server_args(&["--max-concurrent-dry-runs", "0"])).unwrap_err();
        assert!(
            err.to_string().contains("SLUICE_MAX_CONCURRENT_DRY_RUNS"),
            "{err}"
        );
    }

    #[test]
    fn the_on_change_debounce_reaches_the_engine_and_is_checked() {
        let d = engine_config(&server_args(&[])).unwrap().on_change_debounce;
        assert_eq!(d, sluice_core::on_change::Debounce::default());
        let d = engine_config(&server_args(&[
            "--on-change-quiet-seconds",
            "0",
            "--on-change-max-wait-seconds",
            "30",
        ]))
        .unwrap()
        .on_change_debounce;
        assert_eq!((d.quiet.num_seconds(), d.max_wait.num_seconds()), (0, 30));
        for (flags, named) in [
            (
                ["--on-change-max-wait-seconds", "0"],
                "SLUICE_ON_CHANGE_MAX_WAIT_SECONDS",
            ),
            (
                ["--on-change-max-wait-seconds", "86401"],
                "SLUICE_ON_CHANGE_MAX_WAIT_SECONDS",
            ),
            (
                ["--on-change-quiet-seconds", "11"],
                "SLUICE_ON_CHANGE_QUIET_SECONDS",
            ),
        ] {
            let err = engine_config(&server_args(&flags)).unwrap_err();
            assert!(err.to_string().contains(named), "{flags:?}: {err}");
        }
    }
}
