//! `POST /v1/sources/inspect`: a connection's table or `SELECT` seen before a source pipeline is saved —
//! its columns, a sample of rows, and a proposed Customer Model and source mapping the user edits and
//! applies through `PUT /v1/profile-schema` (nothing is written here).
//!
//! The read is [`sluice_destinations::source::Source::inspect`]: read-only where the database allows it,
//! each statement stopped by the server after [`INSPECT_TIMEOUT`]. Running a query typed in against a
//! connection is an editor's right, not a viewer's: whatever the connection's database user may read,
//! the query may read. The proposal is the pure [`sluice_core::proposal::propose`] over the columns, the
//! sample and the current model.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json_};
use sluice_core::proposal::{self, ColumnIn, Issue};
use sluice_core::FieldErrors;
use sluice_destinations::source::{open_source, SourceFrom};
use sluice_destinations::ErrorKind;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::json::Body;
use crate::openapi::{
    DestinationFailed, Internal, Invalid, Malformed, NotJson, ProfileSchemaDoc, TooLarge,
    Unauthorized,
};
use crate::AppState;

/// How long each statement of an inspection may run.
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows sampled when the request does not say.
const DEFAULT_ROWS: u32 = 20;
/// Most rows a request may sample.
const MAX_ROWS: u32 = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InspectBody {
    /// The id of a connection (`GET /v1/connections`).
    connection: String,
    /// A table of the connection's schema (or database); exactly one of `table` and `query`.
    #[serde(default)]
    table: Option<String>,
    /// One `SELECT` (or `WITH … SELECT`); exactly one of `table` and `query`.
    #[serde(default)]
    query: Option<String>,
    /// Rows to sample: 1 to 100, 20 when left out.
    #[serde(default)]
    rows: Option<u32>,
    /// The column that identifies a profile (it becomes `_id` and is left out of the proposed
    /// properties); when left out, a column named `id` or ending in `_id` of an id's type is taken.
    #[serde(default)]
    id_column: Option<String>,
}

/// A column of the source.
#[derive(Serialize, ToSchema)]
pub struct InspectColumn {
    name: String,
    /// The type as the database names it.
    #[serde(rename = "type")]
    native_type: String,
    nullable: bool,
    /// The Customer Model type the column maps to (`string`, `decimal(12,2)`, `json` …); `null` when the
    /// model has none (bytes).
    #[schema(required = true)]
    property_type: Option<String>,
    /// Whether the column holds JSON (nested properties are proposed from its objects).
    json: bool,
}

/// Something to look at before applying the proposal: a column left out, a type mismatch with an
/// existing property, a JSON key that cannot be mapped.
#[derive(Serialize, ToSchema)]
pub struct InspectIssue {
    /// The source column, or `column.key` inside a JSON column.
    column: String,
    message: String,
}

