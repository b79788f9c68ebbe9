//! The integration tests, black-box against real registries and the real CLIs.
//!
//! One test binary, one module per concern: every module links the same crate, so one
//! binary saves a link (and its disk) per concern.

mod common;
/// The sample images, shared with the examples.
#[allow(dead_code)] // not every helper is used by the tests
#[path = "../../examples/support/fixture.rs"]
mod fixture;

mod aggregate_incremental;
mod api;
mod api_http;
mod api_provenance;
mod broker_credentials;
mod broker_locks;
mod broker_tls;
mod caches;
mod discovery;
mod fan_out;
mod held_connections;
mod hostile;
mod index_duplicates;
mod lexicons;
mod promotion;
mod publish;
mod publish_options;
mod publish_recovery;
mod pusher_attacks;
mod pusher_attestations;
mod pusher_release_log;
mod referrers_interop;
mod registry_behaviour;
mod registry_faults;
mod registry_stalls;
mod scale_out;
mod scanners;
mod serve_access;
mod serve_access_load;
mod serve_token_auth;
mod shared_queue;
mod signing_interop;
mod summaries_served;
mod tls;
mod trust;
mod ui_behaviour;
mod ui_every_page;
mod ui_filters;
mod ui_pages;
mod unknown_is_null;
mod worker;
mod worker_aggregate;
mod worker_walks;
mod worker_webhooks;
mod zot;
