//! The importing client's side of the fast path: an NDJSON line checked against the Customer Model's
//! names without building it, and a CSV record written straight out as the JSON text that is sent.
//! Whatever these do not handle goes the way of a full parse into a value, which decides.

use std::fmt;

use anyhow::{Context, Result};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{id_of, Known};

/// For an NDJSON line that is a JSON object whose properties are all in the model: its `_id` (when it
/// has one that a profile may have). `None` for any other line, which takes the full parse. A key
/// with escapes is left to the full parse too.
pub(super) fn plain_line(known: &Known, text: &str) -> Option<Option<String>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let id = Members { known, top: true }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(id)
}

/// Not a plain line; the message is never shown.
fn not_plain<E: de::Error>() -> E {
    E::custom("not a plain line")
}

/// An object's members: every key a property of this level, and objects of the model walked into.
struct Members<'k> {
    known: &'k Known,
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Members<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Members<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<&'de str>()? {
            if self.top && key == "_id" {
                id = id_of(&map.next_value::<Value>()?);
                continue;
            }
            if self.top && key == "_updated_at" {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            match self.known.0.get(key) {
                None => return Err(not_plain()),
                Some(None) => {
                    map.next_value::<IgnoredAny>()?;
                }
                Some(Some(children)) => {
                    map.next_value_seed(Child(children))?;
                }
            }
        }
        Ok(id)
    }
}

/// The value of an object property: walked into when it is an object, any other value passed over
/// (the server says what is wrong with it).
struct Child<'k>(&'k Known);

impl<'de> DeserializeSeed<'de> for Child<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Child<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Members {
            known: self.0,
            top: false,
        }
        .visit_map(map)
        .map(drop)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
}

/// Where the kept columns of a CSV file go in a profile: dotted headers nest, in the order they first
/// appear. `None` from [`CsvLayout::new`] when two headers collide (the same path twice, or a path
/// under another column's), which records then settle one by one, as values.
pub(super) struct CsvLayout {
    members: Vec<(String, Node)>,
    id: Option<usize>,
}

enum Node {
    /// A column; `structured` cells hold JSON text.
    Cell {
        column: usize,
        header: String,
        structured: bool,
    },
    Object(Vec<(String, Node)>),
}

impl CsvLayout {
    pub(super) fn new(headers: &[String], keep: &[bool], structured: &[String]) -> Option<Self> {
        let mut members: Vec<(String, Node)> = Vec::new();
        for (column, h) in headers.iter().enumerate() {
            if !keep[column] {
                continue;
            }
            let mut segments: Vec<&str> = h.split('.').collect();
            let last = segments.pop()?;
            let mut level = &mut members;
            for s in segments {
                let at = match level.iter().position(|(name, _)| name == s) {
                    Some(at) => at,
                    None => {
                        level.push((s.to_string(), Node::Object(Vec::new())));
                        level.len() - 1
                    }
                };
                level = match &mut level[at].1 {
                    Node::Object(children) => children,
                    Node::Cell { .. } => return None,
                };
            }
            if level.iter().any(|(name, _)| name == last) {
                return None;
            }
            level.push((
                last.to_string(),
                Node::Cell {
                    column,
                    header: h.clone(),
                    structured: structured.iter().any(|s| s == h),
                },
            ));
        }
        let id = members.iter().find_map(|(name, node)| match node {
            Node::Cell { column, .. } if name == "_id" => Some(*column),
            _ => None,
        });
        Some(CsvLayout { members, id })
    }

    /// A record as the JSON text of its profile, written into the empty `out`, with its `_id` (empty
    /// cells are left out, and an object with nothing in it).
    pub(super) fn write(
        &self,
        record: &csv::StringRecord,
        out: &mut Vec<u8>,
    ) -> Result<Option<String>> {
        out.clear();
        write_object(&self.members, record, out)?;
        if out.is_empty() {
            out.extend_from_slice(b"{}");
        }
        Ok(self
            .id
            .and_then(|c| record.get(c))
            .filter(|cell| !cell.is_empty())
            .map(str::to_string))
    }
}

/// Writes the object of `members` unless all its cells are empty; whether it wrote it.
fn write_object(
    members: &[(String, Node)],
    record: &csv::StringRecord,
    out: &mut Vec<u8>,
) -> Result<bool> {
    let start = out.len();
    let mut written = false;
    for (name, node) in members {
        let mark = out.len();
        out.push(if written { b',' } else { b'{' });
        serde_json::to_writer(&mut *out, name).expect("JSON writes to memory");
        out.push(b':');
        let wrote = match node {
            Node::Cell {
                column,
                header,
                structured,
            } => {
                let cell = record.get(*column).unwrap_or_default();
                if cell.is_empty() {
                    false
                } else if *structured {
                    let v: Value = serde_json::from_str(cell)
                        .with_context(|| format!("column `{header}` must hold JSON text"))?;
                    serde_json::to_writer(&mut *out, &v).expect("JSON writes to memory");
                    true
                } else {
                    serde_json::to_writer(&mut *out, cell).expect("JSON writes to memory");
                    true
                }
            }
            Node::Object(children) => write_object(children, record, out)?,
        };
        if wrote {
            written = true;
        } else {
            out.truncate(mark);
        }
    }
    if written {
        out.push(b'}');
    } else {
        out.truncate(start);
    }
    Ok(written)
}
