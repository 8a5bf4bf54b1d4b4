//! A small blocking client for Vault's HTTP API.
//!
//! Every request carries `X-Vault-Request: true` (Vault's CSRF guard for browsers), the token
//! in `X-Vault-Token` and the namespace in `X-Vault-Namespace`. Non-2xx answers become
//! [`CliError::Api`] carrying the status and the server's `errors` array; 2xx answers are
//! returned as JSON (`null` for an empty body such as a 204).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use ureq::http;
use ureq::tls::{ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use zeroize::Zeroizing;

use crate::environment::{ClientIdentity, ConnectionSettings};
use crate::error::{ApiError, CliError, CliResult};

/// How long one request may take end to end before the CLI gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to one server, with the identity to present to it.
#[derive(Clone)]
pub struct Client {
    address: String,
    token: Option<String>,
    namespace: Option<String>,
    /// Sent as `X-Vault-Wrap-TTL`: the server then answers with a wrapping token instead of
    /// the response.
    wrap_ttl: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    // Hand-written so the token never lands in debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("wrap_ttl", &self.wrap_ttl)
            .finish()
    }
}

impl Client {
    /// Build a client from resolved settings, loading the CA bundle and the TLS client
    /// certificate if they are configured.
    pub fn new(settings: &ConnectionSettings) -> CliResult<Self> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = &settings.ca_cert {
            tls = tls.root_certs(load_ca_bundle(path)?);
        }
        if let Some(identity) = &settings.client_identity {
            tls = tls.client_cert(Some(load_client_identity(identity)?));
        }
        if settings.tls_skip_verify {
            tls = tls.disable_verification(true);
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .timeout_global(Some(REQUEST_TIMEOUT))
            // Vault answers redirects only for HA standbys; follow them like Vault's client.
            .max_redirects(3)
            .build()
            .new_agent();
        Ok(Self {
            address: settings.address.trim_end_matches('/').to_owned(),
            token: settings.token.clone(),
            namespace: settings.namespace.clone(),
            wrap_ttl: None,
            agent,
        })
    }

    /// Base address of the server, e.g. `http://127.0.0.1:8200`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The token this client presents, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The namespace this client sends, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// A copy of this client that presents `token` instead.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    /// A copy of this client that presents no token (logins must not send a stale one).
    pub fn without_token(&self) -> Self {
        Self {
            token: None,
            ..self.clone()
        }
    }

    /// A copy of this client that asks the server to wrap every response for `wrap_ttl`
    /// (a duration such as `300s`), or that stops wrapping when `None`.
    pub fn with_wrap_ttl(&self, wrap_ttl: Option<String>) -> Self {
        Self {
            wrap_ttl,
            ..self.clone()
        }
    }

    /// The wrap TTL this client requests, if any.
    pub fn wrap_ttl(&self) -> Option<&str> {
        self.wrap_ttl.as_deref()
    }

    /// `GET /v1/<path>`. `path` may carry a query string.
    pub fn get(&self, path: &str) -> CliResult<Value> {
        self.request("GET", path, None)
    }

    /// `PUT /v1/<path>` with a JSON body.
    pub fn put(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.request("PUT", path, Some(body))
    }

    /// `POST /v1/<path>` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.request("POST", path, Some(body))
    }

    /// `PATCH /v1/<path>` with a JSON merge-patch body (`application/merge-patch+json`), as
    /// Vault requires for KV v2 patch.
    pub fn patch(&self, path: &str, body: &Value) -> CliResult<Value> {
        self.send("PATCH", path, Some(body), "application/merge-patch+json")
    }

    /// `DELETE /v1/<path>`.
    pub fn delete(&self, path: &str) -> CliResult<Value> {
        self.request("DELETE", path, None)
    }

    /// Vault's `LIST` verb, sent as `GET /v1/<path>?list=true` (equivalent on every Vault
    /// server, and it passes proxies that drop unknown methods).
    pub fn list(&self, path: &str) -> CliResult<Value> {
        let separator = if path.contains('?') { '&' } else { '?' };
        self.send_as(
            "LIST",
            "GET",
            &format!("{path}{separator}list=true"),
            None,
            "application/json",
        )
    }

    /// Send `method` to `/v1/<path>` with an optional JSON body.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> CliResult<Value> {
        self.send(method, path, body, "application/json")
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> CliResult<Value> {
        self.send_as(method, method, path, body, content_type)
    }

    /// `shown_method` is what error messages report (Vault reports `LIST` for lists), `wire_method`
    /// what goes over the wire.
    fn send_as(
        &self,
        shown_method: &str,
        wire_method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> CliResult<Value> {
        let url = self.url(path);
        let mut request = http::Request::builder()
            .method(wire_method)
            .uri(&url)
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(wrap_ttl) = self
            .wrap_ttl
            .as_deref()
            .or_else(|| default_wrap_ttl(wire_method, path))
        {
            request = request.header("X-Vault-Wrap-TTL", wrap_ttl);
        }
        let body_bytes = match body {
            Some(body) => {
                request = request.header("Content-Type", content_type);
                serde_json::to_vec(body).map_err(|e| CliError::InvalidResponse(e.to_string()))?
            }
            None => Vec::new(),
        };
        let request = request
            .body(body_bytes)
            .map_err(|e| CliError::usage(format!("invalid request URL {url}: {e}")))?;
        let mut response = self.agent.run(request).map_err(|e| CliError::Transport {
            address: self.address.clone(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| CliError::Transport {
                address: self.address.clone(),
                reason: e.to_string(),
            })?;
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&text)
                .map_err(|e| CliError::InvalidResponse(e.to_string()));
        }
        Err(CliError::Api(ApiError {
            method: shown_method.to_owned(),
            url: url.split('?').next().unwrap_or_default().to_owned(),
            status,
            errors: errors_from_body(&text),
        }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.address, path.trim_start_matches('/'))
    }
}

/// The wrap TTL Vault's client asks for when none was given: `sys/wrapping/wrap` exists only
/// to wrap, so writes to it are wrapped for five minutes by default.
fn default_wrap_ttl(method: &str, path: &str) -> Option<&'static str> {
    let writes = method == "PUT" || method == "POST";
    (writes && path.trim_matches('/') == "sys/wrapping/wrap").then_some("5m")
}

