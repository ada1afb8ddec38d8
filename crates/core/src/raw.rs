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
    /// The paths, by slot.
    pub fn paths(&self) -> &[Vec<String>] {
        &self.paths
    }

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
    seen: Vec<Hint>,
}

/// The key seen last at one position of the top level, and which wanted key it is.
#[derive(Debug, Clone)]
struct Hint {
    key: Box<str>,
    at: Option<usize>,
    /// Whether the key is written in JSON as it is (no character needs an escape), so that the text of
    /// a document can be compared with it byte for byte.
    plain: bool,
}

impl Hint {
    /// The length of `text`'s opening when it is this key, quoted: `"key"`.
    fn matches(&self, text: &[u8]) -> Option<usize> {
        let key = self.key.as_bytes();
        let n = key.len();
        (self.plain
            && text.len() > n + 1
            && text[0] == b'"'
            && text[n + 1] == b'"'
            && &text[1..n + 1] == key)
            .then_some(n + 2)
    }
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
        let Locator { root, seen, .. } = self;
        if Scan::new(&profile.doc)
            .document(root, seen, &mut spans)
            .is_some()
        {
            return Ok(Located { profile, spans });
        }
        // Anything the quick scan does not vouch for goes through the parser, which finds the same
        // spans in a valid document and says what is wrong with an invalid one.
        spans.iter_mut().for_each(|s| *s = None);
        let mut de = serde_json::Deserializer::from_str(&profile.doc);
        de.deserialize_map(LevelVisitor {
            level: root,
            seen: Some(seen),
            spans: &mut spans,
        })
        .and_then(|()| de.end())
        // The parser skips what the mapping does not read without reading numbers, so a number beyond
        // f64 (`1e400`) would pass there and fail the full parse: documents left to the parser are
        // rare (`\u` escapes), so they are read whole to refuse the same ones (found by the fuzz target
        // `profile`).
        .and_then(|()| serde_json::from_str::<serde_json::Value>(&profile.doc).map(drop))
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
    seen: &mut Option<&mut Vec<Hint>>,
    position: usize,
    key: &str,
) -> Option<usize> {
    let Some(seen) = seen else {
        return level.find(key);
    };
    if let Some(hint) = seen.get(position) {
        if *hint.key == *key {
            return hint.at;
        }
    }
    let at = level.find(key);
    let entry = Hint {
        key: Box::from(key),
        at,
        plain: key.bytes().all(|b| b != b'"' && b != b'\\' && b >= 0x20),
    };
    if position < seen.len() {
        seen[position] = entry;
    } else if position == seen.len() {
        seen.push(entry);
    }
    at
}

