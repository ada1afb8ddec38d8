//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API, derived with `utoipa` from the route
//! lists the router is built from (see [`crate::routes`]) and from the types the handlers take and answer.
//!
//! Most answers are types of this crate that derive both `Serialize` and `ToSchema`, so what is served
//! and what is described cannot drift apart. Types of other crates (the pipeline spec, the Customer Model's
//! wire form, runs as the store keeps them, connectors) cannot implement `ToSchema` here, so this module
//! describes them with mirror types; the API tests check every answer they get against the document, which
//! keeps the mirrors true.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::Json;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::RefOr;
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;

/// The script contract, as the description of the `Transformation` schema (the crate documentation of
/// `sluice-transform` is the reference).
const SCRIPT_CONTRACT: &str = "Exactly one of a visual mapping, a JavaScript source or a Python source. \
A script defines transform(profile). `profile` holds _id, _updated_at and the Customer Model properties: strings, \
booleans and floats as such; ints as numbers (JavaScript: a BigInt beyond ±(2^53−1); Python: int, exact); decimals \
as strings with their exact digits; datetimes as ISO 8601 strings in UTC (\"2024-05-13T15:30:00Z\"); dates and \
times as ISO strings; objects and arrays as such; a missing property is absent. transform returns an object (a \
Python dict) keyed by destination column, or null (None) to skip the profile, which counts as filtered out; \
anything else fails the row. The columns written are those of a top-level `columns` list in the source, else \
every column of the table Sluice can write; a column the object leaves out is written as NULL. Returned values \
are converted to the column types with the same rules as visual mapping (a JavaScript Date, or a Python \
datetime, date, time, Decimal or UUID, keeps its type). A key that is not a column, a value that does not \
convert, an exception, or a call over the time or memory limit fails only that profile's row, with a message \
naming the column or the line. JavaScript runs in an embedded engine with no file, network or process \
access; Python runs in isolated python3 worker processes (no environment, no file or network access, \
resource limits). A syntax error is a 422 at transformation.javascript or transformation.python with line \
and column; saving a Python transformation where python3 is missing is a 422 that says so.";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice API",
        description = "Keep tables in your databases in step with your customer profiles."
    ),
    servers((url = "/")),
    security(("bearer" = [])),
    modifiers(&Bearer),
    // Reached only through `IntoResponses` types or recursion, which utoipa does not follow.
    components(schemas(ErrorBody, FilterNode)),
)]
struct Base;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The whole document.
pub fn build() -> serde_json::Value {
    let (_, paths) = crate::routes().split_for_parts();
    let mut doc = serde_json::to_value(Base::openapi().merge_from(paths))
        .expect("an OpenAPI document serializes");
    optional_bodies(&mut doc);
    doc
}

/// utoipa describes a body that may be left out (`Option<T>`) as `T` or JSON `null`, but such a body is
/// empty, never `null`: `required: false` (utoipa's default here) with `T` says it.
fn optional_bodies(doc: &mut serde_json::Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths.values_mut().filter_map(|p| p.as_object_mut()) {
        for op in op.values_mut() {
            let Some(schema) = op.pointer_mut("/requestBody/content/application~1json/schema")
            else {
                continue;
            };
            let Some(alternatives) = schema["oneOf"].as_array() else {
                continue;
            };
            let mut not_null = alternatives.iter().filter(|s| s["type"] != "null");
            if let (Some(only), None) = (not_null.next(), not_null.next()) {
                *schema = only.clone();
            }
        }
    }
}

fn document_cached() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(build)
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "getOpenApi",
    tag = "meta",
    summary = "This document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", body = Object),
        (status = 401, description = "missing or invalid token", body = crate::error::ErrorBody),
    ),
)]
pub async fn document() -> Json<&'static serde_json::Value> {
    Json(document_cached())
}

// ---------------------------------------------------------------------------------------------------
// `true` and `false` as fields whose value never changes (`{"ok": true}`), so that clients can tell
// answers apart by them.

