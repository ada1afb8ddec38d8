//! What both backends do the same way: sealing destination secrets, (de)serializing records to the JSON
//! kept in columns, and the in-memory planning that lets the PostgreSQL hot paths be set-based.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json};
use sluice_core::pipeline::PipelineSpec;
use sluice_core::schema::{merge_profile, SchemaWire};
use sluice_core::Schema;

use crate::{
    Counts, Result, RunErrorGroup, RunStatus, SecretBox, StoreError, SyncEntry, SECRET_FIELDS,
};

/// Replaces every top-level secret field of `settings` by its sealed form. Any JSON value is accepted:
/// it is sealed as JSON text so it reads back exactly (a secret is normally a string).
pub(crate) fn seal_settings(secrets: &SecretBox, settings: &Json) -> Result<String> {
    let mut sealed = settings.clone();
    if let Json::Object(map) = &mut sealed {
        for field in SECRET_FIELDS {
            if let Some(value) = map.get_mut(field) {
                if !value.is_null() {
                    *value = Json::String(secrets.encrypt(&value.to_string()));
                }
            }
        }
    }
    Ok(sealed.to_string())
}

/// The inverse of [`seal_settings`]; `name` is the destination's, for the error message.
pub(crate) fn open_settings(secrets: &SecretBox, name: &str, stored: &str) -> Result<Json> {
    let mut settings: Json = serde_json::from_str(stored).map_err(|e| {
        corrupt(format!(
            "settings of destination `{name}` are not JSON: {e}"
        ))
    })?;
    if let Json::Object(map) = &mut settings {
        for field in SECRET_FIELDS {
            let Some(value) = map.get_mut(field) else {
                continue;
            };
            if value.is_null() {
                continue;
            }
            let sealed = value.as_str().ok_or_else(|| {
                corrupt(format!(
                    "secret `{field}` of destination `{name}` is not stored encrypted"
                ))
            })?;
            let text = secrets.decrypt(sealed).map_err(|e| match e {
                StoreError::Corrupt(m) => {
                    corrupt(format!("secret `{field}` of destination `{name}`: {m}"))
                }
                other => other,
            })?;
            *value = serde_json::from_str(&text).map_err(|_| {
                corrupt(format!("secret `{field}` of destination `{name}` decrypted to something that is not JSON"))
            })?;
        }
    }
    Ok(settings)
}

/// The refusal to delete a destination that pipelines still write to.
pub(crate) fn in_use(pipelines: &[String]) -> StoreError {
    let names: Vec<String> = pipelines.iter().map(|n| format!("`{n}`")).collect();
    let (noun, them) = if names.len() == 1 {
        ("pipeline", "it")
    } else {
        ("pipelines", "them")
    };
    StoreError::Conflict(format!(
        "destination is used by {noun} {}; delete {them} first",
        names.join(", ")
    ))
}

/// The conflict of deleting a connection that source pipelines read from.
pub(crate) fn read_by(sources: &[String]) -> StoreError {
    let names: Vec<String> = sources.iter().map(|n| format!("`{n}`")).collect();
    let (noun, them) = if names.len() == 1 {
        ("source", "it")
    } else {
        ("sources", "them")
    };
    StoreError::Conflict(format!(
        "destination is read by {noun} {}; delete {them} first",
        names.join(", ")
    ))
}

pub(crate) fn corrupt(message: impl Into<String>) -> StoreError {
    StoreError::Corrupt(message.into())
}

pub(crate) fn schema_to_json(schema: &Schema) -> String {
    serde_json::to_string(&schema.to_wire())
        .expect("the Customer Model wire form always serializes")
}

pub(crate) fn schema_from_json(text: &str) -> Result<Schema> {
    let wire: SchemaWire = serde_json::from_str(text)
        .map_err(|e| corrupt(format!("the stored Customer Model is not valid: {e}")))?;
    Schema::from_wire(&wire)
        .map_err(|e| corrupt(format!("the stored Customer Model does not validate: {e}")))
}

pub(crate) fn spec_to_json(spec: &PipelineSpec) -> String {
    serde_json::to_string(spec).expect("a pipeline spec always serializes")
}

pub(crate) fn spec_from_json(id: &str, text: &str) -> Result<PipelineSpec> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "the stored spec of pipeline `{id}` is not valid: {e}"
        ))
    })
}