struct LevelVisitor<'l, 'a> {
    level: &'l Level,
    seen: Option<&'l mut Vec<Hint>>,
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

/// A quick scan of a document for the slots' spans: the same walk as [`LevelVisitor`], over the bytes.
/// It accepts only text the JSON parser accepts, and gives up (`None`) on whatever it does not check as
/// closely as the parser: `\u` escapes, escaped keys, control characters, deep nesting, any syntax error.
/// The parser reads those documents instead; most stored documents have none of them, and this scan
/// takes a fraction of the parser's time (it was a sixth of a run's CPU).
struct Scan<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

/// Deeper documents are left to the parser, whose own limit is 128.
const SCAN_DEPTH: usize = 64;

impl<'a> Scan<'a> {
    fn new(text: &'a str) -> Self {
        Scan {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    fn document(
        &mut self,
        root: &Level,
        seen: &mut Vec<Hint>,
        spans: &mut [Option<&'a str>],
    ) -> Option<()> {
        self.space();
        self.object(root, &mut Some(seen), spans, 0)?;
        self.space();
        (self.at == self.bytes.len()).then_some(())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// An object at `level` (which keys are wanted), recording the spans of wanted values.
    fn object(
        &mut self,
        level: &Level,
        seen: &mut Option<&mut Vec<Hint>>,
        spans: &mut [Option<&'a str>],
        depth: usize,
    ) -> Option<()> {
        self.expect(b'{')?;
        self.space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut position = 0;
        loop {
            // The key this position had last time, compared whole: no scan for its end, no lookup.
            let hinted = seen
                .as_deref()
                .and_then(|hints| hints.get(position))
                .and_then(|hint| Some((hint.matches(&self.bytes[self.at..])?, hint.at)));
            let found = match hinted {
                Some((len, at)) => {
                    self.at += len;
                    at
                }
                None => {
                    let key = self.string()?;
                    if key.contains('\\') {
                        return None;
                    }
                    wanted(level, seen, position, key)
                }
            };
            self.space();
            self.expect(b':')?;
            self.space();
            let start = self.at;
            match found {
                Some(at) => {
                    let want = &level.keys[at].1;
                    match &want.inner {
                        Some(inner) => {
                            inner.clear(spans);
                            if self.peek()? == b'{' {
                                self.object(inner, &mut None, spans, depth + 1)?;
                            } else {
                                self.value(depth + 1)?;
                            }
                        }
                        None => self.value(depth + 1)?,
                    }
                    if let Some(slot) = want.slot {
                        spans[slot] = Some(&self.text[start..self.at]);
                    }
                }
                None => self.value(depth + 1)?,
            }
            position += 1;
            if !self.more(b'}')? {
                return Some(());
            }
        }
    }

    /// After an item of an object or array: `true` past a comma, `false` past the closing `close`.
    fn more(&mut self, close: u8) -> Option<bool> {
        self.space();
        let byte = self.peek()?;
        self.at += 1;
        if byte == b',' {
            self.space();
            Some(true)
        } else {
            (byte == close).then_some(false)
        }
    }

    /// Past any value.
    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > SCAN_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' => self.object(&Level::default(), &mut None, &mut [], depth),
            b'[' => {
                self.at += 1;
                self.space();
                if self.peek()? == b']' {
                    self.at += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    if !self.more(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.word(b"true"),
            b'f' => self.word(b"false"),
            b'n' => self.word(b"null"),
            _ => self.number(),
        }
    }

    fn word(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..]
            .starts_with(word)
            .then(|| self.at += word.len())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let digits = |s: &mut Self| {
            let from = s.at;
            while s.peek().is_some_and(|b| b.is_ascii_digit()) {
                s.at += 1;
            }
            s.at > from
        };
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !digits(self) {
                return None;
            }
        }
        // The parser refuses a number beyond the range of f64 (`1e400`, 400 digits); so does the scan,
        // handing the document over to say so. Only long numbers and exponents can get there.
        let text = &self.bytes[start..self.at];
        if text.len() > 300 || text.iter().any(|b| matches!(b, b'e' | b'E')) {
            let finite = std::str::from_utf8(text)
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(f64::is_finite);
            if !finite {
                return None;
            }
        }
        Some(())
    }

    /// A string's text between its quotes, escapes undecoded; only the escapes of one character.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let from = self.at;
        loop {
            // Straight to the next byte that is not plain text.
            self.at += plain_run(&self.bytes[self.at..])?;
            match self.bytes[self.at] {
                b'"' => {
                    self.at += 1;
                    return Some(&self.text[from..self.at - 1]);
                }
                b'\\' => match self.bytes.get(self.at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
                    _ => return None,
                },
                _ => return None,
            }
        }
    }
}

/// How many bytes at the start of `bytes` are plain string text — not a quote, a backslash or a control
/// character; `None` when all are (the string does not end). Eight bytes are tested at a time: strings
/// are most of a document, and a byte-by-byte search was the scan's largest cost.
fn plain_run(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Sets the high bit of each byte that is zero: exactly for the lowest such byte (bytes above it may
    // be flagged falsely), so the lowest flag of the word is the first byte that is not plain text.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut at = 0;
    while let Some(chunk) = bytes.get(at..at + 8) {
        // Little-endian whatever the machine: the first byte is the lowest.
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = zero(x ^ (ONES * u64::from(b'"')));
        let backslash = zero(x ^ (ONES * u64::from(b'\\')));
        // Bytes below 0x20 (bytes of 0x80 and above are excluded by `!x`).
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS;
        let found = quote | backslash | control;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|n| at + n)
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

/// Calls `each` with the JSON text of every item of the array `text`, in order; `None` when `text` is not
/// an array, or holds anything the quick scan leaves to the parser (then nothing should be kept of the
/// calls already made).
pub fn each_item<'a>(text: &'a str, mut each: impl FnMut(&'a str)) -> Option<()> {
    let mut scan = Scan::new(text);
    scan.expect(b'[')?;
    scan.space();
    if scan.peek()? == b']' {
        scan.at += 1;
    } else {
        loop {
            let start = scan.at;
            scan.value(1)?;
            each(&text[start..scan.at]);
            if !scan.more(b']')? {
                break;
            }
        }
    }
    (scan.at == text.len()).then_some(())
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
    fn a_remembered_key_is_matched_only_by_the_very_same_key() {
        let s = slots(&["a", "ab", "x\"y"]);
        let mut loc = Locator::new(&s);
        let docs = [
            (r#"{"a": 1, "ab": 2}"#, [Some("1"), Some("2"), None]),
            // The remembered `a` is a prefix of `ab`, and `ab` of `abc`: neither may match.
            (r#"{"ab": 3, "abc": 4}"#, [None, Some("3"), None]),
            (r#"{"a": 5, "ab": 6}"#, [Some("5"), Some("6"), None]),
            // A key that needs an escape is read by the parser, and remembered as decoded text, which
            // the raw text of a later document must not be compared with byte for byte.
            (r#"{"x\"y": 7, "ab": 8}"#, [None, Some("8"), Some("7")]),
            (r#"{"x\"y": 9, "ab": 10}"#, [None, Some("10"), Some("9")]),
            (r#"{"x": 11, "a": 12}"#, [Some("12"), None, None]),
        ];
        for (text, want) in docs {
            let p = raw(text);
            let l = loc.locate(&p).unwrap();
            let got = [
                l.path(0, &path("a")),
                l.path(1, &path("ab")),
                l.path(2, &["x\"y".to_string()]),
            ];
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn documents_that_are_not_objects_are_refused_with_the_profile_named() {
        let mut loc = Locator::new(&slots(&["a"]));
        for bad in [r#"[1]"#, r#"{"a": 1"#, r#"{"a": 1} x"#, "", r#""text""#] {
            let e = loc.locate(&raw(bad)).unwrap_err();
            assert!(e.contains("profile `p1`"), "{bad}: {e}");
        }
    }

    /// The spans the parser finds, for comparison with the quick scan.
    fn parsed_spans<'a>(
        level: &Level,
        text: &'a str,
        slots: usize,
    ) -> Option<Vec<Option<&'a str>>> {
        let mut spans = vec![None; slots];
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(LevelVisitor {
            level,
            seen: None,
            spans: &mut spans,
        })
        .and_then(|()| de.end())
        .ok()?;
        Some(spans)
    }

    #[test]
    fn the_quick_scan_finds_what_the_parser_finds_or_leaves_the_document_to_it() {
        let s = slots(&["a", "b.c", "b", "d"]);
        let level = Level::of(&s);
        let quick = [
            r#"{"a": 1, "b": {"c": [1, 2.5e-3, -0, true, false, null], "x": {}}, "d": "t\"x\\/\n"}"#,
            r#" { "d" : [ ] , "a" : { "b" : "" } , "b" : 3 , "a" : -12.0E+2 } "#,
            "{\"b\": {\"c\": \"é ☃\"}, \"b\": {}, \"z\": [[[]], {\"a\": 1}]}",
            "{}",
        ];
        for text in quick {
            let mut spans = vec![None; 4];
            let mut seen = Vec::new();
            assert!(
                Scan::new(text)
                    .document(&level, &mut seen, &mut spans)
                    .is_some(),
                "{text}"
            );
            assert_eq!(Some(spans), parsed_spans(&level, text, 4), "{text}");
        }
        let deep = format!("{{\"a\": {}1{}}}", "[".repeat(70), "]".repeat(70));
        let long = format!("{{\"a\": 1{}}}", "0".repeat(400));
        let left = [
            r#"{"a": "\u00e9"}"#,
            r#"{"\"a": 1}"#,
            "{\"a\": \"tab\there\"}",
            r#"{"a": 01}"#,
            r#"{"a": 1.}"#,
            r#"{"a": -}"#,
            r#"{"a": 1e}"#,
            r#"{"a": tru}"#,
            r#"{"a": 1,}"#,
            r#"{"a": [1,]}"#,
            r#"{"a" 1}"#,
            r#"{"a": 1} 2"#,
            r#"[1]"#,
            // Beyond f64, which the parser refuses (found by the fuzz target `profile`).
            r#"{"b": {"c": 1e400}}"#,
            r#"{"a": -2.5E+309}"#,
            long.as_str(),
            deep.as_str(),
        ];
        for text in left {
            let mut spans = vec![None; 4];
            let mut seen = Vec::new();
            assert!(
                Scan::new(text)
                    .document(&level, &mut seen, &mut spans)
                    .is_none(),
                "{text}"
            );
        }
        // What the scan leaves is still read, by the parser.
        let mut loc = Locator::new(&s);
        let p = raw(r#"{"a": "\u00e9", "b": {"c": 1}}"#);
        let l = loc.locate(&p).unwrap();
        assert_eq!(l.path(0, &path("a")), Some(r#""\u00e9""#));
        assert_eq!(l.path(1, &path("b.c")), Some("1"));
        // And refused as the parser refuses it, even where the mapping does not read the bad value.
        let p = raw(r#"{"a": "\u00e9", "z": 1e400}"#);
        assert!(loc.locate(&p).unwrap_err().contains("out of range"));
        assert!(p.parse().is_err());
    }

    #[test]
    fn plain_runs_stop_at_the_first_quote_backslash_or_control_character() {
        let slow = |b: &[u8]| b.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20);
        let mut cases: Vec<Vec<u8>> =
            vec![b"".to_vec(), b"abc".to_vec(), "é\"".as_bytes().to_vec()];
        // Every stop byte at every position of strings around the eight-byte steps, after plain bytes
        // of both halves of the byte range.
        for len in 0..20 {
            for stop in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for at in 0..len {
                    for fill in [b'a', 0x20, 0x7f, 0x80, 0xff, 0x21, 0x5d] {
                        let mut v = vec![fill; len];
                        v[at] = stop;
                        cases.push(v);
                    }
                }
            }
        }
        // Two stop bytes, and the bytes a borrow turns into false flags (one above a stop: 0x01, 0x21,
        // 0x23, 0x5d) right after the first: the first stop must be found, never a flag above it.
        for len in 2..18 {
            for at in 0..len - 1 {
                for first in [b'"', b'\\', 0x00, 0x1f] {
                    for next in [b'"', b'\\', 0x00, 0x01, 0x21, 0x23, 0x5d, 0x20] {
                        let mut v = vec![b'a'; len];
                        v[at] = first;
                        v[at + 1] = next;
                        cases.push(v);
                    }
                }
            }
        }
        for case in &cases {
            assert_eq!(plain_run(case), slow(case), "{case:?}");
        }
    }

    #[test]
    fn array_items_are_found_or_left_to_the_parser() {
        let items = |text: &str| {
            let mut out = Vec::new();
            each_item(text, |t| out.push(t.to_string())).map(|()| out)
        };
        assert_eq!(items("[]"), Some(vec![]));
        assert_eq!(items("[ ]"), Some(vec![]));
        assert_eq!(
            items(r#"["a", 1 ,{"b":[2]},null,"c\"d"]"#),
            Some(
                ["\"a\"", "1", r#"{"b":[2]}"#, "null", r#""c\"d""#]
                    .map(String::from)
                    .to_vec()
            )
        );
        for refused in [
            "",
            "[",
            "[1,]",
            "[1 2]",
            "{}",
            "\"a\"",
            "[1] x",
            r#"["\u00e9"]"#,
            "[01]",
        ] {
            assert_eq!(items(refused), None, "{refused}");
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
