//! The engine's one error type: a message for people and a kind that decides what callers do with it
//! (the API's status, whether a run may be retried).

use sluice_core::FieldErrors;
use sluice_destinations::DestinationError;
use sluice_store::StoreError;

/// What kind of failure stopped a check or a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The pipeline (or a run) does not exist.
    NotFound,
    /// The pipeline does not fit its destination, its table or the Customer Model; [`EngineError::fields`]
    /// says where.
    Invalid,
    /// The table changed under a run (a column dropped or retyped, the table dropped), after the check
    /// that started it.
    TableChanged,
    /// The destination failed; its own kind says why (down, timed out, refused the login …).
    Destination(sluice_destinations::ErrorKind),
    /// The metadata or the profile store failed.
    Store,
    /// A bug or a broken invariant of Sluice itself.
    Internal,
}

/// Why a pipeline could not be checked, previewed or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EngineError {
    pub kind: ErrorKind,
    /// Says what failed and why, naming the table, column or field.
    pub message: String,
    /// For [`ErrorKind::Invalid`]: every problem, by the path of the pipeline field it is about.
    pub fields: Option<FieldErrors>,
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            fields: None,
        }
    }

    /// A pipeline that does not fit: `context` introduces the problems, listed in `fields`.
    pub fn invalid(context: &str, fields: FieldErrors) -> Self {
        let message = if context.is_empty() {
            fields.to_string()
        } else {
            format!("{context}: {fields}")
        };
        Self {
            kind: ErrorKind::Invalid,
            message,
            fields: Some(fields),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A store failure, introduced by what was being done (`reading the sync state failed`).
    pub fn store(context: &str, e: StoreError) -> Self {
        Self::new(ErrorKind::Store, format!("{context}: {e}"))
    }

    /// A destination failure, introduced by what was being done. A table that vanished or no longer has
    /// the written columns is [`ErrorKind::TableChanged`].
    pub fn destination(context: &str, e: DestinationError) -> Self {
        let kind = match e.kind {
            sluice_destinations::ErrorKind::NotFound
            | sluice_destinations::ErrorKind::SchemaMismatch => ErrorKind::TableChanged,
            other => ErrorKind::Destination(other),
        };
        Self::new(kind, format!("{context}: {}", e.message))
    }

    /// The same error with `context` in front of its message.
    pub fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        let kind = match e {
            StoreError::NotFound(_) => ErrorKind::NotFound,
            _ => ErrorKind::Store,
        };
        Self::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_gone_or_changed_is_its_own_kind() {
        let gone = DestinationError::new(sluice_destinations::ErrorKind::NotFound, "no table");
        let e = EngineError::destination("writing to `t` failed", gone);
        assert_eq!(e.kind, ErrorKind::TableChanged);
        assert_eq!(e.message, "writing to `t` failed: no table");
        let down = DestinationError::new(sluice_destinations::ErrorKind::Unavailable, "refused");
        assert_eq!(
            EngineError::destination("x", down).kind,
            ErrorKind::Destination(sluice_destinations::ErrorKind::Unavailable)
        );
        let mut f = FieldErrors::new();
        f.add("key", "column `k` does not exist");
        let e = EngineError::invalid("the pipeline no longer fits", f);
        assert!(e.message.contains("key: column `k`"), "{}", e.message);
        assert_eq!(e.kind, ErrorKind::Invalid);
    }
}
