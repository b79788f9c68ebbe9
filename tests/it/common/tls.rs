//! A private CA made for a test, and a registry serving TLS with a certificate from it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use refcat::registry::{Client, ClientConfig, Tls};

use super::Registry;

/// A CA, and a server certificate it signed for 127.0.0.1 and localhost, and a client
/// certificate, as PEM files.
pub struct TestCa {
    _dir: tempfile::TempDir,
    /// The CA certificate: what `--ca-file` takes.
    pub ca: PathBuf,
    /// The server certificate and its key.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A client certificate and its key, for a server that asks for one.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "refcat test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut server =
            CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let mut client = CertificateParams::new(Vec::new()).unwrap();
        client
            .distinguished_name
            .push(DnType::CommonName, "refcat test client");
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_key = KeyPair::generate().unwrap();
        let client_cert = client.signed_by(&client_key, &issuer).unwrap();

        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestCa {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("server.pem", server_cert.pem()),
            key: write("server.key", server_key.serialize_pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            _dir: dir,
        }
    }

    /// A refcat client for `host` that trusts this CA.
    pub fn client(&self, host: &str) -> Client {
        let mut config = ClientConfig::new(host);
        config.tls = Tls::new(std::slice::from_ref(&self.ca), false).unwrap();
        Client::new(config)
    }
}

impl Registry {
    /// zot serving only HTTPS, with `ca`'s server certificate.
    pub fn zot_tls(ca: &TestCa) -> Registry {
        let (cert, key) = (ca.cert.clone(), ca.key.clone());
        Registry::zot_with(move |config, _: &Path| {
            config["http"]["tls"] = serde_json::json!({ "cert": cert, "key": key });
        })
    }
}
