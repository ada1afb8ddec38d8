//! `sluice serve`: opens the stores, recovers runs a previous process left unfinished, and serves.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_engine::{Engine, EngineConfig};
use sluice_store::SecretBox;

use crate::ServerArgs;

/// Name of the file in the data directory that keeps a generated admin token.
pub const TOKEN_FILE: &str = "admin.token";

pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
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

/// The engine over the stores named by `args`.
pub async fn open_engine(args: &ServerArgs) -> Result<Engine> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            args.data_dir.display()
        )
    })?;
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
    let engine = Engine::new(
        meta,
        profiles,
        EngineConfig {
            batch_size: args.batch_size,
            ..EngineConfig::default()
        },
    );
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

pub async fn serve_with(args: ServerArgs, engine: Engine) -> Result<()> {
    let (token, generated) = admin_token(&args)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let state = sluice_api::AppState::new(engine, Arc::<str>::from(token.as_str()));
    let app = sluice_api::router(state);
    println!("Sluice is serving on http://{addr} (UI at /, API at /v1)");
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
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
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
