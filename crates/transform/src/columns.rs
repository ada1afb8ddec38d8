//! Which columns a script pipeline writes (the rule is in the crate documentation), shared by both
//! languages.

use sluice_core::{ColumnType, FieldErrors, TableDescription};

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
