//! ClickHouse SQL text, type parsing and mapping, table-engine reading, server-version gates and error-code
//! classification — pure functions, unit-tested here.
//!
//! Identifiers are quoted with backticks; the few literals in metadata queries (a table's name) are
//! escaped string literals, since the native protocol of older servers has no query parameters. Row values
//! never appear in SQL: they travel in native blocks.
//!
//! Types are parsed from `system.columns.type` into a [`ChType`] tree (`Nullable`, `LowCardinality` and
//! `Array` at any depth over a scalar). Each maps to a portable [`ColumnType`] and to the type the block
//! is encoded with ([`super::encode::Wire`]): the same type, except `Bool` travels as `UInt8` and `Date32` as its `YYYY-MM-DD` text — and then the insert reads the
//! block through `input()` and casts to the column's type ([`insert_sql`]). Those types, `DateTime64` and
//! the `is_deleted` column of `ReplacingMergeTree` exist only on newer servers: [`ServerVersion`] tells
//! which features a server has.

use sluice_core::capabilities::{Identifiers, LengthUnit, QuoteEscape};
use sluice_core::ColumnType;

use crate::{Capabilities, Deletes, ErrorKind, IdentifierCase, UpsertStyle};

/// ClickHouse, as data.
pub static CAPABILITIES: Capabilities = Capabilities {
    name: "ClickHouse",
    identifiers: Identifiers {
        // ClickHouse accepts long names; Sluice keeps them reasonable.
        max_len: Some(255),
        len_unit: LengthUnit::Bytes,
        quote: '`',
        escape: QuoteEscape::Backslash,
        trailing_space: true,
        case: IdentifierCase::Exact,
    },
    upsert: UpsertStyle::NewVersions,
    deletes: Deletes::Tombstones,
    // Every INSERT makes a part on the server, whose cost hardly depends on its size; and the server
    // merges parts in the background: few, large ones are cheaper on both counts. Measured with the
    // export bench (1M profiles): 30,000 rows is as fast as 50,000 (7.3 s vs 7.5 s; 10,000 took 9.8 s)
    // with 356 MiB of peak memory instead of 531.
    batch_rows: 30_000,
    // Rows travel in native blocks; metadata queries carry escaped literals.
    max_bind_parameters: None,
    max_rows_per_insert: None,
    // Every row is a new version: which of them replaced a row, the engine knows from its sync state.
    reports_upsert_counts: false,
    // Every insert makes a part on the server, which it merges with others in the background: a run's
    // batches go into one long insert instead (the server gathers its blocks into parts of up to about
    // a million rows), confirmed when the engine asks.
    defers_confirmation: true,
    // A ReplacingMergeTree keeps one row per key only once it merges (or when read with FINAL).
    enforces_keys: false,
    lexical: sluice_core::capabilities::lexical::CLICKHOUSE,
};

/// Checks that `name` can be a ClickHouse identifier once quoted; the message names `what`.
pub fn validate_identifier(name: &str, what: &str) -> Result<(), String> {
    CAPABILITIES.validate_identifier(name, what)
}

/// `` `name` ``, with backslashes and backticks escaped.
pub fn quote(name: &str) -> String {
    CAPABILITIES.quote(name)
}

/// `'text'` as a string literal, with backslashes and quotes escaped.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `db`.`table`
pub fn qualified(database: &str, table: &str) -> String {
    format!("{}.{}", quote(database), quote(table))
}

// ---------------------------------------------------------------------------------------------------
// Server versions

/// A server's `major.minor` version, and the features that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
}

impl ServerVersion {
    /// Parses `18.16.1` or `24.3.2.23`; `None` when it is not a version.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().unwrap_or("0").parse().ok()?;
        Some(Self { major, minor })
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }

    /// `LowCardinality` stopped being experimental in 19.0.
    pub fn has_low_cardinality(self) -> bool {
        self.at_least(19, 0)
    }

    /// `DateTime64` arrived in 20.1.
    pub fn has_datetime64(self) -> bool {
        self.at_least(20, 1)
    }

    /// `Date32` arrived in 21.9.
    pub fn has_date32(self) -> bool {
        self.at_least(21, 9)
    }

    /// `Bool` arrived in 21.12.
    pub fn has_bool(self) -> bool {
        self.at_least(21, 12)
    }

    /// `ReplacingMergeTree(version, is_deleted)` arrived in 23.2.
    pub fn has_is_deleted(self) -> bool {
        self.at_least(23, 2)
    }

    /// Whether tombstones can be written and read safely: Sluice deletes from 23.12 on. `is_deleted` came in
    /// 23.2, but before 23.8 a `FINAL` read could still return deleted rows, and before 23.12 the only way
    /// to get rid of tombstones was the table setting `clean_deleted_rows = 'Always'`, whose merges could
    /// drop live rows; 23.12 made `FINAL` reliable and brought `OPTIMIZE … FINAL CLEANUP`, which removes
    /// tombstones without that risk. On 23.8–23.11 tombstones would hide rows but pile up for good.
    pub fn has_safe_deletes(self) -> bool {
        self.at_least(23, 12)
    }

    /// The settings `async_insert` and `wait_for_async_insert` arrived in 21.11.
    pub fn has_async_insert(self) -> bool {
        self.at_least(21, 11)
    }

    /// The `input()` table function (used to cast `Bool` and `Date32`) arrived in 19.15.
    pub fn has_input_function(self) -> bool {
        self.at_least(19, 15)
    }
}

// ---------------------------------------------------------------------------------------------------
// Types

/// A column type as ClickHouse spells it, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChType {
    Nullable(Box<ChType>),
    LowCardinality(Box<ChType>),
    Array(Box<ChType>),
    /// Any other type: its name and its arguments as written (`DateTime64` → `["3", "'UTC'"]`).
    Scalar {
        name: String,
        args: Vec<String>,
    },
}