pub(crate) fn source_spec_to_json(spec: &sluice_core::source::SourceSpec) -> String {
    serde_json::to_string(spec).expect("a source spec always serializes")
}

pub(crate) fn source_spec_from_json(
    id: &str,
    text: &str,
) -> Result<sluice_core::source::SourceSpec> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "the stored spec of source `{id}` is not valid: {e}"
        ))
    })
}

pub(crate) fn mark_to_json(mark: &sluice_core::source::CursorValue) -> String {
    serde_json::to_string(mark).expect("a cursor value always serializes")
}

pub(crate) fn mark_from_json(source: &str, text: &str) -> Result<sluice_core::source::CursorValue> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "the stored mark of source `{source}` is not valid: {e}"
        ))
    })
}

pub(crate) fn counts_to_json(counts: &Counts) -> String {
    serde_json::to_string(counts).expect("counts always serialize")
}

pub(crate) fn counts_from_json(run: &str, text: &str) -> Result<Counts> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "the stored counts of run `{run}` are not valid: {e}"
        ))
    })
}

pub(crate) fn changes_to_json(changes: Option<&crate::ChangeCounts>) -> Option<String> {
    changes.map(|c| serde_json::to_string(c).expect("change counts always serialize"))
}

pub(crate) fn changes_from_json(
    run: &str,
    text: Option<String>,
) -> Result<Option<crate::ChangeCounts>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            corrupt(format!(
                "the stored trigger changes of run `{run}` are not valid: {e}"
            ))
        })
    })
    .transpose()
}

pub(crate) fn errors_to_json(errors: &[RunErrorGroup]) -> String {
    serde_json::to_string(errors).expect("run errors always serialize")
}

pub(crate) fn errors_from_json(run: &str, text: &str) -> Result<Vec<RunErrorGroup>> {
    serde_json::from_str(text).map_err(|e| {
        corrupt(format!(
            "the stored errors of run `{run}` are not valid: {e}"
        ))
    })
}

pub(crate) fn status_from_str(run: &str, text: &str) -> Result<RunStatus> {
    serde_json::from_value(Json::String(text.to_owned()))
        .map_err(|_| corrupt(format!("run `{run}` has an unknown status `{text}`")))
}

pub(crate) fn hash_to_bytes(hash: u128) -> [u8; 16] {
    hash.to_be_bytes()
}

pub(crate) fn hash_from_bytes(profile_id: &str, bytes: &[u8]) -> Result<u128> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| {
        corrupt(format!(
            "the sync hash of profile `{profile_id}` is {} bytes, not 16",
            bytes.len()
        ))
    })?;
    Ok(u128::from_be_bytes(bytes))
}

/// Properties given as JSON text, which must be an object. Such text comes from the caller, not from
/// the store: one that is not an object is refused as the caller's mistake, not reported as corrupt data.
pub(crate) fn doc_from_text(id: &str, text: &str) -> Result<Map<String, Json>> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(StoreError::Backend(format!(
            "the properties given for profile `{id}` are {}, not a JSON object",
            sluice_core::schema::json_kind(&other)
        ))),
        Err(e) => Err(StoreError::Backend(format!(
            "the properties given for profile `{id}` are not valid JSON: {e}"
        ))),
    }
}

pub(crate) fn doc_from_json(id: &str, value: Json) -> Result<Map<String, Json>> {
    match value {
        Json::Object(map) => Ok(map),
        other => Err(corrupt(format!(
            "profile `{id}` is stored as {}, not an object",
            sluice_core::schema::json_kind(&other)
        ))),
    }
}

/// Micro-second precision is what both stores keep, so every timestamp is truncated to it before being
/// written; a record then reads back equal to what was written.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

pub(crate) fn micros_to_time(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| corrupt(format!("timestamp {micros} is out of range")))
}

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Folds the repeated ids of a batch into one entry each (the later merged over the earlier), keeping the
/// order of first appearance, so that a set-based write touches each row once.
pub(crate) fn fold_batch(
    profiles: Vec<(String, Map<String, Json>)>,
) -> Vec<(String, Map<String, Json>)> {
    // Repeats are rare: a batch without any is returned as it is, with no copy of its ids.
    let mut ids: HashSet<&str> = HashSet::with_capacity(profiles.len());
    if profiles.iter().all(|(id, _)| ids.insert(id.as_str())) {
        return profiles;
    }
    drop(ids);
    let mut index: HashMap<String, usize> = HashMap::with_capacity(profiles.len());
    let mut out: Vec<(String, Map<String, Json>)> = Vec::with_capacity(profiles.len());
    for (id, doc) in profiles {
        match index.get(&id) {
            Some(&i) => merge_profile(&mut out[i].1, doc),
            None => {
                index.insert(id.clone(), out.len());
                out.push((id, doc));
            }
        }
    }
    out
}

