//! Every kind of statement the ClickHouse dialect writes, run on two engines: chDB (a current ClickHouse,
//! in-process, through `scripts/chdb_run.py`) and the ClickHouse server of the other tests (18.16, over
//! the native protocol). One scenario drives both: it describes a table from what the engine answers
//! (`system.tables`, `DESCRIBE`), plans writes with the destination's own code, lays out native blocks with
//! its encoder, and runs the statements the destination runs — full inserts, staged partial updates,
//! tombstones, `FINAL` reads, drift reads — on a table with `PARTITION BY`, and on current engines a TTL
//! and a `CHECK` constraint too. On chDB the encoder's blocks are also read back with the `Native` format,
//! the error codes Sluice classifies are checked against the engine's own names, and the per-insert
//! settings must be ones the engine knows.
//!
//! Needs `SLUICE_TEST_CHDB_PYTHON` (a Python with the `chdb` package; `scripts/services.sh start chdb`
//! installs one and prints it) and the ClickHouse variables of `tests/clickhouse.rs`. Without them the
//! tests fail, naming the variable.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use async_trait::async_trait;
use serde_json::{json, Value as Json};
use sluice_core::{TableDescription, Value};
use sluice_destinations::clickhouse::client::{
    self, build_blocks, plan_write, table_info_from, StagedUpsert, TableInfo, Tombstones, WritePlan,
};
use sluice_destinations::clickhouse::dialect::{self, ServerVersion, ERROR_CODES};
use sluice_destinations::clickhouse::native::{packet_block, Setting};
use sluice_destinations::clickhouse::ClickHouseSettings;
use sluice_destinations::{ErrorKind, Row, WriteTarget};

/// What an engine answered to a statement it refused.
#[derive(Debug)]
struct Failure {
    kind: ErrorKind,
    code: Option<i32>,
    message: String,
}

type Rows = Vec<Vec<Option<String>>>;

#[async_trait]
trait Engine: Send {
    fn name(&self) -> &'static str;
    async fn run(&mut self, sql: &str, settings: &[Setting]) -> Result<Rows, Failure>;
    /// An insert with its data packets, as the destination sends it.
    async fn insert(
        &mut self,
        sql: &str,
        settings: &[Setting],
        plan: &WritePlan,
        blocks: Vec<Vec<u8>>,
    ) -> Result<(), Failure>;
}

// ---------------------------------------------------------------------------------------------------
// chDB

struct Chdb {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: tempfile::TempDir,
    files: usize,
    version: String,
}