impl From<Issue> for InspectIssue {
    fn from(i: Issue) -> Self {
        InspectIssue {
            column: i.column,
            message: i.message,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Inspection {
    columns: Vec<InspectColumn>,
    /// The sampled rows, each keyed by column name, values as the source pipeline would read them.
    #[schema(value_type = Vec<Object>)]
    rows: Vec<Map<String, Json_>>,
    /// The current Customer Model plus a property for each column it lacks (existing properties are
    /// never changed); apply it, edited or not, with `PUT /v1/profile-schema`.
    #[schema(value_type = ProfileSchemaDoc)]
    model: Json_,
    /// Customer Model property path → expression over the source's columns: a source pipeline's
    /// `transformation.mapping`.
    #[schema(value_type = Object)]
    mapping: Map<String, Json_>,
    /// The column taken as the profile id (`_id`); `null` when none was given or found.
    #[schema(required = true)]
    id_column: Option<String>,
    /// The paths of the properties the proposed model adds.
    added: Vec<String>,
    issues: Vec<InspectIssue>,
}

/// The request's fields, checked all at once.
fn check(body: &InspectBody) -> Result<(SourceFrom, usize), FieldErrors> {
    let mut errors = FieldErrors::new();
    if body.connection.trim().is_empty() {
        errors.add("connection", "name the connection to read from");
    }
    let from = match (&body.table, &body.query) {
        (Some(_), Some(_)) => {
            errors.add("query", "give a table or a query, not both");
            None
        }
        (None, None) => {
            errors.add("table", "give a table or a query");
            None
        }
        (Some(t), None) if t.trim().is_empty() => {
            errors.add("table", "the table name is empty");
            None
        }
        (Some(t), None) => Some(SourceFrom::Table(t.trim().to_string())),
        (None, Some(q)) => match sluice_core::source::check_query_shape(q) {
            Ok(()) => Some(SourceFrom::Query(q.clone())),
            Err(why) => {
                errors.add("query", why);
                None
            }
        },
    };
    let rows = body.rows.unwrap_or(DEFAULT_ROWS);
    if !(1..=MAX_ROWS).contains(&rows) {
        errors.add(
            "rows",
            format!("sample between 1 and {MAX_ROWS} rows, not {rows}"),
        );
    }
    if body
        .id_column
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        errors.add("id_column", "the id column's name is empty");
    }
    match from {
        Some(from) if errors.is_empty() => Ok((from, rows as usize)),
        _ => Err(errors),
    }
}

#[utoipa::path(
    post,
    path = "/sources/inspect",
    operation_id = "inspectSource",
    tag = "sources",
    summary = "A connection's table or query before a source is saved: columns, sample rows, a proposed Customer Model and mapping",
    description = "Reads the columns and the first rows (`rows`, default 20, at most 100) of a table or of one \
        `SELECT`, read-only where the database allows it (PostgreSQL and MySQL/MariaDB: a read-only transaction; \
        ClickHouse: `readonly`; SQLite: a query-only connection) and stopped after 30 seconds. Answers them with a \
        proposed Customer Model (the current one plus a property per new column, names in lower snake case, \
        nested objects from JSON columns) and a source mapping; writes nothing. 404 when the connection or the \
        table does not exist; 422 naming the field for a query that is not one SELECT, that the database refuses \
        (with its message), or an id column that is not among the columns.",
    request_body = InspectBody,
    responses(
        (status = 200, description = "OK", body = Inspection),
        Malformed,
        Unauthorized,
        (status = 404, body = crate::error::ErrorBody, description = "no such connection (`NotFound`), or no such table (`TableNotFound`)"),
        NotJson,
        TooLarge,
        Invalid,
        Internal,
        DestinationFailed,
    ),
)]
pub async fn inspect(
    State(state): State<AppState>,
    Body(body): Body<InspectBody>,
) -> ApiResult<Json<Inspection>> {
    let (from, rows) = check(&body).map_err(ApiError::invalid)?;
    let rec = state
        .meta
        .get_destination(&body.connection)
        .await?
        .ok_or_else(|| ApiError::not_found("connection", &body.connection))?;
    let source = open_source(&rec.kind, &rec.settings).map_err(ApiError::invalid)?;
    let sample = source
        .inspect(&from, rows, INSPECT_TIMEOUT)
        .await
        .map_err(|e| match (&from, e.kind) {
            (SourceFrom::Table(t), ErrorKind::NotFound) => ApiError::new(
                StatusCode::NOT_FOUND,
                "TableNotFound",
                format!("table `{t}` does not exist in connection `{}`", rec.name),
            ),
            // What the database refused in a query typed in (its syntax, a table or column it lacks, a
            // function the guards forbid) is the query's fault, said at its field with the database's
            // words; an unreachable, slow or refusing server stays the database's (502/504).
            (
                SourceFrom::Query(_),
                ErrorKind::Config
                | ErrorKind::Permission
                | ErrorKind::NotFound
                | ErrorKind::SchemaMismatch
                | ErrorKind::BadData
                | ErrorKind::Internal,
            ) => ApiError::invalid_field("query", e.message),
            _ => e.into(),
        })?;
    let id_column = match &body.id_column {
        Some(written) => {
            let i = sample
                .schema
                .resolve(written.trim())
                .map_err(|e| ApiError::invalid_field("id_column", e.message))?;
            Some(sample.schema.columns[i].name.clone())
        }
        None => None,
    };
    tracing::info!(connection = %rec.id, kind = %rec.kind, rows = sample.rows.len(), "source inspected");

    let columns_in: Vec<ColumnIn> = sample
        .schema
        .columns
        .iter()
        .map(|c| ColumnIn {
            name: c.name.clone(),
            property: c.property.clone(),
            native_type: c.native_type.clone(),
            json: c.json,
        })
        .collect();
    let model = state.meta.get_schema().await?;
    let proposal = proposal::propose(&columns_in, &sample.rows, &model, id_column.as_deref());

    let names: Vec<&str> = sample
        .schema
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let rows = sample
        .rows
        .iter()
        .map(|r| {
            names
                .iter()
                .zip(r)
                .map(|(n, v)| (n.to_string(), v.to_json()))
                .collect()
        })
        .collect();
    Ok(Json(Inspection {
        columns: sample
            .schema
            .columns
            .iter()
            .map(|c| InspectColumn {
                name: c.name.clone(),
                native_type: c.native_type.clone(),
                nullable: c.nullable,
                property_type: c.model_type.clone(),
                json: c.json,
            })
            .collect(),
        rows,
        model: serde_json::to_value(proposal.model_wire()).map_err(|e| {
            ApiError::internal(format!("the proposed model could not be written: {e}"))
        })?,
        mapping: proposal.mapping_json(),
        id_column: proposal.id_column,
        added: proposal.added,
        issues: proposal.issues.into_iter().map(Into::into).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: serde_json::Value) -> InspectBody {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn every_bad_field_is_named() {
        let e = check(&body(serde_json::json!({"connection": " ", "rows": 0}))).unwrap_err();
        let fields: Vec<String> = e.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(fields, ["connection", "rows", "table"]);
        let e = check(&body(
            serde_json::json!({"connection": "c", "query": "DELETE FROM t", "rows": 101}),
        ))
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("query") && text.contains("one SELECT"),
            "{text}"
        );
        assert!(text.contains("between 1 and 100"), "{text}");
        let e = check(&body(
            serde_json::json!({"connection": "c", "table": "t", "query": "SELECT 1"}),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let (from, rows) = check(&body(
            serde_json::json!({"connection": "c", "table": " t "}),
        ))
        .unwrap();
        assert_eq!((from, rows), (SourceFrom::Table("t".into()), 20));
    }
}
