//! JavaScript transformations on an embedded QuickJS engine; the contract is in the crate documentation.
//!
//! [`Script`] is the checked, thread-safe form (the source, the columns it writes and their types);
//! [`Runner`] owns one QuickJS runtime with the script loaded and lives on one thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rquickjs::{
    context::EvalOptions, BigInt, CatchResultExt, CaughtError, Context, Ctx, Function, Object,
    Persistent, Runtime, Type,
};
use serde_json::{Map, Value as Json};
use sluice_core::{schema, FieldErrors, Profile, TableDescription, Value};

use crate::columns::Shape;
use crate::{Limits, Output, RowError, Watch};

/// The file name scripts are compiled under; locations in messages are found by it.
const FILE: &str = "transform.js";
/// Where `transformation.javascript` errors are reported.
const FIELD: &str = "transformation.javascript";
/// QuickJS's own stack limit, well inside the 2 MiB stacks of the threads that run scripts.
const STACK: usize = 512 * 1024;
/// Integers up to this magnitude are exact as JavaScript numbers.
const SAFE_INT: i64 = (1 << 53) - 1;
/// Nesting beyond this in a returned value is refused (it is most likely a cycle).
const MAX_DEPTH: usize = 64;
/// More names than this in `columns` is not a list of columns.
const MAX_COLUMNS: f64 = 10_000.0;

/// A JavaScript transformation that loaded and defines `transform`, with the columns it writes.
#[derive(Debug, Clone)]
pub struct Script {
    source: Arc<str>,
    shape: Arc<Shape>,
    limits: Limits,
}

impl Script {
    /// Loads the script once to check it: syntax (with line and column), that it defines a `transform`
    /// function, and its optional `columns` list against the table. Errors are keyed by field path.
    pub fn compile(
        source: &str,
        key: &str,
        table: &TableDescription,
        limits: Limits,
    ) -> Result<Script, FieldErrors> {
        let mut errors = FieldErrors::new();
        let declared = match Loaded::new(source, limits, Arc::new(AtomicBool::new(false))) {
            Ok(loaded) => loaded.declared,
            Err(message) => {
                errors.add(FIELD, message);
                return Err(errors);
            }
        };
        let (columns, targets) =
            match crate::columns::resolve(declared.as_deref(), key, table, FIELD) {
                Ok(c) => c,
                Err(e) => {
                    errors.merge(e);
                    return Err(errors);
                }
            };
        errors.into_result(Script {
            source: source.into(),
            shape: Arc::new(Shape::new(columns, targets, declared.is_some(), table)),
            limits,
        })
    }

