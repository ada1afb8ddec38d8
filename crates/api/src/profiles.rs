//! `/v1/profiles`: load (validated against the Customer Model, rejected one by one), browse with a filter,
//! read and delete.

use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value as Json_;
use sluice_core::schema::TextRefused;
use sluice_store::{ProfileStore, Properties};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::json::{parse, JsonBytes};
use crate::openapi::{
    Internal, Invalid, Malformed, NotFound, NotJson, ProfileDoc, TooLarge, Unauthorized,
};
use crate::query::Query;
use crate::AppState;

/// Most profiles accepted in one request.
pub const MAX_BATCH: usize = 50_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertBody {
    /// Profiles with their `_id`; each is merged into the stored one (properties left out are kept).
    #[schema(value_type = Vec<ProfileDoc>)]
    #[serde(deserialize_with = "at_most_a_batch")]
    #[allow(
        dead_code,
        reason = "parsed only to word what is wrong with a body the handler refuses"
    )]
    profiles: Vec<Json_>,
}

/// The body as it is read: each profile left as its JSON text, to be validated straight into the text
/// it is stored as (`Schema::validate_text`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpsertText<'a> {
    #[serde(borrow, deserialize_with = "at_most_a_batch")]
    profiles: Vec<&'a RawValue>,
}

/// Parses the profiles one at a time and stops at the one past [`MAX_BATCH`], so an oversized batch
/// costs the parse of a batch, not of everything sent.
fn at_most_a_batch<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Capped<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Capped<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_BATCH} profiles")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH));
            while let Some(p) = seq.next_element::<T>()? {
                if out.len() == MAX_BATCH {
                    return Err(serde::de::Error::custom(format!(
                        "at most {MAX_BATCH} profiles per request; send the rest in another request"
                    )));
                }
                out.push(p);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Capped(std::marker::PhantomData))
}

/// How a rejection names the profile: its `_id` as sent, when that is a string or an integer.
fn id_text(v: &Json_) -> Option<String> {
    v.as_str()
        .map(str::to_string)
        .or_else(|| v.as_i64().map(|i| i.to_string()))
}

#[derive(Serialize, ToSchema)]
pub struct Upserted {
    /// How many profiles were stored.
    upserted: usize,
    /// The profiles refused, each with why.
    rejected: Vec<Rejected>,
}

#[derive(Serialize, ToSchema)]
pub struct Rejected {
    /// The profile's position in the request.
    index: usize,
    #[serde(rename = "_id")]
    #[schema(required = true)]
    id: Option<String>,
    errors: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/profiles",
    operation_id = "upsertProfiles",
    tag = "profiles",
    summary = "Load profiles (merged into stored ones); invalid ones are rejected one by one",
    request_body = UpsertBody,
    responses(
        (status = 200, description = "OK", body = Upserted),
        Malformed,
        Unauthorized,
        NotJson,
        TooLarge,
        Invalid,
        Internal,
    ),
)]
pub async fn upsert(
    State(state): State<AppState>,
    JsonBytes(bytes): JsonBytes,
) -> ApiResult<Json<Upserted>> {
    // What the lenient read lets through that a full parse refuses (a number out of range), and any
    // body of the wrong shape, is answered by the full parse, with its words.
    let refused = || match parse::<UpsertBody>(&bytes) {
        Err(e) => e,
        Ok(_) => ApiError::internal("a body read two ways disagreed"),
    };
    let body: UpsertText = serde_json::from_slice(&bytes).map_err(|_| refused())?;
    let schema = state.meta.get_schema().await?;
    let mut valid = Vec::with_capacity(body.profiles.len());
    let mut rejected = Vec::new();
    for (index, p) in body.profiles.into_iter().enumerate() {
        match schema.validate_text(p.get()) {
            Ok(v) => valid.push(v),
            Err(TextRefused::Invalid(invalid)) => rejected.push(Rejected {
                index,
                id: invalid.id.as_ref().and_then(id_text),
                errors: invalid.errors,
            }),
            Err(TextRefused::NotObject) => rejected.push(Rejected {
                index,
                id: None,
                errors: vec!["a profile must be a JSON object".into()],
            }),
            Err(TextRefused::Malformed(_)) => return Err(refused()),
        }
    }
    let n = valid.len();
    if n > 0 {
        store(&*state.profiles, valid).await?;
    }
    Ok(Json(Upserted {
        upserted: n,
        rejected,
    }))
}

