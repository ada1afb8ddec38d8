//! Type checking against the Customer Model, compiling the syntax tree into the evaluation tree as it goes.
//!
//! Problems are collected rather than returned at the first one, so a user fixing an expression sees all
//! of them; a sub-expression in error gets the type `any`, which every check accepts, so one mistake does
//! not cascade into a string of follow-up errors.

use chrono::DateTime;
use serde_json::Map;

use super::eval::{
    push_text, text_too_long, Budget, CallNode, Cx, Node, PathNode, Src, MAX_TEXT_BYTES,
};
use super::functions::{self, Args, DEFS};
use super::parser::{Expr, ExprKind};
use super::{ExprError, Type};
use crate::schema::{PropertyType, Schema, ID, UPDATED_AT};
use crate::value::{Text, Value};
use crate::Profile;

pub(crate) struct Compiler<'s> {
    schema: &'s Schema,
    reads: Reads,
    pub errors: Vec<ExprError>,
    /// Customer Model paths read, in order of first appearance.
    pub paths: Vec<String>,
    /// What folding constants may build, for the whole expression: a row's limit, so a nest of constant
    /// `replace` calls is refused when saved rather than built.
    budget: Budget,
}

impl<'s> Compiler<'s> {
    pub(crate) fn new(schema: &'s Schema, reads: Reads) -> Self {
        Compiler {
            schema,
            reads,
            errors: Vec::new(),
            paths: Vec::new(),
            budget: Budget::row(),
        }
    }

    fn fail(&mut self, pos: usize, message: String) -> (Node, Type) {
        self.errors.push(ExprError { pos, message });
        (Node::Lit(Value::Null), Type::Any)
    }

    pub(crate) fn compile(&mut self, e: &Expr) -> (Node, Type) {
        match &e.kind {
            ExprKind::Lit(v) => (Node::Lit(v.clone()), literal_type(v)),
            ExprKind::Path(path) => match self.resolve(path) {
                Ok((node, ty, read)) => {
                    if !self.paths.contains(&read) {
                        self.paths.push(read);
                    }
                    (Node::Path(node), ty)
                }
                Err(message) => self.fail(e.pos, message),
            },
            ExprKind::Concat(parts) => {
                let nodes: Vec<Node> = parts.iter().map(|p| self.compile(p).0).collect();
                if nodes.iter().all(|n| matches!(n, Node::Lit(_))) {
                    let mut text = Text::default();
                    for n in nodes {
                        if let Node::Lit(v) = n {
                            push_text(v, &mut text);
                        }
                        if text.len() > MAX_TEXT_BYTES {
                            return self.fail(e.pos, text_too_long(text.len()));
                        }
                    }
                    return (Node::Lit(Value::String(text)), Type::String);
                }
                (Node::Concat(nodes.into_boxed_slice(), e.pos), Type::String)
            }
            ExprKind::Call { name, args } => self.call(e.pos, name, args),
        }
    }

    fn call(&mut self, pos: usize, name: &str, args: &[Expr]) -> (Node, Type) {
        let errors_before = self.errors.len();
        let def = functions::lookup(name);
        let arity_ok =
            def.is_some_and(|d| args.len() >= d.min && d.max.is_none_or(|m| args.len() <= m));
        match def {
            None => {
                let message = self.unknown_function(name);
                self.errors.push(ExprError { pos, message });
            }
            Some(def) if !arity_ok => {
                let message = format!(
                    "`{}` takes {}, got {}: {}",
                    def.name,
                    def.arity(),
                    args.len(),
                    def.signature
                );
                self.errors.push(ExprError { pos, message });
            }
            Some(_) => {}
        }
        // Arguments are checked even when the call itself is wrong, to report everything at once.
        let mut nodes = Vec::with_capacity(args.len());
        let mut types = Vec::with_capacity(args.len());
        let positions: Vec<usize> = args.iter().map(|a| a.pos).collect();
        for a in args {
            let (n, t) = self.compile(a);
            nodes.push(n);
            types.push(t);
        }
        let Some(def) = def.filter(|_| arity_ok) else {
            return (Node::Lit(Value::Null), Type::Any);
        };
        let ty = (def.check)(&mut Args {
            name: def.name,
            types: &types,
            positions: &positions,
            errors: &mut self.errors,
        });
        let mut format = None;
        if let Some(i) = def.format_arg {
            if let Some(Node::Lit(Value::String(f))) = nodes.get(i) {
                match functions::parse_format(f) {
                    Ok(items) => format = Some(items),
                    Err(message) => self.errors.push(ExprError {
                        pos: positions[i],
                        message,
                    }),
                }
            }
        }
        if self.errors.len() > errors_before {
            return (Node::Lit(Value::Null), Type::Any);
        }
        let call = CallNode {
            def,
            args: nodes,
            pos,
            format,
        };
        // A pure function of constants is computed once here; if that fails, the expression could never
        // succeed, which is better said now than on every row.
        if def.pure && call.args.iter().all(|n| matches!(n, Node::Lit(_))) {
            return match fold(&call, &self.budget) {
                Ok(v) => (Node::Lit(v), ty),
                Err(e) => self.fail(e.pos, e.message),
            };
        }
        (Node::Call(Box::new(call)), ty)
    }

