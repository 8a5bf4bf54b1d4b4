//! The command-line grammar, in clap's derive form.
//!
//! Flags are declared as `--long`; [`crate::argv::normalise_args`] turns Vault's Go-style
//! `-flag` into that form before parsing. Boolean flags accept Go's `-flag`, `-flag=true` and
//! `-flag=false` spellings.

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

/// `coffer`: Vault-compatible command-line client.
#[derive(Debug, Parser)]
#[command(
    name = "coffer",
    about = "Coffer secrets manager: a Vault-compatible server (coffer server) and its CLI",
    after_help = "Flags go before positional arguments, as in Vault: coffer kv get -field=password secret/app.\n\
                  coffer help <command> (or coffer <command> -help) shows a command's flags; \
                  coffer -version prints the version.",
    disable_version_flag = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Flags every command accepts.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Connection and output flags accepted by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Address of the server (default: $COFFER_ADDR, $VAULT_ADDR, http://127.0.0.1:8200).
    #[arg(long, global = true, value_name = "URL")]
    pub address: Option<String>,
    /// Namespace sent as X-Vault-Namespace (default: $COFFER_NAMESPACE, $VAULT_NAMESPACE).
    #[arg(long, alias = "ns", global = true)]
    pub namespace: Option<String>,
    /// PEM file of CA certificates to trust (default: $COFFER_CACERT, $VAULT_CACERT).
    #[arg(long = "ca-cert", global = true, value_name = "FILE")]
    pub ca_cert: Option<String>,
    /// PEM certificate presented to the server for TLS client authentication; needs
    /// -client-key (default: $COFFER_CLIENT_CERT, $VAULT_CLIENT_CERT).
    #[arg(long = "client-cert", global = true, value_name = "FILE")]
    pub client_cert: Option<String>,
    /// PEM private key matching -client-cert (default: $COFFER_CLIENT_KEY, $VAULT_CLIENT_KEY).
    #[arg(long = "client-key", global = true, value_name = "FILE")]
    pub client_key: Option<String>,
    /// Disable TLS certificate verification. Insecure.
    #[arg(long = "tls-skip-verify", global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub tls_skip_verify: bool,
    /// Name the server's certificate must carry, sent as SNI, instead of the address's host
    /// (default: $COFFER_TLS_SERVER_NAME, $VAULT_TLS_SERVER_NAME).
    #[arg(long = "tls-server-name", global = true, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// Output format: table or json.
    #[arg(long, global = true)]
    pub format: Option<String>,
    /// Print only this field's raw value.
    #[arg(long, global = true)]
    pub field: Option<String>,
    /// Ask the server to wrap the response in a single-use token valid this long, e.g. 5m
    /// (default: $COFFER_WRAP_TTL, $VAULT_WRAP_TTL).
    #[arg(long = "wrap-ttl", global = true, value_name = "DURATION")]
    pub wrap_ttl: Option<String>,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a Coffer server: `coffer server -config=FILE`, or `coffer server -dev` for a
    /// development server (coffer server -help shows its flags).
    // Listed here for help; the binary hands `coffer server ...` to the server before the CLI
    // parses anything.
    #[command(disable_help_flag = true)]
    Server {
        /// The server's flags.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print the seal status of the server (exit code 2 when sealed).
    Status,
    /// Operator commands: init, unseal, seal, rekey, key-status, rotate.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Authenticate (token, userpass, approle, cert or jwt) and store the token in ~/.coffer-token.
    Login(LoginArgs),
    /// Look up, renew and revoke leases.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Unwrap a response-wrapped secret.
    Unwrap(UnwrapArgs),
    /// Create, look up, renew and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage ACL policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Manage secrets engines.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Manage auth methods.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Read and write key/value secrets (KV version 1 and 2).
    #[command(subcommand)]
    Kv(KvCommand),
    /// Read data at any path.
    Read(PathArgs),
    /// Write data to any path.
    Write(WriteArgs),
    /// Delete data at any path.
    Delete(PathArgs),
    /// List keys under any path.
    List(PathArgs),
    /// Print the coffer version.
    Version,
}

/// A command taking one path.
#[derive(Debug, Args)]
pub struct PathArgs {
    /// API path, without the /v1/ prefix.
    pub path: String,
}

/// `write PATH [k=v ...|-]`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// API path, without the /v1/ prefix.
    pub path: String,
    /// Data as key=value, key=@file, key=- (stdin), or a lone - for a JSON object on stdin.
    pub data: Vec<String>,
    /// Write even when no data is given.
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub force: bool,
}

