//! The compiled form of an expression and its evaluation.
//!
//! Compilation resolves everything that does not depend on the profile — property paths to their segments
//! and types, function names to their implementations, constant sub-expressions to values, literal date
//! formats to parsed items — so evaluating a profile only walks a small tree. Text is borrowed from the
//! profile wherever a function only reads it (`lower(email)` allocates once, for its result).

use std::borrow::Cow;
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

/// What an evaluation reads: the profile and the run's start time.
pub(crate) struct Cx<'p> {
    pub src: Src<'p>,
    pub now: DateTime<Utc>,
}

/// A profile parsed into a map, or a stored document whose slots a [`crate::raw::Locator`] found.
#[derive(Clone, Copy)]
pub(crate) enum Src<'p> {
    Parsed(&'p Profile),
    Located(&'p Located<'p>),
}

/// A property's value in either form.
#[derive(Clone, Copy)]
enum Prop<'p> {
    Json(&'p Json),
    Raw(&'p str),
}

impl<'p> Src<'p> {
    fn id(self) -> &'p str {
        match self {
            Src::Parsed(p) => &p.id,
            Src::Located(l) => &l.profile.id,
        }
    }

    fn updated_at(self) -> DateTime<Utc> {
        match self {
            Src::Parsed(p) => p.updated_at,
            Src::Located(l) => l.profile.updated_at,
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
        };
        (!prop.is_null()).then_some(prop)
    }
}

impl<'p> Prop<'p> {
    fn is_null(self) -> bool {
        match self {
            Prop::Json(j) => j.is_null(),
            Prop::Raw(r) => r == "null",
        }
    }

    /// The text when the value is a JSON string.
    fn str(self) -> Option<Cow<'p, str>> {
        match self {
            Prop::Json(Json::String(s)) => Some(Cow::Borrowed(s)),
            Prop::Json(_) => None,
            Prop::Raw(r) => raw::string(r),
        }
    }

    fn read(self, ty: &PropertyType) -> Value {
        match self {
            Prop::Json(j) => Value::from_json(j, ty),
            Prop::Raw(r) => Value::from_raw(r, ty),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Lit(Value),
    Path(PathNode),
    Concat(Box<[Node]>),
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
            Node::Concat(parts) => {
                let mut out = Text::default();
                for part in parts.iter() {
                    part.write_text(cx, &mut out)?;
                }
                Ok(Value::String(out))
            }
            Node::Call(call) => call.eval(cx),
        }
    }

    /// Appends the text of the value (nothing for null), as concatenation and `concat` want it.
    pub(crate) fn write_text(&self, cx: &Cx<'_>, out: &mut Text) -> Eval<()> {
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
            Node::Concat(parts) => parts.iter_mut().for_each(|p| p.assign_slots(slots)),
            Node::Call(call) => call.args.iter_mut().for_each(|a| a.assign_slots(slots)),
        }
    }

    /// Whether the value depends on the run (calls an impure function such as `now()`), not only on the
    /// profile.
    pub(crate) fn depends_on_run(&self) -> bool {
        match self {
            Node::Lit(_) | Node::Path(_) => false,
            Node::Concat(parts) => parts.iter().any(Node::depends_on_run),
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
        (self.def.eval)(self, cx).map_err(|f| match f {
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
