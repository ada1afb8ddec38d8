//! The one check of a pipeline against its destination, the Customer Model and the live table.
//!
//! Saving a pipeline (create, replace, patch), previewing it, the quickstart and the start of every run
//! all call [`check_pipeline`], so they accept and refuse the same pipelines with the same messages. The
//! rules themselves are pure ([`crate::validate`]); this module fetches what they need: the destination,
//! the model, and the table as the database describes it now.

use sluice_core::filter::Filter;
use sluice_core::pipeline::PipelineSpec;
use sluice_core::{FieldErrors, Schema, TableDescription};
use sluice_destinations::Destination;
use sluice_store::{DestinationRecord, MetadataStore};
use sluice_transform::{Limits, Transform};

use crate::error::{EngineError, ErrorKind, Result};
use crate::validate;

/// A pipeline spec that fits: its destination, and its filter and transformation compiled against the
/// model and the table.
pub struct Fitted {
    pub destination: DestinationRecord,
    /// A client of the destination (it connects on first use).
    pub client: Box<dyn Destination>,
    pub schema: Schema,
    pub table: TableDescription,
    pub filter: Option<Filter>,
    pub transform: Transform,
}

/// Attempts at reading the table, when the destination fails for a transient reason.
const DESCRIBE_ATTEMPTS: u32 = 4;

/// Checks `spec` against everything it depends on, reporting every problem of the spec at once
/// ([`ErrorKind::Invalid`] with field paths). A destination that cannot be reached fails with its own
/// kind ([`ErrorKind::Destination`]), after retrying transient failures.
pub async fn check_pipeline(
    meta: &dyn MetadataStore,
    spec: &PipelineSpec,
    limits: Limits,
) -> Result<Fitted> {
    let Some(destination) = meta.get_destination(&spec.destination).await? else {
        let mut e = spec.check_shape();
        if !spec.destination.trim().is_empty() {
            e.add(
                "destination",
                format!("destination `{}` does not exist", spec.destination),
            );
        }
        return Err(EngineError::invalid("", e));
    };
    let schema = meta.get_schema().await?;
    check_pipeline_with(destination, schema, spec, limits).await
}

/// [`check_pipeline`] against a destination and a Customer Model given rather than stored: a workspace
/// checks its pipelines against the connections and the model it is about to save, before saving any.
pub async fn check_pipeline_with(
    destination: DestinationRecord,
    schema: Schema,
    spec: &PipelineSpec,
    limits: Limits,
) -> Result<Fitted> {
    let client =
        sluice_destinations::open(&destination.kind, &destination.settings).map_err(|e| {
            let mut f = FieldErrors::new();
            f.add(
                "destination",
                format!(
                    "the settings of destination `{}` are invalid: {e}",
                    destination.name
                ),
            );
            EngineError::invalid("", f)
        })?;
    let table = if spec.table.trim().is_empty() {
        None
    } else {
        describe_retrying(client.as_ref(), spec.table.trim())
            .await
            .map_err(|e| {
                EngineError::new(
                    ErrorKind::Destination(e.kind),
                    format!(
                        "could not read table `{}`: {}",
                        spec.table.trim(),
                        e.message
                    ),
                )
            })?
    };
    let checked = validate::check_blocking(spec.clone(), schema.clone(), table.clone(), limits)
        .await
        .map_err(|e| EngineError::invalid("", e))?;
    let (Some(table), Some(transform)) = (table, checked.transform) else {
        return Err(EngineError::internal(
            "the check passed without a table or a transformation",
        ));
    };
    Ok(Fitted {
        destination,
        client,
        schema,
        table,
        filter: checked.filter,
        transform,
    })
}

/// Checks a change from `old` to `new`: against the live table when anything the table check looks at
/// changed (destination, table, key, filter, transformation, `on_leave`), otherwise only what needs no
/// database (so that a pipeline can be disabled or rescheduled while its destination is down).
pub async fn check_change(
    meta: &dyn MetadataStore,
    old: &PipelineSpec,
    new: &PipelineSpec,
    limits: Limits,
) -> Result<()> {
    if old.writes_like(new) {
        let e = new.check_shape();
        return e.into_result(()).map_err(|e| EngineError::invalid("", e));
    }
    check_pipeline(meta, new, limits).await.map(|_| ())
}

/// Describes the table, retrying transient failures (the database restarting, refusing or dropping
/// connections) with backoff; permanent ones (auth, permissions) fail at once.
async fn describe_retrying(
    destination: &dyn Destination,
    table: &str,
) -> sluice_destinations::Result<Option<TableDescription>> {
    let retrying = crate::retry::Retrying {
        inner: destination,
        attempts: DESCRIBE_ATTEMPTS,
    };
    retrying.retried(|| destination.describe_table(table)).await
}