/// `operator ...`.
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Initialise the server, printing unseal keys and the initial root token.
    Init(InitArgs),
    /// Provide one unseal key share.
    Unseal(UnsealArgs),
    /// Seal the server.
    Seal,
    /// Generate new unseal keys.
    Rekey(RekeyArgs),
    /// Print the active encryption key term.
    #[command(name = "key-status")]
    KeyStatus,
    /// Rotate the encryption key.
    Rotate,
}

/// `operator init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Number of key shares to split the root key into.
    #[arg(long = "key-shares", default_value_t = 5)]
    pub key_shares: u32,
    /// Number of shares required to unseal.
    #[arg(long = "key-threshold", default_value_t = 3)]
    pub key_threshold: u32,
}

/// `operator unseal [KEY]`.
#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// Unseal key share; read from stdin when omitted.
    pub key: Option<String>,
    /// Discard the key shares given so far.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub reset: bool,
}

/// `operator rekey`.
#[derive(Debug, Args)]
pub struct RekeyArgs {
    /// A key share of the current keys (continues a started rekey).
    pub key: Option<String>,
    /// Start a rekey.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub init: bool,
    /// Cancel a started rekey.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub cancel: bool,
    /// Print the progress of a started rekey.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub status: bool,
    /// Nonce of the rekey operation (looked up when omitted).
    #[arg(long)]
    pub nonce: Option<String>,
    /// Number of new key shares (with -init).
    #[arg(long = "key-shares", default_value_t = 5)]
    pub key_shares: u32,
    /// Number of new shares required to unseal (with -init).
    #[arg(long = "key-threshold", default_value_t = 3)]
    pub key_threshold: u32,
}

/// `login [-method=TYPE] [TOKEN | K=V...]`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// For the token method the token (or `-` for stdin); for other methods `K=V` pairs such
    /// as `username=alice`, `role_id=...`, `name=ROLE` (cert) or `role=R jwt=@file` (jwt).
    /// Flags may come before or after them.
    pub args: Vec<String>,
    /// Auth method type: token, userpass, approle, cert or jwt.
    #[arg(long, default_value = "token")]
    pub method: String,
    /// Mount path of the auth method under auth/ (defaults to the method type).
    #[arg(long)]
    pub path: Option<String>,
    /// Do not write the token to ~/.coffer-token.
    #[arg(long = "no-store", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub no_store: bool,
    /// Store the token but print nothing.
    #[arg(long = "no-print", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub no_print: bool,
    /// Print only the token and do not store it (shortcut for -field=token -no-store).
    #[arg(long = "token-only", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub token_only: bool,
}

/// `lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Show a lease's issue, expiry and renewability.
    Lookup(LeaseIdArgs),
    /// Extend a lease.
    Renew(LeaseRenewArgs),
    /// Revoke a lease, or every lease under a prefix.
    Revoke(LeaseRevokeArgs),
}

/// `lease lookup ID`.
#[derive(Debug, Args)]
pub struct LeaseIdArgs {
    /// Lease ID.
    pub lease_id: String,
}

/// `lease renew [-increment=DURATION] ID`.
#[derive(Debug, Args)]
pub struct LeaseRenewArgs {
    /// Lease ID.
    pub lease_id: String,
    /// Requested extension from now, e.g. 1h (the server may grant less).
    #[arg(long)]
    pub increment: Option<String>,
}

/// `lease revoke [-prefix] [-force] [-sync] ID`.
#[derive(Debug, Args)]
pub struct LeaseRevokeArgs {
    /// Lease ID, or a lease ID prefix with -prefix.
    pub lease_id: String,
    /// Treat the ID as a prefix and revoke every lease under it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub prefix: bool,
    /// Delete the leases even when revoking the secrets fails (requires -prefix).
    #[arg(short = 'f', long, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub force: bool,
    /// Wait for the revocation to finish instead of queueing it.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub sync: bool,
}

/// `unwrap [TOKEN]`.
#[derive(Debug, Args)]
pub struct UnwrapArgs {
    /// Wrapping token; the current token is unwrapped when omitted.
    pub token: Option<String>,
}

/// `token ...`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token.
    Create(TokenCreateArgs),
    /// Show a token's properties.
    Lookup(TokenLookupArgs),
    /// Extend a token's lease.
    Renew(TokenRenewArgs),
    /// Revoke a token.
    Revoke(TokenRevokeArgs),
    /// Show a token's capabilities on a path.
    Capabilities(TokenCapabilitiesArgs),
}

