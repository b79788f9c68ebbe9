//! A broker that speaks TLS: a replica trusts its certificate through the CA it is
//! given, shows the client certificate the broker asks for, and is told which option is
//! missing when it cannot connect. A broker that does not speak TLS is refused where TLS
//! is required.

use std::time::Duration;

use crate::common::nats::NatsServer;
use crate::common::published::{check_recovered, tokio_run};
use crate::common::replicas::{announce, refused_start, replicas, wait_done};
use crate::common::tls::TestCa;
use crate::common::{write_keys, Registry};

#[test]
fn a_broker_that_speaks_tls_is_reached_with_its_ca_and_a_client_certificate() {
    let ca = TestCa::new();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let (cert, key, ca_file) = (path(&ca.cert), path(&ca.key), path(&ca.ca));
    // The broker takes only TLS, and only clients with a certificate from the CA.
    let nats = NatsServer::start_with(&[
        "--tlsverify",
        "--tlscert",
        &cert,
        "--tlskey",
        &key,
        "--tlscacert",
        &ca_file,
    ]);
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());

    let said = refused_start(&registry, keys.path(), &[("REFCAT_NATS_URL", &nats.url)]);
    assert!(said.contains(&nats.url), "{said}");
    assert!(said.contains("--nats-ca-file"), "{said}");
    let said = refused_start(
        &registry,
        keys.path(),
        &[
            ("REFCAT_NATS_URL", &nats.url),
            ("REFCAT_NATS_CA_FILE", &ca_file),
        ],
    );
    assert!(said.contains("--nats-tls-cert"), "{said}");

    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[
            ("REFCAT_NATS_CA_FILE", ca.ca.as_os_str()),
            ("REFCAT_NATS_TLS_CERT", ca.client_cert.as_os_str()),
            ("REFCAT_NATS_TLS_KEY", ca.client_key.as_os_str()),
        ],
    );
    announce(
        &reqwest::blocking::Client::new(),
        &workers[0],
        &registry,
        "alpine",
        "3.19",
    );
    wait_done(&workers, 1, Duration::from_secs(300));
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/alpine:3.19",
    ));
}

#[test]
fn a_broker_without_tls_is_refused_where_tls_is_required() {
    let nats = NatsServer::start();
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let said = refused_start(
        &registry,
        keys.path(),
        &[
            ("REFCAT_NATS_URL", &nats.url),
            ("REFCAT_NATS_REQUIRE_TLS", "true"),
        ],
    );
    assert!(said.contains("does not speak TLS"), "{said}");
    let missing = keys.path().join("missing-ca.pem");
    let said = refused_start(
        &registry,
        keys.path(),
        &[
            ("REFCAT_NATS_URL", &nats.url),
            ("REFCAT_NATS_CA_FILE", missing.to_str().unwrap()),
        ],
    );
    assert!(said.contains("missing-ca.pem"), "{said}");
}
