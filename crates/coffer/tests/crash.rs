//! Crash test: a file-storage server is SIGKILLed at random moments
//! while a pool of writers does KV v2 writes, CAS updates, token creations and revocations.
//! After every restart, everything the server acknowledged must be there, nothing may fail to
//! decrypt, and token leases and tokens must agree. A second case kills the server in the
//! middle of `sys/leases/revoke-prefix` and checks that no token is left half revoked.
//!
//! The normal suite runs a short version. `scripts/crash-test` runs long ones through these
//! environment variables:
//! - `COFFER_CRASH_KILLS` (default 10): SIGKILLs in the writer case;
//! - `COFFER_CRASH_SECONDS` (default 45): time budget of the writer case;
//! - `COFFER_CRASH_REVOKE_TOKENS` (default 2000): tokens revoked by prefix in the other case;
//! - `COFFER_CRASH_REVOKE_ROUNDS` (default 1): kill-during-revoke-prefix rounds.

mod common;

use common::{TestServer, FILE_STORAGE_CONFIG};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Writer threads; each owns its own key range, so every value's history is known.
const WRITERS: usize = 4;
/// Keys per writer.
const KEYS_PER_WRITER: usize = 6;
/// Live tokens a writer keeps at most; at the cap its token operations are all revocations.
/// Without a cap creations outpace revocations and every round re-checks a growing set, so
/// long runs slow down round after round; with it each round's check costs about the same.
const MAX_LIVE_TOKENS_PER_WRITER: usize = 40;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: enough randomness for timings and choices, seeded from the
/// clock and printed so a failing run can be replayed with `COFFER_CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        let base = env_number(
            "COFFER_CRASH_SEED",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        );
        Rng((base ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A blocking HTTP client for one server address, shared by nothing.
struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    fn new(addr: &str) -> Client {
        Client {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .allow_non_standard_methods(true)
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into(),
            base: addr.to_owned(),
        }
    }

    /// Status (0 when the connection failed or died mid-request) and JSON body.
    fn call(&self, method: &str, path: &str, token: &str, body: Option<&Value>) -> (u16, Value) {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}/v1/{path}", self.base))
            .header("X-Vault-Token", token);
        if body.is_some() {
            builder = builder.header("Content-Type", "application/json");
        }
        let bytes = body
            .map(|b| serde_json::to_vec(b).expect("json"))
            .unwrap_or_default();
        let request = builder.body(bytes).expect("valid request");
        match self.agent.run(request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                match response.body_mut().read_to_string() {
                    Ok(text) => (status, serde_json::from_str(&text).unwrap_or(Value::Null)),
                    // The head arrived but the body did not: the server died answering.
                    Err(_) => (0, Value::Null),
                }
            }
            Err(_) => (0, Value::Null),
        }
    }
}

/// What became of one attempted write.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// 200: the server promised the write is durable.
    Acknowledged,
    /// The connection died: the write may or may not have happened.
    Unknown,
}

/// One key's attempted writes, oldest first, as `(value, outcome)`. Rejected attempts (4xx,
/// 503 from a sealed server) are not recorded: they must not have happened.
#[derive(Default)]
struct KeyHistory {
    attempts: Vec<(u64, Outcome)>,
    /// The key's current version when known exactly (for `options.cas`).
    version: Option<u64>,
}

impl KeyHistory {
    /// Values the key may hold now: the last acknowledged one or anything attempted after it
    /// whose fate is unknown. `None` in the set means "absent" is acceptable.
    fn acceptable(&self) -> (HashSet<u64>, bool) {
        let last_ack = self
            .attempts
            .iter()
            .rposition(|(_, outcome)| *outcome == Outcome::Acknowledged);
        let start = last_ack.unwrap_or(0);
        let values = self.attempts[start..].iter().map(|(v, _)| *v).collect();
        (values, last_ack.is_none())
    }
}

/// What became of one acknowledged token.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TokenState {
    Live,
    /// A revoke was sent but its connection died.
    RevokeUnknown,
    /// A revoke was acknowledged (204).
    Revoked,
}

/// Everything the writers were told, shared with the verifier.
#[derive(Default)]
struct Ledger {
    keys: BTreeMap<String, KeyHistory>,
    tokens: HashMap<String, TokenState>,
    /// Token creations whose connection died: tokens that may exist without our knowing them.
    unknown_token_creates: u64,
}

