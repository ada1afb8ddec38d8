//! Snowflake SQL text, native-type mapping, value bindings, batch planning and error-code classification —
//! pure functions, unit-tested here.
//!
//! Identifiers are always double-quoted (so they are case-sensitive); settings such as the database name
//! follow Snowflake's rule for unquoted identifiers (upper-cased) when they are plain words. Values are
//! always bound: Snowflake's JSON protocol carries each binding as a `{type, value}` pair of text, in the
//! forms of [`binding`].

use std::collections::HashMap;

use chrono::{NaiveDate, Timelike};
use sluice_core::capabilities::{Identifiers, LengthUnit, QuoteEscape};
use sluice_core::{ColumnType, Value};

use crate::{Capabilities, Deletes, ErrorKind, IdentifierCase, Row, UpsertStyle};

/// Snowflake, as data.
pub static CAPABILITIES: Capabilities = Capabilities {
    name: "Snowflake",
    identifiers: Identifiers {
        max_len: Some(255),
        len_unit: LengthUnit::Characters,
        quote: '"',
        escape: QuoteEscape::Doubled,
        trailing_space: true,
        // Users name columns as in Snowflake's SQL, where unquoted names are upper-cased.
        case: IdentifierCase::UnquotedInsensitive,
    },
    upsert: UpsertStyle::Merge,
    deletes: Deletes::ByKey,
    batch_rows: 10_000,
    max_bind_parameters: None,
    max_rows_per_insert: Some(16_384),
    reports_upsert_counts: true,
    defers_confirmation: false,
    // Primary and unique keys are recorded, not enforced.
    enforces_keys: false,
    lexical: sluice_core::capabilities::lexical::SNOWFLAKE,
};

/// Snowflake's limit on the rows of one `VALUES` list.
pub const MAX_ROWS_PER_INSERT: usize = match CAPABILITIES.max_rows_per_insert {
    Some(n) => n,
    None => usize::MAX,
};

/// Snowflake's VARCHAR without a length is VARCHAR(16777216).
const UNBOUNDED_VARCHAR: u32 = 16_777_216;

/// Checks that `name` can be a Snowflake identifier once quoted; the message names `what`.
pub fn validate_identifier(name: &str, what: &str) -> Result<(), String> {
    CAPABILITIES.validate_identifier(name, what)
}

/// `"name"`, with inner double quotes doubled.
pub fn quote(name: &str) -> String {
    CAPABILITIES.quote(name)
}

/// Whether `name` is a plain word that Snowflake would upper-case when written unquoted.
pub fn is_plain(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A database, schema, role or warehouse name from the settings, quoted: a plain word means what it would
/// unquoted (`crm` is `CRM`), anything else is taken exactly.
pub fn setting_ident(name: &str) -> String {
    if is_plain(name) {
        quote(&name.to_ascii_uppercase())
    } else {
        quote(name)
    }
}

/// `"DB"."SCHEMA"."table"`.
pub fn qualified(database: &str, schema: &str, table: &str) -> String {
    format!(
        "{}.{}.{}",
        setting_ident(database),
        setting_ident(schema),
        quote(table)
    )
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn use_role(role: &str) -> String {
    format!("USE ROLE {}", setting_ident(role))
}
pub fn use_warehouse(warehouse: &str) -> String {
    format!("USE WAREHOUSE {}", setting_ident(warehouse))
}
pub fn use_database(database: &str) -> String {
    format!("USE DATABASE {}", setting_ident(database))
}
pub fn use_schema(database: &str, schema: &str) -> String {
    format!(
        "USE SCHEMA {}.{}",
        setting_ident(database),
        setting_ident(schema)
    )
}

/// Whether a statement only reads or sets metadata (`DESCRIBE`, `SHOW`, `USE`, and a table's whole row
/// count, which Snowflake keeps per micro-partition), which Snowflake answers from its cloud services
/// without a running warehouse.
pub fn is_metadata_only(sql: &str) -> bool {
    let head = sql.split_whitespace().next().unwrap_or("");
    ["DESCRIBE", "DESC", "SHOW", "USE"]
        .iter()
        .any(|k| head.eq_ignore_ascii_case(k))
        || is_row_count(sql)
}

/// `SELECT COUNT(*) FROM <qualified table>`: the whole table's row count (see [`row_count`]).
pub fn row_count(qualified_table: &str) -> String {
    format!("SELECT COUNT(*) FROM {qualified_table}")
}

/// Whether `sql` is exactly [`row_count`] of a table: a name of quoted or plain parts and nothing after
/// it (no filter, which would need a warehouse).
fn is_row_count(sql: &str) -> bool {
    let Some(mut rest) = sql.strip_prefix("SELECT COUNT(*) FROM ") else {
        return false;
    };
    loop {
        if let Some(quoted) = rest.strip_prefix('"') {
            // A quoted part ends at a quote not doubled.
            let mut end = None;
            let b = quoted.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    end = Some(i);
                    break;
                }
                i += 1;
            }
            let Some(end) = end else { return false };
            rest = &quoted[end + 1..];
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(rest.len());
            if end == 0 {
                return false;
            }
            rest = &rest[end..];
        }
        match rest.strip_prefix('.') {
            Some(next) => rest = next,
            None => return rest.is_empty(),
        }
    }
}

/// The schemas of a database (metadata only): one row per schema with its `name`. Fails when the
/// database does not exist (or the role may not see it).
pub fn show_schemas(database: &str) -> String {
    format!("SHOW SCHEMAS IN DATABASE {}", setting_ident(database))
}

/// The databases the role can see: one row per database with its `name`.
pub const SHOW_DATABASES: &str = "SHOW DATABASES";

/// A database or schema name from the settings as the server stores it (see [`setting_ident`]).
pub fn stored_setting_name(name: &str) -> String {
    if is_plain(name) {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    }
}

