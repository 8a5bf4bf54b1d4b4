//! `coffer server`: builds storage, the core and the listeners from flags or a Vault-format
//! config file, and serves until interrupted.

use crate::core::Core;
use crate::listener::{Limits, TimedIo, Watch};
use crate::mounts::LeaseLimits;
use clap::Parser;
use coffer_config::{ListenerConfig, ServerConfig, StorageConfig};
use coffer_sdk::catalog::Catalog;
use coffer_sdk::clock::SystemClock;
use coffer_sdk::logical::Connection;
use coffer_sdk::{Operation, Request};
use coffer_storage::{EmbeddedStorage, MemoryStorage, Storage};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Vault's default and maximum lease TTL: 768h (32 days).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(768 * 3600);

/// Flags of `coffer server`, spelled as Vault spells them (single-dash forms are accepted).
#[derive(Parser, Debug)]
#[command(
    name = "coffer server",
    bin_name = "coffer server",
    about = "Run a Coffer server",
    long_about = "Run a Coffer server: `coffer server -config=FILE` with a Vault-format \
                  configuration (storage and listener stanzas), or `coffer server -dev` for a \
                  development server (in memory, initialised, unsealed, root token printed and \
                  stored for the CLI)."
)]
pub struct ServerArgs {
    /// Development mode: in-memory storage, initialised and unsealed, root token printed.
    #[arg(long)]
    pub dev: bool,
    /// Root token id in dev mode.
    #[arg(long, env = "VAULT_DEV_ROOT_TOKEN_ID")]
    pub dev_root_token_id: Option<String>,
    /// In dev mode, do not store the root token in the CLI's token file (~/.coffer-token).
    #[arg(long)]
    pub dev_no_store_token: bool,
    /// Listen address in dev mode.
    #[arg(
        long,
        env = "VAULT_DEV_LISTEN_ADDRESS",
        default_value = "127.0.0.1:8200"
    )]
    pub dev_listen_address: String,
    /// Vault-format configuration file (HCL or JSON).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// trace, debug, info, warn or error.
    #[arg(long)]
    pub log_level: Option<String>,
}

/// Entry point for `coffer server ...` (argv already normalised to `--flags`).
/// `catalog` holds every engine kind the server can mount; the binary fills it.
pub fn main(args: Vec<OsString>, catalog: Catalog) -> i32 {
    let mut argv = args;
    if argv.len() >= 2 {
        argv.remove(1);
    }
    let args = match ServerArgs::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error starting the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(run(args, Arc::new(catalog))) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("{msg}");
            1
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},hyper=warn,h2=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person watching; a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn run(args: ServerArgs, catalog: Arc<Catalog>) -> Result<(), String> {
    if args.dev {
        init_logging(args.log_level.as_deref().unwrap_or("info"));
        return run_dev(args, catalog).await;
    }
    let Some(path) = &args.config else {
        return Err("Error: no configuration given. Run `coffer server -dev` for a development server, or `coffer server -config FILE` with a Vault-format config (storage + listener stanzas).".into());
    };
    let config = coffer_config::load_config(path)
        .map_err(|e| format!("Error loading configuration: {e}"))?;
    init_logging(
        args.log_level
            .as_deref()
            .or(config.log_level.as_deref())
            .unwrap_or("info"),
    );
    for warning in &config.warnings {
        eprintln!("WARNING: {warning}");
    }
    run_config(config, catalog).await
}

fn limits_from(config: Option<&ServerConfig>) -> LeaseLimits {
    let max = config
        .and_then(|c| c.max_lease_ttl)
        .unwrap_or(DEFAULT_LEASE_TTL);
    let default = config
        .and_then(|c| c.default_lease_ttl)
        .unwrap_or(DEFAULT_LEASE_TTL)
        .min(max);
    LeaseLimits {
        default_ttl: default,
        max_ttl: max,
    }
}

