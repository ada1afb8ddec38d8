//! Row hashing for change detection.
//!
//! A run writes a row only when its hash differs from the one recorded for its key after the previous
//! confirmed write. The hash covers the *converted* values in column order plus a per-pipeline "shape"
//! (table and mapped columns), so changing the mapping or the table makes every row compare afresh.

use xxhash_rust::xxh3::Xxh3;

use crate::value::Value;

/// A 128-bit row hash; collisions are negligible at billions of rows.
pub type RowHash = u128;

fn feed(h: &mut Xxh3, v: &Value) {
    // A tag byte per kind keeps `Int(1)` apart from `String("1")`; lengths keep sequences unambiguous.
    match v {
        Value::Null => h.update(&[0]),
        Value::Bool(b) => h.update(&[1, *b as u8]),
        Value::Int(i) => {
            h.update(&[2]);
            h.update(&i.to_le_bytes());
        }
        Value::Float(f) => {
            h.update(&[3]);
            h.update(&f.to_bits().to_le_bytes());
        }
        Value::Decimal(d) => {
            h.update(&[4]);
            h.update(&d.serialize());
        }
        Value::String(s) => {
            h.update(&[5]);
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Date(d) => {
            h.update(&[6]);
            h.update(d.format("%Y-%m-%d").to_string().as_bytes());
        }
        Value::Time(t) => {
            h.update(&[7]);
            h.update(t.format("%H:%M:%S%.f").to_string().as_bytes());
        }
        Value::DateTime(dt) => {
            h.update(&[8]);
            h.update(&dt.timestamp_micros().to_le_bytes());
        }
        Value::Uuid(u) => {
            h.update(&[9]);
            h.update(u.as_bytes());
        }
        Value::Json(j) => {
            h.update(&[10]);
            let s = j.to_string();
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Array(items) => {
            h.update(&[11]);
            h.update(&(items.len() as u64).to_le_bytes());
            for i in items {
                feed(h, i);
            }
        }
        Value::Bytes(b) => {
            h.update(&[12]);
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        }
    }
}

/// Hashes a row's values under a shape seed (see [`shape_seed`]).
pub fn hash_row(seed: u64, values: &[Value]) -> RowHash {
    let mut h = Xxh3::with_seed(seed);
    for v in values {
        feed(&mut h, v);
    }
    h.digest128()
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