macro_rules! constant {
    ($name:ident, $value:literal) => {
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bool($value)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::Boolean)
                    .enum_values(Some([$value]))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

constant!(True, true);
constant!(False, false);

// ---------------------------------------------------------------------------------------------------
// Error answers, for the `responses(...)` of the routes. Each holds the body it is described with; none is
// ever built (`ApiError` is what handlers return).

#[derive(IntoResponses)]
#[response(status = 400, description = "malformed: the body is not valid JSON")]
#[allow(dead_code)]
pub struct Malformed(ErrorBody);

#[derive(IntoResponses)]
#[response(status = 401, description = "missing or invalid token")]
#[allow(dead_code)]
pub struct Unauthorized(ErrorBody);

#[derive(IntoResponses)]
#[response(status = 404, description = "not found")]
#[allow(dead_code)]
pub struct NotFound(ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 415,
    description = "the body is not sent as `application/json`"
)]
#[allow(dead_code)]
pub struct NotJson(ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "as many dry runs as may go and wait are under way in this instance (`TooManyDryRuns`): wait for one to end, or cancel one"
)]
#[allow(dead_code)]
pub struct TooManyDryRuns(ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 413,
    description = "the body is larger than the route's limit (1 MiB; 64 MiB for profile batches)"
)]
#[allow(dead_code)]
pub struct TooLarge(ErrorBody);

#[derive(IntoResponses)]
#[response(
    status = 422,
    description = "invalid: every offending field is named in `fields`"
)]
#[allow(dead_code)]
pub struct Invalid(ErrorBody);

#[derive(IntoResponses)]
#[response(status = 500, description = "the metadata or profile store failed")]
#[allow(dead_code)]
pub struct Internal(ErrorBody);

/// The destination database failed (`502`) or did not answer in time (`504`), with its own message.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum DestinationFailed {
    #[response(status = 502, description = "the destination database failed")]
    Failed(ErrorBody),
    #[response(status = 504, description = "the destination database timed out")]
    TimedOut(ErrorBody),
}

// ---------------------------------------------------------------------------------------------------
// Mirrors of the wire types of other crates (each names the type it describes), and the schemas of
// answers built as JSON values.

// Mirrors `sluice_core::schema::PropertyWire`.
/// A property of the Customer Model.
#[derive(Serialize, ToSchema)]
#[schema(as = Property)]
#[allow(dead_code)]
pub struct PropertyDoc {
    name: String,
    /// `string`, `boolean`, `int`, `float`, `decimal(p,s)`, `datetime`, `date`, `time`, `uuid`, `json`,
    /// `array(T)` or `object`.
    #[serde(rename = "type")]
    ty: String,
    /// Whether the property may be null (the default).
    #[serde(default)]
    #[schema(default = true)]
    nullable: bool,
    description: Option<String>,
    /// The nested properties of an `object` (or `array(object)`).
    #[schema(no_recursion)]
    properties: Option<Vec<PropertyDoc>>,
}

// Mirrors `sluice_core::schema::SchemaWire`.
/// The Customer Model.
#[derive(Serialize, ToSchema)]
#[schema(as = ProfileSchema)]
#[allow(dead_code)]
pub struct ProfileSchemaDoc {
    properties: Vec<PropertyDoc>,
}

/// A profile: its id, when it last changed, and its Customer Model properties.
#[derive(Serialize, ToSchema)]
#[schema(as = Profile)]
#[allow(dead_code)]
pub struct ProfileDoc {
    #[serde(rename = "_id")]
    id: String,
    #[serde(rename = "_updated_at")]
    updated_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(flatten)]
    properties: BTreeMap<String, serde_json::Value>,
}

// Mirrors `sluice_destinations::connectors::ConnectorInfo`.
/// A destination kind and its settings fields.
#[derive(Serialize, ToSchema)]
#[schema(as = Connector)]
#[allow(dead_code)]
pub struct ConnectorDoc {
    /// The `type` of a destination of this kind (`postgresql`, …).
    kind: String,
    label: String,
    description: String,
    /// Whether this build can connect to it.
    available: bool,
    fields: Vec<ConnectorFieldDoc>,
}

