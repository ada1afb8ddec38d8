//! Databases as sources: a connection's table or `SELECT` read into Sluice, a page at a time.
//!
//! A connection is one record whatever it is used for: the same settings and the same session serve
//! writes ([`crate::Destination`]) and reads ([`Source`]). [`open_source`] builds the reading side of a
//! connection of any kind.
//!
//! What every source does, written once here and run by each database through [`Reads`]:
//! - [`Source::columns`] lists the columns of a table (the destination's own table description) or of a
//!   query (the driver's description of its result), each with the database type, the portable
//!   [`ColumnType`], the Customer Model type it maps to ([`property_type`]) and whether it holds JSON;
//! - [`Source::sample`] reads the first rows;
//! - [`Source::read_page`] reads one page of a [`ReadPlan`]: in `cursor` mode the rows with
//!   `cursor >= mark` in `(cursor, id)` order, starting strictly after the previous page's last
//!   `(cursor, id)` (the keyset of [`sluice_core::source::Page::after`], evaluated by the database), so
//!   rows sharing a cursor value across a page boundary are read once; in `full` mode every row in id
//!   order, after the previous page's last id. [`Pages`] walks a plan page by page: a read holds one
//!   page in memory, never the table.
//!
//! A query is read as a subquery (`SELECT … FROM (<query>) AS s WHERE … ORDER BY … LIMIT n`), a table as
//! `SELECT … FROM <table> AS s …`; identifiers are validated and quoted by the database's
//! [`Capabilities`] and values are bound as parameters (ClickHouse, whose native protocol of 18.16 has no
//! parameters, gets typed literals escaped by its dialect). Each column is selected as the text the
//! drift checks read back ([`crate::drift::decode`]), so a source value is the value Sluice would write
//! for the column type; PostgreSQL sends timestamps, integers, doubles and booleans in binary instead,
//! each decoded to the value its text gives.
//!
//! A page's rows are [`PageRows`]: decoded when asked for, and hashed as they were read, so that a run
//! comparing rows by their hash decodes only those that changed.
//!
//! Rows whose id or cursor is NULL have no place in the keyset order and are not read;
//! [`Source::count_unread`] counts them, for a run to report.
//!
//! [`Source::inspect`] is the preview of a source a user has not saved yet (a table or a query typed
//! in): its columns and first rows, read under guards each database gives as it can — a read-only
//! transaction with a statement timeout (PostgreSQL: `BEGIN READ ONLY` and `statement_timeout`;
//! MySQL/MariaDB: `START TRANSACTION READ ONLY` and `max_statement_time` / `MAX_EXECUTION_TIME`),
//! query settings (ClickHouse: `readonly = 1`, which also forbids table functions such as `url()` or
//! `file()`, and `max_execution_time`), a connection made query-only and interrupted at the deadline
//! (SQLite). Snowflake has no read-only transaction: one statement per request, the subquery form and
//! the connection's role are its guards, and the caller stops waiting at the deadline (the session's
//! own statement timeout ends the statement later). Every database also refuses a second statement in
//! what Sluice sends (prepared statements, one statement per request).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value as Json;
use sluice_core::capabilities::Resolution;
use sluice_core::schema::PropertyType;
use sluice_core::source::{CursorValue, SourceSpec};
use sluice_core::{Column, ColumnType, FieldErrors, Value};

use crate::{Capabilities, DestinationError, ErrorKind, Result};

/// What a source reads: a table of the connection's schema (or database), or a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFrom {
    Table(String),
    /// One `SELECT` (see [`sluice_core::source::check_query`], by the database's lexical rules); a
    /// trailing `;` is dropped.
    Query(String),
}

impl SourceFrom {
    /// The table or query of a source pipeline.
    pub fn of(spec: &SourceSpec) -> Result<SourceFrom> {
        match (&spec.table, &spec.query) {
            (Some(t), None) => Ok(SourceFrom::Table(t.clone())),
            (None, Some(q)) => Ok(SourceFrom::Query(q.clone())),
            _ => Err(config("give a table or a query")),
        }
    }

    /// How the source is named in messages.
    fn describe(&self) -> String {
        match self {
            SourceFrom::Table(t) => format!("table `{t}`"),
            SourceFrom::Query(_) => "the query".into(),
        }
    }
}

/// One column of a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceColumn {
    pub name: String,
    /// The type as the database names it.
    #[serde(rename = "type")]
    pub native_type: String,
    pub nullable: bool,
    /// The portable type; `None` when Sluice cannot read the column (it is read as text).
    #[serde(skip)]
    pub ty: Option<ColumnType>,
    /// The Customer Model type the column maps to (`string`, `decimal(12,2)`, `json` …); `None` when
    /// it has none.
    #[serde(skip)]
    pub property: Option<PropertyType>,
    /// [`Self::property`] by name, for the API.
    pub model_type: Option<String>,
    /// Whether the column holds JSON (a Customer Model object can be proposed from its values).
    pub json: bool,
}