/// Stores validated profiles given as their documents' text. New profiles are stored as that very text
/// (written out here, on the request's core, not in the store's one writer). A batch that names a
/// profile twice goes as maps, which the store folds in order.
async fn store(profiles: &dyn ProfileStore, valid: Vec<(String, String)>) -> Result<(), ApiError> {
    let mut ids = HashSet::with_capacity(valid.len());
    if valid.iter().all(|(id, _)| ids.insert(id.as_str())) {
        drop(ids);
        let batch = valid
            .into_iter()
            .map(|(id, text)| (id, Properties::Text(text)))
            .collect();
        profiles.upsert_properties(batch).await?;
        return Ok(());
    }
    drop(ids);
    let mut maps = Vec::with_capacity(valid.len());
    for (id, text) in valid {
        let doc = serde_json::from_str(&text).map_err(|e| {
            ApiError::internal(format!("a validated profile did not read back: {e}"))
        })?;
        maps.push((id, doc));
    }
    profiles.upsert(maps).await?;
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// A filter as JSON (`{"logical": "and", "conditions": [...]}`, see `PipelineInput.filter`).
    filter: Option<String>,
    /// Profiles per page, 1 to 1000 (100 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// The `next` of the previous page.
    after: Option<String>,
}

/// A page of profiles in `_id` order.
#[derive(Serialize, ToSchema)]
pub struct ProfilePage {
    #[schema(value_type = Vec<ProfileDoc>)]
    profiles: Vec<Json_>,
    /// The `after` of the next page; `null` on the last one.
    #[schema(required = true)]
    next: Option<String>,
    /// How many profiles the store holds.
    total: u64,
    /// With a filter: how many profiles it matches (counted by the store with the filter pushed down
    /// into its query, not by reading the profiles). Absent without a filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    matching: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/profiles",
    operation_id = "listProfiles",
    tag = "profiles",
    summary = "Browse profiles, with a filter",
    params(ListQuery),
    responses(
        (status = 200, description = "OK", body = ProfilePage),
        Unauthorized,
        Invalid,
        Internal,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<ProfilePage>> {
    let schema = state.meta.get_schema().await?;
    let filter = match q.filter.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => {
            let wire: Json_ = serde_json::from_str(text).map_err(|e| {
                ApiError::invalid_field("filter", format!("the filter is not valid JSON: {e}"))
            })?;
            sluice_engine::validate::check_filter(Some(&wire), &schema)
                .map_err(ApiError::invalid)?
        }
    };
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid_field(
            "limit",
            "limit must be between 1 and 1000",
        ));
    }
    let page = state
        .profiles
        .page(filter.as_ref(), q.after.as_deref(), limit + 1)
        .await?;
    let total = state.profiles.count(None).await?;
    let matching = match &filter {
        Some(f) => Some(state.profiles.count(Some(f)).await?),
        None => None,
    };
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let next = if more {
        page.last().map(|p| p.id.clone())
    } else {
        None
    };
    Ok(Json(ProfilePage {
        profiles: page.iter().map(|p| p.to_json()).collect(),
        next,
        total,
        matching,
    }))
}

#[utoipa::path(
    get,
    path = "/profiles/{id}",
    operation_id = "getProfile",
    tag = "profiles",
    summary = "One profile",
    params(("id" = String, Path, description = "The profile's `_id`")),
    responses((status = 200, description = "OK", body = ProfileDoc), Unauthorized, NotFound, Internal),
)]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Json_>> {
    match state.profiles.get(&id).await? {
        Some(p) => Ok(Json(p.to_json())),
        None => Err(ApiError::not_found("profile", &id)),
    }
}

#[utoipa::path(
    delete,
    path = "/profiles/{id}",
    operation_id = "deleteProfile",
    tag = "profiles",
    summary = "Delete a profile",
    params(("id" = String, Path, description = "The profile's `_id`")),
    responses(
        (status = 204, description = "deleted"),
        Unauthorized,
        NotFound,
        Internal,
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if state.profiles.delete(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("profile", &id))
    }
}
