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

/// The top-level properties a compiled mapping reads, each given a number (its slot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    names: Vec<String>,
}

impl Slots {
    /// The slot of `name`, given one if it has none yet.
    pub fn slot(&mut self, name: &str) -> usize {
        match self.find(name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        }
    }

    pub fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Finds the slots' values in documents. Stored documents of one Customer Model list their properties
/// in the same order, so it remembers, for each position, the key seen there last and its slot: a key is
/// then matched with one comparison instead of a search.
#[derive(Debug, Clone)]
pub struct Locator {
    slots: Slots,
    seen: Vec<(Box<str>, Option<usize>)>,
}

/// A document whose slots have been found: each is the JSON text of the property's value, `None` when
/// the document does not have the property.
#[derive(Debug)]
pub struct Located<'a> {
    pub profile: &'a RawProfile,
    spans: Vec<Option<&'a str>>,
}

impl<'a> Located<'a> {
    /// The JSON text of a top-level property: by slot, or — for a slot this locator does not know — by
    /// name, scanning the document again.
    pub fn property(&self, slot: usize, name: &str) -> Option<&'a str> {
        match self.spans.get(slot) {
            Some(span) => *span,
            None => member(&self.profile.doc, name),
        }
    }
}

impl Locator {
    pub fn new(slots: &Slots) -> Self {
        Self {
            slots: slots.clone(),
            seen: Vec::new(),
        }
    }

    /// Scans `profile`'s document; an error says why its text is not a JSON object.
    pub fn locate<'a>(&mut self, profile: &'a RawProfile) -> Result<Located<'a>, String> {
        let mut spans = vec![None; self.slots.names.len()];
        let mut de = serde_json::Deserializer::from_str(&profile.doc);
        de.deserialize_map(DocVisitor {
            locator: self,
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

    fn slot_at(&mut self, position: usize, key: &str) -> Option<usize> {
        if let Some((k, slot)) = self.seen.get(position) {
            if **k == *key {
                return *slot;
            }
        }
        let slot = self.slots.find(key);
        let entry = (Box::from(key), slot);
        if position < self.seen.len() {
            self.seen[position] = entry;
        } else if position == self.seen.len() {
            self.seen.push(entry);
        }
        slot
    }
}

struct DocVisitor<'l, 'a> {
    locator: &'l mut Locator,
    spans: &'l mut Vec<Option<&'a str>>,
}

impl<'de> Visitor<'de> for DocVisitor<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut position = 0;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match self.locator.slot_at(position, &key) {
                Some(slot) => {
                    let value: &'de RawValue = map.next_value()?;
                    self.spans[slot] = Some(value.get());
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
pub fn member<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    struct Find<'k>(&'k str);

    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<&'de str>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(k) = map.next_key_seed(KeySeed)? {
                if k == self.0 {
                    let value: &'de RawValue = map.next_value()?;
                    found = Some(value.get());
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(Find(key)).ok().flatten()
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

    fn slots(names: &[&str]) -> Slots {
        let mut s = Slots::default();
        for n in names {
            s.slot(n);
        }
        s
    }

    #[test]
    fn finds_needed_properties_and_skips_the_rest() {
        let s = slots(&["b", "d"]);
        let mut loc = Locator::new(&s);
        let p = raw(r#"{"a": [1, {"x": 2}], "b": "two", "c": null, "d": {"e": 1}}"#);
        let l = loc.locate(&p).unwrap();
        assert_eq!(l.property(0, "b"), Some(r#""two""#));
        assert_eq!(l.property(1, "d"), Some(r#"{"e": 1}"#));
        // An unknown slot falls back to a search by name.
        assert_eq!(l.property(7, "c"), Some("null"));
        assert_eq!(l.property(7, "zz"), None);
    }

    #[test]
    fn keys_in_another_order_or_escaped_or_repeated_are_still_found() {
        let s = slots(&["name", "city"]);
        let mut loc = Locator::new(&s);
        let first = raw(r#"{"name": "A", "city": "X"}"#);
        assert_eq!(
            loc.locate(&first).unwrap().property(1, "city"),
            Some(r#""X""#)
        );
        let second = raw(r#"{"city": "Y", "n\u0061me": "B", "city": "Z"}"#);
        let l = loc.locate(&second).unwrap();
        assert_eq!(l.property(0, "name"), Some(r#""B""#));
        assert_eq!(
            l.property(1, "city"),
            Some(r#""Z""#),
            "the last of equal keys wins"
        );
        let third = raw(r#"{"other": 1}"#);
        assert_eq!(loc.locate(&third).unwrap().property(0, "name"), None);
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
