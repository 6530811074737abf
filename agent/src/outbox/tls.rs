//! TLS for the network sinks, one way for all of them: rustls with the `ring` provider only
//! (no OpenSSL, no aws-lc), the CA certificates of `ca_file` (or this host's system bundle when
//! none is named), and a client certificate and key for mTLS where the receiver asks for one.
//!
//! The keys every network sink accepts for it (`[[sinks]]`): `ca_file`, `client_cert`,
//! `client_key` (PEM files; the last two together or not at all). The files are read once,
//! when the sink is built from the configuration, so that a missing or malformed file is a
//! configuration error at start-up and not a retry loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// Where the CA certificates come from when `ca_file` is not set: Debian's system bundle.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The TLS keys of a network sink's table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct TlsFiles {
    /// PEM file of the CA certificates that may sign the receiver's certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM file of this agent's certificate chain, for mTLS.
    pub client_cert: Option<PathBuf>,
    /// PEM file of its private key.
    pub client_key: Option<PathBuf>,
}

/// What the files held, read and checked.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The trusted CA certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// `ca_file`'s PEM text (or the system bundle's), for clients that take PEM.
    pub roots_pem: Vec<u8>,
    /// The client certificate chain and key, with their PEM texts.
    pub client: Option<ClientIdentity>,
}

/// A client certificate chain and its key.
#[derive(Debug)]
pub struct ClientIdentity {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key.
    pub key: PrivateKeyDer<'static>,
    /// The chain's PEM text.
    pub chain_pem: Vec<u8>,
    /// The key's PEM text.
    pub key_pem: Vec<u8>,
}

impl Clone for ClientIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            chain_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
        }
    }
}

impl Clone for TlsMaterial {
    fn clone(&self) -> Self {
        Self {
            roots: self.roots.clone(),
            roots_pem: self.roots_pem.clone(),
            client: self.client.clone(),
        }
    }
}

/// The one crypto provider of every TLS connection the agent makes.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("{what} {}: {err}", path.display()))
}

impl TlsFiles {
    /// Reads and checks the files: one line naming the file and what is wrong with it.
    pub fn load(&self) -> Result<TlsMaterial, String> {
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err("client_cert and client_key go together".to_owned());
        }
        let (ca_path, what) = match &self.ca_file {
            Some(path) => (path.clone(), "ca_file"),
            None => (PathBuf::from(SYSTEM_CA_BUNDLE), "the system CA bundle"),
        };
        let roots_pem = read(&ca_path, what)?;
        let roots = CertificateDer::pem_slice_iter(&roots_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("{what} {}: not PEM certificates: {err}", ca_path.display()))?;
        if roots.is_empty() {
            return Err(format!(
                "{what} {}: holds no certificate",
                ca_path.display()
            ));
        }
        let client = match (&self.client_cert, &self.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                let chain_pem = read(cert, "client_cert")?;
                let chain = CertificateDer::pem_slice_iter(&chain_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|err| {
                        format!(
                            "client_cert {}: not PEM certificates: {err}",
                            cert.display()
                        )
                    })?;
                if chain.is_empty() {
                    return Err(format!(
                        "client_cert {}: holds no certificate",
                        cert.display()
                    ));
                }
                let key_pem = read(key, "client_key")?;
                let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
                    format!("client_key {}: not a PEM private key: {err}", key.display())
                })?;
                Some(ClientIdentity {
                    chain,
                    key: private,
                    chain_pem,
                    key_pem,
                })
            }
            _ => None,
        };
        Ok(TlsMaterial {
            roots,
            roots_pem,
            client,
        })
    }
}

impl TlsMaterial {
    /// A rustls client configuration (ring provider, TLS 1.2 and 1.3) trusting `roots` and
    /// presenting the client identity, if any.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let mut store = rustls::RootCertStore::empty();
        let (added, _ignored) = store.add_parsable_certificates(self.roots.iter().cloned());
        if added == 0 {
            return Err("no usable CA certificate".to_owned());
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| format!("TLS set-up: {err}"))?
            .with_root_certificates(store);
        let config = match &self.client {
            None => builder.with_no_client_auth(),
            Some(identity) => builder
                .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
                .map_err(|err| format!("client_cert and client_key do not make a pair: {err}"))?,
        };
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_malformed_files_are_one_line_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsFiles {
            ca_file: Some(dir.path().join("nope.pem")),
            ..TlsFiles::default()
        };
        let err = missing.load().unwrap_err();
        assert!(
            err.starts_with("ca_file ") && err.contains("nope.pem"),
            "{err}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let err = TlsFiles {
            ca_file: Some(junk),
            ..TlsFiles::default()
        }
        .load()
        .unwrap_err();
        assert!(err.contains("holds no certificate"), "{err}");
        let half = TlsFiles {
            client_cert: Some(dir.path().join("c.pem")),
            ..TlsFiles::default()
        };
        assert_eq!(
            half.load().unwrap_err(),
            "client_cert and client_key go together"
        );
    }
}
