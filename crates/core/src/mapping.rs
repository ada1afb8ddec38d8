//! Visual-mapping expressions: one expression per destination column, computed from a profile.
//!
//! A mapping is compiled once when the pipeline is saved (and again before a run): each expression is
//! parsed, type-checked against the Customer Model and against its column's type, and turned into a small
//! evaluation tree in which property paths, functions and constants are already resolved. A run then
//! evaluates that tree for every profile and converts the result to the column's type with
//! [`crate::convert::to_column`], the same rules JavaScript and Python transformations use.
//!
//! # The expression language
//!
//! ## Values
//!
//! | write | meaning |
//! |---|---|
//! | `email`, `address.city` | a property of the profile; nested object properties are reached with dots. Names are case-sensitive. Inside a `json` property any sub-path is allowed (`extra.plan.name`) and has type `json`. |
//! | `_id`, `_updated_at` | the profile's id (string) and last update (datetime) |
//! | `"text"` or `'text'` | a string; escapes: `\"`, `\'`, `\\`, `\n`, `\t`, `\r`, `\u{1F600}` (1–6 hex digits) |
//! | `42`, `-7` | an integer (64-bit) |
//! | `12.50` | an exact decimal (it keeps its digits: `12.50`, not `12.5`) |
//! | `1.5e3` | a float (a number with an exponent) |
//! | `true`, `false`, `null` | boolean and null literals (any case: `TRUE`, `Null`); a property with one of these names cannot be read by its bare name |
//! | `name(arg, …)` | a function call; names are case-insensitive (`LOWER(email)`), spaces may separate the name from `(` |
//! | `(expression)` | grouping |
//!
//! A missing property, or one stored as null, is `null`.
//!
//! ## Concatenation
//!
//! Terms written next to each other are concatenated: `first_name " " last_name`. Each part contributes its
//! text — strings as they are, numbers, booleans, dates and datetimes in their normal text form (`12.50`,
//! `true`, `2024-05-13`, `2024-05-13T15:30:00Z`), arrays and objects as JSON — and a **null part contributes
//! empty text**, so a concatenation is never null (`first_name " " last_name` is `"Ada "` when `last_name`
//! is missing). To get null instead, wrap it: `nullif(trim(first_name " " last_name), "")`. There are no
//! infix operators: use `add`, `eq`, `and` and the other functions below.
//!
//! ## Types
//!
//! Every expression has a type known when the pipeline is saved: `string`, `boolean`, `int`, `float`,
//! `decimal`, `datetime`, `date`, `time`, `uuid`, `json`, `array(T)`, `object`, or `null` (the literal).
//! A property has the type the Customer Model gives it (`decimal(p,s)` is `decimal`). Functions check their
//! arguments' types and arity; an unknown property or function, a wrong argument type or count is an error
//! that says where it is (a 1-based character position in the expression) and what to do, e.g.
//! `at 1: unknown function `lowr`; did you mean `lower`?`. Functions do not convert silently between
//! types: `lower(age)` is an error suggesting `to_string(age)`; the only implicit widening is between
//! numbers (int → decimal → float), e.g. `coalesce(age, 1.5)` is a decimal.
//!
//! ## Null handling
//!
//! Functions return null when a value they need is null: `lower(null)` is null, `substring(null, 1)` is
//! null, `add(1, null)` is null, `lt(null, 3)` is null. The exceptions are the functions made for nulls:
//! `coalesce` returns its first non-null argument; `is_null` and `is_empty` are true or false; `eq(a, b)`
//! and `ne` treat null as a value (`eq(null, null)` is true, `eq(null, 1)` is false); `and`/`or` follow SQL
//! (`and(false, null)` is false, `or(true, null)` is true, otherwise a null makes the result null); `if`
//! takes the `else` branch for a null condition; `concat` and concatenation read null as empty text;
//! `join` skips null elements. A null written to a column that does not accept null fails that row
//! (`column `x` does not accept null`); provide a fallback with `coalesce(x, "unknown")`.
//!
//! ## Functions
//!
//! | function | returns |
//! |---|---|
//! | `lower(s)`, `upper(s)` | the text in lower / upper case (Unicode-aware) |
//! | `trim(s)`, `ltrim(s)`, `rtrim(s)` | the text without whitespace at both ends / the start / the end |
//! | `initcap(s)` | each word capitalized, the rest lower case: `o'NEIL` → `O'Neil` |
//! | `substring(s, start[, length])` | characters (not bytes) from `start`, 1-based; a negative start counts from the end (`substring(s, -3)` is the last 3); a start of 0 or before the text begins at the first character; a negative length is an error |
//! | `left(s, n)`, `right(s, n)` | the first / last `n` characters; a negative `n` drops that many from the other end |
//! | `len(x)` | characters of a string, elements of an array, keys of an object (int) |
//! | `concat(a, …)` | the text of every argument joined, null as empty text |
//! | `replace(s, from, to)` | every occurrence of `from` replaced by `to` |
//! | `contains(s, sub)`, `contains(array, x)` | whether the text contains `sub`, or the array (or JSON array) has an element equal to `x`, or a JSON object has the key |
//! | `starts_with(s, p)`, `ends_with(s, p)` | whether the text starts / ends with `p` |
//! | `split(s, sep)` | the parts between separators, `array(string)` (each character for an empty `sep`) |
//! | `join(array, sep)` | the elements' text joined by `sep`, nulls skipped |
//! | `at(array, n)` | the n-th element (1-based, negative from the end), null when out of range |
//! | `coalesce(a, b, …)` | the first argument that is not null; all arguments must have one type (numbers widen) |
//! | `if(cond, then[, else])` | `then` when `cond` is true, else `else` (null when omitted); the branches must have one type |
//! | `nullif(a, b)` | null when `a` equals `b`, otherwise `a` |
//! | `is_null(x)`, `is_empty(x)` | whether `x` is null; whether it is null, `""`, an empty array or an empty object |
//! | `eq(a, b)`, `ne(a, b)` | equality: numbers compare by value (`eq(1, 1.0)`), text with a uuid through the uuid it spells, null equals only null |
//! | `lt`, `le`, `gt`, `ge` | `<`, `≤`, `>`, `≥` on numbers, strings (by code point), dates, datetimes, times, booleans |
//! | `and(a, b, …)`, `or(a, b, …)`, `not(a)` | boolean logic, SQL's three-valued rules for null |
//! | `add(a, b)`, `sub`, `mul` | arithmetic: int with int gives int (overflow fails the row), a decimal makes it exact decimal, a float makes it float |
//! | `div(a, b)` | division: a decimal (`div(1, 4)` is `0.25`) unless either side is a float; dividing by zero fails the row |
//! | `round(x[, digits])` | rounded to `digits` places (default 0, at most 28), halves away from zero; same type as `x` |
//! | `abs(x)` | the absolute value |
//! | `to_string(x)` | the text form, as a text column receives it (null stays null, unlike concatenation) |
//! | `to_int(x)`, `to_float(x)`, `to_decimal(x)`, `to_bool(x)` | conversions following the column rules of [`crate::convert`] (`to_int` also takes booleans as 1/0); a value that does not convert fails the row |
//! | `to_date(x[, format])` | a date from `YYYY-MM-DD` text, text in a strftime `format`, or a datetime's UTC date |
//! | `to_datetime(x[, format])` | a datetime from RFC 3339 text, text in a `format` (UTC unless the format reads an offset; midnight without a time), a date (midnight UTC) or Unix seconds (int) |
//! | `json_parse(s)` | the JSON value the text holds; invalid JSON fails the row |
//! | `to_json(x)` | the value as JSON |
//! | `now()` | the time the run started: every profile of a run sees the same value |
//! | `format_datetime(x, format)` | a datetime or date (midnight) as text in UTC, strftime-style: `%Y` year, `%m` month, `%d` day, `%H` hour, `%M` minute, `%S` second, `%b` month name, `%a` weekday name, `%j` day of year, `%z` offset, `%%` a percent sign |
//!
//! [`functions()`] lists them with signatures, for autocompletion. Calls whose arguments are all constants are
//! computed once when the mapping is compiled, so `to_int("x")` is reported when saving.
//!
//! ## Limits
//!
//! A text an expression builds is at most 1 MiB ([`MAX_TEXT_BYTES`]), an array at most 100,000 elements
//! ([`MAX_ARRAY_ITEMS`]), and all the expressions of a row together build at most 16 MiB
//! ([`MAX_ROW_BYTES`], intermediate values included). Going over fails that profile's row with a message
//! naming the limit; over constants, it is reported when the mapping is saved.
//!
//! ## Writing to a column
//!
//! Saving a mapping checks, for each column: that the table has it, that Sluice can write its type, that the
//! expression compiles, and that its type can become the column's type under the rules of
//! [`crate::convert`] (a boolean into an integer column is refused; a string into a date column is accepted
//! and parsed for each row; a constant is converted right away, so `"abc"` into an integer column is
//! refused). Every problem of every column is reported together. When a row is computed, a conversion that
//! fails (text that is not a date, a number out of the column's range, text longer than the column) fails
//! that profile's row with the reason, and the run goes on.

