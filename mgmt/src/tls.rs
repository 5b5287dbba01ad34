//! TLS for the management listener: a certificate chain and its private key read from PEM
//! files, served by rustls (ring provider, TLS 1.3 and 1.2, ALPN `http/1.1`). The files can be
//! read again while serving ([`MgmtTls::reload`]); connections made after a reload get the new
//! certificate, connections already open keep theirs.

use ferrofab_sync::CountedRwLock as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key cannot be served; every variant names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a PEM certificate chain: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("{}: no PEM CERTIFICATE block in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC): {reason}",
        path.display()
    )]
    BadKey { path: PathBuf, reason: String },
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS set-up: {0}")]
    Setup(rustls::Error),
}

/// The TLS side of a management listener: a rustls server configuration whose certificate
/// comes from `cert` and `key`. Clones share the certificate: a reload through any clone is
/// seen by every listener serving it.
#[derive(Clone, Debug)]
pub struct MgmtTls {
    config: Arc<ServerConfig>,
    current: Arc<Current>,
    cert: PathBuf,
    key: PathBuf,
}

/// The certificate handed to each new handshake.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Writers only swap an Arc, so a poisoned lock still holds a whole value.
        Some(self.0.read_counted().clone())
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl MgmtTls {
    /// Read the certificate chain (PEM, the server's certificate first) from `cert` and its
    /// private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC) from `key`, and check that they
    /// belong together.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<MgmtTls, TlsError> {
        let provider = provider();
        let certified = load(&provider, cert, key)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(certified))));
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(MgmtTls {
            config: Arc::new(config),
            current,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    /// Read the certificate and key files again and serve them to new connections. On an
    /// error the certificate served so far stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = load(self.config.crypto_provider(), &self.cert, &self.key)?;
        *self.current.0.write_counted() = Arc::new(certified);
        Ok(())
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The private key file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.config.clone()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn load(provider: &CryptoProvider, cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let bad_key = |reason: String| TlsError::BadKey {
        path: key.to_path_buf(),
        reason,
    };
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| bad_key(e.to_string()))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
            })
        }
        // `Unknown`: the key does not tell its public key; rustls serves such keys too
        // (`CertifiedKey::from_der`).
        Err(rustls::Error::InconsistentKeys(_)) => Ok(certified),
        Err(e) => Err(TlsError::BadCertificate {
            path: cert.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}