impl Chdb {
    fn start() -> Chdb {
        let python = std::env::var("SLUICE_TEST_CHDB_PYTHON").unwrap_or_else(|_| {
            panic!(
                "SLUICE_TEST_CHDB_PYTHON is not set: these tests need a Python with chDB; \
                 `scripts/services.sh start chdb` installs one and prints the variable"
            )
        });
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/chdb_run.py");
        let mut child = Command::new(&python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {script}: {e}"));
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut hello = String::new();
        stdout.read_line(&mut hello).unwrap();
        let hello: Json = serde_json::from_str(&hello)
            .unwrap_or_else(|e| panic!("chdb_run.py did not start ({e}): {hello}"));
        Chdb {
            child,
            stdin,
            stdout,
            dir: tempfile::tempdir().unwrap(),
            files: 0,
            version: hello["engine"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn step(&mut self, step: Json) -> Json {
        writeln!(self.stdin, "{step}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("chdb_run.py answered ({e}): {line}"))
    }

    fn answer(answer: Json) -> Result<Rows, Failure> {
        if answer["ok"] == json!(true) {
            let cell = |v: &Json| match v {
                Json::Null => None,
                Json::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            };
            return Ok(answer["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_array().unwrap().iter().map(cell).collect())
                .collect());
        }
        let code = answer["code"].as_i64().map(|c| c as i32);
        let message = answer["error"].as_str().unwrap_or_default().to_string();
        Err(Failure {
            kind: code.map_or(ErrorKind::Internal, |c| dialect::error_kind(c, &message)),
            code,
            message,
        })
    }

    /// Writes the blocks of data packets as a file in the `Native` format.
    fn block_file(&mut self, blocks: &[Vec<u8>]) -> String {
        self.files += 1;
        let path = self.dir.path().join(format!("block{}.native", self.files));
        let mut bytes = Vec::new();
        for b in blocks {
            bytes.extend_from_slice(packet_block(b).expect("a data packet of the encoder"));
        }
        std::fs::write(&path, bytes).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// The blocks as chDB reads them: column names and types, and the values as text.
    fn read_blocks(&mut self, blocks: &[Vec<u8>]) -> (Vec<(String, String)>, Rows) {
        let path = self.block_file(blocks);
        let answer = self.step(
            json!({"sql": format!("SELECT * FROM file({}, 'Native')", dialect::literal(&path))}),
        );
        let columns = answer["columns"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|c| {
                (
                    c[0].as_str().unwrap().to_string(),
                    c[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        (columns, Self::answer(answer).unwrap())
    }
}

impl Drop for Chdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[async_trait]
impl Engine for Chdb {
    fn name(&self) -> &'static str {
        "chDB"
    }

    async fn run(&mut self, sql: &str, settings: &[Setting]) -> Result<Rows, Failure> {
        Self::answer(self.step(json!({"sql": sql, "settings": settings})))
    }

    async fn insert(
        &mut self,
        sql: &str,
        settings: &[Setting],
        _plan: &WritePlan,
        blocks: Vec<Vec<u8>>,
    ) -> Result<(), Failure> {
        let path = self.block_file(&blocks);
        Self::answer(self.step(json!({"sql": sql, "block": path, "settings": settings})))
            .map(|_| ())
    }
}

// ---------------------------------------------------------------------------------------------------
// A ClickHouse server over the native protocol

struct Server(client::Session);

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need a ClickHouse server; `scripts/services.sh start clickhouse` \
             starts one and prints the variables"
        )
    })
}

impl Server {
    async fn connect() -> Server {
        let addr = var("SLUICE_TEST_CLICKHOUSE_NATIVE");
        let (host, port) = addr.rsplit_once(':').expect("host:port");
        let settings = ClickHouseSettings::from_json(&json!({
            "host": host, "port": port.parse::<u16>().unwrap(),
            "username": std::env::var("SLUICE_TEST_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
            "password": std::env::var("SLUICE_TEST_CLICKHOUSE_PASSWORD").unwrap_or_default(),
            "database": "default",
        }))
        .unwrap();
        Server(client::connect(&settings).await.unwrap())
    }
}

fn failure(e: sluice_destinations::DestinationError) -> Failure {
    Failure {
        kind: e.kind,
        code: None,
        message: e.message,
    }
}

#[async_trait]
impl Engine for Server {
    fn name(&self) -> &'static str {
        "ClickHouse server"
    }

    async fn run(&mut self, sql: &str, settings: &[Setting]) -> Result<Rows, Failure> {
        let rows = self.0.query_with(sql, settings).await.map_err(failure)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.iter()
                    .map(|d| match d {
                        sluice_destinations::clickhouse::native::Datum::Null => None,
                        d => Some(d.text()),
                    })
                    .collect()
            })
            .collect())
    }

    async fn insert(
        &mut self,
        sql: &str,
        settings: &[Setting],
        plan: &WritePlan,
        blocks: Vec<Vec<u8>>,
    ) -> Result<(), Failure> {
        // The session sends its own insert settings, which are these.
        assert_eq!(self.0.insert_settings(), settings);
        self.0
            .insert_blocks(sql, plan, blocks)
            .await
            .map_err(failure)
    }
}

// ---------------------------------------------------------------------------------------------------
// The scenario

async fn ok(e: &mut dyn Engine, sql: &str) -> Rows {
    e.run(sql, &[])
        .await
        .unwrap_or_else(|f| panic!("{}: {sql}: {f:?}", e.name()))
}

async fn ok_with(e: &mut dyn Engine, sql: &str, settings: &[Setting]) -> Rows {
    e.run(sql, settings)
        .await
        .unwrap_or_else(|f| panic!("{}: {sql}: {f:?}", e.name()))
}

async fn one(e: &mut dyn Engine, sql: &str) -> String {
    ok(e, sql).await[0][0].clone().unwrap_or_default()
}

fn texts(rows: &Rows) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|c| c.clone().unwrap_or_else(|| "NULL".into()))
                .collect()
        })
        .collect()
}