/// Splits `a, (b, c), 'd,e'` at its top-level commas, trimmed.
fn split_args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut escaped = false;
    let mut current = String::new();
    for c in text.chars() {
        if quoted {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '\'' {
                quoted = false;
            }
            continue;
        }
        match c {
            '\'' => {
                quoted = true;
                current.push(c);
            }
            '(' => {
                depth += 1;
                current.push(c);
            }
            ')' => {
                depth -= 1;
                current.push(c);
            }
            ',' if depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
            }
            _ => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// `Name(args)` → (`Name`, `args`); `Name` → (`Name`, ``).
fn split_call(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    match text.find('(') {
        None => Some((text, "")),
        Some(open) => {
            let inner = text[open + 1..].strip_suffix(')')?;
            Some((text[..open].trim(), inner))
        }
    }
}

impl ChType {
    pub fn parse(text: &str) -> Option<ChType> {
        let (name, inner) = split_call(text)?;
        if name.is_empty() {
            return None;
        }
        let wrap = |inner: &str| ChType::parse(inner).map(Box::new);
        Some(match name {
            "Nullable" => ChType::Nullable(wrap(inner)?),
            "LowCardinality" => ChType::LowCardinality(wrap(inner)?),
            "Array" => ChType::Array(wrap(inner)?),
            _ => ChType::Scalar {
                name: name.to_string(),
                args: split_args(inner),
            },
        })
    }

    /// Whether NULL is a value of the column (the outer type is `Nullable`, maybe under `LowCardinality`).
    pub fn is_nullable(&self) -> bool {
        match self {
            ChType::Nullable(_) => true,
            ChType::LowCardinality(t) => t.is_nullable(),
            _ => false,
        }
    }

    /// The type without `Nullable` and `LowCardinality` around it.
    pub fn base(&self) -> &ChType {
        match self {
            ChType::Nullable(t) | ChType::LowCardinality(t) => t.base(),
            t => t,
        }
    }

    /// Whether the type has `Bool` or `Date32` anywhere, which the block carries as another type.
    pub fn needs_cast(&self) -> bool {
        match self {
            ChType::Nullable(t) | ChType::LowCardinality(t) | ChType::Array(t) => t.needs_cast(),
            ChType::Scalar { name, .. } => matches!(name.as_str(), "Bool" | "Date32"),
        }
    }

    /// The earliest feature of the server this type needs, in words, when `version` lacks it.
    pub fn missing_feature(&self, version: ServerVersion) -> Option<&'static str> {
        match self {
            ChType::Nullable(t) | ChType::LowCardinality(t) | ChType::Array(t) => {
                t.missing_feature(version)
            }
            ChType::Scalar { name, .. } => match name.as_str() {
                "Bool" if !version.has_bool() => Some("Bool (ClickHouse 21.12)"),
                "Date32" if !version.has_date32() => Some("Date32 (ClickHouse 21.9)"),
                "DateTime64" if !version.has_datetime64() => Some("DateTime64 (ClickHouse 20.1)"),
                _ => None,
            },
        }
    }
}

impl std::fmt::Display for ChType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChType::Nullable(t) => write!(f, "Nullable({t})"),
            ChType::LowCardinality(t) => write!(f, "LowCardinality({t})"),
            ChType::Array(t) => write!(f, "Array({t})"),
            ChType::Scalar { name, args } if args.is_empty() => write!(f, "{name}"),
            ChType::Scalar { name, args } => write!(f, "{name}({})", args.join(", ")),
        }
    }
}

/// The labels of `Enum8('a' = 1, 'it\'s' = 2)`, unescaped, with their numbers.
pub fn enum_values(args: &[String]) -> Option<Vec<(String, i16)>> {
    args.iter()
        .map(|a| {
            let (label, number) = a.rsplit_once('=')?;
            let label = label.trim().strip_prefix('\'')?.strip_suffix('\'')?;
            let mut out = String::new();
            let mut chars = label.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    out.push(chars.next()?);
                } else {
                    out.push(c);
                }
            }
            Some((out, number.trim().parse().ok()?))
        })
        .collect()
}

/// `(precision, scale)` of a decimal type, `None` for other types.
pub fn decimal_spec(name: &str, args: &[String]) -> Option<(u8, u8)> {
    let num = |i: usize| args.get(i).and_then(|a| a.trim().parse::<u8>().ok());
    match name {
        "Decimal" => Some((num(0)?, num(1).unwrap_or(0))),
        "Decimal32" => Some((9, num(0)?)),
        "Decimal64" => Some((18, num(0)?)),
        "Decimal128" => Some((38, num(0)?)),
        _ => None,
    }
}

/// The portable type of a ClickHouse column type; `None` when Sluice cannot write it.
pub fn column_type(ty: &ChType) -> Option<ColumnType> {
    let (name, args) = match ty {
        ChType::Nullable(t) | ChType::LowCardinality(t) => return column_type(t),
        ChType::Array(t) => {
            return Some(ColumnType::Array {
                element: Box::new(column_type(t)?),
            })
        }
        ChType::Scalar { name, args } => (name.as_str(), args),
    };
    let int = |bits, unsigned| Some(ColumnType::Int { bits, unsigned });
    match name {
        "Int8" => int(8, false),
        "Int16" => int(16, false),
        "Int32" => int(32, false),
        "Int64" => int(64, false),
        "UInt8" => int(8, true),
        "UInt16" => int(16, true),
        "UInt32" => int(32, true),
        "UInt64" => int(64, true),
        "Float32" => Some(ColumnType::Float { bits: 32 }),
        "Float64" => Some(ColumnType::Float { bits: 64 }),
        "Decimal" | "Decimal32" | "Decimal64" | "Decimal128" => {
            let (p, s) = decimal_spec(name, args)?;
            // Decimal256 needs 256-bit integers, which Sluice's decimals (96 bits) never need.
            (p <= 38).then_some(ColumnType::Decimal {
                precision: Some(p),
                scale: Some(s),
            })
        }
        "String" => Some(ColumnType::Text { max_len: None }),
        // Bytes, not characters: the encoder checks the byte length.
        "FixedString" => Some(ColumnType::Text {
            max_len: args.first()?.parse().ok(),
        }),
        // Addresses are written from their text form.
        "IPv4" | "IPv6" => Some(ColumnType::Text { max_len: None }),
        "UUID" => Some(ColumnType::Uuid),
        "Date" | "Date32" => Some(ColumnType::Date),
        // Both store an instant (seconds or ticks since the epoch); the time zone is only for display.
        "DateTime" | "DateTime64" => Some(ColumnType::Timestamp { with_tz: true }),
        "Bool" => Some(ColumnType::Bool),
        "Enum8" | "Enum16" => Some(ColumnType::Enum {
            values: enum_values(args)?.into_iter().map(|(l, _)| l).collect(),
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------
// Table engines

/// What a table's engine means for upserts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EngineInfo {
    pub engine: String,
    /// Whether rows with the same sorting key replace each other (`ReplacingMergeTree` and its replicated
    /// and shared variants).
    pub replacing: bool,
    /// The sorting key's columns (expressions as written).
    pub sorting_key: Vec<String>,
    /// The version column of `ReplacingMergeTree(version)`.
    pub version: Option<String>,
    /// The `is_deleted` column of `ReplacingMergeTree(version, is_deleted)`.
    pub is_deleted: Option<String>,
    /// The table's `clean_deleted_rows` setting, when it sets one (unquoted).
    pub clean_deleted_rows: Option<String>,
}

/// The value of `name` in the `SETTINGS` clause of an `engine_full`, unquoted.
fn engine_setting(engine_full: &str, name: &str) -> Option<String> {
    let at = engine_full.rfind(" SETTINGS ")?;
    split_args(&engine_full[at + " SETTINGS ".len()..])
        .into_iter()
        .find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('\'').to_string())
        })
}

