//! The built-in functions: each with its signature and description (for the UI), a static type check and
//! an implementation over compiled arguments.
//!
//! Implementations receive their arguments unevaluated, so `if`, `coalesce`, `and` and `or` evaluate only
//! what they need, and text functions can borrow their input from the profile.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::fmt::Write as _;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{DateTime, NaiveTime, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value as Json;

use super::eval::{
    array_too_long, compare, equal, push_text, text_too_long, CallNode, Cx, Fail, Num,
    MAX_ARRAY_ITEMS, MAX_TEXT_BYTES,
};
use super::{ExprError, Type};
use crate::convert;
use crate::value::{Text, Value};

pub(crate) type CheckFn = fn(&mut Args<'_>) -> Type;
pub(crate) type EvalFn = fn(&CallNode, &Cx<'_>) -> Result<Value, Fail>;

/// A built-in function.
pub(crate) struct Def {
    pub name: &'static str,
    pub signature: &'static str,
    pub description: &'static str,
    pub category: &'static str,
    pub min: usize,
    /// `None`: any number of arguments from `min` on.
    pub max: Option<usize>,
    /// Whether the result depends only on the arguments (so calls on literals fold at compile time).
    pub pure: bool,
    /// The argument that is a date format, parsed once at compile time when it is a literal.
    pub format_arg: Option<usize>,
    pub check: CheckFn,
    pub eval: EvalFn,
}

impl fmt::Debug for Def {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Def {
    /// "1 argument", "2 or 3 arguments", "at least 1 argument".
    pub(crate) fn arity(&self) -> String {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self.max {
            Some(max) if max == self.min => format!("{} {}", max, plural(max)),
            Some(max) if max == self.min + 1 => format!("{} or {} arguments", self.min, max),
            Some(max) => format!("{} to {} arguments", self.min, max),
            None => format!("at least {} {}", self.min, plural(self.min)),
        }
    }
}

pub(crate) fn lookup(name: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.name.eq_ignore_ascii_case(name))
}

/// The argument types of a call being checked, and where to report problems.
pub(crate) struct Args<'a> {
    pub name: &'static str,
    pub types: &'a [Type],
    pub positions: &'a [usize],
    pub errors: &'a mut Vec<ExprError>,
}

impl Args<'_> {
    fn ty(&self, i: usize) -> &Type {
        self.types.get(i).unwrap_or(&Type::Any)
    }

    fn error(&mut self, i: usize, message: String) {
        let pos = self.positions.get(i).copied().unwrap_or(1);
        self.errors.push(ExprError { pos, message });
    }

    /// Checks argument `i` (when present) against `ok`, which sees only types other than null and any.
    fn want(&mut self, i: usize, ok: fn(&Type) -> bool, what: &str) -> bool {
        let Some(ty) = self.types.get(i) else {
            return true;
        };
        if matches!(ty, Type::Null | Type::Any) || ok(ty) {
            return true;
        }
        let hint = hint(what, ty);
        let message = format!(
            "`{}` expects {what} as argument {}, got {ty}{hint}",
            self.name,
            i + 1
        );
        self.error(i, message);
        false
    }

    fn string(&mut self, i: usize) -> bool {
        self.want(i, |t| *t == Type::String, "a string")
    }

    fn int(&mut self, i: usize) -> bool {
        self.want(i, |t| *t == Type::Int, "an int")
    }

    fn number(&mut self, i: usize) -> bool {
        self.want(i, Type::is_numeric, "a number")
    }

    fn boolean(&mut self, i: usize) -> bool {
        self.want(i, |t| *t == Type::Boolean, "a boolean")
    }
}

/// What to suggest when an argument has the wrong type.
fn hint(what: &str, got: &Type) -> &'static str {
    match (what, got) {
        ("a string", Type::Array(_)) => "; join its elements with join(…, \", \")",
        ("a string", Type::Object) => {
            "; pick one of its properties with a path such as `address.city`"
        }
        ("a string", _) => "; convert it with to_string(…)",
        ("an int", Type::String | Type::Float | Type::Decimal | Type::Json) => {
            "; convert it with to_int(…)"
        }
        ("a number", Type::String | Type::Json) => "; convert it with to_decimal(…) or to_int(…)",
        ("a boolean", Type::String | Type::Int | Type::Json) => {
            "; convert it with to_bool(…) or compare it with eq(…)"
        }
        ("a datetime or a date", Type::String | Type::Json) => {
            "; convert it with to_datetime(…) or to_date(…)"
        }
        _ => "",
    }
}

// ---- type checks ----------------------------------------------------------------------------------------

fn check_text(a: &mut Args<'_>) -> Type {
    a.string(0);
    Type::String
}

fn check_substring(a: &mut Args<'_>) -> Type {
    a.string(0);
    a.int(1);
    a.int(2);
    Type::String
}

fn check_text_int(a: &mut Args<'_>) -> Type {
    a.string(0);
    a.int(1);
    Type::String
}

fn check_len(a: &mut Args<'_>) -> Type {
    a.want(
        0,
        |t| matches!(t, Type::String | Type::Array(_) | Type::Json | Type::Object),
        "a string, an array or JSON",
    );
    Type::Int
}

fn check_any_to_text(_: &mut Args<'_>) -> Type {
    Type::String
}

fn check_replace(a: &mut Args<'_>) -> Type {
    for i in 0..3 {
        a.string(i);
    }
    Type::String
}

fn check_split(a: &mut Args<'_>) -> Type {
    a.string(0);
    a.string(1);
    Type::Array(Box::new(Type::String))
}

fn check_join(a: &mut Args<'_>) -> Type {
    a.want(0, |t| matches!(t, Type::Array(_) | Type::Json), "an array");
    a.string(1);
    Type::String
}

fn check_text_predicate(a: &mut Args<'_>) -> Type {
    a.string(0);
    a.string(1);
    Type::Boolean
}

fn check_contains(a: &mut Args<'_>) -> Type {
    match a.ty(0).clone() {
        Type::String => {
            a.string(1);
        }
        Type::Array(inner) => {
            let needle = a.ty(1).clone();
            if !comparable(&inner, &needle) {
                let message = format!("`contains` cannot look for {needle} in an array({inner})");
                a.error(1, message);
            }
        }
        _ => {
            a.want(0, |t| matches!(t, Type::Json), "a string, an array or JSON");
        }
    }
    Type::Boolean
}

