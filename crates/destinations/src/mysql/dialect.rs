//! MySQL / MariaDB SQL text, native-type mapping and error-code classification — pure functions,
//! unit-tested here.
//!
//! Identifiers are always quoted with backticks, which mean the same whatever the server's `sql_mode`
//! (`ANSI_QUOTES` turns double quotes into identifier quotes, so no string literal is ever written with
//! them; values are bound anyway). The upsert uses `ON DUPLICATE KEY UPDATE c = VALUES(c)`, which MariaDB
//! and MySQL 8 both accept (MySQL 8's `INSERT … AS new` row alias is a syntax error on MariaDB).

use sluice_core::capabilities::{Identifiers, LengthUnit, QuoteEscape};
use sluice_core::ColumnType;

use crate::{Capabilities, Deletes, ErrorKind, IdentifierCase, UpsertStyle};

/// MySQL and MariaDB, as data.
pub static CAPABILITIES: Capabilities = Capabilities {
    name: "MySQL",
    identifiers: Identifiers {
        max_len: Some(64),
        len_unit: LengthUnit::Characters,
        quote: '`',
        escape: QuoteEscape::Doubled,
        // Refused even quoted.
        trailing_space: false,
        case: IdentifierCase::Exact,
    },
    upsert: UpsertStyle::OnDuplicateKey,
    deletes: Deletes::ByKey,
    batch_rows: 10_000,
    max_bind_parameters: Some(65_535),
    max_rows_per_insert: None,
    reports_upsert_counts: true,
    defers_confirmation: false,
    enforces_keys: true,
    lexical: sluice_core::capabilities::lexical::MYSQL,
};

/// Checks that `name` can be a MySQL identifier once quoted; the message names `what`.
pub fn validate_identifier(name: &str, what: &str) -> Result<(), String> {
    CAPABILITIES.validate_identifier(name, what)
}