    /// The columns every row has, in order.
    pub fn columns(&self) -> &[String] {
        &self.shape.columns
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// A runtime with the script loaded, for the calling thread.
    pub fn runner(&self) -> Result<Runner, String> {
        self.runner_with_stop(Arc::new(AtomicBool::new(false)))
    }

    /// [`Script::runner`] whose calls are interrupted, and later profiles not evaluated, once `stop` is
    /// set.
    pub fn runner_with_stop(&self, stop: Arc<AtomicBool>) -> Result<Runner, String> {
        let watch = Watch::new(stop, self.limits.time_per_profile);
        Ok(Runner {
            loaded: Some(Loaded::new(&self.source, self.limits, watch.flag())?),
            script: self.clone(),
            watch,
        })
    }
}

/// One runtime with the script evaluated. Field order matters: the saved function must be dropped before
/// its context and runtime.
struct Loaded {
    transform: Persistent<Function<'static>>,
    date: Persistent<Function<'static>>,
    context: Context,
    _runtime: Runtime,
    /// Nanoseconds after `base` when the running call must stop; `u64::MAX` when none runs.
    deadline: Arc<AtomicU64>,
    base: Instant,
    declared: Option<Vec<String>>,
}

impl Loaded {
    fn new(source: &str, limits: Limits, stop: Arc<AtomicBool>) -> Result<Loaded, String> {
        let internal = |e: rquickjs::Error| format!("the JavaScript engine failed to start: {e}");
        let runtime = Runtime::new().map_err(internal)?;
        runtime.set_memory_limit(limits.memory_bytes);
        runtime.set_max_stack_size(STACK);
        let base = Instant::now();
        let deadline = Arc::new(AtomicU64::new(u64::MAX));
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            crate::abandoned()
                || stop.load(Ordering::Relaxed)
                || base.elapsed().as_nanos() as u64 > watched.load(Ordering::Relaxed)
        })));
        let context = Context::full(&runtime).map_err(internal)?;
        // Top-level code gets ten calls' worth of time: enough for tables and setup, not for a hang.
        let budget = limits.time_per_profile * 10;
        deadline.store(
            (base.elapsed() + budget).as_nanos() as u64,
            Ordering::Relaxed,
        );
        let outcome = context.with(|ctx| -> Result<_, String> {
            let mut options = EvalOptions::default();
            options.strict = false;
            options.filename = Some(FILE.into());
            ctx.eval_with_options::<(), _>(source, options)
                .catch(&ctx)
                .map_err(|e| {
                    if base.elapsed().as_nanos() as u64 > deadline.load(Ordering::Relaxed) {
                        format!(
                            "the script's top-level code ran longer than {} ms",
                            budget.as_millis()
                        )
                    } else {
                        describe(&e)
                    }
                })?;
            let transform: rquickjs::Value = ctx
                .eval("typeof transform === 'undefined' ? undefined : transform")
                .map_err(|e| e.to_string())?;
            let Some(transform) = transform.into_function() else {
                return Err(
                    "the script must define a function `transform(profile)` that returns an object of column values, or null to skip the profile"
                        .into(),
                );
            };
            let declared: rquickjs::Value = ctx
                .eval("typeof columns === 'undefined' ? undefined : columns")
                .map_err(|e| e.to_string())?;
            let declared = if declared.is_undefined() {
                None
            } else {
                let err = || {
                    "`columns` must be an array of column names, e.g. const columns = [\"email\", \"name\"];".to_string()
                };
                // Read by index with the length checked: `columns` may be a proxy or have any length.
                let array = declared.as_array().ok_or_else(err)?.as_object();
                let length: f64 = array.get("length").map_err(|e| e.to_string())?;
                if !(0.0..=MAX_COLUMNS).contains(&length) || length.fract() != 0.0 {
                    return Err(err());
                }
                let mut names = Vec::with_capacity(length as usize);
                for i in 0..length as u32 {
                    let item: rquickjs::Value = array.get(i).map_err(|e| e.to_string())?;
                    let name = item
                        .as_string()
                        .and_then(|s| s.to_string().ok())
                        .ok_or_else(err)?;
                    names.push(name);
                }
                Some(names)
            };
            let date: Function = ctx.globals().get("Date").map_err(|e| e.to_string())?;
            Ok((
                Persistent::save(&ctx, transform),
                Persistent::save(&ctx, date),
                declared,
            ))
        });
        deadline.store(u64::MAX, Ordering::Relaxed);
        let (transform, date, declared) = outcome?;
        Ok(Loaded {
            transform,
            date,
            context,
            _runtime: runtime,
            deadline,
            base,
            declared,
        })
    }
}

/// Runs a [`Script`] for one profile at a time; replaces its runtime after a time-out or memory failure.
pub struct Runner {
    loaded: Option<Loaded>,
    script: Script,
    watch: Watch,
}

/// How a call failed.
enum Failure {
    /// A row error; the runtime is fine.
    Row(RowError),
    /// The memory limit was hit, or the call was interrupted: the runtime is replaced before the next
    /// call.
    Limit(RowError),
    /// The time limit was hit: the runtime is replaced, and the profile counts towards giving up.
    Time(RowError),
}

