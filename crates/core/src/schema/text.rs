//! A profile sent as JSON text, validated and normalized straight into the text it is stored as.
//!
//! Loading a batch of profiles used to build a `serde_json::Value` tree for each one (a map entry and an
//! owned key for every property), validate it, and write it out again in the profile store's one
//! writer. Here the text is read once, property by property, and the normalized document is written out
//! as it is read: property names are looked up in the Customer Model as they come, strings already in
//! their normalized form are copied, and only scalars that need converting become values.
//!
//! This is a fast path, never a second set of rules: whatever it does not handle in the common way (an
//! unknown or repeated key, a value of the wrong type, a null where none is allowed, a malformed `_id`)
//! sends the profile through [`Schema::validate_owned`], which decides and names every problem. A
//! profile that takes the fast path gets exactly the text `validate_owned` would have produced
//! (`Value::Object(doc).to_string()`), which the tests check against it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::{
    id_problem, normalize_value_owned, At, InvalidProfile, Property, PropertyType, Schema, ID,
    UPDATED_AT,
};

/// Why a profile's text was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum TextRefused {
    /// Not JSON (serde's message).
    Malformed(String),
    /// JSON, but not an object.
    NotObject,
    /// An object that does not fit the Customer Model.
    Invalid(InvalidProfile),
}

impl Schema {
    /// A profile given as JSON text, validated and normalized: its id and its properties written out as
    /// the JSON text of the stored document, exactly as [`Schema::validate_owned`] of the parsed object
    /// followed by writing the document out.
    pub fn validate_text(&self, text: &str) -> Result<(String, String), TextRefused> {
        match self.validate_text_fast(text) {
            Some(done) => Ok(done),
            None => self.validate_text_fully(text),
        }
    }

    /// [`Schema::validate_text`] without its fast path: the text parsed into a value and checked by
    /// [`Schema::validate_owned`]. The reference the fast path is held to.
    pub fn validate_text_fully(&self, text: &str) -> Result<(String, String), TextRefused> {
        match serde_json::from_str::<Json>(text) {
            Err(e) => Err(TextRefused::Malformed(e.to_string())),
            Ok(Json::Object(obj)) => match self.validate_owned(obj) {
                Ok((id, doc)) => Ok((id, Json::Object(doc).to_string())),
                Err(invalid) => Err(TextRefused::Invalid(invalid)),
            },
            Ok(_) => Err(TextRefused::NotObject),
        }
    }

    /// The fast path of [`Schema::validate_text`]; `None` sends the profile the slow way.
    fn validate_text_fast(&self, text: &str) -> Option<(String, String)> {
        let mut out = Vec::with_capacity(text.len());
        let mut de = serde_json::Deserializer::from_str(text);
        let id = Top {
            props: &self.properties,
            out: &mut out,
        }
        .deserialize(&mut de)
        .ok()?;
        de.end().ok()?;
        // Only JSON text and whole UTF-8 strings were written.
        String::from_utf8(out).ok().map(|doc| (id, doc))
    }
}

/// The error that leaves the fast path; its message is never shown.
#[derive(Debug)]
struct Detour;

impl fmt::Display for Detour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the full validation")
    }
}

fn detour<E: de::Error>() -> E {
    E::custom(Detour)
}

/// Which properties of an object were already written: a repeated key is left to the full validation,
/// where the later value wins.
enum Seen {
    Bits(u128),
    Many(Vec<bool>),
}

impl Seen {
    fn new(n: usize) -> Self {
        if n <= 128 {
            Seen::Bits(0)
        } else {
            Seen::Many(vec![false; n])
        }
    }

    /// `false` when `i` was seen before.
    fn first(&mut self, i: usize) -> bool {
        match self {
            Seen::Bits(bits) => {
                let bit = 1u128 << i;
                let first = *bits & bit == 0;
                *bits |= bit;
                first
            }
            Seen::Many(seen) => !std::mem::replace(&mut seen[i], true),
        }
    }
}

