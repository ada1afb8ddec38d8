//! Stored profiles read lazily: a run keeps each document as its JSON text and finds only the properties
//! its mapping reads.
//!
//! Parsing every document into a `serde_json::Map` (an ordered map hashed with SipHash) and looking each
//! mapped path up by name took about half of a run's CPU. Instead, a mapping numbers the top-level
//! properties it reads once, when it is compiled ([`Slots`]); a [`Locator`] scans each document's text
//! once, records where the value of each of those properties starts and ends, and skips everything else
//! without building it; values are converted straight from their text when the mapping reads them
//! ([`crate::Value::from_raw`]).
//!
//! The result is the same as reading the parsed [`crate::Profile`]: the same JSON parser validates the
//! text, the last of two equal keys wins as it does in a parsed map, and anything but a plain scalar is
//! converted through the parsed form. A test compares the two readings on awkward documents.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::profile::RawProfile;

/// The property paths a compiled mapping reads, each given a number (its slot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    paths: Vec<Vec<String>>,
}

impl Slots {
    /// The slot of the path `segments` (`["address", "city"]`), given one if it has none yet.
    pub fn slot(&mut self, segments: &[String]) -> usize {
        match self.paths.iter().position(|p| p == segments) {
            Some(i) => i,
            None => {
                self.paths.push(segments.to_vec());
                self.paths.len() - 1
            }
        }
    }
}

/// One level of the slots' paths: the keys wanted in an object, each with its slot (the value itself is
/// read) and the level below (keys wanted inside it), or both.
#[derive(Debug, Clone, Default)]
struct Level {
    keys: Vec<(String, Want)>,
}

#[derive(Debug, Clone, Default)]
struct Want {
    slot: Option<usize>,
    inner: Option<Level>,
}

impl Level {
    fn of(slots: &Slots) -> Level {
        let mut root = Level::default();
        for (slot, path) in slots.paths.iter().enumerate() {
            root.insert(path, slot);
        }
        root
    }

    fn insert(&mut self, path: &[String], slot: usize) {
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let at = self.find(first).unwrap_or_else(|| {
            self.keys.push((first.clone(), Want::default()));
            self.keys.len() - 1
        });
        let want = &mut self.keys[at].1;
        if rest.is_empty() {
            want.slot = Some(slot);
        } else {
            want.inner
                .get_or_insert_with(Level::default)
                .insert(rest, slot);
        }
    }

    fn find(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|(k, _)| k == key)
    }

    /// Forgets what an earlier occurrence of a key found below it: the last occurrence wins, whole.
    fn clear(&self, spans: &mut [Option<&str>]) {
        for (_, want) in &self.keys {
            if let Some(slot) = want.slot {
                spans[slot] = None;
            }
            if let Some(inner) = &want.inner {
                inner.clear(spans);
            }
        }
    }
}

/// Finds the slots' values in documents. Stored documents of one Customer Model list their properties
/// in the same order, so it remembers, for each position of the top level, the key seen there last and
/// what is wanted of it: a key is then matched with one comparison instead of a search.
#[derive(Debug, Clone)]
pub struct Locator {
    root: Level,
    slots: usize,
    seen: Vec<(Box<str>, Option<usize>)>,
}

/// A document whose slots have been found: each is the JSON text of the value at the slot's path
/// (without the whitespace around it), `None` when the document has nothing there.
#[derive(Debug)]
pub struct Located<'a> {
    pub profile: &'a RawProfile,
    spans: Vec<Option<&'a str>>,
}

impl<'a> Located<'a> {
    /// The JSON text at a path: by slot, or — for a slot this locator does not know — by walking the
    /// document again.
    pub fn path(&self, slot: usize, segments: &[String]) -> Option<&'a str> {
        match self.spans.get(slot) {
            Some(span) => *span,
            None => segments
                .iter()
                .try_fold(self.profile.doc.as_str(), |text, seg| member(text, seg)),
        }
    }
}

