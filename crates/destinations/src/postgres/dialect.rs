//! PostgreSQL SQL text and catalog interpretation — pure functions, no I/O, golden-tested below.
//!
//! Identifiers are validated and double-quoted here; values never appear in SQL text (they are bound or
//! sent through binary COPY). Also here: how native types map onto portable [`ColumnType`]s and how
//! SQLSTATE codes map onto [`ErrorKind`]s, since both are data about the dialect.

use sluice_core::capabilities::{Identifiers, LengthUnit, QuoteEscape};
use sluice_core::ColumnType;

use crate::{Capabilities, Deletes, ErrorKind, IdentifierCase, UpsertStyle};

/// PostgreSQL, as data.
pub static CAPABILITIES: Capabilities = Capabilities {
    name: "PostgreSQL",
    identifiers: Identifiers {
        // PostgreSQL truncates longer identifiers (NAMEDATALEN − 1).
        max_len: Some(63),
        len_unit: LengthUnit::Bytes,
        quote: '"',
        escape: QuoteEscape::Doubled,
        trailing_space: true,
        case: IdentifierCase::Exact,
    },
    upsert: UpsertStyle::OnConflict,
    deletes: Deletes::ByKey,
    // Measured with the export bench (1M profiles): 20,000-row batches are 7% faster than 10,000, for
    // about 90 MiB more of peak memory; 30,000 gained little more and went past 300 MB.
    batch_rows: 20_000,
    // The protocol counts a statement's parameters in 16 bits (the client binds key arrays, not rows).
    max_bind_parameters: Some(65_535),
    max_rows_per_insert: None,
    reports_upsert_counts: true,
    defers_confirmation: false,
    enforces_keys: true,
    lexical: sluice_core::capabilities::lexical::POSTGRES,
};

/// Checks that `name` can be a PostgreSQL identifier once quoted; the message names `what`.
pub fn validate_identifier(name: &str, what: &str) -> Result<(), String> {
    CAPABILITIES.validate_identifier(name, what)
}

