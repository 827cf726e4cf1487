//! TLS of a listener: a certificate chain and its private key, read once from PEM files at
//! start, served by rustls (ring provider, TLS 1.2 and 1.3) with ALPN offering HTTP/2 (gRPC
//! clients require it) and HTTP/1.1.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Why a listener's certificate or key cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file cannot be read or holds no PEM certificate.
    #[error("cannot read a PEM certificate from {path}: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong, as rustls or the OS said it.
        reason: String,
    },
    /// The key file cannot be read or holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    #[error("cannot read a PEM private key from {path}: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong, as rustls or the OS said it.
        reason: String,
    },
    /// rustls refused the pair (the key does not match the certificate, an unsupported key
    /// type).
    #[error("the certificate {cert} and the key {key} cannot serve TLS: {reason}")]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        reason: String,
    },
}

/// A listener's TLS: what [`serve`](crate::serve) wraps each accepted connection in. Cheap to
/// clone (the configuration is shared).
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads the certificate chain (leaf first) from `cert` and the private key from `key`,
    /// both PEM, and checks that they belong together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let cert_error = |reason: String| TlsError::Certificate {
            path: cert.to_owned(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| cert_error(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(e.to_string()))?;
        if chain.is_empty() {
            return Err(cert_error("the file holds no CERTIFICATE section".into()));
        }
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
            path: key.to_owned(),
            reason: e.to_string(),
        })?;
        Tls::from_der(chain, private_key).map_err(|reason| TlsError::Rejected {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason,
        })
    }

    /// TLS from a certificate chain and its key already decoded; the error is rustls's reason.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Tls, String> {
        // The provider is named rather than taken from the process default, which a second
        // rustls provider compiled into the binary would make ambiguous.
        let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| e.to_string())?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_a_certificate_and_key_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let missing = Tls::from_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(missing, TlsError::Certificate { .. }), "{missing}");
        assert!(missing.to_string().contains("cert.pem"), "{missing}");

        std::fs::write(&cert, "not a certificate\n").unwrap();
        let empty = Tls::from_pem_files(&cert, &key).unwrap_err();
        assert!(empty.to_string().contains("no CERTIFICATE"), "{empty}");

        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, "-----BEGIN NOTHING-----\n-----END NOTHING-----\n").unwrap();
        let no_key = Tls::from_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(no_key, TlsError::Key { .. }), "{no_key}");

        // A key of another certificate does not belong to this one.
        let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
        let mismatch = Tls::from_pem_files(&cert, &key).unwrap_err();
        assert!(matches!(mismatch, TlsError::Rejected { .. }), "{mismatch}");

        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        assert!(Tls::from_pem_files(&cert, &key).is_ok());
    }
}
