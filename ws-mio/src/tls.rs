//! `wss://`: TLS with [rustls](https://docs.rs/rustls) between the socket and the protocol core
//! (cargo feature `tls`). rustls is itself sans-IO: the loop hands it the socket's bytes and
//! writes what it produces, so TLS connections run on the same event loops, with the same
//! timers and backpressure, as plain ones.
//!
//! * Servers: [`ServerConfig::tls`](crate::ServerConfig::tls) takes a `rustls::ServerConfig`;
//!   [`server_config_from_pem`] builds one from PEM files (ALPN `http/1.1`, TLS 1.2 and 1.3).
//!   The server name the client asked for (SNI) is in
//!   [`Peer::server_name`](crate::Peer::server_name) when the upgrade request is decided.
//! * Clients: `wss://` URLs. Certificates are verified against Mozilla's root store, bundled
//!   ([`client_config`]): the same roots on every machine, container or not, without reading
//!   the system's store. [`client_config_with_ca_pem`] trusts a private CA instead (tests,
//!   private deployments). There is no way to turn verification off.
//!
//! The crypto provider is rustls' `ring`: it builds with a C compiler alone (aws-lc-rs also
//! needs cmake, and builds several times slower). TLS 1.0 and 1.1 are never offered nor
//! accepted.
//!
//! ```
//! use ws_mio::tls;
//! // A client configuration that trusts Mozilla's roots, for wss:// URLs:
//! let config = tls::client_config();
//! assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
//! // A missing file is named in the error:
//! let err = tls::server_config_from_pem("/nonexistent/cert.pem", "/nonexistent/key.pem");
//! assert!(err.unwrap_err().to_string().contains("/nonexistent/cert.pem"));
//! ```

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no valid PEM.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// rustls refused the configuration (e.g. a key that does not match the certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem { path, error } => write!(f, "{}: {error}", path.display()),
            TlsError::NoCertificate(path) => {
                write!(f, "{}: no certificate in the file", path.display())
            }
            TlsError::Rustls(e) => write!(f, "TLS configuration refused: {e}"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Pem { error, .. } => Some(error),
            TlsError::Rustls(e) => Some(e),
            TlsError::NoCertificate(_) => None,
        }
    }
}

/// rustls' `ring` provider, X25519 first among its key exchange groups (then P-256, P-384).
/// rustls marks it deprecated because it has no post-quantum hybrid (X25519MLKEM768 needs the
/// aws-lc-rs provider). The choice is for building: `ring` needs a C compiler only.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups.sort_by_key(|group| match group.name() {
        rustls::NamedGroup::X25519 => 0,
        rustls::NamedGroup::secp256r1 => 1,
        _ => 2,
    });
    Arc::new(provider)
}

/// The protocol versions offered and accepted: TLS 1.3 and 1.2.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A server configuration for a certificate chain (leaf first) and its private key: TLS 1.3
/// and 1.2, ALPN `http/1.1`, no client certificates.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)?;
    // RFC 8441 aside, WebSocket runs over HTTP/1.1 (RFC 6455 §4.1).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// [`server_config`] from two PEM files: the certificate chain (leaf first) and the private
/// key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config_from_pem(
    cert_chain: impl AsRef<Path>,
    key: impl AsRef<Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = read_certificates(cert_chain.as_ref())?;
    let key_path = key.as_ref();
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| TlsError::Pem {
        path: key_path.to_owned(),
        error,
    })?;
    server_config(chain, key)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |error| TlsError::Pem {
        path: path.to_owned(),
        error,
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}

/// A client configuration trusting `roots`: TLS 1.3 and 1.2, ALPN `http/1.1`.
pub fn client_config_with_roots(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The client configuration used for `wss://` when none is given: Mozilla's root
/// certificates (the `webpki-roots` crate), server names verified.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    client_config_with_roots(roots)
}

/// A client configuration trusting only the certificates of a PEM file (a private CA).
pub fn client_config_with_ca_pem(
    ca: impl AsRef<Path>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let path = ca.as_ref();
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots.add(cert).map_err(TlsError::Rustls)?;
    }
    Ok(client_config_with_roots(roots))
}

/// The TLS state of one connection, between its socket and its protocol core.
pub(crate) type Session = rustls::Connection;

/// A TLS error as an I/O error (its source stays the typed `rustls::Error`).
pub(crate) fn io_error(error: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}