impl SourceColumn {
    /// A source column from a column as the destination side describes it.
    pub fn from_column(c: Column) -> SourceColumn {
        let property = c.ty.as_ref().and_then(property_type);
        SourceColumn {
            model_type: property.as_ref().map(PropertyType::name),
            json: c.ty == Some(ColumnType::Json),
            name: c.name,
            native_type: c.native_type,
            nullable: c.nullable,
            ty: c.ty,
            property,
        }
    }
}

/// The columns of a source, in the order its rows give their values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceSchema {
    pub columns: Vec<SourceColumn>,
    /// How a name a user writes finds its column (the database's identifier rule).
    #[serde(skip)]
    pub capabilities: &'static Capabilities,
}

impl SourceSchema {
    /// The index of the column a name written by a user means; a name matching none is
    /// [`ErrorKind::SchemaMismatch`] naming it.
    pub fn resolve(&self, written: &str) -> Result<usize> {
        let names = self.columns.iter().map(|c| c.name.as_str());
        match self.capabilities.identifiers.case.resolve(written, names) {
            Resolution::Found(i) => Ok(i),
            Resolution::Missing => Err(DestinationError::new(
                ErrorKind::SchemaMismatch,
                format!(
                    "column `{written}` is not among the source's columns ({})",
                    self.names().join(", ")
                ),
            )),
            Resolution::Ambiguous(a, b) => Err(DestinationError::new(
                ErrorKind::Config,
                format!(
                    "`{written}` matches two columns, `{}` and `{}`: write it in double quotes as stored",
                    self.columns[a].name, self.columns[b].name
                ),
            )),
        }
    }

    fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }
}

/// The Customer Model type of a portable column type: the closest type that holds every value.
/// Binary columns have none (the model keeps no bytes).
pub fn property_type(ty: &ColumnType) -> Option<PropertyType> {
    use sluice_core::schema::MAX_DECIMAL_PRECISION;
    Some(match ty {
        ColumnType::Text { .. } | ColumnType::Enum { .. } => PropertyType::String,
        // An unsigned 64-bit integer may exceed the model's 64-bit signed `int`.
        ColumnType::Int {
            bits: 64,
            unsigned: true,
        } => PropertyType::Decimal {
            precision: 20,
            scale: 0,
        },
        ColumnType::Int { .. } => PropertyType::Int,
        ColumnType::Float { .. } => PropertyType::Float,
        ColumnType::Decimal {
            precision: Some(p),
            scale: Some(s),
        } if *p <= MAX_DECIMAL_PRECISION && s <= p => PropertyType::Decimal {
            precision: *p,
            scale: *s,
        },
        // Unconstrained or wider than Sluice computes exactly: a float keeps the magnitude.
        ColumnType::Decimal { .. } => PropertyType::Float,
        ColumnType::Bool => PropertyType::Boolean,
        ColumnType::Date => PropertyType::Date,
        ColumnType::Time => PropertyType::Time,
        ColumnType::Timestamp { .. } => PropertyType::DateTime,
        ColumnType::Uuid => PropertyType::Uuid,
        ColumnType::Json => PropertyType::Json,
        ColumnType::Binary => return None,
        ColumnType::Array { element } => PropertyType::Array(Box::new(property_type(element)?)),
    })
}

/// First rows of a source, as a user sees them before saving it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub schema: SourceSchema,
    pub rows: Vec<Vec<Value>>,
}

/// How a read finds its rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadMode {
    /// Rows with `cursor >= mark` (all rows with a cursor when there is no mark), in `(cursor, id)` order.
    Cursor {
        column: usize,
        mark: Option<CursorValue>,
    },
    /// Every row, in id order.
    Full,
}

/// A read of one source: what, which columns, the id, the mode and the page size. Built by
/// [`ReadPlan::new`], which checks the id and cursor columns.
#[derive(Debug, Clone)]
pub struct ReadPlan {
    pub from: SourceFrom,
    /// The columns read, as [`Source::columns`] gave them when the plan was made: a column dropped since
    /// fails the read with [`ErrorKind::SchemaMismatch`] naming it.
    pub schema: SourceSchema,
    /// The index of the id column in [`Self::schema`].
    pub id: usize,
    pub mode: ReadMode,
    pub page_rows: usize,
}

/// Where a page ended: the next starts strictly after this `(cursor, id)` (`full` mode: this id).
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub cursor: Option<CursorValue>,
    pub id: Value,
}

/// The rows of a page, each value decoded when it is asked for. A database whose driver hands over rows
/// as it received them (PostgreSQL) keeps them so: a row that compares unchanged by
/// [`PageRows::hash`] is never decoded. The others give their decoded rows (`Vec<Vec<Value>>`).
pub trait PageRows: Send + Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of columns of a row.
    fn width(&self) -> usize;

    /// Column `column` of row `row` (in [`ReadPlan::schema`] order), decoded.
    fn value(&self, row: usize, column: usize) -> Value;

    /// Row `row`, decoded where `wanted` (one flag per column) says so; the other columns may be read
    /// as NULL.
    fn row(&self, row: usize, wanted: &[bool]) -> Cow<'_, [Value]>;

    /// A hash of the `wanted` columns of row `row` under `seed`: the same for the same values read the
    /// same way, whatever page they came in. Only compared with hashes of the same source.
    fn hash(&self, row: usize, seed: u64, wanted: &[bool]) -> u128;
}