mod check;
mod eval;
mod functions;
mod lexer;
mod parser;

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use serde::Serialize;

use self::check::Compiler;
pub use self::check::Reads;
use self::eval::{Budget, Cx, Node, Src};
pub use self::eval::{MAX_ARRAY_ITEMS, MAX_ROW_BYTES, MAX_TEXT_BYTES};
use crate::convert::{self, Compat};
use crate::errors::FieldErrors;
use crate::pipeline::indexmap_like::OrderedMap;
use crate::raw::{Located, Locator, Slots};
use crate::schema::{PropertyType, Schema};
use crate::table::{ColumnType, TableDescription};
use crate::value::Value;
use crate::Profile;

/// A column that failed to compute for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnError {
    pub column: String,
    pub message: String,
}

impl fmt::Display for ColumnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column `{}`: {}", self.column, self.message)
    }
}

impl std::error::Error for ColumnError {}

/// A problem in an expression: where (1-based character offset) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    pub pos: usize,
    pub message: String,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at {}: {}", self.pos, self.message)
    }
}

impl std::error::Error for ExprError {}

/// The static type of an expression.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Type {
    /// The `null` literal.
    Null,
    /// Unknown: the type of a sub-expression in error, accepted everywhere so errors do not cascade.
    Any,
    String,
    Boolean,
    Int,
    Float,
    Decimal,
    DateTime,
    Date,
    Time,
    Uuid,
    Json,
    /// An `object` property of the Customer Model; its value is a JSON object.
    Object,
    Array(Box<Type>),
}