    fn unknown_function(&self, name: &str) -> String {
        match did_you_mean(name, DEFS.iter().map(|d| d.name)) {
            Some(s) => format!("unknown function `{name}`; did you mean `{s}`?"),
            None if self.schema.resolve(name).is_some() => format!(
                "`{name}` is a {}, not a function: write it without parentheses",
                self.reads.noun()
            ),
            None => format!("unknown function `{name}`"),
        }
    }

    /// The evaluation node, the type, and the Customer Model path read (for a sub-path of a JSON property,
    /// the JSON property: that is what a change of the model can affect).
    fn resolve(&self, path: &str) -> Result<(PathNode, Type, String), String> {
        match path {
            ID => return Ok((PathNode::Id, Type::String, path.into())),
            UPDATED_AT => return Ok((PathNode::UpdatedAt, Type::DateTime, path.into())),
            _ => {}
        }
        let segments: Vec<&str> = path.split('.').collect();
        let doc = |ty: PropertyType| PathNode::Doc {
            segments: segments.iter().map(|s| s.to_string()).collect(),
            ty,
            slot: usize::MAX,
        };
        if let Some(r) = self.schema.resolve(path) {
            let ty = r.ty.into_owned();
            let static_ty = Type::from_property(&ty);
            return Ok((doc(ty), static_ty, path.into()));
        }
        // Find where the path stops resolving: inside a JSON property any sub-path is valid (and JSON).
        for i in 1..segments.len() {
            let prefix = segments[..i].join(".");
            let Some(r) = self.schema.resolve(&prefix) else {
                break;
            };
            match r.ty.as_ref() {
                PropertyType::Json => return Ok((doc(PropertyType::Json), Type::Json, prefix)),
                PropertyType::Object(_) => {}
                other => {
                    return Err(format!(
                        "`{prefix}` is {}, which has no property `{}`",
                        Type::from_property(other).with_article(),
                        segments[i]
                    ))
                }
            }
        }
        let mut message = format!("unknown {} `{path}`", self.reads.noun());
        let paths = self.schema.paths();
        if let Some(s) = did_you_mean(path, paths.iter().map(|(p, _)| p.as_str())) {
            message.push_str(&format!("; did you mean `{s}`?"));
        } else if let Some(def) = functions::lookup(path) {
            message.push_str(&format!("; to call the function, write `{}()`", def.name));
        }
        Err(message)
    }
}

fn literal_type(v: &Value) -> Type {
    match v {
        Value::Null => Type::Null,
        Value::Bool(_) => Type::Boolean,
        Value::Int(_) => Type::Int,
        Value::Float(_) => Type::Float,
        Value::Decimal(_) => Type::Decimal,
        Value::String(_) => Type::String,
        _ => Type::Any,
    }
}

fn fold(call: &CallNode, budget: &Budget) -> Result<Value, ExprError> {
    let profile = Profile {
        id: String::new(),
        updated_at: DateTime::UNIX_EPOCH,
        doc: Map::new(),
    };
    call.eval(&Cx {
        src: Src::Parsed(&profile),
        now: DateTime::UNIX_EPOCH,
        budget,
    })
}

/// What the names an expression reads are: the properties of profiles (an export reads the Customer
/// Model) or the columns of a source's rows (a source pipeline's mapping). Only messages differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reads {
    #[default]
    Properties,
    SourceColumns,
}

impl Reads {
    fn noun(self) -> &'static str {
        match self {
            Reads::Properties => "property",
            Reads::SourceColumns => "source column",
        }
    }
}

/// The candidate closest to `name` (ignoring case), when it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let target: Vec<char> = name.to_lowercase().chars().collect();
    let limit = match target.len() {
        0..=3 => 1,
        4..=8 => 2,
        _ => 3,
    };
    candidates
        .into_iter()
        .map(|c| {
            (
                edit_distance(&target, &c.to_lowercase().chars().collect::<Vec<_>>()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, counting an adjacent swap as one edit (the commonest typo).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    rows[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> Vec<char> {
        s.chars().collect()
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance(&chars("lowr"), &chars("lower")), 1);
        assert_eq!(edit_distance(&chars("lwoer"), &chars("lower")), 1);
        assert_eq!(edit_distance(&chars(""), &chars("abc")), 3);
        assert_eq!(edit_distance(&chars("kitten"), &chars("sitting")), 3);
    }

    #[test]
    fn suggestions_are_close_or_absent() {
        let names = ["lower", "upper", "len", "left"];
        assert_eq!(did_you_mean("lowr", names), Some("lower"));
        assert_eq!(did_you_mean("LOWER", names), Some("lower"));
        assert_eq!(did_you_mean("lem", names), Some("len"));
        assert_eq!(did_you_mean("frobnicate", names), None);
        assert_eq!(did_you_mean("x", names), None);
    }
}