/// An object key, borrowed from the text when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("JSON writes to memory");
}

/// Writes the members of an object of `props` as they are read; `_id` (only at the top) is returned
/// rather than written.
fn object_members<'de, A: MapAccess<'de>>(
    props: &[Property],
    out: &mut Vec<u8>,
    mut map: A,
    top: bool,
) -> Result<Option<String>, A::Error> {
    out.push(b'{');
    let mut seen = Seen::new(props.len());
    let mut id = None;
    let mut written = false;
    let mut next = 0;
    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
        if top && key == ID {
            if id.is_some() {
                return Err(detour());
            }
            id = Some(map.next_value_seed(IdSeed)?);
            continue;
        }
        if top && key == UPDATED_AT {
            // Dropped, as the full validation drops it; parsed as a value so that what fails to
            // parse there fails here too.
            map.next_value::<Json>()?;
            continue;
        }
        // Profiles mostly list their properties in the model's order: the one after the last
        // property found is tried first.
        let found = match props.get(next) {
            Some(p) if p.name == key => Some(next),
            _ => props.iter().position(|p| p.name == key),
        };
        let Some(i) = found else {
            return Err(detour());
        };
        next = i + 1;
        if !seen.first(i) {
            return Err(detour());
        }
        if written {
            out.push(b',');
        }
        written = true;
        write_json(out, key.as_ref());
        out.push(b':');
        let p = &props[i];
        map.next_value_seed(Val {
            ty: &p.ty,
            nullable: p.nullable,
            out,
        })?;
    }
    out.push(b'}');
    Ok(id)
}

/// The whole profile: its id.
struct Top<'a> {
    props: &'a [Property],
    out: &'a mut Vec<u8>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a profile")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<String, A::Error> {
        object_members(self.props, self.out, map, true)?.ok_or_else(detour)
    }
}

/// `_id`: a string that is a valid id, or a number as its text.
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for IdSeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an id")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        match id_problem(s) {
            None => Ok(s.to_owned()),
            Some(_) => Err(detour()),
        }
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<String, E> {
        Ok(serde_json::Number::from(n).to_string())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<String, E> {
        Ok(serde_json::Number::from(n).to_string())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<String, E> {
        serde_json::Number::from_f64(n)
            .map(|n| n.to_string())
            .ok_or_else(detour)
    }
}

/// One value of type `ty`, written out normalized.
struct Val<'a> {
    ty: &'a PropertyType,
    nullable: bool,
    out: &'a mut Vec<u8>,
}

