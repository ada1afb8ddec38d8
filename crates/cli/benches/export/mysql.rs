//! The export benchmark against MySQL / MariaDB, selected by `SLUICE_BENCH_MYSQL_URL`:
//!
//!     SLUICE_BENCH_MYSQL_URL=mysql://root@127.0.0.1:3306/test cargo bench -p sluice --bench export
//!
//! `SLUICE_BENCH_MYSQL_PATHS=0` skips the (long) comparison of the two ways of loading a batch.
//!
//! The same workload and runs as the PostgreSQL benchmark, into a 21-column InnoDB table in a database of
//! its own (`bench_<pid>`, dropped at the end). The reference is one plain `LOAD DATA LOCAL INFILE` of
//! the same rows (read back from the exported table) into an empty twin table with the same primary key.
//!
//! Then the destination's two ways of loading a batch are measured on those rows, in batches of 10,000
//! through `Destination::upsert`: `LOAD DATA LOCAL` from memory and multi-row inserts of bound values,
//! each into an empty table (every key new: straight into the table) and again over the same keys
//! (every key taken: staged, then `INSERT … SELECT … ON DUPLICATE KEY UPDATE`).

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone, Utc};
use mysql_async::prelude::Queryable;
use serde_json::json;
use sluice_core::Value;
use sluice_destinations::mysql::{client, dialect, BulkLoad, Mysql, MysqlSettings};
use sluice_destinations::{Destination, Row, WriteTarget};

const TABLE: &str = "CREATE TABLE customers (
    customer_id varchar(64) PRIMARY KEY, email text, first_name text, last_name text, full_name text,
    country text, birth_date date, signed_up_at datetime(6), ltv decimal(12,2), orders int,
    newsletter boolean, score double, tags json, phone text, language text, segment text,
    loyalty_points bigint, last_order_at datetime(6), street text, city text, postal_code text)
    ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// Rows per batch in the write-path comparison (the engine's page size).
const BATCH: usize = 10_000;

async fn connect(settings: &MysqlSettings) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(settings.host.clone())
        .tcp_port(settings.port)
        .user(Some(settings.username.clone()))
        .pass(settings.password.clone())
        .db_name(Some(settings.database.clone()))
        .prefer_socket(false);
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .expect("connect to SLUICE_BENCH_MYSQL_URL");
    conn.query_drop("SET NAMES utf8mb4, time_zone = '+00:00'")
        .await
        .unwrap();
    conn
}

pub async fn main(url: &str, n: usize) {
    let mut settings = MysqlSettings::from_url(url).expect("a mysql:// URL");
    let database = format!("bench_{}", std::process::id());
    let mut admin = connect(&settings).await;
    admin
        .query_drop(format!(
            "CREATE DATABASE `{database}` DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_bin"
        ))
        .await
        .unwrap();
    settings.database = database.clone();
    let mut db = connect(&settings).await;
    db.query_drop(TABLE).await.unwrap();

    let runs = super::engine_runs(
        n,
        "mysql",
        json!({"host": settings.host, "port": settings.port, "username": settings.username,
               "password": settings.password, "database": settings.database, "tls": {"mode": "disable"}}),
        super::mapping(),
    )
    .await;

    let rows = n + n / 1000;
    let reference_secs = reference_load(&mut db).await;
    // The comparison of the two load paths takes minutes; `SLUICE_BENCH_MYSQL_PATHS=0` leaves it out.
    let paths = match std::env::var("SLUICE_BENCH_MYSQL_PATHS").as_deref() {
        Ok("0") => None,
        _ => Some(write_paths(&mut db, &settings).await),
    };
    admin
        .query_drop(format!("DROP DATABASE `{database}`"))
        .await
        .unwrap();

    let [first, unchanged, changed, reconcile] = &runs;
    super::report(
        n,
        rows,
        "plain LOAD DATA LOCAL",
        reference_secs,
        [first, unchanged, changed, reconcile],
    );
    let Some(paths) = paths else {
        return;
    };
    println!("\n| Destination::upsert of {rows} rows in batches of {BATCH} | LOAD DATA LOCAL | multi-row INSERT |");
    println!("|---|---|---|");
    for (name, [load, insert]) in [
        ("every key new (straight into the table)", paths.new_keys),
        ("every key taken (staged upsert)", paths.taken_keys),
    ] {
        println!(
            "| {name} | {:.2} s, {:.0} rows/s | {:.2} s, {:.0} rows/s |",
            load.as_secs_f64(),
            rows as f64 / load.as_secs_f64(),
            insert.as_secs_f64(),
            rows as f64 / insert.as_secs_f64()
        );
    }
}

