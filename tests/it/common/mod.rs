//! The integration-test harness: real registries on free loopback ports, and the real
//! CLIs from the pinned tools cache (`just tools` fills it).

pub mod attest;
pub mod browser;
pub mod faults;
pub mod launchers;
pub mod lexicon;
pub mod nats;
pub mod published;
pub mod replicas;
pub mod served;
pub mod serving;
pub mod tls;
pub mod token_auth;
pub mod worker;

pub use launchers::{counted_grype, counted_syft, held_syft, observed_syft, runs, write_script};

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use refcat::registry::{Client, ClientConfig, Credentials, Secret};

/// The pinned tools cache (`REFCAT_TOOLS`, default `~/.cache/refcat/tools`).
pub fn tools_root() -> PathBuf {
    std::env::var_os("REFCAT_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME is set")).join(".cache/refcat/tools")
        })
}

/// The pinned tools' bin directory.
pub fn tools_bin() -> PathBuf {
    tools_root().join("bin")
}

/// A pinned syft or grype, offline: the fixture Grype DB from the tools cache, no update
/// checks, and plain HTTP for the loopback test registries.
pub fn scanner(name: &str) -> Command {
    let mut cmd = Command::new(tool(name));
    cmd.env("GRYPE_DB_CACHE_DIR", tools_root().join("grype-db"))
        .env("GRYPE_DB_AUTO_UPDATE", "false")
        .env("GRYPE_DB_VALIDATE_AGE", "false")
        .env("GRYPE_CHECK_FOR_APP_UPDATE", "false")
        .env("SYFT_CHECK_FOR_APP_UPDATE", "false")
        .env("GRYPE_REGISTRY_INSECURE_USE_HTTP", "true")
        .env("SYFT_REGISTRY_INSECURE_USE_HTTP", "true");
    cmd
}

/// A pinned tool, or a panic that says how to get it.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_bin().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `just tools` first",
        path.display()
    );
    path
}

/// A system binary, or a panic that says how to get it.
pub fn system_tool(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{name} is missing: run `just tools` (it installs Debian's docker-registry)"
    );
    path
}

/// A port free at the time of asking.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Which kind of registry a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// zot: the OCI 1.1 referrers API, `OCI-Subject` on manifest PUT.
    Zot,
    /// Debian's docker-registry 2.8: no referrers API, tag-schema fallback.
    Distribution,
}

/// A running registry, stopped on drop.
pub struct Registry {
    pub kind: Kind,
    pub host: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    /// Starts a registry of `kind`.
    pub fn start(kind: Kind) -> Registry {
        match kind {
            Kind::Zot => Self::zot(),
            Kind::Distribution => Self::distribution(None),
        }
    }

    /// Starts a registry of `kind` behind htpasswd auth for `(user, password)`.
    pub fn start_with_auth(kind: Kind, user: &str, password: &str) -> Registry {
        match kind {
            Kind::Zot => Self::zot_with(|config, dir| {
                config["http"]["auth"] =
                    serde_json::json!({ "htpasswd": { "path": htpasswd(dir, user, password) } });
            }),
            Kind::Distribution => Self::distribution(Some((user, password))),
        }
    }

    /// zot from the tools cache, storing in a temporary directory, GC off.
    pub fn zot() -> Registry {
        Self::zot_with(|_, _| {})
    }

    /// zot with its configuration changed by `configure(config, dir)` before it starts;
    /// `dir` is the registry's temporary directory. It logs to [`Registry::log_path`].
    pub fn zot_with(configure: impl Fn(&mut serde_json::Value, &std::path::Path)) -> Registry {
        Self::spawn(Kind::Zot, |port, dir| {
            let mut config = serde_json::json!({
                "distSpecVersion": "1.1.1",
                "storage": { "rootDirectory": dir.join("data"), "gc": false },
                "http": { "address": "127.0.0.1", "port": port.to_string() },
                "log": { "level": "info", "output": dir.join("registry.log") },
            });
            configure(&mut config, dir);
            let config_path = dir.join("zot-config.json");
            std::fs::write(&config_path, config.to_string()).unwrap();
            let mut cmd = Command::new(tool("zot"));
            cmd.arg("serve").arg(&config_path);
            cmd
        })
    }