/// Start a dev server in-process: in-memory, initialised with one share, unsealed, `secret/`
/// mounted as KV v2. Returns the core, the unseal key (hex) and the root token.
pub async fn dev_core(
    root_token_id: Option<String>,
    catalog: Arc<Catalog>,
) -> Result<(Arc<Core>, String, String), String> {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let core = crate::host::build_core(storage, Arc::new(SystemClock), limits_from(None), catalog);
    let init = core
        .init(1, 1)
        .await
        .map_err(|e| format!("dev init failed: {e}"))?;
    let key = init.keys[0].clone();
    core.unseal(Some(key.clone()), false)
        .await
        .map_err(|e| format!("dev unseal failed: {e}"))?;
    let mut root = init.root_token;
    if let Some(id) = root_token_id.filter(|id| !id.is_empty()) {
        if let Some(entry) = core.tokens.lookup(&root).await.map_err(|e| e.to_string())? {
            core.tokens
                .revoke_tree(&entry.id_hash)
                .await
                .map_err(|e| e.to_string())?;
        }
        root = core
            .create_root_token(Some(id))
            .await
            .map_err(|e| format!("dev root token: {e}"))?
            .0;
    }
    let mount = Request::new(Operation::Update, "sys/mounts/secret")
        .with_data(serde_json::json!({"type": "kv", "description": "key/value secret storage", "options": {"version": "2"}}));
    core.handle(mount, Some(&root))
        .await
        .map_err(|e| format!("dev mount of secret/ failed: {e}"))?;
    Ok((core, hex::encode(&key[..]), root))
}

/// The CLI's token file in the user's home directory (`coffer_cli::environment::TOKEN_FILE_NAME`):
/// the dev server stores its root token there, as Vault's dev mode does with `~/.vault-token`.
pub const CLI_TOKEN_FILE_NAME: &str = ".coffer-token";

/// Write the dev root token where the CLI looks for one, readable by its owner only. Returns
/// the file's path.
fn store_dev_token(root: &str) -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .ok_or("HOME is not set")?;
    let path = PathBuf::from(home).join(CLI_TOKEN_FILE_NAME);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // A file that was there before keeps its old mode through `open`.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::Write::write_all(&mut file, root.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

async fn run_dev(args: ServerArgs, catalog: Arc<Catalog>) -> Result<(), String> {
    let (core, unseal_key, root) = dev_core(args.dev_root_token_id.clone(), catalog).await?;
    core.start_background();
    let listener = ListenerConfig {
        address: args.dev_listen_address.clone(),
        tls_disable: true,
        ..ListenerConfig::default()
    };
    let bound = bind(&listener).await?;
    let addr = bound.0.local_addr().map_err(|e| e.to_string())?;
    let stored = if args.dev_no_store_token {
        None
    } else {
        match store_dev_token(&root) {
            Ok(path) => Some(path),
            Err(e) => {
                eprintln!("WARNING: the root token could not be stored for the CLI: {e}");
                None
            }
        }
    };
    println!("==> Coffer server configuration:\n");
    println!("             Api Address: http://{addr}");
    println!("                 Storage: inmem");
    println!("                 Version: Coffer v{}\n", crate::VERSION);
    println!("==> Coffer server started! Log data will stream in below:\n");
    println!("WARNING! dev mode is enabled! In this mode, Coffer runs entirely in-memory");
    println!("and starts unsealed with a single unseal key.");
    match &stored {
        Some(path) => {
            println!("The root token is already authenticated to the CLI (stored in");
            println!(
                "{}), so you can immediately begin using Coffer.\n",
                path.display()
            );
        }
        None => println!("The root token is not stored for the CLI: set VAULT_TOKEN to use it.\n"),
    }
    println!("You may need to set the following environment variables:\n");
    println!("    $ export VAULT_ADDR='http://{addr}'\n");
    println!("The unseal key and root token are displayed below in case you want to");
    println!("seal/unseal the Coffer or re-authenticate.\n");
    println!("Unseal Key: {unseal_key}");
    println!("Root Token: {root}\n");
    println!("Development mode should NOT be used in production installations!\n");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let server = tokio::spawn(serve(bound.0, bound.1, core.clone(), Limits::of(&listener)));
    wait_for_shutdown().await;
    server.abort();
    core.shutdown().await;
    close_connections().await;
    Ok(())
}

