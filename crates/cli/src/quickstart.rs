//! `sluice quickstart`: a first export within a minute, with no database server of one's own.
//!
//! On the first start it creates the sample Customer Model and profiles, an embedded SQLite destination
//! with a `customers` table, and a pipeline; then (every time) it runs the pipeline, prints what the run
//! did, and keeps serving. A second start reuses everything, so its run reports the rows as unchanged.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schema::SchemaWire;
use sluice_core::Schema;
use sluice_store::{DestinationRecord, PipelineRecord};

use sluice::sample;

use crate::{serve, ServerArgs};

const DEST_NAME: &str = "Local SQLite (demo)";
const PIPELINE_NAME: &str = "Demo customers";
const TABLE_DDL: &str = "CREATE TABLE IF NOT EXISTS customers (
    customer_id    TEXT PRIMARY KEY,
    email          TEXT,
    full_name      TEXT NOT NULL,
    country        TEXT,
    city           TEXT,
    lifetime_value DECIMAL(12,2),
    orders         INTEGER,
    newsletter     BOOLEAN,
    signed_up_at   TIMESTAMP,
    birth_date     DATE,
    note           TEXT DEFAULT 'written by Sluice'
)";

pub async fn run(args: ServerArgs, n_profiles: usize, no_serve: bool) -> Result<()> {
    let engine = serve::open_engine(&args).await?;
    let meta = engine.meta().clone();
    let profiles = engine.profiles().clone();

    let mut schema = meta.get_schema().await?;
    if schema.properties.is_empty() {
        let wire: SchemaWire = serde_json::from_value(sample::schema())?;
        schema = Schema::from_wire(&wire).map_err(|e| anyhow::anyhow!("{e}"))?;
        meta.put_schema(&schema).await?;
        println!(
            "Created the sample Customer Model ({} properties)",
            schema.properties.len()
        );
    }

    if profiles.count(None).await? == 0 {
        load_samples(&engine, &schema, n_profiles).await?;
    } else {
        println!(
            "Reusing the {} profiles already in {}",
            profiles.count(None).await?,
            args.data_dir.display()
        );
    }

    let dest = ensure_destination(&engine, &args).await?;
    let pipeline = ensure_pipeline(&engine, &dest).await?;

    let run = engine
        .start(&pipeline.id, "manual")
        .await
        .context("cannot start the demo run")?;
    let bar =
        ProgressBar::new_spinner().with_style(ProgressStyle::with_template("{spinner} {msg}")?);
    let started = Instant::now();
    let done = engine
        .wait(&run.id, |r| {
            bar.set_message(format!(
                "Running `{PIPELINE_NAME}` {}",
                crate::output::progress_line(
                    r.progress.processed,
                    r.progress.total,
                    started.elapsed().as_secs_f64()
                )
            ));
            bar.tick();
        })
        .await
        .context("the run disappeared")?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let c = &done.counts;
    // A re-run reads only what changed since the last one: with nothing read there is no rate to give.
    let rate = if c.read == 0 {
        " (no profile changed since the last run)".to_string()
    } else {
        crate::output::rate(c.read, secs)
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    };
    println!(
        "Run {} {} in {:.2} s: {}{rate}",
        done.id,
        done.status.as_str(),
        secs,
        c.summary()
    );
    for e in &done.errors {
        println!(
            "  {} × {} (e.g. {})",
            e.count,
            e.message,
            e.sample_profiles.join(", ")
        );
    }
    if let Some(m) = &done.message {
        println!("  {m}");
    }
    println!(
        "The table `customers` is in {}",
        sqlite_path(&args)?.display()
    );
    if let Some(log) = serve::quickstart_log(&args.data_dir) {
        println!(
            "The log is in {} (SLUICE_LOG=info shows it here)",
            log.display()
        );
    }
    if done.status != sluice_store::RunStatus::Succeeded {
        bail!("the demo run did not succeed");
    }
    if no_serve {
        return Ok(());
    }
    serve::serve_with(args, engine).await
}