    /// zot sending a CloudEvent of every push to `url` (see [`zot_events_to`]).
    pub fn zot_notifying(url: &str, token: &str) -> Registry {
        Self::zot_with(|config, _| zot_events_to(config, url, token))
    }

    /// The registry's log file (zot writes it; docker-registry logs nowhere).
    pub fn log_path(&self) -> PathBuf {
        assert_eq!(
            self.kind,
            Kind::Zot,
            "only zot is configured to log to a file"
        );
        self._dir.path().join("registry.log")
    }

    /// Debian's docker-registry 2.8 with deletes enabled, optionally behind htpasswd
    /// auth for `(user, password)`.
    pub fn distribution(auth: Option<(&str, &str)>) -> Registry {
        Self::distribution_with(auth, "")
    }

    /// docker-registry 2.8 sending notifications of every push to `url` with
    /// `Authorization: Bearer <secret>`.
    pub fn distribution_notifying(url: &str, secret: &str) -> Registry {
        let notifications = format!(
            "notifications:\n  endpoints:\n    - name: refcat\n      url: {url}\n      headers:\n        Authorization: [\"Bearer {secret}\"]\n      timeout: 5s\n      threshold: 3\n      backoff: 1s\n"
        );
        Self::distribution_with(None, &notifications)
    }

    /// [`Registry::distribution`] with `extra` appended to its configuration.
    pub fn distribution_with(auth: Option<(&str, &str)>, extra: &str) -> Registry {
        Self::spawn(Kind::Distribution, |port, dir| {
            let mut config = format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("data").display()
            );
            if let Some((user, password)) = auth {
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: refcat-test\n    path: {}\n",
                    htpasswd(dir, user, password).display()
                ));
            }
            config.push_str(extra);
            let config_path = dir.join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let mut cmd = Command::new(system_tool("docker-registry"));
            cmd.arg("serve").arg(&config_path);
            cmd
        })
    }

    /// Starts the command `command(port, dir)` builds and waits until `/v2/` answers.
    /// A free port can be taken by another test between asking and binding, so a
    /// registry that exits during start-up is started again on another port.
    fn spawn(kind: Kind, command: impl Fn(u16, &std::path::Path) -> Command) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        for _attempt in 0..5 {
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let mut cmd = command(port, dir.path());
            let mut child = cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(20);
            let started = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                // A registry serving TLS answers this plain request with 400.
                if matches!(v2_status(&host), Ok(200 | 400 | 401)) {
                    break true;
                }
                assert!(
                    Instant::now() < deadline,
                    "registry at {host} not ready after 20 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            if started {
                return Registry {
                    kind,
                    host,
                    child,
                    _dir: dir,
                };
            }
        }
        panic!("{kind:?} registry exited during start-up five times");
    }

    /// docker-registry's configuration file, for its offline commands.
    pub fn config_path(&self) -> PathBuf {
        assert_eq!(
            self.kind,
            Kind::Distribution,
            "only docker-registry has one"
        );
        self._dir.path().join("config.yml")
    }

    /// Where docker-registry stores the blob `digest` on disk, for tests that tamper
    /// with or lose content behind the registry's back.
    pub fn blob_path(&self, digest: &refcat::digest::Digest) -> PathBuf {
        assert_eq!(
            self.kind,
            Kind::Distribution,
            "only docker-registry's layout is known"
        );
        let hex = digest.digest();
        self._dir
            .path()
            .join("data/docker/registry/v2/blobs")
            .join(digest.algorithm().as_ref())
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// An anonymous client.
    pub fn client(&self) -> Client {
        Client::new(ClientConfig::new(self.host.clone()))
    }

    /// A client that keeps what it reads, as `refcat serve` builds it.
    pub fn cached_client(&self, cache: refcat::cache::CacheConfig) -> Client {
        let mut config = ClientConfig::new(self.host.clone());
        config.cache = Some(cache);
        Client::new(config)
    }

    /// A client with a small page size, to force paging.
    pub fn client_with_page_size(&self, page_size: u32) -> Client {
        let mut config = ClientConfig::new(self.host.clone());
        config.page_size = page_size;
        Client::new(config)
    }

    /// A client with basic credentials.
    pub fn client_as(&self, user: &str, password: &str) -> Client {
        let mut config = ClientConfig::new(self.host.clone());
        config.credentials = Credentials::Basic {
            username: user.into(),
            password: Secret::new(password),
        };
        Client::new(config)
    }
}

