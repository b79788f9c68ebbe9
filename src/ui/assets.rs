//! The stylesheet and script, embedded in the binary. Each is served under a name that
//! carries a hash of its bytes, so it can be cached forever: a new build names new
//! bytes differently.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

struct Asset {
    /// `/assets/<stem>.<hash>.<ext>`
    url: String,
    content_type: &'static str,
    bytes: &'static [u8],
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, bytes: &'static [u8]) -> Asset {
        let hash: String = Sha256::digest(bytes)
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        Asset {
            url: format!("/assets/{stem}.{hash}.{ext}"),
            content_type,
            bytes,
        }
    }
}

static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    [
        Asset::new(
            "style",
            "css",
            "text/css; charset=utf-8",
            include_bytes!("assets/style.css"),
        ),
        Asset::new(
            "app",
            "js",
            "text/javascript; charset=utf-8",
            include_bytes!("assets/app.js"),
        ),
        Asset::new(
            "icon",
            "svg",
            "image/svg+xml",
            include_bytes!("assets/icon.svg"),
        ),
    ]
});

/// The stylesheet's URL.
pub fn style() -> &'static str {
    &ASSETS[0].url
}

/// The script's URL.
pub fn script() -> &'static str {
    &ASSETS[1].url
}

/// The icon's URL.
pub fn icon() -> &'static str {
    &ASSETS[2].url
}

/// Serves an asset by its hashed name; any other name is a 404.
pub async fn serve(Path(name): Path<String>) -> Response {
    let wanted = format!("/assets/{name}");
    match ASSETS.iter().find(|a| a.url == wanted) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
