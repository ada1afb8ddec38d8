//! `/v1/profiles`: load (validated against the Customer Model, rejected one by one), browse with a filter,
//! read and delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::json::Body;
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
    profiles: Vec<Json_>,
}

/// Parses the profiles one at a time and stops at the one past [`MAX_BATCH`], so an oversized batch
/// costs the parse of a batch, not of everything sent.
fn at_most_a_batch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Json_>, D::Error> {
    struct Capped;
    impl<'de> serde::de::Visitor<'de> for Capped {
        type Value = Vec<Json_>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_BATCH} profiles")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(MAX_BATCH));
            while let Some(p) = seq.next_element::<Json_>()? {
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
    d.deserialize_seq(Capped)
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
    Body(body): Body<UpsertBody>,
) -> ApiResult<Json<Upserted>> {
    let schema = state.meta.get_schema().await?;
    let mut valid = Vec::with_capacity(body.profiles.len());
    let mut rejected = Vec::new();
    for (index, p) in body.profiles.into_iter().enumerate() {
        match p {
            Json_::Object(obj) => match schema.validate_owned(obj) {
                Ok(v) => valid.push(v),
                Err(invalid) => rejected.push(Rejected {
                    index,
                    id: invalid.id.as_ref().and_then(id_text),
                    errors: invalid.errors,
                }),
            },
            _ => rejected.push(Rejected {
                index,
                id: None,
                errors: vec!["a profile must be a JSON object".into()],
            }),
        }
    }
    let n = valid.len();
    if n > 0 {
        state.profiles.upsert(valid).await?;
    }
    Ok(Json(Upserted {
        upserted: n,
        rejected,
    }))
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
