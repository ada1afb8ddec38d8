//! Reading workspace files: YAML into one JSON document (the body `POST /v1/workspace/apply` takes),
//! remembering where in which file every value was written, and reading each secret from where the
//! files point.
//!
//! A path is one file or a folder whose `*.yaml`/`*.yml` files are merged, in name order: each may hold
//! any sections, but each connection, pipeline and the Customer Model is described once in all of them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use serde_json::{Map, Value};

/// Where a value was written: file, line (1-based) and column (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// One problem of the files: where, the field path, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Option<Pos>,
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(pos) = &self.pos {
            write!(f, "{pos}: ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// The merged document and the position of each of its paths (`pipelines.P.filter.conditions[0]`).
#[derive(Debug, Default)]
pub struct Loaded {
    pub doc: Value,
    positions: HashMap<String, Pos>,
    /// The folder of the file each top-level object came from, for `{file: …}` secrets.
    dirs: HashMap<String, PathBuf>,
}

impl Loaded {
    /// The position of `path`, or of the nearest enclosing field written in the files.
    pub fn position(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(pos.clone());
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }

    pub fn problem(&self, path: &str, message: impl Into<String>) -> Problem {
        Problem {
            pos: self.position(path),
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// Top-level sections that are mappings of named objects, merged across files.
const NAMED: [&str; 3] = ["connections", "pipelines", "sources"];

/// Reads `path` (a file or a folder of them) into one document; every problem at once.
pub fn load(path: &Path) -> Result<Loaded, Vec<Problem>> {
    let files = files_of(path).map_err(|m| {
        vec![Problem {
            pos: None,
            path: String::new(),
            message: m,
        }]
    })?;
    let mut loaded = Loaded {
        doc: Value::Object(Map::new()),
        ..Loaded::default()
    };
    let mut problems = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem {
                    pos: None,
                    path: String::new(),
                    message: format!("cannot read {}: {e}", file.display()),
                });
                continue;
            }
        };
        match parse(&file, &text) {
            Ok((value, positions)) => merge(&mut loaded, &file, value, positions, &mut problems),
            Err(p) => problems.push(p),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

fn files_of(path: &Path) -> Result<Vec<PathBuf>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| format!("cannot read the folder {}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml") | Some("yml")
                )
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!(
            "{} holds no workspace file (*.yaml or *.yml)",
            path.display()
        ));
    }
    Ok(files)
}

/// One file's YAML as JSON, with the position of every path in it.
pub fn parse(file: &Path, text: &str) -> Result<(Value, HashMap<String, Pos>), Problem> {
    let docs = MarkedYamlOwned::load_from_str(text).map_err(|e| Problem {
        pos: Some(Pos {
            file: file.to_path_buf(),
            line: e.marker().line(),
            col: e.marker().col() + 1,
        }),
        path: String::new(),
        message: format!("not valid YAML: {}", e.info()),
    })?;
    let mut positions = HashMap::new();
    let value = match docs.as_slice() {
        [] => Value::Object(Map::new()),
        [doc] => to_json(file, doc, String::new(), &mut positions)?,
        _ => return Err(Problem {
            pos: Some(Pos {
                file: file.to_path_buf(),
                line: 1,
                col: 1,
            }),
            path: String::new(),
            message:
                "a workspace file holds one YAML document; split the others into files of their own"
                    .into(),
        }),
    };
    Ok((value, positions))
}

fn pos_of(file: &Path, node: &MarkedYamlOwned) -> Pos {
    Pos {
        file: file.to_path_buf(),
        line: node.span.start.line(),
        col: node.span.start.col() + 1,
    }
}