fn s(text: &str) -> Value {
    Value::String(text.into())
}

fn target(table: &TableDescription, columns: &[&str], run_version: u64) -> WriteTarget {
    WriteTarget {
        table: table.clone(),
        columns: columns.iter().map(|c| c.to_string()).collect(),
        key: "id".to_string(),
        run_version,
    }
}

fn rows(values: Vec<Vec<Value>>) -> Vec<Row> {
    values.into_iter().map(|values| Row { values }).collect()
}

/// The table as the destination describes it, from the engine's answers.
async fn describe(e: &mut dyn Engine, db: &str, table: &str) -> TableInfo {
    let table_row = ok(e, &dialect::table_query(db, table)).await;
    let described = ok(e, &dialect::columns_query(db, table)).await;
    let flat = |r: &Rows| texts(r);
    table_info_from(&flat(&table_row)[0], &flat(&described))
}

/// Whether the engine is a current one (Bool, Date32, TTL, CHECK, is_deleted, safe deletes).
fn current(version: ServerVersion) -> bool {
    version.has_safe_deletes()
}

async fn scenario(e: &mut dyn Engine) -> ServerVersion {
    let version = ServerVersion::parse(&one(e, dialect::VERSION_QUERY).await).unwrap();
    let settings = dialect::insert_settings(version);
    let db = "sluice_statements";
    ok(e, &format!("CREATE DATABASE IF NOT EXISTS {db}")).await;
    let table = format!("people_{}", std::process::id());
    let qt = dialect::qualified(db, &table);
    ok(e, &format!("DROP TABLE IF EXISTS {qt}")).await;
    // A row of defaults would land in partition '', expire at once (seen = 1970) and fail the CHECK.
    let ddl = if current(version) {
        format!(
            "CREATE TABLE {qt} (id String, name String, region String, email Nullable(String), \
             seen DateTime, ok Bool, day Date32, ver UInt64, del UInt8, CONSTRAINT named CHECK name != '') \
             ENGINE = ReplacingMergeTree(ver, del) PARTITION BY region ORDER BY id \
             TTL seen + INTERVAL 1 DAY SETTINGS allow_experimental_replacing_merge_with_cleanup = 1"
        )
    } else {
        format!(
            "CREATE TABLE {qt} (id String, name String, region String, email Nullable(String), \
             seen DateTime, ver UInt64, del UInt8) \
             ENGINE = ReplacingMergeTree(ver) PARTITION BY region ORDER BY id"
        )
    };
    ok(e, &ddl).await;

    // Settings sent with a query are applied (over the protocol in the format of its revision).
    let err = e
        .run(
            "SELECT number FROM system.numbers LIMIT 10",
            &[("max_result_rows", 1)],
        )
        .await
        .unwrap_err();
    assert!(
        err.message
            .to_ascii_lowercase()
            .contains("limit for result"),
        "{}: {err:?}",
        e.name()
    );

    // The connection test's statements.
    assert_eq!(one(e, &dialect::database_query(db)).await, "1");
    let tables: u64 = one(e, &dialect::replacing_tables_query(db))
        .await
        .parse()
        .unwrap();
    assert!(tables >= 1, "{tables}");
    ok(
        e,
        &dialect::create_stage("sluice_connection_test", &[("id".into(), "UInt8".into())]),
    )
    .await;
    ok(e, &dialect::drop_stage("sluice_connection_test")).await;

    let mut info = describe(e, db, &table).await;
    let desc = client::describe(&table, &info, version);
    assert_eq!(info.engine.version.as_deref(), Some("ver"));
    assert_eq!(info.engine.sorting_key, ["id"]);
    // Deletes as the version allows them; on 18.16 the statements are still run (on a plain `del`
    // column, which the engine does not know), so that their text is proven there too.
    let deletes_version = if current(version) {
        assert_eq!(info.engine.is_deleted.as_deref(), Some("del"));
        assert_eq!(info.engine.delete_refusal(&table, version), None);
        version
    } else {
        assert_eq!(info.engine.is_deleted, None);
        assert!(info.engine.delete_refusal(&table, version).is_some());
        info.engine.is_deleted = Some("del".into());
        ServerVersion {
            major: 23,
            minor: 12,
        }
    };

    // A full write: one insert (through input() and casts where Bool and Date32 travel as other types).
    let now = chrono::Utc::now();
    let seen = Value::DateTime(now);
    let mut columns = vec!["id", "name", "region", "email", "seen"];
    let extra = |ok: bool| -> Vec<Value> {
        if current(version) {
            vec![
                Value::Bool(ok),
                Value::Date(chrono::NaiveDate::from_ymd_opt(1901, 2, 3).unwrap()),
            ]
        } else {
            Vec::new()
        }
    };
    if current(version) {
        columns.extend(["ok", "day"]);
    }
    let run1 = 1_000;
    let t1 = target(&desc, &columns, run1);
    let plan = plan_write(&info, &t1, version).unwrap();
    assert!(plan.kept.is_empty(), "{:?}", plan.kept);
    let people = rows(
        [("a", "Ann", "eu"), ("b", "Bob", "us"), ("c", "Cy", "eu")]
            .iter()
            .map(|(id, name, region)| {
                let mut r = vec![
                    s(id),
                    s(name),
                    s(region),
                    s(&format!("{id}@x")),
                    seen.clone(),
                ];
                r.extend(extra(true));
                r
            })
            .collect(),
    );
    let blocks = build_blocks(&plan, &people, run1).unwrap();
    let insert = plan.insert_sql(&qt);
    assert_eq!(insert.contains("input("), current(version), "{insert}");
    e.insert(&insert, &settings, &plan, blocks).await.unwrap();
    let live = |info: &TableInfo| dialect::live_rows(&info.engine, db, &table);
    let (from, alive) = live(&info);
    assert_eq!(one(e, &dialect::count_live(&from, &alive)).await, "3");

    // A partial write (name and seen: a new row without `seen` would expire at once under the TTL):
    // staged, current rows read back, updates and new rows inserted.
    let t2 = target(&desc, &["id", "name", "seen"], 2_000);
    let plan = plan_write(&info, &t2, version).unwrap();
    assert!(plan.kept.contains(&"region".to_string()));
    let staged = StagedUpsert::new(&plan, db, &table, "id", 1);
    for sql in &staged.prepare {
        ok(e, sql).await;
    }
    let blocks = build_blocks(
        &plan,
        &rows(vec![
            vec![s("b"), s("Bo"), seen.clone()],
            vec![s("d"), s("Di"), seen.clone()],
        ]),
        2_000,
    )
    .unwrap();
    e.insert(&staged.stage_insert, &settings, &plan, blocks)
        .await
        .unwrap();
    for sql in &staged.write {
        ok_with(e, sql, &settings).await;
    }
    for sql in &staged.cleanup {
        ok(e, sql).await;
    }
    let read = format!(
        "SELECT id, name, region, toString(email), toString(ver) FROM {from} WHERE {alive} ORDER BY id"
    );
    assert_eq!(
        texts(&ok(e, &read).await),
        [
            ["a", "Ann", "eu", "a@x", "1000"],
            ["b", "Bo", "us", "b@x", "2000"],
            ["c", "Cy", "eu", "c@x", "1000"],
            ["d", "Di", "", "NULL", "2000"],
        ],
        "{}",
        e.name()
    );

    // Tombstones for a, c and a key that is not there: copies of the current rows, run version, deleted.
    let t3 = target(&desc, &columns, 3_000);
    let tomb = Tombstones::new(&info, db, &t3, deletes_version, 2).unwrap();
    for sql in &tomb.prepare {
        ok(e, sql).await;
    }
    let keys = rows(vec![vec![s("a")], vec![s("c")], vec![s("gone")]]);
    let blocks = build_blocks(&tomb.stage_plan, &keys, 3_000).unwrap();
    e.insert(&tomb.stage_insert, &settings, &tomb.stage_plan, blocks)
        .await
        .unwrap();
    assert_eq!(one(e, &tomb.count).await, "2");
    ok_with(e, &tomb.insert, &settings).await;
    ok(e, &tomb.cleanup).await;
    assert_eq!(
        texts(&ok(e, &read).await),
        [
            ["b", "Bo", "us", "b@x", "2000"],
            ["d", "Di", "", "NULL", "2000"]
        ],
        "{}",
        e.name()
    );
    assert_eq!(one(e, &dialect::count_live(&from, &alive)).await, "2");
    // The tombstone is the row itself, deleted: same partition, same TTL column, the CHECK holds.
    let versions = format!(
        "SELECT _partition_id, name, toString(seen), toString(ver), toString(del) FROM {qt} WHERE id = 'a' ORDER BY ver"
    );
    let got = texts(&ok(e, &versions).await);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0][..3], got[1][..3], "{got:?}");
    assert_eq!((got[0][3].as_str(), got[0][4].as_str()), ("1000", "0"));
    assert_eq!((got[1][3].as_str(), got[1][4].as_str()), ("3000", "1"));

    // Drift reads: identity, and rows by key through a stage of keys.
    let has_uuid = one(e, dialect::HAS_TABLE_UUID_QUERY).await != "0";
    assert_eq!(has_uuid, version.major >= 20, "{}", e.name());
    let identity = ok(e, &dialect::identity_query(has_uuid, db, &table)).await;
    assert_eq!(texts(&identity)[0][1], "ReplacingMergeTree");
    let key_plan = WritePlan {
        columns: vec![plan.columns[0].clone()],
        kept: Vec::new(),
    };
    ok(e, &dialect::drop_stage("sluice_keys_3")).await;
    ok(
        e,
        &dialect::create_stage("sluice_keys_3", &[("id".into(), "String".into())]),
    )
    .await;
    let blocks = build_blocks(&key_plan, &rows(vec![vec![s("a")], vec![s("b")]]), 0).unwrap();
    e.insert(
        &key_plan.insert_sql(&dialect::quote("sluice_keys_3")),
        &settings,
        &key_plan,
        blocks,
    )
    .await
    .unwrap();
    let t_read = target(&desc, &["id", "name", "seen"], 0);
    let select = sluice_destinations::drift::text_columns(&t_read, dialect::text_expr);
    let read_back = ok(
        e,
        &dialect::read_live(&select, &from, &alive, "sluice_keys_3", "id"),
    )
    .await;
    let read_back = texts(&read_back);
    assert_eq!(
        read_back.len(),
        1,
        "the deleted key is not read: {read_back:?}"
    );
    assert_eq!(read_back[0][..2], ["b", "Bo"]);
    assert_eq!(read_back[0][2], now.format("%Y-%m-%d %H:%M:%S").to_string());
    ok(e, &dialect::drop_stage("sluice_keys_3")).await;

    // A mapped version column: the tombstone is one step above the row's version, and the profile
    // shows again when it comes back with a higher version of its own.
    let mapped: Vec<&str> = columns.iter().copied().chain(["ver"]).collect();
    let row = |id: &str, ver: i64| {
        let mut r = vec![s(id), s("Mo"), s("eu"), Value::Null, seen.clone()];
        r.extend(extra(false));
        r.push(Value::Int(ver));
        r
    };
    let t4 = target(&desc, &mapped, 4_000_000);
    let plan = plan_write(&info, &t4, version).unwrap();
    let blocks = build_blocks(&plan, &rows(vec![row("m", 10)]), 4_000_000).unwrap();
    e.insert(&plan.insert_sql(&qt), &settings, &plan, blocks)
        .await
        .unwrap();
    let tomb = Tombstones::new(&info, db, &t4, deletes_version, 4).unwrap();
    for sql in &tomb.prepare {
        ok(e, sql).await;
    }
    let blocks = build_blocks(&tomb.stage_plan, &rows(vec![vec![s("m")]]), 4_000_000).unwrap();
    e.insert(&tomb.stage_insert, &settings, &tomb.stage_plan, blocks)
        .await
        .unwrap();
    ok_with(e, &tomb.insert, &settings).await;
    ok(e, &tomb.cleanup).await;
    let m = format!("SELECT toString(ver), toString(del) FROM {qt} WHERE id = 'm' ORDER BY ver");
    assert_eq!(texts(&ok(e, &m).await), [["10", "0"], ["11", "1"]]);
    let live_m = format!("SELECT count() FROM {from} WHERE {alive} AND id = 'm'");
    assert_eq!(one(e, &live_m).await, "0");
    let blocks = build_blocks(&plan, &rows(vec![row("m", 12)]), 5_000_000).unwrap();
    e.insert(&plan.insert_sql(&qt), &settings, &plan, blocks)
        .await
        .unwrap();
    assert_eq!(one(e, &live_m).await, "1", "back with a higher version");

    if current(version) {
        // FINAL leaves the tombstone's row out even when it does not merge across partitions: the
        // tombstone is in the row's own partition.
        let across = format!("SELECT count() FROM {qt} FINAL WHERE id = 'a'");
        let no_across = [("do_not_merge_across_partitions_select_final", 1)];
        assert_eq!(
            ok_with(e, &across, &no_across).await[0][0].as_deref(),
            Some("0")
        );
        assert_eq!(one(e, &across).await, "0");
        // After OPTIMIZE … FINAL CLEANUP the tombstones and the rows they hide are gone.
        ok(e, &format!("OPTIMIZE TABLE {qt} FINAL CLEANUP")).await;
        assert_eq!(
            one(
                e,
                &format!("SELECT count() FROM {qt} WHERE id IN ('a', 'c')")
            )
            .await,
            "0"
        );
        assert_eq!(one(e, &format!("SELECT count() FROM {qt}")).await, "3");

        // The CHECK constraint refuses a bad row: bad data.
        let plan = plan_write(&info, &t1, version).unwrap();
        let mut bad = vec![s("z"), s(""), s("eu"), Value::Null, seen.clone()];
        bad.extend(extra(true));
        let blocks = build_blocks(&plan, &rows(vec![bad]), run1).unwrap();
        let err = e
            .insert(&plan.insert_sql(&qt), &settings, &plan, blocks)
            .await
            .unwrap_err();
        assert_eq!(
            (err.code, err.kind),
            (Some(469), ErrorKind::BadData),
            "{err:?}"
        );

        // A batch across more partitions than allowed: 252, and not the kind "too many parts" is.
        let few = [&settings[..], &[("max_partitions_per_insert_block", 1)]].concat();
        let blocks = build_blocks(&plan, &people, run1).unwrap();
        let err = e
            .insert(&plan.insert_sql(&qt), &few, &plan, blocks)
            .await
            .unwrap_err();
        assert_eq!(
            (err.code, err.kind),
            (Some(252), ErrorKind::BadData),
            "{err:?}"
        );
        assert!(err.message.contains("partitions"), "{}", err.message);
    }
    ok(e, &format!("DROP TABLE {qt}")).await;
    version
}

