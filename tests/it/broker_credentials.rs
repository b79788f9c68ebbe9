//! A broker that asks for credentials: replicas reach it with a user and password (or
//! both in `--nats-url`), or with an nkey seed file, and the secret shows nowhere: not
//! in the log, not in the error of a refused start, not in the scanners' environment.

use std::time::Duration;

use crate::common::nats::NatsServer;
use crate::common::published::check_recovered;
use crate::common::replicas::{announce, refused_start, replicas, wait_done};
use crate::common::worker::Worker;
use crate::common::{write_keys, Registry};

/// Pushes alpine, tells the replica `i` of it, and checks that the replicas publish its
/// signed set.
fn alpine_is_published_through(
    workers: &[Worker],
    i: usize,
    registry: &Registry,
    keys: &std::path::Path,
) {
    announce(
        &reqwest::blocking::Client::new(),
        &workers[i],
        registry,
        "alpine",
        "3.19",
    );
    wait_done(workers, 1, Duration::from_secs(300));
    crate::common::published::tokio_run(check_recovered(registry, keys, "fixtures/alpine:3.19"));
}

const USER: &str = "refcat";
const PASSWORD: &str = "nats-pw-7f3a91";

/// `url` with `user:password@` after the scheme.
fn with_credentials(url: &str, password: &str) -> String {
    url.replacen("nats://", &format!("nats://{USER}:{password}@"), 1)
}

#[test]
fn a_broker_with_a_password_is_reached_and_the_password_shown_nowhere() {
    let nats = NatsServer::start_with(&["--user", USER, "--pass", PASSWORD]);
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());

    // Refused: each error names the broker's URL, without the password it was given.
    let said = refused_start(&registry, keys.path(), &[("REFCAT_NATS_URL", &nats.url)]);
    assert!(said.contains(&nats.url), "{said}");
    assert!(said.contains("uthorization"), "{said}");
    let wrong = "wrong-pw-1234";
    let said = refused_start(
        &registry,
        keys.path(),
        &[
            ("REFCAT_NATS_URL", &nats.url),
            ("REFCAT_NATS_USER", USER),
            ("REFCAT_NATS_PASSWORD", wrong),
        ],
    );
    assert!(said.contains(&nats.url), "{said}");
    assert!(!said.contains(wrong), "{said}");
    let wrong_in_url = "wrong-pw-5678";
    let said = refused_start(
        &registry,
        keys.path(),
        &[(
            "REFCAT_NATS_URL",
            &with_credentials(&nats.url, wrong_in_url),
        )],
    );
    assert!(said.contains(&nats.url), "{said}");
    assert!(!said.contains(wrong_in_url), "{said}");
    let said = refused_start(
        &registry,
        keys.path(),
        &[("REFCAT_NATS_URL", &nats.url), ("REFCAT_NATS_USER", USER)],
    );
    assert!(said.contains("REFCAT_NATS_PASSWORD"), "{said}");

    // Admitted: one replica with --nats-user, one with the URL's credentials; a push is
    // published through them, and neither their logs nor syft's environment hold it.
    let seen = tempfile::tempdir().unwrap();
    let syft = crate::common::observed_syft(seen.path(), 0);
    let in_url = with_credentials(&nats.url, PASSWORD);
    let mut workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[
            ("REFCAT_NATS_USER", USER.as_ref()),
            ("REFCAT_NATS_PASSWORD", PASSWORD.as_ref()),
            ("REFCAT_SYFT", syft.as_os_str()),
        ],
    );
    workers.extend(replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[
            ("REFCAT_NATS_URL", in_url.as_ref()),
            ("REFCAT_SYFT", syft.as_os_str()),
        ],
    ));
    alpine_is_published_through(&workers, 1, &registry, keys.path());
    for worker in &workers {
        let log = worker.log();
        assert!(log.contains(&nats.url), "{log}");
        assert!(!log.contains(PASSWORD), "{log}");
    }
    let env = std::fs::read_to_string(seen.path().join("env")).unwrap();
    assert!(!env.contains(PASSWORD), "syft saw the broker's password");
}

#[test]
fn a_broker_that_takes_an_nkey_admits_the_replica_with_its_seed_file() {
    let seeds = tempfile::tempdir().unwrap();
    let seed_file = |name: &str, pair: &nkeys::KeyPair| {
        let path = seeds.path().join(name);
        std::fs::write(&path, format!("{}\n", pair.seed().unwrap())).unwrap();
        path
    };
    let (admitted, stranger) = (nkeys::KeyPair::new_user(), nkeys::KeyPair::new_user());
    let config = seeds.path().join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "authorization {{ users = [ {{ nkey: {} }} ] }}\n",
            admitted.public_key()
        ),
    )
    .unwrap();
    let nats = NatsServer::start_with(&["-c", config.to_str().unwrap()]);
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());

    // Another user's seed is refused, and the error shows no seed.
    let stranger_file = seed_file("stranger.nk", &stranger);
    let said = refused_start(
        &registry,
        keys.path(),
        &[
            ("REFCAT_NATS_URL", &nats.url),
            ("REFCAT_NATS_NKEY", stranger_file.to_str().unwrap()),
        ],
    );
    assert!(said.contains(&nats.url), "{said}");
    assert!(!said.contains(&stranger.seed().unwrap()), "{said}");
    let missing = seeds.path().join("missing.nk");
    let said = refused_start(
        &registry,
        keys.path(),
        &[
            ("REFCAT_NATS_URL", &nats.url),
            ("REFCAT_NATS_NKEY", missing.to_str().unwrap()),
        ],
    );
    assert!(said.contains("cannot read the NATS credentials"), "{said}");

    // The admitted seed: a push is published, and the log holds no seed.
    let admitted_file = seed_file("refcat.nk", &admitted);
    let workers = replicas(
        &registry.host,
        keys.path(),
        &nats,
        1,
        &[("REFCAT_NATS_NKEY", admitted_file.as_os_str())],
    );
    alpine_is_published_through(&workers, 0, &registry, keys.path());
    let log = workers[0].log();
    assert!(!log.contains(&admitted.seed().unwrap()), "{log}");
}