/// The `errors` array of an error body; a body that is not Vault-shaped JSON is reported
/// verbatim so nothing the server said is lost.
fn errors_from_body(text: &str) -> Vec<String> {
    match serde_json::from_str::<Value>(text) {
        Ok(json) => json
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Err(_) if text.trim().is_empty() => Vec::new(),
        Err(_) => vec![text.trim().to_owned()],
    }
}

fn load_ca_bundle(path: &std::path::Path) -> CliResult<RootCerts> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path)
        .map_err(|e| CliError::io(format!("error reading CA certificate {shown}"), e))?;
    let mut certificates = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => certificates.push(cert),
            Ok(_) => {}
            Err(e) => {
                return Err(CliError::Tls {
                    path: shown,
                    reason: e.to_string(),
                })
            }
        }
    }
    if certificates.is_empty() {
        return Err(CliError::Tls {
            path: shown,
            reason: "no PEM certificates found".into(),
        });
    }
    Ok(RootCerts::Specific(Arc::new(certificates)))
}

/// The certificate chain and private key presented for TLS client authentication (the cert
/// auth method reads the certificate from the handshake). Both files are PEM; the certificate
/// file may carry the chain after the leaf, and the key may be PKCS#8, PKCS#1 or SEC1.
fn load_client_identity(identity: &ClientIdentity) -> CliResult<ClientCert> {
    let cert_shown = identity.certificate.display().to_string();
    let cert_pem = std::fs::read(&identity.certificate)
        .map_err(|e| CliError::io(format!("error reading client certificate {cert_shown}"), e))?;
    let mut chain = Vec::new();
    for item in ureq::tls::parse_pem(&cert_pem) {
        match item {
            Ok(PemItem::Certificate(cert)) => chain.push(cert),
            // A combined cert+key file is common; its key part is read from -client-key.
            Ok(_) => {}
            Err(e) => {
                return Err(CliError::ClientCertificate {
                    path: cert_shown,
                    reason: e.to_string(),
                })
            }
        }
    }
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
    let private_key = PrivateKey::from_pem(&key_pem).map_err(|_| CliError::ClientCertificate {
        path: key_shown,
        reason: "no PEM private key (PKCS#8, PKCS#1 or SEC1) found".into(),
    })?;
    Ok(ClientCert::new_with_certs(&chain, private_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_yield_the_servers_errors_in_order() {
        assert_eq!(
            errors_from_body(r#"{"errors":["permission denied","second"]}"#),
            ["permission denied", "second"]
        );
        assert!(errors_from_body(r#"{"errors":[]}"#).is_empty());
        assert_eq!(
            errors_from_body("upstream gateway down"),
            ["upstream gateway down"]
        );
    }

    #[test]
    fn api_errors_render_like_vault() {
        let error = ApiError {
            method: "GET".into(),
            url: "http://127.0.0.1:8200/v1/secret/foo".into(),
            status: 403,
            errors: vec!["permission denied".into()],
        };
        assert_eq!(
            error.to_string(),
            "Error making API request.\n\nURL: GET http://127.0.0.1:8200/v1/secret/foo\nCode: 403. Errors:\n\n* permission denied"
        );
    }

    #[test]
    fn only_writes_to_sys_wrapping_wrap_are_wrapped_by_default() {
        assert_eq!(default_wrap_ttl("PUT", "sys/wrapping/wrap"), Some("5m"));
        assert_eq!(default_wrap_ttl("POST", "/sys/wrapping/wrap"), Some("5m"));
        assert_eq!(default_wrap_ttl("GET", "sys/wrapping/wrap"), None);
        assert_eq!(default_wrap_ttl("PUT", "secret/data/x"), None);
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
    fn unreachable_servers_are_transport_errors() {
        let client = Client::new(&ConnectionSettings {
            address: "http://127.0.0.1:1".into(),
            ..Default::default()
        })
        .unwrap();
        assert!(matches!(
            client.get("sys/health"),
            Err(CliError::Transport { .. })
        ));
    }
}
