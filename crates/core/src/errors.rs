//! Validation errors that name the offending field.
//!
//! Every validation in Sluice collects *all* problems before answering, each with the dotted/indexed path of
//! the field at fault (`filter.conditions[1].values`, `transformation.mapping.email`). The API turns a
//! [`FieldErrors`] into a 422 answer, the CLI prints one line per entry and the UI shows each next to its field.

use std::collections::BTreeMap;
use std::fmt;

/// Problems found while validating some input, keyed by field path.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one problem with the field at `path`.
    pub fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.entry(path.into()).or_default().push(message.into());
    }

    /// Adds every error of `other`, prefixing each path with `prefix` (joined with a dot unless the
    /// nested path starts with an index).
    pub fn merge_prefixed(&mut self, prefix: &str, other: FieldErrors) {
        for (path, messages) in other.0 {
            let full = join_path(prefix, &path);
            self.0.entry(full).or_default().extend(messages);
        }
    }

    pub fn merge(&mut self, other: FieldErrors) {
        for (path, messages) in other.0 {
            self.0.entry(path).or_default().extend(messages);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.values().map(Vec::len).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| (p.as_str(), m.as_str())))
    }

    pub fn get(&self, path: &str) -> Option<&[String]> {
        self.0.get(path).map(Vec::as_slice)
    }

    pub fn into_map(self) -> BTreeMap<String, Vec<String>> {
        self.0
    }

    /// `Ok(value)` when nothing was recorded, otherwise the errors.
    pub fn into_result<T>(self, value: T) -> Result<T, FieldErrors> {
        if self.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

/// Joins two path segments: `a` + `b` → `a.b`, `a` + `[0].b` → `a[0].b`; an empty side disappears.
pub fn join_path(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_string()
    } else if rest.is_empty() {
        prefix.to_string()
    } else if rest.starts_with('[') {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}.{rest}")
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (path, message) in self.iter() {
            if !first {
                f.write_str("; ")?;
            }
            first = false;
            if path.is_empty() {
                write!(f, "{message}")?;
            } else {
                write!(f, "{path}: {message}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_and_collect() {
        let mut inner = FieldErrors::new();
        inner.add("[1].values", "expected two values");
        inner.add("property", "unknown property `x`");
        let mut outer = FieldErrors::new();
        outer.merge_prefixed("filter.conditions", inner);
        assert_eq!(outer.len(), 2);
        assert!(outer.get("filter.conditions[1].values").is_some());
        assert!(outer.get("filter.conditions.property").is_some());
        assert!(outer.to_string().contains("unknown property"));
    }
}
