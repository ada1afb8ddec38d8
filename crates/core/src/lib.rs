//! Pure domain logic of Sluice — no async runtime, no I/O.
//!
//! - [`schema`]: the Customer Model and profile validation/normalization;
//! - [`value`]: typed values computed by mappings and bound by destinations;
//! - [`table`]: destination tables in portable types, and how a name written in a pipeline finds a column;
//! - [`capabilities`]: what each destination database is, as data — identifier rules, upsert and delete
//!   styles, batch and statement limits;
//! - [`filter`]: audience filters — type check, in-memory evaluation and SQL pushdown;
//! - [`mapping`]: visual-mapping expressions — parse, type check, evaluate — and [`convert`], the rules
//!   that turn a value into a destination column's type;
//! - [`raw`]: stored documents read lazily, only as far as a mapping needs;
//! - [`hash`]: row hashes for writing only what changed;
//! - [`schedule`]: schedule ticks and the scheduler's per-pipeline decision, given the time;
//!   [`on_change`]: when a pipeline that follows profile changes runs (the debounce);
//! - [`sync`]: the sync decision — which computed rows are unchanged, new or changed, who holds a key,
//!   which rows belong to profiles that left.
//!
//! Everything here is deterministic and fast to test; the crates around it do the talking to databases.

pub mod address;
pub mod capabilities;
pub mod convert;
pub mod drift;
pub mod errors;
pub mod filter;
pub mod hash;
pub mod lineage;
pub mod mapping;
pub mod on_change;
pub mod pipeline;
pub mod profile;
pub mod proposal;
pub mod raw;
pub mod schedule;
pub mod schema;
pub mod source;
pub mod sync;
pub mod table;
pub mod value;

pub use capabilities::{Capabilities, IdentifierCase};
pub use errors::FieldErrors;
pub use profile::{Profile, RawProfile};
pub use schema::{PropertyType, Schema};
pub use table::{Column, ColumnType, TableDescription, TableRules};
pub use value::{Text, Value};