/// Reads `engine`, `engine_full` and `sorting_key` of `system.tables`.
pub fn engine_info(engine: &str, engine_full: &str, sorting_key: &str) -> EngineInfo {
    let replacing = engine.ends_with("ReplacingMergeTree");
    let mut info = EngineInfo {
        engine: engine.to_string(),
        replacing,
        clean_deleted_rows: engine_setting(engine_full, "clean_deleted_rows"),
        sorting_key: split_args(sorting_key.trim())
            .into_iter()
            .map(|c| unquote_identifier(&c))
            .collect(),
        ..EngineInfo::default()
    };
    if !replacing {
        return info;
    }
    // The arguments of the engine call, without the replication path and replica name (string literals).
    let args: Vec<String> = engine_full
        .trim()
        .strip_prefix(engine)
        .and_then(|rest| {
            let rest = rest.trim_start().strip_prefix('(')?;
            let mut depth = 1;
            let end = rest.char_indices().find_map(|(i, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(i)
            })?;
            Some(split_args(&rest[..end]))
        })
        .unwrap_or_default()
        .into_iter()
        .filter(|a| !a.starts_with('\'') && !a.starts_with('{'))
        .map(|a| unquote_identifier(&a))
        .collect();
    // The old syntax is `(date, (key), granularity[, version])`; the current one `([version[, is_deleted]])`.
    if args.len() >= 3 {
        info.version = args.get(3).cloned();
    } else {
        info.version = args.first().cloned();
        info.is_deleted = args.get(1).cloned();
    }
    info
}

fn unquote_identifier(text: &str) -> String {
    let t = text.trim();
    for q in ['`', '"'] {
        if let Some(inner) = t.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.replace(&format!("\\{q}"), &q.to_string());
        }
    }
    t.to_string()
}

impl EngineInfo {
    /// Why no column of this table can identify rows for upserts, and what to change; `None` when its
    /// sorting key can.
    pub fn table_refusal(&self, table: &str) -> Option<String> {
        if !self.replacing {
            return Some(format!(
                "table `{table}` uses the {} engine, which keeps every row written: ClickHouse replaces rows \
                 by key only in a ReplacingMergeTree table. Create the table with \
                 ENGINE = ReplacingMergeTree(<version column>) ORDER BY <key column>",
                self.engine
            ));
        }
        if self.sorting_key.len() != 1 {
            return Some(format!(
                "the sorting key of table `{table}` is ({}): ClickHouse replaces the rows whose whole sorting key \
                 is equal, so the key column must be the sorting key alone. Recreate the table with \
                 ORDER BY <key column>",
                self.sorting_key.join(", ")
            ));
        }
        None
    }

    /// Why rows of this table cannot be upserted by `key`, and what to change; `None` when they can.
    pub fn key_refusal(&self, table: &str, key: &str) -> Option<String> {
        self.table_refusal(table).or_else(|| {
            (self.sorting_key[0] != key).then(|| {
                format!(
                    "column `{key}` is not the sorting key of table `{table}` (ORDER BY {}), so rows with the same \
                     `{key}` are not replaced: choose `{}` as the key column, or recreate the table with \
                     ORDER BY {}",
                    self.sorting_key[0],
                    self.sorting_key[0],
                    quote(key)
                )
            })
        })
    }