fn to_json(
    file: &Path,
    node: &MarkedYamlOwned,
    path: String,
    positions: &mut HashMap<String, Pos>,
) -> Result<Value, Problem> {
    positions
        .entry(path.clone())
        .or_insert_with(|| pos_of(file, node));
    let bad = |message: String| Problem {
        pos: Some(pos_of(file, node)),
        path: path.clone(),
        message,
    };
    Ok(match &node.data {
        YamlDataOwned::Value(s) => scalar(s),
        YamlDataOwned::Representation(s, _, _) => Value::String(s.clone()),
        YamlDataOwned::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(to_json(file, item, format!("{path}[{i}]"), positions)?);
            }
            Value::Array(out)
        }
        YamlDataOwned::Mapping(entries) => {
            let mut out = Map::new();
            for (k, v) in entries.iter() {
                let key = match &k.data {
                    YamlDataOwned::Value(ScalarOwned::String(s)) => s.clone(),
                    YamlDataOwned::Value(other) => match scalar(other) {
                        Value::String(s) => s,
                        v => v.to_string(),
                    },
                    _ => return Err(bad("keys are plain names or numbers".into())),
                };
                let sub = sluice_core::errors::join_path(&path, &key);
                positions.insert(sub.clone(), pos_of(file, k));
                let value = to_json(file, v, sub, positions)?;
                out.insert(key, value);
            }
            Value::Object(out)
        }
        YamlDataOwned::Tagged(_, inner) => to_json(file, inner, path.clone(), positions)?,
        YamlDataOwned::Alias(_) | YamlDataOwned::BadValue => {
            return Err(bad("this value cannot be read".into()))
        }
    })
}

fn scalar(s: &ScalarOwned) -> Value {
    match s {
        ScalarOwned::Null => Value::Null,
        ScalarOwned::Boolean(b) => Value::Bool(*b),
        ScalarOwned::Integer(i) => Value::from(*i),
        ScalarOwned::FloatingPoint(f) => serde_json::Number::from_f64(f.into_inner())
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        ScalarOwned::String(s) => Value::String(s.clone()),
    }
}

/// Adds one file's document to the merged one: named objects by name, each described once.
fn merge(
    into: &mut Loaded,
    file: &Path,
    value: Value,
    positions: HashMap<String, Pos>,
    problems: &mut Vec<Problem>,
) {
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let Value::Object(top) = value else {
        problems.push(Problem {
            pos: positions.get("").cloned(),
            path: String::new(),
            message: "a workspace file is a mapping of sections (`version`, `connections`, …)"
                .into(),
        });
        return;
    };
    let doc = into
        .doc
        .as_object_mut()
        .expect("the merged document is a mapping");
    let mut taken: Vec<String> = Vec::new();
    for (section, v) in top {
        match (NAMED.contains(&section.as_str()), v) {
            (true, Value::Object(objects)) => {
                let slot = doc
                    .entry(section.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Some(slot) = slot.as_object_mut() else {
                    continue;
                };
                for (name, obj) in objects {
                    let path = format!("{section}.{name}");
                    if slot.contains_key(&name) {
                        let first = into
                            .positions
                            .get(&path)
                            .map_or(String::new(), |p| format!(" (first at {p})"));
                        problems.push(Problem {
                            pos: positions.get(&path).cloned(),
                            path,
                            message: format!(
                                "`{name}` is described twice{first}; describe each object once"
                            ),
                        });
                        continue;
                    }
                    into.dirs.insert(path.clone(), dir.clone());
                    taken.push(path);
                    slot.insert(name, obj);
                }
            }
            (_, v) => {
                if section == "version" && doc.get("version") == Some(&v) {
                    continue;
                }
                if doc.contains_key(&section) {
                    let first = into
                        .positions
                        .get(&section)
                        .map_or(String::new(), |p| format!(" (first at {p})"));
                    problems.push(Problem {
                        pos: positions.get(&section).cloned(),
                        path: section.clone(),
                        message: format!("`{section}` is given twice{first}; give it in one file"),
                    });
                    continue;
                }
                into.dirs.insert(section.clone(), dir.clone());
                taken.push(section.clone());
                doc.insert(section, v);
            }
        }
    }
    // Positions of the objects this file contributed, and of its section keys.
    for (p, pos) in positions {
        let owner = taken
            .iter()
            .any(|t| p == *t || p.starts_with(&format!("{t}.")) || p.starts_with(&format!("{t}[")));
        if owner || !into.positions.contains_key(&p) {
            into.positions.insert(p, pos);
        }
    }
}

/// What to do with a secret reference: read it, or (offline validation, where the operator's secrets
/// may be absent) only check its form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    Read,
    CheckOnly,
}

/// What stands for an unread secret in offline checks.
const UNREAD: &str = "unread-secret";