/// Configures zot to send a CloudEvent of every push to `url` with `Authorization:
/// Bearer <token>`, its events extension's HTTP sink set up as `zot-config.json` does.
pub fn zot_events_to(config: &mut serde_json::Value, url: &str, token: &str) {
    config["extensions"] = serde_json::json!({ "events": {
        "enable": true,
        "sinks": [{
            "type": "http", "address": url, "timeout": "5s",
            "credentials": { "token": token }
        }]
    }});
}

/// Writes an htpasswd file for `user` (bcrypt, as both registries require) in `dir`.
fn htpasswd(dir: &std::path::Path, user: &str, password: &str) -> PathBuf {
    let hash = bcrypt::hash(password, 5).unwrap();
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
    path
}

/// The HTTP status of `GET /v2/` on `host`, read off a raw HTTP/1.0 exchange: start-up
/// polling needs no async runtime.
fn v2_status(host: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        stream,
        "GET /v2/ HTTP/1.0
Host: {host}

"
    )?;
    // "HTTP/1.x NNN": the status is bytes 9..12.
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    Ok(std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Runs a command and returns its output, panicking with stderr on failure.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// `oras attach` of a small file to `target` with annotation `from=oras`; the new
/// artifact's digest.
pub fn oras_attach(target: &str, artifact_type: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("note.txt"), format!("attached to {target}")).unwrap();
    let mut cmd = Command::new(tool("oras"));
    cmd.current_dir(dir.path()).args([
        "attach",
        "--plain-http",
        "--artifact-type",
        artifact_type,
        "--annotation",
        "from=oras",
        "--format",
        "json",
        target,
        "note.txt",
    ]);
    let out = run_ok(&mut cmd);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["digest"]
        .as_str()
        .expect("oras attach prints the digest")
        .to_string()
}

/// `oras` with plain HTTP, for 127.0.0.1 registries.
pub fn oras(args: &[&str]) -> Output {
    let mut cmd = Command::new(tool("oras"));
    cmd.args(args).arg("--plain-http");
    run_ok(&mut cmd)
}

/// The refcat binary under test.
pub fn refcat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_refcat"))
}

/// The password of the test signing keys.
pub const KEY_PASSWORD: &str = "s3cret-key-pw";

/// `refcat publish` with the pinned syft and grype, the fixture Grype DB, and the key
/// `refcat.key` in `keys` (see [`write_keys`]).
pub fn refcat_publish(keys: &std::path::Path) -> Command {
    refcat_publishing("publish", keys)
}

/// `refcat SUBCOMMAND` (publish, backfill, worker) with [`refcat_publish`]'s scanners,
/// Grype DB and key.
pub fn refcat_publishing(subcommand: &str, keys: &std::path::Path) -> Command {
    let mut cmd = refcat();
    cmd.arg(subcommand)
        .arg("--key")
        .arg(keys.join("refcat.key"))
        .env("REFCAT_SYFT", tool("syft"))
        .env("REFCAT_GRYPE", tool("grype"))
        .env("GRYPE_DB_CACHE_DIR", tools_root().join("grype-db"))
        .env("COSIGN_PASSWORD", KEY_PASSWORD);
    cmd
}

/// Debian's docker-registry 2.8 and a fresh key pair (see [`write_keys`]).
pub fn keyed_distribution() -> (Registry, tempfile::TempDir) {
    let registry = Registry::distribution(None);
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    (registry, keys)
}

/// Writes a fresh key pair as `refcat.key` / `refcat.pub` in `dir`.
pub fn write_keys(dir: &std::path::Path) -> refcat::sign::KeyPair {
    let pair = refcat::sign::KeyPair::generate();
    std::fs::write(
        dir.join("refcat.key"),
        pair.to_encrypted_pem(&Secret::new(KEY_PASSWORD)).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("refcat.pub"), pair.public_key().to_pem()).unwrap();
    pair
}

