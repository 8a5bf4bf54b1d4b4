//! The CLI's TLS: which server certificates it trusts, the client certificate it presents, the
//! name it checks, and what it tells the user when a handshake fails.
//!
//! It follows Vault's client (Go's `crypto/tls`) where rustls alone would differ:
//!
//! * `-ca-cert`/`VAULT_CACERT` may name the server's own self-signed certificate. OpenSSL 3
//!   marks such a certificate as a CA (`basicConstraints = CA:TRUE`), which webpki refuses as a
//!   server certificate (`CaUsedAsEndEntity`); Go accepts a presented certificate that is
//!   itself one of the trusted roots. [`ServerVerifier`] does the same, for a certificate
//!   byte-identical to a trusted one only, and still checks its name and validity period.
//! * `-tls-server-name`/`VAULT_TLS_SERVER_NAME` replaces the address's host both as SNI and as
//!   the name the certificate must carry.
//! * `-tls-skip-verify`/`VAULT_SKIP_VERIFY` accepts any certificate, but the handshake
//!   signature is still checked against the presented key.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore,
    SignatureScheme, StreamOwned,
};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};
use zeroize::Zeroizing;

use crate::environment::{ClientIdentity, ConnectionSettings};
use crate::error::{CliError, CliResult};

/// The rustls client configuration for `settings`: trusted roots (the `-ca-cert` bundle, or
/// the Mozilla roots when none is given), the client certificate if one is configured, and the
/// verifier.
pub(crate) fn client_config(settings: &ConnectionSettings) -> CliResult<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Connection(format!("error setting up TLS: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.tls_skip_verify {
        Arc::new(SkipVerifier {
            algorithms: provider.signature_verification_algorithms,
        })
    } else {
        let trusted = match &settings.ca_cert {
            Some(path) => load_ca_bundle(path)?,
            None => Vec::new(),
        };
        Arc::new(ServerVerifier::new(trusted, provider, settings)?)
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.client_identity {
        Some(identity) => {
            let (chain, key) = load_client_identity(identity)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| CliError::ClientCertificate {
                    path: identity.private_key.display().to_string(),
                    reason: format!("the key does not fit the certificate: {e}"),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Verifies the server's certificate with webpki against the trusted roots; a certificate that
/// is byte-for-byte one of the `-ca-cert` certificates is trusted as itself (see the module
/// documentation).
#[derive(Debug)]
struct ServerVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The certificates of the `-ca-cert` bundle, as given.
    exact: Vec<CertificateDer<'static>>,
}

impl ServerVerifier {
    fn new(
        trusted: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
        settings: &ConnectionSettings,
    ) -> CliResult<Self> {
        let mut roots = RootCertStore::empty();
        if trusted.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            let (added, _ignored) = roots.add_parsable_certificates(trusted.iter().cloned());
            if added == 0 {
                return Err(CliError::Tls {
                    path: settings
                        .ca_cert
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    reason: "none of its certificates can be used as a trust anchor".into(),
                });
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| CliError::Connection(format!("error setting up TLS: {e}")))?;
        Ok(Self {
            webpki,
            exact: trusted,
        })
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let error = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(error) => error,
        };
        let is_trusted_as_itself = self
            .exact
            .iter()
            .any(|trusted| trusted.as_ref() == end_entity.as_ref());
        if !is_trusted_as_itself || !is_chain_error(&error) {
            return Err(error);
        }
        check_name_and_validity(end_entity, server_name, now)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The two ways webpki refuses a trusted certificate presented as the server's own: as a CA
/// (`CaUsedAsEndEntity`), or because no root issued it (`UnknownIssuer`, for a self-signed
/// certificate webpki cannot use as its own issuer).
fn is_chain_error(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => true,
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// What Go checks of a trusted certificate presented as a leaf: that it names the server and
/// is within its validity period.
fn check_name_and_validity(
    certificate: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), rustls::Error> {
    let parsed = webpki::EndEntityCert::try_from(certificate)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    parsed
        .verify_is_valid_for_subject_name(server_name)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))?;
    let (_, x509) = x509_parser::parse_x509_certificate(certificate.as_ref())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = x509.validity();
    if now < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    if now > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// `-tls-skip-verify`: any certificate is accepted; the handshake must still be signed by the
/// key of the certificate presented.
#[derive(Debug)]
struct SkipVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SkipVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Every certificate in a PEM bundle.
pub(crate) fn load_ca_bundle(path: &std::path::Path) -> CliResult<Vec<CertificateDer<'static>>> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path)
        .map_err(|e| CliError::io(format!("error reading CA certificate {shown}"), e))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::Tls {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(CliError::Tls {
            path: shown,
            reason: "no PEM certificates found".into(),
        });
    }
    Ok(certificates)
}

/// The certificate chain and private key presented for TLS client authentication (the cert
/// auth method reads the certificate from the handshake). Both files are PEM; the certificate
/// file may carry the chain after the leaf, and the key may be PKCS#8, PKCS#1 or SEC1.
pub(crate) fn load_client_identity(
    identity: &ClientIdentity,
) -> CliResult<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let cert_shown = identity.certificate.display().to_string();
    let cert_pem = std::fs::read(&identity.certificate)
        .map_err(|e| CliError::io(format!("error reading client certificate {cert_shown}"), e))?;
    // A combined cert+key file is common: only its certificates are taken here, the key part is
    // read from -client-key.
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::ClientCertificate {
            path: cert_shown.clone(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CliError::ClientCertificate {
            path: cert_shown,
            reason: "no PEM certificates found".into(),
        });
    }
    let key_shown = identity.private_key.display().to_string();
    // The PEM text is key material: wipe it once the DER form has been taken out.
    let key_pem = Zeroizing::new(
        std::fs::read(&identity.private_key)
            .map_err(|e| CliError::io(format!("error reading client key {key_shown}"), e))?,
    );
    // The parser's own error can quote what it choked on, so only a fixed reason is shown.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| CliError::ClientCertificate {
        path: key_shown,
        reason: "no PEM private key (PKCS#8, PKCS#1 or SEC1) found".into(),
    })?;
    Ok((chain, key))
}

/// What to tell the user about a failed TLS handshake with `address` (whose certificate had to
/// name `server_name`, or the address's host), naming the remedy; `None` when there is nothing
/// better to say than rustls's own text.
pub(crate) fn advice(
    address: &str,
    server_name: Option<&str>,
    error: &rustls::Error,
) -> Option<String> {
    let host = server_name.unwrap_or_else(|| host_of(address));
    let message = match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => {
                "the server's TLS certificate is not signed by a CA this client trusts \
                 (invalid peer certificate: UnknownIssuer): give the CA certificate, or the \
                 server's own certificate if it is self-signed, with -ca-cert=FILE or \
                 VAULT_CACERT=FILE (-tls-skip-verify or VAULT_SKIP_VERIFY=true skips the check, \
                 insecurely)"
                    .to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the server's TLS certificate is not valid for {host}: use an address with a \
                 name or IP address the certificate lists in its subjectAltName, or give one of \
                 its names with -tls-server-name or VAULT_TLS_SERVER_NAME"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's TLS certificate has expired: the server needs a new one".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's TLS certificate is not valid yet: check this machine's clock"
                    .to_owned()
            }
            CertificateError::Other(other)
                if matches!(
                    other.0.downcast_ref::<webpki::Error>(),
                    Some(webpki::Error::CaUsedAsEndEntity)
                ) =>
            {
                "the server presents a CA certificate as its own (invalid peer certificate: \
                 CaUsedAsEndEntity): trust that very certificate with -ca-cert=FILE or \
                 VAULT_CACERT=FILE, or give the server a certificate issued by a CA"
                    .to_owned()
            }
            _ => return None,
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the server at {address} does not speak TLS (it answered https with something \
             else, such as plain HTTP): if its listener has tls_disable = true, use \
             http://{host_port} in VAULT_ADDR or -address",
            host_port = host_port_of(address)
        ),
        _ => return None,
    };
    Some(message)
}