/// The net effect of `sync_apply(upserts, deletes)` computed up front: the profile ids whose entries go,
/// and the entries that remain, with unique profile ids and unique keys. Applying "delete `drop`, delete
/// every other holder of an entry's key, upsert `keep`" gives the same table as applying the upserts one by
/// one in order — which is the contract — without any transient uniqueness violation.
pub(crate) struct SyncPlan<'a> {
    pub drop: Vec<&'a str>,
    pub keep: Vec<&'a SyncEntry>,
}

pub(crate) fn plan_sync<'a>(upserts: &'a [SyncEntry], deletes: &'a [String]) -> SyncPlan<'a> {
    let mut by_profile: HashMap<&str, usize> = HashMap::with_capacity(upserts.len());
    let mut by_key: HashMap<&str, &str> = HashMap::with_capacity(upserts.len());
    let mut dropped: HashSet<&str> = deletes.iter().map(String::as_str).collect();
    for (i, entry) in upserts.iter().enumerate() {
        let (profile, key) = (entry.profile_id.as_str(), entry.key.as_str());
        if let Some(previous) = by_profile.get(profile) {
            let old_key = upserts[*previous].key.as_str();
            if by_key.get(old_key) == Some(&profile) {
                by_key.remove(old_key);
            }
        }
        if let Some(holder) = by_key.get(key).copied() {
            if holder != profile {
                // The holder's earlier upsert replaced its stored row, and this entry now takes the key
                // from it, so it ends with no entry at all.
                by_profile.remove(holder);
                dropped.insert(holder);
            }
        }
        by_profile.insert(profile, i);
        by_key.insert(key, profile);
    }
    let mut keep: Vec<usize> = by_profile.into_values().collect();
    keep.sort_unstable();
    SyncPlan {
        drop: dropped.into_iter().collect(),
        keep: keep.into_iter().map(|i| &upserts[i]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(p: &str, k: &str, h: u128) -> SyncEntry {
        SyncEntry::written(p, crate::SyncKey::from_stored(k), h)
    }

    #[test]
    fn sync_plan_matches_sequential_semantics() {
        let ups = vec![
            e("a", "k1", 1),
            e("b", "k2", 2),
            e("c", "k1", 3),
            e("b", "k3", 4),
            e("d", "k2", 5),
        ];
        let deletes = ["x".to_string()];
        let plan = plan_sync(&ups, &deletes);
        let keep: Vec<(&str, &str, u128)> = plan
            .keep
            .iter()
            .map(|e| (e.profile_id.as_str(), e.key.as_str(), e.hash))
            .collect();
        assert_eq!(keep, vec![("c", "k1", 3), ("b", "k3", 4), ("d", "k2", 5)]);
        let mut dropped = plan.drop.clone();
        dropped.sort();
        assert_eq!(dropped, vec!["a", "x"]);
    }

    #[test]
    fn secrets_are_sealed_and_opened() {
        let b = SecretBox::generate();
        let settings = json!({"host": "h", "password": "pw", "private_key": null, "port": 5432});
        let stored = seal_settings(&b, &settings).unwrap();
        assert!(!stored.contains("pw\""), "{stored}");
        assert_eq!(open_settings(&b, "d", &stored).unwrap(), settings);
        let err = open_settings(&SecretBox::generate(), "d", &stored).unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("`password` of destination `d`")),
            "{err}"
        );
        let plain = json!({"password": "pw"}).to_string();
        assert!(open_settings(&b, "d", &plain).is_err());
    }

    #[test]
    fn batches_fold_repeated_ids() {
        let m = |v: Json| v.as_object().unwrap().clone();
        let out = fold_batch(vec![
            ("b".into(), m(json!({"x": 1, "o": {"p": 1}}))),
            ("a".into(), m(json!({"y": 1}))),
            ("b".into(), m(json!({"o": {"q": 2}}))),
        ]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, "b");
        assert_eq!(
            Json::Object(out[0].1.clone()),
            json!({"x": 1, "o": {"p": 1, "q": 2}})
        );
    }
}