/// The tables of a schema (metadata only, no warehouse): one row per table with its `name`.
pub fn show_tables(database: &str, schema: &str) -> String {
    format!(
        "SHOW TABLES IN SCHEMA {}.{}",
        setting_ident(database),
        setting_ident(schema)
    )
}

/// Columns of a table: name, type, kind, null?, default, primary key, unique key, … (metadata only: no
/// warehouse runs, so describing a table at the start of a run costs nothing).
pub fn describe_table(qualified_table: &str) -> String {
    format!("DESCRIBE TABLE {qualified_table}")
}

/// `kind` is `PRIMARY` or `UNIQUE`; one row per key column with its position and constraint name.
pub fn show_keys(kind: &str, qualified_table: &str) -> String {
    format!("SHOW {kind} KEYS IN TABLE {qualified_table}")
}

/// The type of a staging-table column for a target column of native type `native`: JSON-like columns are
/// staged as text and parsed in the MERGE, because `INSERT … VALUES` accepts only constants and binds;
/// binary columns as hex text, converted by the MERGE as well (COPY and binds then agree on one form).
pub fn stage_type(native: &str, ty: Option<&ColumnType>) -> String {
    match ty {
        Some(ColumnType::Json) | Some(ColumnType::Binary) => "VARCHAR".to_string(),
        _ => native.to_string(),
    }
}

/// A session-private staging table (dropped with the session). `columns` are (name, stage type).
pub fn create_stage(stage: &str, columns: &[(String, String)]) -> String {
    let defs: Vec<String> = columns
        .iter()
        .map(|(name, ty)| format!("{} {ty}", quote(name)))
        .collect();
    format!(
        "CREATE OR REPLACE TEMPORARY TABLE {} ({})",
        quote(stage),
        defs.join(", ")
    )
}

pub fn clear_stage(stage: &str) -> String {
    format!("TRUNCATE TABLE {}", quote(stage))
}

pub fn drop_stage(stage: &str) -> String {
    format!("DROP TABLE IF EXISTS {}", quote(stage))
}

/// A multi-row insert of `rows` rows into `table`, every value a bind.
pub fn insert_values(table: &str, columns: &[String], rows: usize) -> String {
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(table),
        column_list(columns)
    );
    sql.reserve(rows * (one.len() + 2));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&one);
    }
    sql
}

/// The one statement that writes a batch: rows of the stage whose key is in the table are updated when a
/// written value differs (an unchanged row is not rewritten, which on Snowflake means no new
/// micro-partition), the others inserted. `types` are the written columns' types: JSON and binary
/// columns are staged as text (see [`stage_type`]) and converted here.
pub fn merge(
    qualified_table: &str,
    stage: &str,
    columns: &[String],
    key: &str,
    types: &[Option<ColumnType>],
) -> String {
    let converted = |ty: Option<&ColumnType>, q: &str| match ty {
        Some(ColumnType::Json) => Some(format!("PARSE_JSON({q})")),
        Some(ColumnType::Binary) => Some(format!("TO_BINARY({q}, 'HEX')")),
        _ => None,
    };
    let any = types.iter().any(|t| converted(t.as_ref(), "").is_some());
    let source = if !any {
        quote(stage)
    } else {
        let exprs: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let q = quote(c);
                match converted(types.get(i).and_then(|t| t.as_ref()), &q) {
                    Some(e) => format!("{e} AS {q}"),
                    None => q,
                }
            })
            .collect();
        format!("(SELECT {} FROM {})", exprs.join(", "), quote(stage))
    };
    let k = quote(key);
    let others: Vec<&String> = columns.iter().filter(|c| *c != key).collect();
    let mut sql = format!("MERGE INTO {qualified_table} t USING {source} s ON t.{k} = s.{k}");
    if !others.is_empty() {
        let changed: Vec<String> = others
            .iter()
            .map(|c| format!("t.{q} IS DISTINCT FROM s.{q}", q = quote(c)))
            .collect();
        let sets: Vec<String> = others
            .iter()
            .map(|c| format!("{q} = s.{q}", q = quote(c)))
            .collect();
        sql.push_str(&format!(
            " WHEN MATCHED AND ({}) THEN UPDATE SET {}",
            changed.join(" OR "),
            sets.join(", ")
        ));
    }
    let values: Vec<String> = columns.iter().map(|c| format!("s.{}", quote(c))).collect();
    sql.push_str(&format!(
        " WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
        column_list(columns),
        values.join(", ")
    ));
    sql
}

/// Up to `limit` keys that the table holds more than once, with their row counts and (on every row) how
/// many such keys there are in all.
pub fn duplicate_keys(qualified_table: &str, key: &str, limit: usize) -> String {
    let k = quote(key);
    format!(
        "SELECT k, n, COUNT(*) OVER () AS keys FROM (SELECT {k} AS k, COUNT(*) AS n FROM {qualified_table} \
         GROUP BY {k} HAVING COUNT(*) > 1) d ORDER BY n DESC, k LIMIT {limit}"
    )
}

/// The refusal for a table whose `key` column holds duplicates (the rows of [`duplicate_keys`]), or
/// `None` when it holds none.
pub fn duplicates_message(table: &str, key: &str, rows: &[Vec<Option<String>>]) -> Option<String> {
    let first = rows.first()?;
    let total = first.get(2).cloned().flatten().unwrap_or_default();
    let samples: Vec<String> = rows
        .iter()
        .map(|r| {
            let k = r.first().cloned().flatten();
            let n = r.get(1).cloned().flatten().unwrap_or_default();
            match k {
                Some(k) => format!("{k:?} ({n} rows)"),
                None => format!("NULL ({n} rows)"),
            }
        })
        .collect();
    Some(format!(
        "table `{table}` already holds {total} key(s) of column `{key}` more than once, e.g. {}: Snowflake \
         does not enforce primary keys or unique constraints, so another writer stored them. Sluice writes \
         nothing to this table until every key is unique; find them with SELECT {k}, COUNT(*) FROM {t} \
         GROUP BY {k} HAVING COUNT(*) > 1, and delete the extra rows",
        samples.join(", "),
        k = quote(key),
        t = quote(table),
    ))
}

