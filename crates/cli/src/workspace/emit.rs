//! Writing a workspace document as YAML: block mappings and sequences, scripts as literal blocks, and a
//! scalar quoted whenever YAML could read it as something else (`on`, `1.0`, `null`, `a: b`).

use serde_json::Value;

/// The document as YAML text, ending with a newline.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    block(v, 0, &mut out);
    out
}

fn block(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                out.push_str(&pad);
                out.push_str(&scalar_text(k));
                out.push(':');
                value_after_key(v, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push('-');
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // The first entry goes on the dash's line, the rest under it.
                        let mut inner = String::new();
                        block(item, indent + 2, &mut inner);
                        out.push(' ');
                        out.push_str(inner.trim_start());
                    }
                    _ => value_after_key(item, indent, out),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            block(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            block(v, indent + 2, out);
        }
        Value::String(s) if literal_block(s) => {
            out.push_str(if s.ends_with('\n') { " |\n" } else { " |-\n" });
            let pad = " ".repeat(indent + 2);
            for line in s.trim_end_matches('\n').split('\n') {
                if !line.is_empty() {
                    out.push_str(&pad);
                    out.push_str(line);
                }
                out.push('\n');
            }
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// A multi-line text reads back exactly from a literal block when its lines carry nothing YAML would
/// fold or trim.
fn literal_block(s: &str) -> bool {
    s.contains('\n')
        && !s.contains(['\r', '\t'])
        && !s.starts_with([' ', '\n'])
        && !s.ends_with("\n\n")
        && s.lines().all(|l| !l.ends_with(' '))
}

fn inline(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_text(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

/// A string as a plain scalar when YAML reads it back as the same string, else double-quoted (JSON's
/// escapes are YAML's).
fn scalar_text(s: &str) -> String {
    if plain_ok(s) {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

fn plain_ok(s: &str) -> bool {
    const RESERVED: [&str; 12] = [
        "null", "Null", "NULL", "~", "true", "True", "TRUE", "false", "False", "FALSE", "yes", "no",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    if RESERVED.contains(&s)
        || matches!(
            s.to_ascii_lowercase().as_str(),
            "on" | "off" | "y" | "n" | ".inf" | ".nan"
        )
    {
        return false;
    }
    if s.parse::<f64>().is_ok() || s.starts_with("0x") || s.starts_with("0o") {
        return false;
    }
    (first.is_alphanumeric() || first == '_' || first == '/')
        && s.chars()
            .all(|c| c.is_alphanumeric() || " _-./()@+".contains(c))
        && !s.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_back_as_written() {
        let v = json!({
            "version": 1,
            "a b": {"on": "on", "n": "12", "t": "true", "e": "", "q": "x: y", "u": "città"},
            "list": [{"name": "email", "type": "string"}, {"name": "x", "properties": [{"name": "y"}]}],
            "plain": ["IT", "FR"],
            "script": "function transform(p) {\n  return {id: p._id};\n}\n",
            "nested_empty": {"m": {}, "l": []},
            "nul": null, "num": 1.5, "neg": -3
        });
        let text = to_yaml(&v);
        let (back, _) = super::super::load::parse(std::path::Path::new("x.yaml"), &text).unwrap();
        assert_eq!(back, v, "{text}");
        assert!(text.contains("script: |\n"), "{text}");
    }
}