impl Runner {
    /// The row for one profile.
    pub fn eval(&mut self, profile: &Profile) -> Result<Output, RowError> {
        if let Some(e) = self.watch.halted() {
            return Err(e);
        }
        if self.loaded.is_none() {
            self.loaded = Some(
                Loaded::new(&self.script.source, self.script.limits, self.watch.flag())
                    .map_err(RowError::new)?,
            );
        }
        let loaded = self.loaded.as_ref().expect("loaded above");
        let outcome = self.call(loaded, profile);
        self.watch.count(matches!(outcome, Err(Failure::Time(_))));
        match outcome {
            Ok(out) => Ok(out),
            Err(Failure::Row(e)) => Err(e),
            Err(Failure::Limit(e) | Failure::Time(e)) => {
                self.loaded = None;
                Err(e)
            }
        }
    }

    /// Why the runner gave up on a stuck script, once it has.
    pub fn gave_up(&self) -> Option<String> {
        self.watch.gave_up()
    }

    fn call(&self, loaded: &Loaded, profile: &Profile) -> Result<Output, Failure> {
        let limits = self.script.limits;
        // Armed for everything that may run the script's code: the call, and reading what it returned
        // or threw (getters, proxies, a Date's methods, an error's `name`).
        let deadline = loaded.base.elapsed() + limits.time_per_profile;
        loaded
            .deadline
            .store(deadline.as_nanos() as u64, Ordering::Relaxed);
        let outcome = loaded.context.with(|ctx| {
            let engine = |e: rquickjs::Error| {
                Failure::Limit(RowError::new(limit_message(&e.to_string(), limits)))
            };
            let transform = loaded.transform.clone().restore(&ctx).map_err(engine)?;
            let input = profile_to_js(&ctx, profile).map_err(engine)?;
            let returned = match transform.call::<_, rquickjs::Value>((input,)).catch(&ctx) {
                Ok(v) => v,
                Err(e) => {
                    let text = describe(&e);
                    if is_out_of_memory(&e, &text) {
                        return Err(Failure::Limit(RowError::new(limit_message(&text, limits))));
                    }
                    return Err(Failure::Row(RowError::new(text)));
                }
            };
            let date = loaded.date.clone().restore(&ctx).map_err(engine)?;
            let mut convert = Convert {
                ctx: ctx.clone(),
                date,
                left: limits.output_bytes,
                limits,
                base: loaded.base,
                deadline,
                steps: 0,
            };
            self.row(&returned, &mut convert).map_err(|e| {
                if e.message.contains("out of memory") {
                    Failure::Limit(RowError::new(limit_message("out of memory", limits)))
                } else {
                    Failure::Row(e)
                }
            })
        });
        loaded.deadline.store(u64::MAX, Ordering::Relaxed);
        if let Some(e) = self.watch.halted() {
            return Err(Failure::Limit(e));
        }
        if loaded.base.elapsed() > deadline {
            // Whatever the error said (an interrupted getter reads as an exception), the limit is what
            // stopped it, and the runtime is replaced.
            return Err(Failure::Time(RowError::new(time_message(limits))));
        }
        outcome
    }

    /// Converts what `transform` returned into the row.
    fn row<'js>(
        &self,
        returned: &rquickjs::Value<'js>,
        convert: &mut Convert<'js>,
    ) -> Result<Output, RowError> {
        if returned.is_null() {
            return Ok(Output::Skip);
        }
        let object = match returned.type_of() {
            Type::Object => returned.as_object().expect("an object"),
            other => {
                return Err(RowError::new(format!(
                    "transform() returned {}; return an object of column values, or null to skip the profile",
                    type_name(other)
                )))
            }
        };
        let shape = &self.script.shape;
        let mut row = shape.empty_row();
        for prop in object.props::<String, rquickjs::Value>() {
            let (name, value) = prop.map_err(|e| RowError::new(convert.thrown(e)))?;
            convert.spend(name.len()).map_err(RowError::new)?;
            shape.set(&mut row, &name, convert.value(&value, 0))?;
        }
        shape.finish(row).map(Output::Row)
    }
}