/// Replaces every `{env: VAR}` / `{file: PATH}` with the secret's value. A secret setting written as a
/// value is refused: secrets never live in the files.
pub fn resolve_secrets(loaded: &mut Loaded, mode: Secrets) -> Result<(), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut edits: Vec<(String, Vec<String>, Value)> = Vec::new();
    let doc = &loaded.doc;
    for (name, conn) in doc["connections"].as_object().into_iter().flatten() {
        for field in sluice_store::SECRET_FIELDS {
            let path = format!("connections.{name}.settings.{field}");
            match conn.get("settings").and_then(|s| s.get(field)) {
                None | Some(Value::Null) => {}
                Some(Value::String(_)) => problems.push(loaded.problem(
                    &path,
                    format!("`{field}` is a secret and is never written in the files: write `{field}: {{env: VARIABLE}}` or `{field}: {{file: PATH}}`"),
                )),
                Some(r) => match read_secret(loaded, &format!("connections.{name}"), r, mode) {
                    Ok(v) => edits.push(("connections".into(), vec![name.clone(), "settings".into(), field.into()], Value::String(v))),
                    Err(m) => problems.push(loaded.problem(&path, m)),
                },
            }
        }
    }
    for (name, p) in doc["pipelines"].as_object().into_iter().flatten() {
        let path = format!("pipelines.{name}.alert_webhook");
        // A webhook URL may be written as it is, or kept out of the files like a secret.
        if let Some(r @ Value::Object(_)) = p.get("alert_webhook") {
            match read_secret(loaded, &format!("pipelines.{name}"), r, mode) {
                Ok(v) => {
                    let v = if v == UNREAD {
                        "https://unread.invalid/".to_string()
                    } else {
                        v
                    };
                    edits.push((
                        "pipelines".into(),
                        vec![name.clone(), "alert_webhook".into()],
                        Value::String(v),
                    ))
                }
                Err(m) => problems.push(loaded.problem(&path, m)),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    for (section, path, value) in edits {
        let mut slot = &mut loaded.doc[section.as_str()];
        for p in &path {
            slot = &mut slot[p.as_str()];
        }
        *slot = value;
    }
    Ok(())
}

fn read_secret(loaded: &Loaded, owner: &str, r: &Value, mode: Secrets) -> Result<String, String> {
    let obj = r
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(|| "a secret is `{env: VARIABLE}` or `{file: PATH}`".to_string())?;
    let (how, what) = obj.iter().next().expect("one entry");
    let Some(what) = what.as_str().filter(|s| !s.trim().is_empty()) else {
        return Err(format!("`{how}` names an environment variable or a file"));
    };
    match (how.as_str(), mode) {
        ("env", Secrets::CheckOnly) | ("file", Secrets::CheckOnly) => Ok(UNREAD.into()),
        ("env", Secrets::Read) => {
            std::env::var(what).map_err(|_| format!("environment variable `{what}` is not set"))
        }
        ("file", Secrets::Read) => {
            let dir = loaded.dirs.get(owner).cloned().unwrap_or_default();
            let file = dir.join(what);
            std::fs::read_to_string(&file)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read the secret file {}: {e}", file.display()))
        }
        (other, _) => Err(format!(
            "a secret is `{{env: VARIABLE}}` or `{{file: PATH}}`, not `{other}`"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_point_at_keys_and_items() {
        let text = "version: 1\npipelines:\n  P:\n    connection: wh\n    filter:\n      conditions:\n        - property: country\n";
        let (v, pos) = parse(Path::new("w.yaml"), text).unwrap();
        assert_eq!(v["pipelines"]["P"]["connection"], "wh");
        let p = &pos["pipelines.P.connection"];
        assert_eq!((p.line, p.col), (4, 5));
        let p = &pos["pipelines.P.filter.conditions[0].property"];
        assert_eq!((p.line, p.col), (7, 11));
    }

    #[test]
    fn nearest_enclosing_position_when_the_path_is_not_written() {
        let (doc, positions) =
            parse(Path::new("w.yaml"), "pipelines:\n  P:\n    table: t\n").unwrap();
        let l = Loaded {
            doc,
            positions,
            dirs: HashMap::new(),
        };
        let p = l.position("pipelines.P.schedule").unwrap();
        assert_eq!((p.line, p.col), (2, 3));
    }

    #[test]
    fn bad_yaml_says_where() {
        let e = parse(Path::new("w.yaml"), "a: [1,\n b: 2").unwrap_err();
        assert!(
            e.pos.is_some() && e.message.starts_with("not valid YAML"),
            "{e}"
        );
    }
}
