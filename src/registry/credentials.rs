//! Registry credentials, and where they come from: flags, or docker's `config.json`
//! with its credential helpers. Secrets are wrapped so `Debug` never shows them.

use std::path::{Path, PathBuf};

use super::RegistryError;
pub use crate::secret::Secret;

/// How to authenticate to a registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials; bearer challenges are answered with anonymous tokens.
    #[default]
    Anonymous,
    /// Username and password, sent as Basic or exchanged for a bearer token.
    Basic {
        /// The user name (not secret).
        username: String,
        /// The password.
        password: Secret,
    },
    /// An identity (refresh) token from docker's config, exchanged for access tokens.
    IdentityToken(Secret),
    /// A bearer token the registry takes as it is (a catalog caller's, sent with
    /// `serve --auth pass-through`): sent on every request, never exchanged.
    Bearer(Secret),
}

impl Credentials {
    /// Credentials for `registry` from a docker config file: `auths`, `credHelpers`
    /// or `credsStore`. A missing file or entry gives [`Credentials::Anonymous`].
    pub fn from_docker_config(path: &Path, registry: &str) -> Result<Self, RegistryError> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Credentials::Anonymous)
            }
            Err(e) => {
                return Err(RegistryError::Credentials(format!(
                    "{}: {e}",
                    path.display()
                )))
            }
        };
        let server = if registry == crate::reference::DEFAULT_REGISTRY {
            "https://index.docker.io/v1/"
        } else {
            registry
        };
        match docker_credential::get_credential_from_reader(file, server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => {
                Ok(Credentials::Basic {
                    username,
                    password: Secret::new(password),
                })
            }
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
                Ok(Credentials::IdentityToken(Secret::new(token)))
            }
            Err(docker_credential::CredentialRetrievalError::NoCredentialConfigured) => {
                Ok(Credentials::Anonymous)
            }
            Err(e) => Err(RegistryError::Credentials(format!(
                "{}: {}",
                path.display(),
                helper_error(&e)
            ))),
        }
    }

    /// Docker's default config path: `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
    pub fn default_docker_config() -> Option<PathBuf> {
        std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
            .map(|dir| dir.join("config.json"))
    }
}

/// What went wrong getting credentials, without the helper's standard output: a helper
/// that half-worked may have printed the secret there. Its standard error says why.
fn helper_error(error: &docker_credential::CredentialRetrievalError) -> String {
    use docker_credential::CredentialRetrievalError as E;
    match error {
        E::HelperFailure { helper, stderr, .. } => {
            let stderr: String = stderr.trim().chars().take(300).collect();
            format!("the credential helper docker-credential-{helper} failed: {stderr}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password() {
        let c = Credentials::Basic {
            username: "ci".into(),
            password: Secret::new("hunter2-s3cret"),
        };
        let shown = format!(
            "{c:?} {:?}",
            Credentials::IdentityToken(Secret::new("tok-s3cret"))
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("ci"));
    }

    #[test]
    fn reads_auths_from_a_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        // base64("alice:pw")
        std::fs::write(
            &path,
            r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6cHc="}}}"#,
        )
        .unwrap();
        let c = Credentials::from_docker_config(&path, "127.0.0.1:5000").unwrap();
        assert_eq!(
            c,
            Credentials::Basic {
                username: "alice".into(),
                password: Secret::new("pw")
            }
        );
        assert_eq!(
            Credentials::from_docker_config(&path, "other:1").unwrap(),
            Credentials::Anonymous
        );
        assert_eq!(
            Credentials::from_docker_config(&dir.path().join("none"), "x").unwrap(),
            Credentials::Anonymous
        );
    }
}