pub fn delete_by_keys(qualified_table: &str, key: &str, keys: usize) -> String {
    format!(
        "DELETE FROM {qualified_table} WHERE {} IN ({})",
        quote(key),
        vec!["?"; keys].join(", ")
    )
}

/// A column's portable type from the type `DESCRIBE TABLE` prints (`NUMBER(38,0)`, `VARCHAR(64)`,
/// `TIMESTAMP_TZ(9)`, …).
pub fn column_type(native: &str) -> Option<ColumnType> {
    let upper = native.trim().to_ascii_uppercase();
    let (base, args) = match upper.split_once('(') {
        Some((b, rest)) => (b.trim(), rest.trim_end_matches(')')),
        None => (upper.as_str(), ""),
    };
    let nums: Vec<u64> = args
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(match base {
        "NUMBER" | "DECIMAL" | "NUMERIC" => {
            let precision = nums.first().copied().unwrap_or(38);
            let scale = nums.get(1).copied().unwrap_or(0);
            if scale == 0 {
                // Snowflake's INT is NUMBER(38,0); Sluice writes 64-bit integers into it, and they can
                // be keys.
                ColumnType::Int {
                    bits: 64,
                    unsigned: false,
                }
            } else {
                ColumnType::Decimal {
                    precision: u8::try_from(precision).ok(),
                    scale: u8::try_from(scale).ok(),
                }
            }
        }
        "INT" | "INTEGER" | "BIGINT" | "SMALLINT" | "TINYINT" | "BYTEINT" => ColumnType::Int {
            bits: 64,
            unsigned: false,
        },
        "FLOAT" | "FLOAT4" | "FLOAT8" | "DOUBLE" | "DOUBLE PRECISION" | "REAL" => {
            ColumnType::Float { bits: 64 }
        }
        "VARCHAR" | "TEXT" | "STRING" | "CHAR" | "CHARACTER" | "NCHAR" | "NVARCHAR" => {
            let len = nums.first().and_then(|n| u32::try_from(*n).ok());
            ColumnType::Text {
                max_len: len.filter(|n| *n < UNBOUNDED_VARCHAR),
            }
        }
        "BOOLEAN" => ColumnType::Bool,
        "DATE" => ColumnType::Date,
        "TIME" => ColumnType::Time,
        "TIMESTAMP_NTZ" | "DATETIME" | "TIMESTAMP" => ColumnType::Timestamp { with_tz: false },
        "TIMESTAMP_LTZ" | "TIMESTAMP_TZ" => ColumnType::Timestamp { with_tz: true },
        "VARIANT" | "OBJECT" | "ARRAY" => ColumnType::Json,
        "BINARY" | "VARBINARY" => ColumnType::Binary,
        _ => return None,
    })
}

/// One bound value as Snowflake's protocol carries it: a type name and the value as text (`None` for NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub ty: &'static str,
    pub value: Option<String>,
}

impl Binding {
    fn new(ty: &'static str, value: impl Into<String>) -> Self {
        Self {
            ty,
            value: Some(value.into()),
        }
    }
    /// Bytes this binding adds to a request body (about: the JSON framing is counted once per value).
    pub fn size(&self) -> usize {
        self.value.as_ref().map_or(4, |v| v.len()) + self.ty.len() + 28
    }
}

fn nanos_since_epoch(dt: &chrono::DateTime<chrono::Utc>) -> i128 {
    dt.timestamp() as i128 * 1_000_000_000 + dt.timestamp_subsec_nanos() as i128
}

/// `value` bound for a column of type `ty` and native type `native`, in Snowflake's binding forms: dates
/// as milliseconds since the epoch, times as nanoseconds since midnight, timestamps as nanoseconds since
/// the epoch (`TIMESTAMP_TZ` with ` 1440`, the UTC offset in minutes plus 1440), binary as hex, JSON as
/// its text (parsed by the MERGE), decimals as text so that no digit is lost.
pub fn binding(value: &Value, ty: Option<&ColumnType>, native: &str) -> Binding {
    match value {
        Value::Null => Binding {
            ty: "TEXT",
            value: None,
        },
        Value::Bool(b) => Binding::new("BOOLEAN", b.to_string()),
        Value::Int(i) => Binding::new("FIXED", i.to_string()),
        Value::Float(f) => Binding::new("REAL", float_text(*f)),
        Value::Decimal(d) => Binding::new("TEXT", d.to_string()),
        Value::String(s) => Binding::new("TEXT", s.clone()),
        Value::Date(d) => {
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
            let days = d.signed_duration_since(epoch).num_days();
            Binding::new("DATE", (days * 86_400_000).to_string())
        }
        Value::Time(t) => {
            let nanos =
                t.num_seconds_from_midnight() as u64 * 1_000_000_000 + t.nanosecond() as u64;
            Binding::new("TIME", nanos.to_string())
        }
        Value::DateTime(dt) => {
            let nanos = nanos_since_epoch(dt);
            let upper = native.to_ascii_uppercase();
            if upper.starts_with("TIMESTAMP_TZ") {
                Binding::new("TIMESTAMP_TZ", format!("{nanos} 1440"))
            } else if upper.starts_with("TIMESTAMP_LTZ") {
                Binding::new("TIMESTAMP_LTZ", nanos.to_string())
            } else {
                // A wall-clock column gets the UTC wall-clock time.
                Binding::new("TIMESTAMP_NTZ", nanos.to_string())
            }
        }
        Value::Uuid(u) => match ty {
            Some(ColumnType::Binary) => Binding::new("BINARY", hex(u.as_bytes())),
            _ => Binding::new("TEXT", u.hyphenated().to_string()),
        },
        Value::Json(j) => Binding::new("TEXT", j.to_string()),
        Value::Array(_) => Binding::new("TEXT", value.to_json().to_string()),
        Value::Bytes(b) => Binding::new("BINARY", hex(b)),
    }
}

