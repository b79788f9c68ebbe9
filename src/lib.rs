//! refcat: a registry-native OCI referrers publisher and catalog.
//!
//! The registry is the database. [`registry`] is the only module that speaks the
//! distribution API; [`catalog`] builds read views from it; [`artifact`] knows what
//! refcat writes. The deterministic sample images of the demo, the tests and the
//! benchmarks are built by `examples/support/fixture.rs`, outside the library.

pub mod api;
pub mod app;
pub mod artifact;
pub mod broker;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod digest;
pub mod handshake;
pub mod locks;
pub mod media_types;
pub mod oci;
pub mod publish;
pub mod records;
pub mod reference;
pub mod registry;
pub mod scan;
pub mod secret;
pub mod server;
pub mod sign;
pub mod tag_schema;
pub mod text;
pub mod trust;
pub mod ui;
pub mod web;
pub mod worker;

#[cfg(test)]
mod layering;
