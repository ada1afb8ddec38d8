//! Prepare: the pipeline checked against the live table and compiled, everything a run needs before it
//! reads a profile.

use sluice_core::filter::Filter;
use sluice_core::hash::shape_seed;
use sluice_core::pipeline::{PipelineSpec, Transformation};
use sluice_core::{Schema, TableDescription};
use sluice_destinations::{Destination, WriteTarget};
use sluice_store::{DestinationRecord, MetadataStore, PipelineRecord};
use sluice_transform::{Limits, Transform};

use crate::check::{check_pipeline, Fitted};
use crate::error::{ErrorKind, Result};

/// A pipeline made ready to run: everything compiled and checked against the live table.
pub struct Prepared {
    pub pipeline: PipelineRecord,
    pub schema: Schema,
    pub filter: Option<Filter>,
    pub destination: Box<dyn Destination>,
    pub destination_name: String,
    pub table: TableDescription,
    /// The compiled transformation; its columns are the target's.
    pub transform: Transform,
    pub target: WriteTarget,
    /// Whether the key column is mapped to `_id` itself: keys are then unique by construction.
    pub key_is_profile_id: bool,
    /// Seeds row hashes with what they mean (destination, table, key, columns), so a change of any of
    /// them makes every row compare afresh.
    pub seed: u64,
    /// Everything besides the profiles that the rows depend on (see `fingerprint` in this module).
    pub fingerprint: String,
}

/// Loads and checks everything a run needs, scripts under the default limits.
pub async fn prepare(meta: &dyn MetadataStore, pipeline: PipelineRecord) -> Result<Prepared> {
    prepare_with(meta, pipeline, Limits::default()).await
}

/// [`prepare`] with the limits scripts run under. A pipeline that no longer fits its table or the
/// Customer Model fails here, before anything is written, with every problem named.
pub async fn prepare_with(
    meta: &dyn MetadataStore,
    pipeline: PipelineRecord,
    limits: Limits,
) -> Result<Prepared> {
    let spec = &pipeline.spec;
    let fitted = check_pipeline(meta, spec, limits).await.map_err(|e| {
        if e.kind == ErrorKind::Invalid {
            e.context("the pipeline no longer fits the table or the Customer Model")
        } else {
            e
        }
    })?;
    Ok(Prepared::new(pipeline, fitted))
}

impl Prepared {
    /// A pipeline whose spec passed [`check_pipeline`], made ready to run (or to preview).
    pub fn new(pipeline: PipelineRecord, fitted: Fitted) -> Self {
        let Fitted {
            destination: dest_rec,
            client: destination,
            schema,
            table,
            filter,
            transform,
        } = fitted;
        let spec = &pipeline.spec;
        let target = WriteTarget {
            table: table.clone(),
            columns: transform.columns().to_vec(),
            key: spec.key.clone(),
            run_version: sluice_destinations::run_version(),
        };
        let mut shape: Vec<&str> = vec![&dest_rec.id, &spec.table, &spec.key];
        shape.extend(transform.columns().iter().map(String::as_str));
        let seed = shape_seed(&shape);
        // Names compared as the table stores them: a Snowflake mapping may write `customer_id` for the
        // key `CUSTOMER_ID`.
        let key_is_profile_id = matches!(&spec.transformation,
        Transformation::Mapping(m) if m.iter().any(|(column, expr)| {
            table.stored_name(column) == target.key_column() && expr.trim() == "_id"
        }));
        let fingerprint = fingerprint(spec, &dest_rec, &schema, &table);
        Prepared {
            fingerprint,
            key_is_profile_id,
            filter,
            destination,
            destination_name: dest_rec.name,
            table,
            transform,
            target,
            seed,
            schema,
            pipeline,
        }
    }
}

/// A digest of what a pipeline's rows are computed from besides the profiles themselves: the pipeline's
/// audience, table, key, transformation and on-leave rule, the destination, the Customer Model, the live
/// table and this version of Sluice (conversion rules may change between versions). A sync checkpoint
/// is only used while this stays the same.
fn fingerprint(
    spec: &PipelineSpec,
    destination: &DestinationRecord,
    schema: &Schema,
    table: &TableDescription,
) -> String {
    fn json<T: serde::Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }
    let parts = [
        env!("CARGO_PKG_VERSION").to_string(),
        json(&spec.filter),
        spec.table.clone(),
        spec.key.clone(),
        json(&spec.transformation),
        json(&spec.on_leave),
        destination.id.clone(),
        destination.kind.clone(),
        destination.settings.to_string(),
        destination.updated_at.to_rfc3339(),
        // Debug output is stable within a version, which the first part pins.
        format!("{schema:?}"),
        format!("{table:?}"),
    ];
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    sluice_core::hash::fingerprint(&parts)
}
