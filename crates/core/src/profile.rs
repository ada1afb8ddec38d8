//! A stored profile: its id, last update and normalized properties.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};

use crate::schema::{self, ID, UPDATED_AT};

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub updated_at: DateTime<Utc>,
    /// Normalized properties (see [`crate::schema`]), without `_id` and `_updated_at`.
    pub doc: Map<String, Json>,
}

impl Profile {
    /// The value at a dotted path, `_id` and `_updated_at` included; `None` when absent.
    pub fn get(&self, path: &str) -> Option<std::borrow::Cow<'_, Json>> {
        use std::borrow::Cow;
        match path {
            ID => Some(Cow::Owned(Json::String(self.id.clone()))),
            UPDATED_AT => Some(Cow::Owned(Json::String(schema::format_datetime(
                &self.updated_at,
            )))),
            _ => schema::get_path(&self.doc, path).map(Cow::Borrowed),
        }
    }

    /// The profile as the API shows it: `_id`, `_updated_at`, then the properties.
    pub fn to_json(&self) -> Json {
        let mut out = Map::with_capacity(self.doc.len() + 2);
        out.insert(ID.into(), Json::String(self.id.clone()));
        out.insert(
            UPDATED_AT.into(),
            Json::String(schema::format_datetime(&self.updated_at)),
        );
        for (k, v) in &self.doc {
            out.insert(k.clone(), v.clone());
        }
        Json::Object(out)
    }
}

/// A stored profile as a run reads it: the properties are still the stored JSON text, to be parsed only as
/// far as the pipeline needs (see [`crate::raw`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RawProfile {
    pub id: String,
    pub updated_at: DateTime<Utc>,
    /// The normalized properties as a JSON object, without `_id` and `_updated_at`.
    pub doc: String,
}

impl RawProfile {
    /// The whole profile, parsed; an error names the profile and what is wrong with its text.
    pub fn parse(&self) -> Result<Profile, String> {
        match serde_json::from_str::<Json>(&self.doc) {
            Ok(Json::Object(doc)) => Ok(Profile {
                id: self.id.clone(),
                updated_at: self.updated_at,
                doc,
            }),
            Ok(other) => Err(format!(
                "profile `{}` is stored as {}, not an object",
                self.id,
                schema::json_kind(&other)
            )),
            Err(e) => Err(format!("profile `{}` is not valid JSON: {e}", self.id)),
        }
    }
}
