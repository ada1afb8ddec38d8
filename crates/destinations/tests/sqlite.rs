//! The conformance suite against the embedded SQLite destination, plus SQLite-specific cases.
//!
//! Each test gets its own database file in a fresh temporary folder (removed when the harness drops).

mod conformance;
mod sources;

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use conformance::{Harness, Shape};
use rusqlite::types::ValueRef;
use sluice_core::ColumnType;
use sluice_destinations::source::Source;
use sluice_destinations::sqlite::{Sqlite, SqliteSettings};
use sluice_destinations::{Destination, ErrorKind};

struct Lite {
    dir: PathBuf,
    path: PathBuf,
    conn: Mutex<rusqlite::Connection>,
}

async fn harness() -> Lite {
    let dir = std::env::temp_dir().join(format!(
        "sluice-sqlite-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dest.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    Lite {
        dir,
        path,
        conn: Mutex::new(conn),
    }
}

impl Drop for Lite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[async_trait]
impl Harness for Lite {
    fn destination(&self) -> Box<dyn Destination> {
        Box::new(Sqlite::new(SqliteSettings::new(&self.path)))
    }

    /// A SQLite destination is a file, created when missing: there is no database to get wrong.
    fn missing_database(&self, _database: &str) -> Option<Box<dyn Destination>> {
        None
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        Ok(self.conn.lock().unwrap().execute_batch(sql)?)
    }

    async fn query(&self, sql: &str) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(n) => Some(n.to_string()),
                    // Rust prints the shortest text that reads back as the same float.
                    ValueRef::Real(f) => Some(f.to_string()),
                    ValueRef::Text(t) => Some(String::from_utf8(t.to_vec())?),
                    ValueRef::Blob(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
                });
            }
            out.push(cells);
        }
        Ok(out)
    }

    fn create_table(&self, shape: Shape, table: &str) -> String {
        let t = self.quote(table);
        match shape {
            Shape::People => format!(
                "CREATE TABLE {t} (id VARCHAR(64) NOT NULL PRIMARY KEY, email TEXT UNIQUE, name TEXT, age INTEGER, \
                 note TEXT NOT NULL DEFAULT 'default note', code TEXT CHECK (length(code) <= 5), \
                 qty INTEGER CHECK (qty >= 0))"
            ),
            Shape::Accounts => {
                format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL UNIQUE, name TEXT)")
            }
            Shape::Types => format!(
                "CREATE TABLE {t} (id INTEGER PRIMARY KEY, t_text TEXT NOT NULL, t_varchar VARCHAR(20), \
                 t_int2 SMALLINT, t_int4 INTEGER, t_int8 BIGINT, t_float REAL, t_decimal DECIMAL(28,10), \
                 t_bool BOOLEAN, t_date DATE, t_time TIME, t_ts DATETIME, t_tstz TIMESTAMP WITH TIME ZONE, \
                 t_uuid UUID, t_json JSON, t_bytes BLOB, t_unique TEXT UNIQUE)"
            ),
            Shape::UuidKeyed => format!("CREATE TABLE {t} (id UUID NOT NULL PRIMARY KEY, name TEXT)"),
            Shape::IntKeyed => format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY, n INTEGER)"),
        }
    }

    fn drop_table(&self, table: &str) -> String {
        format!("DROP TABLE IF EXISTS {}", self.quote(table))
    }

    fn quote(&self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }

    fn text_expr(&self, column: &str, ty: &ColumnType) -> String {
        let c = self.quote(column);
        match ty {
            ColumnType::Bool => {
                format!("CASE WHEN {c} IS NULL THEN NULL WHEN {c} THEN 'true' ELSE 'false' END")
            }
            // Blobs come back as hex and arrays are stored as JSON text already (see `query`).
            _ => c,
        }
    }

    fn expected_types(&self) -> Vec<(&'static str, Option<ColumnType>)> {
        vec![
            ("t_text", Some(ColumnType::Text { max_len: None })),
            ("t_varchar", Some(ColumnType::Text { max_len: Some(20) })),
            (
                "t_int2",
                Some(ColumnType::Int {
                    bits: 16,
                    unsigned: false,
                }),
            ),
            (
                "t_int4",
                Some(ColumnType::Int {
                    bits: 64,
                    unsigned: false,
                }),
            ),
            (
                "t_int8",
                Some(ColumnType::Int {
                    bits: 64,
                    unsigned: false,
                }),
            ),
            ("t_float", Some(ColumnType::Float { bits: 64 })),
            (
                "t_decimal",
                Some(ColumnType::Decimal {
                    precision: Some(28),
                    scale: Some(10),
                }),
            ),
            ("t_bool", Some(ColumnType::Bool)),
            ("t_date", Some(ColumnType::Date)),
            ("t_time", Some(ColumnType::Time)),
            ("t_ts", Some(ColumnType::Timestamp { with_tz: false })),
            ("t_tstz", Some(ColumnType::Timestamp { with_tz: true })),
            ("t_uuid", Some(ColumnType::Uuid)),
            ("t_json", Some(ColumnType::Json)),
            ("t_bytes", Some(ColumnType::Binary)),
            ("t_unique", Some(ColumnType::Text { max_len: None })),
        ]
    }

    /// SQLite stores numeric-looking text in a NUMERIC-affinity column (DECIMAL) as a 64-bit float.
    fn exact_decimals(&self) -> bool {
        false
    }

    fn too_long_message(&self) -> &'static str {
        "CHECK constraint failed"
    }

    fn check_violation_message(&self) -> &'static str {
        "CHECK constraint failed"
    }
}

