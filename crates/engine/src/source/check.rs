//! The one check of a source pipeline: its spec, its connection, the live columns of its table or query
//! (the id and cursor columns must be there, with types that can serve), and its transformation
//! compiled from those columns to the Customer Model. Saving, the preview and the start of every run
//! go through [`check_source`], so they accept the same sources with the same messages.

use std::sync::Arc;

use sluice_core::mapping::Reads;
use sluice_core::source::{Changes, SourceSpec};
use sluice_core::{FieldErrors, Schema};
use sluice_destinations::source::{open_source, ReadPlan, Source, SourceFrom, SourceSchema};
use sluice_destinations::ErrorKind as DbKind;
use sluice_store::{DestinationRecord, MetadataStore};
use sluice_transform::{Limits, Transform};

use super::rows;
use crate::error::{EngineError, ErrorKind, Result};

/// A source that passed the check: everything a run or a preview needs.
pub struct CheckedSource {
    pub spec: SourceSpec,
    pub reader: Arc<dyn Source>,
    pub from: SourceFrom,
    /// The live columns of the table or query.
    pub columns: SourceSchema,
    pub model: Schema,
    pub transform: Transform,
    /// Seeds the hashes of what the source writes: a change of what is read or how it is mapped makes
    /// every row compare afresh.
    pub seed: u64,
    /// When the transformation gives the same properties for the same row on every run (a mapping
    /// without `now()`), rows are compared by a hash of the source row itself, under this seed, before
    /// they are transformed: an unchanged row then costs its read and its hash only. The seed also
    /// names the Customer Model and the source's columns, whose change alters what a row becomes.
    /// `None` for scripts and run-dependent mappings: those compare what they write ([`Self::seed`]).
    pub row_seed: Option<u64>,
}

impl CheckedSource {
    /// The read plan of a run: `cursor` mode from `mark` (from the start when `None`).
    pub fn plan(
        &self,
        mark: Option<sluice_core::source::CursorValue>,
        page_rows: usize,
    ) -> Result<ReadPlan> {
        let cursor = match &self.spec.changes {
            Changes::Cursor { column, .. } => Some((column.as_str(), mark)),
            Changes::Full { .. } => None,
        };
        ReadPlan::new(
            self.from.clone(),
            self.columns.clone(),
            &self.spec.id_column,
            cursor,
            page_rows,
        )
        .map_err(|e| EngineError::new(ErrorKind::TableChanged, e.message))
    }
}

/// Checks `spec` against its connection, the live source and the stored Customer Model.
pub async fn check_source(
    meta: &dyn MetadataStore,
    spec: &SourceSpec,
    limits: Limits,
) -> Result<CheckedSource> {
    if let Err(e) = spec.check() {
        return Err(EngineError::invalid("", e));
    }
    let Some(connection) = meta.get_destination(&spec.connection).await? else {
        let mut e = FieldErrors::new();
        e.add(
            "connection",
            format!("connection `{}` does not exist", spec.connection),
        );
        return Err(EngineError::invalid("", e));
    };
    let model = meta.get_schema().await?;
    check_source_with(connection, model, spec, limits).await
}

/// [`check_source`] against a given connection and Customer Model rather than the stored ones: a
/// workspace checks its sources with the connections and the model it is about to save.
pub async fn check_source_with(
    connection: DestinationRecord,
    model: Schema,
    spec: &SourceSpec,
    limits: Limits,
) -> Result<CheckedSource> {
    if let Err(e) = spec.check() {
        return Err(EngineError::invalid("", e));
    }
    let reader = open_source(&connection.kind, &connection.settings).map_err(|e| {
        let mut f = FieldErrors::new();
        f.add(
            "connection",
            format!(
                "the settings of connection `{}` are invalid: {e}",
                connection.name
            ),
        );
        EngineError::invalid("", f)
    })?;
    let from = SourceFrom::of(spec).map_err(|e| EngineError::internal(e.message))?;
    let field = match from {
        SourceFrom::Table(_) => "table",
        SourceFrom::Query(_) => "query",
    };
    let columns = match reader.columns(&from).await {
        Ok(c) => c,
        Err(e)
            if matches!(
                e.kind,
                DbKind::NotFound | DbKind::Config | DbKind::SchemaMismatch | DbKind::BadData
            ) =>
        {
            let mut f = FieldErrors::new();
            f.add(field, e.message);
            return Err(EngineError::invalid("", f));
        }
        Err(e) => {
            return Err(EngineError::new(
                ErrorKind::Destination(e.kind),
                format!("could not read the source's columns: {}", e.message),
            ))
        }
    };
    let mut errors = FieldErrors::new();
    if let Some(Err((field, message))) = spec
        .schedule
        .as_ref()
        .map(|s| s.compile_for(sluice_core::pipeline::Scheduled::Source))
    {
        errors.add(field, message);
    }
    // Each column named by the spec, at its own field; then the plan's rules on their types.
    if let Err(e) = columns.resolve(&spec.id_column) {
        errors.add("id_column", e.message);
    }
    if let Changes::Cursor { column, .. } = &spec.changes {
        if let Err(e) = columns.resolve(column) {
            errors.add("changes.column", e.message);
        }
    }
    if errors.is_empty() {
        let cursor = match &spec.changes {
            Changes::Cursor { column, .. } => Some((column.as_str(), None)),
            Changes::Full { .. } => None,
        };
        if let Err(e) = ReadPlan::new(from.clone(), columns.clone(), &spec.id_column, cursor, 1) {
            let at = if e.message.contains("id column") {
                "id_column"
            } else {
                "changes.column"
            };
            errors.add(at, e.message);
        }
    }
    let input = rows::input_schema(&columns);
    let output = rows::model_table(&model);
    let transform = match Transform::compile_reading(
        &spec.transformation,
        "",
        &input,
        &output,
        limits,
        Reads::SourceColumns,
    ) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.merge(e);
            None
        }
    };
    match transform {
        Some(transform) if errors.is_empty() => {
            let seed = seed(spec);
            let row_seed = (!transform.depends_on_run()).then(|| row_seed(spec, &model, &columns));
            Ok(CheckedSource {
                spec: spec.clone(),
                reader: reader.into(),
                from,
                columns,
                model,
                transform,
                seed,
                row_seed,
            })
        }
        _ => Err(EngineError::invalid("", errors)),
    }
}

fn seed(spec: &SourceSpec) -> u64 {
    let transformation =
        serde_json::to_string(&spec.transformation).expect("a transformation always serializes");
    sluice_core::hash::shape_seed(&[
        "source",
        &spec.connection,
        spec.table.as_deref().unwrap_or_default(),
        spec.query.as_deref().unwrap_or_default(),
        &spec.id_column,
        &transformation,
    ])
}

fn row_seed(spec: &SourceSpec, model: &Schema, columns: &SourceSchema) -> u64 {
    let model = serde_json::to_string(&model.to_wire()).expect("a model always serializes");
    let columns: Vec<String> = columns
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.native_type))
        .collect();
    sluice_core::hash::shape_seed(&[
        "source row",
        &seed(spec).to_string(),
        &model,
        &columns.join(","),
    ])
}