/// A float as Snowflake reads it in a binding or a CSV field: Rust prints the infinities `inf`/`-inf`, which
/// Snowflake refuses ("Numeric value 'inf' is not recognized"); it wants `Infinity`, `-Infinity`, `NaN`.
pub fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        f.to_string()
    }
}

/// `value` bound for the staging-table column of a target column of type `ty`: as [`binding`], except that
/// binary values go as hex text (see [`stage_type`]).
pub fn stage_binding(value: &Value, ty: Option<&ColumnType>, native: &str) -> Binding {
    let mut b = binding(value, ty, native);
    if matches!(ty, Some(ColumnType::Binary)) {
        b.ty = "TEXT";
    }
    b
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The rows of a batch with one row per key, the last one given winning. Snowflake does not enforce keys,
/// and a MERGE whose source holds a key twice fails (100090) or, with ERROR_ON_NONDETERMINISTIC_MERGE
/// off, picks one at random, so Sluice keeps keys unique itself — comparing them as the key column will
/// (see [`key_identity`]): in a NUMBER column `1`, `"1"` and `1.0` are one key.
pub fn dedup_by_key<'a>(
    rows: &'a [Row],
    key_index: usize,
    ty: Option<&ColumnType>,
    native: &str,
) -> Vec<&'a Row> {
    let identities: Vec<String> = rows
        .iter()
        .map(|r| key_identity(&r.values[key_index], ty, native))
        .collect();
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, k) in identities.iter().enumerate() {
        last.insert(k.as_str(), i);
    }
    if last.len() == rows.len() {
        return rows.iter().collect();
    }
    rows.iter()
        .enumerate()
        .filter(|(i, _)| last[identities[*i].as_str()] == *i)
        .map(|(_, r)| r)
        .collect()
}

/// What a key value becomes once stored in a column of type `ty` (native type `native`), as text that is
/// equal for two values exactly when Snowflake would find them equal: numbers in a NUMBER column are
/// compared as numbers rounded to the column's scale (`1`, `"1"`, `1.0` and `"01"` are one key, and in
/// NUMBER(38,0) so is `0.6`), anything else by the text it is bound as.
pub fn key_identity(value: &Value, ty: Option<&ColumnType>, native: &str) -> String {
    if matches!(value, Value::Null) {
        return "\0null".to_string();
    }
    if let Some(ColumnType::Int { .. } | ColumnType::Decimal { .. }) = ty {
        let text = match value {
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) if f.is_finite() => Some(f.to_string()),
            Value::Decimal(d) => Some(d.to_string()),
            Value::String(s) => Some(s.trim().to_string()),
            _ => None,
        };
        if let Some(n) = text.and_then(|t| canonical_number(&t, number_scale(native))) {
            return n;
        }
    }
    let b = binding(value, ty, native);
    if let Some(ColumnType::Text { .. }) = ty {
        // A text column stores the text of whatever is bound (1 becomes '1').
        return format!("TEXT\0{}", b.value.unwrap_or_default());
    }
    format!("{}\0{}", b.ty, b.value.unwrap_or_default())
}