impl PageRows for Vec<Vec<Value>> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn width(&self) -> usize {
        self.first().map_or(0, Vec::len)
    }

    fn value(&self, row: usize, column: usize) -> Value {
        self[row][column].clone()
    }

    fn row(&self, row: usize, _wanted: &[bool]) -> Cow<'_, [Value]> {
        Cow::Borrowed(&self[row])
    }

    fn hash(&self, row: usize, seed: u64, wanted: &[bool]) -> u128 {
        let values = self[row]
            .iter()
            .zip(wanted)
            .filter(|(_, w)| **w)
            .map(|(v, _)| v);
        sluice_core::hash::hash_values(seed, values)
    }
}

/// One page of a read.
pub struct SourcePage {
    /// The rows, in [`ReadPlan::schema`] order.
    pub rows: Box<dyn PageRows>,
    /// The position of the last row; `None` for an empty page.
    pub end: Option<Position>,
    /// Whether another page may follow (this one was full).
    pub more: bool,
}

impl SourcePage {
    /// Every row, decoded.
    pub fn values(&self) -> Vec<Vec<Value>> {
        let all = vec![true; self.rows.width()];
        (0..self.rows.len())
            .map(|r| self.rows.row(r, &all).into_owned())
            .collect()
    }
}

impl std::fmt::Debug for SourcePage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourcePage")
            .field("rows", &self.rows.len())
            .field("end", &self.end)
            .field("more", &self.more)
            .finish()
    }
}

impl ReadPlan {
    /// A plan reading `schema` (as [`Source::columns`] answered) of `from`, identified by `id_column`,
    /// with `cursor` = `(column, mark)` in cursor mode or `None` in full mode.
    pub fn new(
        from: SourceFrom,
        schema: SourceSchema,
        id_column: &str,
        cursor: Option<(&str, Option<CursorValue>)>,
        page_rows: usize,
    ) -> Result<ReadPlan> {
        let id = schema.resolve(id_column)?;
        let id_col = &schema.columns[id];
        if !id_col.ty.as_ref().is_some_and(ColumnType::is_key_capable) {
            return Err(config(format!(
                "the id column `{}` is {}: an id must be a string, an integer or a UUID",
                id_col.name, id_col.native_type
            )));
        }
        let mode = match cursor {
            None => ReadMode::Full,
            Some((name, mark)) => {
                let column = schema.resolve(name)?;
                let c = &schema.columns[column];
                let kind = cursor_kind(c.ty.as_ref()).ok_or_else(|| {
                    config(format!(
                        "the cursor column `{}` is {}: a cursor must be an integer, a timestamp or text",
                        c.name, c.native_type
                    ))
                })?;
                if let Some(m) = &mark {
                    if std::mem::discriminant(m) != std::mem::discriminant(&kind) {
                        return Err(config(format!(
                            "the mark {m:?} is not a value of the cursor column `{}` ({})",
                            c.name, c.native_type
                        )));
                    }
                }
                ReadMode::Cursor { column, mark }
            }
        };
        if page_rows == 0 {
            return Err(config("a page holds at least one row"));
        }
        Ok(ReadPlan {
            from,
            schema,
            id,
            mode,
            page_rows,
        })
    }

    /// The position of row `row` of a page of this plan.
    fn position(&self, rows: &dyn PageRows, row: usize) -> Result<Position> {
        let cursor = match &self.mode {
            ReadMode::Cursor { column, .. } => Some(cursor_value(
                &rows.value(row, *column),
                &self.schema.columns[*column].name,
            )?),
            ReadMode::Full => None,
        };
        Ok(Position {
            cursor,
            id: rows.value(row, self.id),
        })
    }
}

/// A cursor value of the kind a column of type `ty` gives (its value is a placeholder).
fn cursor_kind(ty: Option<&ColumnType>) -> Option<CursorValue> {
    match ty? {
        ColumnType::Int { .. } => Some(CursorValue::Int(0)),
        ColumnType::Timestamp { .. } => Some(CursorValue::Time(chrono::DateTime::UNIX_EPOCH)),
        ColumnType::Text { .. } => Some(CursorValue::Text(String::new())),
        _ => None,
    }
}

/// A cursor column's value read from a row.
pub fn cursor_value(v: &Value, column: &str) -> Result<CursorValue> {
    match v {
        Value::Int(n) => Ok(CursorValue::Int(*n)),
        Value::DateTime(t) => Ok(CursorValue::Time(*t)),
        Value::String(s) => Ok(CursorValue::Text(s.to_string())),
        other => Err(DestinationError::new(
            ErrorKind::SchemaMismatch,
            format!(
                "the cursor column `{column}` gave a {} value, not an integer, a timestamp or text",
                other.kind()
            ),
        )),
    }
}