fn time_message(limits: Limits) -> String {
    format!(
        "transform() ran longer than the time limit of {} ms for this profile",
        limits.time_per_profile.as_millis()
    )
}

fn is_out_of_memory(e: &CaughtError, text: &str) -> bool {
    matches!(e, CaughtError::Error(rquickjs::Error::Allocation)) || text.contains("out of memory")
}

fn limit_message(text: &str, limits: Limits) -> String {
    if text.contains("out of memory") || text.contains("Allocation") {
        format!(
            "transform() used more than the memory limit of {} MiB",
            limits.memory_bytes >> 20
        )
    } else {
        format!("the JavaScript engine failed: {text}")
    }
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::Uninitialized | Type::Undefined => "undefined (is a `return` missing?)",
        Type::Bool => "a boolean",
        Type::Int | Type::Float => "a number",
        Type::String => "a string",
        Type::BigInt => "a BigInt",
        Type::Symbol => "a symbol",
        Type::Array => "an array",
        Type::Function | Type::Constructor => "a function",
        Type::Promise => "a promise (transform() cannot be async)",
        // Not read through its traps: return plain objects and arrays.
        Type::Proxy => "a Proxy",
        _ => "a value that is not an object",
    }
}

/// A thrown error as a message with the script location: `TypeError: x is not a function (line 3, column 9)`.
fn describe(e: &CaughtError) -> String {
    match e {
        CaughtError::Exception(ex) => {
            let name: Option<String> = ex.get("name").ok();
            let message = ex.message().unwrap_or_default();
            let mut text = match name {
                Some(n) if !n.is_empty() => format!("{n}: {message}"),
                _ => message,
            };
            let line: Option<u32> = ex.get("lineNumber").ok();
            let column: Option<u32> = ex.get("columnNumber").ok();
            let location = ex
                .stack()
                .as_deref()
                .and_then(location_in)
                .or(line.map(|l| (l, column.unwrap_or(0))));
            if let Some((line, column)) = location {
                if column > 0 {
                    text.push_str(&format!(" (line {line}, column {column})"));
                } else {
                    text.push_str(&format!(" (line {line})"));
                }
            }
            text
        }
        CaughtError::Value(v) => {
            let shown = v
                .as_string()
                .and_then(|s| s.to_string().ok())
                .or_else(|| v.as_number().map(|n| n.to_string()))
                .unwrap_or_else(|| format!("a value of type {}", v.type_of()));
            format!("the script threw {shown}")
        }
        CaughtError::Error(e) => e.to_string(),
    }
}

/// The first `transform.js:LINE:COLUMN` of a stack trace.
fn location_in(stack: &str) -> Option<(u32, u32)> {
    let at = stack.find(FILE)?;
    let rest = &stack[at + FILE.len()..];
    let rest = rest.strip_prefix(':')?;
    let mut parts = rest.splitn(3, |c: char| !c.is_ascii_digit());
    let line = parts.next()?.parse().ok()?;
    let column = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
    Some((line, column))
}

/// The profile as a JavaScript object: `_id`, `_updated_at`, then its properties.
fn profile_to_js<'js>(ctx: &Ctx<'js>, profile: &Profile) -> rquickjs::Result<Object<'js>> {
    let obj = Object::new(ctx.clone())?;
    obj.set(schema::ID, profile.id.as_str())?;
    obj.set(
        schema::UPDATED_AT,
        schema::format_datetime(&profile.updated_at),
    )?;
    for (k, v) in &profile.doc {
        obj.set(k.as_str(), json_to_js(ctx, v)?)?;
    }
    Ok(obj)
}

