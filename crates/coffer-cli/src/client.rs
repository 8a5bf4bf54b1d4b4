//! A small blocking client for Vault's HTTP API.
//!
//! Every request carries `X-Vault-Request: true` (Vault's CSRF guard for browsers), the token
//! in `X-Vault-Token` and the namespace in `X-Vault-Namespace`. Non-2xx answers become
//! [`CliError::Api`] carrying the status and the server's `errors` array; 2xx answers are
//! returned as JSON (`null` for an empty body such as a 204).

use std::time::Duration;

use serde_json::Value;
use ureq::http;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{ConnectProxyConnector, Connector, TcpConnector};

use crate::environment::ConnectionSettings;
use crate::error::{ApiError, CliError, CliResult};
use crate::tls::TlsConnector;

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
    /// Whether a 403 to a request without a token means "log in first". False for logins,
    /// which are sent without a token on purpose.
    expects_token: bool,
    /// `-tls-server-name`, named in advice about a certificate's names.
    tls_server_name: Option<String>,
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
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            // Vault answers redirects only for HA standbys; follow them like Vault's client.
            .max_redirects(3)
            .build();
        // ureq's own chain, with Coffer's TLS (trust, client certificate, server name) in
        // place of ureq's rustls connector.
        let connector =
            ().chain(ConnectProxyConnector::default())
                .chain(TcpConnector::default())
                .chain(TlsConnector::new(settings)?);
        let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
        Ok(Self {
            address: settings.address.trim_end_matches('/').to_owned(),
            token: settings.token.clone(),
            namespace: settings.namespace.clone(),
            wrap_ttl: None,
            expects_token: true,
            tls_server_name: settings.tls_server_name.clone(),
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
            expects_token: false,
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
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| transport_error(&self.address, self.tls_server_name.as_deref(), e))?;
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
        let errors = errors_from_body(&text);
        if status == 503 && errors.iter().any(|e| says_sealed(e)) {
            // sys/seal-status answers while sealed; never ask it about itself.
            let initialized = path.trim_matches('/') == "sys/seal-status" || self.is_initialized();
            return Err(CliError::Sealed { initialized });
        }
        if status == 403 && self.token.is_none() && self.expects_token {
            return Err(CliError::NoToken);
        }
        if status == 400 && errors.iter().any(|e| e.contains(PLAIN_HTTP_TO_TLS)) {
            return Err(CliError::Connection(format!(
                "the server at {} speaks https: use https://{} in VAULT_ADDR or -address",
                self.address,
                crate::tls::host_port_of(&self.address)
            )));
        }
        Err(CliError::Api(ApiError {
            method: shown_method.to_owned(),
            url: url.split('?').next().unwrap_or_default().to_owned(),
            status,
            errors,
        }))
    }

    /// Whether the server has been initialized, from `sys/seal-status` (which answers while
    /// sealed); assumed so when that cannot be read.
    fn is_initialized(&self) -> bool {
        self.get("sys/seal-status")
            .ok()
            .and_then(|status| status.get("initialized").and_then(Value::as_bool))
            .unwrap_or(true)
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

/// What Go's HTTP server (and so Vault, and Coffer) answers to plain HTTP on a TLS listener.
const PLAIN_HTTP_TO_TLS: &str = "Client sent an HTTP request to an HTTPS server";

/// Vault says `Vault is sealed`, Coffer `Coffer is sealed`, OpenBao `Vault is sealed` too.
fn says_sealed(error: &str) -> bool {
    error
        .trim_end_matches('.')
        .to_ascii_lowercase()
        .ends_with("is sealed")
}

/// A request that did not get an answer: a TLS refusal with a known remedy says it.
fn transport_error(address: &str, server_name: Option<&str>, error: ureq::Error) -> CliError {
    if let ureq::Error::Rustls(tls) = &error {
        if let Some(advice) = crate::tls::advice(address, server_name, tls) {
            return CliError::Connection(advice);
        }
    }
    CliError::Transport {
        address: address.to_owned(),
        reason: error.to_string(),
    }
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
    fn sealed_errors_are_recognised_in_vaults_and_coffers_words() {
        assert!(says_sealed("Vault is sealed"));
        assert!(says_sealed("Coffer is sealed"));
        assert!(!says_sealed("permission denied"));
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