#[tokio::test]
async fn every_statement_runs_on_a_current_engine() {
    let mut chdb = Chdb::start();
    let version = scenario(&mut chdb).await;
    assert!(
        current(version),
        "chDB {} runs ClickHouse {version:?}",
        chdb.version
    );
}

#[tokio::test]
async fn every_statement_runs_on_the_server() {
    let mut server = Server::connect().await;
    scenario(&mut server).await;
}

/// The statements a ClickHouse source sends to read a table or a query page by page (built by
/// `sluice_destinations::source::select`, values as typed literals), run on the engine: rows with one
/// cursor value across page boundaries are read once each, in cursor mode and in full mode, and a query
/// ending in a line comment still reads as a subquery.
async fn source_reads(e: &mut dyn Engine) {
    use sluice_core::source::CursorValue;
    use sluice_core::{Column, ColumnType};
    use sluice_destinations::clickhouse::ClickHouse;
    use sluice_destinations::source::{
        select, Position, ReadPlan, Reads, SourceColumn, SourceFrom, SourceSchema,
    };

    let db = "sluice_statements";
    ok(e, &format!("CREATE DATABASE IF NOT EXISTS {db}")).await;
    let table = format!("source_{}", std::process::id());
    let qt = dialect::qualified(db, &table);
    ok(e, &format!("DROP TABLE IF EXISTS {qt}")).await;
    ok(
        e,
        &format!(
            "CREATE TABLE {qt} (id String, email Nullable(String), updated_at DateTime('UTC')) \
             ENGINE = MergeTree() ORDER BY id"
        ),
    )
    .await;
    // Five rows, four of them at one instant.
    ok(
        e,
        &format!(
            "INSERT INTO {qt} SELECT concat('c', toString(number)), concat('u', toString(number), '@x'), \
             toDateTime(if(number = 4, '2026-12-01 10:00:05', '2026-12-01 10:00:00'), 'UTC') \
             FROM system.numbers LIMIT 5"
        ),
    )
    .await;
    let settings = ClickHouseSettings::from_json(&json!({
        "host": "unused", "username": "unused", "database": db,
    }))
    .unwrap();
    let reader = ClickHouse::new(settings);
    let column = |name: &str, native: &str, ty: ColumnType| {
        SourceColumn::from_column(Column {
            name: name.into(),
            native_type: native.into(),
            nullable: true,
            ty: Some(ty),
            has_default: false,
        })
    };
    let schema = SourceSchema {
        columns: vec![
            column("id", "String", ColumnType::Text { max_len: None }),
            column(
                "email",
                "Nullable(String)",
                ColumnType::Text { max_len: None },
            ),
            column(
                "updated_at",
                "DateTime('UTC')",
                ColumnType::Timestamp { with_tz: true },
            ),
        ],
        capabilities: reader.source_capabilities(),
    };
    let query = format!("SELECT id, email, updated_at FROM {qt} -- the people\n");
    for from in [SourceFrom::Table(table.clone()), SourceFrom::Query(query)] {
        for cursor in [true, false] {
            let mark = CursorValue::Time("2026-12-01T09:55:00Z".parse().unwrap());
            let plan = ReadPlan::new(
                from.clone(),
                schema.clone(),
                "id",
                cursor.then_some(("updated_at", Some(mark))),
                2,
            )
            .unwrap();
            let mut after: Option<Position> = None;
            let mut ids = Vec::new();
            for _ in 0..10 {
                let (sql, _) = select(&reader, &plan, after.as_ref()).unwrap();
                let page = texts(&ok(e, &sql).await);
                let Some(last) = page.last() else { break };
                let at: chrono::NaiveDateTime =
                    chrono::NaiveDateTime::parse_from_str(&last[2], "%Y-%m-%d %H:%M:%S")
                        .unwrap_or_else(|err| panic!("{}: {last:?}: {err}", e.name()));
                after = Some(Position {
                    cursor: cursor.then(|| CursorValue::Time(at.and_utc())),
                    id: s(&last[0]),
                });
                ids.extend(page.iter().map(|r| r[0].clone()));
            }
            // In both modes c4 comes last: it has the greatest cursor and the greatest id.
            assert_eq!(
                ids,
                ["c0", "c1", "c2", "c3", "c4"],
                "{}: {from:?}, cursor {cursor}",
                e.name()
            );
        }
    }
    ok(e, &format!("DROP TABLE {qt}")).await;
}