    /// Why rows cannot be deleted from this table, `None` when tombstones can.
    pub fn delete_refusal(&self, table: &str, version: ServerVersion) -> Option<String> {
        if !version.has_safe_deletes() {
            return Some(format!(
                "this ClickHouse server ({}.{}) cannot delete rows safely: `on_leave: delete` needs \
                 ClickHouse 23.12 or later (older servers may show deleted rows with FINAL and cannot remove \
                 tombstones without risking live rows) and a table created with \
                 ENGINE = ReplacingMergeTree(<version>, <is_deleted UInt8>); otherwise use `on_leave: keep`",
                version.major, version.minor
            ));
        }
        if !(self.replacing && self.is_deleted.is_some()) {
            return Some(format!(
                "table `{table}` has no is_deleted column: create it with \
                 ENGINE = ReplacingMergeTree(<version>, <is_deleted UInt8>) so that Sluice can write \
                 tombstones, or use `on_leave: keep`"
            ));
        }
        match self.clean_deleted_rows.as_deref() {
            Some(v) if !v.eq_ignore_ascii_case("Never") => Some(format!(
                "table `{table}` sets clean_deleted_rows = '{v}', which lets merges drop tombstones while \
                 older versions of the same rows survive in other parts, so deleted rows can come back: \
                 remove it (ALTER TABLE … MODIFY SETTING clean_deleted_rows = 'Never') and remove tombstones \
                 with OPTIMIZE TABLE … FINAL CLEANUP instead, or use `on_leave: keep`"
            )),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// SQL

/// The settings every insert is sent with, as far as `version` knows them (a server refuses a setting it
/// does not know):
/// - `async_insert = 0` and `wait_for_async_insert = 1` (21.11 on): a server or user profile that turns
///   asynchronous inserts on (the default from 26.2) would buffer the rows and, with
///   `wait_for_async_insert = 0`, confirm an insert it has not stored yet; Sluice records rows as written
///   once the insert is confirmed.
/// - `insert_deduplicate = 0` (every version): a replicated table would otherwise drop a block equal to one
///   of its recent blocks — a profile written back to the same values with the same mapped version after
///   a change would be lost. A block sent twice does no harm without it: the second copy has the same
///   key and version as the first, and the engine keeps one.
pub fn insert_settings(version: ServerVersion) -> Vec<(&'static str, u64)> {
    let mut settings = Vec::new();
    if version.has_async_insert() {
        settings.push(("async_insert", 0));
        settings.push(("wait_for_async_insert", 1));
    }
    settings.push(("insert_deduplicate", 0));
    settings
}

/// The server's version.
pub const VERSION_QUERY: &str = "SELECT version()";

/// Whether a database exists (a count), for the connection test.
pub fn database_query(database: &str) -> String {
    format!(
        "SELECT count() FROM system.databases WHERE name = {}",
        literal(database)
    )
}

/// How many tables of a database Sluice could upsert into, for the connection test.
pub fn replacing_tables_query(database: &str) -> String {
    format!(
        "SELECT count() FROM system.tables WHERE database = {} AND engine LIKE '%ReplacingMergeTree'",
        literal(database)
    )
}

/// The tables of `database` that hold rows (no views, dictionaries or temporary tables), by name.
pub fn list_tables_query(database: &str) -> String {
    format!(
        "SELECT name FROM system.tables WHERE database = {} AND is_temporary = 0 \
         AND engine NOT IN ('View', 'MaterializedView', 'LiveView', 'Dictionary') ORDER BY name",
        literal(database)
    )
}

/// Engine and keys of a table.
pub fn table_query(database: &str, table: &str) -> String {
    format!(
        "SELECT engine, engine_full, sorting_key FROM system.tables WHERE database = {} AND name = {}",
        literal(database),
        literal(table)
    )
}

/// Columns of a table in table order: name, type, default kind (`DEFAULT`, `MATERIALIZED`, `ALIAS`, ``).
/// (`DESCRIBE` opens only this table; `system.columns` of old servers opens every table of the database
/// and fails when another one is dropped meanwhile.)
pub fn columns_query(database: &str, table: &str) -> String {
    format!("DESCRIBE TABLE {}", qualified(database, table))
}

/// The insert a native block is sent with, into `target` (quoted, maybe qualified). When some column
/// needs a cast (`casts[i]` is the column's type), the block is read through `input()` with its wire
/// structure (`wire[i]`) and cast to the table's types.
pub fn insert_sql(
    target: &str,
    columns: &[String],
    wire: &[String],
    casts: &[Option<String>],
) -> String {
    if casts.iter().all(Option::is_none) {
        return format!("INSERT INTO {target} ({}) VALUES", column_list(columns));
    }
    let selects: Vec<String> = columns
        .iter()
        .zip(casts)
        .map(|(c, cast)| match cast {
            None => quote(c),
            Some(ty) => format!("CAST({} AS {ty})", quote(c)),
        })
        .collect();
    let structure: Vec<String> = columns
        .iter()
        .zip(wire)
        .map(|(c, w)| format!("{} {w}", quote(c)))
        .collect();
    format!(
        "INSERT INTO {target} ({}) SELECT {} FROM input({}) FORMAT Native",
        column_list(columns),
        selects.join(", "),
        literal(&structure.join(", "))
    )
}

/// A session's temporary table shaped like `columns` (name and type pairs).
pub fn create_stage(stage: &str, columns: &[(String, String)]) -> String {
    let defs: Vec<String> = columns
        .iter()
        .map(|(c, t)| format!("{} {t}", quote(c)))
        .collect();
    format!(
        "CREATE TEMPORARY TABLE {} ({}) ENGINE = Memory",
        quote(stage),
        defs.join(", ")
    )
}

pub fn drop_stage(stage: &str) -> String {
    format!("DROP TEMPORARY TABLE IF EXISTS {}", quote(stage))
}

/// The current values of the `kept` columns of the staged keys that are in the table, into `existing`.
pub fn create_existing(
    existing: &str,
    database: &str,
    table: &str,
    stage: &str,
    key: &str,
    kept: &[String],
) -> String {
    let mut cols = vec![key.to_string()];
    cols.extend(kept.iter().cloned());
    format!(
        "CREATE TEMPORARY TABLE {} ENGINE = Memory AS SELECT {} FROM {} FINAL WHERE {k} IN (SELECT {k} FROM {})",
        quote(existing),
        column_list(&cols),
        qualified(database, table),
        quote(stage),
        k = quote(key)
    )
}

/// New versions of the staged rows already in the table: the written columns (the version among them)
/// from the stage, the others (`kept`) as they were.
pub fn insert_updates(
    database: &str,
    table: &str,
    stage: &str,
    existing: &str,
    key: &str,
    written: &[String],
    kept: &[String],
) -> String {
    let mut cols: Vec<String> = written.to_vec();
    cols.extend(kept.iter().cloned());
    format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {} ANY INNER JOIN {} USING {}",
        qualified(database, table),
        quote(stage),
        quote(existing),
        quote(key),
        cols = column_list(&cols),
    )
}

/// The staged rows not yet in the table, with only the written columns (the others get their defaults).
pub fn insert_new(
    database: &str,
    table: &str,
    stage: &str,
    existing: &str,
    key: &str,
    written: &[String],
) -> String {
    format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE {k} NOT IN (SELECT {k} FROM {})",
        qualified(database, table),
        quote(stage),
        quote(existing),
        cols = column_list(written),
        k = quote(key)
    )
}

/// How many of the staged keys are in the table and not deleted (`is_deleted`, when the table has one).
pub fn count_present(
    database: &str,
    table: &str,
    stage: &str,
    key: &str,
    is_deleted: Option<&str>,
) -> String {
    format!(
        "SELECT count() FROM {} FINAL WHERE {}{k} IN (SELECT {k} FROM {})",
        qualified(database, table),
        live_filter(is_deleted),
        quote(stage),
        k = quote(key)
    )
}

/// `` `is_deleted` = 0 AND ``, or nothing. (Servers from 23.12 leave deleted rows out of `FINAL` reads by
/// themselves; saying so costs nothing and keeps the statement right on its own.)
fn live_filter(is_deleted: Option<&str>) -> String {
    is_deleted
        .map(|d| format!("{} = 0 AND ", quote(d)))
        .unwrap_or_default()
}

/// Where a tombstone's version comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TombstoneVersion {
    /// The run's version, staged next to the keys: the engine sets the version column, and every run's
    /// version is above those of the runs before it.
    Run,
    /// The mapping sets the version column from the profile: the current row's version one step up
    /// (`+ 1`: one unit, second or day), so the tombstone hides the row and a profile that comes back with
    /// a higher version of its own shows again. A run's version there would be on another scale (it would
    /// hide the profile for good).
    CurrentPlusOne,
}

