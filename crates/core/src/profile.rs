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
