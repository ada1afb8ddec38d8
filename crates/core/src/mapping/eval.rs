//! The compiled form of an expression and its evaluation.
//!
//! Compilation resolves everything that does not depend on the profile — property paths to their segments
//! and types, function names to their implementations, constant sub-expressions to values, literal date
//! formats to parsed items — so evaluating a profile only walks a small tree. Text is borrowed from the
//! profile wherever a function only reads it (`lower(email)` allocates once, for its result).
//!
//! What an evaluation builds is bounded, because expressions come from users: nested `replace` and
//! `concat` double their text at each level, and twenty levels made gigabytes from one profile. Every text
//! a function or a concatenation builds is at most [`MAX_TEXT_BYTES`], every array at most
//! [`MAX_ARRAY_ITEMS`] elements, and all a row's expressions together build at most [`MAX_ROW_BYTES`]
//! (counted as they go, intermediate values included, so the work per row is bounded too). Going over fails
//! the row with a message naming the limit; the functions that can grow their input many times over
//! (`replace`, `concat`, `join`, `split`) check before they allocate.

use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;
use std::fmt::Write as _;

use chrono::format::Item;
use chrono::{DateTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use super::functions::Def;
use super::ExprError;
use crate::convert;
use crate::raw::{self, Located, Slots};
use crate::schema::PropertyType;
use crate::value::{Text, Value};
use crate::Profile;

/// Largest text an expression may build: 1 MiB.
pub const MAX_TEXT_BYTES: usize = 1 << 20;
/// Most elements of an array an expression may build.
pub const MAX_ARRAY_ITEMS: usize = 100_000;
/// Most bytes of text and arrays all the expressions of one row may build, intermediate values included:
/// 16 MiB.
pub const MAX_ROW_BYTES: usize = 16 << 20;

/// What an evaluation reads: the profile and the run's start time; and what it may still build.
pub(crate) struct Cx<'p> {
    pub src: Src<'p>,
    pub now: DateTime<Utc>,
    pub budget: &'p Budget,
}

/// The bytes a row (or, at compile time, an expression's constants) may still build.
pub(crate) struct Budget {
    left: Cell<usize>,
}

impl Budget {
    pub(crate) fn row() -> Self {
        Budget {
            left: Cell::new(MAX_ROW_BYTES),
        }
    }

    fn charge(&self, bytes: usize) -> Result<(), String> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.left.set(0);
                Err(format!(
                    "the row's expressions built more than {MAX_ROW_BYTES} bytes (16 MiB) of text and arrays, \
                     the limit per row"
                ))
            }
        }
    }
}

/// The error for a text over [`MAX_TEXT_BYTES`].
pub(crate) fn text_too_long(bytes: usize) -> String {
    format!(
        "the text would be {bytes} bytes, over the limit of {MAX_TEXT_BYTES} bytes (1 MiB) per text value"
    )
}

/// The error for an array over [`MAX_ARRAY_ITEMS`].
pub(crate) fn array_too_long(items: usize) -> String {
    format!(
        "the array would have {items} elements, over the limit of {MAX_ARRAY_ITEMS} elements per array"
    )
}

impl Cx<'_> {
    /// Checks a value just built against the limits and counts it in the budget.
    pub(crate) fn built(&self, v: &Value) -> Result<(), String> {
        let bytes = match v {
            Value::String(s) => {
                if s.len() > MAX_TEXT_BYTES {
                    return Err(text_too_long(s.len()));
                }
                s.len()
            }
            Value::Array(items) => {
                if items.len() > MAX_ARRAY_ITEMS {
                    return Err(array_too_long(items.len()));
                }
                let text: usize = items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.len(),
                        _ => 0,
                    })
                    .sum();
                items.len() * std::mem::size_of::<Value>() + text
            }
            _ => 0,
        };
        self.budget.charge(bytes)
    }

    /// Counts bytes about to be built (before a function allocates them) in the budget.
    pub(crate) fn reserve(&self, bytes: usize) -> Result<(), String> {
        self.budget.charge(bytes)
    }
}

/// A profile parsed into a map, or a stored document whose slots a [`crate::raw::Locator`] found.
#[derive(Clone, Copy)]
pub(crate) enum Src<'p> {
    Parsed(&'p Profile),
    Located(&'p Located<'p>),
    Row(&'p RowSrc<'p>),
}

/// A row of named values read as a profile whose properties are the columns (see
/// [`super::RowPlan`]): what [`Src::Parsed`] of that profile gives, without building it.
pub(crate) struct RowSrc<'p> {
    pub id: &'p str,
    pub updated_at: DateTime<Utc>,
    pub plan: &'p super::RowPlan,
    pub row: &'p [Value],
}

