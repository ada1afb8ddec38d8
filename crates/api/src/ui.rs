//! The admin UI: the files of `web/dist`, built by `build.rs` and embedded into the binary, served at `/`
//! with client-side routes falling back to `index.html`.

use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Assets;

pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if let Some(file) = Assets::get(path).filter(|_| !path.is_empty()) {
        return asset(path, file);
    }
    // Unknown paths with a file extension are missing assets, not client-side routes.
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match Assets::get("index.html") {
        Some(file) => asset("index.html", file),
        None => Html(
            "<!doctype html><title>Sluice</title><h1>Sluice</h1><p>The admin UI was not built into this binary \
             (npm was not available at build time). The REST API is at <code>/v1</code>.</p>",
        )
        .into_response(),
    }
}

fn asset(path: &str, file: rust_embed::EmbeddedFile) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    // Hashed assets never change; index.html must always be fresh.
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, mime.as_ref().to_string()),
            (header::CACHE_CONTROL, cache.to_string()),
        ],
        file.data.into_owned(),
    )
        .into_response()
}