impl Type {
    /// The type of values of a Customer Model property.
    pub fn from_property(ty: &PropertyType) -> Type {
        match ty {
            PropertyType::String => Type::String,
            PropertyType::Boolean => Type::Boolean,
            PropertyType::Int => Type::Int,
            PropertyType::Float => Type::Float,
            PropertyType::Decimal { .. } => Type::Decimal,
            PropertyType::DateTime => Type::DateTime,
            PropertyType::Date => Type::Date,
            PropertyType::Time => Type::Time,
            PropertyType::Uuid => Type::Uuid,
            PropertyType::Json => Type::Json,
            PropertyType::Array(inner) => Type::Array(Box::new(Type::from_property(inner))),
            PropertyType::Object(_) => Type::Object,
        }
    }

    pub fn is_numeric(&self) -> bool {
        matches!(self, Type::Int | Type::Float | Type::Decimal)
    }

    /// The type that holds values of both, if any: null joins anything, numbers widen (int → decimal →
    /// float), JSON holds objects.
    pub fn unify(&self, other: &Type) -> Option<Type> {
        use Type::*;
        Some(match (self, other) {
            (a, b) if a == b => a.clone(),
            (Null, t) | (t, Null) => t.clone(),
            (Any, _) | (_, Any) => Any,
            (Int, Decimal) | (Decimal, Int) => Decimal,
            (Float, t) | (t, Float) if t.is_numeric() => Float,
            (Json, Object) | (Object, Json) => Json,
            (Array(a), Array(b)) => Array(Box::new(a.unify(b)?)),
            _ => return None,
        })
    }