// Mirrors `sluice_destinations::connectors::FieldInfo`.
/// One settings field of a connection form.
#[derive(Serialize, ToSchema)]
#[schema(as = ConnectorField)]
#[allow(dead_code)]
pub struct ConnectorFieldDoc {
    name: String,
    label: String,
    #[serde(rename = "type")]
    ty: ConnectorFieldType,
    /// The value used when the field is left out.
    default: Option<serde_json::Value>,
    /// The default when TLS is on, where it differs.
    tls_default: Option<serde_json::Value>,
    required: bool,
    /// Accepted but never returned by the API.
    secret: bool,
    /// Rarely changed; the UI may fold it away.
    #[serde(default)]
    advanced: bool,
    help: Option<String>,
    options: Option<Vec<ConnectorFieldOption>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ConnectorFieldType {
    String,
    Integer,
    Password,
    Text,
    Tls,
}

/// A choice offered by a field (the TLS modes).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ConnectorFieldOption {
    value: String,
    label: String,
    help: Option<String>,
}

// Mirrors `sluice_core::mapping::FunctionInfo`.
/// A function of visual-mapping expressions.
#[derive(Serialize, ToSchema)]
#[schema(as = FunctionInfo)]
#[allow(dead_code)]
pub struct FunctionInfoDoc {
    name: String,
    signature: String,
    description: String,
    category: String,
}

// Mirrors `sluice_core::pipeline::PipelineSpec` as answers show it: every field filled in.
/// A pipeline's settings as they are saved.
#[derive(Serialize, ToSchema)]
#[schema(as = PipelineSpec)]
#[allow(dead_code)]
pub struct PipelineSpecDoc {
    destination: String,
    name: String,
    description: String,
    enabled: bool,
    #[schema(required = true)]
    filter: Option<FilterGroup>,
    table: String,
    key: String,
    transformation: Transformation,
    #[schema(required = true)]
    schedule: Option<Schedule>,
    on_leave: OnLeave,
    #[serde(default)]
    alert_webhook: Option<String>,
    /// How long after the last reconcile a scheduled run is a reconcile (`12h`, `1d`, `1w`); absent: never.
    #[serde(default)]
    reconcile_every: Option<String>,
}

// Mirrors `sluice_core::pipeline::PipelineSpec`.
/// An export pipeline as it is sent.
#[derive(Serialize, ToSchema)]
#[schema(as = PipelineInput)]
#[allow(dead_code)]
pub struct PipelineInputDoc {
    /// The id of the destination written to.
    destination: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    #[schema(default = true)]
    enabled: bool,
    /// Which profiles; `null` (the default) means all of them.
    #[serde(default)]
    filter: Option<FilterGroup>,
    table: String,
    /// The column that identifies a profile's row.
    key: String,
    transformation: Transformation,
    /// `null` (the default) runs the pipeline only on demand.
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    on_leave: OnLeave,
    /// An http(s) URL posted a JSON message when a run fails, fails too many rows, or succeeds after
    /// failing.
    #[serde(default)]
    alert_webhook: Option<String>,
    /// Makes a scheduled run a reconcile when at least this long has passed since the last reconcile
    /// started (or there was none): a whole number and a unit, `m`, `h`, `d` or `w` (`1d`), from `5m`
    /// to `366d`. `null` (the default): scheduled runs do not reconcile on a timer.
    #[serde(default)]
    reconcile_every: Option<String>,
}

/// Any subset of a pipeline's fields; those left out keep their value.
#[derive(Serialize, ToSchema)]
#[schema(as = PipelinePatch)]
#[allow(dead_code)]
pub struct PipelinePatchDoc {
    #[serde(default)]
    destination: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    filter: Option<FilterGroup>,
    #[serde(default)]
    table: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    transformation: Transformation,
    #[serde(default)]
    schedule: Option<Schedule>,
    #[serde(default)]
    on_leave: OnLeave,
    #[serde(default)]
    alert_webhook: Option<String>,
    #[serde(default)]
    reconcile_every: Option<String>,
}

// Mirrors the wire form `sluice_core::filter` parses.
/// A group of conditions; an empty group matches every profile.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct FilterGroup {
    logical: Logical,
    #[schema(no_recursion)]
    conditions: Vec<FilterNode>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Logical {
    And,
    Or,
}

/// A condition or a nested group.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FilterNode {
    Condition(FilterCondition),
    #[schema(no_recursion)]
    Group(FilterGroup),
}

/// A test on one property. `GET /v1/filters/operators` lists the operators of each property type and how
/// many values each takes.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct FilterCondition {
    /// A Customer Model property path (`address.city`), `_id` or `_updated_at`.
    property: String,
    operator: String,
    values: Option<Vec<serde_json::Value>>,
}