fn check_coalesce(a: &mut Args<'_>) -> Type {
    unify_args(a, 0)
}

/// The common type of the arguments from `first` on, reporting the first that does not fit.
fn unify_args(a: &mut Args<'_>, first: usize) -> Type {
    let mut ty = Type::Null;
    for i in first..a.types.len() {
        let next = a.ty(i).clone();
        match ty.unify(&next) {
            Some(t) => ty = t,
            None => {
                let message = format!(
                    "`{}` needs arguments of one type, but argument {} is {next} where the earlier ones are {ty}; \
                     convert them, e.g. with to_string(…)",
                    a.name,
                    i + 1
                );
                a.error(i, message);
                return Type::Any;
            }
        }
    }
    ty
}

fn check_if(a: &mut Args<'_>) -> Type {
    a.boolean(0);
    unify_args(a, 1)
}

fn check_nullif(a: &mut Args<'_>) -> Type {
    check_comparable(a);
    a.ty(0).clone()
}

fn check_test(_: &mut Args<'_>) -> Type {
    Type::Boolean
}

/// Whether `eq` may compare values of the two types.
pub(crate) fn comparable(a: &Type, b: &Type) -> bool {
    match (a, b) {
        (Type::Null | Type::Any | Type::Json, _) | (_, Type::Null | Type::Any | Type::Json) => true,
        (x, y) if x.is_numeric() && y.is_numeric() => true,
        (Type::String, Type::Uuid) | (Type::Uuid, Type::String) => true,
        (Type::Array(x), Type::Array(y)) => comparable(x, y),
        (x, y) => x == y,
    }
}

fn ordered(a: &Type, b: &Type) -> bool {
    let orderable = |t: &Type| {
        t.is_numeric()
            || matches!(
                t,
                Type::String
                    | Type::Date
                    | Type::DateTime
                    | Type::Time
                    | Type::Boolean
                    | Type::Uuid
            )
    };
    match (a, b) {
        (Type::Null | Type::Any, _) | (_, Type::Null | Type::Any) => true,
        (Type::Json, t) | (t, Type::Json) => orderable(t) || *t == Type::Json,
        (x, y) if x.is_numeric() && y.is_numeric() => true,
        (x, y) => x == y && orderable(x),
    }
}

fn check_comparable(a: &mut Args<'_>) -> Type {
    let (x, y) = (a.ty(0).clone(), a.ty(1).clone());
    if !comparable(&x, &y) {
        let message = format!("`{}` cannot compare {x} with {y}", a.name);
        a.error(1, message);
    }
    Type::Boolean
}

fn check_ordered(a: &mut Args<'_>) -> Type {
    let (x, y) = (a.ty(0).clone(), a.ty(1).clone());
    if !ordered(&x, &y) {
        let message = if x == y {
            format!("`{}` cannot order values of type {x}", a.name)
        } else {
            format!("`{}` cannot compare {x} with {y}", a.name)
        };
        a.error(1, message);
    }
    Type::Boolean
}

fn check_logic(a: &mut Args<'_>) -> Type {
    for i in 0..a.types.len() {
        a.boolean(i);
    }
    Type::Boolean
}

fn check_arith(a: &mut Args<'_>) -> Type {
    let ok = a.number(0) & a.number(1);
    if !ok {
        return Type::Any;
    }
    match (a.ty(0), a.ty(1)) {
        (Type::Float, _) | (_, Type::Float) => Type::Float,
        (Type::Decimal, _) | (_, Type::Decimal) => Type::Decimal,
        (Type::Int, _) | (_, Type::Int) => Type::Int,
        _ => Type::Any,
    }
}

fn check_div(a: &mut Args<'_>) -> Type {
    let ok = a.number(0) & a.number(1);
    match (a.ty(0), a.ty(1)) {
        _ if !ok => Type::Any,
        (Type::Float, _) | (_, Type::Float) => Type::Float,
        _ => Type::Decimal,
    }
}

fn check_round(a: &mut Args<'_>) -> Type {
    a.number(0);
    a.int(1);
    a.ty(0).clone()
}

fn check_abs(a: &mut Args<'_>) -> Type {
    a.number(0);
    a.ty(0).clone()
}

fn check_to_int(a: &mut Args<'_>) -> Type {
    a.want(
        0,
        |t| t.is_numeric() || matches!(t, Type::String | Type::Boolean | Type::Json),
        "a string, a number or a boolean",
    );
    Type::Int
}

fn check_to_number(a: &mut Args<'_>, ty: Type) -> Type {
    a.want(
        0,
        |t| t.is_numeric() || matches!(t, Type::String | Type::Json),
        "a string or a number",
    );
    ty
}

fn check_to_float(a: &mut Args<'_>) -> Type {
    check_to_number(a, Type::Float)
}

fn check_to_decimal(a: &mut Args<'_>) -> Type {
    check_to_number(a, Type::Decimal)
}

fn check_to_bool(a: &mut Args<'_>) -> Type {
    a.want(
        0,
        |t| matches!(t, Type::String | Type::Int | Type::Boolean | Type::Json),
        "a string, an int or a boolean",
    );
    Type::Boolean
}

fn check_to_date(a: &mut Args<'_>) -> Type {
    a.want(
        0,
        |t| matches!(t, Type::String | Type::Date | Type::DateTime | Type::Json),
        "a string, a date or a datetime",
    );
    a.string(1);
    Type::Date
}

fn check_to_datetime(a: &mut Args<'_>) -> Type {
    a.want(
        0,
        |t| {
            matches!(
                t,
                Type::String | Type::Date | Type::DateTime | Type::Int | Type::Json
            )
        },
        "a string, a date, a datetime or an int",
    );
    a.string(1);
    Type::DateTime
}

fn check_json_parse(a: &mut Args<'_>) -> Type {
    a.string(0);
    Type::Json
}

fn check_to_json(_: &mut Args<'_>) -> Type {
    Type::Json
}