fn cursor_bind(c: &CursorValue) -> Value {
    match c {
        CursorValue::Int(n) => Value::Int(*n),
        CursorValue::Time(t) => Value::DateTime(*t),
        CursorValue::Text(s) => Value::String(s.as_str().into()),
    }
}

fn config(message: impl Into<String>) -> DestinationError {
    DestinationError::new(ErrorKind::Config, message)
}

/// Reading a database as a source. Implemented by every connection kind (see [`open_source`]).
#[async_trait]
pub trait Source: Send + Sync {
    /// The columns of the table or query; a table that does not exist is [`ErrorKind::NotFound`].
    async fn columns(&self, from: &SourceFrom) -> Result<SourceSchema>;

    /// The first `rows` rows, in no particular order.
    async fn sample(&self, from: &SourceFrom, rows: usize) -> Result<Sample>;

    /// The page of `plan` that starts after `after` (the first page with `None`).
    async fn read_page(&self, plan: &ReadPlan, after: Option<&Position>) -> Result<SourcePage>;

    /// How many rows of the source `plan` cannot read: their id (or, in cursor mode, their cursor) is
    /// NULL, which has no place in the keyset order. A run reports them instead of passing over them.
    async fn count_unread(&self, plan: &ReadPlan) -> Result<u64>;

    /// The columns and the first `rows` rows, as [`Self::sample`] reads them, for a source a user is
    /// trying out: read-only where the database allows it, each statement stopped after `timeout`
    /// (by the server where it can), and the whole answered [`ErrorKind::Timeout`] once `timeout`
    /// and a short grace have passed. See the module documentation for each database's guards.
    async fn inspect(&self, from: &SourceFrom, rows: usize, timeout: Duration) -> Result<Sample>;
}

/// The database side of a [`Source`]: how it names and describes what it reads and runs a statement.
/// The rest is the same for all and lives here.
#[async_trait]
pub trait Reads: Send + Sync {
    /// The database's identifier rules.
    fn source_capabilities(&self) -> &'static Capabilities;

    /// The table as a `FROM` item (qualified as the destination qualifies its tables), its name
    /// already validated.
    fn relation(&self, table: &str) -> String;

    /// `column` selected as the text [`crate::drift::decode`] reads back for its type.
    fn text_expr(&self, column: &str, ty: Option<&ColumnType>) -> String;

    /// The table's columns; `None` when it does not exist.
    async fn table_columns(&self, table: &str) -> Result<Option<Vec<Column>>>;

    /// The columns of `SELECT * FROM (<query>) AS s`, as the driver describes its result.
    async fn query_columns(&self, sql: &str) -> Result<Vec<Column>>;