/// Tombstones for the staged keys whose row is in the table: a copy of the current row (`FINAL`) with
/// every insertable column (`columns`, without the version and `is_deleted`), a higher version and
/// `is_deleted = 1`. A copy, not a row of defaults: it lands in the same partition as the row it replaces
/// (with `PARTITION BY` another column a row of defaults would land elsewhere and never replace it), a TTL
/// on another column does not expire it at once, and `CHECK` constraints hold as they did. The columns
/// are named instead of `SELECT * REPLACE(…)`, which 18.16 lacks: one statement for every server.
/// `target` is the table's qualified name ([`qualified`]).
pub fn insert_tombstones(
    target: &str,
    stage: &str,
    key: &str,
    columns: &[String],
    version: &str,
    is_deleted: &str,
    source: TombstoneVersion,
) -> String {
    let mut names: Vec<String> = columns
        .iter()
        .filter(|c| *c != version && *c != is_deleted)
        .cloned()
        .collect();
    let mut values: Vec<String> = names.iter().map(|c| quote(c)).collect();
    values.push(match source {
        TombstoneVersion::Run => format!("(SELECT max({}) FROM {})", quote(version), quote(stage)),
        TombstoneVersion::CurrentPlusOne => format!("{} + 1", quote(version)),
    });
    values.push("1".to_string());
    names.push(version.to_string());
    names.push(is_deleted.to_string());
    format!(
        "INSERT INTO {target} ({}) SELECT {} FROM {target} FINAL WHERE {}{k} IN (SELECT {k} FROM {})",
        column_list(&names),
        values.join(", "),
        live_filter(Some(is_deleted)),
        quote(stage),
        k = quote(key),
    )
}

/// The server exception codes Sluice classifies, with ClickHouse's names for them (`errorCodeToName`; the
/// tests check the names against a current server's list) and their kind. Any other code is `Internal`:
/// not retried, shown as the server said it.
pub const ERROR_CODES: &[(i32, &str, ErrorKind)] = &[
    // The data the block carried.
    (6, "CANNOT_PARSE_TEXT", ErrorKind::BadData),
    (
        27,
        "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
        ErrorKind::BadData,
    ),
    (38, "CANNOT_PARSE_DATE", ErrorKind::BadData),
    (41, "CANNOT_PARSE_DATETIME", ErrorKind::BadData),
    (53, "TYPE_MISMATCH", ErrorKind::BadData),
    (69, "ARGUMENT_OUT_OF_BOUND", ErrorKind::BadData),
    (70, "CANNOT_CONVERT_TYPE", ErrorKind::BadData),
    (72, "CANNOT_PARSE_NUMBER", ErrorKind::BadData),
    (131, "TOO_LARGE_STRING_SIZE", ErrorKind::BadData),
    (
        321,
        "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ErrorKind::BadData,
    ),
    (376, "CANNOT_PARSE_UUID", ErrorKind::BadData),
    (407, "DECIMAL_OVERFLOW", ErrorKind::BadData),
    (469, "VIOLATED_CONSTRAINT", ErrorKind::BadData),
    // The table changed under the pipeline.
    (8, "THERE_IS_NO_COLUMN", ErrorKind::SchemaMismatch),
    (10, "NOT_FOUND_COLUMN_IN_BLOCK", ErrorKind::SchemaMismatch),
    (16, "NO_SUCH_COLUMN_IN_TABLE", ErrorKind::SchemaMismatch),
    (47, "UNKNOWN_IDENTIFIER", ErrorKind::SchemaMismatch),
    (60, "UNKNOWN_TABLE", ErrorKind::NotFound),
    (81, "UNKNOWN_DATABASE", ErrorKind::NotFound),
    (218, "TABLE_IS_DROPPED", ErrorKind::NotFound),
    // Who is connecting, and what they may do.
    (192, "UNKNOWN_USER", ErrorKind::Auth),
    (193, "WRONG_PASSWORD", ErrorKind::Auth),
    (194, "REQUIRED_PASSWORD", ErrorKind::Auth),
    (195, "IP_ADDRESS_NOT_ALLOWED", ErrorKind::Auth),
    (516, "AUTHENTICATION_FAILED", ErrorKind::Auth),
    (164, "READONLY", ErrorKind::Permission),
    (291, "DATABASE_ACCESS_DENIED", ErrorKind::Permission),
    (497, "ACCESS_DENIED", ErrorKind::Permission),
    // Slow, and may be faster next time.
    (159, "TIMEOUT_EXCEEDED", ErrorKind::Timeout),
    (160, "TOO_SLOW", ErrorKind::Timeout),
    (209, "SOCKET_TIMEOUT", ErrorKind::Timeout),
    // The server, its disks, its replicas or its coordination are busy or away for now: retried.
    (3, "UNEXPECTED_END_OF_FILE", ErrorKind::Unavailable),
    (32, "ATTEMPT_TO_READ_AFTER_EOF", ErrorKind::Unavailable),
    (173, "CANNOT_ALLOCATE_MEMORY", ErrorKind::Unavailable),
    (201, "QUOTA_EXCEEDED", ErrorKind::Unavailable),
    (202, "TOO_MANY_SIMULTANEOUS_QUERIES", ErrorKind::Unavailable),
    (203, "NO_FREE_CONNECTION", ErrorKind::Unavailable),
    (210, "NETWORK_ERROR", ErrorKind::Unavailable),
    (225, "NO_ZOOKEEPER", ErrorKind::Unavailable),
    (236, "ABORTED", ErrorKind::Unavailable),
    (241, "MEMORY_LIMIT_EXCEEDED", ErrorKind::Unavailable),
    (242, "TABLE_IS_READ_ONLY", ErrorKind::Unavailable),
    (243, "NOT_ENOUGH_SPACE", ErrorKind::Unavailable),
    (244, "UNEXPECTED_ZOOKEEPER_ERROR", ErrorKind::Unavailable),
    // Split by its message, see [`error_kind`]: "too many parts" waits for merges.
    (252, "TOO_MANY_PARTS", ErrorKind::Unavailable),
    (254, "NO_ACTIVE_REPLICAS", ErrorKind::Unavailable),
    (279, "ALL_CONNECTION_TRIES_FAILED", ErrorKind::Unavailable),
    (285, "TOO_FEW_LIVE_REPLICAS", ErrorKind::Unavailable),
    (
        286,
        "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
        ErrorKind::Unavailable,
    ),
    (319, "UNKNOWN_STATUS_OF_INSERT", ErrorKind::Unavailable),
    (394, "QUERY_WAS_CANCELLED", ErrorKind::Unavailable),
    (415, "ALL_REPLICAS_LOST", ErrorKind::Unavailable),
    (425, "SYSTEM_ERROR", ErrorKind::Unavailable),
    (439, "CANNOT_SCHEDULE_TASK", ErrorKind::Unavailable),
    (473, "DEADLOCK_AVOIDED", ErrorKind::Unavailable),
    // S3-backed storage refused or failed a request (throttling, a store away): not the user's rights on
    // the table.
    (499, "S3_ERROR", ErrorKind::Unavailable),
    (517, "CANNOT_ASSIGN_ALTER", ErrorKind::Unavailable),
    (519, "NO_REMOTE_SHARD_AVAILABLE", ErrorKind::Unavailable),
    (999, "KEEPER_EXCEPTION", ErrorKind::Unavailable),
    (1000, "POCO_EXCEPTION", ErrorKind::Unavailable),
];