fn check_now(_: &mut Args<'_>) -> Type {
    Type::DateTime
}

fn check_format_datetime(a: &mut Args<'_>) -> Type {
    a.want(
        0,
        |t| matches!(t, Type::DateTime | Type::Date),
        "a datetime or a date",
    );
    a.string(1);
    Type::String
}

fn check_at(a: &mut Args<'_>) -> Type {
    a.want(0, |t| matches!(t, Type::Array(_) | Type::Json), "an array");
    a.int(1);
    match a.ty(0) {
        Type::Array(inner) => (**inner).clone(),
        Type::Json => Type::Json,
        _ => Type::Any,
    }
}

// ---- implementations ------------------------------------------------------------------------------------

type Out = Result<Value, Fail>;

/// Applies `f` to the text of argument 0; null gives null.
fn map_text(c: &CallNode, cx: &Cx<'_>, f: impl FnOnce(&str) -> String) -> Out {
    Ok(match c.args[0].eval_str(cx)? {
        None => Value::Null,
        Some(s) => Value::String(f(&s).into()),
    })
}

/// Like [`map_text`] for functions that return a slice of their input: owned input is reused when the
/// slice is all of it.
fn slice_text(c: &CallNode, cx: &Cx<'_>, f: impl Fn(&str) -> &str) -> Out {
    Ok(match c.args[0].eval_str(cx)? {
        None => Value::Null,
        Some(Cow::Borrowed(s)) => Value::String(f(s).into()),
        Some(Cow::Owned(s)) => {
            let cut = f(&s);
            if cut.len() == s.len() {
                Value::String(s.into())
            } else {
                Value::String(cut.into())
            }
        }
    })
}

fn int_arg(c: &CallNode, i: usize, cx: &Cx<'_>) -> Result<Option<i64>, Fail> {
    match c.arg(i, cx)? {
        Value::Null => Ok(None),
        v => Ok(Some(convert::int(v)?)),
    }
}

fn bool_of(v: Value) -> Result<Option<bool>, Fail> {
    match convert::lift(v) {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(b)),
        other => Err(Fail::Here(format!(
            "expects a boolean, got {}",
            other.kind()
        ))),
    }
}

fn eval_lower(c: &CallNode, cx: &Cx<'_>) -> Out {
    map_text(c, cx, str::to_lowercase)
}

fn eval_upper(c: &CallNode, cx: &Cx<'_>) -> Out {
    map_text(c, cx, str::to_uppercase)
}

fn eval_trim(c: &CallNode, cx: &Cx<'_>) -> Out {
    slice_text(c, cx, str::trim)
}

fn eval_ltrim(c: &CallNode, cx: &Cx<'_>) -> Out {
    slice_text(c, cx, str::trim_start)
}

fn eval_rtrim(c: &CallNode, cx: &Cx<'_>) -> Out {
    slice_text(c, cx, str::trim_end)
}

/// Upper-cases the first letter of each word and lower-cases the rest; a word is a run of letters and
/// digits, so `o'neil-smith` becomes `O'Neil-Smith`.
pub(crate) fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for ch in s.chars() {
        if ch.is_alphanumeric() {
            if at_start {
                out.extend(ch.to_uppercase());
            } else {
                out.extend(ch.to_lowercase());
            }
            at_start = false;
        } else {
            out.push(ch);
            at_start = true;
        }
    }
    out
}

fn eval_initcap(c: &CallNode, cx: &Cx<'_>) -> Out {
    map_text(c, cx, initcap)
}

/// 1-based, in characters; a negative start counts from the end; a start before the text clips to it.
pub(crate) fn substring(s: &str, start: i64, len: Option<i64>) -> Result<String, String> {
    if let Some(l) = len {
        if l < 0 {
            return Err("the length must not be negative".into());
        }
    }
    let skip = if start > 0 {
        (start - 1) as usize
    } else if start < 0 {
        let n = s.chars().count() as i64;
        (n + start).max(0) as usize
    } else {
        0
    };
    let take = len.map_or(usize::MAX, |l| l as usize);
    Ok(s.chars().skip(skip).take(take).collect())
}

fn eval_substring(c: &CallNode, cx: &Cx<'_>) -> Out {
    let Some(s) = c.args[0].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    let Some(start) = int_arg(c, 1, cx)? else {
        return Ok(Value::Null);
    };
    let len = if c.args.len() > 2 {
        match int_arg(c, 2, cx)? {
            None => return Ok(Value::Null),
            some => some,
        }
    } else {
        None
    };
    Ok(Value::String(substring(&s, start, len)?.into()))
}

/// The first `n` characters; a negative `n` drops that many from the end.
pub(crate) fn left(s: &str, n: i64) -> String {
    if n >= 0 {
        s.chars().take(n as usize).collect()
    } else {
        let count = s.chars().count();
        s.chars()
            .take(count.saturating_sub(n.unsigned_abs() as usize))
            .collect()
    }
}

/// The last `n` characters; a negative `n` drops that many from the start.
pub(crate) fn right(s: &str, n: i64) -> String {
    if n >= 0 {
        let count = s.chars().count();
        s.chars().skip(count.saturating_sub(n as usize)).collect()
    } else {
        s.chars().skip(n.unsigned_abs() as usize).collect()
    }
}

fn eval_left(c: &CallNode, cx: &Cx<'_>) -> Out {
    let Some(s) = c.args[0].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    let Some(n) = int_arg(c, 1, cx)? else {
        return Ok(Value::Null);
    };
    Ok(Value::String(left(&s, n).into()))
}

fn eval_right(c: &CallNode, cx: &Cx<'_>) -> Out {
    let Some(s) = c.args[0].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    let Some(n) = int_arg(c, 1, cx)? else {
        return Ok(Value::Null);
    };
    Ok(Value::String(right(&s, n).into()))
}