/// `host:port` of an address such as `https://127.0.0.1:8200/`.
pub(crate) fn host_port_of(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// The host of an address, without its port.
fn host_of(address: &str) -> &str {
    let host_port = host_port_of(address);
    if let Some(end) = host_port.strip_prefix('[').and_then(|h| h.find(']')) {
        return &host_port[..end + 2];
    }
    host_port
        .rsplit_once(':')
        .map_or(host_port, |(host, _)| host)
}

/// The ureq connector that wraps the TCP connection of an `https` request in rustls with
/// [`client_config`]'s configuration.
#[derive(Debug)]
pub(crate) struct TlsConnector {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl TlsConnector {
    pub(crate) fn new(settings: &ConnectionSettings) -> CliResult<Self> {
        let server_name = match &settings.tls_server_name {
            Some(name) => Some(ServerName::try_from(name.clone()).map_err(|_| {
                CliError::usage(format!(
                    "invalid TLS server name {name:?}: it must be a DNS name or an IP address"
                ))
            })?),
            None => None,
        };
        Ok(Self {
            config: client_config(settings)?,
            server_name,
        })
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let name = match &self.server_name {
            Some(name) => name.clone(),
            None => {
                let host = details
                    .uri
                    .host()
                    .ok_or(ureq::Error::Tls("the address has no host"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                ServerName::try_from(host.to_owned())
                    .map_err(|_| ureq::Error::Tls("the address's host is not a valid TLS name"))?
            }
        };
        let mut connection = ClientConnection::new(self.config.clone(), name)?;
        let mut socket = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        socket.set_timeout(details.timeout);
        connection.complete_io(&mut socket).map_err(|e| {
            // rustls reports a refused handshake as an I/O error wrapping its own; keep the
            // rustls error so the caller can say what to do about it.
            match e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                Some(tls) => ureq::Error::Rustls(tls.clone()),
                None => ureq::Error::Io(e),
            }
        })?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned::new(connection, socket),
        })))
    }
}

