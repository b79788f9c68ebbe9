//! A registry with the distribution token auth that Harbor and Docker Hub speak: Debian's
//! docker-registry 2.8 trusting a certificate made here, and distribution's own token
//! server (`token-server`, from `just tools`) signing tokens with that certificate's
//! key. The token server grants a user the catalog and the repositories under their own
//! name (`alice/…`), nothing else. It is reached through a [`FaultProxy`], the realm the
//! registry names, which counts what clients ask it and can fail it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use refcat::registry::{Client, ClientConfig, Credentials, Secret};

use super::faults::FaultProxy;
use super::{free_port, tool, Registry};

/// The `service` and `issuer` the registry and the token server agree on.
const SERVICE: &str = "refcat-test-registry";
const ISSUER: &str = "refcat-test-token-server";

/// A token-auth registry, its token server and the proxy in front of it; all stop on
/// drop.
pub struct TokenAuth {
    pub registry: Registry,
    /// The realm the registry names: a proxy in front of the token server.
    pub realm: FaultProxy,
    token_server: Child,
    _dir: tempfile::TempDir,
}

impl Drop for TokenAuth {
    fn drop(&mut self) {
        let _ = self.token_server.kill();
        let _ = self.token_server.wait();
    }
}

impl TokenAuth {
    /// Starts the three, with `users` (name, password) known to the token server.
    pub async fn start(users: &[(&str, &str)]) -> TokenAuth {
        let dir = tempfile::tempdir().unwrap();
        let (key, certificate) = signing_key(dir.path());
        let htpasswd = dir.path().join("htpasswd");
        let lines: String = users
            .iter()
            .map(|(user, password)| format!("{user}:{}\n", bcrypt::hash(password, 5).unwrap()))
            .collect();
        std::fs::write(&htpasswd, lines).unwrap();

        let host = format!("127.0.0.1:{}", free_port());
        let log = dir.path().join("token-server.log");
        let mut token_server = Command::new(tool("token-server"))
            .args(["-addr", &host, "-realm", "refcat-test", "-issuer", ISSUER])
            .arg("-passwd")
            .arg(&htpasswd)
            .arg("-key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            if let Ok(Some(status)) = token_server.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("token-server exited at start ({status}): {said}");
            }
            assert!(
                Instant::now() < deadline,
                "token-server not listening after 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let realm = FaultProxy::start(&host).await;
        let auth = format!(
            "auth:\n  token:\n    realm: http://{}/token/\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            realm.host,
            certificate.display()
        );
        let registry = Registry::distribution_with(None, &auth);
        TokenAuth {
            registry,
            realm,
            token_server,
            _dir: dir,
        }
    }

    /// A client reading and pushing as `user`, trusting the token service.
    pub fn client_as(&self, user: &str, password: &str) -> Client {
        let mut config = ClientConfig::new(self.registry.host.clone());
        config.credentials = Credentials::Basic {
            username: user.into(),
            password: Secret::new(password),
        };
        config.trusted_realms = vec![self.realm.host.clone()];
        Client::new(config)
    }
}

/// The token server's P-256 key (a JWK, which it reads by the `.json` name) and a
/// self-signed certificate of it, the registry's root of trust for tokens, written in
/// `dir`.
fn signing_key(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use base64::Engine as _;
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let point = secret.public_key().to_encoded_point(false);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "x": b64(point.x().unwrap()),
        "y": b64(point.y().unwrap()),
        "d": b64(&secret.to_bytes()),
    });
    let key = dir.join("token-key.json");
    std::fs::write(&key, jwk.to_string()).unwrap();
    let pkcs8 = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key_pair = rcgen::KeyPair::from_pem(&pkcs8).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ISSUER);
    let cert = dir.join("token-cert.pem");
    std::fs::write(&cert, params.self_signed(&key_pair).unwrap().pem()).unwrap();
    (key, cert)
}