fn eval_len(c: &CallNode, cx: &Cx<'_>) -> Out {
    let n = match c.arg(0, cx)?.unbox_json() {
        Value::Null => return Ok(Value::Null),
        Value::String(s) => s.chars().count(),
        Value::Array(items) => items.len(),
        Value::Json(j) if j.is_array() || j.is_object() => match &*j {
            Json::Array(items) => items.len(),
            Json::Object(map) => map.len(),
            _ => unreachable!("an array or an object"),
        },
        other => {
            let kind = match &other {
                Value::Json(j) if j.is_number() => "a JSON number",
                Value::Json(j) if j.is_boolean() => "a JSON boolean",
                v => v.kind(),
            };
            return Err(Fail::Here(format!(
                "expects text, an array or an object, got {kind}"
            )));
        }
    };
    Ok(Value::Int(n as i64))
}

fn eval_concat(c: &CallNode, cx: &Cx<'_>) -> Out {
    let mut out = Text::default();
    for arg in &c.args {
        arg.write_text(cx, &mut out, c.pos)?;
    }
    Ok(Value::String(out))
}

fn eval_replace(c: &CallNode, cx: &Cx<'_>) -> Out {
    let Some(s) = c.args[0].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    let from = c.args[1].eval_str(cx)?.unwrap_or_default();
    if from.is_empty() {
        return Ok(Value::String(s.into_owned().into()));
    }
    let to = c.args[2].eval_str(cx)?.unwrap_or_default();
    // The result's size is known before it is built: each level of a nested replace may double it.
    if to.len() > from.len() {
        let n = s.matches(from.as_ref()).count();
        let bytes = s
            .len()
            .saturating_add(n.saturating_mul(to.len() - from.len()));
        if bytes > MAX_TEXT_BYTES {
            return Err(Fail::Here(text_too_long(bytes)));
        }
    }
    Ok(Value::String(s.replace(from.as_ref(), &to).into()))
}

fn eval_split(c: &CallNode, cx: &Cx<'_>) -> Out {
    let Some(s) = c.args[0].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    let sep = c.args[1].eval_str(cx)?.unwrap_or_default();
    let n = if sep.is_empty() {
        s.chars().count()
    } else {
        s.matches(sep.as_ref()).count() + 1
    };
    if n > MAX_ARRAY_ITEMS {
        return Err(Fail::Here(array_too_long(n)));
    }
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars()
            .map(|ch| Value::String(ch.to_string().into()))
            .collect()
    } else {
        s.split(sep.as_ref())
            .map(|p| Value::String(p.into()))
            .collect()
    };
    Ok(Value::Array(parts))
}

fn eval_join(c: &CallNode, cx: &Cx<'_>) -> Out {
    let items: Vec<Value> = match c.arg(0, cx)?.unbox_json() {
        Value::Null => return Ok(Value::Null),
        Value::Array(items) => items,
        Value::Json(j) if j.is_array() => match *j {
            Json::Array(items) => items
                .into_iter()
                .map(|j| convert::lift(Value::json(j)))
                .collect(),
            _ => unreachable!("an array"),
        },
        other => {
            return Err(Fail::Here(format!(
                "expects an array, got {}",
                other.kind()
            )))
        }
    };
    let sep = c.args[1].eval_str(cx)?.unwrap_or_default();
    let mut out = Text::default();
    let mut first = true;
    for item in items.into_iter().filter(|v| !v.is_null()) {
        if !first {
            out.push_str(&sep);
        }
        first = false;
        push_text(item, &mut out);
        if out.len() > MAX_TEXT_BYTES {
            return Err(Fail::Here(text_too_long(out.len())));
        }
    }
    Ok(Value::String(out))
}

fn eval_contains(c: &CallNode, cx: &Cx<'_>) -> Out {
    let hay = c.arg(0, cx)?;
    if hay.is_null() {
        return Ok(Value::Null);
    }
    let needle = c.arg(1, cx)?;
    let text_needle = |needle: &Value| match convert::lift(needle.clone()) {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(Fail::Here(format!(
            "cannot look for {} in text",
            other.kind()
        ))),
    };
    let found = match hay.unbox_json() {
        Value::String(s) => match text_needle(&needle)? {
            None => return Ok(Value::Null),
            Some(n) => s.contains(n.as_str()),
        },
        Value::Array(items) => items.iter().any(|x| equal(x, &needle)),
        Value::Json(j) if j.is_array() => j
            .as_array()
            .expect("an array")
            .iter()
            .any(|x| equal(&Value::json(x.clone()), &needle)),
        Value::Json(j) if j.is_object() => match text_needle(&needle)? {
            None => return Ok(Value::Null),
            Some(n) => j.as_object().expect("an object").contains_key(n.as_str()),
        },
        other => {
            return Err(Fail::Here(format!(
                "expects text, an array or an object, got {}",
                other.kind()
            )))
        }
    };
    Ok(Value::Bool(found))
}

fn text_pair(c: &CallNode, cx: &Cx<'_>, f: fn(&str, &str) -> bool) -> Out {
    let Some(a) = c.args[0].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    let Some(b) = c.args[1].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    Ok(Value::Bool(f(&a, &b)))
}

fn eval_starts_with(c: &CallNode, cx: &Cx<'_>) -> Out {
    text_pair(c, cx, |a, b| a.starts_with(b))
}

fn eval_ends_with(c: &CallNode, cx: &Cx<'_>) -> Out {
    text_pair(c, cx, |a, b| a.ends_with(b))
}

fn eval_coalesce(c: &CallNode, cx: &Cx<'_>) -> Out {
    for arg in &c.args {
        let v = arg.eval(cx)?;
        if !v.is_null() {
            return Ok(v);
        }
    }
    Ok(Value::Null)
}

fn eval_if(c: &CallNode, cx: &Cx<'_>) -> Out {
    let branch = if bool_of(c.arg(0, cx)?)? == Some(true) {
        1
    } else {
        2
    };
    Ok(c.arg(branch, cx)?)
}

fn eval_nullif(c: &CallNode, cx: &Cx<'_>) -> Out {
    let a = c.arg(0, cx)?;
    if a.is_null() || equal(&a, &c.arg(1, cx)?) {
        return Ok(Value::Null);
    }
    Ok(a)
}

fn eval_is_null(c: &CallNode, cx: &Cx<'_>) -> Out {
    Ok(Value::Bool(matches!(
        c.arg(0, cx)?.unbox_json(),
        Value::Null
    )))
}

