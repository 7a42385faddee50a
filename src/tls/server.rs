//! TLS termination settings built once per configuration load (B7): the
//! certificates chosen by SNI, protocol versions, ALPN, client
//! certificates and session resumption, as one `rustls::ServerConfig`
//! shared by every shard.
//!
//! Resumption: session tickets are encrypted with keys shared by all
//! shards and rotated (rustls' ticketer: a new key every 6 hours, the
//! previous one still accepted), so a client resumes on whichever shard
//! accepts its next connection; the session-ID cache is process-wide too
//! (a mutex taken once per full or resumed handshake, not per request).

use super::{load_certs, load_key, provider, BuildError};
use crate::config::model::{ClientAuth, TlsServer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use std::path::Path;
use std::sync::{Arc, RwLock};

/// One certificate chain with its key, and the names it is chosen for.
struct Entry {
    key: Arc<CertifiedKey>,
    /// Explicit `names`; empty: the names the certificate is valid for.
    names: Vec<String>,
}

impl Entry {
    fn serves(&self, sni: &str) -> bool {
        if !self.names.is_empty() {
            return self.names.iter().any(|n| name_matches(n, sni));
        }
        let Ok(name) = rustls::pki_types::ServerName::try_from(sni) else { return false };
        let Some(der) = self.key.cert.first() else { return false };
        match webpki::EndEntityCert::try_from(der) {
            Ok(cert) => cert.verify_is_valid_for_subject_name(&name).is_ok(),
            Err(_) => false,
        }
    }
}

/// `*.example.com` matches one label in front of `example.com`.
pub fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(name),
    }
}

/// The certificate set, replaceable while running (SIGHUP re-reads the
/// files, and handshakes from then on use the new ones).
#[derive(Default)]
pub struct CertResolver {
    entries: RwLock<Arc<Vec<Entry>>>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertResolver({} certificates)", self.entries.read().map(|e| e.len()).unwrap_or(0))
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let entries = self.entries.read().ok()?.clone();
        if let Some(sni) = hello.server_name() {
            if let Some(e) = entries.iter().find(|e| e.serves(sni)) {
                return Some(e.key.clone());
            }
        }
        // No SNI, or no certificate for it: the first one is the default.
        entries.first().map(|e| e.key.clone())
    }
}

impl CertResolver {
    /// Take over the certificates of `other` (a freshly loaded set).
    pub fn replace_from(&self, other: &CertResolver) {
        let new = other.entries.read().map(|e| e.clone()).unwrap_or_default();
        if let Ok(mut e) = self.entries.write() {
            *e = new;
        }
    }
}

/// What a virtual server needs to accept TLS connections.
#[derive(Clone)]
pub struct Acceptor {
    pub config: Arc<ServerConfig>,
    pub resolver: Arc<CertResolver>,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Acceptor({:?})", self.resolver)
    }
}

/// Load the files `settings` names (relative paths against `base`) and
/// build the server configuration.
pub fn build(settings: &TlsServer, base: &Path) -> Result<Acceptor, BuildError> {
    let mut entries = Vec::new();
    for (i, c) in settings.certificates.iter().enumerate() {
        let err = |key, message| BuildError { key, cert: Some(i), message };
        let chain = load_certs(&base.join(&c.cert)).map_err(|m| err("cert", m))?;
        let key = load_key(&base.join(&c.key)).map_err(|m| err("key", m))?;
        let certified = CertifiedKey::from_der(chain, key, &provider())
            .map_err(|e| err("key", format!("the key does not belong to the certificate, or is unsupported: {e}")))?;
        entries.push(Entry { key: Arc::new(certified), names: c.names.clone() });
    }
    let resolver = Arc::new(CertResolver { entries: RwLock::new(Arc::new(entries)) });
    let builder = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&super::versions(&settings.versions))
        .map_err(|e| BuildError::at("versions", e.to_string()))?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let ca_path = settings.client_ca.as_ref().ok_or_else(|| {
                BuildError::at(
                    "client_ca",
                    "client_auth needs client_ca (the CA file client certificates are checked against)",
                )
            })?;
            let roots = super::load_roots(&base.join(ca_path)).map_err(|m| BuildError::at("client_ca", m))?;
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()));
            let v = if settings.client_auth == ClientAuth::Optional { v.allow_unauthenticated() } else { v };
            let v = v.build().map_err(|e| BuildError::at("client_ca", e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut config = builder.with_cert_resolver(resolver.clone());
    config.alpn_protocols = settings.alpn.clone();
    // The server's order by default: a client offering a weak suite first
    // does not get it while a stronger one is shared (scanners flag
    // client order).
    config.ignore_client_order = settings.server_cipher_order;
    config.session_storage = if settings.session_cache_size > 0 {
        rustls::server::ServerSessionMemoryCache::new(settings.session_cache_size)
    } else {
        Arc::new(rustls::server::NoServerSessionStorage {})
    };
    if settings.session_tickets {
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| BuildError::at("session_tickets", e.to_string()))?;
    }
    // TLS 1.3 resumes through tickets: encrypted ones with the ticketer,
    // otherwise identifiers into the session cache. Two, as OpenSSL sends,
    // so a client can open two resumed connections.
    config.send_tls13_tickets = if settings.session_tickets || settings.session_cache_size > 0 { 2 } else { 0 };
    Ok(Acceptor { config: Arc::new(config), resolver })
}
