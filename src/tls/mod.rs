//! TLS (B6–B8): termination on virtual servers ([`server`]), encryption
//! to nodes ([`client`]), the ClientHello/ServerHello reading that
//! passthrough routes and persists by ([`hello`]), and the stream adapter
//! that runs rustls over monoio ([`stream`]).
//!
//! One crypto provider (rustls' ring) and one PEM reader serve them all.

pub mod client;
pub mod hello;
pub mod server;
pub mod stream;

use crate::config::model::TlsVersion;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// A TLS setting that cannot be built: the key at fault (within the TLS
/// table), the certificate entry when it is one, and the reason.
pub struct BuildError {
    pub key: &'static str,
    pub cert: Option<usize>,
    pub message: String,
}

impl BuildError {
    pub fn at(key: &'static str, message: impl Into<String>) -> BuildError {
        BuildError { key, cert: None, message: message.into() }
    }
}

pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

pub fn versions(v: &[TlsVersion]) -> Vec<&'static rustls::SupportedProtocolVersion> {
    v.iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect()
}

/// Every certificate in a PEM file (a chain: leaf first).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a valid PEM certificate file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no CERTIFICATE block found", path.display()));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| format!("{}: no usable private key: {e}", path.display()))
}

/// A trust store from a PEM file of CA certificates.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(path)? {
        roots.add(c).map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}