/// `"name"`, with inner double quotes doubled; the name must have passed [`validate_identifier`].
pub fn quote(name: &str) -> String {
    CAPABILITIES.quote(name)
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

fn column_list(columns: &[String]) -> String {
    columns
        .iter()
        .map(|c| quote(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A written column as staged. Columns of user-defined types (enums, domains, extension types such as
/// citext, and arrays of them) are staged as `text`/`text[]` and cast back on insert: a staging table
/// that kept those types would depend on them and stop their owner from dropping or replacing them
/// for as long as Sluice's connection lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StagedColumn<'a> {
    pub name: &'a str,
    /// `(schema, type name, is_array)` of a user-defined type.
    pub user_type: Option<(&'a str, &'a str, bool)>,
}

/// Prepared (never run) to learn the written columns' types before staging them.
pub fn probe_columns(schema: &str, table: &str, columns: &[String]) -> String {
    format!(
        "SELECT {} FROM {}",
        column_list(columns),
        qualified(schema, table)
    )
}

/// A session-private staging table shaped like the written columns of the target (same types, typmods
/// and limits, no constraints), emptied at every commit so each batch starts clean.
pub fn create_stage(
    stage: &str,
    schema: &str,
    table: &str,
    columns: &[StagedColumn<'_>],
) -> String {
    let items: Vec<String> = columns
        .iter()
        .map(|c| match c.user_type {
            Some((_, _, array)) => format!(
                "{q}::text{} AS {q}",
                if array { "[]" } else { "" },
                q = quote(c.name)
            ),
            None => quote(c.name),
        })
        .collect();
    format!(
        "CREATE TEMPORARY TABLE {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA",
        quote(stage),
        items.join(", "),
        qualified(schema, table)
    )
}

pub fn copy_into_stage(stage: &str, columns: &[String]) -> String {
    format!(
        "COPY pg_temp.{} ({}) FROM STDIN (FORMAT binary)",
        quote(stage),
        column_list(columns)
    )
}

/// One set-based upsert from the staging table into the target, answering (inserted, total).
///
/// `INSERT … ON CONFLICT` works from PostgreSQL 9.5 on (no `MERGE` needed); `xmax = 0` in `RETURNING`
/// is true exactly for freshly inserted tuples, which tells inserts from updates without a second query.
/// Only the written columns appear in `SET`, so other columns keep their values on update and take their
/// defaults on insert. When only the key is written, `SET key = EXCLUDED.key` keeps existing rows counted
/// as updated (with `DO NOTHING` they would not be returned at all).
pub fn upsert_from_stage(
    schema: &str,
    table: &str,
    stage: &str,
    columns: &[StagedColumn<'_>],
    key: &str,
) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote(c.name)).collect();
    let items: Vec<String> = columns
        .iter()
        .map(|c| match c.user_type {
            Some((type_schema, type_name, _)) => {
                format!("{}::{}", quote(c.name), qualified(type_schema, type_name))
            }
            None => quote(c.name),
        })
        .collect();
    let mut sets: Vec<String> = columns
        .iter()
        .filter(|c| c.name != key)
        .map(|c| format!("{q} = EXCLUDED.{q}", q = quote(c.name)))
        .collect();
    if sets.is_empty() {
        sets.push(format!("{q} = EXCLUDED.{q}", q = quote(key)));
    }
    format!(
        "WITH upserted AS (INSERT INTO {target} ({names}) SELECT {items} FROM pg_temp.{stage} \
         ON CONFLICT ({key}) DO UPDATE SET {sets} RETURNING (xmax = 0) AS inserted) \
         SELECT count(*) FILTER (WHERE inserted), count(*) FROM upserted",
        target = qualified(schema, table),
        names = names.join(", "),
        items = items.join(", "),
        stage = quote(stage),
        key = quote(key),
        sets = sets.join(", "),
    )
}

/// COPY straight into the target, for batches whose keys are all new.
pub fn copy_into_target(schema: &str, table: &str, columns: &[String]) -> String {
    format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        qualified(schema, table),
        column_list(columns)
    )
}

/// Whether any key of the batch (`$1`, an array of the key column's type) is already in the target.
pub fn any_key_exists(schema: &str, table: &str, key: &str) -> String {
    format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = ANY($1))",
        qualified(schema, table),
        quote(key)
    )
}

/// Deletes by key with one array parameter (`$1`, typed as an array of the key column's type).
pub fn delete_by_keys(schema: &str, table: &str, key: &str) -> String {
    format!(
        "DELETE FROM {} WHERE {} = ANY($1)",
        qualified(schema, table),
        quote(key)
    )
}

/// Finds a table (or partitioned table) by exact name in a schema: `$1` schema, `$2` name.
pub const FIND_TABLE: &str = "SELECT c.oid, c.relname::text FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')";

/// The ordinary and partitioned tables of schema `$1` (not the partitions themselves), by name.
pub const LIST_TABLES: &str = "SELECT c.relname::text FROM pg_catalog.pg_class c \
     JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1";

/// Whether schema `$1` exists.
pub const SCHEMA_EXISTS: &str = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1";

/// The columns of table `$1` (an OID) in ordinal order, with what [`column_type`] needs. Domains are
/// described by their base type; array element and enum labels are resolved here so one query suffices.
/// `attgenerated` exists from PostgreSQL 12 on, hence the variant for older servers.
pub fn columns_query(server_version_num: i32) -> String {
    let generated = if server_version_num >= 120000 {
        "a.attgenerated <> ''"
    } else {
        "false"
    };
    format!(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
           (a.atthasdef OR a.attidentity <> '') AS has_default, {generated} AS generated, \
           b.typname::text, b.typtype::text, \
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod, \
           e.typname::text AS elem_name, e.typtype::text AS elem_typtype, \
           ARRAY(SELECT l.enumlabel::text FROM pg_catalog.pg_enum l \
                 WHERE l.enumtypid = COALESCE(e.oid, b.oid) ORDER BY l.enumsortorder) AS labels \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
         LEFT JOIN pg_catalog.pg_type e ON b.typcategory = 'A' AND e.oid = b.typelem \
         WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum"
    )
}

/// The unique keys of table `$1` usable as `ON CONFLICT` arbiters: unique constraints and unique indexes
/// that are valid, not partial, not on expressions and not deferrable; the primary key first. Only the
/// key columns count (`INCLUDE` columns sit after `indnkeyatts`).
pub const KEYS_QUERY: &str = "SELECT i.indisprimary, \
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
             WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) AS columns \
     FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
     WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND i.indimmediate \
       AND i.indpred IS NULL AND i.indexprs IS NULL \
     ORDER BY i.indisprimary DESC, \
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint co WHERE co.conindid = i.indexrelid) DESC, ic.relname";

