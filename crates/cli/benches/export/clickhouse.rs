//! The export benchmark against ClickHouse, selected by `SLUICE_BENCH_CLICKHOUSE_URL`
//! (`clickhouse://user:password@host:port/database`): the same profiles and mapping as the PostgreSQL
//! benchmark, into a `ReplacingMergeTree(version)` table keyed by `customer_id`, and as the reference a
//! plain native-protocol insert of the same rows (read back from the table) into an empty twin table.
//! ClickHouse 18.16 has neither Bool nor Date32: `newsletter` is a UInt8 (mapped with `if(newsletter, 1, 0)`)
//! and `birth_date`, mostly before 1970 where `Date` starts, is text.

use std::time::Instant;

use futures::StreamExt;
use klickhouse::{Client, ClientOptions};
use serde_json::json;
use sluice_destinations::clickhouse::ClickHouseSettings;

pub const TABLE: &str = "CREATE TABLE customers (
    customer_id String, email Nullable(String), first_name Nullable(String), last_name Nullable(String),
    full_name Nullable(String), country Nullable(String), birth_date Nullable(String),
    signed_up_at Nullable(DateTime('UTC')), ltv Nullable(Decimal(12, 2)), orders Nullable(Int32),
    newsletter Nullable(UInt8), score Nullable(Float64), tags Array(String), phone Nullable(String),
    language Nullable(String), segment Nullable(String), loyalty_points Nullable(Int64),
    last_order_at Nullable(DateTime('UTC')), street Nullable(String), city Nullable(String),
    postal_code Nullable(String), version UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY customer_id";

pub struct Target {
    pub settings: serde_json::Value,
    admin: Client,
    database: String,
}

async fn client(s: &ClickHouseSettings, database: &str) -> Client {
    let options = ClientOptions {
        username: s.username.clone(),
        password: s.password.clone(),
        default_database: database.to_string(),
        ..ClientOptions::default()
    };
    Client::connect((s.host.as_str(), s.port), options)
        .await
        .expect("connect to ClickHouse")
}

/// Creates a database of its own with the `customers` table.
pub async fn setup(url: &str) -> Target {
    let s = ClickHouseSettings::from_url(url).expect("a clickhouse:// URL");
    let database = format!("bench_{}", std::process::id());
    client(&s, "default")
        .await
        .execute(format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let admin = client(&s, &database).await;
    admin.execute(TABLE).await.unwrap();
    let settings = json!({"host": s.host, "port": s.port, "username": s.username, "password": s.password,
        "database": database});
    Target {
        settings,
        admin,
        database,
    }
}

impl Target {
    /// Reads every row back (FINAL) and inserts them into an empty twin table with a plain native insert,
    /// three times (a fresh table each time); returns (rows, median seconds of the inserts). One insert
    /// varied from 1.4 s to 2.1 s between runs on one machine, which moved the ratio more than most
    /// changes to Sluice did.
    pub async fn reference(&self) -> (usize, f64) {
        let mut blocks = Vec::new();
        let mut stream = self
            .admin
            .query_raw("SELECT * FROM customers FINAL", None)
            .await
            .unwrap();
        while let Some(b) = stream.next().await {
            let b = b.unwrap();
            if b.rows > 0 {
                blocks.push(b);
            }
        }
        let rows: usize = blocks.iter().map(|b| b.rows as usize).sum();
        let mut times = Vec::new();
        for attempt in 0..3 {
            let table = format!("reference_{attempt}");
            self.admin
                .execute(format!("CREATE TABLE {table} AS customers"))
                .await
                .unwrap();
            // Copied before the clock starts: copying the rows is no part of the insert.
            let copy = blocks.clone();
            tracing::info!(rows, attempt, "reference insert starts");
            let t = Instant::now();
            let mut answer = self
                .admin
                .insert_native_raw(
                    format!("INSERT INTO {table} VALUES"),
                    futures::stream::iter(copy),
                    None,
                )
                .await
                .unwrap();
            while let Some(r) = answer.next().await {
                r.unwrap();
            }
            let secs = t.elapsed().as_secs_f64();
            tracing::info!(secs, attempt, "reference insert done");
            times.push(secs);
            self.admin
                .execute(format!("DROP TABLE {table}"))
                .await
                .unwrap();
        }
        println!(
            "reference inserts: {}",
            times
                .iter()
                .map(|s| format!("{s:.2} s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        times.sort_by(f64::total_cmp);
        (rows, times[1])
    }

    pub async fn drop(&self) {
        self.admin
            .execute(format!("DROP DATABASE {}", self.database))
            .await
            .unwrap();
    }
}
