//! The operators, their names, how many values they take and which property types they apply to.

use crate::schema::PropertyType;

/// Every filter operator, in the order the product lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Is,
    IsNot,
    IsLessThan,
    IsLessThanOrEqualTo,
    IsGreaterThan,
    IsGreaterThanOrEqualTo,
    IsBetween,
    IsNotBetween,
    Contains,
    DoesNotContain,
    IsOneOf,
    IsNotOneOf,
    StartsWith,
    EndsWith,
    IsBefore,
    IsOnOrBefore,
    IsAfter,
    IsOnOrAfter,
    IsTrue,
    IsFalse,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    Exists,
    DoesNotExist,
}

/// How many values an operator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    None,
    One,
    Two,
    /// At least one, at most [`MAX_VALUES`].
    Many,
}

/// The most values one condition may list (`is one of`): beyond that an audience belongs in a property,
/// not in a filter, and the pushed-down SQL would approach the databases' parameter limits.
pub const MAX_VALUES: usize = 1000;

use Operator::*;

const ALL: [Operator; 26] = [
    Is,
    IsNot,
    IsLessThan,
    IsLessThanOrEqualTo,
    IsGreaterThan,
    IsGreaterThanOrEqualTo,
    IsBetween,
    IsNotBetween,
    Contains,
    DoesNotContain,
    IsOneOf,
    IsNotOneOf,
    StartsWith,
    EndsWith,
    IsBefore,
    IsOnOrBefore,
    IsAfter,
    IsOnOrAfter,
    IsTrue,
    IsFalse,
    IsEmpty,
    IsNotEmpty,
    IsNull,
    IsNotNull,
    Exists,
    DoesNotExist,
];

const PRESENCE: [Operator; 6] = [IsEmpty, IsNotEmpty, IsNull, IsNotNull, Exists, DoesNotExist];

const STRING: [Operator; 8] = [
    Is,
    IsNot,
    IsOneOf,
    IsNotOneOf,
    Contains,
    DoesNotContain,
    StartsWith,
    EndsWith,
];
const BOOLEAN: [Operator; 4] = [IsTrue, IsFalse, Is, IsNot];
const NUMBER: [Operator; 10] = [
    Is,
    IsNot,
    IsLessThan,
    IsLessThanOrEqualTo,
    IsGreaterThan,
    IsGreaterThanOrEqualTo,
    IsBetween,
    IsNotBetween,
    IsOneOf,
    IsNotOneOf,
];
const TEMPORAL: [Operator; 10] = [
    Is,
    IsNot,
    IsBefore,
    IsOnOrBefore,
    IsAfter,
    IsOnOrAfter,
    IsBetween,
    IsNotBetween,
    IsOneOf,
    IsNotOneOf,
];
const UUID: [Operator; 4] = [Is, IsNot, IsOneOf, IsNotOneOf];
const ARRAY: [Operator; 2] = [Contains, DoesNotContain];

impl Operator {
    /// Every operator.
    pub fn all() -> &'static [Operator] {
        &ALL
    }

    /// The operator's name on the wire and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Is => "is",
            IsNot => "is not",
            IsLessThan => "is less than",
            IsLessThanOrEqualTo => "is less than or equal to",
            IsGreaterThan => "is greater than",
            IsGreaterThanOrEqualTo => "is greater than or equal to",
            IsBetween => "is between",
            IsNotBetween => "is not between",
            Contains => "contains",
            DoesNotContain => "does not contain",
            IsOneOf => "is one of",
            IsNotOneOf => "is not one of",
            StartsWith => "starts with",
            EndsWith => "ends with",
            IsBefore => "is before",
            IsOnOrBefore => "is on or before",
            IsAfter => "is after",
            IsOnOrAfter => "is on or after",
            IsTrue => "is true",
            IsFalse => "is false",
            IsEmpty => "is empty",
            IsNotEmpty => "is not empty",
            IsNull => "is null",
            IsNotNull => "is not null",
            Exists => "exists",
            DoesNotExist => "does not exist",
        }
    }

    /// Reads an operator name. Case and runs of white space (or `_`) are forgiven, so `Is_One_Of`
    /// and `is  one of` both mean `is one of`.
    pub fn from_name(name: &str) -> Option<Operator> {
        let mut canonical = String::with_capacity(name.len());
        for word in name
            .split(|c: char| c.is_whitespace() || c == '_')
            .filter(|w| !w.is_empty())
        {
            if !canonical.is_empty() {
                canonical.push(' ');
            }
            canonical.push_str(&word.to_lowercase());
        }
        ALL.iter().copied().find(|op| op.name() == canonical)
    }

    pub fn arity(self) -> Arity {
        match self {
            IsTrue | IsFalse | IsEmpty | IsNotEmpty | IsNull | IsNotNull | Exists
            | DoesNotExist => Arity::None,
            IsBetween | IsNotBetween => Arity::Two,
            IsOneOf | IsNotOneOf => Arity::Many,
            _ => Arity::One,
        }
    }

    /// The positive operator this one negates, if it is a negation. A negated condition matches exactly
    /// the profiles its positive form does not match, absent and null values included.
    pub fn negates(self) -> Option<Operator> {
        match self {
            IsNot => Some(Is),
            IsNotBetween => Some(IsBetween),
            DoesNotContain => Some(Contains),
            IsNotOneOf => Some(IsOneOf),
            IsNotEmpty => Some(IsEmpty),
            IsNotNull => Some(IsNull),
            DoesNotExist => Some(Exists),
            _ => None,
        }
    }

    /// The operators that apply to a property of type `ty`, value operators first.
    pub fn applicable(ty: &PropertyType) -> Vec<Operator> {
        let values: &[Operator] = match ty {
            PropertyType::String => &STRING,
            PropertyType::Boolean => &BOOLEAN,
            PropertyType::Int | PropertyType::Float | PropertyType::Decimal { .. } => &NUMBER,
            PropertyType::DateTime | PropertyType::Date | PropertyType::Time => &TEMPORAL,
            PropertyType::Uuid => &UUID,
            PropertyType::Array(inner) if element_is_comparable(inner) => &ARRAY,
            PropertyType::Json | PropertyType::Object(_) | PropertyType::Array(_) => &[],
        };
        values.iter().chain(PRESENCE.iter()).copied().collect()
    }

    pub fn applies_to(self, ty: &PropertyType) -> bool {
        Operator::applicable(ty).contains(&self)
    }
}

/// Whether `contains` can look for an element of this type: scalars that have an equality.
/// JSON, object and nested-array elements have no equality that SQLite, PostgreSQL and Rust agree on.
pub(crate) fn element_is_comparable(ty: &PropertyType) -> bool {
    !matches!(
        ty,
        PropertyType::Json | PropertyType::Object(_) | PropertyType::Array(_)
    )
}

/// The names of `ops`, comma separated, for messages.
pub(crate) fn list(ops: &[Operator]) -> String {
    ops.iter()
        .map(|op| op.name())
        .collect::<Vec<_>>()
        .join(", ")
}