    /// "a string", "an int", "null".
    pub(crate) fn with_article(&self) -> String {
        match self {
            Type::Null => "null".into(),
            Type::Int | Type::Object | Type::Array(_) => format!("an {self}"),
            other => format!("a {other}"),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Null => f.write_str("null"),
            Type::Any => f.write_str("any"),
            Type::String => f.write_str("string"),
            Type::Boolean => f.write_str("boolean"),
            Type::Int => f.write_str("int"),
            Type::Float => f.write_str("float"),
            Type::Decimal => f.write_str("decimal"),
            Type::DateTime => f.write_str("datetime"),
            Type::Date => f.write_str("date"),
            Type::Time => f.write_str("time"),
            Type::Uuid => f.write_str("uuid"),
            Type::Json => f.write_str("json"),
            Type::Object => f.write_str("object"),
            Type::Array(inner) => write!(f, "array({inner})"),
        }
    }
}

/// A built-in function, as the UI lists it for autocompletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionInfo {
    pub name: &'static str,
    /// `substring(text: string, start: int[, length: int]) -> string`
    pub signature: &'static str,
    pub description: &'static str,
    /// `text`, `logic`, `number`, `conversion`, `date` or `array`.
    pub category: &'static str,
}

/// Every built-in function, in a stable order grouped by category.
pub fn functions() -> &'static [FunctionInfo] {
    static LIST: OnceLock<Vec<FunctionInfo>> = OnceLock::new();
    LIST.get_or_init(|| {
        functions::DEFS
            .iter()
            .map(|d| FunctionInfo {
                name: d.name,
                signature: d.signature,
                description: d.description,
                category: d.category,
            })
            .collect()
    })
}

/// One compiled expression.
#[derive(Debug, Clone)]
pub struct Expression {
    node: Node,
    ty: Type,
    properties: Vec<String>,
}

impl Expression {
    /// Parses and type-checks `text` against the Customer Model; every problem found is returned.
    pub fn compile(text: &str, schema: &Schema) -> Result<Expression, Vec<ExprError>> {
        Self::compile_reading(text, schema, Reads::Properties)
    }

    /// [`Self::compile`] of an expression whose `schema` is what `reads` says (its messages name it).
    pub fn compile_reading(
        text: &str,
        schema: &Schema,
        reads: Reads,
    ) -> Result<Expression, Vec<ExprError>> {
        let ast = parser::parse(text).map_err(|e| vec![e])?;
        let mut compiler = Compiler::new(schema, reads);
        let (node, ty) = compiler.compile(&ast);
        if compiler.errors.is_empty() {
            Ok(Expression {
                node,
                ty,
                properties: compiler.paths,
            })
        } else {
            Err(compiler.errors)
        }
    }

    /// The static type of the result.
    pub fn ty(&self) -> &Type {
        &self.ty
    }

    /// The Customer Model paths the expression reads, in order of first appearance; a sub-path of a `json`
    /// property counts as the property itself (`extra.plan.name` reads `extra`).
    pub fn properties(&self) -> &[String] {
        &self.properties
    }

    /// The value, when the expression does not depend on the profile or the run.
    pub fn constant(&self) -> Option<&Value> {
        self.node.as_literal()
    }

    /// Whether the value may differ between runs for the same profile (it calls `now()`).
    pub fn depends_on_run(&self) -> bool {
        self.node.depends_on_run()
    }

    /// Computes the value for a profile; `now` is the run's start time.
    pub fn eval(&self, profile: &Profile, now: DateTime<Utc>) -> Result<Value, ExprError> {
        self.node.eval(&Cx {
            src: Src::Parsed(profile),
            now,
            budget: &Budget::row(),
        })
    }
}

#[derive(Debug, Clone)]
struct Target {
    expr: Expression,
    ty: ColumnType,
    nullable: bool,
}

/// Where the properties a mapping reads are in a row of columns (see [`CompiledMapping::row_plan`]):
/// for each slot, the column and the path inside its JSON value.
#[derive(Debug, Clone)]
pub struct RowPlan {
    slots: Vec<Option<(usize, Vec<String>)>>,
}

/// A mapping compiled against the Customer Model and a table.
#[derive(Debug, Clone)]
pub struct CompiledMapping {
    /// Destination columns in the order their values are produced, as the table stores their names
    /// (a mapping may name them as its user writes them: see [`TableDescription::resolve_column`]).
    pub columns: Vec<String>,
    targets: Vec<Target>,
    properties: Vec<String>,
    /// The top-level properties the expressions read, numbered for [`crate::raw::Locator`].
    slots: Slots,
}

