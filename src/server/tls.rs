//! TLS, with rustls: `--tls-cert` and `--tls-key` (PEM). ALPN offers `h2` first,
//! then `http/1.1`: browsers speak HTTP/2 only over TLS, and over HTTP/1.1 they
//! open at most 6 connections per host across all tabs, each stream holding one.
//!
//! The handshake runs over the accepted socket, under its first-request deadline
//! (`--header-timeout`), so a client that never finishes it holds nothing longer
//! than one that never sends a request. After it the connection is served as a
//! plain one is: the head reader sees HTTP/1.1 or the HTTP/2 preface.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The protocols offered, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// An acceptor for the certificate chain in `cert` and the private key in `key`.
pub fn acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate file {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds no valid PEM certificate", cert.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)",
        cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
        format!(
            "cannot read a private key (PEM: PKCS#8, PKCS#1 or SEC1) from {}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the certificate and the private key do not go together")?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_wrong_files_are_refused_with_the_path() {
        let missing = Path::new("/nonexistent/cert.pem");
        let error = acceptor(missing, missing)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("/nonexistent/cert.pem"), "{error}");

        let dir = std::env::temp_dir().join(format!("tls-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("cert.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let error = format!("{:#}", acceptor(&not_pem, &not_pem).err().expect("refused"));
        assert!(error.contains("holds no"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