async fn load_samples(engine: &sluice_engine::Engine, schema: &Schema, n: usize) -> Result<()> {
    let bar = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}")?.progress_chars("=> "),
    );
    bar.set_message("Creating sample profiles");
    let mut i = 0;
    while i < n {
        let end = (i + 5_000).min(n);
        let mut batch = Vec::with_capacity(end - i);
        for k in i..end {
            let p = sample::profile(42, k);
            let valid = schema
                .validate_profile(p.as_object().expect("samples are objects"))
                .map_err(|e| anyhow::anyhow!("sample profile {k} is invalid: {}", e.join("; ")))?;
            batch.push(valid);
        }
        engine.profiles().upsert(batch).await?;
        bar.set_position(end as u64);
        i = end;
    }
    bar.finish_and_clear();
    println!("Created {n} sample profiles");
    Ok(())
}

/// The demo database's file name, inside the folder SQLite destinations are confined to.
const DEMO_DB: &str = "demo.db";

fn sqlite_path(args: &ServerArgs) -> Result<std::path::PathBuf> {
    let dir = args.sqlite_dir();
    std::fs::create_dir_all(&dir)?;
    Ok(std::fs::canonicalize(&dir)?.join(DEMO_DB))
}

async fn ensure_destination(
    engine: &sluice_engine::Engine,
    args: &ServerArgs,
) -> Result<DestinationRecord> {
    let path = sqlite_path(args)?;
    {
        let conn = rusqlite::Connection::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        conn.execute_batch(TABLE_DDL)?;
    }
    let meta = engine.meta();
    if let Some(mut d) = meta
        .list_destinations()
        .await?
        .into_iter()
        .find(|d| d.name == DEST_NAME)
    {
        // Made by an earlier version, with the file in the data directory itself, where SQLite
        // destinations may no longer be: it moves to the confined folder.
        if d.kind == "sqlite" && d.settings["path"] != DEMO_DB {
            d.settings = json!({"path": DEMO_DB});
            d.updated_at = Utc::now();
            meta.update_destination(&d).await?;
        }
        return Ok(d);
    }
    let now = Utc::now();
    let rec = DestinationRecord {
        id: sluice_engine::new_id("dst"),
        name: DEST_NAME.into(),
        kind: "sqlite".into(),
        settings: json!({"path": DEMO_DB}),
        created_at: now,
        updated_at: now,
    };
    meta.insert_destination(&rec).await?;
    println!("Added the destination `{DEST_NAME}` with the table `customers`");
    Ok(rec)
}

async fn ensure_pipeline(
    engine: &sluice_engine::Engine,
    dest: &DestinationRecord,
) -> Result<PipelineRecord> {
    let meta = engine.meta();
    if let Some(p) = meta
        .list_pipelines(Some(&dest.id))
        .await?
        .into_iter()
        .find(|p| p.spec.name == PIPELINE_NAME)
    {
        return Ok(p);
    }
    let spec: PipelineSpec = serde_json::from_value(json!({
        "destination": dest.id,
        "name": PIPELINE_NAME,
        "description": "Customers with an email, into the demo SQLite table",
        "enabled": true,
        "filter": {"logical": "and", "conditions": [{"property": "email", "operator": "is not empty"}]},
        "table": "customers",
        "key": "customer_id",
        "transformation": {"mapping": {
            "customer_id": "_id",
            "email": "lower(email)",
            "full_name": "first_name \" \" last_name",
            "country": "country",
            "city": "address.city",
            "lifetime_value": "ltv",
            "orders": "orders",
            "newsletter": "newsletter",
            "signed_up_at": "signed_up_at",
            "birth_date": "birth_date"
        }},
        "schedule": null,
        "on_leave": "keep"
    }))?;
    sluice_engine::check_pipeline(meta.as_ref(), &spec, engine.config().script_limits)
        .await
        .map_err(|e| anyhow::anyhow!("the demo pipeline does not fit: {e}"))?;
    let now = Utc::now();
    let rec = PipelineRecord {
        id: sluice_engine::new_id("pl"),
        spec,
        created_at: now,
        updated_at: now,
    };
    meta.insert_pipeline(&rec).await?;
    println!("Added the pipeline `{PIPELINE_NAME}`");
    Ok(rec)
}
