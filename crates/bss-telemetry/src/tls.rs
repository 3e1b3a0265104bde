//! HTTPS on the service's own listener, for deployments without a mesh: a certificate chain and a
//! private key from PEM files, reloaded when the files change (cert-manager and mounted Secrets
//! rotate them in place), without restarting or dropping connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::crypto::{aws_lc_rs, CryptoProvider};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How often the files are checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The certificate every handshake gets: the last one that loaded.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.0.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// A loaded certificate and key, and the acceptor that serves them.
pub struct Tls {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the chain and the key; errors name the file and what is wrong with it.
    pub fn load(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let (cert_file, key_file) = (cert_file.into(), key_file.into());
        let provider = Arc::new(aws_lc_rs::default_provider());
        let current = Arc::new(Current(RwLock::new(Arc::new(certified_key(
            &cert_file, &key_file, &provider,
        )?))));
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // The server speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert_file,
            key_file,
            provider,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Runs the handshake on an accepted connection; `None` (logged) when it fails or takes
    /// longer than `timeout`.
    pub(crate) async fn accept(
        &self,
        stream: tokio::net::TcpStream,
        timeout: Duration,
        peer: std::net::SocketAddr,
    ) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::debug!(error = %error, peer = %peer, "TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(peer = %peer, "TLS handshake timed out");
                None
            }
        }
    }

    /// Reloads the files whenever one of them changes, until the task is dropped. A pair that
    /// does not load (half-written, key of another certificate) is logged and the previous one
    /// keeps serving; the next change is tried again.
    pub(crate) async fn reload_on_change(self: Arc<Self>) {
        let mut seen = self.stamp();
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let stamp = self.stamp();
            if stamp == seen {
                continue;
            }
            seen = stamp;
            match certified_key(&self.cert_file, &self.key_file, &self.provider) {
                Ok(key) => {
                    *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
                    tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
                }
                Err(error) => {
                    tracing::error!(error = %error, "cannot reload the TLS certificate; the previous one keeps serving")
                }
            }
        }
    }

    /// Modification times and sizes of both files (through symbolic links, as Kubernetes mounts
    /// Secrets).
    fn stamp(&self) -> [Option<(SystemTime, u64)>; 2] {
        [&self.cert_file, &self.key_file].map(|path| {
            let metadata = std::fs::metadata(path).ok()?;
            Some((metadata.modified().ok()?, metadata.len()))
        })
    }
}

fn certified_key(
    cert_file: &Path,
    key_file: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NotPem {
            path: cert_file.to_path_buf(),
            what: "certificate chain",
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_file.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_file)?).map_err(|e| TlsError::NotPem {
        path: key_file.to_path_buf(),
        what: "private key",
        detail: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|source| TlsError::Mismatch {
        key: key_file.to_path_buf(),
        cert: cert_file.to_path_buf(),
        source,
    })
}

/// Why a certificate and key cannot be served; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not PEM of the expected kind.
    #[error("{}: not a PEM {what}: {detail}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What it should hold.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The chain holds no certificate.
    #[error("{}: no certificate in it", .0.display())]
    NoCertificate(PathBuf),
    /// The key does not fit the certificate, or is of an unsupported kind.
    #[error("{} and {}: the key does not fit the certificate, or is of an unsupported kind: {source}", key.display(), cert.display())]
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
        /// Why.
        source: tokio_rustls::rustls::Error,
    },
    /// The TLS configuration cannot be built.
    #[error("TLS: {0}")]
    Config(tokio_rustls::rustls::Error),
}
