//! HTTPS for the metrics endpoint from PEM files (a cert-manager Secret, or the chart's
//! self-signed one), re-read whenever the files change, so a rotated certificate is served
//! without a restart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// A certificate chain and its key, as PEM files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (`tls.crt`).
    pub cert: PathBuf,
    /// The private key (`tls.key`).
    pub key: PathBuf,
}

type Loaded = (Option<SystemTime>, Option<SystemTime>, Arc<CertifiedKey>);

/// Serves the certificate in `files`, loading it again when a file's mtime changes.
#[derive(Debug)]
struct Reloading {
    files: TlsFiles,
    loaded: Mutex<Option<Loaded>>,
}

fn mtime(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl TlsFiles {
    fn load(&self) -> Result<Arc<CertifiedKey>, String> {
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", self.cert.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate", self.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
            .map_err(|e| format!("{}: {e}", self.key.display()))?;
        Ok(Arc::new(CertifiedKey::new(certs, signing)))
    }
}

impl Reloading {
    fn current(&self) -> Option<Arc<CertifiedKey>> {
        let stamps = (mtime(&self.files.cert), mtime(&self.files.key));
        let mut loaded = self.loaded.lock().ok()?;
        match loaded.as_ref() {
            Some((c, k, key)) if (*c, *k) == stamps => Some(key.clone()),
            previous => match self.files.load() {
                Ok(key) => {
                    *loaded = Some((stamps.0, stamps.1, key.clone()));
                    Some(key)
                }
                Err(e) => {
                    // Keep serving the last good certificate while a rotation is half-written.
                    tracing::warn!(error = %e, "cannot load the metrics TLS certificate");
                    previous.map(|(_, _, key)| key.clone())
                }
            },
        }
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

/// A TLS acceptor for `files`; fails now when they cannot be loaded.
pub fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, String> {
    let first = files.load()?;
    let resolver = Reloading {
        files: files.clone(),
        loaded: Mutex::new(Some((mtime(&files.cert), mtime(&files.key), first))),
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