/// A property's value in either form.
#[derive(Clone, Copy)]
enum Prop<'p> {
    Json(&'p Json),
    Raw(&'p str),
    /// A row's value, standing for its JSON form ([`Value::to_json`]).
    Value(&'p Value),
}

impl<'p> Src<'p> {
    fn id(self) -> &'p str {
        match self {
            Src::Parsed(p) => &p.id,
            Src::Located(l) => &l.profile.id,
            Src::Row(r) => r.id,
        }
    }

    fn updated_at(self) -> DateTime<Utc> {
        match self {
            Src::Parsed(p) => p.updated_at,
            Src::Located(l) => l.profile.updated_at,
            Src::Row(r) => r.updated_at,
        }
    }

    /// The value at a path; `None` when absent or null.
    fn prop(self, segments: &[String], slot: usize) -> Option<Prop<'p>> {
        let (first, rest) = segments.split_first()?;
        let prop = match self {
            Src::Parsed(p) => {
                let mut cur = p.doc.get(first)?;
                for seg in rest {
                    cur = cur.as_object()?.get(seg)?;
                }
                Prop::Json(cur)
            }
            Src::Located(l) => Prop::Raw(l.path(slot, segments)?),
            Src::Row(r) => {
                let (column, rest) = r.plan.slots.get(slot)?.as_ref()?;
                let value = r.row.get(*column)?;
                if rest.is_empty() {
                    Prop::Value(value)
                } else {
                    // Only a JSON value has anything inside it, as in the profile's document.
                    let Value::Json(j) = value else { return None };
                    let mut cur: &Json = j;
                    for seg in rest {
                        cur = cur.as_object()?.get(seg)?;
                    }
                    Prop::Json(cur)
                }
            }
        };
        (!prop.is_null()).then_some(prop)
    }
}

impl<'p> Prop<'p> {
    fn is_null(self) -> bool {
        match self {
            Prop::Json(j) => j.is_null(),
            Prop::Raw(r) => r == "null",
            // What has a null JSON form: a float that is not finite, too.
            Prop::Value(v) => match v {
                Value::Null => true,
                Value::Json(j) => j.is_null(),
                Value::Float(f) => !f.is_finite(),
                _ => false,
            },
        }
    }