conformance_tests!(harness());

/// SQLite has one writer at a time, so the late-commit case writes the late row after the first read
/// instead of holding a transaction open; there is no server to be unreachable.
impl sources::SourceHarness for Lite {
    fn source(&self) -> Box<dyn Source> {
        Box::new(Sqlite::new(SqliteSettings::new(&self.path)))
    }

    fn source_table(&self, table: &str, kind: sources::IdKind) -> String {
        let id = match kind {
            sources::IdKind::Text => "TEXT",
            sources::IdKind::Int => "INTEGER",
            sources::IdKind::Uuid => "UUID",
        };
        format!(
            "CREATE TABLE {} (id {id} NOT NULL PRIMARY KEY, email TEXT, age INTEGER, score NUMERIC(10,2), \
             active BOOLEAN, updated_at TIMESTAMP NOT NULL, seq INTEGER NOT NULL, attrs JSON)",
            self.quote(table)
        )
    }

    fn unreachable(&self) -> Option<Box<dyn Source>> {
        None
    }

    fn slow_query(&self) -> Option<String> {
        // Counts for ever: only the interrupt at the deadline ends it.
        Some(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) AS n FROM r"
                .into(),
        )
    }
}

source_tests!(harness());
source_tests!(guards harness());

// ---------------------------------------------------------------------------------------------------
// SQLite-specific cases

#[tokio::test]
async fn test_reports_version_and_creates_missing_folders() {
    let h = harness().await;
    let path = h.dir.join("nested/deeper/new.sqlite");
    let dest = Sqlite::new(SqliteSettings::new(&path));
    let report = dest.test().await.unwrap();
    assert!(
        report.server_version.starts_with("SQLite 3."),
        "{}",
        report.server_version
    );
    assert!(path.exists());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let h = harness().await;
    let path = h.dir.join("notes.txt");
    std::fs::write(
        &path,
        "these are not the tables you are looking for, not at all".repeat(20),
    )
    .unwrap();
    let err = Sqlite::new(SqliteSettings::new(&path))
        .test()
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Config, "{err}");
    assert!(err.message.contains("not a database"), "{err}");
}

#[tokio::test]
async fn describe_is_case_insensitive_and_skips_partial_and_expression_indexes() {
    let h = harness().await;
    h.execute(
        "CREATE TABLE Customers (id INTEGER PRIMARY KEY, email TEXT, code TEXT, a TEXT, b TEXT, g TEXT GENERATED ALWAYS AS (upper(code)));
         CREATE UNIQUE INDEX customers_email ON Customers (lower(email));
         CREATE UNIQUE INDEX customers_code ON Customers (code) WHERE code IS NOT NULL;
         CREATE UNIQUE INDEX customers_ab ON Customers (a, b);",
    )
    .await
    .unwrap();
    let desc = h
        .destination()
        .describe_table("customers")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(desc.name, "Customers");
    assert_eq!(
        desc.keys,
        vec![
            vec!["id".to_string()],
            vec!["a".to_string(), "b".to_string()]
        ]
    );
    assert!(
        desc.column("id").unwrap().has_default,
        "INTEGER PRIMARY KEY is filled in by SQLite"
    );
    let g = desc.column("g").unwrap();
    assert!(g.ty.is_none());
    assert!(
        desc.issues.iter().any(|i| i.contains("`g` is generated")),
        "{:?}",
        desc.issues
    );
}

#[tokio::test]
async fn a_read_only_file_is_a_permission_error() {
    let h = harness().await;
    h.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let mut perms = std::fs::metadata(&h.path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&h.path, perms).unwrap();
    let result = Sqlite::new(SqliteSettings::new(&h.path)).test().await;
    let mut perms = std::fs::metadata(&h.path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&h.path, perms).unwrap();
    // Root ignores file permissions; then the file is in fact writable and the test passes.
    let running_as_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    if running_as_root {
        result.expect("root can write a read-only file");
    } else {
        let err = result.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Permission, "{err}");
    }
}