fn eval_is_empty(c: &CallNode, cx: &Cx<'_>) -> Out {
    let empty = match c.arg(0, cx)? {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::Json(j) => match *j {
            Json::Null => true,
            Json::String(s) => s.is_empty(),
            Json::Array(items) => items.is_empty(),
            Json::Object(map) => map.is_empty(),
            _ => false,
        },
        _ => false,
    };
    Ok(Value::Bool(empty))
}

fn eval_eq(c: &CallNode, cx: &Cx<'_>) -> Out {
    Ok(Value::Bool(equal(&c.arg(0, cx)?, &c.arg(1, cx)?)))
}

fn eval_ne(c: &CallNode, cx: &Cx<'_>) -> Out {
    Ok(Value::Bool(!equal(&c.arg(0, cx)?, &c.arg(1, cx)?)))
}

fn order(c: &CallNode, cx: &Cx<'_>, test: fn(Ordering) -> bool) -> Out {
    let a = c.arg(0, cx)?;
    if a.is_null() {
        return Ok(Value::Null);
    }
    let b = c.arg(1, cx)?;
    Ok(compare(&a, &b).map_or(Value::Null, |o| Value::Bool(test(o))))
}

fn eval_lt(c: &CallNode, cx: &Cx<'_>) -> Out {
    order(c, cx, Ordering::is_lt)
}

fn eval_le(c: &CallNode, cx: &Cx<'_>) -> Out {
    order(c, cx, Ordering::is_le)
}

fn eval_gt(c: &CallNode, cx: &Cx<'_>) -> Out {
    order(c, cx, Ordering::is_gt)
}

fn eval_ge(c: &CallNode, cx: &Cx<'_>) -> Out {
    order(c, cx, Ordering::is_ge)
}

/// Three-valued `and`/`or`: `decisive` settles the result at once; otherwise a null makes it null.
fn logic(c: &CallNode, cx: &Cx<'_>, decisive: bool) -> Out {
    let mut saw_null = false;
    for arg in &c.args {
        match bool_of(arg.eval(cx)?)? {
            Some(b) if b == decisive => return Ok(Value::Bool(decisive)),
            Some(_) => {}
            None => saw_null = true,
        }
    }
    Ok(if saw_null {
        Value::Null
    } else {
        Value::Bool(!decisive)
    })
}

fn eval_and(c: &CallNode, cx: &Cx<'_>) -> Out {
    logic(c, cx, false)
}

fn eval_or(c: &CallNode, cx: &Cx<'_>) -> Out {
    logic(c, cx, true)
}

fn eval_not(c: &CallNode, cx: &Cx<'_>) -> Out {
    Ok(bool_of(c.arg(0, cx)?)?.map_or(Value::Null, |b| Value::Bool(!b)))
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

fn number_of(v: &Value) -> Result<Num, Fail> {
    Num::of(v).ok_or_else(|| Fail::Here(format!("expects numbers, got {}", v.kind())))
}

fn finite(f: f64) -> Result<Value, Fail> {
    if f.is_finite() {
        Ok(Value::Float(f))
    } else {
        Err("the result is not a finite number".into())
    }
}

fn arith(c: &CallNode, cx: &Cx<'_>, op: Op) -> Out {
    let a = c.arg(0, cx)?;
    let b = c.arg(1, cx)?;
    if a.is_null() || b.is_null() {
        return Ok(Value::Null);
    }
    let (x, y) = (number_of(&a)?, number_of(&b)?);
    let overflow = || Fail::Here("the result is out of range".into());
    match (x, y, op) {
        (Num::F(_), _, _) | (_, Num::F(_), _) => {
            let (p, q) = (x.f64(), y.f64());
            match op {
                Op::Add => finite(p + q),
                Op::Sub => finite(p - q),
                Op::Mul => finite(p * q),
                Op::Div if q == 0.0 => Err("division by zero".into()),
                Op::Div => finite(p / q),
            }
        }
        (Num::I(p), Num::I(q), Op::Add) => p.checked_add(q).map(Value::Int).ok_or_else(overflow),
        (Num::I(p), Num::I(q), Op::Sub) => p.checked_sub(q).map(Value::Int).ok_or_else(overflow),
        (Num::I(p), Num::I(q), Op::Mul) => p.checked_mul(q).map(Value::Int).ok_or_else(overflow),
        _ => {
            let to_dec = |n: Num| match n {
                Num::I(i) => Decimal::from(i),
                Num::D(d) => d,
                Num::F(_) => unreachable!("floats are handled above"),
            };
            let (p, q) = (to_dec(x), to_dec(y));
            let r = match op {
                Op::Add => p.checked_add(q),
                Op::Sub => p.checked_sub(q),
                Op::Mul => p.checked_mul(q),
                Op::Div if q.is_zero() => return Err("division by zero".into()),
                Op::Div => p.checked_div(q).map(|d| d.normalize()),
            };
            r.map(Value::Decimal).ok_or_else(overflow)
        }
    }
}

fn eval_add(c: &CallNode, cx: &Cx<'_>) -> Out {
    arith(c, cx, Op::Add)
}

fn eval_sub(c: &CallNode, cx: &Cx<'_>) -> Out {
    arith(c, cx, Op::Sub)
}

fn eval_mul(c: &CallNode, cx: &Cx<'_>) -> Out {
    arith(c, cx, Op::Mul)
}

fn eval_div(c: &CallNode, cx: &Cx<'_>) -> Out {
    arith(c, cx, Op::Div)
}

fn eval_round(c: &CallNode, cx: &Cx<'_>) -> Out {
    let v = c.arg(0, cx)?;
    if v.is_null() {
        return Ok(Value::Null);
    }
    let digits = if c.args.len() > 1 {
        match int_arg(c, 1, cx)? {
            None => return Ok(Value::Null),
            Some(d) if (0..=28).contains(&d) => d as u32,
            Some(_) => return Err("the number of digits must be between 0 and 28".into()),
        }
    } else {
        0
    };
    let round =
        |d: Decimal| d.round_dp_with_strategy(digits, RoundingStrategy::MidpointAwayFromZero);
    Ok(match number_of(&v)? {
        Num::I(i) => Value::Int(i),
        Num::D(d) => Value::Decimal(round(d)),
        // Rounding the shortest decimal text rounds what the user sees (1.005 → 1.01), not the binary
        // fraction just below it; floats beyond the decimal range have no fractional digits anyway.
        Num::F(f) => match convert::decimal(Value::Float(f)) {
            Ok(d) => Value::Float(round(d).to_f64().unwrap_or(f)),
            Err(_) => Value::Float(f),
        },
    })
}

fn eval_abs(c: &CallNode, cx: &Cx<'_>) -> Out {
    let v = c.arg(0, cx)?;
    if v.is_null() {
        return Ok(Value::Null);
    }
    match number_of(&v)? {
        Num::I(i) => i
            .checked_abs()
            .map(Value::Int)
            .ok_or_else(|| "the result is out of range".into()),
        Num::D(d) => Ok(Value::Decimal(d.abs())),
        Num::F(f) => Ok(Value::Float(f.abs())),
    }
}

/// Runs a [`convert`] function on a non-null argument 0.
fn convert_arg<T>(
    c: &CallNode,
    cx: &Cx<'_>,
    f: fn(Value) -> Result<T, String>,
    wrap: fn(T) -> Value,
) -> Out {
    match c.arg(0, cx)? {
        Value::Null => Ok(Value::Null),
        Value::Json(j) if j.is_null() => Ok(Value::Null),
        v => Ok(wrap(f(v)?)),
    }
}

fn eval_to_string(c: &CallNode, cx: &Cx<'_>) -> Out {
    convert_arg(c, cx, convert::text, Value::String)
}

fn eval_to_int(c: &CallNode, cx: &Cx<'_>) -> Out {
    // An explicit conversion may turn a boolean into 1/0, which writing to an integer column refuses.
    convert_arg(
        c,
        cx,
        |v| match convert::lift(v) {
            Value::Bool(b) => Ok(b as i64),
            other => convert::int(other),
        },
        Value::Int,
    )
}

fn eval_to_float(c: &CallNode, cx: &Cx<'_>) -> Out {
    convert_arg(c, cx, convert::float, Value::Float)
}

fn eval_to_decimal(c: &CallNode, cx: &Cx<'_>) -> Out {
    convert_arg(c, cx, convert::decimal, Value::Decimal)
}

fn eval_to_bool(c: &CallNode, cx: &Cx<'_>) -> Out {
    convert_arg(c, cx, convert::boolean, Value::Bool)
}

/// The format argument's items: parsed at compile time for a literal, here otherwise. `None` for a null
/// format.
fn format_items<'a>(
    c: &'a CallNode,
    i: usize,
    cx: &Cx<'a>,
) -> Result<Option<Cow<'a, [Item<'a>]>>, Fail> {
    if let Some(items) = &c.format {
        return Ok(Some(Cow::Borrowed(items.as_slice())));
    }
    let Some(text) = c.args[i].eval_str(cx)? else {
        return Ok(None);
    };
    let items = parse_format(&text).map_err(Fail::Here)?;
    Ok(Some(Cow::Owned(items)))
}