impl Val<'_> {
    /// A scalar that may need converting: normalized as the full validation does, or left to it.
    fn scalar<E: de::Error>(self, value: Json) -> Result<(), E> {
        let mut errors = Vec::new();
        match normalize_value_owned(self.ty, value, At::Top(""), &mut errors) {
            Some(v) if errors.is_empty() => {
                write_json(self.out, &v);
                Ok(())
            }
            _ => Err(detour()),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Val<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if matches!(self.ty, PropertyType::Json) {
            let v = Json::deserialize(d)?;
            if v.is_null() && !self.nullable {
                return Err(detour());
            }
            write_json(self.out, &v);
            return Ok(());
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Val<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a property's value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        if !self.nullable {
            return Err(detour());
        }
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<(), E> {
        if matches!(self.ty, PropertyType::Boolean) {
            self.out
                .extend_from_slice(if b { b"true" } else { b"false" });
            return Ok(());
        }
        self.scalar(Json::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<(), E> {
        self.scalar(Json::from(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<(), E> {
        self.scalar(Json::from(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<(), E> {
        // As serde_json reads a float into a value.
        match serde_json::Number::from_f64(n) {
            Some(n) => self.scalar(Json::Number(n)),
            None => Err(detour()),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        if matches!(self.ty, PropertyType::String) {
            write_json(self.out, s);
            return Ok(());
        }
        self.scalar(Json::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<(), E> {
        if matches!(self.ty, PropertyType::String) {
            write_json(self.out, &s);
            return Ok(());
        }
        self.scalar(Json::String(s))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        match self.ty {
            PropertyType::Object(props) => object_members(props, self.out, map, false).map(drop),
            _ => Err(detour()),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let PropertyType::Array(inner) = self.ty else {
            return Err(detour());
        };
        self.out.push(b'[');
        let mut first = true;
        loop {
            if !first {
                self.out.push(b',');
            }
            // An item of an array may be null whatever its type, as in the full validation.
            let item = Val {
                ty: inner,
                nullable: true,
                out: &mut *self.out,
            };
            if seq.next_element_seed(item)?.is_none() {
                if !first {
                    self.out.pop();
                }
                break;
            }
            first = false;
        }
        self.out.push(b']');
        Ok(())
    }
}

/// [`super::merge_profile_changed`] of documents given as their JSON text, as the profile store keeps
/// them: the merged document written out when the merge changed `stored`, `None` when it left it as it
/// was. Each value is copied as its text, and parsed only where the two documents disagree on it.
///
/// Both texts are expected as serde_json writes a document (compact, no repeated keys); anything else is
/// merged the slow way, through maps, with the same outcome.
pub fn merge_profile_text(stored: &str, update: &str) -> Result<Option<String>, String> {
    let mut out = Vec::with_capacity(stored.len() + update.len());
    if let Some(changed) = merge_members(stored, update, &mut out) {
        // Only JSON text was written.
        return Ok(changed.then(|| String::from_utf8(out).expect("JSON text is UTF-8")));
    }
    let as_map = |text: &str, what: &str| match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(format!("the {what} document is not a JSON object")),
        Err(e) => Err(format!("the {what} document is not valid JSON: {e}")),
    };
    let mut merged = as_map(stored, "stored")?;
    let update = as_map(update, "new")?;
    Ok(super::merge_profile_changed(&mut merged, update).then(|| Json::Object(merged).to_string()))
}

/// An object's members in order, each value left as its text; `None` for anything but an object
/// without repeated keys.
fn members(text: &str) -> Option<Vec<(Cow<'_, str>, &RawValue)>> {
    struct Members<'de>(Vec<(Cow<'de, str>, &'de RawValue)>);
    impl<'de> Deserialize<'de> for Members<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Members<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Members<'de>, A::Error> {
                    let mut out: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
                    // Keys are compared only when their marks collide.
                    let mut marks = 0u64;
                    while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                        let mark = key_mark(&key);
                        if marks & mark != 0 && out.iter().any(|(k, _)| *k == key) {
                            return Err(detour());
                        }
                        marks |= mark;
                        out.push((key, map.next_value()?));
                    }
                    Ok(Members(out))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Members<'_>>(text).ok().map(|m| m.0)
}

/// One of 64 bits for a key, from its length and its first and last bytes.
fn key_mark(key: &str) -> u64 {
    let b = key.as_bytes();
    let h = (b.len() as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(b.first().copied().unwrap_or(0)) << 8)
        .wrapping_add(u64::from(b.last().copied().unwrap_or(0)) << 16)
        .wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    1 << (h >> 58)
}

/// Writes the merge of the object texts `stored` and `update` into `out`; whether it changed `stored`,
/// or `None` to merge the slow way.
fn merge_members(stored: &str, update: &str, out: &mut Vec<u8>) -> Option<bool> {
    let stored = members(stored)?;
    let update = members(update)?;
    let mut used = vec![false; update.len()];
    let mut changed = false;
    let mut next = 0;
    out.push(b'{');
    for (i, (key, old)) in stored.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(out, key.as_ref());
        out.push(b':');
        // The two documents mostly list their keys in the same order: the key after the last one
        // found is tried first.
        let found = match update.get(next) {
            Some((k, _)) if k == key => Some(next),
            _ => update.iter().position(|(k, _)| k == key),
        };
        let Some(j) = found else {
            out.extend_from_slice(old.get().as_bytes());
            continue;
        };
        used[j] = true;
        next = j + 1;
        let new = update[j].1.get();
        let old = old.get();
        if old.starts_with('{') && new.starts_with('{') {
            changed |= merge_members(old, new, out)?;
        } else if old == new || (may_be_same(old, new) && same_value(old, new)?) {
            out.extend_from_slice(old.as_bytes());
        } else {
            out.extend_from_slice(new.as_bytes());
            changed = true;
        }
    }
    // `out` may hold the documents around this one: whether this object has a member yet is its own.
    let mut written = !stored.is_empty();
    for ((key, new), used) in update.iter().zip(used) {
        if used {
            continue;
        }
        if written {
            out.push(b',');
        }
        written = true;
        write_json(out, key.as_ref());
        out.push(b':');
        out.extend_from_slice(new.get().as_bytes());
        changed = true;
    }
    out.push(b'}');
    Some(changed)
}

/// Whether two value texts that differ as text may still be the same value: never two strings without
/// escapes, nor two literals, nor values of different kinds. Serde writes every other value one way
/// except for an object's key order (an array may hold objects), and numbers and escapes may be
/// spelled several ways in text written elsewhere.
fn may_be_same(a: &str, b: &str) -> bool {
    let kind = |t: &str| match t.as_bytes().first() {
        Some(b'"') => 0,
        Some(b'-' | b'0'..=b'9') => 1,
        Some(b'[') => 2,
        Some(b'{') => 3,
        _ => 4,
    };
    match (kind(a), kind(b)) {
        (0, 0) => a.contains('\\') || b.contains('\\'),
        (1, 1) => true,
        (2, 2) | (3, 3) => true,
        _ => false,
    }
}

/// Whether two value texts that differ as text are the same value (`1.0` and `1e0`, an object's keys
/// in another order).
fn same_value(a: &str, b: &str) -> Option<bool> {
    let a: Json = serde_json::from_str(a).ok()?;
    let b: Json = serde_json::from_str(b).ok()?;
    Some(a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> Schema {
        let props = json!([
            {"name": "email", "type": "string", "nullable": false},
            {"name": "name", "type": "string", "nullable": true},
            {"name": "age", "type": "int", "nullable": true},
            {"name": "score", "type": "float"},
            {"name": "vip", "type": "boolean"},
            {"name": "balance", "type": "decimal(12,2)"},
            {"name": "signed_up", "type": "datetime"},
            {"name": "birthday", "type": "date"},
            {"name": "wakes", "type": "time"},
            {"name": "ref", "type": "uuid"},
            {"name": "extra", "type": "json"},
            {"name": "tags", "type": "array(string)"},
            {"name": "counts", "type": "array(int)"},
            {"name": "address", "type": "object", "properties": [
                {"name": "city", "type": "string"},
                {"name": "zip", "type": "int", "nullable": true},
                {"name": "geo", "type": "object", "properties": [
                    {"name": "lat", "type": "float"}
                ]}
            ]},
            {"name": "visits", "type": "array(object)", "properties": [
                {"name": "at", "type": "datetime"}
            ]}
        ]);
        wire(props)
    }

    fn wire(props: Json) -> Schema {
        let wire: crate::schema::SchemaWire =
            serde_json::from_value(json!({ "properties": props })).expect("a model's wire form");
        Schema::from_wire(&wire).expect("a valid model")
    }

    /// What the full validation makes of `text`, written out.
    fn slow(schema: &Schema, text: &str) -> Result<(String, String), TextRefused> {
        schema.validate_text_fully(text)
    }

    const CASES: &[&str] = &[
        r#"{"_id":"p1","email":"a@b.c","age":41,"vip":true}"#,
        r#"{"email":"a@b.c","_id":"p1","_updated_at":"2020-01-01T00:00:00Z","name":null}"#,
        r#"{ "_id" : 17 , "email" : "x\"y\u00e9\n" , "name" : "\ud83d\ude00" }"#,
        r#"{"_id":-3,"age":"42","score":"1.5","vip":"yes","balance":12.3}"#,
        r#"{"_id":1.5,"score":3,"balance":"1e2","signed_up":"2024-05-06T07:08:09+02:00"}"#,
        r#"{"_id":"p","birthday":"2001-02-03","wakes":"07:30","ref":"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}"#,
        r#"{"_id":"p","extra":{"b":[1,2,{"c":null}],"a":"x"},"tags":["a",null,"b"],"counts":[1,"2",3.0]}"#,
        r#"{"_id":"p","tags":[],"counts":[],"address":{},"visits":[]}"#,
        r#"{"_id":"p","address":{"zip":null,"city":"Oslo","geo":{"lat":59.9}}}"#,
        r#"{"_id":"p","visits":[{"at":"2024-01-01T00:00:00.500+00:00"},null,{"at":"2024-01-02T00:00:00Z"}]}"#,
        r#"{"_id":"p","score":1e300,"age":9007199254740993,"counts":[9223372036854775807,-9223372036854775808]}"#,
        r#"{"_id":"p","extra":null,"score":-0.0}"#,
        r#"{"_id":"p","email":1234,"name":false}"#,
        // Refused, each for its reason.
        r#"{"email":"no id"}"#,
        r#"{"_id":"","email":"x"}"#,
        r#"{"_id":"   ","email":"x"}"#,
        r#"{"_id":true}"#,
        r#"{"_id":"p","unknown":1}"#,
        r#"{"_id":"p","email":null}"#,
        r#"{"_id":"p","age":"forty"}"#,
        r#"{"_id":"p","tags":"a"}"#,
        r#"{"_id":"p","address":{"city":"x","moon":1}}"#,
        r#"{"_id":"p","address":[]}"#,
        r#"{"_id":"p","visits":[{"at":"yesterday"}]}"#,
        r#"{"_id":"p","age":1,"age":2}"#,
        r#"{"_id":"p","_id":"q"}"#,
        r#"{"_id":"p","address":{"city":"a","city":"b"}}"#,
        r#"{"_id":"p","balance":"12345678901234.5"}"#,
        r#"{"_id":"p","counts":[18446744073709551615]}"#,
        r#"[1,2]"#,
        r#""text""#,
        r#"{"_id":"p","email":"x"} trailing"#,
        r#"{"_id":"p","score":1e999}"#,
        r#"{"_id":"p","email":"x""#,
    ];

    #[test]
    fn the_fast_path_agrees_with_the_full_validation() {
        let schema = model();
        for text in CASES {
            assert_eq!(
                schema.validate_text(text),
                slow(&schema, text),
                "profile text {text}"
            );
        }
        // The long id: at the limit it is kept, past it refused.
        for len in [crate::schema::MAX_ID_LEN, crate::schema::MAX_ID_LEN + 1] {
            let text = format!(r#"{{"_id":"{}","email":"x"}}"#, "i".repeat(len));
            assert_eq!(schema.validate_text(&text), slow(&schema, &text));
        }
    }

    #[test]
    fn common_profiles_take_the_fast_path() {
        let schema = model();
        for text in &CASES[..13] {
            assert!(
                schema.validate_text_fast(text).is_some(),
                "expected the fast path for {text}"
            );
        }
        for text in &CASES[13..] {
            assert!(
                schema.validate_text_fast(text).is_none(),
                "expected the full validation for {text}"
            );
        }
    }

    #[test]
    fn a_wide_model_tracks_repeats_past_128_properties() {
        let props: Vec<Json> = (0..200)
            .map(|i| json!({"name": format!("p{i}"), "type": "int"}))
            .collect();
        let schema = wire(Json::Array(props));
        let ok = r#"{"_id":"w","p0":1,"p199":2,"p150":3}"#;
        assert_eq!(
            schema.validate_text_fast(ok),
            Some(("w".into(), r#"{"p0":1,"p199":2,"p150":3}"#.into()))
        );
        let repeated = r#"{"_id":"w","p150":1,"p199":2,"p150":3}"#;
        assert!(schema.validate_text_fast(repeated).is_none());
        assert_eq!(
            schema.validate_text(repeated),
            slow(&schema, repeated),
            "the later value wins, as in a map"
        );
    }

    /// The merge of two documents through maps, written out.
    fn merged_by_maps(stored: &Json, update: &Json) -> Option<String> {
        let mut m = stored.as_object().cloned().expect("an object");
        let u = update.as_object().cloned().expect("an object");
        crate::schema::merge_profile_changed(&mut m, u).then(|| Json::Object(m).to_string())
    }

    #[test]
    fn a_merge_of_texts_agrees_with_a_merge_of_maps() {
        let docs = [
            json!({}),
            json!({"email": "a@b.c", "age": 41, "tags": ["x", "y"]}),
            json!({"age": 41}),
            json!({"age": 42, "name": "Ola"}),
            json!({"email": "a@b.c", "age": 41, "tags": ["x", "y"]}),
            json!({"address": {"city": "Oslo", "geo": {"lat": 59.9}}, "age": 1}),
            json!({"address": {"city": "Bergen"}}),
            json!({"address": {"geo": {"lat": 60.4, "lon": 5.3}, "zip": 5003}}),
            json!({"address": "not an object"}),
            json!({"address": null, "extra": {"b": 1, "a": [1, {"c": 2}]}}),
            json!({"extra": {"a": [1, {"c": 2}], "b": 1}}),
            json!({"extra": {"a": [1, {"c": 3}], "b": 1}}),
            json!({"score": 1.0, "name": "x\"y\u{e9}\n"}),
            json!({"score": 1.5, "name": "x\"y\u{e9}\n"}),
            json!({"score": null}),
            json!({"tags": []}),
            json!({"address": {}}),
            json!({"address": {"geo": {}}, "tags": [{"a": 1}]}),
            json!({"é\"k": {"n": 1}}),
            json!({"é\"k": {"n": 1, "m": 2}}),
        ];
        for stored in &docs {
            for update in &docs {
                let by_text = merge_profile_text(&stored.to_string(), &update.to_string());
                assert_eq!(
                    by_text,
                    Ok(merged_by_maps(stored, update)),
                    "merging {update} into {stored}"
                );
            }
        }
    }

    #[test]
    fn a_merge_of_texts_that_are_not_compact_documents() {
        // Whitespace, a repeated key and a number written two ways: merged through maps, or found
        // unchanged where only the spelling differs.
        let stored = r#"{ "a" : 1, "b": {"c": 2}, "a": 3 }"#;
        assert_eq!(
            merge_profile_text(stored, r#"{"a":3}"#),
            Ok(None),
            "the later `a` is the stored one"
        );
        assert_eq!(
            merge_profile_text(r#"{"n":1.0}"#, r#"{"n":1.00}"#),
            Ok(None)
        );
        assert_eq!(
            merge_profile_text(r#"{"o":{"x":1,"y":2}}"#, r#"{"o":{"y":2,"x":1}}"#),
            Ok(None)
        );
        assert_eq!(
            merge_profile_text(r#"{"s":"\u00e9"}"#, r#"{"s":"é"}"#),
            Ok(None),
            "one string escaped two ways"
        );
        assert_eq!(
            merge_profile_text(r#"{"l":[{"x":1,"y":2}]}"#, r#"{"l":[{"y":2,"x":1}]}"#),
            Ok(None)
        );
        assert_eq!(
            merge_profile_text(r#"{"n":1}"#, r#"{"n":"1"}"#),
            Ok(Some(r#"{"n":"1"}"#.into())),
            "a number and a string are different values"
        );
        assert!(merge_profile_text("[1]", "{}").is_err());
        assert!(merge_profile_text("{}", "{").is_err());
    }
}