async fn run_config(config: ServerConfig, catalog: Arc<Catalog>) -> Result<(), String> {
    let storage: Arc<dyn Storage> = match &config.storage {
        StorageConfig::Memory => Arc::new(MemoryStorage::new()),
        StorageConfig::Embedded { path } => {
            let path = path.clone();
            Arc::new(
                tokio::task::spawn_blocking(move || EmbeddedStorage::open(&path))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("Error opening storage: {e}"))?,
            )
        }
    };
    let storage_kind = storage.kind();
    let core = crate::host::build_core(
        storage,
        Arc::new(SystemClock),
        limits_from(Some(&config)),
        catalog,
    );
    core.start_background();
    if config.listeners.is_empty() {
        return Err("Error: the configuration has no listener stanza; add `listener \"tcp\" { address = \"127.0.0.1:8200\" tls_disable = true }`".into());
    }
    let mut tasks = Vec::new();
    println!("==> Coffer server configuration:\n");
    for listener in &config.listeners {
        let (tcp, tls) = bind(listener).await?;
        let addr = tcp.local_addr().map_err(|e| e.to_string())?;
        println!(
            "                Listener: tcp (addr: \"{addr}\", tls: \"{}\")",
            if tls.is_some() { "enabled" } else { "disabled" }
        );
        tasks.push(tokio::spawn(serve(
            tcp,
            tls,
            core.clone(),
            Limits::of(listener),
        )));
    }
    let status = core.seal_status().await.map_err(|e| e.to_string())?;
    println!("                 Storage: {storage_kind}");
    println!("                 Version: Coffer v{}\n", crate::VERSION);
    println!(
        "==> Coffer server started! initialized: {}, sealed: {}\n",
        status.initialized, status.sealed
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_shutdown().await;
    for t in tasks {
        t.abort();
    }
    core.shutdown().await;
    close_connections().await;
    Ok(())
}

/// Close the connections still open at shutdown (see `ConnectionThreads::stop`), so that the
/// core is let go of, and its storage and audit devices finish, before the process exits.
async fn close_connections() {
    if let Some(threads) = crate::connections::ConnectionThreads::global() {
        let _ = tokio::task::spawn_blocking(|| threads.stop()).await;
    }
}

async fn wait_for_shutdown() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}

