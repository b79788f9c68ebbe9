//! Locks that hold across worker replicas, taken from a real nats-server through the
//! library, as the worker takes them.

use std::time::Duration;

use refcat::broker::{Broker, BrokerConfig};

use crate::common::nats::NatsServer;

/// A runtime of its own and a broker connection made on it.
fn connect(nats: &NatsServer) -> (tokio::runtime::Runtime, Broker) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime
        .block_on(Broker::connect(BrokerConfig::new(nats.url.clone())))
        .unwrap();
    (runtime, broker)
}

#[test]
fn a_lock_dropped_outside_its_runtime_is_released_at_once() {
    let nats = NatsServer::start();
    let (runtime, broker) = connect(&nats);
    let guard = runtime.block_on(broker.locks().lock("outside")).unwrap();
    // This thread runs no runtime: the guard must release the lock without one.
    drop(guard);
    let retaken = runtime.block_on(async {
        // Well within the 15 s a lock nobody releases or renews takes to free itself.
        tokio::time::timeout(Duration::from_secs(5), broker.locks().lock("outside")).await
    });
    assert!(retaken.is_ok(), "the lock was not released");
}
