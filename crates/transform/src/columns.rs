//! Which columns a script pipeline writes (the rule is in the crate documentation), and how a returned
//! object becomes a row; shared by both languages.

use std::collections::HashMap;

use sluice_core::{convert, ColumnType, FieldErrors, TableDescription, Value};

use crate::RowError;

/// A column a script writes: its type and whether it accepts null.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub ty: ColumnType,
    pub nullable: bool,
}

/// The columns written, in order, from the script's `columns` list when it has one, else every writable
/// column of the table. Problems are reported at `field`, except a key left out (at `key`).
pub(crate) fn resolve(
    declared: Option<&[String]>,
    key: &str,
    table: &TableDescription,
    field: &str,
) -> Result<(Vec<String>, Vec<Target>), FieldErrors> {
    let mut errors = FieldErrors::new();
    let columns: Vec<String> = match declared {
        Some(list) => list.to_vec(),
        None => table
            .columns
            .iter()
            .filter(|c| c.ty.is_some())
            .map(|c| c.name.clone())
            .collect(),
    };
    let mut targets = Vec::with_capacity(columns.len());
    for (i, name) in columns.iter().enumerate() {
        if columns[..i].contains(name) {
            errors.add(field, format!("`columns` names column `{name}` twice"));
            continue;
        }
        match table.column(name) {
            None => errors.add(
                field,
                format!(
                    "`columns` names column `{name}`, which does not exist in table `{}`",
                    table.name
                ),
            ),
            Some(c) => match &c.ty {
                None => errors.add(
                    field,
                    format!(
                        "column `{name}` has type `{}`, which Sluice cannot write; leave it out of `columns`",
                        c.native_type
                    ),
                ),
                Some(ty) => targets.push(Target {
                    ty: ty.clone(),
                    nullable: c.nullable,
                }),
            },
        }
    }
    if !key.is_empty() && table.column(key).is_some() && !columns.iter().any(|c| c == key) {
        errors.add(
            "key",
            format!("the key column `{key}` must be in the script's `columns` list"),
        );
    }
    errors.into_result((columns, targets))
}

/// The columns a script pipeline writes, and how the object its `transform` returned becomes a row: the
/// same for both languages.
#[derive(Debug)]
pub(crate) struct Shape {
    pub columns: Vec<String>,
    targets: Vec<Target>,
    index: HashMap<String, usize>,
    /// Whether the columns come from the script's `columns` list (for messages).
    declared: bool,
    table: String,
}

impl Shape {
    pub fn new(columns: Vec<String>, targets: Vec<Target>, declared: bool, table: &str) -> Shape {
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        Shape {
            columns,
            targets,
            index,
            declared,
            table: table.to_string(),
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
        let Some(&i) = self.index.get(name) else {
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
