//! refcat: a registry-native OCI referrers publisher and catalog.
//!
//! The registry is the database. [`registry`] is the only module that speaks the
//! distribution API; [`catalog`] builds read views from it; [`artifact`] knows what
//! refcat writes; [`fixture`] builds the deterministic sample images used by the demo
//! and the tests.

pub mod api;
pub mod artifact;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod digest;
pub mod fixture;
pub mod locks;
pub mod oci;
pub mod publish;
pub mod records;
pub mod reference;
pub mod registry;
pub mod scan;
pub mod secret;
pub mod server;
pub mod sign;
pub mod worker;
