//! Where the CLI finds its server, token and TLS settings.
//!
//! Precedence mirrors Vault, with coffer's own variable names tried before Vault's so a
//! machine can run both side by side: command-line flag, then `COFFER_*`, then `VAULT_*`, then
//! the default. The token additionally falls back to the token file `~/.coffer-token` written
//! by `coffer login`.
//!
//! The environment is passed in as a value rather than read from the process so tests can
//! describe one without mutating global state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{CliError, CliResult};

/// Address used when neither a flag nor the environment names one (Vault's default).
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8200";

/// Name of the token file in the user's home directory.
pub const TOKEN_FILE_NAME: &str = ".coffer-token";

/// A snapshot of environment variables.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// Capture the current process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Build an environment from explicit pairs, for tests and embedding.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, treating an empty value as unset (as Vault does).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The first of `names` that is set.
    fn first(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|name| self.get(name))
    }

    /// Path of the token file, `$HOME/.coffer-token`, when `HOME` is set.
    pub fn token_file(&self) -> Option<PathBuf> {
        self.get("HOME")
            .map(|home| PathBuf::from(home).join(TOKEN_FILE_NAME))
    }
}

/// Connection flags given on the command line; `None` means "not given, consult the environment".
#[derive(Debug, Clone, Default)]
pub struct ConnectionFlags {
    /// `-address`.
    pub address: Option<String>,
    /// `-namespace`.
    pub namespace: Option<String>,
    /// `-ca-cert`.
    pub ca_cert: Option<String>,
    /// `-client-cert`.
    pub client_cert: Option<String>,
    /// `-client-key`.
    pub client_key: Option<String>,
    /// `-tls-skip-verify`.
    pub tls_skip_verify: bool,
    /// `-tls-server-name`.
    pub tls_server_name: Option<String>,
}

/// Fully resolved settings for talking to the server.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Base address, e.g. `https://127.0.0.1:8200`, without a trailing slash.
    pub address: String,
    /// Token to send as `X-Vault-Token`, if any.
    pub token: Option<String>,
    /// Namespace to send as `X-Vault-Namespace`, if any.
    pub namespace: Option<String>,
    /// PEM bundle of CA certificates to trust for https.
    pub ca_cert: Option<PathBuf>,
    /// PEM certificate (chain) and private key presented for TLS client authentication, as
    /// the cert auth method requires. Both or neither, as in Vault.
    pub client_identity: Option<ClientIdentity>,
    /// Skip TLS certificate verification entirely.
    pub tls_skip_verify: bool,
    /// Name sent as SNI and checked against the server's certificate instead of the address's
    /// host (Vault's `VAULT_TLS_SERVER_NAME`).
    pub tls_server_name: Option<String>,
}

impl std::fmt::Debug for ConnectionSettings {
    // Hand-written so a token never lands in a debug print or a panic message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("namespace", &self.namespace)
            .field("ca_cert", &self.ca_cert)
            .field("client_identity", &self.client_identity)
            .field("tls_skip_verify", &self.tls_skip_verify)
            .field("tls_server_name", &self.tls_server_name)
            .finish()
    }
}

impl ConnectionSettings {
    /// Resolve settings from flags and environment, reading the token file if no token variable
    /// is set. A missing token file is not an error: some commands (`status`, `operator init`)
    /// need no token.
    pub fn resolve(flags: &ConnectionFlags, env: &Environment) -> CliResult<Self> {
        let address = flags
            .address
            .clone()
            .or_else(|| env.first(&["COFFER_ADDR", "VAULT_ADDR"]).map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_ADDRESS.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let token = match env.first(&["COFFER_TOKEN", "VAULT_TOKEN"]) {
            Some(token) => Some(token.trim().to_owned()),
            None => read_token_file(env)?,
        };
        let namespace = flags.namespace.clone().or_else(|| {
            env.first(&["COFFER_NAMESPACE", "VAULT_NAMESPACE"])
                .map(str::to_owned)
        });
        let ca_cert = flags
            .ca_cert
            .clone()
            .or_else(|| {
                env.first(&["COFFER_CACERT", "VAULT_CACERT"])
                    .map(str::to_owned)
            })
            .map(PathBuf::from);
        let client_identity = ClientIdentity::resolve(flags, env)?;
        let tls_skip_verify = flags.tls_skip_verify
            || env
                .first(&["COFFER_SKIP_VERIFY", "VAULT_SKIP_VERIFY"])
                .is_some_and(is_truthy);
        let tls_server_name = flags.tls_server_name.clone().or_else(|| {
            env.first(&["COFFER_TLS_SERVER_NAME", "VAULT_TLS_SERVER_NAME"])
                .map(str::to_owned)
        });
        Ok(Self {
            address,
            token,
            namespace,
            ca_cert,
            client_identity,
            tls_skip_verify,
            tls_server_name,
        })
    }
}

/// Where the TLS client certificate and its private key live (paths only: the key is read
/// when the client is built, so it is never held longer than needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// PEM file holding the client certificate, optionally followed by its chain.
    pub certificate: PathBuf,
    /// PEM file holding the certificate's private key.
    pub private_key: PathBuf,
}