/// Why a null cannot be written; the column is named by [`ColumnError::column`].
const NOT_NULL: &str = "does not accept null; give a fallback with coalesce(…, …)";

impl CompiledMapping {
    /// Parses every expression and type-checks it against its column; errors are keyed by column name.
    pub fn compile(
        mapping: &OrderedMap,
        schema: &Schema,
        table: &TableDescription,
    ) -> Result<Self, FieldErrors> {
        Self::compile_reading(mapping, schema, table, Reads::Properties)
    }

    /// [`Self::compile`] of a mapping whose `schema` is what `reads` says (its messages name it).
    pub fn compile_reading(
        mapping: &OrderedMap,
        schema: &Schema,
        table: &TableDescription,
        reads: Reads,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut seen = HashSet::new();
        // Two names written differently may mean one column (where names match whatever their case).
        let mut seen_stored = HashSet::new();
        let mut columns = Vec::with_capacity(mapping.len());
        let mut targets = Vec::with_capacity(mapping.len());
        let mut properties: Vec<String> = Vec::new();
        for (column, text) in mapping.iter() {
            if !seen.insert(column) {
                errors.add(column, format!("column `{column}` is mapped twice"));
                continue;
            }
            let (col, ambiguous) = match table.lookup_column(column) {
                Ok(col) => (col, None),
                Err(message) => (None, Some(message)),
            };
            if let Some(c) = col {
                if !seen_stored.insert(c.name.as_str()) {
                    errors.add(column, format!("column `{}` is mapped twice", c.name));
                    continue;
                }
            }
            let col_ty = match col {
                None => {
                    let message = ambiguous.unwrap_or_else(|| {
                        let mut message =
                            format!("column `{column}` does not exist in table `{}`", table.name);
                        if let Some(s) = check::did_you_mean(
                            column,
                            table.columns.iter().map(|c| c.name.as_str()),
                        ) {
                            message.push_str(&format!("; did you mean `{s}`?"));
                        }
                        message
                    });
                    errors.add(column, message);
                    None
                }
                Some(c) if c.ty.is_none() => {
                    errors.add(
                        column,
                        format!(
                            "column `{column}` has type `{}`, which Sluice cannot write; leave it out of the mapping",
                            c.native_type
                        ),
                    );
                    None
                }
                Some(c) => c.ty.as_ref(),
            };
            let expr = match Expression::compile_reading(text, schema, reads) {
                Ok(e) => e,
                Err(errs) => {
                    for e in errs {
                        errors.add(column, e.to_string());
                    }
                    continue;
                }
            };
            let (Some(col), Some(col_ty)) = (col, col_ty) else {
                continue;
            };
            if let Err(message) =
                check_target(column, &col.native_type, col.nullable, &expr, col_ty)
            {
                errors.add(column, message);
                continue;
            }
            for p in &expr.properties {
                if !properties.contains(p) {
                    properties.push(p.clone());
                }
            }
            // The stored name: the dialect quotes it, so it must be the table's own spelling.
            columns.push(col.name.clone());
            targets.push(Target {
                expr,
                ty: col_ty.clone(),
                nullable: col.nullable,
            });
        }
        let mut slots = Slots::default();
        for t in &mut targets {
            t.expr.node.assign_slots(&mut slots);
        }
        errors.into_result(CompiledMapping {
            columns,
            targets,
            properties,
            slots,
        })
    }

    /// Computes the row for a profile: values in [`Self::columns`] order, converted to the column types.
    pub fn eval(&self, profile: &Profile, now: DateTime<Utc>) -> Result<Vec<Value>, ColumnError> {
        self.eval_src(Src::Parsed(profile), now)
    }

    /// A locator for the documents this mapping reads (see [`crate::raw`]).
    pub fn locator(&self) -> Locator {
        Locator::new(&self.slots)
    }