/// Parses a strftime-like format; the error names it.
pub(crate) fn parse_format(text: &str) -> Result<Vec<Item<'static>>, String> {
    StrftimeItems::new(text).parse_to_owned().map_err(|_| {
        format!("`{text}` is not a valid date format: it has an unknown or incomplete % specifier")
    })
}

fn parse_with(text: &str, items: &[Item<'_>]) -> Result<Parsed, Fail> {
    let mut parsed = Parsed::new();
    chrono::format::parse(&mut parsed, text.trim(), items.iter())
        .map_err(|e| Fail::Here(format!("the text does not match the format ({e})")))?;
    Ok(parsed)
}

fn eval_to_date(c: &CallNode, cx: &Cx<'_>) -> Out {
    if c.args.len() > 1 {
        if let Value::String(s) = convert::lift(c.arg(0, cx)?) {
            let Some(items) = format_items(c, 1, cx)? else {
                return Ok(Value::Null);
            };
            let parsed = parse_with(&s, &items)?;
            return parsed
                .to_naive_date()
                .map(Value::Date)
                .map_err(|_| Fail::Here("the format does not give a complete date".into()));
        }
    }
    convert_arg(c, cx, convert::date, Value::Date)
}

fn eval_to_datetime(c: &CallNode, cx: &Cx<'_>) -> Out {
    let v = convert::lift(c.arg(0, cx)?);
    match v {
        Value::Int(secs) => {
            return DateTime::from_timestamp(secs, 0)
                .map(Value::DateTime)
                .ok_or_else(|| "the number of seconds is out of the range of datetimes".into())
        }
        Value::String(s) if c.args.len() > 1 => {
            let Some(items) = format_items(c, 1, cx)? else {
                return Ok(Value::Null);
            };
            let parsed = parse_with(&s, &items)?;
            // With an offset in the text it is an instant; without, the time is taken as UTC; with no time
            // at all, midnight UTC.
            if let Ok(dt) = parsed.to_datetime() {
                return Ok(Value::DateTime(dt.with_timezone(&Utc)));
            }
            if let Ok(naive) = parsed.to_naive_datetime_with_offset(0) {
                return Ok(Value::DateTime(naive.and_utc()));
            }
            return parsed
                .to_naive_date()
                .map(|d| Value::DateTime(d.and_time(NaiveTime::MIN).and_utc()))
                .map_err(|_| Fail::Here("the format does not give a complete date".into()));
        }
        Value::Null => return Ok(Value::Null),
        _ => {}
    }
    Ok(Value::DateTime(convert::datetime(v)?))
}

fn eval_json_parse(c: &CallNode, cx: &Cx<'_>) -> Out {
    let Some(s) = c.args[0].eval_str(cx)? else {
        return Ok(Value::Null);
    };
    // The parsed form takes several times the text's bytes; count the text once in the row's budget.
    cx.reserve(s.len())?;
    match serde_json::from_str::<Json>(&s) {
        Ok(Json::Null) => Ok(Value::Null),
        Ok(j) => Ok(Value::json(j)),
        Err(e) => Err(Fail::Here(format!("the text is not valid JSON ({e})"))),
    }
}

fn eval_to_json(c: &CallNode, cx: &Cx<'_>) -> Out {
    convert_arg(c, cx, convert::json, Value::json)
}

fn eval_now(_: &CallNode, cx: &Cx<'_>) -> Out {
    Ok(Value::DateTime(cx.now))
}

fn eval_format_datetime(c: &CallNode, cx: &Cx<'_>) -> Out {
    let dt = match convert::lift(c.arg(0, cx)?) {
        Value::Null => return Ok(Value::Null),
        Value::DateTime(dt) => dt,
        // A date formats as its midnight in UTC, so time specifiers give zeros rather than an error.
        Value::Date(d) => d.and_time(NaiveTime::MIN).and_utc(),
        other => {
            return Err(Fail::Here(format!(
                "expects a datetime or a date, got {}",
                other.kind()
            )))
        }
    };
    let Some(items) = format_items(c, 1, cx)? else {
        return Ok(Value::Null);
    };
    let mut out = String::new();
    write!(out, "{}", dt.format_with_items(items.iter()))
        .map_err(|_| Fail::Here("the format cannot be applied to this value".into()))?;
    Ok(Value::String(out.into()))
}

fn eval_at(c: &CallNode, cx: &Cx<'_>) -> Out {
    let arr = c.arg(0, cx)?;
    if arr.is_null() {
        return Ok(Value::Null);
    }
    let Some(n) = int_arg(c, 1, cx)? else {
        return Ok(Value::Null);
    };
    let index = |len: usize| -> Option<usize> {
        let len = len as i64;
        let i = if n > 0 { n - 1 } else { len + n };
        (n != 0 && (0..len).contains(&i)).then_some(i as usize)
    };
    Ok(match arr {
        Value::Array(mut items) => match index(items.len()) {
            Some(i) => items.swap_remove(i),
            None => Value::Null,
        },
        Value::Json(j) if j.is_array() => {
            let Json::Array(mut items) = *j else {
                unreachable!("an array")
            };
            match index(items.len()) {
                Some(i) => match items.swap_remove(i) {
                    Json::Null => Value::Null,
                    j => Value::json(j),
                },
                None => Value::Null,
            }
        }
        other => {
            return Err(Fail::Here(format!(
                "expects an array, got {}",
                other.kind()
            )))
        }
    })
}

// ---- the table ------------------------------------------------------------------------------------------

const TEXT: &str = "text";
const LOGIC: &str = "logic";
const NUMBER: &str = "number";
const CONVERSION: &str = "conversion";
const DATE: &str = "date";
const ARRAY: &str = "array";

macro_rules! def {
    ($name:literal, $sig:literal, $desc:literal, $cat:expr, $min:expr, $max:expr, $check:expr, $eval:expr $(, $extra:ident = $val:expr)*) => {
        Def {
            name: $name,
            signature: $sig,
            description: $desc,
            category: $cat,
            min: $min,
            max: $max,
            check: $check,
            eval: $eval,
            $($extra: $val,)*
            ..DEFAULTS
        }
    };
}

const DEFAULTS: Def = Def {
    name: "",
    signature: "",
    description: "",
    category: "",
    min: 0,
    max: None,
    pure: true,
    format_arg: None,
    check: check_test,
    eval: eval_coalesce,
};

pub(crate) static DEFS: &[Def] = &[
    // text
    def!("lower", "lower(text: string) -> string", "The text in lower case.", TEXT, 1, Some(1), check_text, eval_lower),
    def!("upper", "upper(text: string) -> string", "The text in upper case.", TEXT, 1, Some(1), check_text, eval_upper),
    def!("trim", "trim(text: string) -> string", "The text without leading and trailing whitespace.", TEXT, 1, Some(1), check_text, eval_trim),
    def!("ltrim", "ltrim(text: string) -> string", "The text without leading whitespace.", TEXT, 1, Some(1), check_text, eval_ltrim),
    def!("rtrim", "rtrim(text: string) -> string", "The text without trailing whitespace.", TEXT, 1, Some(1), check_text, eval_rtrim),
    def!("initcap", "initcap(text: string) -> string", "Each word capitalized, the rest lower case: `o'NEIL` → `O'Neil`.", TEXT, 1, Some(1), check_text, eval_initcap),
    def!("substring", "substring(text: string, start: int[, length: int]) -> string", "Characters from `start` (1-based; negative counts from the end), at most `length` of them.", TEXT, 2, Some(3), check_substring, eval_substring),
    def!("left", "left(text: string, n: int) -> string", "The first n characters (a negative n drops the last -n).", TEXT, 2, Some(2), check_text_int, eval_left),
    def!("right", "right(text: string, n: int) -> string", "The last n characters (a negative n drops the first -n).", TEXT, 2, Some(2), check_text_int, eval_right),
    def!("len", "len(value: string | array | json) -> int", "Characters of a text, elements of an array, keys of an object.", TEXT, 1, Some(1), check_len, eval_len),
    def!("concat", "concat(value, ...) -> string", "The text of every argument joined together; nulls count as empty text.", TEXT, 1, None, check_any_to_text, eval_concat),
    def!("replace", "replace(text: string, from: string, to: string) -> string", "The text with every occurrence of `from` replaced by `to`.", TEXT, 3, Some(3), check_replace, eval_replace),
    def!("contains", "contains(haystack: string | array | json, needle) -> boolean", "Whether the text contains the needle text, the array contains the needle value, or the object has the needle key.", TEXT, 2, Some(2), check_contains, eval_contains),
    def!("starts_with", "starts_with(text: string, prefix: string) -> boolean", "Whether the text starts with the prefix.", TEXT, 2, Some(2), check_text_predicate, eval_starts_with),
    def!("ends_with", "ends_with(text: string, suffix: string) -> boolean", "Whether the text ends with the suffix.", TEXT, 2, Some(2), check_text_predicate, eval_ends_with),
    // logic
    def!("coalesce", "coalesce(value, ...) -> same type", "The first argument that is not null.", LOGIC, 1, None, check_coalesce, eval_coalesce),
    def!("if", "if(condition: boolean, then[, else]) -> same type", "`then` when the condition is true, otherwise `else` (null when omitted).", LOGIC, 2, Some(3), check_if, eval_if),
    def!("nullif", "nullif(value, other) -> type of value", "Null when the value equals `other`, otherwise the value: nullif(trim(phone), \"\").", LOGIC, 2, Some(2), check_nullif, eval_nullif),
    def!("is_null", "is_null(value) -> boolean", "Whether the value is null (a missing property is null).", LOGIC, 1, Some(1), check_test, eval_is_null),
    def!("is_empty", "is_empty(value) -> boolean", "Whether the value is null, empty text, an empty array or an empty object.", LOGIC, 1, Some(1), check_test, eval_is_empty),
    def!("eq", "eq(a, b) -> boolean", "Whether a equals b; numbers compare by value, null equals only null.", LOGIC, 2, Some(2), check_comparable, eval_eq),
    def!("ne", "ne(a, b) -> boolean", "Whether a differs from b (the opposite of eq).", LOGIC, 2, Some(2), check_comparable, eval_ne),
    def!("lt", "lt(a, b) -> boolean", "Whether a < b; null when either is null.", LOGIC, 2, Some(2), check_ordered, eval_lt),
    def!("le", "le(a, b) -> boolean", "Whether a ≤ b; null when either is null.", LOGIC, 2, Some(2), check_ordered, eval_le),
    def!("gt", "gt(a, b) -> boolean", "Whether a > b; null when either is null.", LOGIC, 2, Some(2), check_ordered, eval_gt),
    def!("ge", "ge(a, b) -> boolean", "Whether a ≥ b; null when either is null.", LOGIC, 2, Some(2), check_ordered, eval_ge),
    def!("and", "and(a: boolean, b: boolean, ...) -> boolean", "True when every argument is true (false wins over null).", LOGIC, 2, None, check_logic, eval_and),
    def!("or", "or(a: boolean, b: boolean, ...) -> boolean", "True when any argument is true (true wins over null).", LOGIC, 2, None, check_logic, eval_or),
    def!("not", "not(a: boolean) -> boolean", "The opposite of a; null stays null.", LOGIC, 1, Some(1), check_logic, eval_not),
    // numbers
    def!("add", "add(a: number, b: number) -> number", "a + b (int when both are ints, decimal when either is, float when either is).", NUMBER, 2, Some(2), check_arith, eval_add),
    def!("sub", "sub(a: number, b: number) -> number", "a − b.", NUMBER, 2, Some(2), check_arith, eval_sub),
    def!("mul", "mul(a: number, b: number) -> number", "a × b.", NUMBER, 2, Some(2), check_arith, eval_mul),
    def!("div", "div(a: number, b: number) -> decimal | float", "a ÷ b, exact as a decimal unless either is a float; dividing by zero fails the row.", NUMBER, 2, Some(2), check_div, eval_div),
    def!("round", "round(value: number[, digits: int]) -> same type", "The value rounded to `digits` decimal places (default 0), halves away from zero.", NUMBER, 1, Some(2), check_round, eval_round),
    def!("abs", "abs(value: number) -> same type", "The absolute value.", NUMBER, 1, Some(1), check_abs, eval_abs),
    // conversions
    def!("to_string", "to_string(value) -> string", "The value as text, as a text column would receive it (objects and arrays as JSON).", CONVERSION, 1, Some(1), check_any_to_text, eval_to_string),
    def!("to_int", "to_int(value: string | number | boolean) -> int", "The value as an integer; text must hold a whole number, true is 1.", CONVERSION, 1, Some(1), check_to_int, eval_to_int),
    def!("to_float", "to_float(value: string | number) -> float", "The value as a floating-point number.", CONVERSION, 1, Some(1), check_to_float, eval_to_float),
    def!("to_decimal", "to_decimal(value: string | number) -> decimal", "The value as an exact decimal.", CONVERSION, 1, Some(1), check_to_decimal, eval_to_decimal),
    def!("to_bool", "to_bool(value: string | int | boolean) -> boolean", "true/false, yes/no, y/n, t/f, 1/0 as a boolean.", CONVERSION, 1, Some(1), check_to_bool, eval_to_bool),
    def!("to_date", "to_date(value: string | date | datetime[, format: string]) -> date", "A date from YYYY-MM-DD text (or text in `format`), or the UTC date of a datetime.", CONVERSION, 1, Some(2), check_to_date, eval_to_date, format_arg = Some(1)),
    def!("to_datetime", "to_datetime(value: string | date | datetime | int[, format: string]) -> datetime", "A datetime from RFC 3339 text (or text in `format`, UTC unless it has an offset), a date (midnight UTC) or Unix seconds.", CONVERSION, 1, Some(2), check_to_datetime, eval_to_datetime, format_arg = Some(1)),
    def!("json_parse", "json_parse(text: string) -> json", "The JSON value the text holds; invalid JSON fails the row.", CONVERSION, 1, Some(1), check_json_parse, eval_json_parse),
    def!("to_json", "to_json(value) -> json", "The value as JSON (text becomes a JSON string).", CONVERSION, 1, Some(1), check_to_json, eval_to_json),
    // dates
    def!("now", "now() -> datetime", "The time the run started (the same for every profile of a run).", DATE, 0, Some(0), check_now, eval_now, pure = false),
    def!("format_datetime", "format_datetime(value: datetime | date, format: string) -> string", "The value formatted in UTC with strftime specifiers: format_datetime(signup, \"%d/%m/%Y %H:%M\").", DATE, 2, Some(2), check_format_datetime, eval_format_datetime, format_arg = Some(1)),
    // arrays
    def!("split", "split(text: string, separator: string) -> array(string)", "The parts of the text between separators (each character for an empty separator).", ARRAY, 2, Some(2), check_split, eval_split),
    def!("join", "join(array, separator: string) -> string", "The text of the elements joined by the separator, skipping nulls.", ARRAY, 2, Some(2), check_join, eval_join),
    def!("at", "at(array, n: int) -> element", "The n-th element (1-based; negative counts from the end); null when out of range.", ARRAY, 2, Some(2), check_at, eval_at),
];
