//! Reading a destination's settings from JSON while collecting every problem at once.
//!
//! Settings come from the API, the YAML workspace file and the UI's forms. A plain serde derive stops at the
//! first bad field, but the API must name every offending field in one 422 answer, so each destination's
//! `config` module reads its object field by field through a [`SettingsReader`], which records a message per
//! field name and, at the end, refuses unknown fields (the same contract as `deny_unknown_fields`).
//!
//! Forms send numbers as strings and empty inputs as `""` or `null`; both are accepted where the meaning is
//! unambiguous (an empty optional field means "use the default").

use serde_json::{Map, Value as Json};
use sluice_core::FieldErrors;

pub(crate) struct SettingsReader<'a> {
    object: Option<&'a Map<String, Json>>,
    known: Vec<&'static str>,
    pub errors: FieldErrors,
}

impl<'a> SettingsReader<'a> {
    pub fn new(json: &'a Json) -> Self {
        let mut errors = FieldErrors::new();
        let object = json.as_object();
        if object.is_none() {
            errors.add("", "the settings must be a JSON object");
        }
        Self {
            object,
            known: Vec::new(),
            errors,
        }
    }

    /// The raw value of `name`, `None` when absent or `null`.
    pub fn raw(&mut self, name: &'static str) -> Option<&'a Json> {
        self.known.push(name);
        self.object
            .and_then(|o| o.get(name))
            .filter(|v| !v.is_null())
    }

    /// A text field, trimmed (host names and identifiers never carry meaningful outer blanks). An empty
    /// value counts as absent; a required field that is absent is reported.
    pub fn string(&mut self, name: &'static str, label: &str, required: bool) -> Option<String> {
        let value = match self.raw(name) {
            None => None,
            Some(Json::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
            Some(_) => {
                self.errors.add(name, format!("{label} must be text"));
                return None;
            }
        };
        if value.is_none() && required {
            self.errors.add(name, format!("{label} is required"));
        }
        value
    }

    /// A secret text field, kept exactly as given (a password may start or end with a blank).
    pub fn secret(&mut self, name: &'static str, label: &str) -> Option<String> {
        match self.raw(name) {
            None => None,
            Some(Json::String(s)) => Some(s.clone()),
            Some(_) => {
                self.errors.add(name, format!("{label} must be text"));
                None
            }
        }
    }

    /// An integer in `min..=max`, given as a JSON number or a numeric string; `default` when absent.
    pub fn integer(
        &mut self,
        name: &'static str,
        label: &str,
        min: i64,
        max: i64,
        default: i64,
    ) -> Option<i64> {
        let parsed = match self.raw(name) {
            None => return Some(default),
            Some(Json::Number(n)) => n.as_i64(),
            Some(Json::String(s)) if s.trim().is_empty() => return Some(default),
            Some(Json::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        match parsed {
            Some(v) if (min..=max).contains(&v) => Some(v),
            Some(_) => {
                self.errors
                    .add(name, format!("{label} must be between {min} and {max}"));
                None
            }
            None => {
                self.errors.add(
                    name,
                    format!("{label} must be a whole number between {min} and {max}"),
                );
                None
            }
        }
    }

    /// Reports every field that no `raw`/`string`/… call asked for, and returns all the errors.
    pub fn finish(mut self) -> FieldErrors {
        if let Some(object) = self.object {
            for key in object.keys() {
                if !self.known.contains(&key.as_str()) {
                    let expected = self.known.join(", ");
                    self.errors.add(
                        key.clone(),
                        format!("unknown setting `{key}`: expected one of {expected}"),
                    );
                }
            }
        }
        self.errors
    }
}

/// The parts of a database URL after its scheme: `user[:password]@host[:port]/database[?query]`, with
/// user and password percent-decoded and `[::1]` accepted for IPv6 hosts. Each destination turns them into
/// its own settings.
pub(crate) struct UrlParts<'a> {
    pub user: String,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<&'a str>,
    /// Still percent-encoded.
    pub database: &'a str,
    pub query: Option<&'a str>,
}

impl<'a> UrlParts<'a> {
    pub fn split(rest: &'a str) -> Result<Self, String> {
        use crate::postgres::config::percent_decode;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (percent_decode(user)?, Some(percent_decode(pw)?)),
                None => (percent_decode(u)?, None),
            },
            None => (String::new(), None),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unterminated [ in the host")?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        Ok(UrlParts {
            user,
            password,
            host,
            port,
            database,
            query,
        })
    }

    /// The start of a settings object: `host` (`localhost` when the URL gives none) and `port`, when the
    /// URL gives one.
    pub fn host_and_port(&self) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let mut json = serde_json::Map::new();
        let host = if self.host.is_empty() {
            "localhost"
        } else {
            &self.host
        };
        json.insert("host".into(), host.into());
        if let Some(p) = self.port {
            let p: u16 = p.parse().map_err(|_| format!("bad port `{p}`"))?;
            json.insert("port".into(), p.into());
        }
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_problem() {
        let settings = json!({"host": 3, "port": "70000", "extra": true, "user": ""});
        let mut r = SettingsReader::new(&settings);
        assert_eq!(r.string("host", "the host", true), None);
        assert_eq!(r.integer("port", "the port", 1, 65535, 5432), None);
        assert_eq!(r.string("user", "the user name", true), None);
        let errors = r.finish();
        assert_eq!(errors.len(), 4, "{errors}");
        assert!(errors.get("extra").unwrap()[0].contains("unknown setting `extra`"));
        assert!(errors.get("port").unwrap()[0].contains("between 1 and 65535"));
        assert!(errors.get("user").unwrap()[0].contains("required"));
    }

    #[test]
    fn numbers_as_strings_and_defaults() {
        let settings = json!({"port": " 6432 ", "timeout": ""});
        let mut r = SettingsReader::new(&settings);
        assert_eq!(r.integer("port", "the port", 1, 65535, 5432), Some(6432));
        assert_eq!(r.integer("timeout", "the timeout", 1, 600, 10), Some(10));
        assert!(r.finish().is_empty());
    }

    #[test]
    fn not_an_object() {
        let settings = json!([1]);
        let r = SettingsReader::new(&settings);
        assert!(r.finish().get("").is_some());
    }
}