/// `` `name` ``, with inner backticks doubled.
pub fn quote(name: &str) -> String {
    CAPABILITIES.quote(name)
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A session-private staging table with the target's column types (charset and collation included) and
/// none of its indexes, constraints or defaults.
pub fn create_stage(stage: &str, table: &str, columns: &[String]) -> String {
    format!(
        "CREATE TEMPORARY TABLE {} AS SELECT {} FROM {} LIMIT 0",
        quote(stage),
        column_list(columns),
        quote(table)
    )
}

pub fn drop_stage(stage: &str) -> String {
    format!("DROP TEMPORARY TABLE IF EXISTS {}", quote(stage))
}

pub fn clear_stage(stage: &str) -> String {
    format!("DELETE FROM {}", quote(stage))
}

/// A multi-row insert of `rows` rows into `table`, every value a placeholder.
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

/// `LOAD DATA LOCAL INFILE` of tab-separated rows (see [`encode_field`]) into `columns` of `table`.
/// Columns flagged in `hex` arrive hex-encoded and are decoded by `UNHEX`, so binary values never pass
/// through the text character set. Separators are written as hex literals, which mean the same whatever
/// the `sql_mode` (`NO_BACKSLASH_ESCAPES` would change `'\\t'`).
pub fn load_data(table: &str, columns: &[String], hex: &[bool]) -> String {
    let mut targets = Vec::with_capacity(columns.len());
    let mut sets = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        if hex.get(i).copied().unwrap_or(false) {
            targets.push(format!("@h{i}"));
            sets.push(format!("{} = UNHEX(@h{i})", quote(c)));
        } else {
            targets.push(quote(c));
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'sluice' INTO TABLE {} CHARACTER SET utf8mb4 \
         FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' ({})",
        quote(table),
        targets.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

/// Appends one bound value in `LOAD DATA`'s default text format: `\N` for NULL; backslash, tab, newline,
/// carriage return and NUL escaped; with `hex`, bytes as hex digits (for `UNHEX`). Dates, times and
/// numbers are written as MySQL reads them back exactly (floats in Rust's shortest round-trip form).
pub fn encode_field(value: &mysql_async::Value, hex: bool, out: &mut Vec<u8>) {
    use mysql_async::Value as My;
    use std::io::Write;
    match value {
        My::NULL => out.extend_from_slice(b"\\N"),
        My::Bytes(b) if hex => {
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            out.reserve(b.len() * 2);
            for byte in b {
                out.push(DIGITS[(byte >> 4) as usize]);
                out.push(DIGITS[(byte & 15) as usize]);
            }
        }
        My::Bytes(b) => {
            for &byte in b {
                match byte {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    0 => out.extend_from_slice(b"\\0"),
                    _ => out.push(byte),
                }
            }
        }
        My::Int(i) => {
            let _ = write!(out, "{i}");
        }
        My::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        My::Float(f) => {
            let _ = write!(out, "{f}");
        }
        My::Double(f) => {
            let _ = write!(out, "{f}");
        }
        My::Date(y, mo, d, h, mi, s, us) => {
            let _ = write!(out, "{y:04}-{mo:02}-{d:02}");
            // A bare date also fits DATE columns, which would warn about a zero time part.
            if (h, mi, s, us) != (&0, &0, &0, &0) {
                let _ = write!(out, " {h:02}:{mi:02}:{s:02}.{us:06}");
            }
        }
        My::Time(negative, days, h, mi, s, us) => {
            let hours = *days as u64 * 24 + *h as u64;
            let sign = if *negative { "-" } else { "" };
            let _ = write!(out, "{sign}{hours:02}:{mi:02}:{s:02}.{us:06}");
        }
    }
}

/// Whether any of `keys` keys is in `table` already (one placeholder per key).
pub fn any_key_exists(table: &str, key: &str, keys: usize) -> String {
    format!(
        "SELECT 1 FROM {} WHERE {} IN ({}) LIMIT 1",
        quote(table),
        quote(key),
        vec!["?"; keys].join(", ")
    )
}

/// How many staged keys are already in the target; locks those rows until the transaction ends, so
/// the counts stay exact under concurrent writers.
pub fn count_existing(table: &str, stage: &str, key: &str) -> String {
    let k = quote(key);
    format!(
        "SELECT COUNT(*) FROM {} s JOIN {} t ON t.{k} = s.{k} FOR UPDATE",
        quote(stage),
        quote(table)
    )
}

/// The set-based upsert from the staging table. Only the written columns are updated; the key is not.
pub fn upsert_from_stage(table: &str, stage: &str, columns: &[String], key: &str) -> String {
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| *c != key)
        .map(|c| format!("{q} = VALUES({q})", q = quote(c)))
        .collect();
    // With nothing but the key, assigning the key its own value keeps existing rows as they are (a bare
    // `k = k` is ambiguous between the target and the SELECT).
    let updates = if updates.is_empty() {
        format!("{q} = VALUES({q})", q = quote(key))
    } else {
        updates.join(", ")
    };
    format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {} ON DUPLICATE KEY UPDATE {updates}",
        quote(table),
        quote(stage),
        cols = column_list(columns)
    )
}

/// A staged key that is not in the target after the upsert: its row met another row in a unique index
/// other than the key's, and `ON DUPLICATE KEY` updated that row instead of inserting this one.
pub fn missing_after_upsert(table: &str, stage: &str, key: &str) -> String {
    let k = quote(key);
    format!(
        "SELECT CAST(s.{k} AS CHAR) FROM {} s WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE t.{k} = s.{k}) LIMIT 1",
        quote(stage),
        quote(table)
    )
}

pub fn delete_by_keys(table: &str, key: &str, keys: usize) -> String {
    format!(
        "DELETE FROM {} WHERE {} IN ({})",
        quote(table),
        quote(key),
        vec!["?"; keys].join(", ")
    )
}

/// Columns of a table in the current database, in table order.
/// The base tables of the connection's database, by name.
pub const LIST_TABLES: &str = "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1";

pub const COLUMNS_QUERY: &str = "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), \
     CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_DEFAULT AS CHAR), CAST(EXTRA AS CHAR), \
     CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
     ORDER BY ORDINAL_POSITION";

/// The unique indexes of a table (the primary key first), one row per column; prefix parts marked.
pub const KEYS_QUERY: &str = "SELECT CAST(INDEX_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), SUB_PART \
     FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 \
     ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX";

/// MariaDB's JSON is LONGTEXT plus a `json_valid` CHECK constraint; this finds them (MySQL 8.0.16+ has the
/// same table; on older servers the query fails and JSON is recognized by its own type only).
pub const JSON_CHECKS_QUERY: &str =
    "SELECT CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS \
     WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = ?";

/// Whether a CHECK clause is MariaDB's `json_valid(`column`)` for `column`.
pub fn is_json_check(clause: &str, column: &str) -> bool {
    let c = clause.trim().to_ascii_lowercase();
    c == format!("json_valid({})", quote(&column.to_ascii_lowercase()))
}

/// A column's portable type from `DATA_TYPE` and `COLUMN_TYPE` (`int(10) unsigned`, `enum('a','b')`).
pub fn column_type(
    data_type: &str,
    column_type: &str,
    char_max_len: Option<u64>,
    precision: Option<u64>,
    scale: Option<u64>,
) -> Option<ColumnType> {
    let unsigned = column_type.to_ascii_lowercase().contains("unsigned");
    let int = |bits| Some(ColumnType::Int { bits, unsigned });
    Some(match data_type.to_ascii_lowercase().as_str() {
        // BOOLEAN is TINYINT(1); MySQL 8 keeps the display width only for this case.
        "tinyint" if column_type.eq_ignore_ascii_case("tinyint(1)") => ColumnType::Bool,
        "tinyint" => return int(8),
        "smallint" => return int(16),
        // MEDIUMINT (24 bits) converts as a 32-bit integer; the server refuses what does not fit.
        "mediumint" | "int" | "integer" => return int(32),
        "bigint" => return int(64),
        "year" => ColumnType::Int {
            bits: 16,
            unsigned: false,
        },
        "decimal" | "numeric" => ColumnType::Decimal {
            precision: precision.and_then(|p| u8::try_from(p).ok()),
            scale: scale.and_then(|s| u8::try_from(s).ok()),
        },
        "float" => ColumnType::Float { bits: 32 },
        "double" | "real" => ColumnType::Float { bits: 64 },
        "char" | "varchar" => ColumnType::Text {
            max_len: char_max_len.and_then(|n| u32::try_from(n).ok()),
        },
        "tinytext" | "text" | "mediumtext" | "longtext" => ColumnType::Text { max_len: None },
        "date" => ColumnType::Date,
        "time" => ColumnType::Time,
        "datetime" => ColumnType::Timestamp { with_tz: false },
        // TIMESTAMP stores an instant, converted from and to the session time zone (UTC for Sluice).
        "timestamp" => ColumnType::Timestamp { with_tz: true },
        "json" => ColumnType::Json,
        "uuid" => ColumnType::Uuid,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ColumnType::Binary
        }
        "enum" => ColumnType::Enum {
            values: enum_values(column_type)?,
        },
        _ => return None,
    })
}