    /// Runs `sql` built by [`select`] with `params` bound in order (each with its column), and gives
    /// each row's values decoded by `types`.
    async fn fetch(
        &self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Vec<Vec<Value>>>;

    /// [`Self::fetch`] of a page of a read: the rows as the driver gave them, decoded when asked for.
    /// By default, decoded at once.
    async fn fetch_page(
        &self,
        sql: &str,
        params: &[(Value, &SourceColumn)],
        types: &[Option<ColumnType>],
    ) -> Result<Box<dyn PageRows>> {
        Ok(Box::new(self.fetch(sql, params, types).await?))
    }

    /// The cursor column (quoted) as it is compared and ordered: the column itself, unless the database
    /// stores values of its type in forms that do not compare as the values do (SQLite's timestamps as
    /// text in more than one format).
    fn cursor_expr(&self, quoted: String, _ty: Option<&ColumnType>) -> String {
        quoted
    }

    /// The text of parameter `n` (1-based) bound to `value` of `column`: `?` or `$n`, or a literal
    /// where the protocol has no parameters.
    fn placeholder(&self, n: usize, value: &Value, column: &SourceColumn) -> Result<String>;

    /// [`Self::fetch`] of a statement without parameters for [`Source::inspect`]: read-only where the
    /// database allows it, stopped by the server after `timeout` where it can. The default has no guard
    /// of its own ([`inspect`] stops waiting at the deadline).
    async fn fetch_guarded(
        &self,
        sql: &str,
        types: &[Option<ColumnType>],
        _timeout: Duration,
    ) -> Result<Vec<Vec<Value>>> {
        self.fetch(sql, &[], types).await
    }

    /// [`Self::query_columns`] for [`Source::inspect`], guarded as [`Self::fetch_guarded`]. The
    /// default describes the query as the run does: most databases describe a query without running it.
    async fn query_columns_guarded(&self, sql: &str, _timeout: Duration) -> Result<Vec<Column>> {
        self.query_columns(sql).await
    }
}

/// The `FROM` item of a source: a validated, quoted table or the query in parentheses.
fn from_item(db: &dyn Reads, from: &SourceFrom) -> Result<String> {
    match from {
        SourceFrom::Table(t) => {
            db.source_capabilities()
                .validate_identifier(t, "the table name")
                .map_err(config)?;
            Ok(db.relation(t))
        }
        SourceFrom::Query(q) => {
            sluice_core::source::check_query(q, &db.source_capabilities().lexical)
                .map_err(config)?;
            // On lines of its own: a comment on the query's last line ends before the `)`.
            Ok(format!(
                "(\n{}\n)",
                q.trim().trim_end_matches(';').trim_end()
            ))
        }
    }
}

/// [`Source::columns`] for any database.
pub async fn columns(db: &dyn Reads, from: &SourceFrom) -> Result<SourceSchema> {
    columns_with(db, from, None).await
}

/// The columns of `from`; a query described under the guards of [`Reads::query_columns_guarded`] when
/// `guard` gives a timeout.
async fn columns_with(
    db: &dyn Reads,
    from: &SourceFrom,
    guard: Option<Duration>,
) -> Result<SourceSchema> {
    let item = from_item(db, from)?;
    let columns = match from {
        SourceFrom::Table(t) => db.table_columns(t).await?.ok_or_else(|| {
            DestinationError::new(ErrorKind::NotFound, format!("table `{t}` does not exist"))
        })?,
        SourceFrom::Query(_) => {
            let sql = format!("SELECT * FROM {item} AS s");
            match guard {
                Some(timeout) => db.query_columns_guarded(&sql, timeout).await?,
                None => db.query_columns(&sql).await?,
            }
        }
    };
    if columns.is_empty() {
        return Err(DestinationError::new(
            ErrorKind::SchemaMismatch,
            format!("{} has no columns", from.describe()),
        ));
    }
    let capabilities = db.source_capabilities();
    for c in &columns {
        capabilities
            .validate_identifier(&c.name, "a column name")
            .map_err(|e| config(format!("{e} (`{}`)", c.name)))?;
    }
    Ok(SourceSchema {
        columns: columns.into_iter().map(SourceColumn::from_column).collect(),
        capabilities,
    })
}

/// [`Source::sample`] for any database.
pub async fn sample(db: &dyn Reads, from: &SourceFrom, rows: usize) -> Result<Sample> {
    let schema = columns(db, from).await?;
    let sql = sample_sql(db, from, &schema, rows)?;
    let rows = db.fetch(&sql, &[], &types(&schema)).await?;
    Ok(Sample { schema, rows })
}

fn sample_sql(
    db: &dyn Reads,
    from: &SourceFrom,
    schema: &SourceSchema,
    rows: usize,
) -> Result<String> {
    let item = from_item(db, from)?;
    Ok(format!(
        "SELECT {} FROM {item} AS s LIMIT {rows}",
        select_list(db, schema)
    ))
}

/// How long [`inspect`] waits past its statements' timeout for a database that did not stop them.
const INSPECT_GRACE: Duration = Duration::from_secs(5);

/// [`Source::inspect`] for any database.
pub async fn inspect(
    db: &dyn Reads,
    from: &SourceFrom,
    rows: usize,
    timeout: Duration,
) -> Result<Sample> {
    let work = async {
        let schema = columns_with(db, from, Some(timeout)).await?;
        let sql = sample_sql(db, from, &schema, rows)?;
        let rows = db.fetch_guarded(&sql, &types(&schema), timeout).await?;
        Ok(Sample { schema, rows })
    };
    match tokio::time::timeout(timeout + INSPECT_GRACE, work).await {
        Ok(result) => result,
        Err(_) => Err(DestinationError::new(
            ErrorKind::Timeout,
            format!(
                "reading {} took longer than {} seconds",
                from.describe(),
                timeout.as_secs()
            ),
        )),
    }
}

/// [`Source::read_page`] for any database.
pub async fn read_page(
    db: &dyn Reads,
    plan: &ReadPlan,
    after: Option<&Position>,
) -> Result<SourcePage> {
    let (sql, params) = select(db, plan, after)?;
    let params: Vec<(Value, &SourceColumn)> = params
        .into_iter()
        .map(|(v, i)| (v, &plan.schema.columns[i]))
        .collect();
    let rows = db
        .fetch_page(&sql, &params, &types(&plan.schema))
        .await
        .map_err(|e| dropped_column(e, plan))?;
    let end = match rows.len() {
        0 => None,
        n => Some(plan.position(rows.as_ref(), n - 1)?),
    };
    Ok(SourcePage {
        more: rows.len() >= plan.page_rows,
        rows,
        end,
    })
}

/// [`Source::count_unread`] for any database.
pub async fn count_unread(db: &dyn Reads, plan: &ReadPlan) -> Result<u64> {
    let item = from_item(db, &plan.from)?;
    let caps = db.source_capabilities();
    let q = |i: usize| format!("s.{}", caps.quote(&plan.schema.columns[i].name));
    let mut null = format!("{} IS NULL", q(plan.id));
    if let ReadMode::Cursor { column, .. } = &plan.mode {
        write!(null, " OR {} IS NULL", q(*column)).expect("writing to a String");
    }
    // The count is selected as text like any column, through the alias `s` of the other statements.
    let n = caps.quote("n");
    let int = ColumnType::Int {
        bits: 64,
        unsigned: false,
    };
    let sql = format!(
        "SELECT {} FROM (SELECT count(*) AS {n} FROM {item} AS s WHERE {null}) AS s",
        db.text_expr("n", Some(&int))
    );
    let rows = db
        .fetch(&sql, &[], &[Some(int)])
        .await
        .map_err(|e| dropped_column(e, plan))?;
    match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => Ok((*n).max(0) as u64),
        other => Err(DestinationError::new(
            ErrorKind::Internal,
            format!("counting the rows without an id or cursor answered {other:?}"),
        )),
    }
}