/// `token create`.
#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Policy to attach; repeat or separate with commas.
    #[arg(long = "policy", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// Initial TTL, e.g. 30m.
    #[arg(long)]
    pub ttl: Option<String>,
    /// Hard upper bound on the token's lifetime.
    #[arg(long = "explicit-max-ttl")]
    pub explicit_max_ttl: Option<String>,
    /// Make a periodic token renewable forever by this period.
    #[arg(long)]
    pub period: Option<String>,
    /// Create the token without a parent.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub orphan: bool,
    /// Number of uses before the token is revoked (0 = unlimited).
    #[arg(long = "use-limit")]
    pub use_limit: Option<u64>,
    /// Display name of the token.
    #[arg(long = "display-name")]
    pub display_name: Option<String>,
    /// Metadata key=value; repeatable.
    #[arg(long)]
    pub metadata: Vec<String>,
    /// Token role to create the token against.
    #[arg(long)]
    pub role: Option<String>,
    /// Whether the token may be renewed.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub renewable: Option<bool>,
    /// Token type: service or batch.
    #[arg(long = "type")]
    pub token_type: Option<String>,
}

/// `token lookup [TOKEN]`.
#[derive(Debug, Args)]
pub struct TokenLookupArgs {
    /// Token (or accessor with -accessor); the current token when omitted.
    pub token: Option<String>,
    /// Treat the argument as an accessor.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub accessor: bool,
}

/// `token renew [TOKEN]`.
#[derive(Debug, Args)]
pub struct TokenRenewArgs {
    /// Token (or accessor with -accessor); the current token when omitted.
    pub token: Option<String>,
    /// Requested lease extension, e.g. 1h.
    #[arg(long, alias = "i")]
    pub increment: Option<String>,
    /// Treat the argument as an accessor.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub accessor: bool,
}

/// `token revoke [TOKEN]`.
#[derive(Debug, Args)]
pub struct TokenRevokeArgs {
    /// Token (or accessor with -accessor).
    pub token: Option<String>,
    /// Treat the argument as an accessor.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub accessor: bool,
    /// Revoke the token presented by this client.
    #[arg(long = "self", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", default_value = "false",
          value_parser = BoolishValueParser::new())]
    pub revoke_self: bool,
    /// `orphan` revokes only the token, leaving its children as orphans.
    #[arg(long)]
    pub mode: Option<String>,
}

/// `token capabilities [TOKEN] PATH`.
#[derive(Debug, Args)]
pub struct TokenCapabilitiesArgs {
    /// `[TOKEN] PATH`: with one argument the current token's capabilities on PATH.
    #[arg(num_args = 1..=2, required = true)]
    pub args: Vec<String>,
}

/// `policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Upload a policy from a file or stdin (-).
    Write {
        /// Policy name.
        name: String,
        /// HCL or JSON policy file, or - for stdin.
        file: String,
    },
    /// Print a policy's text.
    Read {
        /// Policy name.
        name: String,
    },
    /// List policy names.
    List,
    /// Delete a policy.
    Delete {
        /// Policy name.
        name: String,
    },
    /// Reformat an HCL policy file in place.
    Fmt {
        /// HCL policy file.
        file: String,
    },
}

/// `secrets ...`.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Enable a secrets engine.
    Enable(SecretsEnableArgs),
    /// Disable a secrets engine, deleting its data.
    Disable(PathArgs),
    /// List enabled secrets engines.
    List(MountListArgs),
    /// Tune a secrets engine's configuration.
    Tune(SecretsTuneArgs),
    /// Move a secrets engine to a new path.
    Move {
        /// Current path.
        source: String,
        /// New path.
        destination: String,
    },
}

/// Lease TTL flags shared by enable and tune.
#[derive(Debug, Args)]
pub struct LeaseTtlArgs {
    /// Default lease TTL, e.g. 1h.
    #[arg(long = "default-lease-ttl")]
    pub default_lease_ttl: Option<String>,
    /// Maximum lease TTL.
    #[arg(long = "max-lease-ttl")]
    pub max_lease_ttl: Option<String>,
}

/// `secrets enable TYPE`.
#[derive(Debug, Args)]
pub struct SecretsEnableArgs {
    /// Engine type, e.g. kv, kv-v2, transit.
    #[arg(value_name = "TYPE")]
    pub engine_type: String,
    /// Mount path (defaults to the type).
    #[arg(long)]
    pub path: Option<String>,
    /// Human-readable description.
    #[arg(long)]
    pub description: Option<String>,
    /// Engine version (sets options.version; KV uses 2).
    #[arg(long)]
    pub version: Option<u32>,
    /// Engine option key=value; repeatable.
    #[arg(long)]
    pub options: Vec<String>,
    /// Lease TTLs.
    #[command(flatten)]
    pub ttls: LeaseTtlArgs,
}

