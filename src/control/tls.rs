//! OpenFlow over TLS: the `ssl:` and `pssl:` controller targets.
//!
//! # What?
//! [`Tls::load`] reads the three PEM files `rvsd` is given, as
//! `ovs-vswitchd` is: `--private-key` and `--certificate` (this switch's
//! identity, e.g. `ovs-pki req+sign sc switch`) and `--ca-cert` (the CA
//! that signs the controllers' certificates, e.g. `controllerca/cacert.pem`).
//! [`Tls::accept`] and [`Tls::connect`] run the handshake on a TCP stream
//! and return a stream the OpenFlow connection reads and writes like any
//! other.
//!
//! # Design
//! Mutual authentication in both directions, as Open vSwitch does it:
//! - `pssl:` requires a client certificate that chains to `--ca-cert`; a
//!   client without one, or with one from another CA, fails the handshake
//!   (logged by the caller with the peer's address and rustls's reason).
//! - `ssl:` presents our certificate and requires the controller's to
//!   chain to `--ca-cert`. Like OVS (whose `ovs-pki` certificates name no
//!   host), the certificate's names are not compared with the address
//!   dialled: the CA is the trust decision. The chain, validity dates,
//!   key usage and handshake signatures are checked by webpki.
//!
//! TLS 1.2 and 1.3 with rustls's safe defaults (the ring provider). The
//! files are read once, at start; a change needs a restart.
//!
//! # Thread-safety
//! [`Tls`] is immutable and shared (`Arc`) by every TLS target.
//!
//! # Limits
//! No `--bootstrap-ca-cert` (trust on first use) and no `--peer-ca-cert`;
//! certificate revocation is not checked.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig};
use tokio::net::TcpStream;

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM files of `rvsd --private-key --certificate --ca-cert`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// This switch's private key.
    pub private_key: PathBuf,
    /// This switch's certificate (chain), matching the key.
    pub certificate: PathBuf,
    /// CA certificate(s) that controllers' certificates must chain to.
    pub ca_cert: PathBuf,
}

/// Client and server configurations built from [`TlsFiles`].
#[derive(Clone)]
pub struct Tls {
    server: tokio_rustls::TlsAcceptor,
    client: tokio_rustls::TlsConnector,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tls")
    }
}

/// A TLS stream accepted on a `pssl:` listener.
pub type ServerStream = tokio_rustls::server::TlsStream<TcpStream>;
/// A TLS stream to an `ssl:` controller.
pub type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

fn read_certs(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{what} {}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

impl Tls {
    /// Reads and checks the files; every error names the file and option.
    pub fn load(files: &TlsFiles) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::from_pem_file(&files.private_key)
            .map_err(|e| format!("--private-key {}: {e}", files.private_key.display()))?;
        let certs = read_certs("--certificate", &files.certificate)?;
        let mut roots = RootCertStore::empty();
        for c in read_certs("--ca-cert", &files.ca_cert)? {
            roots
                .add(c)
                .map_err(|e| format!("--ca-cert {}: {e}", files.ca_cert.display()))?;
        }
        let roots = Arc::new(roots);
        let mismatch = |e: rustls::Error| {
            format!(
                "--private-key {} and --certificate {}: {e}",
                files.private_key.display(),
                files.certificate.display()
            )
        };

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| format!("--ca-cert {}: {e}", files.ca_cert.display()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(mismatch)?;

        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("--ca-cert {}: {e}", files.ca_cert.display()))?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaOnly(webpki)))
            .with_client_auth_cert(certs, key)
            .map_err(mismatch)?;
        Ok(Tls {
            server: Arc::new(server).into(),
            client: Arc::new(client).into(),
        })
    }

    /// The server side of the handshake on an accepted connection.
    pub async fn accept(&self, s: TcpStream) -> Result<ServerStream, String> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.server.accept(s)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "no handshake within {}s",
                HANDSHAKE_TIMEOUT.as_secs()
            )),
        }
    }

    /// The client side of the handshake to a controller at `ip`.
    pub async fn connect(&self, ip: IpAddr, s: TcpStream) -> Result<ClientStream, String> {
        let name = ServerName::IpAddress(ip.into());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.client.connect(name, s)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "no handshake within {}s",
                HANDSHAKE_TIMEOUT.as_secs()
            )),
        }
    }
}

/// webpki's server verification without the name check (see the module
/// docs): a certificate that chains to the CA is accepted whatever names
/// it carries. webpki checks the chain before the name, so a name error
/// means everything else passed.
#[derive(Debug)]
struct CaOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for CaOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_option() {
        let d = std::env::temp_dir().join(format!("rvs-tls-{}", std::process::id()));
        let f = TlsFiles {
            private_key: d.join("nokey.pem"),
            certificate: d.join("nocert.pem"),
            ca_cert: d.join("noca.pem"),
        };
        let e = Tls::load(&f).expect_err("no files");
        assert!(e.starts_with("--private-key "), "{e}");
        assert!(e.contains("nokey.pem"), "{e}");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let d = std::env::temp_dir().join(format!("rvs-tls-g-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("x.pem"), "hello\n").unwrap();
        let e = read_certs("--ca-cert", &d.join("x.pem")).expect_err("garbage");
        assert!(e.contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