/// A read that failed because the source changed is said in terms of the source.
fn dropped_column(e: DestinationError, plan: &ReadPlan) -> DestinationError {
    if e.kind != ErrorKind::SchemaMismatch {
        return e;
    }
    DestinationError::new(
        ErrorKind::SchemaMismatch,
        format!(
            "{} no longer has the columns it had when the read began: {}",
            plan.from.describe(),
            e.message
        ),
    )
}

fn types(schema: &SourceSchema) -> Vec<Option<ColumnType>> {
    schema.columns.iter().map(|c| c.ty.clone()).collect()
}

fn select_list(db: &dyn Reads, schema: &SourceSchema) -> String {
    schema
        .columns
        .iter()
        .map(|c| db.text_expr(&c.name, c.ty.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statement reading one page of `plan` after `after`, and its parameters (values with the index
/// of their column), in the order their placeholders appear.
pub fn select(
    db: &dyn Reads,
    plan: &ReadPlan,
    after: Option<&Position>,
) -> Result<(String, Vec<(Value, usize)>)> {
    let item = from_item(db, &plan.from)?;
    let caps = db.source_capabilities();
    // Qualified by the alias: ORDER BY a bare name would find the select list's text expression of the
    // same name first (PostgreSQL), and order ids as text.
    let q = |i: usize| format!("s.{}", caps.quote(&plan.schema.columns[i].name));
    let mut params: Vec<(Value, usize)> = Vec::new();
    let mut bind = |v: Value, column: usize| -> Result<String> {
        params.push((v, column));
        let (v, i) = params.last().expect("just pushed");
        db.placeholder(params.len(), v, &plan.schema.columns[*i])
    };
    let id = q(plan.id);
    let mut sql = format!(
        "SELECT {} FROM {item} AS s WHERE {id} IS NOT NULL",
        select_list(db, &plan.schema)
    );
    let order = match &plan.mode {
        ReadMode::Cursor { column, mark } => {
            let c = db.cursor_expr(q(*column), plan.schema.columns[*column].ty.as_ref());
            // A later page starts at the cursor of the last row read, which is at or past the mark:
            // that bound, a plain range on the cursor column, is what lets an index on it start the
            // scan there. Left to the `OR` below, every page would scan again all the rows before it.
            let from = match after {
                Some(after) => Some(
                    after
                        .cursor
                        .as_ref()
                        .ok_or_else(|| config("a cursor read resumes after a cursor value"))?,
                ),
                None => mark.as_ref(),
            };
            match from {
                Some(m) => {
                    let p = bind(cursor_bind(m), *column)?;
                    write!(sql, " AND {c} >= {p}").expect("writing to a String");
                }
                None => write!(sql, " AND {c} IS NOT NULL").expect("writing to a String"),
            }
            if let Some(after) = after {
                let cursor = after
                    .cursor
                    .as_ref()
                    .ok_or_else(|| config("a cursor read resumes after a cursor value"))?;
                let p1 = bind(cursor_bind(cursor), *column)?;
                let p2 = bind(cursor_bind(cursor), *column)?;
                let p3 = bind(after.id.clone(), plan.id)?;
                write!(sql, " AND ({c} > {p1} OR ({c} = {p2} AND {id} > {p3}))")
                    .expect("writing to a String");
            }
            format!("{c}, {id}")
        }
        ReadMode::Full => {
            if let Some(after) = after {
                let p = bind(after.id.clone(), plan.id)?;
                write!(sql, " AND {id} > {p}").expect("writing to a String");
            }
            id.clone()
        }
    };
    write!(sql, " ORDER BY {order} LIMIT {}", plan.page_rows).expect("writing to a String");
    Ok((sql, params))
}

/// A read walked page by page: each [`Pages::next`] reads the page after the last one.
pub struct Pages<'a> {
    source: &'a dyn Source,
    plan: &'a ReadPlan,
    after: Option<Position>,
    done: bool,
}

impl<'a> Pages<'a> {
    pub fn new(source: &'a dyn Source, plan: &'a ReadPlan) -> Self {
        Self {
            source,
            plan,
            after: None,
            done: false,
        }
    }

    /// The next page; `None` once the read is over.
    pub async fn next(&mut self) -> Result<Option<SourcePage>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .source
            .read_page(self.plan, self.after.as_ref())
            .await?;
        self.done = !page.more;
        if let Some(end) = &page.end {
            self.after = Some(end.clone());
        }
        if page.rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(page))
    }
}

/// Implements [`Source`] for a type that [`Reads`], through the functions of this module.
macro_rules! reads_source {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl $crate::source::Source for $ty {
            async fn columns(
                &self,
                from: &$crate::source::SourceFrom,
            ) -> $crate::Result<$crate::source::SourceSchema> {
                $crate::source::columns(self, from).await
            }
            async fn sample(
                &self,
                from: &$crate::source::SourceFrom,
                rows: usize,
            ) -> $crate::Result<$crate::source::Sample> {
                $crate::source::sample(self, from, rows).await
            }
            async fn read_page(
                &self,
                plan: &$crate::source::ReadPlan,
                after: Option<&$crate::source::Position>,
            ) -> $crate::Result<$crate::source::SourcePage> {
                $crate::source::read_page(self, plan, after).await
            }
            async fn count_unread(&self, plan: &$crate::source::ReadPlan) -> $crate::Result<u64> {
                $crate::source::count_unread(self, plan).await
            }
            async fn inspect(
                &self,
                from: &$crate::source::SourceFrom,
                rows: usize,
                timeout: std::time::Duration,
            ) -> $crate::Result<$crate::source::Sample> {
                $crate::source::inspect(self, from, rows, timeout).await
            }
        }
    };
}
pub(crate) use reads_source;