    /// [`Self::eval`] for a stored document found by [`Self::locator`]: the same row, without parsing
    /// what the mapping does not read.
    pub fn eval_located(
        &self,
        doc: &Located<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Value>, ColumnError> {
        self.eval_src(Src::Located(doc), now)
    }

    fn eval_src(&self, src: Src<'_>, now: DateTime<Utc>) -> Result<Vec<Value>, ColumnError> {
        let budget = Budget::row();
        let cx = Cx {
            src,
            now,
            budget: &budget,
        };
        // Each value is made in its place in the row rather than moved there (see `Value::set_text`).
        let mut row = Value::nulls(self.targets.len());
        for ((target, column), value) in self.targets.iter().zip(&self.columns).zip(&mut row) {
            let fail = |message: String| ColumnError {
                column: column.clone(),
                message,
            };
            target
                .expr
                .node
                .eval_into(&cx, value)
                .map_err(|e| fail(e.to_string()))?;
            convert::to_column_in_place(value, &target.ty).map_err(fail)?;
            if value.is_null() && !target.nullable {
                return Err(fail(NOT_NULL.into()));
            }
        }
        Ok(row)
    }

    /// Where each property this mapping reads is found in a row of columns, for [`Self::eval_row`]:
    /// `columns` are the names of the row's columns, `None` for one a profile would not show. A name
    /// given twice means its last column, as the later of two equal keys wins in a document.
    pub fn row_plan(&self, columns: &[Option<String>]) -> RowPlan {
        let slots = self
            .slots
            .paths()
            .iter()
            .map(|path| {
                let (first, rest) = path.split_first()?;
                let column = columns.iter().rposition(|c| c.as_ref() == Some(first))?;
                Some((column, rest.to_vec()))
            })
            .collect();
        RowPlan { slots }
    }

    /// [`Self::eval`] of the profile whose `_id` is `id`, whose `_updated_at` is `updated_at` and whose
    /// properties are the row's non-null values, each as its JSON form ([`Value::to_json`]), under its
    /// column's name: the same row, without building that profile.
    pub fn eval_row(
        &self,
        plan: &RowPlan,
        id: &str,
        updated_at: DateTime<Utc>,
        row: &[Value],
        now: DateTime<Utc>,
    ) -> Result<Vec<Value>, ColumnError> {
        let src = eval::RowSrc {
            id,
            updated_at,
            plan,
            row,
        };
        self.eval_src(Src::Row(&src), now)
    }

    /// Whether some row may differ between runs for the same profile (an expression calls `now()`).
    pub fn depends_on_run(&self) -> bool {
        self.targets.iter().any(|t| t.expr.depends_on_run())
    }

    /// The Customer Model paths the expressions read (see [`Expression::properties`]).
    pub fn properties(&self) -> Vec<String> {
        self.properties.clone()
    }

    /// The static type of each column's expression, in [`Self::columns`] order.
    pub fn types(&self) -> impl Iterator<Item = (&str, &Type)> {
        self.columns
            .iter()
            .map(String::as_str)
            .zip(self.targets.iter().map(|t| &t.expr.ty))
    }
}

/// Whether an expression can be written to a column; the message names the column.
fn check_target(
    column: &str,
    native: &str,
    nullable: bool,
    expr: &Expression,
    ty: &ColumnType,
) -> Result<(), String> {
    if convert::compat(&expr.ty, ty) == Compat::Never {
        return Err(format!(
            "{} cannot be written to column `{column}` of type `{native}`{}",
            expr.ty.with_article(),
            target_hint(&expr.ty, ty)
        ));
    }
    if let Some(v) = expr.constant() {
        match convert::to_column(v.clone(), ty) {
            Err(e) => {
                return Err(format!(
                    "the value cannot be written to column `{column}`: {e}"
                ))
            }
            Ok(Value::Null) if !nullable => {
                return Err(format!("column `{column}` does not accept null"))
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

fn target_hint(from: &Type, to: &ColumnType) -> &'static str {
    match (from, to) {
        (
            Type::Boolean,
            ColumnType::Int { .. } | ColumnType::Float { .. } | ColumnType::Decimal { .. },
        ) => "; convert it, e.g. if(…, 1, 0)",
        (Type::Array(_), _) => {
            "; pick an element with at(…, 1) or join the elements with join(…, \", \")"
        }
        (Type::Object, _) => "; pick one of its properties with a path such as `address.city`",
        (Type::Int, ColumnType::Timestamp { .. }) => "; to read Unix seconds, use to_datetime(…)",
        (_, ColumnType::Enum { .. } | ColumnType::Binary) => "; convert it with to_string(…)",
        _ => "",
    }
}

#[cfg(test)]
mod tests;
