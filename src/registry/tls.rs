//! Which registry certificates refcat trusts.
//!
//! Trusted: the bundled public roots, the system's store (`SSL_CERT_FILE`,
//! `SSL_CERT_DIR`, `/etc/ssl/certs`), and CA files the user names. The same CA files go
//! to syft and grype ([`Tls::ca_pem`]), so a scan reaches every registry refcat reaches.

use std::path::{Path, PathBuf};

pub(super) use crate::handshake::{handshake, Handshake};

/// A CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read the CA file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate.
    #[error("the CA file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
}

/// How registry certificates are checked.
#[derive(Clone, Debug, Default)]
pub struct Tls {
    /// Every extra CA's PEM, concatenated, as syft's `SYFT_REGISTRY_CA_CERT` takes it.
    ca_pem: Vec<u8>,
    roots: Vec<reqwest::Certificate>,
    insecure: bool,
}

impl Tls {
    /// Trust the CAs in `files` besides the public and system roots; with `insecure`,
    /// check no certificate at all.
    pub fn new(files: &[PathBuf], insecure: bool) -> Result<Tls, TlsError> {
        let mut tls = Tls {
            insecure,
            ..Tls::default()
        };
        for path in files {
            let pem = read(path)?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| TlsError::NoCertificate { path: path.clone() })?;
            tls.roots.extend(certificates);
            tls.ca_pem.extend_from_slice(&pem);
            tls.ca_pem.push(b'\n');
        }
        Ok(tls)
    }

    /// The extra CAs as one PEM bundle, when there are any.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        (!self.ca_pem.is_empty()).then_some(self.ca_pem.as_slice())
    }

    /// Whether certificates go unchecked.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// `builder` trusting what this says.
    pub(super) fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let builder = self
            .roots
            .iter()
            .cloned()
            .fold(builder, |b, root| b.add_root_certificate(root));
        builder.danger_accept_invalid_certs(self.insecure)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert!(matches!(
            Tls::new(std::slice::from_ref(&empty), false),
            Err(TlsError::NoCertificate { .. })
        ));
        let missing = dir.path().join("missing.pem");
        let err = Tls::new(&[missing], false).unwrap_err();
        assert!(err.to_string().contains("cannot read the CA file"), "{err}");
        assert!(Tls::new(&[], false).unwrap().ca_pem().is_none());
    }
}
