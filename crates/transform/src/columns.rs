//! Which columns a script pipeline writes (the rule is in the crate documentation), and how a returned
//! object becomes a row; shared by both languages.
//!
//! A script names columns — in its `columns` list and as the keys of the objects it returns — as its
//! user writes them, which the table's identifier rule resolves ([`TableDescription::resolve_column`]);
//! rows are always written under the names the table stores, which the dialect quotes.

use std::collections::HashMap;

use sluice_core::capabilities::Resolution;
use sluice_core::{convert, ColumnType, FieldErrors, IdentifierCase, TableDescription, Value};

use crate::RowError;

/// A column a script writes: its type and whether it accepts null.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub ty: ColumnType,
    pub nullable: bool,
}

/// The columns written, in order and under their stored names, from the script's `columns` list when it
/// has one, else every writable column of the table. Problems are reported at `field`, except a key left
/// out (at `key`).
pub(crate) fn resolve(
    declared: Option<&[String]>,
    key: &str,
    table: &TableDescription,
    field: &str,
) -> Result<(Vec<String>, Vec<Target>), FieldErrors> {
    let mut errors = FieldErrors::new();
    // Stored names of the columns named, written or not (a column Sluice cannot write is an error of its
    // own, not also a missing key).
    let mut named: Vec<String> = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    let mut targets = Vec::new();
    let mut take = |name: &str, c: &sluice_core::Column, errors: &mut FieldErrors| {
        if named.contains(&c.name) {
            errors.add(field, format!("`columns` names column `{}` twice", c.name));
            return;
        }
        named.push(c.name.clone());
        match &c.ty {
            None => errors.add(
                field,
                format!(
                    "column `{name}` has type `{}`, which Sluice cannot write; leave it out of `columns`",
                    c.native_type
                ),
            ),
            Some(ty) => {
                columns.push(c.name.clone());
                targets.push(Target {
                    ty: ty.clone(),
                    nullable: c.nullable,
                });
            }
        }
    };
    match declared {
        Some(list) => {
            for (i, name) in list.iter().enumerate() {
                if list[..i].contains(name) {
                    errors.add(field, format!("`columns` names column `{name}` twice"));
                    continue;
                }
                match table.lookup_column(name) {
                    Ok(Some(c)) => take(name, c, &mut errors),
                    Ok(None) => errors.add(
                        field,
                        format!(
                            "`columns` names column `{name}`, which does not exist in table `{}`",
                            table.name
                        ),
                    ),
                    Err(message) => errors.add(field, format!("`columns`: {message}")),
                }
            }
        }
        None => {
            for c in table.columns.iter().filter(|c| c.ty.is_some()) {
                take(&c.name, c, &mut errors);
            }
        }
    }
    if let Ok(Some(k)) = table.lookup_column(key) {
        if !named.contains(&k.name) {
            errors.add(
                "key",
                format!("the key column `{key}` must be in the script's `columns` list"),
            );
        }
    }
    errors.into_result((columns, targets))
}

/// The columns a script pipeline writes, and how the object its `transform` returned becomes a row: the
/// same for both languages.
#[derive(Debug)]
pub(crate) struct Shape {
    /// Stored names.
    pub columns: Vec<String>,
    targets: Vec<Target>,
    index: HashMap<String, usize>,
    /// How a returned key finds its column (the table's rule).
    case: IdentifierCase,
    /// Whether another column's name differs from this one's only in case (where that matters, a key
    /// equal to the name may still mean both).
    twinned: Vec<bool>,
    /// Whether the columns come from the script's `columns` list (for messages).
    declared: bool,
    table: String,
}

impl Shape {
    pub fn new(
        columns: Vec<String>,
        targets: Vec<Target>,
        declared: bool,
        table: &TableDescription,
    ) -> Shape {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        let case = table.rules.identifiers;
        let twinned = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                !case.is_exact()
                    && columns
                        .iter()
                        .enumerate()
                        .any(|(j, o)| j != i && o.eq_ignore_ascii_case(c))
            })
            .collect();
        Shape {
            columns,
            targets,
            index,
            case,
            twinned,
            declared,
            table: table.name.clone(),
        }
    }

    /// The column a returned key names. A key spelled as the column is stored finds it at once; only
    /// where names match whatever their case does any other spelling need the table's rule.
    fn position(&self, name: &str) -> Result<Option<usize>, RowError> {
        if let Some(&i) = self.index.get(name) {
            if !self.twinned[i] && !name.starts_with('"') {
                return Ok(Some(i));
            }
        }
        if self.case.is_exact() {
            return Ok(self.index.get(name).copied());
        }
        match self
            .case
            .resolve(name, self.columns.iter().map(String::as_str))
        {
            Resolution::Found(i) => Ok(Some(i)),
            Resolution::Missing => Ok(None),
            Resolution::Ambiguous(a, b) => Err(RowError::column(
                name,
                format!(
                    "matches two columns, `{}` and `{}`, whose names differ only in case: return the \
                     name in double quotes exactly as stored to choose one",
                    self.columns[a], self.columns[b]
                ),
            )),
        }
    }

    /// An empty row to fill with [`Shape::set`].
    pub fn empty_row(&self) -> Vec<Option<Value>> {
        vec![None; self.columns.len()]
    }

    /// Converts a returned value to the type of column `name` and puts it in `row`; fails when `name`
    /// is not one of the columns or the value does not convert.
    pub fn set(
        &self,
        row: &mut [Option<Value>],
        name: &str,
        value: Result<Value, String>,
    ) -> Result<(), RowError> {
        let Some(i) = self.position(name)? else {
            let message = if self.declared {
                "is not in the script's `columns` list".to_string()
            } else {
                format!(
                    "does not exist in table `{}` or Sluice cannot write its type",
                    self.table
                )
            };
            return Err(RowError::column(name, message));
        };
        let value = value
            .and_then(|v| convert::to_column(v, &self.targets[i].ty))
            .map_err(|m| RowError::column(name, m))?;
        row[i] = Some(value);
        Ok(())
    }

    /// The finished row: a column left out is null, which fails the row if the column does not accept it.
    pub fn finish(&self, row: Vec<Option<Value>>) -> Result<Vec<Value>, RowError> {
        let mut out = Vec::with_capacity(row.len());
        for (i, value) in row.into_iter().enumerate() {
            let nullable = self.targets[i].nullable;
            let value = match value {
                Some(v) => v,
                None if !nullable => {
                    return Err(RowError::column(
                        &self.columns[i],
                        "does not accept null, and transform() returned no value for it",
                    ))
                }
                None => Value::Null,
            };
            if value.is_null() && !nullable {
                return Err(RowError::column(&self.columns[i], "does not accept null"));
            }
            out.push(value);
        }
        Ok(out)
    }
}
