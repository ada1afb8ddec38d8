//! Row hashing for change detection.
//!
//! A run writes a row only when its hash differs from the one recorded for its key after the previous
//! confirmed write. The hash covers the *converted* values in column order plus a per-pipeline "shape"
//! (table and mapped columns), so changing the mapping or the table makes every row compare afresh.

use xxhash_rust::xxh3::{xxh3_128_with_seed, Xxh3};

use crate::value::Value;

/// A 128-bit row hash; collisions are negligible at billions of rows.
pub type RowHash = u128;

fn feed(h: &mut Vec<u8>, v: &Value) {
    // A tag byte per kind keeps `Int(1)` apart from `String("1")`; lengths keep sequences unambiguous.
    match v {
        Value::Null => h.push(0),
        Value::Bool(b) => h.extend_from_slice(&[1, *b as u8]),
        Value::Int(i) => {
            h.push(2);
            h.extend_from_slice(&i.to_le_bytes());
        }
        Value::Float(f) => {
            h.push(3);
            h.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::Decimal(d) => {
            h.push(4);
            h.extend_from_slice(&d.serialize());
        }
        Value::String(s) => bytes(h, 5, s.as_bytes()),
        Value::Date(d) => {
            h.push(6);
            let mut text = String::with_capacity(10);
            crate::schema::push_date(d, &mut text);
            h.extend_from_slice(text.as_bytes());
        }
        Value::Time(t) => {
            h.push(7);
            h.extend_from_slice(t.format("%H:%M:%S%.f").to_string().as_bytes());
        }
        Value::DateTime(dt) => {
            h.push(8);
            h.extend_from_slice(&dt.timestamp_micros().to_le_bytes());
        }
        Value::Uuid(u) => {
            h.push(9);
            h.extend_from_slice(u.as_bytes());
        }
        Value::Json(j) => bytes(h, 10, j.to_string().as_bytes()),
        Value::Array(items) => {
            h.push(11);
            h.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                feed(h, i);
            }
        }
        Value::Bytes(b) => bytes(h, 12, b),
    }
}

fn bytes(h: &mut Vec<u8>, tag: u8, b: &[u8]) {
    h.push(tag);
    h.extend_from_slice(&(b.len() as u64).to_le_bytes());
    h.extend_from_slice(b);
}

/// Hashes a row's values under a shape seed (see [`shape_seed`]).
///
/// The values are laid out in one buffer and hashed at once: many small streaming updates cost more
/// than the hashing itself. The digest is the one streaming the same bytes gives.
pub fn hash_row(seed: u64, values: &[Value]) -> RowHash {
    hash_values(seed, values)
}

/// [`hash_row`] of values taken from wherever they are, without gathering them in a row first.
pub fn hash_values<'a>(seed: u64, values: impl IntoIterator<Item = &'a Value>) -> RowHash {
    with_buffer(seed, |buf| {
        for v in values {
            feed(buf, v);
        }
    })
}

/// The hash of a row's columns as a database sent them (`None` for NULL), before any decoding: equal
/// bytes are equal values, so a row compares unchanged without being decoded. Tagged apart from every
/// typed value, so no such hash equals one of [`hash_values`].
pub fn hash_raw_columns<'a>(
    seed: u64,
    columns: impl IntoIterator<Item = Option<&'a [u8]>>,
) -> RowHash {
    with_buffer(seed, |buf| {
        for c in columns {
            match c {
                None => buf.push(0),
                Some(b) => bytes(buf, 13, b),
            }
        }
    })
}

/// The hash of a row whose one value is the JSON object `doc` (`hash_row(seed, &[Value::json(doc)])`),
/// without building that value: the object's text is written straight into the buffer.
pub fn hash_json_object(seed: u64, doc: &serde_json::Map<String, serde_json::Value>) -> RowHash {
    with_buffer(seed, |buf| {
        buf.push(10);
        let at = buf.len();
        buf.extend_from_slice(&[0; 8]);
        serde_json::to_writer(&mut *buf, doc).expect("a JSON map writes to memory");
        let len = (buf.len() - at - 8) as u64;
        buf[at..at + 8].copy_from_slice(&len.to_le_bytes());
    })
}

