//! The only code in refcat that speaks the OCI distribution API.
//!
//! A [`Client`] talks to one registry: auth (anonymous, basic, bearer challenge, docker
//! config), retries with backoff, per-request timeouts, paging, manifests, blobs and
//! referrers with the tag-schema fallback. Every request is counted in its
//! [`RequestCounter`].

mod auth;
mod blobs;
mod cache;
mod client;
mod copy;
mod counter;
mod credentials;
mod error;
mod fetched;
mod listing;
mod manifests;
mod referrers;
mod tls;
mod transport;

pub use client::{is_loopback, Client, ClientConfig};
pub use counter::{RequestCounter, RequestKind};
pub use credentials::{Credentials, Secret};
pub use error::RegistryError;
pub use manifests::{FetchedManifest, PushedManifest};
pub use referrers::{SubjectState, Unlisted};
pub use tls::{Tls, TlsError};