    /// The text when the value is a JSON string.
    fn str(self) -> Option<Cow<'p, str>> {
        match self {
            Prop::Json(Json::String(s)) => Some(Cow::Borrowed(s)),
            Prop::Json(_) => None,
            Prop::Raw(r) => raw::string(r),
            Prop::Value(Value::String(s)) => Some(Cow::Borrowed(s)),
            Prop::Value(Value::Json(j)) => j.as_str().map(Cow::Borrowed),
            Prop::Value(v) => match v.to_json() {
                Json::String(s) => Some(Cow::Owned(s)),
                _ => None,
            },
        }
    }

    fn read(self, ty: &PropertyType) -> Value {
        match self {
            Prop::Json(j) => Value::from_json(j, ty),
            Prop::Raw(r) => Value::from_raw(r, ty),
            Prop::Value(v) => Value::from_row_value(v, ty),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Lit(Value),
    Path(PathNode),
    /// Terms written next to each other, and where the first starts (for a limit's error).
    Concat(Box<[Node]>, usize),
    Call(Box<CallNode>),
}

#[derive(Debug, Clone)]
pub(crate) enum PathNode {
    Id,
    UpdatedAt,
    /// A property of the document: its path split once, the Customer Model type its JSON is read as,
    /// and the path's slot (see [`crate::raw`]; set when a mapping is compiled).
    Doc {
        segments: Box<[String]>,
        ty: PropertyType,
        slot: usize,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CallNode {
    pub def: &'static Def,
    pub args: Vec<Node>,
    /// Where the call starts, for run-time error messages.
    pub pos: usize,
    /// The date format argument, parsed at compile time when it is a literal.
    pub format: Option<Vec<Item<'static>>>,
}

/// A function's failure: its own (to be located at the call) or one of an argument (already located).
pub(crate) enum Fail {
    Here(String),
    Arg(ExprError),
}

impl From<ExprError> for Fail {
    fn from(e: ExprError) -> Self {
        Fail::Arg(e)
    }
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Here(s)
    }
}

impl From<&str> for Fail {
    fn from(s: &str) -> Self {
        Fail::Here(s.to_string())
    }
}

pub(crate) type Eval<T> = Result<T, ExprError>;

impl PathNode {
    fn read(&self, src: Src<'_>) -> Value {
        match self {
            PathNode::Id => Value::String(src.id().into()),
            PathNode::UpdatedAt => Value::DateTime(src.updated_at()),
            PathNode::Doc { segments, ty, slot } => match src.prop(segments, *slot) {
                None => Value::Null,
                Some(p) => p.read(ty),
            },
        }
    }

    /// [`Self::read`] into `out`.
    fn read_into(&self, src: Src<'_>, out: &mut Value) {
        match self {
            PathNode::Id => out.set_text(src.id()),
            PathNode::Doc { segments, ty, slot } => match src.prop(segments, *slot) {
                None => out.clear(),
                Some(Prop::Raw(r)) => Value::from_raw_into(r, ty, out),
                Some(p) => *out = p.read(ty),
            },
            PathNode::UpdatedAt => *out = self.read(src),
        }
    }
}

impl Node {
    /// [`Self::eval`] into `out`: plain paths, most of a mapping, are read in place.
    pub(crate) fn eval_into(&self, cx: &Cx<'_>, out: &mut Value) -> Eval<()> {
        match self {
            Node::Path(p) => p.read_into(cx.src, out),
            other => *out = other.eval(cx)?,
        }
        Ok(())
    }

    pub(crate) fn eval(&self, cx: &Cx<'_>) -> Eval<Value> {
        match self {
            Node::Lit(v) => Ok(v.clone()),
            Node::Path(p) => Ok(p.read(cx.src)),
            Node::Concat(parts, pos) => {
                let mut out = Text::default();
                for part in parts.iter() {
                    part.write_text(cx, &mut out, *pos)?;
                }
                let v = Value::String(out);
                cx.built(&v)
                    .map_err(|message| ExprError { pos: *pos, message })?;
                Ok(v)
            }
            Node::Call(call) => call.eval(cx),
        }
    }

    /// Appends the text of the value (nothing for null), as concatenation and `concat` want it; a text
    /// grown over [`MAX_TEXT_BYTES`] is an error at `pos` (each part is itself bounded, so the text never
    /// gets far past the limit).
    pub(crate) fn write_text(&self, cx: &Cx<'_>, out: &mut Text, pos: usize) -> Eval<()> {
        match self {
            Node::Lit(Value::String(s)) => out.push_str(s),
            Node::Path(PathNode::Id) => out.push_str(cx.src.id()),
            // Normalized profile JSON stores strings, decimals, dates, times, datetimes and UUIDs as the very
            // text they convert to, so it can be copied without building a value.
            Node::Path(PathNode::Doc { segments, ty, slot }) => {
                if let Some(p) = cx.src.prop(segments, *slot) {
                    match p.str() {
                        Some(s) => out.push_str(&s),
                        None => push_text(p.read(ty), out),
                    }
                }
            }
            other => {
                let v = other.eval(cx)?;
                push_text(v, out);
            }
        }
        if out.len() > MAX_TEXT_BYTES {
            return Err(ExprError {
                pos,
                message: text_too_long(out.len()),
            });
        }
        Ok(())
    }

    /// The value as text when it is a string, borrowing from the profile or the literal when possible;
    /// `None` for null.
    pub(crate) fn eval_str<'a>(&'a self, cx: &Cx<'a>) -> Eval<Option<Cow<'a, str>>> {
        match self {
            Node::Lit(Value::String(s)) => return Ok(Some(Cow::Borrowed(s))),
            Node::Path(PathNode::Id) => return Ok(Some(Cow::Borrowed(cx.src.id()))),
            Node::Path(PathNode::Doc { segments, slot, .. }) => {
                match cx.src.prop(segments, *slot) {
                    None => return Ok(None),
                    Some(p) => {
                        if let Some(s) = p.str() {
                            return Ok(Some(s));
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(match self.eval(cx)?.unbox_json() {
            Value::Null => None,
            Value::String(s) => Some(Cow::Owned(s.into_string())),
            // The type check lets only strings through; anything else reads as its text.
            other => Some(Cow::Owned(other.to_string())),
        })
    }

    pub(crate) fn as_literal(&self) -> Option<&Value> {
        match self {
            Node::Lit(v) => Some(v),
            _ => None,
        }
    }

    /// Gives each document path the slot of its top-level property.
    pub(crate) fn assign_slots(&mut self, slots: &mut Slots) {
        match self {
            Node::Lit(_) | Node::Path(PathNode::Id | PathNode::UpdatedAt) => {}
            Node::Path(PathNode::Doc { segments, slot, .. }) => *slot = slots.slot(segments),
            Node::Concat(parts, _) => parts.iter_mut().for_each(|p| p.assign_slots(slots)),
            Node::Call(call) => call.args.iter_mut().for_each(|a| a.assign_slots(slots)),
        }
    }

    /// Whether the value depends on the run (calls an impure function such as `now()`), not only on the
    /// profile.
    pub(crate) fn depends_on_run(&self) -> bool {
        match self {
            Node::Lit(_) | Node::Path(_) => false,
            Node::Concat(parts, _) => parts.iter().any(Node::depends_on_run),
            Node::Call(call) => !call.def.pure || call.args.iter().any(Node::depends_on_run),
        }
    }
}

/// The text of a value for concatenation: null is empty, everything else as [`convert::text`] writes it.
pub(crate) fn push_text(v: Value, out: &mut Text) {
    match v {
        Value::Null => {}
        Value::String(s) => out.push_str(&s),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        // The two values `convert::text` refuses still have a readable form inside a longer text.
        Value::Float(f) if !f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::Bytes(b) => out.push_str(&String::from_utf8_lossy(&b)),
        other => out.push_str(&convert::text(other).unwrap_or_default()),
    }
}

impl CallNode {
    pub(crate) fn eval(&self, cx: &Cx<'_>) -> Eval<Value> {
        (self.def.eval)(self, cx)
            .and_then(|v| {
                cx.built(&v)?;
                Ok(v)
            })
            .map_err(|f| match f {
                Fail::Here(message) => ExprError {
                    pos: self.pos,
                    message: format!("{}: {message}", self.def.name),
                },
                Fail::Arg(e) => e,
            })
    }

    pub(crate) fn arg(&self, i: usize, cx: &Cx<'_>) -> Eval<Value> {
        match self.args.get(i) {
            Some(n) => n.eval(cx),
            None => Ok(Value::Null),
        }
    }
}

/// A numeric view of a value, for arithmetic and comparisons across int, decimal and float.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    I(i64),
    D(Decimal),
    F(f64),
}

impl Num {
    pub(crate) fn of(v: &Value) -> Option<Num> {
        match v {
            Value::Int(i) => Some(Num::I(*i)),
            Value::Decimal(d) => Some(Num::D(*d)),
            Value::Float(f) => Some(Num::F(*f)),
            Value::Json(j) if j.is_number() => match convert::lift(Value::Json(j.clone())) {
                Value::Int(i) => Some(Num::I(i)),
                Value::Decimal(d) => Some(Num::D(d)),
                Value::Float(f) => Some(Num::F(f)),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::D(d) => d.to_f64().unwrap_or(f64::NAN),
            Num::F(f) => f,
        }
    }

    pub(crate) fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::I(a), Num::I(b)) => Some(a.cmp(&b)),
            (Num::I(a), Num::D(b)) => Some(Decimal::from(a).cmp(&b)),
            (Num::D(a), Num::I(b)) => Some(a.cmp(&Decimal::from(b))),
            (Num::D(a), Num::D(b)) => Some(a.cmp(&b)),
            (a, b) => a.f64().partial_cmp(&b.f64()),
        }
    }
}

/// JSON scalars compare like the typed values they hold.
fn lifted(v: &Value) -> Cow<'_, Value> {
    match v {
        Value::Json(j) if !j.is_array() && !j.is_object() => Cow::Owned(convert::lift(v.clone())),
        other => Cow::Borrowed(other),
    }
}

/// Equality for `eq`, `ne`, `nullif` and `contains`: numbers compare by value across int, decimal and float;
/// text compares with a UUID through the UUID it spells; null equals only null.
pub(crate) fn equal(a: &Value, b: &Value) -> bool {
    let (a, b) = (lifted(a), lifted(b));
    match (a.as_ref(), b.as_ref()) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::String(s), Value::Uuid(u)) | (Value::Uuid(u), Value::String(s)) => {
            uuid::Uuid::parse_str(s.trim()).is_ok_and(|x| x == *u)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Array(x), Value::Json(y)) | (Value::Json(y), Value::Array(x)) if y.is_array() => {
            let y = y.as_array().expect("an array");
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(p, q)| equal(p, &Value::json(q.clone())))
        }
        (x, y) => match (Num::of(x), Num::of(y)) {
            (Some(p), Some(q)) => p.cmp(q) == Some(Ordering::Equal),
            _ => x == y,
        },
    }
}

/// Ordering for `lt`, `le`, `gt`, `ge`; `None` when either side is null or the two do not compare.
pub(crate) fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    let (a, b) = (lifted(a), lifted(b));
    match (a.as_ref(), b.as_ref()) {
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        (Value::Time(x), Value::Time(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Uuid(x), Value::Uuid(y)) => Some(x.cmp(y)),
        (x, y) => Num::of(x)?.cmp(Num::of(y)?),
    }
}