/// Counters printed at the end.
#[derive(Default, Debug)]
struct Tally {
    kills: u64,
    acknowledged_writes: u64,
    acknowledged_checks: u64,
    token_checks: u64,
    metadata_reads: u64,
    lost: Vec<String>,
    corrupt: Vec<String>,
    /// Lease-less live tokens already reported (by issue time), so later rounds do not
    /// count the same damage again.
    reported_leaseless: HashSet<String>,
}

fn root_call(client: &Client, root: &str, method: &str, path: &str, body: Value) -> (u16, Value) {
    client.call(method, path, root, Some(&body))
}

/// `POST auth/token/create` with `body` as root; the new token (the call must succeed).
fn create_token(client: &Client, root: &str, body: Value) -> String {
    let (status, body) = root_call(client, root, "POST", "auth/token/create", body);
    assert_eq!(status, 200, "{body}");
    body["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned()
}

fn init(server: &TestServer) -> (String, String) {
    let (status, body) = server.request(
        "PUT",
        "sys/init",
        None,
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    assert_eq!(status, 200, "{body}");
    let key = body["keys"][0].as_str().expect("unseal key").to_owned();
    let root = body["root_token"].as_str().expect("root token").to_owned();
    unseal(server, &key);
    (key, root)
}

fn unseal(server: &TestServer, key: &str) {
    let (status, body) = server.request("PUT", "sys/unseal", None, Some(&json!({ "key": key })));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sealed"], json!(false), "{body}");
}

/// Kill with SIGKILL, start again on the same data, unseal.
fn crash_and_recover(server: &mut TestServer, key: &str) {
    server.kill();
    server.restart();
    unseal(server, key);
}

/// What the writer threads share with the verifier.
#[derive(Clone)]
struct WriterPool {
    ledger: Arc<Mutex<Ledger>>,
    /// Held for reading around every request; the verifier takes it to stop the pool.
    gate: Arc<RwLock<()>>,
    stop: Arc<AtomicBool>,
    /// The next value to write: unique across writers, increasing within each.
    sequence: Arc<AtomicU64>,
    acknowledged: Arc<AtomicU64>,
}

/// One writer's loop: writes, CAS updates, token creations and revocations on its own keys,
/// until `stop`. `gate` is held for reading around every request so the verifier can stop
/// the pool (by taking it for writing) between a restart and the end of its checks.
fn writer_loop(id: usize, addr: String, root: String, pool: WriterPool) {
    let WriterPool {
        ledger,
        gate,
        stop,
        sequence,
        acknowledged,
    } = pool;
    let client = Client::new(&addr);
    let mut rng = Rng::seeded(id as u64 + 1);
    let mut my_tokens: Vec<String> = Vec::new();
    // Bounded: the test's time budget stops the pool long before this.
    for _ in 0..1_000_000 {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let _running = gate.read().expect("gate");
        let roll = rng.below(100);
        if roll < 70 {
            let key = format!("w{id}/k{}", rng.below(KEYS_PER_WRITER as u64));
            let value = sequence.fetch_add(1, Ordering::Relaxed);
            let cas = if roll >= 55 {
                ledger
                    .lock()
                    .expect("ledger")
                    .keys
                    .get(&key)
                    .and_then(|h| h.version)
            } else {
                None
            };
            let body = match cas {
                Some(version) => json!({"data": {"v": value}, "options": {"cas": version}}),
                None => json!({"data": {"v": value}}),
            };
            let (status, answer) =
                client.call("POST", &format!("secret/data/{key}"), &root, Some(&body));
            let mut ledger = ledger.lock().expect("ledger");
            let history = ledger.keys.entry(key.clone()).or_default();
            match status {
                200 => {
                    history.attempts.push((value, Outcome::Acknowledged));
                    history.version = answer["data"]["version"].as_u64();
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                0 => {
                    history.attempts.push((value, Outcome::Unknown));
                    history.version = None;
                }
                400 if cas.is_some() => {
                    // We own the key and knew its version exactly: a CAS mismatch means the
                    // server lost or invented a version.
                    drop(ledger);
                    panic!("CAS at version {cas:?} of {key} rejected: {answer}");
                }
                _ => {}
            }
        } else if (roll < 88 && my_tokens.len() < MAX_LIVE_TOKENS_PER_WRITER)
            || my_tokens.is_empty()
        {
            let (status, answer) = client.call(
                "POST",
                "auth/token/create",
                &root,
                Some(&json!({"ttl": "2h", "display_name": format!("crash-w{id}")})),
            );
            let mut ledger = ledger.lock().expect("ledger");
            match status {
                200 => {
                    let token = answer["auth"]["client_token"]
                        .as_str()
                        .expect("client_token")
                        .to_owned();
                    ledger.tokens.insert(token.clone(), TokenState::Live);
                    my_tokens.push(token);
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                0 => ledger.unknown_token_creates += 1,
                _ => {}
            }
        } else {
            let index = rng.below(my_tokens.len() as u64) as usize;
            let token = my_tokens.swap_remove(index);
            let (status, _) = client.call(
                "POST",
                "auth/token/revoke",
                &root,
                Some(&json!({ "token": token })),
            );
            let mut ledger = ledger.lock().expect("ledger");
            match status {
                204 | 200 => {
                    ledger.tokens.insert(token, TokenState::Revoked);
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                0 => {
                    ledger.tokens.insert(token, TokenState::RevokeUnknown);
                }
                _ => my_tokens.push(token),
            }
        }
    }
}

/// `true` if the token looks up (200), `false` if it is gone (403); anything else is corrupt.
fn token_is_live(client: &Client, root: &str, token: &str, tally: &mut Tally) -> Option<bool> {
    let (status, body) = root_call(
        client,
        root,
        "POST",
        "auth/token/lookup",
        json!({ "token": token }),
    );
    tally.token_checks += 1;
    match status {
        200 => Some(true),
        403 => Some(false),
        other => {
            tally
                .corrupt
                .push(format!("token lookup answered {other}: {body}"));
            None
        }
    }
}

/// The listed token leases, keyed by issue time (a token's lookup reports the same instant).
fn token_leases(client: &Client, root: &str, tally: &mut Tally) -> HashMap<String, usize> {
    let (status, body) = client.call("LIST", "sys/leases/lookup/auth/token/create/", root, None);
    let mut by_issue_time: HashMap<String, usize> = HashMap::new();
    if status == 404 {
        return by_issue_time;
    }
    if status != 200 {
        tally.corrupt.push(format!(
            "LIST sys/leases/lookup/auth/token/create/: {status} {body}"
        ));
        return by_issue_time;
    }
    for key in body["data"]["keys"].as_array().into_iter().flatten() {
        let lease_id = format!("auth/token/create/{}", key.as_str().unwrap_or_default());
        let (status, lease) = root_call(
            client,
            root,
            "PUT",
            "sys/leases/lookup",
            json!({ "lease_id": lease_id }),
        );
        if status != 200 {
            tally.corrupt.push(format!(
                "listed lease {lease_id} does not look up: {status} {lease}"
            ));
            continue;
        }
        let issued = lease["data"]["issue_time"].as_str().unwrap_or_default();
        *by_issue_time.entry(issued.to_owned()).or_default() += 1;
    }
    by_issue_time
}

/// Check leases against live tokens: every live token has exactly one listed lease (matched by
/// issue time), and at most `unknown_tokens` leases belong to no token we know is live.
/// Returns how many leases matched no known live token.
fn check_leases_agree(
    client: &Client,
    root: &str,
    live_tokens: &[String],
    unknown_tokens: u64,
    tally: &mut Tally,
) -> usize {
    let mut leases = token_leases(client, root, tally);
    let listed: usize = leases.values().sum();
    for token in live_tokens {
        let (status, body) = root_call(
            client,
            root,
            "POST",
            "auth/token/lookup",
            json!({ "token": token }),
        );
        let issued = body["data"]["issue_time"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        match leases.get_mut(&issued) {
            Some(count) if status == 200 && *count > 0 => *count -= 1,
            _ if !tally.reported_leaseless.insert(issued.clone()) => {}
            _ => tally.corrupt.push(format!(
                "live token (issued {issued}, lookup {status}) has no listed lease"
            )),
        }
    }
    let unmatched: usize = leases.values().sum();
    if unmatched as u64 > unknown_tokens {
        tally.corrupt.push(format!(
            "{unmatched} of {listed} listed token leases belong to no live token \
             (only {unknown_tokens} token creations had an unknown outcome)"
        ));
    }
    unmatched
}

/// After a restart: every acknowledged write is there, every entry decrypts, tokens and
/// leases agree. Then the ledger is rebased on what was read, so the next round starts from
/// observed state.
fn verify(client: &Client, root: &str, ledger: &mut Ledger, tally: &mut Tally) {
    for (key, history) in ledger.keys.iter_mut() {
        if history.attempts.is_empty() {
            continue;
        }
        let (acceptable, may_be_absent) = history.acceptable();
        let (status, body) = client.call("GET", &format!("secret/data/{key}"), root, None);
        tally.acknowledged_checks += 1;
        let read = body["data"]["data"]["v"].as_u64();
        match (status, read) {
            (200, Some(value)) if acceptable.contains(&value) => {
                history.attempts = vec![(value, Outcome::Acknowledged)];
                history.version = body["data"]["metadata"]["version"].as_u64();
            }
            (200, _) => tally.corrupt.push(format!(
                "{key} reads {read:?}, acceptable {acceptable:?}: {body}"
            )),
            (404, _) if may_be_absent => {
                history.attempts.clear();
                history.version = None;
            }
            (404, _) => tally.lost.push(format!(
                "{key}: acknowledged value missing, acceptable {acceptable:?}"
            )),
            (other, _) => tally
                .corrupt
                .push(format!("GET secret/data/{key}: {other} {body}")),
        }
    }

    // Every metadata entry the mount lists decrypts and parses.
    let (status, top) = client.call("LIST", "secret/metadata/", root, None);
    if status == 200 {
        for dir in top["data"]["keys"].as_array().into_iter().flatten() {
            let dir = dir.as_str().unwrap_or_default();
            let (status, inner) =
                client.call("LIST", &format!("secret/metadata/{dir}"), root, None);
            if status != 200 {
                tally
                    .corrupt
                    .push(format!("LIST secret/metadata/{dir}: {status} {inner}"));
                continue;
            }
            for leaf in inner["data"]["keys"].as_array().into_iter().flatten() {
                let path = format!("secret/metadata/{dir}{}", leaf.as_str().unwrap_or_default());
                let (status, body) = client.call("GET", &path, root, None);
                tally.metadata_reads += 1;
                if status != 200 && status != 404 {
                    tally.corrupt.push(format!("GET {path}: {status} {body}"));
                }
            }
        }
    } else if status != 404 {
        tally
            .corrupt
            .push(format!("LIST secret/metadata/: {status} {top}"));
    }

    let mut live = Vec::new();
    for (token, state) in ledger.tokens.iter_mut() {
        let Some(is_live) = token_is_live(client, root, token, tally) else {
            continue;
        };
        match (*state, is_live) {
            (TokenState::Live, false) => tally
                .lost
                .push("acknowledged token no longer looks up".into()),
            (TokenState::Revoked, true) => tally
                .lost
                .push("token whose revocation was acknowledged still looks up".into()),
            (TokenState::RevokeUnknown, true) => *state = TokenState::Live,
            (TokenState::RevokeUnknown, false) => *state = TokenState::Revoked,
            _ => {}
        }
        if is_live {
            live.push(token.clone());
        }
    }
    // Tokens whose creation outcome is unknown may hold leases we cannot attribute.
    let unmatched = check_leases_agree(client, root, &live, ledger.unknown_token_creates, tally);
    ledger.unknown_token_creates = unmatched as u64;
    ledger
        .tokens
        .retain(|_, state| *state != TokenState::Revoked);
}

#[test]
fn acknowledged_state_survives_repeated_sigkill() {
    let kills = env_number("COFFER_CRASH_KILLS", 10);
    let budget = Duration::from_secs(env_number("COFFER_CRASH_SECONDS", 45));
    let started = Instant::now();
    let mut rng = Rng::seeded(0);
    eprintln!("crash test seed: {}", rng.0);

    let mut server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (unseal_key, root) = init(&server);
    let (status, _) = server.request(
        "POST",
        "sys/mounts/secret",
        Some(&root),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
    );
    assert_eq!(status, 204);

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let gate = Arc::new(RwLock::new(()));
    let stop = Arc::new(AtomicBool::new(false));
    let sequence = Arc::new(AtomicU64::new(1));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|id| {
            let (addr, root) = (server.addr.clone(), root.clone());
            let pool = WriterPool {
                ledger: ledger.clone(),
                gate: gate.clone(),
                stop: stop.clone(),
                sequence: sequence.clone(),
                acknowledged: acknowledged.clone(),
            };
            std::thread::spawn(move || writer_loop(id, addr, root, pool))
        })
        .collect();

    let client = Client::new(&server.addr);
    let mut tally = Tally::default();
    while tally.kills < kills && started.elapsed() < budget {
        // Let the writers run for a random 100..1500 ms, then pull the plug mid-flight.
        std::thread::sleep(Duration::from_millis(100 + rng.below(1400)));
        server.kill();
        tally.kills += 1;
        // Writers finish their doomed requests, then wait at the gate.
        let _paused = gate.write().expect("gate");
        server.restart();
        unseal(&server, &unseal_key);
        let mut ledger = ledger.lock().expect("ledger");
        verify(&client, &root, &mut ledger, &mut tally);
        if tally.kills % 25 == 0 {
            // A live count for long runs (scripts/crash-test shows these lines).
            eprintln!(
                "crash test progress: {}/{kills} kills, {} acknowledged operations, lost = {}, corrupt = {}, {:.0}s",
                tally.kills,
                acknowledged.load(Ordering::Relaxed),
                tally.lost.len(),
                tally.corrupt.len(),
                started.elapsed().as_secs_f64()
            );
        }
        if writers.iter().any(|w| w.is_finished()) {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        if let Err(panic) = writer.join() {
            std::panic::resume_unwind(panic);
        }
    }
    // A final clean check, with the pool stopped.
    crash_and_recover(&mut server, &unseal_key);
    tally.kills += 1;
    verify(
        &client,
        &root,
        &mut ledger.lock().expect("ledger"),
        &mut tally,
    );
    tally.acknowledged_writes = acknowledged.load(Ordering::Relaxed);

    eprintln!(
        "crash test: kills survived: {}, acknowledged operations: {}, acknowledged writes checked: {}, \
         token checks: {}, metadata reads: {}, lost = {}, corrupt = {}, {:.1}s",
        tally.kills,
        tally.acknowledged_writes,
        tally.acknowledged_checks,
        tally.token_checks,
        tally.metadata_reads,
        tally.lost.len(),
        tally.corrupt.len(),
        started.elapsed().as_secs_f64()
    );
    for problem in tally.lost.iter().chain(&tally.corrupt).take(40) {
        eprintln!("  PROBLEM {problem}");
    }
    assert!(
        tally.kills >= kills.min(3),
        "the test killed the server too few times"
    );
    assert!(
        tally.acknowledged_checks > 0,
        "the writers got nothing acknowledged"
    );
    assert!(
        tally.lost.is_empty(),
        "acknowledged state lost (listed above)"
    );
    assert!(tally.corrupt.is_empty(), "corrupt state (listed above)");
}

#[test]
fn sigkill_during_revoke_prefix_leaves_no_token_half_revoked() {
    let tokens_wanted = env_number("COFFER_CRASH_REVOKE_TOKENS", 2000) as usize;
    let rounds = env_number("COFFER_CRASH_REVOKE_ROUNDS", 1);
    let mut rng = Rng::seeded(99);
    eprintln!("revoke-prefix crash seed: {}", rng.0);
    let mut server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (unseal_key, root) = init(&server);
    let client = Client::new(&server.addr);
    let mut tally = Tally::default();
    let mut partial_rounds = 0;

    for round in 0..rounds {
        // Create the tokens from a few threads; all must be acknowledged before the kill.
        let per_thread = tokens_wanted.div_ceil(4);
        let creators: Vec<_> = (0..4)
            .map(|_| {
                let (addr, root) = (server.addr.clone(), root.clone());
                std::thread::spawn(move || {
                    let client = Client::new(&addr);
                    (0..per_thread)
                        .map(|_| {
                            create_token(
                                &client,
                                &root,
                                json!({"ttl": "1h", "display_name": "revoke-prefix"}),
                            )
                        })
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        let tokens: Vec<String> = creators
            .into_iter()
            .flat_map(|c| c.join().expect("token creator"))
            .collect();
        let (_, before) = client.call("LIST", "sys/leases/lookup/auth/token/create/", &root, None);
        let listed_before = before["data"]["keys"].as_array().map_or(0, Vec::len);
        assert_eq!(
            listed_before,
            tokens.len(),
            "one lease per token before the kill"
        );
        // The issue-time matching used after the kill must hold on an undisturbed server.
        let mut baseline = Tally::default();
        check_leases_agree(&client, &root, &tokens, 0, &mut baseline);
        assert!(
            baseline.corrupt.is_empty(),
            "before the kill: {:?}",
            baseline.corrupt
        );

        // Revoke them all by prefix and kill the server somewhere in the middle.
        let revoker = {
            let (addr, root) = (server.addr.clone(), root.clone());
            std::thread::spawn(move || {
                Client::new(&addr)
                    .call(
                        "PUT",
                        "sys/leases/revoke-prefix/auth/token/create",
                        &root,
                        None,
                    )
                    .0
            })
        };
        std::thread::sleep(Duration::from_millis(5 + rng.below(300)));
        server.kill();
        tally.kills += 1;
        let revoke_status = revoker.join().expect("revoker");
        server.restart();
        unseal(&server, &unseal_key);

        let mut live = Vec::new();
        for token in &tokens {
            if token_is_live(&client, &root, token, &mut tally) == Some(true) {
                live.push(token.clone());
            }
        }
        if revoke_status == 204 && !live.is_empty() {
            tally.lost.push(format!(
                "revoke-prefix was acknowledged but {} tokens still look up",
                live.len()
            ));
        }
        check_leases_agree(&client, &root, &live, 0, &mut tally);
        let revoked = tokens.len() - live.len();
        if revoked > 0 && !live.is_empty() {
            partial_rounds += 1;
        }
        eprintln!(
            "revoke-prefix round {}: {} tokens, revoke answered {revoke_status}, {revoked} revoked, {} still live with leases",
            round + 1,
            tokens.len(),
            live.len()
        );
        // Clean up what survived so the next round starts empty.
        let (status, _) = client.call(
            "PUT",
            "sys/leases/revoke-prefix/auth/token/create",
            &root,
            None,
        );
        assert_eq!(status, 204);
    }
    eprintln!(
        "revoke-prefix crash test: rounds {rounds}, rounds killed mid-revocation {partial_rounds}, \
         token checks {}, lost = {}, corrupt = {}",
        tally.token_checks,
        tally.lost.len(),
        tally.corrupt.len()
    );
    for problem in tally.lost.iter().chain(&tally.corrupt).take(40) {
        eprintln!("  PROBLEM {problem}");
    }
    assert!(tally.lost.is_empty(), "lost state (listed above)");
    assert!(
        tally.corrupt.is_empty(),
        "half-revoked tokens (listed above)"
    );
}

/// revoke-prefix commits its revocations unsynced and makes them durable with one sync before
/// it answers: a SIGKILL right after the answer must not bring any token back.
#[test]
fn an_acknowledged_revoke_prefix_survives_an_immediate_sigkill() {
    let mut server = TestServer::from_config(FILE_STORAGE_CONFIG);
    let (unseal_key, root) = init(&server);
    let client = Client::new(&server.addr);
    let tokens: Vec<String> = (0..300)
        .map(|_| create_token(&client, &root, json!({"ttl": "1h"})))
        .collect();
    let (status, body) = client.call(
        "PUT",
        "sys/leases/revoke-prefix/auth/token/create",
        &root,
        None,
    );
    assert_eq!(status, 204, "{body}");
    server.kill();
    server.restart();
    unseal(&server, &unseal_key);

    let mut tally = Tally::default();
    let live: Vec<&String> = tokens
        .iter()
        .filter(|token| token_is_live(&client, &root, token, &mut tally) != Some(false))
        .collect();
    assert!(
        live.is_empty(),
        "{} of {} tokens look up again after an acknowledged revoke-prefix",
        live.len(),
        tokens.len()
    );
    let (status, body) = client.call("LIST", "sys/leases/lookup/auth/token/create/", &root, None);
    assert_eq!(status, 404, "leases left after the restart: {body}");
}