/// `secrets list` / `auth list`.
#[derive(Debug, Args)]
pub struct MountListArgs {
    /// Show all mount properties.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", value_parser = BoolishValueParser::new())]
    pub detailed: bool,
}

/// `secrets tune PATH`.
#[derive(Debug, Args)]
pub struct SecretsTuneArgs {
    /// Mount path.
    pub path: String,
    /// Lease TTLs.
    #[command(flatten)]
    pub ttls: LeaseTtlArgs,
    /// Engine option key=value; repeatable.
    #[arg(long)]
    pub options: Vec<String>,
    /// New description.
    #[arg(long)]
    pub description: Option<String>,
}

/// `auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Enable an auth method.
    Enable {
        /// Method type, e.g. userpass, approle.
        #[arg(value_name = "TYPE")]
        method_type: String,
        /// Mount path under auth/ (defaults to the type).
        #[arg(long)]
        path: Option<String>,
        /// Human-readable description.
        #[arg(long)]
        description: Option<String>,
    },
    /// Disable an auth method.
    Disable(PathArgs),
    /// List enabled auth methods.
    List(MountListArgs),
}

/// The `-mount` flag of KV commands.
#[derive(Debug, Args)]
pub struct KvMountArg {
    /// KV mount path; the positional argument is then the path inside the mount.
    #[arg(long)]
    pub mount: Option<String>,
}

/// `kv ...`.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Read a secret.
    Get {
        /// Secret path.
        path: String,
        /// Version to read (KV v2).
        #[arg(long)]
        version: Option<u64>,
        /// Mount flag.
        #[command(flatten)]
        mount: KvMountArg,
    },
    /// Write a secret, replacing its data.
    Put(KvWriteArgs),
    /// Update some keys of a KV v2 secret.
    Patch(KvWriteArgs),
    /// Delete a secret (KV v2: soft-delete the latest or the given versions).
    Delete(KvVersionsArgs),
    /// Restore soft-deleted versions (KV v2).
    Undelete(KvVersionsArgs),
    /// Permanently destroy versions (KV v2).
    Destroy(KvVersionsArgs),
    /// List keys under a path.
    List {
        /// Path to list.
        path: String,
        /// Mount flag.
        #[command(flatten)]
        mount: KvMountArg,
    },
    /// Manage KV v2 metadata.
    #[command(subcommand)]
    Metadata(KvMetadataCommand),
}

/// `kv put|patch PATH k=v...`.
#[derive(Debug, Args)]
pub struct KvWriteArgs {
    /// Secret path.
    pub path: String,
    /// Data as key=value, key=@file, key=- (stdin), or a lone - for a JSON object on stdin.
    pub data: Vec<String>,
    /// Check-and-set version (KV v2).
    #[arg(long)]
    pub cas: Option<i64>,
    /// Mount flag.
    #[command(flatten)]
    pub mount: KvMountArg,
}

/// `kv delete|undelete|destroy PATH -versions=...`.
#[derive(Debug, Args)]
pub struct KvVersionsArgs {
    /// Secret path.
    pub path: String,
    /// Versions to act on, comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub versions: Vec<u64>,
    /// Mount flag.
    #[command(flatten)]
    pub mount: KvMountArg,
}

