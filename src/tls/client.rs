//! Encryption to nodes (B8): a pool's `rustls::ClientConfig`, built once
//! per configuration load and shared by every shard (so TLS sessions to a
//! node are resumed whichever shard connects next), and the name each
//! node is verified against. SIGHUP re-reads its files and replaces it.

use super::{load_certs, load_key, load_roots, provider, BuildError};
use crate::config::model::PoolTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, RwLock};

/// The system's CA bundle (Debian, Ubuntu, Alpine, Arch), used when a pool
/// names no `ca`.
const SYSTEM_ROOTS: &[&str] =
    &["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

#[derive(Clone)]
pub struct Connector {
    /// Shared by every clone (each shard's copy of the pool), so SIGHUP can
    /// replace it for all of them: read once per new node connection.
    config: Arc<RwLock<Arc<ClientConfig>>>,
    /// `server_name`: sent as SNI and verified, instead of each node's host.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connector(server_name: {:?})", self.server_name)
    }
}

impl Connector {
    /// The same connector (clones of one), not just equal settings.
    pub fn same_as(&self, other: &Connector) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }

    /// The client configuration for a new connection.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.read().map(|c| c.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Use `other`'s configuration (CA and client certificate files
    /// re-read by SIGHUP) from now on.
    pub fn replace_from(&self, other: &Connector) {
        let new = other.config();
        if let Ok(mut c) = self.config.write() {
            *c = new;
        }
    }

    /// The name to send and verify for the node written as `node` (`host:port`).
    pub fn name_for(&self, node: &str) -> Result<ServerName<'static>, String> {
        server_name(self.server_name.as_deref().unwrap_or_else(|| host_of(node)))
    }
}

/// The host part of a node written as `host:port` (`[v6]:port` too).
pub fn host_of(node: &str) -> &str {
    node.rsplit_once(':').map_or(node, |(h, _)| h).trim_start_matches('[').trim_end_matches(']')
}

pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("invalid TLS server name \"{host}\": {e}"))
}

/// A TLS client handshake on `stream`: what node connections, monitors and
/// shoal-bench all do.
pub async fn handshake(
    stream: monoio::net::TcpStream,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Result<crate::tls::stream::TlsStream, String> {
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| format!("TLS setup failed: {e}"))?;
    crate::tls::stream::TlsStream::handshake(stream, conn).await.map_err(|e| format!("TLS handshake failed: {e}"))
}

/// Accepts any certificate (`verify = false`, and shoal-bench's
/// `--insecure`), still checking that the handshake is signed by the key
/// the peer presented.
#[derive(Debug)]
pub struct NoVerify(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn build(settings: &PoolTls, base: &Path) -> Result<Connector, BuildError> {
    let provider = Arc::new(provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&super::versions(&settings.versions))
        .map_err(|e| BuildError::at("versions", e.to_string()))?;
    let builder = if settings.verify {
        let roots = match &settings.ca {
            Some(p) => load_roots(&base.join(p)).map_err(|m| BuildError::at("ca", m))?,
            None => {
                let path = SYSTEM_ROOTS.iter().map(Path::new).find(|p| p.exists()).ok_or_else(|| {
                    BuildError::at(
                        "ca",
                        format!("no `ca` given and no system CA bundle found (looked for {})", SYSTEM_ROOTS.join(", ")),
                    )
                })?;
                load_roots(path).map_err(|m| BuildError::at("ca", m))?
            }
        };
        builder.with_root_certificates(roots)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };
    let mut config = match (&settings.client_cert, &settings.client_key) {
        (Some(c), Some(k)) => {
            let chain = load_certs(&base.join(c)).map_err(|m| BuildError::at("client_cert", m))?;
            let key = load_key(&base.join(k)).map_err(|m| BuildError::at("client_key", m))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| BuildError::at("client_key", format!("unusable client certificate or key: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => return Err(BuildError::at("client_key", "client_cert needs client_key")),
        (None, Some(_)) => return Err(BuildError::at("client_cert", "client_key needs client_cert")),
    };
    config.alpn_protocols = settings.alpn.clone();
    Ok(Connector { config: Arc::new(RwLock::new(Arc::new(config))), server_name: settings.server_name.clone() })
}