impl Locator {
    pub fn new(slots: &Slots) -> Self {
        Self {
            root: Level::of(slots),
            slots: slots.paths.len(),
            seen: Vec::new(),
        }
    }

    /// Scans `profile`'s document; an error says why its text is not a JSON object.
    pub fn locate<'a>(&mut self, profile: &'a RawProfile) -> Result<Located<'a>, String> {
        let mut spans = vec![None; self.slots];
        let mut de = serde_json::Deserializer::from_str(&profile.doc);
        let Locator { root, seen, .. } = self;
        de.deserialize_map(LevelVisitor {
            level: root,
            seen: Some(seen),
            spans: &mut spans,
        })
        .and_then(|()| de.end())
        .map_err(|e| {
            format!(
                "profile `{}` is not stored as a valid JSON object: {e}",
                profile.id
            )
        })?;
        Ok(Located { profile, spans })
    }
}

/// Which wanted key `key`, at `position` among its object's keys, is: through the hints when given.
fn wanted(
    level: &Level,
    seen: &mut Option<&mut Vec<(Box<str>, Option<usize>)>>,
    position: usize,
    key: &str,
) -> Option<usize> {
    let Some(seen) = seen else {
        return level.find(key);
    };
    if let Some((k, at)) = seen.get(position) {
        if **k == *key {
            return *at;
        }
    }
    let at = level.find(key);
    let entry = (Box::from(key), at);
    if position < seen.len() {
        seen[position] = entry;
    } else if position == seen.len() {
        seen.push(entry);
    }
    at
}

struct LevelVisitor<'l, 'a> {
    level: &'l Level,
    seen: Option<&'l mut Vec<(Box<str>, Option<usize>)>>,
    spans: &'l mut Vec<Option<&'a str>>,
}

impl<'de> Visitor<'de> for LevelVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut position = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match wanted(self.level, &mut self.seen, position, &key) {
                Some(at) => {
                    let value: &'de RawValue = map.next_value()?;
                    let want = &self.level.keys[at].1;
                    if let Some(slot) = want.slot {
                        self.spans[slot] = Some(value.get());
                    }
                    if let Some(inner) = &want.inner {
                        inner.clear(self.spans);
                        // Not an object: nothing is found below it, as in the parsed document.
                        let mut de = serde_json::Deserializer::from_str(value.get());
                        let _ = de.deserialize_any(LevelVisitor {
                            level: inner,
                            seen: None,
                            spans: self.spans,
                        });
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            position += 1;
        }
        Ok(())
    }
}

/// A key, borrowed from the text unless it has escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The JSON text of `key`'s value in the JSON object `text` (the last one, if the key repeats); `None`
/// when `text` is not an object or has no such key.
fn member<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let mut level = Level::default();
    level.insert(&[key.to_string()], 0);
    let mut spans = vec![None];
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(LevelVisitor {
        level: &level,
        seen: None,
        spans: &mut spans,
    })
    .ok()?;
    spans[0]
}