/// One TLS connection as a ureq transport.
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        use std::io::Write;
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        use std::io::Read;
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_taken_from_addresses() {
        assert_eq!(host_port_of("https://127.0.0.1:8200"), "127.0.0.1:8200");
        assert_eq!(
            host_port_of("https://vault.example:8200/"),
            "vault.example:8200"
        );
        assert_eq!(host_of("https://vault.example:8200"), "vault.example");
        assert_eq!(host_of("https://[::1]:8200"), "[::1]");
        assert_eq!(host_of("https://vault.example"), "vault.example");
    }

    #[test]
    fn a_ca_file_without_certificates_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(matches!(load_ca_bundle(&path), Err(CliError::Tls { .. })));
    }

    #[test]
    fn a_client_identity_needs_a_certificate_and_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("not.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let identity = ClientIdentity {
            certificate: not_pem.clone(),
            private_key: not_pem.clone(),
        };
        let error = load_client_identity(&identity).unwrap_err();
        assert!(
            matches!(&error, CliError::ClientCertificate { path, .. } if path.ends_with("not.pem")),
            "{error}"
        );
        assert_eq!(error.exit_code(), 1);

        let missing = ClientIdentity {
            certificate: dir.path().join("absent.pem"),
            private_key: not_pem,
        };
        assert!(matches!(
            load_client_identity(&missing),
            Err(CliError::Io { .. })
        ));

        // A certificate file is not a key file: the key path is the one reported.
        let cert_only = dir.path().join("cert-only.pem");
        std::fs::write(
            &cert_only,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let keyless = ClientIdentity {
            certificate: cert_only.clone(),
            private_key: cert_only,
        };
        let error = load_client_identity(&keyless).unwrap_err();
        assert!(error.to_string().contains("no PEM private key"), "{error}");
    }

    #[test]
    fn unknown_issuers_and_plain_http_listeners_get_advice() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = advice("https://127.0.0.1:8200", None, &unknown).unwrap();
        assert!(
            text.contains("-ca-cert") && text.contains("VAULT_CACERT"),
            "{text}"
        );
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let text = advice("https://127.0.0.1:8200", None, &plain).unwrap();
        assert!(text.contains("http://127.0.0.1:8200"), "{text}");
        assert_eq!(
            advice("https://x:1", None, &rustls::Error::HandshakeNotComplete),
            None
        );
    }
}