/// The labels of `enum('a','it''s')`, unescaped.
pub fn enum_values(column_type: &str) -> Option<Vec<String>> {
    let inner = column_type
        .trim()
        .strip_prefix("enum(")
        .or_else(|| column_type.trim().strip_prefix("ENUM("))?
        .strip_suffix(')')?;
    let mut values = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        match chars.next() {
            None => break,
            Some('\'') => {
                let mut v = String::new();
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            v.push('\'');
                        }
                        '\'' => break,
                        '\\' => v.push(chars.next()?),
                        c => v.push(c),
                    }
                }
                values.push(v);
            }
            Some(',') | Some(' ') => {}
            Some(_) => return None,
        }
    }
    Some(values)
}

/// The error kind of a server error code. Codes below 2000 come from the server, 2000–2999 are the
/// client library's (which the server never sends, but proxies may).
pub fn error_kind(code: u16) -> ErrorKind {
    match code {
        // Deadlock, lock wait timeout, query interrupted by a conflicting session.
        1205 | 1213 | 1637 => ErrorKind::Conflict,
        // Too many connections, server shutting down, connection lost / gone away, read-only replica.
        1040 | 1053 | 1077 | 1078 | 1079 | 1080 | 1152 | 1158 | 1159 | 1160 | 1161 | 1290
        | 2002 | 2003 | 2006 | 2013 | 2055 => ErrorKind::Unavailable,
        // Statement or lock timeouts on MySQL 8 and MariaDB.
        3024 | 1969 => ErrorKind::Timeout,
        1045 | 1251 | 1698 | 1820 | 1862 => ErrorKind::Auth,
        1044 | 1142 | 1143 | 1227 | 1370 => ErrorKind::Permission,
        1049 | 1146 => ErrorKind::NotFound,
        1054 => ErrorKind::SchemaMismatch,
        // Too long, out of range, bad date/time, bad string, NULL into NOT NULL, no default, duplicate in
        // another unique index, CHECK failed (MySQL 3819, MariaDB 4025), truncated, foreign keys,
        // invalid JSON, bad enum value, division by zero in strict mode.
        1048 | 1062 | 1263 | 1264 | 1265 | 1292 | 1300 | 1364 | 1366 | 1367 | 1406 | 1411
        | 1451 | 1452 | 1690 | 1586 | 3140 | 3819 | 4025 | 1365 | 4078 | 1918 => ErrorKind::BadData,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quotes_with_backticks() {
        assert_eq!(quote("a`b"), "`a``b`");
        assert_eq!(quote("weird \"name\""), "`weird \"name\"`");
        assert!(validate_identifier(&"x".repeat(65), "t").is_err());
        assert!(validate_identifier("ok", "t").is_ok());
        assert!(validate_identifier("", "t").is_err());
    }

    #[test]
    fn golden_sql() {
        assert_eq!(
            create_stage("st", "people", &cols(&["id", "name"])),
            "CREATE TEMPORARY TABLE `st` AS SELECT `id`, `name` FROM `people` LIMIT 0"
        );
        assert_eq!(
            insert_values("st", &cols(&["id", "name"]), 2),
            "INSERT INTO `st` (`id`, `name`) VALUES (?, ?), (?, ?)"
        );
        assert_eq!(
            upsert_from_stage("people", "st", &cols(&["id", "name", "age"]), "id"),
            "INSERT INTO `people` (`id`, `name`, `age`) SELECT `id`, `name`, `age` FROM `st` \
             ON DUPLICATE KEY UPDATE `name` = VALUES(`name`), `age` = VALUES(`age`)"
        );
        assert_eq!(
            upsert_from_stage("people", "st", &cols(&["id"]), "id"),
            "INSERT INTO `people` (`id`) SELECT `id` FROM `st` ON DUPLICATE KEY UPDATE `id` = VALUES(`id`)"
        );
        assert_eq!(
            count_existing("people", "st", "id"),
            "SELECT COUNT(*) FROM `st` s JOIN `people` t ON t.`id` = s.`id` FOR UPDATE"
        );
        assert_eq!(
            delete_by_keys("people", "id", 3),
            "DELETE FROM `people` WHERE `id` IN (?, ?, ?)"
        );
        // No double quotes anywhere: the SQL means the same under ANSI_QUOTES.
        assert!(!upsert_from_stage("p", "s", &cols(&["a", "b"]), "a").contains('"'));
    }

    #[test]
    fn load_data_sql_and_encoding() {
        assert_eq!(
            load_data("st", &cols(&["id", "b", "n"]), &[false, true, false]),
            "LOAD DATA LOCAL INFILE 'sluice' INTO TABLE `st` CHARACTER SET utf8mb4 \
             FIELDS TERMINATED BY X'09' ESCAPED BY X'5C' LINES TERMINATED BY X'0A' (`id`, @h1, `n`) \
             SET `b` = UNHEX(@h1)"
        );
        assert_eq!(
            any_key_exists("people", "id", 2),
            "SELECT 1 FROM `people` WHERE `id` IN (?, ?) LIMIT 1"
        );
        use mysql_async::Value as My;
        let enc = |v: My, hex: bool| {
            let mut out = Vec::new();
            encode_field(&v, hex, &mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(enc(My::NULL, false), "\\N");
        assert_eq!(enc(My::NULL, true), "\\N");
        assert_eq!(
            enc(My::Bytes(b"a\tb\nc\\d\re\0f\\N".to_vec()), false),
            "a\\tb\\nc\\\\d\\re\\0f\\\\N"
        );
        assert_eq!(enc(My::Bytes(vec![0, 0xab, b'\n']), true), "00ab0a");
        assert_eq!(
            enc(My::Bytes("Zoë 🎉".as_bytes().to_vec()), false),
            "Zoë 🎉"
        );
        assert_eq!(enc(My::Int(-42), false), "-42");
        assert_eq!(enc(My::Double(0.1), false), "0.1");
        assert_eq!(
            enc(My::Double(-1.5e-300), false).parse::<f64>().unwrap(),
            -1.5e-300
        );
        assert_eq!(enc(My::Date(2024, 2, 29, 0, 0, 0, 0), false), "2024-02-29");
        assert_eq!(
            enc(My::Date(969, 7, 20, 20, 17, 40, 5), false),
            "0969-07-20 20:17:40.000005"
        );
        assert_eq!(
            enc(My::Time(false, 0, 9, 5, 1, 250_000), false),
            "09:05:01.250000"
        );
        assert_eq!(
            enc(My::Time(true, 1, 2, 0, 0, 0), false),
            "-26:00:00.000000"
        );
    }

    #[test]
    fn maps_native_types() {
        let t = |d: &str, c: &str| column_type(d, c, Some(20), Some(28), Some(10));
        assert_eq!(t("tinyint", "tinyint(1)"), Some(ColumnType::Bool));
        assert_eq!(
            t("int", "int(10) unsigned"),
            Some(ColumnType::Int {
                bits: 32,
                unsigned: true
            })
        );
        assert_eq!(
            t("bigint", "bigint(20)"),
            Some(ColumnType::Int {
                bits: 64,
                unsigned: false
            })
        );
        assert_eq!(
            t("varchar", "varchar(20)"),
            Some(ColumnType::Text { max_len: Some(20) })
        );
        assert_eq!(
            t("decimal", "decimal(28,10)"),
            Some(ColumnType::Decimal {
                precision: Some(28),
                scale: Some(10)
            })
        );
        assert_eq!(
            t("timestamp", "timestamp(6)"),
            Some(ColumnType::Timestamp { with_tz: true })
        );
        assert_eq!(
            t("datetime", "datetime(6)"),
            Some(ColumnType::Timestamp { with_tz: false })
        );
        assert_eq!(t("set", "set('a','b')"), None);
        assert_eq!(t("geometry", "geometry"), None);
        assert_eq!(
            t("enum", "enum('free','it''s','a,b')"),
            Some(ColumnType::Enum {
                values: vec!["free".into(), "it's".into(), "a,b".into()]
            })
        );
        assert!(is_json_check("json_valid(`doc`)", "doc"));
        assert!(!is_json_check("`qty` >= 0", "qty"));
    }

    #[test]
    fn classifies_errors() {
        assert_eq!(error_kind(1213), ErrorKind::Conflict);
        assert_eq!(error_kind(1205), ErrorKind::Conflict);
        assert_eq!(error_kind(2013), ErrorKind::Unavailable);
        assert_eq!(error_kind(2006), ErrorKind::Unavailable);
        assert_eq!(error_kind(1040), ErrorKind::Unavailable);
        for code in [1406, 1264, 1292, 1366, 1048, 1062, 3819, 4025] {
            assert_eq!(error_kind(code), ErrorKind::BadData, "{code}");
        }
        assert_eq!(error_kind(1146), ErrorKind::NotFound);
        assert_eq!(error_kind(1054), ErrorKind::SchemaMismatch);
        assert_eq!(error_kind(1045), ErrorKind::Auth);
        assert_eq!(error_kind(1142), ErrorKind::Permission);
    }
}