fn json_to_js<'js>(ctx: &Ctx<'js>, json: &Json) -> rquickjs::Result<rquickjs::Value<'js>> {
    Ok(match json {
        Json::Null => rquickjs::Value::new_null(ctx.clone()),
        Json::Bool(b) => rquickjs::Value::new_bool(ctx.clone(), *b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                if (-SAFE_INT..=SAFE_INT).contains(&i) {
                    rquickjs::Value::new_number(ctx.clone(), i as f64)
                } else {
                    BigInt::from_i64(ctx.clone(), i)?.into_value()
                }
            } else if let Some(u) = n.as_u64() {
                BigInt::from_u64(ctx.clone(), u)?.into_value()
            } else {
                rquickjs::Value::new_float(ctx.clone(), n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => rquickjs::String::from_str(ctx.clone(), s)?.into_value(),
        Json::Array(items) => {
            let array = rquickjs::Array::new(ctx.clone())?;
            for (i, item) in items.iter().enumerate() {
                array.set(i, json_to_js(ctx, item)?)?;
            }
            array.into_value()
        }
        Json::Object(map) => {
            let obj = Object::new(ctx.clone())?;
            for (k, v) in map {
                obj.set(k.as_str(), json_to_js(ctx, v)?)?;
            }
            obj.into_value()
        }
    })
}

/// A number that is whole and exact as an int; otherwise a float.
fn number(f: f64) -> Value {
    if f.is_finite() && f.fract() == 0.0 && f.abs() <= SAFE_INT as f64 {
        Value::Int(f as i64)
    } else {
        Value::Float(f)
    }
}

fn bigint(v: &rquickjs::Value) -> Result<i64, String> {
    // Through its decimal text: the engine's own conversion to i64 wraps instead of failing.
    v.get::<rquickjs::convert::Coerced<String>>()
        .ok()
        .and_then(|text| text.0.parse().ok())
        .ok_or_else(|| "the BigInt does not fit a 64-bit integer".to_string())
}

/// Reads a returned value into Sluice's values, within the output limit and the call's deadline. The
/// script's code may run here (getters, proxy traps, a Date's methods): the interrupt handler is armed,
/// and loops that run no script code (a sparse array of a billion holes) count against the output limit
/// and check the clock themselves.
struct Convert<'js> {
    ctx: Ctx<'js>,
    date: Function<'js>,
    /// Bytes of output still allowed.
    left: usize,
    limits: Limits,
    base: Instant,
    deadline: Duration,
    steps: u32,
}

impl<'js> Convert<'js> {
    /// Counts `bytes` of output, and now and then looks at the clock.
    fn spend(&mut self, bytes: usize) -> Result<(), String> {
        self.left = self.left.checked_sub(bytes).ok_or_else(|| {
            format!(
                "transform() returned a row larger than the output limit of {} bytes",
                self.limits.output_bytes
            )
        })?;
        self.steps = self.steps.wrapping_add(1);
        if self.steps.is_multiple_of(1024) && self.base.elapsed() > self.deadline {
            return Err(time_message(self.limits));
        }
        Ok(())
    }

    /// The message of an error raised while reading the value (an exception thrown by a getter).
    fn thrown(&self, e: rquickjs::Error) -> String {
        if e.is_exception() {
            let caught = CaughtError::from_error(&self.ctx, e);
            describe(&caught)
        } else {
            e.to_string()
        }
    }