/// The text of a JSON string, borrowed when it has no escapes; `None` when `text` is not a string.
pub fn string(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn raw(doc: &str) -> RawProfile {
        RawProfile {
            id: "p1".into(),
            updated_at: DateTime::UNIX_EPOCH,
            doc: doc.into(),
        }
    }

    fn slots(paths: &[&str]) -> Slots {
        let mut s = Slots::default();
        for p in paths {
            let segments: Vec<String> = p.split('.').map(str::to_string).collect();
            s.slot(&segments);
        }
        s
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn finds_needed_properties_and_skips_the_rest() {
        let s = slots(&["b", "d"]);
        let mut loc = Locator::new(&s);
        let p = raw(r#"{"a": [1, {"x": 2}], "b": "two", "c": null, "d": {"e": 1}}"#);
        let l = loc.locate(&p).unwrap();
        assert_eq!(l.path(0, &path("b")), Some(r#""two""#));
        assert_eq!(l.path(1, &path("d")), Some(r#"{"e": 1}"#));
        // An unknown slot falls back to walking the path.
        assert_eq!(l.path(7, &path("c")), Some("null"));
        assert_eq!(l.path(7, &path("d.e")), Some("1"));
        assert_eq!(l.path(7, &path("zz")), None);
    }

    #[test]
    fn keys_in_another_order_or_escaped_or_repeated_are_still_found() {
        let s = slots(&["name", "city"]);
        let mut loc = Locator::new(&s);
        let first = raw(r#"{"name": "A", "city": "X"}"#);
        assert_eq!(
            loc.locate(&first).unwrap().path(1, &path("city")),
            Some(r#""X""#)
        );
        let second = raw(r#"{"city": "Y", "n\u0061me": "B", "city": "Z"}"#);
        let l = loc.locate(&second).unwrap();
        assert_eq!(l.path(0, &path("name")), Some(r#""B""#));
        assert_eq!(
            l.path(1, &path("city")),
            Some(r#""Z""#),
            "the last of equal keys wins"
        );
        let third = raw(r#"{"other": 1}"#);
        assert_eq!(loc.locate(&third).unwrap().path(0, &path("name")), None);
    }

    #[test]
    fn nested_paths_are_found_in_one_scan_and_the_last_object_wins_whole() {
        let s = slots(&["a.x", "a.y.z", "a", "b"]);
        let mut loc = Locator::new(&s);
        let p = raw(r#"{"a": {"x": 1, "y": {"z": "deep"}}, "b": 2}"#);
        let l = loc.locate(&p).unwrap();
        assert_eq!(l.path(0, &path("a.x")), Some("1"));
        assert_eq!(l.path(1, &path("a.y.z")), Some(r#""deep""#));
        assert_eq!(
            l.path(2, &path("a")),
            Some(r#"{"x": 1, "y": {"z": "deep"}}"#)
        );
        // A later `a` replaces the earlier one entirely, as in a parsed map.
        let p = raw(r#"{"a": {"x": 1, "y": {"z": 2}}, "a": {"x": 3}}"#);
        let l = loc.locate(&p).unwrap();
        assert_eq!(l.path(0, &path("a.x")), Some("3"));
        assert_eq!(l.path(1, &path("a.y.z")), None);
        let p = raw(r#"{"a": {"x": 1}, "a": "text"}"#);
        let l = loc.locate(&p).unwrap();
        assert_eq!(l.path(0, &path("a.x")), None);
        assert_eq!(l.path(2, &path("a")), Some(r#""text""#));
    }

    #[test]
    fn documents_that_are_not_objects_are_refused_with_the_profile_named() {
        let mut loc = Locator::new(&slots(&["a"]));
        for bad in [r#"[1]"#, r#"{"a": 1"#, r#"{"a": 1} x"#, "", r#""text""#] {
            let e = loc.locate(&raw(bad)).unwrap_err();
            assert!(e.contains("profile `p1`"), "{bad}: {e}");
        }
    }

    #[test]
    fn members_and_strings() {
        assert_eq!(
            member(r#"{"a": {"b": 1}, "c": 2}"#, "a"),
            Some(r#"{"b": 1}"#)
        );
        assert_eq!(member(r#"{"a": 1, "a": 3}"#, "a"), Some("3"));
        assert_eq!(member("null", "a"), None);
        assert_eq!(member(r#""a""#, "a"), None);
        assert_eq!(string(r#""plain""#).as_deref(), Some("plain"));
        assert!(matches!(string(r#""plain""#), Some(Cow::Borrowed(_))));
        assert_eq!(
            string(r#""tab\there \"q\" \u00e9""#).as_deref(),
            Some("tab\there \"q\" é")
        );
        assert_eq!(string("12"), None);
        assert_eq!(string("null"), None);
    }
}
