//! The rules a pipeline must meet against the Customer Model and the live table — pure, given both.
//! [`crate::check::check_pipeline`] fetches them and applies these rules for every caller (saving,
//! previewing, running); [`check_filter`] alone also serves summaries and profile searches.

use sluice_core::filter::Filter;
use sluice_core::pipeline::{OnLeave, PipelineSpec};
use sluice_core::{FieldErrors, Schema, TableDescription};
use sluice_transform::{Limits, Transform};

/// A pipeline whose filter and transformation compiled against the model and the table.
#[derive(Debug, Clone)]
pub struct Checked {
    pub filter: Option<Filter>,
    /// Always set when the check passed.
    pub transform: Option<Transform>,
}

/// Compiles the filter alone; errors are prefixed with `filter`.
pub fn check_filter(
    wire: Option<&serde_json::Value>,
    schema: &Schema,
) -> Result<Option<Filter>, FieldErrors> {
    match wire {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(w) => Filter::parse(w, schema).map(Some).map_err(|e| {
            let mut out = FieldErrors::new();
            out.merge_prefixed("filter", e);
            out
        }),
    }
}

/// [`check_with`] on a blocking thread, for async callers: compiling a script runs its top-level code
/// (bounded by the time limit) and checking Python starts an interpreter.
pub(crate) async fn check_blocking(
    spec: PipelineSpec,
    schema: Schema,
    table: Option<TableDescription>,
    limits: Limits,
) -> Result<Checked, FieldErrors> {
    tokio::task::spawn_blocking(move || check_with(&spec, &schema, table.as_ref(), limits))
        .await
        .unwrap_or_else(|e| {
            let mut errors = FieldErrors::new();
            errors.add(
                "transformation",
                format!("checking the transformation failed: {e}"),
            );
            Err(errors)
        })
}

/// Every check that needs no I/O, scripts compiled under `limits` (those they will run under). `table` is
/// `None` when the table does not exist.
pub fn check_with(
    spec: &PipelineSpec,
    schema: &Schema,
    table: Option<&TableDescription>,
    limits: Limits,
) -> Result<Checked, FieldErrors> {
    let mut errors = spec.check_shape();
    let filter = match check_filter(spec.filter.as_ref(), schema) {
        Ok(f) => f,
        Err(e) => {
            errors.merge(e);
            None
        }
    };
    let Some(table) = table else {
        if !spec.table.trim().is_empty() {
            errors.add(
                "table",
                format!("table `{}` does not exist in the destination", spec.table),
            );
        }
        return Err(errors);
    };
    let transform = match Transform::compile(&spec.transformation, &spec.key, schema, table, limits)
    {
        Ok(t) => Some(t),
        Err(e) => {
            errors.merge(e);
            None
        }
    };
    if !spec.key.is_empty() {
        match table.resolve_column(&spec.key) {
            Err(message) => errors.add("key", message),
            Ok(col) => {
                match &col.ty {
                    Some(ty) if ty.is_key_capable() => {}
                    _ => errors.add(
                        "key",
                        format!(
                            "column `{}` has type {}: a key column must be a string, integer or UUID column",
                            spec.key, col.native_type
                        ),
                    ),
                }
                if !table.is_unique_key(&col.name) {
                    let message = match &table.rules.key {
                        Some(rule) => format!("column `{}` cannot identify rows: {rule}", spec.key),
                        None => format!(
                            "column `{}` has no primary-key or unique constraint, so rows cannot be matched safely; \
                             add one (for example ALTER TABLE {} ADD UNIQUE ({})) or choose another column",
                            spec.key, table.name, spec.key
                        ),
                    };
                    errors.add("key", message);
                }
            }
        }
    }
    if spec.on_leave == OnLeave::Delete {
        if let Some(why) = &table.rules.delete {
            errors.add("on_leave", why.clone());
        }
    }
    errors.into_result(Checked { filter, transform })
}
