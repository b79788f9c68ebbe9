//! Pushes refcat's deterministic sample images to a registry.
//!
//! `cargo run --example push_fixtures -- 127.0.0.1:5000` (or `just fixtures 127.0.0.1:5000`).

use std::path::Path;

#[path = "support/mod.rs"]
mod support;

use refcat::registry::{Client, ClientConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let registry = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: push_fixtures HOST:PORT"))?;
    let registry = refcat::reference::parse_registry(&registry)?;
    let client = Client::new(ClientConfig::new(registry.clone()));
    let testdata = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    for dir in support::fixture::fixture_dirs(&testdata)? {
        let image = support::fixture::build(&dir)?;
        support::fixture::push(&client, &image).await?;
        for tag in &image.tags {
            println!(
                "{registry}/{}:{tag}  {}",
                image.repository, image.top.digest
            );
        }
    }
    Ok(())
}