/// `kv metadata ...`.
#[derive(Debug, Subcommand)]
pub enum KvMetadataCommand {
    /// Read a secret's metadata and version history.
    Get {
        /// Secret path.
        path: String,
        /// Mount flag.
        #[command(flatten)]
        mount: KvMountArg,
    },
    /// Configure a secret's metadata.
    Put {
        /// Secret path.
        path: String,
        /// Versions to keep (0 = mount default).
        #[arg(long = "max-versions")]
        max_versions: Option<u64>,
        /// Require -cas on every write.
        #[arg(long = "cas-required", num_args = 0..=1, require_equals = true,
              default_missing_value = "true", value_parser = BoolishValueParser::new())]
        cas_required: Option<bool>,
        /// Delete versions this long after they are written, e.g. 72h.
        #[arg(long = "delete-version-after")]
        delete_version_after: Option<String>,
        /// Custom metadata key=value; repeatable.
        #[arg(long = "custom-metadata")]
        custom_metadata: Vec<String>,
        /// Mount flag.
        #[command(flatten)]
        mount: KvMountArg,
    },
    /// Delete a secret's metadata and every version.
    Delete {
        /// Secret path.
        path: String,
        /// Mount flag.
        #[command(flatten)]
        mount: KvMountArg,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Cli {
        let argv = std::iter::once("coffer")
            .chain(args.iter().copied())
            .map(std::ffi::OsString::from)
            .collect();
        Cli::try_parse_from(crate::argv::normalise_args(argv))
            .unwrap_or_else(|e| panic!("{args:?} did not parse: {e}"))
    }

    #[test]
    fn login_flags_may_follow_the_key_value_pairs() {
        let cli = parse(&[
            "login",
            "-method=userpass",
            "username=ann",
            "-token-only",
            "-path=people",
        ]);
        let Command::Login(login) = cli.command else {
            panic!("not a login: {:?}", cli.command);
        };
        assert_eq!(login.method, "userpass");
        assert_eq!(login.args, ["username=ann"]);
        assert!(login.token_only);
        assert_eq!(login.path.as_deref(), Some("people"));
    }

    #[test]
    fn login_accepts_a_dash_for_a_token_on_stdin() {
        let Command::Login(login) = parse(&["login", "-"]).command else {
            panic!("not a login");
        };
        assert_eq!(login.args, ["-"]);
        assert_eq!(login.method, "token");
    }

    #[test]
    fn cert_login_takes_client_certificate_flags_anywhere_on_the_line() {
        let cli = parse(&[
            "-ca-cert=/ca.pem",
            "login",
            "-method=cert",
            "-client-cert",
            "/host.pem",
            "-client-key=/host-key.pem",
            "name=web",
        ]);
        assert_eq!(cli.global.ca_cert.as_deref(), Some("/ca.pem"));
        assert_eq!(cli.global.client_cert.as_deref(), Some("/host.pem"));
        assert_eq!(cli.global.client_key.as_deref(), Some("/host-key.pem"));
        let Command::Login(login) = cli.command else {
            panic!("not a login: {:?}", cli.command);
        };
        assert_eq!(login.method, "cert");
        assert_eq!(login.args, ["name=web"]);
    }

    #[test]
    fn jwt_login_keeps_role_and_jwt_pairs_including_the_stdin_marker() {
        let Command::Login(login) =
            parse(&["login", "-method=jwt", "-path=ci", "role=deploy", "jwt=-"]).command
        else {
            panic!("not a login");
        };
        assert_eq!(login.method, "jwt");
        assert_eq!(login.path.as_deref(), Some("ci"));
        assert_eq!(login.args, ["role=deploy", "jwt=-"]);
    }

    #[test]
    fn wrap_ttl_is_global_and_may_follow_the_subcommand() {
        let cli = parse(&["kv", "get", "-wrap-ttl=5m", "secret/x"]);
        assert_eq!(cli.global.wrap_ttl.as_deref(), Some("5m"));
        let cli = parse(&["-wrap-ttl", "1h", "read", "secret/x"]);
        assert_eq!(cli.global.wrap_ttl.as_deref(), Some("1h"));
    }

    #[test]
    fn lease_revoke_takes_prefix_force_and_sync_flags() {
        let Command::Lease(LeaseCommand::Revoke(revoke)) = parse(&[
            "lease",
            "revoke",
            "-prefix",
            "-f",
            "-sync=false",
            "auth/token/",
        ])
        .command
        else {
            panic!("not a lease revoke");
        };
        assert!(revoke.prefix && revoke.force && !revoke.sync);
        assert_eq!(revoke.lease_id, "auth/token/");
    }

    #[test]
    fn lease_renew_takes_an_increment() {
        let Command::Lease(LeaseCommand::Renew(renew)) =
            parse(&["lease", "renew", "-increment=2h", "a/b"]).command
        else {
            panic!("not a lease renew");
        };
        assert_eq!(renew.increment.as_deref(), Some("2h"));
        assert_eq!(renew.lease_id, "a/b");
    }

    #[test]
    fn write_force_has_a_short_f() {
        for flag in ["-f", "-force", "--force=true"] {
            let Command::Write(write) = parse(&["write", flag, "auth/approle/role/x"]).command
            else {
                panic!("not a write");
            };
            assert!(write.force, "{flag}");
            assert!(write.data.is_empty());
        }
    }

    #[test]
    fn unwrap_token_is_optional() {
        let Command::Unwrap(unwrap) = parse(&["unwrap"]).command else {
            panic!("not an unwrap");
        };
        assert_eq!(unwrap.token, None);
    }
}