/// The scale of a NUMBER(p,s) type (0 for the integer types).
fn number_scale(native: &str) -> u32 {
    native
        .split_once('(')
        .and_then(|(_, args)| args.trim_end_matches(')').split(',').nth(1))
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// A decimal number's text rounded half away from zero to `scale` digits (as Snowflake rounds a value
/// cast to NUMBER), without superfluous zeros or sign: `None` when `text` is not a number.
pub fn canonical_number(text: &str, scale: u32) -> Option<String> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], unsigned[i + 1..].parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // All digits, and where the decimal point falls among them.
    let mut digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let point = int_part.len() as i64 + exponent as i64;
    if point < 0 {
        let pad = (-point) as usize;
        if pad > 4096 {
            return Some("0".to_string());
        }
        digits.splice(0..0, std::iter::repeat_n(0, pad));
    }
    let mut point = point.max(0) as usize;
    if point > 4096 {
        return None;
    }
    if digits.len() < point {
        digits.resize(point, 0);
    }
    let keep = point + scale as usize;
    if digits.len() > keep {
        let round_up = digits[keep] >= 5;
        digits.truncate(keep);
        if round_up {
            let mut i = keep;
            loop {
                if i == 0 {
                    digits.insert(0, 1);
                    point += 1;
                    break;
                }
                i -= 1;
                if digits[i] == 9 {
                    digits[i] = 0;
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
    }
    let int_digits: String = digits[..point]
        .iter()
        .map(|d| (b'0' + d) as char)
        .collect::<String>()
        .trim_start_matches('0')
        .to_string();
    let frac_digits: String = digits[point..]
        .iter()
        .map(|d| (b'0' + d) as char)
        .collect::<String>()
        .trim_end_matches('0')
        .to_string();
    let int_digits = if int_digits.is_empty() {
        "0".to_string()
    } else {
        int_digits
    };
    let zero = int_digits == "0" && frac_digits.is_empty();
    let sign = if negative && !zero { "-" } else { "" };
    Some(if frac_digits.is_empty() {
        format!("{sign}{int_digits}")
    } else {
        format!("{sign}{int_digits}.{frac_digits}")
    })
}

/// Splits rows of the given byte sizes into consecutive chunks of at most `max_rows` rows and about
/// `max_bytes` bytes (a row larger than `max_bytes` gets a chunk of its own).
pub fn plan_chunks(
    sizes: &[usize],
    max_rows: usize,
    max_bytes: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, size) in sizes.iter().enumerate() {
        let rows = i - start;
        if rows > 0 && (rows == max_rows || bytes + size > max_bytes) {
            chunks.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

/// The error kind of a Snowflake error code (the `code` of a failed response).
pub fn error_kind(code: &str) -> ErrorKind {
    let n: u32 = code.trim().parse().unwrap_or(0);
    match n {
        // Incorrect user name or password, locked/disabled user, bad JWT, key-pair not registered.
        390100 | 390101 | 390102 | 390144 | 390186 | 394304 | 390318 | 390302 => ErrorKind::Auth,
        // Role not granted to the user; insufficient privileges.
        390189 | 3001 | 3003 | 3041 | 3540 => ErrorKind::Permission,
        // Session or master token expired or gone: log in again.
        390104 | 390111 | 390112 | 390114 => ErrorKind::Unavailable,
        // Object does not exist or not authorized; database/schema missing.
        2003 | 2043 | 390201 | 90105 | 90106 => ErrorKind::NotFound,
        // Invalid identifier (a column that is gone).
        904 => ErrorKind::SchemaMismatch,
        // No active warehouse / database / schema.
        606 | 90104 => ErrorKind::Config,
        // Statement or warehouse timeout, canceled.
        630 | 604 | 608 => ErrorKind::Timeout,
        // Lock waits exceeded, transaction conflicts.
        625 | 627 | 629 => ErrorKind::Conflict,
        // A MERGE joined a target row to two source rows ("Duplicate row detected during DML action"):
        // Sluice dedups its batches by key, so this means the dedup and Snowflake disagree on equality.
        100_090 => ErrorKind::Internal,
        // Data errors: numbers, dates, strings too long, NULL into NOT NULL, JSON.
        100_000..=100_999 => ErrorKind::BadData,
        // Service unavailable, overloaded, in maintenance.
        390_400..=390_499 | 250_001 | 250_003 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Snowflake's answer codes for a query still running, to be polled.
pub fn is_in_progress(code: &str) -> bool {
    matches!(code, "333333" | "333334")
}

/// Session-token expired: renew it with the master token.
pub fn is_session_expired(code: &str) -> bool {
    code == "390112"
}

/// The session is gone (or its master token expired): log in again.
pub fn is_session_gone(code: &str) -> bool {
    matches!(code, "390104" | "390111" | "390114" | "390113")
}

// ---------------------------------------------------------------------------------------------------
// The stage path: PUT a CSV file into the staging table's stage, then COPY INTO it.

/// One field of a CSV file loaded with [`copy_into_stage`]: NULL is an unquoted `\N`, every value is
/// otherwise enclosed in double quotes with inner quotes doubled, so that commas, quotes and newlines in
/// text survive. The same text forms as bindings are used, except for dates and times, which COPY reads
/// as ISO text.
pub fn csv_field(value: &Value, ty: Option<&ColumnType>, native: &str) -> String {
    let text = match value {
        Value::Null => return "\\N".to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Time(t) => t.format("%H:%M:%S%.f").to_string(),
        Value::DateTime(dt) => {
            let upper = native.to_ascii_uppercase();
            if upper.starts_with("TIMESTAMP_NTZ") || !upper.starts_with("TIMESTAMP_") {
                dt.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string()
            } else {
                dt.format("%Y-%m-%d %H:%M:%S%.f+00:00").to_string()
            }
        }
        other => stage_binding(other, ty, native).value.unwrap_or_default(),
    };
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The CSV text of rows (one line each, `\n`-terminated).
pub fn csv_rows<'a>(
    rows: impl IntoIterator<Item = &'a Row>,
    types: &[Option<ColumnType>],
    natives: &[String],
) -> String {
    let mut out = String::new();
    for row in rows {
        for (i, v) in row.values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&csv_field(v, types[i].as_ref(), &natives[i]));
        }
        out.push('\n');
    }
    out
}

/// The table stage of the staging table `stage`, which must be a plain upper-case name (Sluice names its
/// staging tables so): a table stage is written unquoted, `@%NAME`.
fn table_stage(stage: &str) -> String {
    debug_assert!(is_plain(stage) && stage.to_ascii_uppercase() == stage);
    format!("@%{stage}")
}

/// Asks where to upload `file_name` (gzip-compressed by Sluice) into folder `folder` of the table stage of
/// `stage`; the client then sends the file's bytes to the location the server answers with.
pub fn put_file(file_name: &str, stage: &str, folder: &str) -> String {
    format!(
        "PUT 'file:///{}' {}/{} AUTO_COMPRESS = FALSE SOURCE_COMPRESSION = GZIP OVERWRITE = TRUE",
        file_name.replace('\'', ""),
        table_stage(stage),
        folder.replace('\'', "")
    )
}

/// Loads the files of `folder` (one batch's) into the staging table and removes them from the stage. A
/// folder per batch, rather than `FILES = (…)`, also keeps the file of a failed earlier load out.
pub fn copy_into_stage(stage: &str, columns: &[String], folder: &str) -> String {
    format!(
        "COPY INTO {} ({}) FROM {}/{} \
         FILE_FORMAT = (TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"' NULL_IF = ('\\\\N') \
         ESCAPE_UNENCLOSED_FIELD = NONE EMPTY_FIELD_AS_NULL = FALSE COMPRESSION = GZIP) \
         ON_ERROR = ABORT_STATEMENT PURGE = TRUE",
        quote(stage),
        column_list(columns),
        table_stage(stage),
        folder.replace('\'', "")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveTime, Utc};
    use std::str::FromStr;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quotes_identifiers_and_settings() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
        assert_eq!(setting_ident("crm"), "\"CRM\"");
        assert_eq!(setting_ident("My Db"), "\"My Db\"");
        assert_eq!(setting_ident("weird\"x"), "\"weird\"\"x\"");
        assert_eq!(
            qualified("crm", "public", "people"),
            "\"CRM\".\"PUBLIC\".\"people\""
        );
        assert!(validate_identifier(&"x".repeat(256), "t").is_err());
        assert!(validate_identifier("", "t").is_err());
        assert!(is_plain("LOAD_WH$1") && !is_plain("1abc") && !is_plain("a-b"));
    }

    #[test]
    fn golden_sql() {
        assert_eq!(
            create_stage(
                "st",
                &[
                    ("id".into(), "VARCHAR(64)".into()),
                    ("v".into(), "VARCHAR".into())
                ]
            ),
            "CREATE OR REPLACE TEMPORARY TABLE \"st\" (\"id\" VARCHAR(64), \"v\" VARCHAR)"
        );
        assert_eq!(
            insert_values("st", &cols(&["id", "name"]), 2),
            "INSERT INTO \"st\" (\"id\", \"name\") VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            merge("\"D\".\"S\".\"p\"", "st", &cols(&["id", "name", "age"]), "id", &[None, None, None]),
            "MERGE INTO \"D\".\"S\".\"p\" t USING \"st\" s ON t.\"id\" = s.\"id\" \
             WHEN MATCHED AND (t.\"name\" IS DISTINCT FROM s.\"name\" OR t.\"age\" IS DISTINCT FROM s.\"age\") \
             THEN UPDATE SET \"name\" = s.\"name\", \"age\" = s.\"age\" \
             WHEN NOT MATCHED THEN INSERT (\"id\", \"name\", \"age\") VALUES (s.\"id\", s.\"name\", s.\"age\")"
        );
        // Key only: nothing to update.
        assert_eq!(
            merge("T", "st", &cols(&["id"]), "id", &[None]),
            "MERGE INTO T t USING \"st\" s ON t.\"id\" = s.\"id\" \
             WHEN NOT MATCHED THEN INSERT (\"id\") VALUES (s.\"id\")"
        );
        // JSON columns are parsed from their staged text.
        let m = merge(
            "T",
            "st",
            &cols(&["id", "doc", "bin"]),
            "id",
            &[None, Some(ColumnType::Json), Some(ColumnType::Binary)],
        );
        assert!(
            m.starts_with(
                "MERGE INTO T t USING (SELECT \"id\", PARSE_JSON(\"doc\") AS \"doc\", \
                 TO_BINARY(\"bin\", 'HEX') AS \"bin\" FROM \"st\") s"
            ),
            "{m}"
        );
        assert_eq!(
            delete_by_keys("T", "id", 3),
            "DELETE FROM T WHERE \"id\" IN (?, ?, ?)"
        );
        assert_eq!(show_keys("UNIQUE", "T"), "SHOW UNIQUE KEYS IN TABLE T");
        assert!(
            is_metadata_only(&describe_table("T")) && is_metadata_only(&show_keys("PRIMARY", "T"))
        );
        assert!(is_metadata_only(&use_warehouse("w")) && is_metadata_only(" desc table t"));
        assert!(!is_metadata_only(&merge(
            "T",
            "st",
            &cols(&["id"]),
            "id",
            &[None]
        )));
        assert!(!is_metadata_only("BEGIN") && !is_metadata_only(&clear_stage("st")));
        assert!(is_metadata_only(&row_count(&qualified(
            "db", "s", "t \" x"
        ))));
        assert!(is_metadata_only(&row_count("DB.S.T")));
        assert!(!is_metadata_only("SELECT COUNT(*) FROM T WHERE 1 = 1"));
        assert!(!is_metadata_only(
            "SELECT COUNT(*) FROM \"T\" WHERE \"x\" = 1"
        ));
        assert!(!is_metadata_only("SELECT COUNT(*) FROM \"unclosed"));
        assert_eq!(
            use_schema("crm", "Mixed Case"),
            "USE SCHEMA \"CRM\".\"Mixed Case\""
        );
    }

    #[test]
    fn stage_types() {
        assert_eq!(
            stage_type("VARCHAR(5)", column_type("VARCHAR(5)").as_ref()),
            "VARCHAR(5)"
        );
        assert_eq!(stage_type("OBJECT", Some(&ColumnType::Json)), "VARCHAR");
        assert_eq!(
            stage_type("BINARY(100)", Some(&ColumnType::Binary)),
            "VARCHAR"
        );
    }

    #[test]
    fn maps_native_types() {
        let int = Some(ColumnType::Int {
            bits: 64,
            unsigned: false,
        });
        assert_eq!(column_type("NUMBER(38,0)"), int);
        assert!(column_type("NUMBER(38,0)").unwrap().is_key_capable());
        assert_eq!(column_type("NUMBER(10,0)"), int);
        assert_eq!(
            column_type("NUMBER(38,10)"),
            Some(ColumnType::Decimal {
                precision: Some(38),
                scale: Some(10)
            })
        );
        assert_eq!(column_type("FLOAT"), Some(ColumnType::Float { bits: 64 }));
        assert_eq!(
            column_type("VARCHAR(64)"),
            Some(ColumnType::Text { max_len: Some(64) })
        );
        assert_eq!(
            column_type("VARCHAR(16777216)"),
            Some(ColumnType::Text { max_len: None })
        );
        assert_eq!(column_type("BOOLEAN"), Some(ColumnType::Bool));
        assert_eq!(column_type("DATE"), Some(ColumnType::Date));
        assert_eq!(column_type("TIME(9)"), Some(ColumnType::Time));
        assert_eq!(
            column_type("TIMESTAMP_NTZ(9)"),
            Some(ColumnType::Timestamp { with_tz: false })
        );
        assert_eq!(
            column_type("TIMESTAMP_LTZ(9)"),
            Some(ColumnType::Timestamp { with_tz: true })
        );
        assert_eq!(
            column_type("TIMESTAMP_TZ(3)"),
            Some(ColumnType::Timestamp { with_tz: true })
        );
        for j in ["VARIANT", "OBJECT", "ARRAY"] {
            assert_eq!(column_type(j), Some(ColumnType::Json), "{j}");
        }
        assert_eq!(column_type("BINARY(8388608)"), Some(ColumnType::Binary));
        assert_eq!(column_type("GEOGRAPHY"), None);
        assert_eq!(column_type("VECTOR(FLOAT, 3)"), None);
    }

    #[test]
    fn binds_values_in_snowflake_forms() {
        let b = |v: Value, native: &str| binding(&v, column_type(native).as_ref(), native);
        assert_eq!(
            b(Value::Int(-5), "NUMBER(38,0)"),
            Binding::new("FIXED", "-5")
        );
        assert_eq!(
            b(
                Value::Decimal("123456789012345678.0123456789".parse().unwrap()),
                "NUMBER(38,10)"
            ),
            Binding::new("TEXT", "123456789012345678.0123456789")
        );
        assert_eq!(b(Value::Null, "VARCHAR").value, None);
        assert_eq!(
            b(Value::Bool(true), "BOOLEAN"),
            Binding::new("BOOLEAN", "true")
        );
        assert_eq!(
            b(
                Value::Date(NaiveDate::from_ymd_opt(1970, 1, 2).unwrap()),
                "DATE"
            ),
            Binding::new("DATE", "86400000")
        );
        assert_eq!(
            b(
                Value::Date(NaiveDate::from_ymd_opt(1969, 12, 31).unwrap()),
                "DATE"
            ),
            Binding::new("DATE", "-86400000")
        );
        assert_eq!(
            b(
                Value::Time(NaiveTime::from_hms_micro_opt(0, 0, 1, 5).unwrap()),
                "TIME(9)"
            ),
            Binding::new("TIME", "1000005000")
        );
        let dt: DateTime<Utc> = DateTime::parse_from_rfc3339("1969-12-31T23:59:59.5Z")
            .unwrap()
            .into();
        assert_eq!(
            b(Value::DateTime(dt), "TIMESTAMP_NTZ(9)"),
            Binding::new("TIMESTAMP_NTZ", "-500000000")
        );
        assert_eq!(
            b(Value::DateTime(dt), "TIMESTAMP_TZ(9)"),
            Binding::new("TIMESTAMP_TZ", "-500000000 1440")
        );
        assert_eq!(
            b(Value::DateTime(dt), "TIMESTAMP_LTZ(9)"),
            Binding::new("TIMESTAMP_LTZ", "-500000000")
        );
        assert_eq!(
            b(Value::Bytes(vec![0, 15, 255]), "BINARY"),
            Binding::new("BINARY", "000fff")
        );
        assert_eq!(
            b(Value::json(serde_json::json!({"a": [1]})), "VARIANT"),
            Binding::new("TEXT", "{\"a\":[1]}")
        );
        let u = uuid::Uuid::from_str("a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8").unwrap();
        assert_eq!(
            b(Value::Uuid(u), "VARCHAR(36)"),
            Binding::new("TEXT", "a1a2a3a4-b1b2-c1c2-d1d2-d3d4d5d6d7d8")
        );
    }

    #[test]
    fn dedups_keeping_the_last_row() {
        let row = |k: &str, n: i64| Row {
            values: vec![Value::String(k.into()), Value::Int(n)],
        };
        let rows = vec![
            row("a", 1),
            row("b", 2),
            row("a", 3),
            row("c", 4),
            row("b", 5),
        ];
        let kept: Vec<i64> = dedup_by_key(&rows, 0, None, "VARCHAR")
            .iter()
            .map(|r| match r.values[1] {
                Value::Int(n) => n,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(kept, [3, 4, 5]);
    }

    fn s(v: &str) -> Value {
        Value::String(v.into())
    }

    #[test]
    fn dedups_keys_as_the_column_compares_them() {
        let int = ColumnType::Int {
            bits: 64,
            unsigned: false,
        };
        let keyed = |vals: Vec<Value>| -> Vec<Row> {
            vals.into_iter()
                .enumerate()
                .map(|(i, k)| Row {
                    values: vec![k, Value::Int(i as i64)],
                })
                .collect()
        };
        let tag =
            |kept: Vec<&Row>| -> Vec<Value> { kept.iter().map(|r| r.values[1].clone()).collect() };
        // In a NUMBER column, 1, "1", 1.0 and " 01 " are one key: the last one wins.
        let rows = keyed(vec![
            Value::Int(1),
            s("1"),
            Value::Float(1.0),
            s("2"),
            s(" 01 "),
        ]);
        assert_eq!(
            tag(dedup_by_key(&rows, 0, Some(&int), "NUMBER(38,0)")),
            [Value::Int(3), Value::Int(4)]
        );
        // NUMBER(38,0) rounds 1.5 to 2; NUMBER(10,2) keeps 1.5 apart from 2.
        let rows = keyed(vec![Value::Float(1.5), Value::Int(2)]);
        assert_eq!(dedup_by_key(&rows, 0, Some(&int), "NUMBER(38,0)").len(), 1);
        let dec = ColumnType::Decimal {
            precision: Some(10),
            scale: Some(2),
        };
        assert_eq!(dedup_by_key(&rows, 0, Some(&dec), "NUMBER(10,2)").len(), 2);
        // In a VARCHAR column 1 and "1" are one key too (the number is stored as its text), "01" is not.
        let text = ColumnType::Text { max_len: None };
        let rows = keyed(vec![Value::Int(1), s("1"), s("01")]);
        assert_eq!(
            tag(dedup_by_key(&rows, 0, Some(&text), "VARCHAR(16777216)")),
            [Value::Int(1), Value::Int(2)]
        );
        // Text keys keep their case and spaces, as Snowflake compares them.
        let rows = keyed(vec![s("a"), s("A"), s("a ")]);
        assert_eq!(dedup_by_key(&rows, 0, Some(&text), "VARCHAR").len(), 3);
    }

    #[test]
    fn names_duplicate_keys() {
        assert_eq!(
            duplicate_keys("\"D\".\"S\".\"t\"", "id", 5),
            "SELECT k, n, COUNT(*) OVER () AS keys FROM (SELECT \"id\" AS k, COUNT(*) AS n FROM \"D\".\"S\".\"t\" \
             GROUP BY \"id\" HAVING COUNT(*) > 1) d ORDER BY n DESC, k LIMIT 5"
        );
        assert_eq!(duplicates_message("t", "id", &[]), None);
        let rows = vec![
            vec![Some("7".into()), Some("3".into()), Some("12".into())],
            vec![None, Some("2".into()), Some("12".into())],
        ];
        let m = duplicates_message("people", "id", &rows).unwrap();
        assert!(
            m.contains("already holds 12 key(s) of column `id` more than once"),
            "{m}"
        );
        assert!(m.contains("\"7\" (3 rows), NULL (2 rows)"), "{m}");
        assert!(m.contains("HAVING COUNT(*) > 1"), "{m}");
    }

    #[test]
    fn canonical_numbers() {
        let c = |t: &str, scale| canonical_number(t, scale);
        assert_eq!(c("1", 0).as_deref(), Some("1"));
        assert_eq!(c("001.000", 0).as_deref(), Some("1"));
        assert_eq!(c("-0.0", 2).as_deref(), Some("0"));
        assert_eq!(c("+12.345", 2).as_deref(), Some("12.35"));
        assert_eq!(c("-12.345", 2).as_deref(), Some("-12.35"));
        assert_eq!(c("9.99", 1).as_deref(), Some("10"));
        assert_eq!(c("0.4", 0).as_deref(), Some("0"));
        assert_eq!(c("0.5", 0).as_deref(), Some("1"));
        assert_eq!(c("1e3", 0).as_deref(), Some("1000"));
        assert_eq!(c("1.5E-1", 1).as_deref(), Some("0.2"));
        assert_eq!(c(".5", 1).as_deref(), Some("0.5"));
        assert_eq!(
            c("12345678901234567890123", 0).as_deref(),
            Some("12345678901234567890123")
        );
        for bad in ["", "-", "abc", "1.2.3", "1e", "1x", "."] {
            assert_eq!(c(bad, 0), None, "{bad:?}");
        }
    }

    #[test]
    fn floats_bound_as_snowflake_reads_them() {
        let f = |v: f64| binding(&Value::Float(v), None, "FLOAT").value.unwrap();
        assert_eq!(f(f64::INFINITY), "Infinity");
        assert_eq!(f(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(1.5), "1.5");
        assert_eq!(
            csv_field(&Value::Float(f64::NEG_INFINITY), None, "FLOAT"),
            "\"-Infinity\""
        );
    }

    #[test]
    fn plans_chunks_under_both_limits() {
        assert_eq!(plan_chunks(&[10; 5], 2, 1000), vec![0..2, 2..4, 4..5]);
        assert_eq!(plan_chunks(&[10, 10, 10, 10], 100, 25), vec![0..2, 2..4]);
        // A row larger than the budget goes alone.
        assert_eq!(plan_chunks(&[5, 100, 5], 100, 50), vec![0..1, 1..2, 2..3]);
        assert!(plan_chunks(&[], 10, 10).is_empty());
    }

    #[test]
    fn classifies_errors() {
        assert_eq!(error_kind("390100"), ErrorKind::Auth);
        assert_eq!(error_kind("390144"), ErrorKind::Auth);
        assert_eq!(error_kind("390189"), ErrorKind::Permission);
        assert_eq!(error_kind("003001"), ErrorKind::Permission);
        assert_eq!(error_kind("002003"), ErrorKind::NotFound);
        assert_eq!(error_kind("000904"), ErrorKind::SchemaMismatch);
        for code in ["100072", "100074", "100038", "100039", "100069"] {
            assert_eq!(error_kind(code), ErrorKind::BadData, "{code}");
        }
        // Not a row's fault: the batch was deduplicated, so no row can be blamed for it.
        assert_eq!(error_kind("100090"), ErrorKind::Internal);
        assert_eq!(error_kind("000630"), ErrorKind::Timeout);
        assert_eq!(error_kind("000625"), ErrorKind::Conflict);
        assert_eq!(error_kind("000606"), ErrorKind::Config);
        assert_eq!(error_kind("390112"), ErrorKind::Unavailable);
        assert_eq!(error_kind("001003"), ErrorKind::Internal);
        assert!(is_in_progress("333333") && is_in_progress("333334") && !is_in_progress("0"));
        assert!(is_session_expired("390112") && is_session_gone("390114"));
    }

    #[test]
    fn stage_path_sql_and_csv() {
        assert_eq!(
            put_file("rows.csv.gz", "ST", "b1"),
            "PUT 'file:///rows.csv.gz' @%ST/b1 AUTO_COMPRESS = FALSE SOURCE_COMPRESSION = GZIP OVERWRITE = TRUE"
        );
        let copy = copy_into_stage("ST", &cols(&["id", "name"]), "b1");
        assert!(
            copy.starts_with("COPY INTO \"ST\" (\"id\", \"name\") FROM @%ST/b1 FILE_FORMAT"),
            "{copy}"
        );
        assert!(copy.contains("COMPRESSION = GZIP"), "{copy}");
        assert!(copy.contains("PURGE = TRUE"));
        let types = vec![
            Some(ColumnType::Text { max_len: None }),
            Some(ColumnType::Timestamp { with_tz: false }),
            Some(ColumnType::Date),
            Some(ColumnType::Int {
                bits: 64,
                unsigned: false,
            }),
        ];
        let natives = cols(&["VARCHAR", "TIMESTAMP_NTZ(9)", "DATE", "NUMBER(38,0)"]);
        let dt: DateTime<Utc> = DateTime::parse_from_rfc3339("2024-03-31T01:30:00.5+02:00")
            .unwrap()
            .into();
        let rows = vec![
            Row {
                values: vec![
                    Value::String("say \"hi\",\nbye".into()),
                    Value::DateTime(dt),
                    Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
                    Value::Int(7),
                ],
            },
            Row {
                values: vec![Value::Null, Value::Null, Value::Null, Value::Null],
            },
        ];
        assert_eq!(
            csv_rows(&rows, &types, &natives),
            "\"say \"\"hi\"\",\nbye\",\"2024-03-30 23:30:00.500\",\"2024-02-29\",\"7\"\n\\N,\\N,\\N,\\N\n"
        );
    }
}