// Mirrors `sluice_core::pipeline::Transformation`; the description is the script contract.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(description = SCRIPT_CONTRACT)]
#[allow(dead_code)]
pub enum Transformation {
    /// Destination column → mapping expression (functions: `GET /v1/functions`), in the order given.
    Mapping(BTreeMap<String, String>),
    /// JavaScript source defining transform(profile).
    Javascript(String),
    /// Python 3 source defining transform(profile).
    Python(String),
}

// Mirrors `sluice_core::pipeline::Schedule`.
/// A fixed interval, a cron expression in a time zone, or `on_change`: run as soon as profiles changed
/// (a burst of changes makes one run; see the server's `--on-change-quiet-seconds`).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Schedule {
    Interval(Interval),
    OnChange(OnChange),
    Cron {
        /// Five fields: minute, hour, day of month, month, day of week.
        cron: String,
        /// An IANA time zone; `UTC` when left out.
        #[serde(default)]
        timezone: String,
    },
}

/// The fixed intervals (`1d` is the same as `24h`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum Interval {
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "2h")]
    H2,
    #[serde(rename = "3h")]
    H3,
    #[serde(rename = "6h")]
    H6,
    #[serde(rename = "8h")]
    H8,
    #[serde(rename = "12h")]
    H12,
    #[serde(rename = "24h")]
    H24,
    #[serde(rename = "1d")]
    D1,
}

// Mirrors `sluice_core::pipeline::Schedule` as a source takes it (`Scheduled::Source`).
/// A source's schedule: one of the fixed intervals, one of the short intervals only sources have, or a
/// cron expression in a time zone. Not `on_change`: a source makes profile changes rather than
/// following them.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum SourceSchedule {
    Short(SourceInterval),
    Interval(Interval),
    Cron {
        /// Five fields: minute, hour, day of month, month, day of week.
        cron: String,
        /// An IANA time zone; `UTC` when left out.
        #[serde(default)]
        timezone: String,
    },
}

/// The short intervals only sources have (`5s` to `2m`): a source polled every few seconds keeps an
/// `on_change` export seconds behind the source database. Ticks fall on multiples of the interval since
/// the Unix epoch (`5s` at :00, :05, :10 … of every minute).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum SourceInterval {
    #[serde(rename = "5s")]
    S5,
    #[serde(rename = "10s")]
    S10,
    #[serde(rename = "15s")]
    S15,
    #[serde(rename = "30s")]
    S30,
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "2m")]
    M2,
}

/// Run when profiles change (by the API, an import, a delete or a source pipeline), debounced.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub enum OnChange {
    #[serde(rename = "on_change")]
    OnChange,
}

/// What set off an `on_change` run: profiles changed and deleted since the pipeline's previous run
/// started.
#[derive(Serialize, ToSchema)]
#[schema(as = RunChanges)]
#[allow(dead_code)]
pub struct RunChangesDoc {
    /// Profiles inserted or updated (each once, however often it changed).
    changed: u64,
    /// Profiles deleted.
    deleted: u64,
}

/// What happens to a table row whose profile left the audience or was deleted: kept (the default) or
/// deleted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum OnLeave {
    Keep,
    Delete,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// What started a run.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RunTrigger {
    Manual,
    Schedule,
    Api,
    /// Profiles changed (an `on_change` pipeline); `changes` says how many.
    OnChange,
}

// Mirrors `sluice_store::Progress`.
/// How far a run got.
#[derive(Serialize, ToSchema)]
#[schema(as = RunProgress)]
#[allow(dead_code)]
pub struct RunProgressDoc {
    processed: u64,
    /// The profiles the run will read, once counted.
    #[schema(required = true)]
    total: Option<u64>,
}