/// `cosign verify --key KEY --insecure-ignore-tlog=true REF`: whether cosign accepted.
pub fn cosign_verify(key: &std::path::Path, reference: &str) -> (bool, String) {
    let out = Command::new(tool("cosign"))
        .args(["verify", "--key"])
        .arg(key)
        .args([
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            reference,
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The image manifest at `target` (an artifact or a signature), panicking on an index.
pub async fn image_manifest(
    client: &Client,
    repository: &refcat::reference::RepositoryName,
    target: refcat::reference::Target,
) -> refcat::oci::ImageManifest {
    match client
        .get_manifest(repository, &target)
        .await
        .unwrap()
        .manifest
    {
        refcat::oci::Manifest::Image(m) => m,
        refcat::oci::Manifest::Index(_) => panic!("{repository} {target:?} is an index"),
    }
}

/// The fixture images directory.
pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// Builds and pushes the fixture in `testdata/images/<name>`.
pub async fn push_fixture(client: &Client, name: &str) -> crate::fixture::BuiltImage {
    let image = crate::fixture::build(&testdata().join("images").join(name)).unwrap();
    crate::fixture::push(client, &image).await.unwrap();
    image
}

/// The references of the three sample images on `registry`.
pub fn fixture_refs(registry: &Registry) -> Vec<String> {
    [
        "fixtures/debian:12",
        "fixtures/alpine:3.19",
        "fixtures/app:1.0.0",
    ]
    .iter()
    .map(|r| format!("{}/{r}", registry.host))
    .collect()
}

/// Pushes the three sample images to `registry` and publishes their signed referrers
/// with a fresh key pair, which is returned.
pub async fn publish_fixtures(registry: &Registry) -> tempfile::TempDir {
    let client = registry.client();
    let keys = tempfile::tempdir().unwrap();
    write_keys(keys.path());
    for fixture in ["debian", "alpine", "lang"] {
        push_fixture(&client, fixture).await;
    }
    let mut publish = refcat_publish(keys.path());
    publish.args(fixture_refs(registry));
    let out = tokio::task::spawn_blocking(move || publish.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    keys
}

/// A copy of the fixture Grype DB in a directory of its own, for a test that replaces it.
pub fn own_grype_db() -> tempfile::TempDir {
    let db = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(tools_root().join("grype-db/."))
            .arg(db.path()),
    );
    db
}

/// Replaces the Grype DB in `db` with the fixture advisories plus one on busybox
/// (CVE-2026-0001, alpine 3.19), built a week later: 2026-11-08.
pub fn import_newer_grype_db(db: &std::path::Path) {
    let sources = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(testdata().join("grypedb/providers/."))
            .arg(sources.path()),
    );
    let advisory = serde_json::json!({ "Vulnerability": {
        "Name": "CVE-2026-0001", "NamespaceName": "alpine:3.19", "Severity": "High",
        "Link": "https://security.alpinelinux.org/vuln/CVE-2026-0001",
        "Description": "A test advisory added after the first scan.", "CVSS": [], "Metadata": {},
        "FixedIn": [{ "Name": "busybox", "NamespaceName": "alpine:3.19", "VersionFormat": "apk",
            "Version": "1.36.1-r16", "VendorAdvisory": { "NoAdvisory": false, "AdvisorySummary": [] } }]
    }});
    std::fs::write(
        sources.path().join("alpine/CVE-2026-0001.json"),
        advisory.to_string(),
    )
    .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let built = run_ok(
        Command::new(tool("build-grype-db"))
            .arg("-providers")
            .arg(sources.path())
            .arg("-out")
            .arg(out_dir.path())
            .args(["-built", "2026-11-08T00:00:00Z"]),
    );
    let archive = String::from_utf8(built.stdout).unwrap().trim().to_string();
    run_ok(
        Command::new(tool("grype"))
            .args(["db", "import", &archive])
            .env("GRYPE_DB_CACHE_DIR", db),
    );
}