// Drift checks read the table back.

/// Whether `system.tables` has a `uuid` column (18.16 has not).
pub const HAS_TABLE_UUID_QUERY: &str =
    "SELECT count() FROM system.columns WHERE database = 'system' AND table = 'tables' AND name = 'uuid'";

/// A table's identity and engine: its `uuid`, or on servers without one the metadata file's modification
/// time.
pub fn identity_query(has_uuid: bool, database: &str, table: &str) -> String {
    let marker = if has_uuid {
        "toString(uuid)"
    } else {
        "toString(metadata_modification_time)"
    };
    format!(
        "SELECT {marker}, engine FROM system.tables WHERE database = {} AND name = {}",
        literal(database),
        literal(table)
    )
}

/// `FROM db.t [FINAL]` and the condition of a live row (`is_deleted = 0`, or `1`): the rows as Sluice
/// reads them.
pub fn live_rows(engine: &EngineInfo, database: &str, table: &str) -> (String, String) {
    let from = format!(
        "{}{}",
        qualified(database, table),
        if engine.replacing { " FINAL" } else { "" }
    );
    let live = match &engine.is_deleted {
        Some(c) => format!("{} = 0", quote(c)),
        None => "1".to_string(),
    };
    (from, live)
}

/// How many live rows `from` has (see [`live_rows`]).
pub fn count_live(from: &str, live: &str) -> String {
    format!("SELECT count() FROM {from} WHERE {live}")
}

/// `columns` (a select list) of the live rows whose key is in `stage`.
pub fn read_live(columns: &str, from: &str, live: &str, stage: &str, key: &str) -> String {
    format!(
        "SELECT {columns} FROM {from} WHERE {live} AND {k} IN (SELECT {k} FROM {})",
        quote(stage),
        k = quote(key)
    )
}

/// `toString` of `column`; instants in UTC whatever the column's or the server's time zone.
pub fn text_expr(column: &str, ty: Option<&ColumnType>) -> String {
    match ty {
        Some(ColumnType::Timestamp { .. }) => format!("toString({}, 'UTC')", quote(column)),
        _ => format!("toString({})", quote(column)),
    }
}