/// Builds the reading side of a connection of `kind` from its settings (connecting lazily): the same
/// settings, parsed and checked the same way, as [`crate::open`] takes.
pub fn open_source(
    kind: &str,
    settings: &Json,
) -> std::result::Result<Box<dyn Source>, FieldErrors> {
    Ok(crate::open_kind!(kind, settings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn column(name: &str, ty: ColumnType, native: &str) -> Column {
        Column {
            name: name.into(),
            native_type: native.into(),
            nullable: true,
            ty: Some(ty),
            has_default: false,
        }
    }

    fn schema(capabilities: &'static Capabilities) -> SourceSchema {
        let columns = vec![
            column(
                "id",
                ColumnType::Int {
                    bits: 64,
                    unsigned: false,
                },
                "bigint",
            ),
            column("email", ColumnType::Text { max_len: None }, "text"),
            column(
                "updated_at",
                ColumnType::Timestamp { with_tz: true },
                "timestamptz",
            ),
            column("attrs", ColumnType::Json, "jsonb"),
        ];
        SourceSchema {
            columns: columns.into_iter().map(SourceColumn::from_column).collect(),
            capabilities,
        }
    }

    fn postgres() -> crate::postgres::Postgres {
        let settings = json!({"host": "h", "username": "u", "database": "d", "schema": "crm"});
        crate::postgres::Postgres::new(
            crate::postgres::PostgresSettings::from_json(&settings).unwrap(),
        )
    }

    fn time(s: &str) -> CursorValue {
        CursorValue::Time(s.parse().unwrap())
    }

    #[test]
    fn a_cursor_page_resumes_after_the_last_cursor_and_id() {
        let db = postgres();
        let caps = db.source_capabilities();
        let plan = ReadPlan::new(
            SourceFrom::Table("customers".into()),
            schema(caps),
            "id",
            Some(("updated_at", Some(time("2026-12-06T09:55:00Z")))),
            3,
        )
        .unwrap();
        let (sql, params) = select(&db, &plan, None).unwrap();
        assert!(
            sql.ends_with(
                "FROM \"crm\".\"customers\" AS s WHERE s.\"id\" IS NOT NULL AND s.\"updated_at\" >= $1 \
                 ORDER BY s.\"updated_at\", s.\"id\" LIMIT 3"
            ),
            "{sql}"
        );
        assert_eq!(params.len(), 1);
        let after = Position {
            cursor: Some(time("2026-12-06T10:00:00Z")),
            id: Value::Int(42),
        };
        let (sql, params) = select(&db, &plan, Some(&after)).unwrap();
        assert!(
            sql.contains(
                "AND s.\"updated_at\" >= $1 AND (s.\"updated_at\" > $2 OR (s.\"updated_at\" = $3 AND s.\"id\" > $4))"
            ),
            "{sql}"
        );
        let bound: Vec<(&Value, usize)> = params.iter().map(|(v, i)| (v, *i)).collect();
        // The range starts at the last row read, not at the mark: an index scan starts there.
        assert_eq!(bound[0].0, &cursor_bind(&time("2026-12-06T10:00:00Z")));
        assert_eq!(bound[3], (&Value::Int(42), 0));
        assert_eq!(bound[1].1, 2);
    }

    #[test]
    fn a_query_is_read_as_a_subquery_in_id_order() {
        let db = postgres();
        let plan = ReadPlan::new(
            SourceFrom::Query("SELECT * FROM people WHERE active ;".into()),
            schema(db.source_capabilities()),
            "id",
            None,
            500,
        )
        .unwrap();
        let after = Position {
            cursor: None,
            id: Value::Int(7),
        };
        let (sql, params) = select(&db, &plan, Some(&after)).unwrap();
        assert!(
            sql.starts_with(
                "SELECT \"id\"::int8, \"email\"::text, \"updated_at\"::timestamptz, \"attrs\"::text"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with(
                "FROM (\nSELECT * FROM people WHERE active\n) AS s WHERE s.\"id\" IS NOT NULL \
                 AND s.\"id\" > $1 ORDER BY s.\"id\" LIMIT 500"
            ),
            "{sql}"
        );
        assert_eq!(params, [(Value::Int(7), 0)]);
        let bad = ReadPlan {
            from: SourceFrom::Query("SELECT 1; DROP TABLE people".into()),
            ..plan
        };
        assert_eq!(select(&db, &bad, None).unwrap_err().kind, ErrorKind::Config);
    }

    #[test]
    fn plans_check_the_id_and_cursor_columns() {
        let caps = postgres().source_capabilities();
        let from = SourceFrom::Table("t".into());
        let e = ReadPlan::new(from.clone(), schema(caps), "customer", None, 10).unwrap_err();
        assert_eq!(e.kind, ErrorKind::SchemaMismatch);
        assert!(
            e.message.contains("`customer`") && e.message.contains("attrs"),
            "{e}"
        );
        let e = ReadPlan::new(from.clone(), schema(caps), "attrs", None, 10).unwrap_err();
        assert!(e.message.contains("the id column `attrs` is jsonb"), "{e}");
        let e =
            ReadPlan::new(from.clone(), schema(caps), "id", Some(("attrs", None)), 10).unwrap_err();
        assert!(e.message.contains("the cursor column `attrs`"), "{e}");
        let e = ReadPlan::new(
            from.clone(),
            schema(caps),
            "id",
            Some(("updated_at", Some(CursorValue::Int(5)))),
            10,
        )
        .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(ReadPlan::new(from, schema(caps), "id", None, 0).is_err());
        // Snowflake's rule: an unquoted name finds its column whatever its case.
        let sf = SourceSchema {
            columns: vec![SourceColumn::from_column(column(
                "CUSTOMER_ID",
                ColumnType::Text { max_len: None },
                "VARCHAR",
            ))],
            capabilities: &crate::snowflake::dialect::CAPABILITIES,
        };
        assert_eq!(sf.resolve("customer_id").unwrap(), 0);
        assert!(sf.resolve("\"customer_id\"").is_err());
    }

    #[test]
    fn column_types_map_to_the_customer_model() {
        let name = |ty: ColumnType| property_type(&ty).map(|p| p.name());
        assert_eq!(
            name(ColumnType::Text { max_len: Some(5) }).unwrap(),
            "string"
        );
        assert_eq!(
            name(ColumnType::Int {
                bits: 32,
                unsigned: true
            })
            .unwrap(),
            "int"
        );
        assert_eq!(
            name(ColumnType::Int {
                bits: 64,
                unsigned: true
            })
            .unwrap(),
            "decimal(20,0)"
        );
        assert_eq!(
            name(ColumnType::Decimal {
                precision: Some(12),
                scale: Some(2)
            })
            .unwrap(),
            "decimal(12,2)"
        );
        assert_eq!(
            name(ColumnType::Decimal {
                precision: Some(38),
                scale: Some(2)
            })
            .unwrap(),
            "float"
        );
        assert_eq!(
            name(ColumnType::Timestamp { with_tz: false }).unwrap(),
            "datetime"
        );
        assert_eq!(name(ColumnType::Json).unwrap(), "json");
        assert_eq!(
            name(ColumnType::Array {
                element: Box::new(ColumnType::Uuid)
            })
            .unwrap(),
            "array(uuid)"
        );
        assert_eq!(name(ColumnType::Binary), None);
        let c = SourceColumn::from_column(column("attrs", ColumnType::Json, "jsonb"));
        assert!(c.json);
        assert_eq!(c.model_type.as_deref(), Some("json"));
    }

    #[test]
    fn a_source_opens_from_the_settings_of_a_destination() {
        let settings = json!({"host": "h", "username": "u", "database": "d"});
        assert!(open_source("postgresql", &settings).is_ok());
        let e = open_source("postgresql", &json!({"host": "h"}))
            .err()
            .unwrap();
        let d = crate::open("postgresql", &json!({"host": "h"}))
            .err()
            .unwrap();
        assert_eq!(e.to_string(), d.to_string());
        assert!(e.to_string().contains("username"), "{e}");
        let e = open_source("oracle", &settings).err().unwrap();
        assert!(
            e.to_string().contains("unknown destination type `oracle`"),
            "{e}"
        );
    }

    #[test]
    fn sqlite_compares_timestamp_cursors_as_instants() {
        let db = crate::sqlite::Sqlite::new(crate::sqlite::SqliteSettings::new("x.sqlite"));
        let plan = ReadPlan::new(
            SourceFrom::Table("t".into()),
            schema(db.source_capabilities()),
            "id",
            Some(("updated_at", Some(time("2026-12-06T09:55:00Z")))),
            3,
        )
        .unwrap();
        let (sql, _) = select(&db, &plan, None).unwrap();
        assert!(
            sql.contains(
                "strftime('%Y-%m-%d %H:%M:%f', s.\"updated_at\") >= strftime('%Y-%m-%d %H:%M:%f', ?1)"
            ),
            "{sql}"
        );
    }
}
