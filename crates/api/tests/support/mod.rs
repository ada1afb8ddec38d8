//! What the API tests (and the load benchmark, which includes this file by path) set up the same way:
//! an engine over embedded stores in a temporary data directory, the router in front of it, and that
//! router on a real socket. Each test binary uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use sluice_engine::{Engine, EngineConfig};
use sluice_store::{MetadataStore, ProfileStore, SecretBox};

/// The embedded metadata and profile stores of the data directory `dir`, its secret key created there.
pub async fn stores(dir: &Path) -> (Arc<dyn MetadataStore>, Arc<dyn ProfileStore>) {
    let meta = sluice_store::open_metadata(None, dir, SecretBox::load_or_create(dir).unwrap())
        .await
        .unwrap();
    let profiles = sluice_store::open_profiles(None, dir).await.unwrap();
    (meta, profiles)
}

/// An engine with the default configuration over the embedded stores of `dir`.
pub async fn engine(dir: &Path) -> Engine {
    let (meta, profiles) = stores(dir).await;
    Engine::new(meta, profiles, EngineConfig::default())
}

/// The router with `token` as its admin token, over a fresh data directory that lives as long as the
/// returned guard.
pub async fn app(token: &str) -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path()).await;
    (
        sluice_api::router(sluice_api::AppState::new(engine, token)),
        dir,
    )
}

/// `app` served on a free loopback port, so that requests go through the HTTP layer as a client's would.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