// Mirrors `sluice_store::Counts`.
/// Profiles of a run by what happened to them. Shown to people as: **in audience** = inserted + updated +
/// unchanged + failed + transform_failed; **not in audience** = filtered_out; **written** = inserted +
/// updated ("N new, M updated"); **skipped, unchanged** = unchanged; **removed** = deleted; **failed** =
/// failed + transform_failed. `read` is no headline figure: it counts only the profiles read from the store
/// because they were new or changed since the last run.
#[derive(Serialize, ToSchema)]
#[schema(as = RunCounts)]
#[allow(dead_code)]
pub struct RunCountsDoc {
    /// Read from the store (new or changed): profiles new or changed since the last run, the only ones a
    /// run reads; 0 on a re-run with nothing new, even though every row of the audience was checked.
    read: u64,
    /// Not in audience: profiles the filter left out this run.
    filtered_out: u64,
    /// Failed in the transformation (counted under "failed" and "in audience").
    transform_failed: u64,
    /// Written, new: rows inserted into the table.
    inserted: u64,
    /// Written, updated: rows whose values changed.
    updated: u64,
    /// Skipped, unchanged: in the audience, and the table already holds the same row.
    unchanged: u64,
    /// Removed: rows of profiles that left the audience or were deleted (with `on_leave: delete`).
    deleted: u64,
    /// Failed at the write (counted under "failed" and "in audience"); see the run's `errors`.
    failed: u64,
}

// Mirrors `sluice_engine::DryReport`.
/// Sample rows of a dry run, a few of each kind (the first met, in `_id` order).
#[derive(Serialize, ToSchema)]
#[schema(as = DryRunSamples)]
#[allow(dead_code)]
pub struct DryRunSamplesDoc {
    inserts: Vec<DryInsertDoc>,
    updates: Vec<DryUpdateDoc>,
    deletes: Vec<DryDeleteDoc>,
}

/// A row a dry run would insert.
#[derive(Serialize, ToSchema)]
#[schema(as = DryRunInsert)]
#[allow(dead_code)]
pub struct DryInsertDoc {
    profile: String,
    key: serde_json::Value,
    /// The written columns and their values.
    row: std::collections::BTreeMap<String, serde_json::Value>,
}

/// A row a dry run would update, with the columns whose value in the table differs (empty when the
/// row could not be read back: it is missing from the table and would be written again).
#[derive(Serialize, ToSchema)]
#[schema(as = DryRunUpdate)]
#[allow(dead_code)]
pub struct DryUpdateDoc {
    profile: String,
    key: serde_json::Value,
    changes: Vec<DryChangeDoc>,
}

/// One column of an updated row, as the table holds it and as it would be written.
#[derive(Serialize, ToSchema)]
#[schema(as = DryRunColumnChange)]
#[allow(dead_code)]
pub struct DryChangeDoc {
    column: String,
    before: serde_json::Value,
    after: serde_json::Value,
}

/// A row a dry run would delete.
#[derive(Serialize, ToSchema)]
#[schema(as = DryRunDelete)]
#[allow(dead_code)]
pub struct DryDeleteDoc {
    key: serde_json::Value,
}

/// A dry run of a pipeline definition that is not saved.
#[derive(Serialize, ToSchema)]
#[schema(as = DryRunInput)]
#[allow(dead_code)]
pub struct DryRunInputDoc {
    pipeline: PipelineInputDoc,
    /// The saved pipeline this definition would replace: its sync state is what the dry run compares
    /// with. `null` (the default) for a new pipeline, whose every row is new.
    #[serde(default)]
    replaces: Option<String>,
}

// Mirrors `sluice_store::RunErrorGroup`.
/// Failures of one kind in a run, grouped by message.
#[derive(Serialize, ToSchema)]
#[schema(as = RunErrorGroup)]
#[allow(dead_code)]
pub struct RunErrorGroupDoc {
    /// `read`, `filter`, `transform`, `write` or `delete`.
    step: String,
    message: String,
    count: u64,
    /// A few profile ids that failed this way.
    sample_profiles: Vec<String>,
    last_seen: chrono::DateTime<chrono::Utc>,
}

/// What a run would do with a sample profile's row.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum PreviewAction {
    Insert,
    Update,
    Unchanged,
    Skip,
}

/// One sample profile of a preview.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct PreviewSample {
    profile: ProfileDoc,
    /// The row the profile becomes, by column; `null` when skipped or failed.
    #[schema(required = true)]
    row: Option<BTreeMap<String, serde_json::Value>>,
    action: PreviewAction,
    /// Why the row failed.
    #[schema(required = true)]
    error: Option<String>,
    /// Why the profile is skipped.
    reason: Option<String>,
}