    /// The elements of an array, read by index: the `length` may be anything a script makes it.
    fn elements(&mut self, array: &Object<'js>) -> Result<Vec<rquickjs::Value<'js>>, String> {
        let length: rquickjs::Value = array.get("length").map_err(|e| self.thrown(e))?;
        let length = length
            .as_number()
            .filter(|n| n.is_finite() && *n >= 0.0 && n.fract() == 0.0)
            .ok_or_else(|| "the array's length is not a number of elements".to_string())?;
        let mut items = Vec::new();
        let mut i = 0u32;
        while f64::from(i) < length {
            self.spend(8)?;
            items.push(array.get(i).map_err(|e| self.thrown(e))?);
            i = i
                .checked_add(1)
                .ok_or_else(|| "the array is too long".to_string())?;
        }
        Ok(items)
    }

    /// A `Date` as a datetime; `None` when the object is not a Date.
    fn date(&self, obj: &Object<'js>) -> Result<Option<Value>, String> {
        as_date(obj, &self.date).map_err(|e| e.to_string())
    }

    /// A returned value as a [`Value`], before conversion to the column type.
    fn value(&mut self, v: &rquickjs::Value<'js>, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err("the value is nested too deeply (does it contain a cycle?)".into());
        }
        self.spend(8)?;
        Ok(match v.type_of() {
            Type::Uninitialized | Type::Undefined | Type::Null => Value::Null,
            Type::Bool => Value::Bool(v.as_bool().unwrap_or_default()),
            Type::Int => Value::Int(i64::from(v.as_int().unwrap_or_default())),
            Type::Float => number(v.as_float().unwrap_or(f64::NAN)),
            Type::String => {
                let text = v
                    .as_string()
                    .map(|s| s.to_string())
                    .transpose()
                    .map_err(|e| self.thrown(e))?
                    .unwrap_or_default();
                self.spend(text.len())?;
                Value::String(text.into())
            }
            Type::BigInt => Value::Int(bigint(v)?),
            Type::Array => {
                let array = v.as_object().expect("an array is an object");
                let items = self.elements(array)?;
                let mut out = Vec::with_capacity(items.len());
                for item in &items {
                    out.push(self.value(item, depth + 1)?);
                }
                Value::Array(out)
            }
            Type::Object | Type::Exception => {
                let obj = v.as_object().expect("an object");
                match self.date(obj)? {
                    Some(d) => d,
                    None => Value::json(self.json(v, depth)?),
                }
            }
            other => {
                return Err(format!(
                    "{} cannot be written to a column",
                    type_name(other)
                ))
            }
        })
    }

    /// A returned value as JSON, for objects and JSON columns. `undefined` members are left out, as
    /// `JSON.stringify` does; Dates become ISO strings.
    fn json(&mut self, v: &rquickjs::Value<'js>, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err("the value is nested too deeply (does it contain a cycle?)".into());
        }
        Ok(match v.type_of() {
            Type::Array => {
                let array = v.as_object().expect("an array is an object");
                let items = self.elements(array)?;
                let mut out = Vec::with_capacity(items.len());
                for item in &items {
                    out.push(self.json(item, depth + 1)?);
                }
                Json::Array(out)
            }
            Type::Object | Type::Exception => {
                let obj = v.as_object().expect("an object");
                if let Some(d) = self.date(obj)? {
                    return Ok(d.to_json());
                }
                let mut out = Map::new();
                for prop in obj.props::<String, rquickjs::Value>() {
                    let (k, item) = prop.map_err(|e| self.thrown(e))?;
                    self.spend(k.len())?;
                    if item.is_undefined() {
                        continue;
                    }
                    let value = self.json(&item, depth + 1)?;
                    out.insert(k, value);
                }
                Json::Object(out)
            }
            _ => match self.value(v, depth + 1)? {
                Value::Float(f) => serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| format!("{f} cannot be written as JSON"))?,
                other => other.to_json(),
            },
        })
    }
}

/// A `Date` as a datetime; `None` when the object is not a Date.
fn as_date<'js>(obj: &Object<'js>, date: &Function<'js>) -> Result<Option<Value>, String> {
    if !obj.is_instance_of(date) {
        return Ok(None);
    }
    let iso: Function = obj.get("toISOString").map_err(|e| e.to_string())?;
    let text: String = iso
        .call((rquickjs::function::This(obj.clone()),))
        .map_err(|_| "the Date is invalid".to_string())?;
    schema::parse_datetime(&text)
        .map(|d| Some(Value::DateTime(d)))
        .map_err(|e| format!("the Date is out of range: {e}"))
}
