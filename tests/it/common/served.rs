//! The catalog API over a registry holding the published fixtures.

use refcat::app::router;
use refcat::web::AppState;
use serde_json::Value;

use super::{publish_fixtures, Kind, Registry};

/// The fixtures published on a registry of `kind`, and the API serving it.
pub struct Served {
    /// The registry.
    pub registry: Registry,
    /// The API's base URL.
    pub base: String,
    /// The key pair the fixtures were signed with.
    pub keys: tempfile::TempDir,
}

pub async fn serve(kind: Kind) -> Served {
    let registry = Registry::start(kind);
    let keys = publish_fixtures(&registry).await;
    let client = registry.cached_client(refcat::cache::CacheConfig::default());
    let base = start_api(AppState::new(
        client,
        refcat::trust::Trust::show_unverified(),
    ))
    .await;
    Served {
        registry,
        base,
        keys,
    }
}

/// Serves `state` on a free port; the base URL.
pub async fn start_api(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(state);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// GET `url`: the status and the JSON body (`null` when it is not JSON).
pub async fn get_json(url: String) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

impl Served {
    pub async fn get(&self, path: &str) -> (u16, String, Value) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = response.bytes().await.unwrap();
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, content_type, value)
    }

    pub async fn ok(&self, path: &str) -> Value {
        let (status, _, value) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {value}");
        value
    }
}