/// A column's type as the catalog describes it (domains already resolved to their base type).
#[derive(Debug, Clone, Copy)]
pub struct NativeType<'a> {
    /// `pg_type.typname`: `int4`, `varchar`, `_text` …
    pub name: &'a str,
    /// `pg_type.typtype`: `b` base, `e` enum, `c` composite, `r` range …
    pub typtype: &'a str,
    /// `atttypmod` (−1 when unconstrained).
    pub typmod: i32,
    /// Element type name and typtype, for arrays.
    pub element: Option<(&'a str, &'a str)>,
    /// Labels of the enum (or of the array's enum element type).
    pub labels: &'a [String],
}

/// The portable type of a native column type; `None` when Sluice cannot write it.
pub fn column_type(native: &NativeType<'_>) -> Option<ColumnType> {
    match native.element {
        Some((name, typtype)) => {
            scalar_type(name, typtype, native.typmod, native.labels).map(|element| {
                ColumnType::Array {
                    element: Box::new(element),
                }
            })
        }
        None => scalar_type(native.name, native.typtype, native.typmod, native.labels),
    }
}

fn scalar_type(name: &str, typtype: &str, typmod: i32, labels: &[String]) -> Option<ColumnType> {
    if typtype == "e" {
        return Some(ColumnType::Enum {
            values: labels.to_vec(),
        });
    }
    Some(match name {
        "text" | "citext" | "name" => ColumnType::Text { max_len: None },
        // varchar(n) and char(n) store n + 4 (the varlena header) in the typmod.
        "varchar" | "bpchar" => ColumnType::Text {
            max_len: (typmod >= 4).then(|| (typmod - 4) as u32),
        },
        "int2" => ColumnType::Int {
            bits: 16,
            unsigned: false,
        },
        "int4" => ColumnType::Int {
            bits: 32,
            unsigned: false,
        },
        "int8" => ColumnType::Int {
            bits: 64,
            unsigned: false,
        },
        "float4" => ColumnType::Float { bits: 32 },
        "float8" => ColumnType::Float { bits: 64 },
        "numeric" => numeric_type(typmod),
        "bool" => ColumnType::Bool,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time,
        "timestamp" => ColumnType::Timestamp { with_tz: false },
        "timestamptz" => ColumnType::Timestamp { with_tz: true },
        "uuid" => ColumnType::Uuid,
        "json" | "jsonb" => ColumnType::Json,
        "bytea" => ColumnType::Binary,
        _ => return None,
    })
}

/// `numeric(p,s)` keeps `((p << 16) | s) + 4` in the typmod; the scale is an 11-bit signed field since
/// PostgreSQL 15 (negative scales). Precisions beyond what the portable type holds read as unconstrained.
fn numeric_type(typmod: i32) -> ColumnType {
    if typmod < 4 {
        return ColumnType::Decimal {
            precision: None,
            scale: None,
        };
    }
    let t = typmod - 4;
    let precision = (t >> 16) & 0xffff;
    let scale = ((t & 0x7ff) ^ 1024) - 1024;
    match (u8::try_from(precision), u8::try_from(scale)) {
        (Ok(p), Ok(s)) => ColumnType::Decimal {
            precision: Some(p),
            scale: Some(s),
        },
        _ => ColumnType::Decimal {
            precision: None,
            scale: None,
        },
    }
}