/// The error kind of a server exception: its code, and for code 252 its message — TOO_MANY_PARTS is
/// both "too many parts" (merges are behind: retry later) and "too many partitions for single INSERT
/// block" (the batch spans more partitions than `max_partitions_per_insert_block` allows: the same batch
/// fails every time, so it is bad data, which smaller batches can get past).
pub fn error_kind(code: i32, message: &str) -> ErrorKind {
    if code == 252 && message.to_ascii_lowercase().contains("too many partitions") {
        return ErrorKind::BadData;
    }
    ERROR_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(ErrorKind::Internal, |(_, _, kind)| *kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quotes_and_literals() {
        assert_eq!(quote("a`b"), "`a\\`b`");
        assert_eq!(quote("a\\b"), "`a\\\\b`");
        assert_eq!(literal("it's \\"), "'it\\'s \\\\'");
        assert!(validate_identifier("", "t").is_err());
        assert!(validate_identifier("ok", "t").is_ok());
        assert!(validate_identifier("a\0", "t").is_err());
    }

    #[test]
    fn version_gates() {
        let v = |s| ServerVersion::parse(s).unwrap();
        let old = v("18.16.1");
        assert!(!old.has_bool() && !old.has_datetime64() && !old.has_date32());
        assert!(!old.has_is_deleted() && !old.has_input_function() && !old.has_low_cardinality());
        let new = v("24.3.2.23");
        assert!(new.has_bool() && new.has_datetime64() && new.has_date32());
        assert!(new.has_is_deleted() && new.has_input_function());
        assert!(!v("23.1").has_is_deleted() && v("23.2").has_is_deleted());
        assert!(!v("23.11").has_safe_deletes() && v("23.12").has_safe_deletes());
        assert!(v("24.1").has_safe_deletes() && !v("23.8").has_safe_deletes());
        assert!(!v("21.10").has_async_insert() && v("21.11").has_async_insert());
        assert!(!v("21.11").has_bool() && v("21.12").has_bool());
        assert_eq!(ServerVersion::parse("x"), None);
        let bool_col = ChType::parse("Nullable(Bool)").unwrap();
        assert_eq!(
            bool_col.missing_feature(old),
            Some("Bool (ClickHouse 21.12)")
        );
        assert_eq!(bool_col.missing_feature(new), None);
        assert!(ChType::parse("Array(DateTime64(3, 'UTC'))")
            .unwrap()
            .missing_feature(old)
            .is_some());
    }

    #[test]
    fn parses_types() {
        let t = ChType::parse("Array(Nullable(LowCardinality(String)))").unwrap();
        assert_eq!(t.to_string(), "Array(Nullable(LowCardinality(String)))");
        assert!(!t.is_nullable());
        let t = ChType::parse("LowCardinality(Nullable(String))").unwrap();
        assert!(t.is_nullable());
        assert_eq!(t.base(), &ChType::parse("String").unwrap());
        let t = ChType::parse("DateTime64(3, 'Asia/Kathmandu')").unwrap();
        assert_eq!(
            t,
            ChType::Scalar {
                name: "DateTime64".into(),
                args: vec!["3".into(), "'Asia/Kathmandu'".into()]
            }
        );
        let t = ChType::parse("Enum8('a' = 1, 'it\\'s, ok' = -2)").unwrap();
        let ChType::Scalar { args, .. } = &t else {
            panic!()
        };
        assert_eq!(
            enum_values(args).unwrap(),
            vec![("a".to_string(), 1), ("it's, ok".to_string(), -2)]
        );
        assert_eq!(ChType::parse("Array(String"), None);
    }

    #[test]
    fn maps_types() {
        let m = |s: &str| column_type(&ChType::parse(s).unwrap());
        assert_eq!(
            m("UInt64"),
            Some(ColumnType::Int {
                bits: 64,
                unsigned: true
            })
        );
        assert_eq!(
            m("Nullable(Int8)"),
            Some(ColumnType::Int {
                bits: 8,
                unsigned: false
            })
        );
        assert_eq!(
            m("Decimal(18, 4)"),
            Some(ColumnType::Decimal {
                precision: Some(18),
                scale: Some(4)
            })
        );
        assert_eq!(
            m("Decimal128(10)"),
            Some(ColumnType::Decimal {
                precision: Some(38),
                scale: Some(10)
            })
        );
        assert_eq!(m("Decimal(60, 2)"), None);
        assert_eq!(
            m("FixedString(2)"),
            Some(ColumnType::Text { max_len: Some(2) })
        );
        assert_eq!(
            m("LowCardinality(Nullable(String))"),
            Some(ColumnType::Text { max_len: None })
        );
        assert_eq!(m("IPv6"), Some(ColumnType::Text { max_len: None }));
        assert_eq!(m("Date32"), Some(ColumnType::Date));
        assert_eq!(
            m("DateTime64(6, 'UTC')"),
            Some(ColumnType::Timestamp { with_tz: true })
        );
        assert_eq!(
            m("DateTime('Europe/Rome')"),
            Some(ColumnType::Timestamp { with_tz: true })
        );
        assert_eq!(m("Bool"), Some(ColumnType::Bool));
        assert_eq!(m("UUID"), Some(ColumnType::Uuid));
        assert_eq!(
            m("Array(Array(Nullable(UInt8)))"),
            Some(ColumnType::Array {
                element: Box::new(ColumnType::Array {
                    element: Box::new(ColumnType::Int {
                        bits: 8,
                        unsigned: true
                    })
                })
            })
        );
        assert_eq!(
            m("Enum16('x' = 1, 'y' = 2)"),
            Some(ColumnType::Enum {
                values: vec!["x".into(), "y".into()]
            })
        );
        for unsupported in [
            "Map(String, UInt8)",
            "Tuple(UInt8, String)",
            "Int128",
            "JSON",
            "Array(Map(String, String))",
        ] {
            assert_eq!(m(unsupported), None, "{unsupported}");
        }
    }

    #[test]
    fn casts() {
        assert!(ChType::parse("Nullable(Date32)").unwrap().needs_cast());
        assert!(!ChType::parse("Nullable(Date)").unwrap().needs_cast());
        let sql = insert_sql(
            "`db`.`t`",
            &cols(&["id", "ok", "day"]),
            &cols(&["UInt64", "UInt8", "Nullable(String)"]),
            &[None, Some("Bool".into()), Some("Nullable(Date32)".into())],
        );
        assert_eq!(
            sql,
            "INSERT INTO `db`.`t` (`id`, `ok`, `day`) SELECT `id`, CAST(`ok` AS Bool), \
             CAST(`day` AS Nullable(Date32)) FROM input('`id` UInt64, `ok` UInt8, `day` Nullable(String)') \
             FORMAT Native"
        );
        assert_eq!(
            insert_sql(
                "`db`.`t`",
                &cols(&["id", "n"]),
                &cols(&["UInt64", "String"]),
                &[None, None]
            ),
            "INSERT INTO `db`.`t` (`id`, `n`) VALUES"
        );
    }

    #[test]
    fn reads_engines() {
        let e = engine_info(
            "ReplacingMergeTree",
            "ReplacingMergeTree(version) ORDER BY id SETTINGS index_granularity = 8192",
            "id",
        );
        assert!(e.replacing);
        assert_eq!(e.version.as_deref(), Some("version"));
        assert_eq!(e.is_deleted, None);
        assert_eq!(e.key_refusal("t", "id"), None);
        assert!(e
            .key_refusal("t", "name")
            .unwrap()
            .contains("not the sorting key"));
        let e = engine_info(
            "ReplicatedReplacingMergeTree",
            "ReplicatedReplacingMergeTree('/clickhouse/{shard}/t', '{replica}', `ver`, is_deleted) ORDER BY (id)",
            "id",
        );
        assert_eq!(
            (e.version.as_deref(), e.is_deleted.as_deref()),
            (Some("ver"), Some("is_deleted"))
        );
        assert_eq!(
            e.delete_refusal("t", ServerVersion::parse("24.3").unwrap()),
            None
        );
        // Deletes wait for 23.12 (FINAL and cleanup right), even with an is_deleted column.
        let why = e
            .delete_refusal("t", ServerVersion::parse("23.8").unwrap())
            .unwrap();
        assert!(why.contains("23.12") && why.contains("23.8"), "{why}");
        let e = engine_info(
            "ReplacingMergeTree",
            "ReplacingMergeTree(v, d) ORDER BY id SETTINGS index_granularity = 8192, clean_deleted_rows = 'Always'",
            "id",
        );
        assert_eq!(e.clean_deleted_rows.as_deref(), Some("Always"));
        let why = e
            .delete_refusal("t", ServerVersion::parse("24.3").unwrap())
            .unwrap();
        assert!(
            why.contains("clean_deleted_rows = 'Always'") && why.contains("CLEANUP"),
            "{why}"
        );
        let e = engine_info(
            "ReplacingMergeTree",
            "ReplacingMergeTree(v, d) ORDER BY id SETTINGS clean_deleted_rows = 'Never', index_granularity = 8192",
            "id",
        );
        assert_eq!(e.clean_deleted_rows.as_deref(), Some("Never"));
        assert_eq!(
            e.delete_refusal("t", ServerVersion::parse("24.3").unwrap()),
            None
        );
        let e = engine_info(
            "ReplacingMergeTree",
            "ReplacingMergeTree ORDER BY (a, b)",
            "a, b",
        );
        assert_eq!(e.version, None);
        assert_eq!(e.sorting_key, ["a", "b"]);
        assert!(e.key_refusal("t", "a").unwrap().contains("is (a, b)"));
        let e = engine_info(
            "ReplacingMergeTree",
            "ReplacingMergeTree ORDER BY tuple()",
            "",
        );
        assert!(e.table_refusal("t").unwrap().contains("sorting key alone"));
        let e = engine_info(
            "ReplacingMergeTree",
            "ReplacingMergeTree(d, (id), 8192, ver)",
            "id",
        );
        assert_eq!(e.version.as_deref(), Some("ver"));
        let e = engine_info("MergeTree", "MergeTree ORDER BY id", "id");
        let why = e.key_refusal("t", "id").unwrap();
        assert!(
            why.contains("MergeTree engine") && why.contains("ReplacingMergeTree"),
            "{why}"
        );
        let old = ServerVersion::parse("18.16.1").unwrap();
        let why = e.delete_refusal("t", old).unwrap();
        assert!(
            why.contains("23.12") && why.contains("on_leave: keep"),
            "{why}"
        );
        let new = ServerVersion::parse("23.12").unwrap();
        let e = engine_info(
            "ReplacingMergeTree",
            "ReplacingMergeTree(v) ORDER BY id",
            "id",
        );
        assert!(e.delete_refusal("t", new).unwrap().contains("is_deleted"));
    }

    #[test]
    fn golden_sql() {
        assert_eq!(
            table_query("d", "it's"),
            "SELECT engine, engine_full, sorting_key FROM system.tables WHERE database = 'd' AND name = 'it\\'s'"
        );
        assert_eq!(
            create_stage(
                "s",
                &[
                    ("id".into(), "String".into()),
                    ("n".into(), "Nullable(Int32)".into())
                ]
            ),
            "CREATE TEMPORARY TABLE `s` (`id` String, `n` Nullable(Int32)) ENGINE = Memory"
        );
        assert_eq!(
            create_existing("e", "db", "t", "s", "id", &cols(&["email"])),
            "CREATE TEMPORARY TABLE `e` ENGINE = Memory AS SELECT `id`, `email` FROM `db`.`t` FINAL \
             WHERE `id` IN (SELECT `id` FROM `s`)"
        );
        assert_eq!(
            insert_updates("db", "t", "s", "e", "id", &cols(&["id", "name", "ver"]), &cols(&["email"])),
            "INSERT INTO `db`.`t` (`id`, `name`, `ver`, `email`) SELECT `id`, `name`, `ver`, `email` \
             FROM `s` ANY INNER JOIN `e` USING `id`"
        );
        assert_eq!(
            insert_new("db", "t", "s", "e", "id", &cols(&["id", "name", "ver"])),
            "INSERT INTO `db`.`t` (`id`, `name`, `ver`) SELECT `id`, `name`, `ver` FROM `s` \
             WHERE `id` NOT IN (SELECT `id` FROM `e`)"
        );
        assert_eq!(
            count_present("db", "t", "s", "id", None),
            "SELECT count() FROM `db`.`t` FINAL WHERE `id` IN (SELECT `id` FROM `s`)"
        );
        assert_eq!(
            count_present("db", "t", "s", "id", Some("del")),
            "SELECT count() FROM `db`.`t` FINAL WHERE `del` = 0 AND `id` IN (SELECT `id` FROM `s`)"
        );
        let columns = cols(&["id", "ver", "name", "del", "day"]);
        assert_eq!(
            insert_tombstones(
                "`db`.`t`",
                "s",
                "id",
                &columns,
                "ver",
                "del",
                TombstoneVersion::Run
            ),
            "INSERT INTO `db`.`t` (`id`, `name`, `day`, `ver`, `del`) \
             SELECT `id`, `name`, `day`, (SELECT max(`ver`) FROM `s`), 1 FROM `db`.`t` FINAL \
             WHERE `del` = 0 AND `id` IN (SELECT `id` FROM `s`)"
        );
        assert_eq!(
            insert_tombstones(
                "`db`.`t`",
                "s",
                "id",
                &columns,
                "ver",
                "del",
                TombstoneVersion::CurrentPlusOne
            ),
            "INSERT INTO `db`.`t` (`id`, `name`, `day`, `ver`, `del`) \
             SELECT `id`, `name`, `day`, `ver` + 1, 1 FROM `db`.`t` FINAL \
             WHERE `del` = 0 AND `id` IN (SELECT `id` FROM `s`)"
        );
    }

    #[test]
    fn classifies_errors() {
        let kind = |code| error_kind(code, "");
        assert_eq!(kind(60), ErrorKind::NotFound);
        assert_eq!(kind(16), ErrorKind::SchemaMismatch);
        assert_eq!(kind(516), ErrorKind::Auth);
        assert_eq!(kind(193), ErrorKind::Auth);
        assert_eq!(kind(497), ErrorKind::Permission);
        assert_eq!(kind(159), ErrorKind::Timeout);
        assert_eq!(kind(53), ErrorKind::BadData);
        assert_eq!(kind(1), ErrorKind::Internal);
        // An S3 failure is no question of rights.
        assert_eq!(kind(499), ErrorKind::Unavailable);
        // Failures that pass: retried.
        for code in [
            319, 999, 225, 394, 236, 439, 285, 286, 203, 3, 32, 1000, 210, 241,
        ] {
            assert!(kind(code).is_transient(), "{code}");
        }
        // 252 by its message, as servers word it.
        assert_eq!(
            error_kind(
                252,
                "Too many parts (300). Merges are processing significantly slower than inserts"
            ),
            ErrorKind::Unavailable
        );
        assert_eq!(
            error_kind(
                252,
                "Too many partitions for single INSERT block (more than 100). The limit is controlled by \
                 'max_partitions_per_insert_block' setting."
            ),
            ErrorKind::BadData
        );
        // One entry per code.
        let mut codes: Vec<i32> = ERROR_CODES.iter().map(|(c, _, _)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ERROR_CODES.len());
    }

    #[test]
    fn insert_settings_by_version() {
        let v = |s| ServerVersion::parse(s).unwrap();
        assert_eq!(insert_settings(v("18.16.1")), [("insert_deduplicate", 0)]);
        assert_eq!(
            insert_settings(v("26.2")),
            [
                ("async_insert", 0),
                ("wait_for_async_insert", 1),
                ("insert_deduplicate", 0)
            ]
        );
    }
}