/// [`hash_json_object`] of the object whose JSON text (as `serde_json` writes it) is `text`.
pub fn hash_json_text(seed: u64, text: &str) -> RowHash {
    with_buffer(seed, |buf| bytes(buf, 10, text.as_bytes()))
}

/// Lays a row out in this thread's buffer with `fill` and hashes it at once.
fn with_buffer(seed: u64, fill: impl FnOnce(&mut Vec<u8>)) -> RowHash {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        fill(buf);
        let digest = xxh3_128_with_seed(buf, seed);
        if buf.capacity() > 1 << 20 {
            // One huge row should not pin its buffer for the rest of the thread's life.
            *buf = Vec::new();
        }
        digest
    })
}

/// A seed naming what the row hashes mean: the table and the ordered list of written columns.
pub fn shape_seed(parts: &[&str]) -> u64 {
    parts_hasher(parts).digest()
}

/// A 128-bit digest of a list of texts, in hex: for telling whether what a result was computed from
/// changed.
pub fn fingerprint(parts: &[&str]) -> String {
    format!("{:032x}", parts_hasher(parts).digest128())
}

fn parts_hasher(parts: &[&str]) -> Xxh3 {
    let mut h = Xxh3::new();
    for p in parts {
        // The length keeps ["ab", "c"] apart from ["a", "bc"].
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_digest_equals_the_streamed_one() {
        // Hashes recorded by earlier versions streamed the same bytes; they must still compare equal.
        for len in [0usize, 1, 16, 17, 128, 129, 240, 241, 1000, 5000] {
            let row = vec![
                Value::String("é".repeat(len).into()),
                Value::Int(len as i64),
            ];
            let mut streamed = Xxh3::with_seed(42);
            let mut buf = Vec::new();
            for v in &row {
                feed(&mut buf, v);
            }
            streamed.update(&buf[..buf.len() / 3]);
            streamed.update(&buf[buf.len() / 3..]);
            assert_eq!(hash_row(42, &row), streamed.digest128(), "length {len}");
        }
    }

    #[test]
    fn a_json_object_hashes_as_the_row_of_its_value() {
        // Source runs record this hash; it must stay the one `hash_row` gives, or every row would
        // look changed after an upgrade.
        let doc = serde_json::json!({"b": "x\u{e9}\"", "a": [1, 2.5, null], "o": {"k": true}});
        let map = doc.as_object().unwrap();
        for seed in [0, 7, u64::MAX] {
            assert_eq!(
                hash_json_object(seed, map),
                hash_row(seed, &[Value::json(doc.clone())])
            );
        }
        let text = serde_json::to_string(map).unwrap();
        assert_eq!(hash_json_text(9, &text), hash_json_object(9, map));
        let other = serde_json::json!({"b": "y"});
        assert_ne!(
            hash_json_object(1, map),
            hash_json_object(1, other.as_object().unwrap())
        );
    }

    #[test]
    fn raw_columns_keep_nulls_empties_and_boundaries_apart() {
        let h = |cols: &[Option<&[u8]>]| hash_raw_columns(3, cols.iter().copied());
        assert_eq!(h(&[Some(b"ab"), None]), h(&[Some(b"ab"), None]));
        assert_ne!(h(&[None]), h(&[Some(b"")]));
        assert_ne!(h(&[Some(b"ab"), Some(b"c")]), h(&[Some(b"a"), Some(b"bc")]));
        assert_ne!(h(&[Some(b"a"), None]), h(&[None, Some(b"a")]));
        // Never the hash of the same text as a typed value.
        assert_ne!(h(&[Some(b"x")]), hash_row(3, &[Value::String("x".into())]));
    }

    #[test]
    fn kinds_and_order_matter() {
        let s = shape_seed(&["t", "a"]);
        assert_ne!(
            hash_row(s, &[Value::Int(1)]),
            hash_row(s, &[Value::String("1".into())])
        );
        assert_ne!(
            hash_row(s, &[Value::String("ab".into()), Value::String("c".into())]),
            hash_row(s, &[Value::String("a".into()), Value::String("bc".into())])
        );
        assert_ne!(
            hash_row(s, &[Value::Null]),
            hash_row(shape_seed(&["t", "b"]), &[Value::Null])
        );
        assert_eq!(hash_row(s, &[Value::Int(7)]), hash_row(s, &[Value::Int(7)]));
    }
}