fn tls_acceptor(listener: &ListenerConfig) -> Result<Option<TlsAcceptor>, String> {
    if listener.tls_disable {
        return Ok(None);
    }
    let cert_path = listener
        .tls_cert_file
        .as_ref()
        .ok_or("Error: listener has TLS enabled but no tls_cert_file")?;
    let key_path = listener
        .tls_key_file
        .as_ref()
        .ok_or("Error: listener has TLS enabled but no tls_key_file")?;
    let read =
        |p: &PathBuf| std::fs::read(p).map_err(|e| format!("Error reading {}: {e}", p.display()));
    let certs: Vec<_> = rustls_pemfile::certs(&mut &read(cert_path)?[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("Error parsing certificates in {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "Error: no certificates found in {}",
            cert_path.display()
        ));
    }
    let key = rustls_pemfile::private_key(&mut &read(key_path)?[..])
        .map_err(|e| format!("Error parsing private key in {}: {e}", key_path.display()))?
        .ok_or_else(|| format!("Error: no private key found in {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &listener.tls_client_ca_file {
        // Without a listener CA, client certificates are still requested (optionally) so that
        // the `cert` auth method can see them: like Vault, the listener accepts any
        // well-formed chain and leaves trust to the auth method, whose roles name their CAs
        // at runtime. The handshake signature is still verified by rustls.
        None => builder.with_client_cert_verifier(Arc::new(OptionalClientCert {
            algorithms: provider.signature_verification_algorithms,
        })),
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &read(ca_path)?[..]) {
                let cert = cert.map_err(|e| format!("Error parsing {}: {e}", ca_path.display()))?;
                roots.add(cert).map_err(|e| {
                    format!("Error adding client CA from {}: {e}", ca_path.display())
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if listener.tls_require_and_verify_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| format!("Error building client certificate verifier: {e}"))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("Error: certificate and key do not match: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}

/// Requests a client certificate without requiring one and accepts any well-formed chain: it
/// only proves the client holds the leaf's key. Whether the chain is trusted is decided later
/// by the `cert` auth method against its roles' CAs (Vault's behaviour); nothing else treats a
/// presented certificate as authenticated.
#[derive(Debug)]
struct OptionalClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        // Well-formedness only; trust is the auth method's decision.
        rustls::server::ParsedCertificate::try_from(end_entity)?;
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Bind a listener.
pub async fn bind(listener: &ListenerConfig) -> Result<(TcpListener, Option<TlsAcceptor>), String> {
    let tls = tls_acceptor(listener)?;
    let tcp = TcpListener::bind(&listener.address)
        .await
        .map_err(|e| format!("Error listening on {}: {e}", listener.address))?;
    Ok((tcp, tls))
}

/// Accept connections forever, at most `limits.max_connections` open at once: when that many
/// are open, the next client waits in the kernel's accept queue until one closes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    core: Arc<Core>,
    limits: Limits,
) {
    let slots = limits
        .max_connections
        .map(|max| Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))));
    let options = Arc::new(crate::http::Options {
        read_timeout: limits.read,
    });
    loop {
        let slot = match &slots {
            Some(slots) => Some(
                slots
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let accepted = tokio::time::Instant::now();
        let _ = stream.set_nodelay(true);
        let core = core.clone();
        let tls = tls.clone();
        let options = options.clone();
        let serve_connection = move |stream: tokio::net::TcpStream| -> std::pin::Pin<
            Box<dyn std::future::Future<Output = ()> + Send>,
        > {
            Box::pin(async move {
                let _slot = slot;
                let mut conn = Connection {
                    remote_addr: Some(addr),
                    peer_certificates: Vec::new(),
                };
                match tls {
                    None => {
                        let watch = Watch::new(limits, accepted, false);
                        serve_io(stream, core, conn, options, watch).await
                    }
                    Some(acceptor) => {
                        // The handshake counts against the first request's header timeout, and so
                        // does waiting for its first byte.
                        let handshake = async move {
                            if is_plain_http(&stream).await {
                                tracing::debug!(%addr, "plain HTTP sent to a TLS listener");
                                reject_plain_http(stream).await;
                                return None;
                            }
                            Some(acceptor.accept(stream).await)
                        };
                        let handshake = match limits.header {
                            Some(limit) => {
                                match tokio::time::timeout_at(accepted + limit, handshake).await {
                                    Ok(done) => done,
                                    Err(_) => {
                                        tracing::debug!(%addr, "TLS handshake timed out");
                                        return;
                                    }
                                }
                            }
                            None => handshake.await,
                        };
                        let Some(handshake) = handshake else {
                            return;
                        };
                        match handshake {
                            Ok(tls_stream) => {
                                conn.peer_certificates = tls_stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .map(|c| c.iter().map(|d| d.to_vec()).collect())
                                    .unwrap_or_default();
                                let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                                let watch = Watch::new(limits, accepted, h2);
                                serve_io(tls_stream, core, conn, options, watch).await
                            }
                            Err(e) => tracing::debug!(error = %e, "TLS handshake failed"),
                        }
                    }
                }
            })
        };
        match crate::connections::ConnectionThreads::global() {
            Some(threads) => threads.dispatch(stream, Box::new(serve_connection)),
            None => {
                tokio::spawn(serve_connection(stream));
            }
        }
    }
}

/// Whether a connection to a TLS listener opens with plain HTTP (a request line, which starts
/// with a letter) rather than a TLS record (whose first byte is its type, below 0x20).
async fn is_plain_http(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_alphabetic())
}

/// Answer plain HTTP on a TLS listener as Go's server (and so Vault) does, so the client is
/// told what went wrong instead of seeing the connection drop: a 400 naming the mismatch. The
/// request is then read and discarded (at most 64 KiB, for at most a second) so that closing
/// does not reset the connection under the answer.
async fn reject_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";
    if stream.write_all(answer).await.is_err() || stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buffer = [0u8; 4096];
        let mut drained = 0usize;
        while drained < crate::http::DRAIN_LIMIT {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// Serve one connection. HTTP/2 only where TLS negotiated it by ALPN (as Vault does); plain
/// TCP is HTTP/1.1, which skips protocol sniffing on every connection.
async fn serve_io<I: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: I,
    core: Arc<Core>,
    conn: Connection,
    options: Arc<crate::http::Options>,
    watch: Arc<Watch>,
) {
    let h2 = watch.is_h2();
    let scope = Arc::new(crate::http::ConnectionScope {
        core,
        connection: Arc::new(conn),
        options,
        token_memo: Default::default(),
    });
    let requests = watch.clone();
    // The handler's future goes to hyper as it is: a wrapper around it would be moved (copied)
    // twice per request, and it is several KiB.
    let service = hyper::service::service_fn(move |req| {
        let busy = requests.request_started();
        crate::http::handle(scope.clone(), req, busy)
    });
    let io = TokioIo::new(TimedIo::new(io, watch));
    let served = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            // One buffer per response instead of a vectored write of head and body: a KV read
            // cost ~3% less CPU (wrk -t1 -c32, loopback), and the bare baseline gained as much
            // with the same setting, which it therefore uses too. Bodies are small; a large one
            // is copied once more in memory, far cheaper than its trip through the socket.
            .writev(false)
            .serve_connection(io, service)
            .await
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
