//! Clients that hold connections open: half-sent requests are cut off after the header
//! deadline, and connections beyond the cap take the place of idle ones instead of
//! taking more descriptors, so the server keeps answering; under a low limit on
//! descriptors the cap leaves the worker enough of them to publish.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::published::{check_recovered, tokio_run};
use crate::common::worker::{tagged_push_event, Worker, SECRET};
use crate::common::{free_port, push_fixture, refcat, write_keys, Registry};

/// Open descriptors of process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn half_sent_requests_are_cut_off_and_capped() {
    let registry = Registry::zot();
    let port = free_port();
    let mut serve = refcat()
        .args(["serve", &registry.host, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["--max-connections", "16", "--header-timeout", "2"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let health = || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .ok()?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    };
    let start = Instant::now();
    while health().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "serve never came up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let idle = descriptors(serve.id());

    // 60 clients send half a request and wait.
    let held: Vec<TcpStream> = (0..60)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let busy = descriptors(serve.id());
    assert!(
        busy <= idle + 16 + 2,
        "{busy} descriptors open with 60 held connections (idle: {idle}, cap 16)"
    );

    // Every held connection is closed by the server within rounds of the deadline, and
    // a real request is answered meanwhile.
    let asked = Instant::now();
    let answer = health().expect("healthz answers while clients hold connections");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        asked.elapsed() < Duration::from_secs(15),
        "{:?}",
        asked.elapsed()
    );
    for mut stream in held {
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut rest = Vec::new();
        // EOF (after a 408, or none), or a reset when the connection made room for a
        // newer one before its bytes were read, instead of waiting forever.
        let closed = stream.read_to_end(&mut rest);
        assert!(
            closed.is_ok()
                || closed
                    .as_ref()
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "a held connection stayed open: {closed:?}"
        );
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// Makes `cmd` run with at most `limit` open descriptors, soft and hard alike (the
/// common default soft limit, which raising to the hard limit cannot lift).
fn with_descriptor_limit(cmd: &mut std::process::Command, limit: u64) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let both = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &both) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Lets this test process open as many descriptors as its hard limit allows.
fn raise_own_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only touch the struct they are given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Connections a client holds open without sending a byte: each one the server closes
/// is opened again half a second later, as a client bent on exhausting it does.
struct SilentClients {
    stop: Arc<AtomicBool>,
    /// How many connections were opened in all.
    opened: Arc<AtomicUsize>,
    /// How many were open at once at most.
    most: Arc<AtomicUsize>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl SilentClients {
    /// Opens `n` to `port`.
    fn hold(port: u16, n: usize) -> SilentClients {
        let stop = Arc::new(AtomicBool::new(false));
        let (opened, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let open = Arc::new(AtomicUsize::new(0));
        let (stopped, counted, highest) = (stop.clone(), opened.clone(), most.clone());
        let holder = std::thread::spawn(move || {
            tokio_run(async move {
                let clients = (0..n).map(|_| {
                    let (stop, opened, most) = (stopped.clone(), counted.clone(), highest.clone());
                    let open = open.clone();
                    tokio::spawn(async move {
                        while !stop.load(Ordering::Relaxed) {
                            let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
                            if let Ok(Ok(mut stream)) =
                                tokio::time::timeout(Duration::from_secs(1), connect).await
                            {
                                opened.fetch_add(1, Ordering::Relaxed);
                                most.fetch_max(
                                    open.fetch_add(1, Ordering::Relaxed) + 1,
                                    Ordering::Relaxed,
                                );
                                let mut answer = [0; 512];
                                while !stop.load(Ordering::Relaxed) {
                                    let read = tokio::time::timeout(
                                        Duration::from_millis(200),
                                        tokio::io::AsyncReadExt::read(&mut stream, &mut answer),
                                    );
                                    if let Ok(Ok(0) | Err(_)) = read.await {
                                        break;
                                    }
                                }
                                open.fetch_sub(1, Ordering::Relaxed);
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    })
                });
                for client in clients.collect::<Vec<_>>() {
                    client.await.unwrap();
                }
            })
        });
        SilentClients {
            stop,
            opened,
            most,
            holder: Some(holder),
        }
    }
}

impl Drop for SilentClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
    }
}

#[test]
fn a_worker_behind_more_idle_connections_than_descriptors_still_publishes() {
    raise_own_limit();
    let registry = Registry::zot();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    let port = free_port();
    // A header deadline longer than the test: only the cap keeps the worker answering.
    let env = [("REFCAT_HEADER_TIMEOUT", "120s".as_ref())];
    let worker = Worker::start_adjusted(&registry.host, keys.path(), port, &env, |cmd| {
        with_descriptor_limit(cmd, 1024)
    });
    assert!(
        worker
            .log()
            .contains("--max-connections 1024 lowered to 768"),
        "{}",
        worker.log()
    );
    let debian = tokio_run(push_fixture(&registry.client(), "debian"));

    // 1,100 connections that never send a byte, reopened as the server closes them:
    // more than the worker may open descriptors. Each has connected once when the
    // worker has taken all it will and the listen backlog holds the rest.
    let silent = SilentClients::hold(port, 1100);
    let start = Instant::now();
    while silent.opened.load(Ordering::Relaxed) < 1100 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the clients could not connect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Health is answered long before the header deadline turns a held connection over,
    // and so is the webhook; the job runs with descriptors to spare.
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let asked = Instant::now();
    let health = http.get(format!("{}/healthz", worker.base)).send().unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let accepted = http
        .post(format!("{}/events", worker.base))
        .header("authorization", format!("Bearer {SECRET}"))
        .header(
            "content-type",
            "application/vnd.docker.distribution.events.v1+json",
        )
        .body(tagged_push_event(
            "fixtures/debian",
            debian.top.digest.as_ref(),
            "12",
        ))
        .send()
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let start = Instant::now();
    while worker.jobs("published") + worker.jobs("failed") == 0 {
        assert!(start.elapsed() < Duration::from_secs(300), "no job ended");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        (worker.jobs("published"), worker.jobs("failed")),
        (1, 0),
        "{}",
        worker.log()
    );
    assert!(
        silent.most.load(Ordering::Relaxed) >= 768,
        "{} connections were held at most",
        silent.most.load(Ordering::Relaxed)
    );
    drop(silent);
    tokio_run(check_recovered(
        &registry,
        keys.path(),
        "fixtures/debian:12",
    ));
}