/// The exported rows as `LOAD DATA`'s tab-separated text, loaded in one statement into an empty twin
/// table; returns the seconds the load took.
async fn reference_load(db: &mut mysql_async::Conn) -> f64 {
    let mut data = Vec::new();
    // The text protocol answers every value as MySQL prints it, which is what LOAD DATA reads.
    let mut result = db.query_iter("SELECT * FROM customers").await.unwrap();
    result
        .for_each(|row| {
            for (i, v) in row.unwrap().into_iter().enumerate() {
                if i > 0 {
                    data.push(b'\t');
                }
                dialect::encode_field(&v, false, &mut data);
            }
            data.push(b'\n');
        })
        .await
        .unwrap();
    drop(result);
    db.query_drop("CREATE TABLE reference LIKE customers")
        .await
        .unwrap();
    let max_packet: Option<usize> = db.query_first("SELECT @@max_allowed_packet").await.unwrap();
    client::set_infile(db, data, max_packet.unwrap_or(4 << 20));
    let t = Instant::now();
    db.query_drop(
        "LOAD DATA LOCAL INFILE 'reference' INTO TABLE reference CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A'",
    )
    .await
    .expect("LOAD DATA LOCAL (the server's local_infile must be ON)");
    t.elapsed().as_secs_f64()
}

struct WritePaths {
    /// `[LOAD DATA, inserts]`.
    new_keys: [Duration; 2],
    taken_keys: [Duration; 2],
}

/// Times `Destination::upsert` both ways on the exported rows, page by page (reading is not timed).
async fn write_paths(db: &mut mysql_async::Conn, settings: &MysqlSettings) -> WritePaths {
    let ways = [BulkLoad::Auto, BulkLoad::Inserts];
    let mut dests = Vec::new();
    for (i, way) in ways.into_iter().enumerate() {
        let table = format!("paths_{i}");
        db.query_drop(format!("CREATE TABLE {table} LIKE customers"))
            .await
            .unwrap();
        let dest = Mysql::new(settings.clone()).with_bulk_load(way);
        let description = dest.describe_table(&table).await.unwrap().unwrap();
        let target = WriteTarget {
            columns: description.columns.iter().map(|c| c.name.clone()).collect(),
            table: description,
            key: "customer_id".into(),
            run_version: sluice_destinations::run_version(),
        };
        dests.push((dest, target));
    }
    let mut passes = [[Duration::ZERO; 2]; 2];
    for pass in &mut passes {
        let mut after = String::new();
        loop {
            // The binary protocol gives typed values, as the engine's rows have.
            let page: Vec<mysql_async::Row> = db
                .exec(
                    format!(
                        "SELECT * FROM customers WHERE customer_id > ? ORDER BY customer_id LIMIT {BATCH}"
                    ),
                    (after.clone(),),
                )
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.get::<String, _>(0).unwrap();
            let rows: Vec<Row> = page.into_iter().map(to_row).collect();

            for (way, (dest, target)) in dests.iter().enumerate() {
                let t = Instant::now();
                dest.upsert(target, &rows).await.unwrap();
                pass[way] += t.elapsed();
            }
        }
    }
    WritePaths {
        new_keys: passes[0],
        taken_keys: passes[1],
    }
}

/// A row read back as the values the engine would have computed for it.
fn to_row(row: mysql_async::Row) -> Row {
    use mysql_async::Value as My;
    let values = row
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            // `birth_date`, the only DATE column.
            My::Date(y, mo, d, ..) if i == 6 => {
                Value::Date(NaiveDate::from_ymd_opt(y as i32, mo as u32, d as u32).unwrap())
            }
            My::NULL => Value::Null,
            My::Int(i) => Value::Int(i),
            My::UInt(u) => Value::Int(u as i64),
            My::Float(f) => Value::Float(f as f64),
            My::Double(f) => Value::Float(f),
            My::Bytes(b) => Value::String(String::from_utf8(b).unwrap().into()),
            My::Date(y, mo, d, h, mi, s, us) => Value::DateTime(
                Utc.with_ymd_and_hms(y as i32, mo as u32, d as u32, h as u32, mi as u32, s as u32)
                    .unwrap()
                    + chrono::Duration::microseconds(us as i64),
            ),
            My::Time(..) => unreachable!("no TIME column"),
        })
        .collect();
    Row { values }
}
