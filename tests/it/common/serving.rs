//! `refcat serve` run as users run it: a process on a port of its own, killed on drop.

use std::process::{Child, Stdio};
use std::time::Duration;

use super::{free_port, refcat};

/// A running `refcat serve`.
pub struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// `refcat serve REGISTRY` with `args`, on loopback.
    pub async fn start(registry: &str, args: &[&str]) -> ServeProcess {
        Self::start_on(registry, "127.0.0.1", args).await
    }

    /// [`ServeProcess::start`] listening on `ip`.
    pub async fn start_on(registry: &str, ip: &str, args: &[&str]) -> ServeProcess {
        let port = free_port();
        let child = refcat()
            .args(["serve", registry, "--listen", &format!("{ip}:{port}")])
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if reqwest::get(format!("{base}/healthz")).await.is_ok() {
                return ServeProcess { child, base };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve did not start");
    }

    /// The process id, to read its memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// GET `path`: the status and the body as JSON (`null` when it is not JSON).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }
}