/// What a SQLSTATE means for Sluice: retry later, fix the settings, fix the table, or reject the rows.
pub fn error_kind(sqlstate: &str) -> ErrorKind {
    match sqlstate {
        "42501" => ErrorKind::Permission,
        // Undefined table, invalid schema name, database does not exist.
        "42P01" | "3F000" | "3D000" => ErrorKind::NotFound,
        // Undefined column; a column whose type changed so the staged values no longer fit; the key lost
        // its unique constraint ("no unique or exclusion constraint matching the ON CONFLICT").
        "42703" | "42804" | "42P10" => ErrorKind::SchemaMismatch,
        "40001" | "40P01" | "55P03" => ErrorKind::Conflict,
        "57014" => ErrorKind::Timeout,
        // A hot standby refuses writes.
        "25006" => ErrorKind::Permission,
        // Two rows of one batch with the same key ("ON CONFLICT DO UPDATE command cannot affect row a
        // second time"): a data problem.
        "21000" => ErrorKind::BadData,
        _ => match sqlstate.get(..2) {
            Some("08") => ErrorKind::Unavailable,
            Some("28") => ErrorKind::Auth,
            // Data exceptions, integrity constraints, and limits such as an index row that is too big.
            Some("22") | Some("23") | Some("54") => ErrorKind::BadData,
            // Out of connections, disk full, shutting down.
            Some("53") | Some("57") | Some("58") => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("customers"), "\"customers\"");
        assert_eq!(quote("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(
            qualified("public", "Mixed Case"),
            "\"public\".\"Mixed Case\""
        );
        assert!(validate_identifier("", "the table name").is_err());
        assert!(validate_identifier(&"x".repeat(64), "the table name").is_err());
        assert!(validate_identifier("a\0b", "the table name").is_err());
        assert!(validate_identifier("ünïcode table", "the table name").is_ok());
    }

    fn plain(names: &[&'static str]) -> Vec<StagedColumn<'static>> {
        names
            .iter()
            .map(|n| StagedColumn {
                name: n,
                user_type: None,
            })
            .collect()
    }

    #[test]
    fn golden_upsert() {
        assert_eq!(
            upsert_from_stage("public", "customers", "sluice_stage_1", &plain(&["id", "email", "name"]), "id"),
            "WITH upserted AS (INSERT INTO \"public\".\"customers\" (\"id\", \"email\", \"name\") \
             SELECT \"id\", \"email\", \"name\" FROM pg_temp.\"sluice_stage_1\" ON CONFLICT (\"id\") \
             DO UPDATE SET \"email\" = EXCLUDED.\"email\", \"name\" = EXCLUDED.\"name\" \
             RETURNING (xmax = 0) AS inserted) SELECT count(*) FILTER (WHERE inserted), count(*) FROM upserted"
        );
        assert!(upsert_from_stage("s", "t", "st", &plain(&["id"]), "id")
            .contains("SET \"id\" = EXCLUDED.\"id\""));
        let with_enum = [
            StagedColumn {
                name: "id",
                user_type: None,
            },
            StagedColumn {
                name: "plan",
                user_type: Some(("crm", "plan", false)),
            },
        ];
        assert!(upsert_from_stage("s", "t", "st", &with_enum, "id")
            .contains("SELECT \"id\", \"plan\"::\"crm\".\"plan\" FROM"));
    }

    #[test]
    fn golden_stage_copy_delete() {
        let columns = [
            StagedColumn {
                name: "id",
                user_type: None,
            },
            StagedColumn {
                name: "na\"me",
                user_type: None,
            },
            StagedColumn {
                name: "tags",
                user_type: Some(("public", "_mood", true)),
            },
        ];
        assert_eq!(
            create_stage("sluice_stage_2", "crm", "people", &columns),
            "CREATE TEMPORARY TABLE \"sluice_stage_2\" ON COMMIT DELETE ROWS AS SELECT \"id\", \"na\"\"me\", \
             \"tags\"::text[] AS \"tags\" FROM \"crm\".\"people\" WITH NO DATA"
        );
        assert_eq!(
            copy_into_stage("sluice_stage_2", &cols(&["id", "name"])),
            "COPY pg_temp.\"sluice_stage_2\" (\"id\", \"name\") FROM STDIN (FORMAT binary)"
        );
        assert_eq!(
            copy_into_target("crm", "people", &cols(&["id"])),
            "COPY \"crm\".\"people\" (\"id\") FROM STDIN (FORMAT binary)"
        );
        assert_eq!(
            any_key_exists("crm", "people", "id"),
            "SELECT EXISTS (SELECT 1 FROM \"crm\".\"people\" WHERE \"id\" = ANY($1))"
        );
        assert_eq!(
            probe_columns("s", "t", &cols(&["a"])),
            "SELECT \"a\" FROM \"s\".\"t\""
        );
        assert_eq!(
            delete_by_keys("public", "people", "id"),
            "DELETE FROM \"public\".\"people\" WHERE \"id\" = ANY($1)"
        );
        assert!(columns_query(110000).contains("false AS generated"));
        assert!(columns_query(150000).contains("a.attgenerated <> ''"));
    }

    fn native<'a>(name: &'a str, typmod: i32) -> NativeType<'a> {
        NativeType {
            name,
            typtype: "b",
            typmod,
            element: None,
            labels: &[],
        }
    }

    #[test]
    fn type_mapping() {
        assert_eq!(
            column_type(&native("varchar", 24)),
            Some(ColumnType::Text { max_len: Some(20) })
        );
        assert_eq!(
            column_type(&native("varchar", -1)),
            Some(ColumnType::Text { max_len: None })
        );
        assert_eq!(
            column_type(&native("bpchar", 5)),
            Some(ColumnType::Text { max_len: Some(1) })
        );
        assert_eq!(
            column_type(&native("numeric", ((28 << 16) | 10) + 4)),
            Some(ColumnType::Decimal {
                precision: Some(28),
                scale: Some(10)
            })
        );
        assert_eq!(
            column_type(&native("numeric", -1)),
            Some(ColumnType::Decimal {
                precision: None,
                scale: None
            })
        );
        assert_eq!(
            column_type(&native("timestamptz", -1)),
            Some(ColumnType::Timestamp { with_tz: true })
        );
        assert_eq!(
            column_type(&native("int2", -1)),
            Some(ColumnType::Int {
                bits: 16,
                unsigned: false
            })
        );
        assert_eq!(column_type(&native("macaddr", -1)), None);
        let labels = vec!["free".to_string(), "pro".to_string()];
        let e = NativeType {
            name: "plan",
            typtype: "e",
            typmod: -1,
            element: None,
            labels: &labels,
        };
        assert_eq!(
            column_type(&e),
            Some(ColumnType::Enum {
                values: labels.clone()
            })
        );
        let arr = NativeType {
            name: "_varchar",
            typtype: "b",
            typmod: 14,
            element: Some(("varchar", "b")),
            labels: &[],
        };
        assert_eq!(
            column_type(&arr),
            Some(ColumnType::Array {
                element: Box::new(ColumnType::Text { max_len: Some(10) })
            })
        );
        let bad = NativeType {
            name: "_inet",
            typtype: "b",
            typmod: -1,
            element: Some(("inet", "b")),
            labels: &[],
        };
        assert_eq!(column_type(&bad), None);
    }

    #[test]
    fn sqlstates() {
        assert_eq!(error_kind("08006"), ErrorKind::Unavailable);
        assert_eq!(error_kind("28P01"), ErrorKind::Auth);
        assert_eq!(error_kind("28000"), ErrorKind::Auth);
        assert_eq!(error_kind("42501"), ErrorKind::Permission);
        assert_eq!(error_kind("42P01"), ErrorKind::NotFound);
        assert_eq!(error_kind("3F000"), ErrorKind::NotFound);
        assert_eq!(error_kind("42703"), ErrorKind::SchemaMismatch);
        assert_eq!(error_kind("22001"), ErrorKind::BadData);
        assert_eq!(error_kind("23505"), ErrorKind::BadData);
        assert_eq!(error_kind("40001"), ErrorKind::Conflict);
        assert_eq!(error_kind("40P01"), ErrorKind::Conflict);
        assert_eq!(error_kind("57014"), ErrorKind::Timeout);
        assert_eq!(error_kind("53300"), ErrorKind::Unavailable);
        assert_eq!(error_kind("42601"), ErrorKind::Internal);
    }
}
