//! `serve --auth pass-through` under a flood of made-up credentials, as anyone who
//! reaches it can send: what serve holds stays within `--cache-mib` (and what a process
//! needs besides), the registry is asked no `_catalog` for them, and the real users are
//! served as before.

use axum::http::Method;
use futures_util::StreamExt as _;

use crate::common::faults::FaultProxy;
use crate::serve_access::{client_as, get, names, push_as, serve, zot_with_users};

/// Requests with made-up credentials, and how many are in flight at once.
const BOGUS: usize = 10_000;
const AT_ONCE: usize = 64;
/// The cache budget serve gets, and what it may use on top of it.
const CACHE_MIB: u64 = 64;
const BESIDES_MIB: u64 = 100;

/// The most memory the process `pid` has held, in KiB (its VmHWM).
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_credentials_cost_neither_memory_nor_a_catalog_walk() {
    let registry = zot_with_users();
    let admin = client_as(&registry.host, "admin");
    push_as(&admin, "alpine", "team-a/alpine").await;
    push_as(&admin, "debian", "team-b/debian").await;
    let proxy = FaultProxy::start(&registry.host).await;
    let served = serve(
        &proxy.host,
        &[
            "--auth",
            "pass-through",
            "--cache-mib",
            &CACHE_MIB.to_string(),
        ],
    )
    .await;
    let directory_of = |user: &'static str| {
        let served = &served;
        async move {
            let (status, _, directory) = get(served, "/v1/images", Some(user)).await;
            assert_eq!(status, 200, "{user}: {directory}");
            names(&directory)
        }
    };
    assert_eq!(directory_of("alice").await, ["team-a/alpine"]);

    // Every request a new user name and password, as a script guessing would send.
    let salt = std::process::id();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/images", served.base);
    let answers: Vec<u16> = futures_util::stream::iter(0..BOGUS)
        .map(|n| {
            let request = http
                .get(&url)
                .basic_auth(format!("bogus-{n}"), Some(format!("guess-{salt}-{n}")));
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    assert!(answers.iter().all(|&s| s == 401), "{:?}", {
        let mut other: Vec<u16> = answers.iter().copied().filter(|&s| s != 401).collect();
        other.dedup();
        other
    });

    let peak_mib = peak_kib(served.pid()) / 1024;
    assert!(
        peak_mib < CACHE_MIB + BESIDES_MIB,
        "serve held {peak_mib} MiB at its peak, over --cache-mib {CACHE_MIB} + {BESIDES_MIB}"
    );
    let walked: Vec<_> = proxy
        .seen(Method::GET, "/v2/_catalog")
        .into_iter()
        .filter(|s| s.user.as_deref().is_some_and(|u| u.starts_with("bogus-")))
        .collect();
    assert!(
        walked.is_empty(),
        "{} _catalog requests with made-up credentials",
        walked.len()
    );
    // The real users are served as before.
    assert_eq!(directory_of("alice").await, ["team-a/alpine"]);
    assert_eq!(directory_of("bob").await, ["team-b/debian"]);
}
