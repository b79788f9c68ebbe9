//! A real nats-server with JetStream, on a free loopback port with a temporary store,
//! that a test can kill and start again on the same port and store.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, tool};

/// A running nats-server, killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    /// `nats://127.0.0.1:PORT`.
    pub url: String,
    port: u16,
    monitor: u16,
    store: tempfile::TempDir,
    args: Vec<String>,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

impl NatsServer {
    /// Starts nats-server and waits until JetStream answers its health check.
    pub fn start() -> NatsServer {
        Self::start_with(&[])
    }

    /// [`NatsServer::start`] with more of nats-server's options (`--user`, say).
    pub fn start_with(args: &[&str]) -> NatsServer {
        let (port, monitor) = (free_port(), free_port());
        let mut server = NatsServer {
            child: None,
            url: format!("nats://127.0.0.1:{port}"),
            port,
            monitor,
            store: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        server.restart();
        server
    }

    /// `kill -9`: nothing is flushed or said goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it (again) on the same port and store.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(tool("nats-server"))
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor.to_string(), "-sd"])
            .arg(self.store.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts (just tools installs it)");
        self.child = Some(child);
        let health = format!(
            "http://127.0.0.1:{}/healthz?js-enabled-only=true",
            self.monitor
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = reqwest::blocking::get(&health).is_ok_and(|r| r.status().is_success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not healthy after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A value from the monitoring endpoint's JetStream report (`/jsz?consumers=true`),
    /// for tests that check what the broker holds.
    pub fn jsz(&self) -> serde_json::Value {
        reqwest::blocking::get(format!(
            "http://127.0.0.1:{}/jsz?streams=true&consumers=true",
            self.monitor
        ))
        .unwrap()
        .json()
        .unwrap()
    }
}