#[tokio::test]
async fn source_reads_run_on_a_current_engine() {
    source_reads(&mut Chdb::start()).await;
}

#[tokio::test]
async fn source_reads_run_on_the_server() {
    source_reads(&mut Server::connect().await).await;
}

#[tokio::test]
async fn blocks_read_back_with_the_native_format() {
    let mut chdb = Chdb::start();
    let version = ServerVersion::parse(&one(&mut chdb, dialect::VERSION_QUERY).await).unwrap();
    let table = "CREATE TEMPORARY TABLE types (id String, n Nullable(Int32), tags Array(LowCardinality(String)), \
                 at DateTime64(3, 'UTC'), ok Bool, day Date32, amount Decimal(18, 4), u UUID, e Enum8('x' = 1, 'y' = 2)) \
                 ENGINE = Memory";
    ok(&mut chdb, table).await;
    let described = texts(&ok(&mut chdb, "DESCRIBE TABLE types").await);
    let info = table_info_from(&["Memory".into(), "Memory".into(), "".into()], &described);
    let columns: Vec<String> = info.columns.iter().map(|c| c.name.clone()).collect();
    let at = chrono::DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let values = vec![
        s("k"),
        Value::Int(-7),
        Value::Array(vec![s("p"), s("q"), s("p")]),
        Value::DateTime(at),
        Value::Bool(true),
        Value::Date(chrono::NaiveDate::from_ymd_opt(2200, 1, 2).unwrap()),
        Value::Decimal("12.3456".parse().unwrap()),
        Value::Uuid(uuid::Uuid::parse_str("6f1c1d6e-4f5a-4b7a-9c3e-2a1b0c9d8e7f").unwrap()),
        s("y"),
    ];
    let nulls = vec![
        s("n"),
        Value::Null,
        Value::Array(vec![]),
        Value::DateTime(at),
        Value::Bool(false),
        Value::Date(chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()),
        Value::Decimal("-0.0001".parse().unwrap()),
        Value::Uuid(uuid::Uuid::nil()),
        s("x"),
    ];
    // Not a ReplacingMergeTree: the plan is laid out column by column, as for a stage.
    let plan = WritePlan {
        columns: info
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| client::planned_column(c, i, version).unwrap())
            .collect(),
        kept: Vec::new(),
    };
    let blocks = build_blocks(&plan, &rows(vec![values, nulls]), 0).unwrap();
    let (layout, read) = chdb.read_blocks(&blocks);
    let expected: Vec<(String, String)> = plan
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.wire_text.clone()))
        .collect();
    assert_eq!(layout, expected);
    assert_eq!(
        texts(&read),
        [
            [
                "k",
                "-7",
                "[\"p\",\"q\",\"p\"]",
                "2024-05-06 07:08:09.123",
                "1",
                "2200-01-02",
                "12.3456",
                "6f1c1d6e-4f5a-4b7a-9c3e-2a1b0c9d8e7f",
                "y"
            ],
            [
                "n",
                "NULL",
                "[]",
                "2024-05-06 07:08:09.123",
                "0",
                "1900-01-01",
                "-0.0001",
                "00000000-0000-0000-0000-000000000000",
                "x"
            ],
        ]
    );
    // And inserted as the destination inserts them (Bool and Date32 cast from their wire types).
    let insert = plan.insert_sql(&dialect::quote("types"));
    assert!(insert.contains("CAST(`ok` AS Bool)"), "{insert}");
    chdb.insert(&insert, &dialect::insert_settings(version), &plan, blocks)
        .await
        .unwrap();
    let back = format!(
        "SELECT {} FROM types ORDER BY id",
        columns
            .iter()
            .map(|c| format!("toString({})", dialect::quote(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert_eq!(
        texts(&ok(&mut chdb, &back).await),
        [
            [
                "k",
                "-7",
                "['p','q','p']",
                "2024-05-06 07:08:09.123",
                "true",
                "2200-01-02",
                "12.3456",
                "6f1c1d6e-4f5a-4b7a-9c3e-2a1b0c9d8e7f",
                "y"
            ],
            [
                "n",
                "NULL",
                "[]",
                "2024-05-06 07:08:09.123",
                "false",
                "1900-01-01",
                "-0.0001",
                "00000000-0000-0000-0000-000000000000",
                "x"
            ],
        ]
    );
}

#[tokio::test]
async fn error_codes_and_settings_are_the_engines_own() {
    let mut chdb = Chdb::start();
    let codes: Vec<String> = ERROR_CODES.iter().map(|(c, _, _)| c.to_string()).collect();
    let names = ok(
        &mut chdb,
        &format!(
            "SELECT toString(c), errorCodeToName(c) FROM (SELECT arrayJoin([{}]) AS c) ORDER BY c",
            codes.join(", ")
        ),
    )
    .await;
    let names: std::collections::HashMap<String, String> = texts(&names)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    for (code, name, _) in ERROR_CODES {
        assert_eq!(
            names.get(&code.to_string()).map(String::as_str),
            Some(*name),
            "code {code}"
        );
    }
    let version = ServerVersion::parse(&one(&mut chdb, dialect::VERSION_QUERY).await).unwrap();
    let settings = dialect::insert_settings(version);
    let known = ok(
        &mut chdb,
        &format!(
            "SELECT name FROM system.settings WHERE name IN ({}) ORDER BY name",
            settings
                .iter()
                .map(|(n, _)| dialect::literal(n))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .await;
    assert_eq!(known.len(), settings.len(), "{known:?}");
    // A table that sets clean_deleted_rows is refused for deletes.
    ok(&mut chdb, "CREATE DATABASE IF NOT EXISTS d").await;
    ok(
        &mut chdb,
        "CREATE TABLE d.cleaned (id String, ver UInt64, del UInt8) ENGINE = ReplacingMergeTree(ver, del) \
         ORDER BY id SETTINGS clean_deleted_rows = 'Always'",
    )
    .await;
    let info = describe(&mut chdb, "d", "cleaned").await;
    let why = info.engine.delete_refusal("cleaned", version).unwrap();
    assert!(why.contains("clean_deleted_rows = 'Always'"), "{why}");
}
