//! Clients that hold connections open: half-sent requests are cut off after the header
//! deadline, and connections beyond the cap wait unaccepted instead of taking
//! descriptors, so the server keeps answering.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{free_port, refcat, Registry};

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
        // EOF (after a 408, or none) instead of waiting forever.
        let closed = stream.read_to_end(&mut rest);
        assert!(closed.is_ok(), "a held connection stayed open: {closed:?}");
    }
    assert!(start.elapsed() < Duration::from_secs(60));
    serve.kill().unwrap();
    serve.wait().unwrap();
}