impl ClientIdentity {
    /// `-client-cert`/`-client-key`, falling back to `COFFER_CLIENT_*` then `VAULT_CLIENT_*`.
    /// One without the other is a usage error, as in Vault's `ConfigureTLS`.
    fn resolve(flags: &ConnectionFlags, env: &Environment) -> CliResult<Option<Self>> {
        let certificate = flags.client_cert.clone().or_else(|| {
            env.first(&["COFFER_CLIENT_CERT", "VAULT_CLIENT_CERT"])
                .map(str::to_owned)
        });
        let private_key = flags.client_key.clone().or_else(|| {
            env.first(&["COFFER_CLIENT_KEY", "VAULT_CLIENT_KEY"])
                .map(str::to_owned)
        });
        match (certificate, private_key) {
            (Some(certificate), Some(private_key)) => Ok(Some(Self {
                certificate: PathBuf::from(certificate),
                private_key: PathBuf::from(private_key),
            })),
            (None, None) => Ok(None),
            _ => Err(CliError::usage(
                "both client cert and client key must be provided (-client-cert and \
                 -client-key, or COFFER_CLIENT_CERT and COFFER_CLIENT_KEY)",
            )),
        }
    }
}

/// Go's `strconv.ParseBool` truthy spellings.
fn is_truthy(value: &str) -> bool {
    matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn read_token_file(env: &Environment) -> CliResult<Option<String>> {
    let Some(path) = env.token_file() else {
        return Ok(None);
    };
    match std::fs::read_to_string(&path) {
        Ok(contents) => {
            let token = contents.trim();
            Ok((!token.is_empty()).then(|| token.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::io(
            format!("error reading token file {}", path.display()),
            e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(pairs: &[(&str, &str)]) -> ConnectionSettings {
        ConnectionSettings::resolve(
            &ConnectionFlags::default(),
            &Environment::from_pairs(pairs.iter().copied()),
        )
        .unwrap()
    }

    #[test]
    fn address_defaults_to_vaults_local_listener() {
        assert_eq!(resolve(&[]).address, "http://127.0.0.1:8200");
    }

    #[test]
    fn coffer_addr_wins_over_vault_addr() {
        let settings = resolve(&[
            ("VAULT_ADDR", "http://vault:8200"),
            ("COFFER_ADDR", "http://coffer:8200/"),
        ]);
        assert_eq!(settings.address, "http://coffer:8200");
        assert_eq!(
            resolve(&[("VAULT_ADDR", "http://vault:8200")]).address,
            "http://vault:8200"
        );
    }

    #[test]
    fn address_flag_wins_over_environment() {
        let flags = ConnectionFlags {
            address: Some("https://flag:8200".into()),
            ..Default::default()
        };
        let env = Environment::from_pairs([("COFFER_ADDR", "http://env:8200")]);
        let settings = ConnectionSettings::resolve(&flags, &env).unwrap();
        assert_eq!(settings.address, "https://flag:8200");
    }

    #[test]
    fn token_precedence_is_coffer_token_then_vault_token_then_token_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(TOKEN_FILE_NAME), "s.fromfile\n").unwrap();
        let home = home.path().to_str().unwrap();
        assert_eq!(
            resolve(&[
                ("HOME", home),
                ("VAULT_TOKEN", "s.vault"),
                ("COFFER_TOKEN", "s.coffer")
            ])
            .token
            .as_deref(),
            Some("s.coffer")
        );
        assert_eq!(
            resolve(&[("HOME", home), ("VAULT_TOKEN", "s.vault")])
                .token
                .as_deref(),
            Some("s.vault")
        );
        assert_eq!(
            resolve(&[("HOME", home)]).token.as_deref(),
            Some("s.fromfile")
        );
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let settings = resolve(&[("COFFER_ADDR", ""), ("VAULT_ADDR", "http://vault:1")]);
        assert_eq!(settings.address, "http://vault:1");
    }

    #[test]
    fn missing_token_file_means_no_token() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(
            resolve(&[("HOME", home.path().to_str().unwrap())]).token,
            None
        );
    }

    #[test]
    fn namespace_cacert_and_skip_verify_come_from_either_prefix() {
        let settings = resolve(&[
            ("VAULT_NAMESPACE", "team-a"),
            ("COFFER_CACERT", "/etc/ca.pem"),
            ("VAULT_SKIP_VERIFY", "true"),
        ]);
        assert_eq!(settings.namespace.as_deref(), Some("team-a"));
        assert_eq!(settings.ca_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert!(settings.tls_skip_verify);
    }

    #[test]
    fn tls_server_name_comes_from_the_flag_then_either_prefix() {
        assert_eq!(
            resolve(&[("VAULT_TLS_SERVER_NAME", "vault.internal")])
                .tls_server_name
                .as_deref(),
            Some("vault.internal")
        );
        let env = Environment::from_pairs([
            ("COFFER_TLS_SERVER_NAME", "coffer.internal"),
            ("VAULT_TLS_SERVER_NAME", "vault.internal"),
        ]);
        let settings = ConnectionSettings::resolve(&ConnectionFlags::default(), &env).unwrap();
        assert_eq!(settings.tls_server_name.as_deref(), Some("coffer.internal"));
        let flags = ConnectionFlags {
            tls_server_name: Some("flag.internal".into()),
            ..Default::default()
        };
        let settings = ConnectionSettings::resolve(&flags, &env).unwrap();
        assert_eq!(settings.tls_server_name.as_deref(), Some("flag.internal"));
        assert_eq!(resolve(&[]).tls_server_name, None);
    }

    #[test]
    fn client_certificate_and_key_come_from_flags_before_either_prefix() {
        let settings = resolve(&[
            ("VAULT_CLIENT_CERT", "/vault/cert.pem"),
            ("VAULT_CLIENT_KEY", "/vault/key.pem"),
        ]);
        assert_eq!(
            settings.client_identity,
            Some(ClientIdentity {
                certificate: "/vault/cert.pem".into(),
                private_key: "/vault/key.pem".into(),
            })
        );
        let env = Environment::from_pairs([
            ("COFFER_CLIENT_CERT", "/coffer/cert.pem"),
            ("VAULT_CLIENT_CERT", "/vault/cert.pem"),
            ("COFFER_CLIENT_KEY", "/coffer/key.pem"),
        ]);
        let from_env = ConnectionSettings::resolve(&ConnectionFlags::default(), &env).unwrap();
        let identity = from_env.client_identity.unwrap();
        assert_eq!(identity.certificate, PathBuf::from("/coffer/cert.pem"));
        assert_eq!(identity.private_key, PathBuf::from("/coffer/key.pem"));
        let flags = ConnectionFlags {
            client_cert: Some("/flag/cert.pem".into()),
            client_key: Some("/flag/key.pem".into()),
            ..Default::default()
        };
        let identity = ConnectionSettings::resolve(&flags, &env)
            .unwrap()
            .client_identity
            .unwrap();
        assert_eq!(identity.certificate, PathBuf::from("/flag/cert.pem"));
        assert_eq!(identity.private_key, PathBuf::from("/flag/key.pem"));
    }

    #[test]
    fn a_client_certificate_without_its_key_is_a_usage_error() {
        let flags = ConnectionFlags {
            client_cert: Some("/flag/cert.pem".into()),
            ..Default::default()
        };
        let error = ConnectionSettings::resolve(&flags, &Environment::default()).unwrap_err();
        assert!(matches!(error, CliError::Usage(_)), "{error}");
        assert!(error
            .to_string()
            .contains("both client cert and client key"));
        let key_only = Environment::from_pairs([("VAULT_CLIENT_KEY", "/k.pem")]);
        assert!(ConnectionSettings::resolve(&ConnectionFlags::default(), &key_only).is_err());
        assert_eq!(resolve(&[]).client_identity, None);
    }

    #[test]
    fn debug_output_redacts_the_token() {
        let settings = resolve(&[("COFFER_TOKEN", "s.supersecret")]);
        assert!(!format!("{settings:?}").contains("supersecret"));
    }
}
