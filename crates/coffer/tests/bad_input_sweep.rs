//! Bad-input sweep: every route the server advertises in its own OpenAPI
//! document gets malformed, mistyped, oversized and unauthenticated requests. No answer may be
//! a 5xx, every 4xx carries a JSON `errors` array, the server stays up, and a canary set of
//! secrets, policies, mounts, auth methods, token roles and leases reads back byte-for-byte
//! the same afterwards.
//!
//! Routes are taken from `GET /v1/sys/internal/specs/openapi`, so a new engine or path is swept
//! without touching this file.

mod common;

use common::TestServer;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// The size of the oversized string sent into every schema property.
const HUGE_STRING_BYTES: usize = 1024 * 1024;

/// A well-formed value for every path parameter; names nothing the canary set uses.
const PLAUSIBLE_PARAM: &str = "sweep-target";

/// Path-parameter values that try to climb out of the route or smuggle an empty segment in.
const TRAVERSAL_PARAMS: [&str; 5] = [
    "..",
    "%2e%2e",
    "a/../../sys",
    "a//b",
    "%2e%2e/%2e%2e/sys/seal",
];

/// Routes that change the server's whole state by design (seal, key rotation, rekey, init,
/// unseal). They get only malformed bodies and wrong methods, sent with a wrong token.
fn is_destructive_by_design(route: &str) -> bool {
    matches!(
        route,
        "/sys/seal" | "/sys/rotate" | "/sys/init" | "/sys/unseal"
    ) || route.starts_with("/sys/rekey/")
}

/// One HTTP answer: status (0 when the connection failed) and the body parsed as JSON.
struct Answer {
    status: u16,
    /// The server closed the connection before taking the whole request, twice, while
    /// staying healthy (see [`RawClient::send`]).
    closed_early: bool,
    body: Value,
    text: String,
}

/// An HTTP client that can send arbitrary bytes and non-standard methods (`LIST`, `FROB`).
struct RawClient {
    agent: ureq::Agent,
    base: String,
}

impl RawClient {
    fn new(server: &TestServer) -> RawClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        RawClient {
            agent,
            base: server.addr.clone(),
        }
    }

    /// `method /v1/<path>` with raw `body` bytes; `path` is sent as-is (no normalisation).
    /// A dropped connection is retried once on a fresh connection while the server stays
    /// healthy: a server may answer a request it rejects before reading the whole body and
    /// close the socket (legal HTTP/1.1), which a client still writing sees as a broken pipe.
    fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<&[u8]>) -> Answer {
        let first = self.send_once(method, path, token, body);
        if first.status != 0
            || self
                .fresh()
                .send_once("GET", "sys/health", None, None)
                .status
                != 200
        {
            return first;
        }
        let mut second = self.fresh().send_once(method, path, token, body);
        second.closed_early = second.status == 0;
        second
    }

    fn send_once(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> Answer {
        let uri = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut builder = ureq::http::Request::builder().method(method).uri(&uri);
        if let Some(token) = token {
            builder = builder.header("X-Vault-Token", token);
        }
        if body.is_some() {
            // Vault takes PATCH bodies only as JSON merge patches.
            let content_type = if method == "PATCH" {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            builder = builder.header("Content-Type", content_type);
        }
        let request = match builder.body(body.unwrap_or_default().to_vec()) {
            Ok(request) => request,
            Err(err) => {
                return Answer {
                    status: 0,
                    closed_early: false,
                    body: Value::Null,
                    text: format!("unbuildable request {method} {uri}: {err}"),
                }
            }
        };
        match self.agent.run(request) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024 * 1024)
                    .read_to_string()
                    .unwrap_or_default();
                Answer {
                    status,
                    closed_early: false,
                    body: serde_json::from_str(&text).unwrap_or(Value::Null),
                    text,
                }
            }
            Err(err) => Answer {
                status: 0,
                closed_early: false,
                body: Value::Null,
                text: format!("transport error: {err}"),
            },
        }
    }

    /// A client with an empty connection pool.
    fn fresh(&self) -> RawClient {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        RawClient {
            agent,
            base: self.base.clone(),
        }
    }

    fn json(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Answer {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("json"));
        self.send(method, path, token, bytes.as_deref())
    }
}

/// What a sweep request must get back.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// Any 4xx: the input is invalid by any reading (malformed JSON, wrong types, traversal).
    ClientError,
    /// Exactly this status (403 for a missing or wrong token).
    Status(u16),
    /// One of these statuses (a wrong method: 405, or 404 for `LIST`, whose trailing slash
    /// names a path no route declares, as in Vault).
    OneOf(&'static [u16]),
    /// Anything but a 5xx or a dropped connection (Vault itself accepts some of these).
    NotServerError,
}

/// One route from the OpenAPI document: the templated path and its operations.
struct Route {
    /// The OpenAPI path with regex debris removed, e.g. `/sys/leases/renew/{url_lease_id}`.
    template: String,
    /// The path exactly as the document spells it (for reports).
    advertised: String,
    unauthenticated: bool,
    /// `get`, `post`, `delete`, `list`, `patch` with each one's body schema, if declared.
    operations: Vec<(String, Option<Value>)>,
}

/// Turn the document's path keys into sendable templates. Vault-style optional groups such as
/// `renew(:/{id})` yield both the bare and the parameterised form; stray `)` are dropped (see
/// `openapi_paths_are_well_formed_templates`, which fails on them). A LIST operation is
/// advertised as Vault does, as a `get` with a `list` query parameter on the path plus a
/// trailing slash; it joins the route of the path without the slash as a `list` operation.
/// An advertised path without a LIST item's trailing slash, whether it is unauthenticated,
/// and its operations (name, input schema).
type AdvertisedItem = (String, bool, Vec<(String, Option<Value>)>);

fn routes_of(doc: &Value) -> Vec<Route> {
    let mut items: Vec<AdvertisedItem> = Vec::new();
    for (advertised, item) in doc["paths"].as_object().expect("paths object") {
        let operations = ["get", "post", "delete", "patch"]
            .iter()
            .filter(|op| item.get(**op).is_some())
            .map(|op| {
                let schema = item[*op]["requestBody"]["content"]
                    .as_object()
                    .and_then(|content| content.values().next())
                    .map(|media| media["schema"].clone());
                let lists = item[*op]["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == "list" && p["in"] == "query"));
                let name = if *op == "get" && lists { "list" } else { *op };
                (name.to_owned(), schema)
            });
        let unauthenticated = item["x-vault-unauthenticated"] == json!(true);
        let key = match advertised.strip_suffix('/') {
            Some(stripped) if !stripped.is_empty() => stripped,
            _ => advertised.as_str(),
        };
        match items.iter_mut().find(|(k, _, _)| k == key) {
            Some((_, unauth, ops)) => {
                *unauth |= unauthenticated;
                ops.extend(operations);
            }
            None => items.push((key.to_owned(), unauthenticated, operations.collect())),
        }
    }
    let mut routes = Vec::new();
    for (advertised, unauthenticated, operations) in items {
        let mut templates = Vec::new();
        if let Some((head, rest)) = advertised.split_once("(:") {
            let optional = rest.trim_end_matches(')');
            templates.push(head.to_owned());
            templates.push(format!("{head}{optional}"));
        } else {
            templates.push(advertised.replace(')', ""));
        }
        for template in templates {
            routes.push(Route {
                template,
                advertised: advertised.clone(),
                unauthenticated,
                operations: operations.clone(),
            });
        }
    }
    routes
}

/// Fill every `{param}` of `template` with `value`.
fn fill(template: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        match rest[start..].find('}') {
            Some(end) => {
                out.push_str(value);
                rest = &rest[start + end + 1..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The JSON type a schema property declares: `string`, `integer`, `boolean`, `array`,
/// `object`, `duration` (a `$ref` to Duration: string or number) or `unknown`.
fn declared_type(property: &Value) -> &'static str {
    let named = |name: &str| -> &'static str {
        match name {
            "string" => "string",
            "integer" | "number" => "integer",
            "boolean" => "boolean",
            "array" => "array",
            "object" => "object",
            _ => "unknown",
        }
    };
    match &property["type"] {
        Value::String(name) => return named(name),
        Value::Array(names) => {
            if let Some(name) = names
                .iter()
                .filter_map(Value::as_str)
                .find(|n| *n != "null")
            {
                return named(name);
            }
        }
        _ => {}
    }
    if let Some(variants) = property["anyOf"].as_array() {
        for variant in variants {
            if let Some(reference) = variant["$ref"].as_str() {
                return if reference.ends_with("/Duration") {
                    "duration"
                } else {
                    "object"
                };
            }
        }
    }
    "unknown"
}

/// Bodies that put a value of an impossible type into `property`: every reading of the
/// Vault API rejects these (`Expect::ClientError`), unlike the weak conversions Vault performs
/// (number → string, "true" → bool), which go in [`convertible_values`].
fn impossible_values(kind: &str) -> Vec<Value> {
    match kind {
        "string" => vec![json!({"nested": 1})],
        "integer" => vec![json!({"nested": 1}), json!("not-a-number")],
        "boolean" => vec![json!({"nested": 1}), json!("not-a-bool")],
        "array" => vec![json!({"nested": 1})],
        "object" => vec![json!(12345), json!(true)],
        "duration" => vec![json!({"nested": 1}), json!("not-a-duration")],
        _ => vec![],
    }
}

/// Other-typed values Vault's weak decoding may accept; they must only not break the server.
fn convertible_values(kind: &str) -> Vec<Value> {
    match kind {
        "string" => vec![json!(12345), json!(true)],
        "integer" => vec![json!(true), json!("12"), json!(-1)],
        "boolean" => vec![json!("true"), json!(1)],
        "array" => vec![json!(7), json!(false)],
        "object" => vec![json!("a=b")],
        "duration" => vec![json!(true), json!(-5)],
        _ => vec![json!(12345), json!(true), json!({"nested": 1})],
    }
}

/// Tallies and the failures the sweep found.
#[derive(Default)]
struct Sweep {
    routes: usize,
    operations: usize,
    requests: usize,
    /// Requests the server rejected by closing the connection early (not failures).
    closed_early: Vec<String>,
    failures: Vec<String>,
}

impl Sweep {
    fn check(&mut self, what: &str, answer: &Answer, expect: Expect) {
        self.requests += 1;
        if answer.closed_early {
            self.closed_early.push(what.to_owned());
            return;
        }
        let status = answer.status;
        let problem = if status == 0 {
            Some("no answer (connection failed)".to_owned())
        } else if status >= 500 {
            Some(format!("server error {status}"))
        } else {
            match expect {
                Expect::ClientError if !(400..500).contains(&status) => {
                    Some(format!("expected 4xx, got {status}"))
                }
                Expect::Status(want) if status != want => {
                    Some(format!("expected {want}, got {status}"))
                }
                Expect::OneOf(wanted) if !wanted.contains(&status) => {
                    Some(format!("expected one of {wanted:?}, got {status}"))
                }
                _ => None,
            }
        };
        let problem = problem.or_else(|| {
            ((400..500).contains(&status) && !answer.body["errors"].is_array())
                .then(|| format!("{status} without a JSON `errors` array"))
        });
        if let Some(problem) = problem {
            let mut text = answer.text.clone();
            text.truncate(300);
            self.failures.push(format!("{what}: {problem}: {text}"));
        }
    }
}

/// Everything the sweep must leave alone, read back as the `data` of each answer.
fn canary_snapshot(client: &RawClient, root: &str) -> Vec<(String, u16, Value)> {
    let reads: [(&str, &str); 17] = [
        ("GET", "secret/data/canary/app"),
        ("GET", "secret/metadata/canary/app"),
        ("GET", "secret/data/canary/other"),
        ("LIST", "secret/metadata/canary/"),
        ("GET", "kv1/canary/app"),
        ("LIST", "kv1/canary/"),
        ("GET", "cubbyhole/canary"),
        ("GET", "sys/policies/acl/canary-policy"),
        ("LIST", "sys/policies/acl/"),
        ("GET", "sys/mounts"),
        ("GET", "sys/auth"),
        ("GET", "auth/token/roles/canary-role"),
        ("GET", "auth/userpass/users/canary-user"),
        ("GET", "auth/approle/role/canary-role"),
        ("GET", "sys/leases/count"),
        ("LIST", "sys/leases/lookup/auth/token/create/"),
        ("GET", "sys/health"),
    ];
    reads
        .iter()
        .map(|(method, path)| {
            let answer = client.json(method, path, Some(root), None);
            let mut data = if *path == "sys/health" {
                json!({"sealed": answer.body["sealed"], "initialized": answer.body["initialized"]})
            } else {
                answer.body["data"].clone()
            };
            if *path == "auth/approle/role/canary-role" {
                // Stable across reads, but keep only configuration fields.
                if let Some(map) = data.as_object_mut() {
                    map.retain(|k, _| !k.starts_with("secret_id_prefix"));
                }
            }
            (format!("{method} {path}"), answer.status, data)
        })
        .collect()
}

/// Enable every engine, write the canary set, and return the tokens the sweep needs:
/// `(a child token used as the caller of revoke-self, the lease-holding canary token)`.
fn prepare(client: &RawClient, root: &str) -> (String, String) {
    let setup: Vec<(&str, &str, Value)> = vec![
        (
            "POST",
            "sys/mounts/kv1",
            json!({"type": "kv", "options": {"version": "1"}}),
        ),
        ("POST", "sys/auth/userpass", json!({"type": "userpass"})),
        ("POST", "sys/auth/approle", json!({"type": "approle"})),
        (
            "POST",
            "secret/data/canary/app",
            json!({"data": {"password": "canary-1"}}),
        ),
        (
            "POST",
            "secret/data/canary/app",
            json!({"data": {"password": "canary-2", "port": 5432}}),
        ),
        (
            "POST",
            "secret/data/canary/other",
            json!({"data": {"nested": {"a": [1, 2, 3]}}}),
        ),
        (
            "POST",
            "kv1/canary/app",
            json!({"user": "ann", "ttl": "1h"}),
        ),
        ("POST", "cubbyhole/canary", json!({"note": "mine"})),
        (
            "POST",
            "sys/policies/acl/canary-policy",
            json!({"policy": "path \"secret/data/canary/*\" { capabilities = [\"read\"] }"}),
        ),
        (
            "POST",
            "auth/token/roles/canary-role",
            json!({"allowed_policies": ["canary-policy"], "orphan": true, "token_ttl": "1h"}),
        ),
        (
            "POST",
            "auth/userpass/users/canary-user",
            json!({"password": "canary-pass", "token_policies": ["canary-policy"]}),
        ),
        (
            "POST",
            "auth/approle/role/canary-role",
            json!({"token_policies": ["canary-policy"], "secret_id_ttl": "10m"}),
        ),
    ];
    for (method, path, body) in &setup {
        let answer = client.json(method, path, Some(root), Some(body));
        assert!(
            (200..300).contains(&answer.status),
            "setup {method} {path}: {} {}",
            answer.status,
            answer.text
        );
    }
    let mut tokens = Vec::new();
    for body in [
        json!({"policies": ["root"], "ttl": "2h", "display_name": "sweep-self"}),
        json!({"policies": ["canary-policy"], "ttl": "1h", "display_name": "canary"}),
    ] {
        let answer = client.json("POST", "auth/token/create", Some(root), Some(&body));
        assert_eq!(answer.status, 200, "{}", answer.text);
        tokens.push(
            answer.body["auth"]["client_token"]
                .as_str()
                .expect("client_token")
                .to_owned(),
        );
    }
    let canary = tokens.pop().expect("canary token");
    let self_token = tokens.pop().expect("sweep-self token");
    (self_token, canary)
}

/// Revoke any token an accepted sweep request created, so lease counts compare equal.
fn revoke_created_tokens(client: &RawClient, root: &str, answer: &Answer) {
    if !(200..300).contains(&answer.status) {
        return;
    }
    for token in [
        &answer.body["auth"]["client_token"],
        &answer.body["wrap_info"]["token"],
    ] {
        if let Some(token) = token.as_str() {
            client.json(
                "POST",
                "auth/token/revoke",
                Some(root),
                Some(&json!({ "token": token })),
            );
        }
    }
}

/// `list` operations go out as the `LIST` verb; everything else as its HTTP method.
fn http_method(operation: &str) -> &'static str {
    match operation {
        "get" => "GET",
        "post" => "POST",
        "delete" => "DELETE",
        "list" => "LIST",
        "patch" => "PATCH",
        _ => "GET",
    }
}

#[test]
fn every_route_rejects_bad_input_without_server_errors_or_state_changes() {
    let server = TestServer::dev();
    let root = server.root_token().to_owned();
    let client = RawClient::new(&server);
    let (self_token, _canary_token) = prepare(&client, &root);
    let before = canary_snapshot(&client, &root);
    for (what, status, _) in &before {
        assert!(
            *status == 200 || what == "GET sys/health",
            "canary {what}: {status}"
        );
    }

    let doc = client.json("GET", "sys/internal/specs/openapi", None, None);
    assert_eq!(doc.status, 200);
    let routes = routes_of(&doc.body);
    let huge = "h".repeat(HUGE_STRING_BYTES);
    let mut sweep = Sweep::default();

    for route in &routes {
        sweep.routes += 1;
        let destructive = is_destructive_by_design(&route.template);
        let path = fill(&route.template, PLAUSIBLE_PARAM);
        // revoke-self revokes its caller: never let that be the root token.
        let caller = if route.template == "/auth/token/revoke-self" {
            self_token.as_str()
        } else {
            root.as_str()
        };
        let supported: Vec<&str> = route
            .operations
            .iter()
            .map(|(op, _)| http_method(op))
            .collect();

        for (op, schema) in &route.operations {
            sweep.operations += 1;
            let method = http_method(op);
            let label = |variant: &str| format!("{method} {path} [{variant}]");
            let is_mount_delete = method == "DELETE"
                && (route.template.starts_with("/sys/mounts/")
                    || route.template.starts_with("/sys/auth/"));
            let sends_body = matches!(method, "POST" | "PATCH" | "DELETE") && schema.is_some()
                || matches!(method, "POST" | "PATCH");

            // Bodies no reading of the API accepts.
            if sends_body {
                let first_property = schema
                    .as_ref()
                    .and_then(|s| s["properties"].as_object())
                    .and_then(|p| p.keys().next().cloned())
                    .unwrap_or_else(|| "sweep_field".to_owned());
                let mut invalid_utf8 = format!("{{\"{first_property}\": \"").into_bytes();
                invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
                invalid_utf8.extend_from_slice(b"\"}");
                let malformed: [(&str, Vec<u8>); 4] = [
                    ("malformed json", b"{not json".to_vec()),
                    (
                        "truncated json",
                        format!("{{\"{first_property}\": ").into_bytes(),
                    ),
                    ("json array", b"[1, 2, 3]".to_vec()),
                    ("invalid utf-8", invalid_utf8),
                ];
                let token = if destructive { "wrong-token" } else { caller };
                // Vault parses the body before it checks the token, so 400 and 403 both do.
                let expect = Expect::ClientError;
                if !is_mount_delete {
                    for (variant, bytes) in &malformed {
                        let answer = client.send(method, &path, Some(token), Some(bytes));
                        sweep.check(&label(variant), &answer, expect);
                        revoke_created_tokens(&client, &root, &answer);
                    }
                }
            }

            if destructive || is_mount_delete {
                continue;
            }

            // Per-property type confusion, empty strings and oversized values.
            if let Some(schema) = schema {
                let properties: Vec<(String, Value)> = match schema["properties"].as_object() {
                    Some(map) if !map.is_empty() => {
                        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
                    }
                    _ => vec![("sweep_field".to_owned(), json!({}))],
                };
                for (name, property) in &properties {
                    let kind = declared_type(property);
                    let mut sends: Vec<(String, Value, Expect)> = Vec::new();
                    for value in impossible_values(kind) {
                        sends.push((
                            format!("{name}: {kind} given {value}"),
                            value,
                            Expect::ClientError,
                        ));
                    }
                    for value in convertible_values(kind) {
                        sends.push((
                            format!("{name}: {kind} given {value}"),
                            value,
                            Expect::NotServerError,
                        ));
                    }
                    sends.push((
                        format!("{name}: empty string"),
                        json!(""),
                        Expect::NotServerError,
                    ));
                    sends.push((
                        format!("{name}: 1 MiB string"),
                        json!(huge.as_str()),
                        Expect::NotServerError,
                    ));
                    for (variant, value, expect) in sends {
                        let mut body = Map::new();
                        body.insert(name.clone(), value);
                        let answer =
                            client.json(method, &path, Some(caller), Some(&Value::Object(body)));
                        sweep.check(&label(&variant), &answer, expect);
                        revoke_created_tokens(&client, &root, &answer);
                    }
                }
            }

            // Path traversal in every parameter.
            if route.template.contains('{') {
                for param in TRAVERSAL_PARAMS {
                    let sneaky = fill(&route.template, param);
                    let body = matches!(method, "POST" | "PATCH").then(|| json!({}));
                    let answer = client.json(method, &sneaky, Some(caller), body.as_ref());
                    sweep.check(
                        &format!("{method} {sneaky} [traversal]"),
                        &answer,
                        Expect::ClientError,
                    );
                    revoke_created_tokens(&client, &root, &answer);
                }
            }
        }

        // Methods the route does not declare.
        for wrong in ["GET", "POST", "DELETE", "PATCH", "LIST", "FROB"] {
            if supported.contains(&wrong) {
                continue;
            }
            let token = if destructive { "wrong-token" } else { caller };
            let expect = if destructive {
                Expect::ClientError
            } else if wrong == "LIST" {
                Expect::OneOf(&[404, 405])
            } else {
                Expect::Status(405)
            };
            let body = matches!(wrong, "POST" | "PATCH").then(|| json!({}));
            let answer = client.json(wrong, &path, Some(token), body.as_ref());
            sweep.check(&format!("{wrong} {path} [wrong method]"), &answer, expect);
            revoke_created_tokens(&client, &root, &answer);
        }

        // No token and a wrong token, on every declared operation.
        for (op, _) in &route.operations {
            let method = http_method(op);
            if destructive && route.unauthenticated {
                // Unauthenticated by design (init, unseal, rekey): a missing token proves nothing
                // and the call would act.
                continue;
            }
            let expect = if route.unauthenticated {
                Expect::NotServerError
            } else {
                Expect::Status(403)
            };
            let body = matches!(method, "POST" | "PATCH").then(|| json!({}));
            for (variant, token) in [
                ("no token", None),
                ("wrong token", Some("s.not-a-real-token")),
            ] {
                let answer = client.json(method, &path, token, body.as_ref());
                sweep.check(&format!("{method} {path} [{variant}]"), &answer, expect);
                revoke_created_tokens(&client, &root, &answer);
            }
        }

        let health = client.json("GET", "sys/health", None, None);
        assert_eq!(
            health.status, 200,
            "server unhealthy after sweeping {} ({}): {}",
            route.template, route.advertised, health.text
        );
    }

    let after = canary_snapshot(&client, &root);
    let mut changed = Vec::new();
    for ((what, status_before, data_before), (_, status_after, data_after)) in
        before.iter().zip(&after)
    {
        if status_before != status_after || data_before != data_after {
            changed.push(format!(
                "{what}: before {status_before} {data_before}\n   after {status_after} {data_after}"
            ));
        }
    }

    eprintln!(
        "bad-input sweep: {} routes, {} operations, {} requests sent, {} closed early, {} failures, {} canary reads changed",
        sweep.routes,
        sweep.operations,
        sweep.requests,
        sweep.closed_early.len(),
        sweep.failures.len(),
        changed.len()
    );
    for request in &sweep.closed_early {
        eprintln!("  closed early (healthy server, connection closed before the body was read): {request}");
    }
    for failure in sweep.failures.iter().take(80) {
        eprintln!("  FAIL {failure}");
    }
    for change in &changed {
        eprintln!("  CHANGED {change}");
    }
    assert!(
        sweep.routes >= 80,
        "the OpenAPI document lists every engine's routes"
    );
    assert!(
        sweep.failures.is_empty(),
        "{} bad-input requests were mishandled (listed above)",
        sweep.failures.len()
    );
    assert!(
        changed.is_empty(),
        "the sweep changed stored state (listed above)"
    );
}

/// The document is one an OpenAPI tool can use as is (the API fuzzer in tests/fuzz_api found
/// both problems): every `$ref` resolves inside it (input schemas' `$defs` used to stay inside
/// each request body, where `#/$defs/...` points at nothing), and LIST is a `get` that requires
/// `list=true` on the path with a trailing slash, as in Vault's document, since OpenAPI has no
/// `list` method (tools dropped those operations).
#[test]
fn openapi_refs_resolve_and_list_operations_are_gets() {
    let server = TestServer::dev();
    let root = server.root_token().to_owned();
    let client = RawClient::new(&server);
    assert_eq!(
        client
            .json(
                "POST",
                "sys/auth/userpass",
                Some(&root),
                Some(&json!({"type": "userpass"}))
            )
            .status,
        204
    );
    let doc = client
        .json("GET", "sys/internal/specs/openapi", None, None)
        .body;
    assert_eq!(
        doc["openapi"], "3.1.0",
        "input schemas are JSON Schema 2020-12"
    );

    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                assert!(
                    !map.contains_key("$defs"),
                    "definitions belong in components"
                );
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc["paths"], &mut all);
    refs(&doc["components"], &mut all);
    assert!(all.iter().any(|r| r.ends_with("/WriteOptions")), "{all:?}");
    for reference in &all {
        let pointer = reference.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "unresolvable {reference}");
    }

    let paths = doc["paths"].as_object().expect("paths");
    for (path, item) in paths {
        assert!(item.get("list").is_none(), "{path} has a `list` method");
    }
    for listed in [
        "/secret/metadata/{path}/",
        "/sys/policies/acl/",
        "/auth/userpass/users/",
    ] {
        let params = &paths[listed]["get"]["parameters"];
        assert_eq!(
            params,
            &json!([{"name": "list", "in": "query", "required": true,
                     "schema": {"type": "string", "enum": ["true"]}}]),
            "{listed}"
        );
    }
    assert!(paths["/secret/metadata/{path}"]["get"]["parameters"].is_null());
    // The LIST item still declares its path parameter.
    assert_eq!(
        paths["/secret/metadata/{path}/"]["parameters"][0]["name"],
        "path"
    );
}

/// Every OpenAPI path is a plain template: `/segment/{param}/segment`, with no regex debris
/// such as `)` or `(:` left over from the route patterns. Vault's document lists
/// `/auth/userpass/users/{username}` and `/sys/leases/renew/{url_lease_id}`.
#[test]
fn openapi_paths_are_well_formed_templates() {
    let server = TestServer::dev();
    let root = server.root_token().to_owned();
    let client = RawClient::new(&server);
    for (path, body) in [
        ("sys/auth/userpass", json!({"type": "userpass"})),
        ("sys/auth/approle", json!({"type": "approle"})),
    ] {
        assert_eq!(
            client.json("POST", path, Some(&root), Some(&body)).status,
            204
        );
    }
    let doc = client.json("GET", "sys/internal/specs/openapi", None, None);
    let malformed: Vec<&String> = doc.body["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|path| {
            let mut depth = 0i32;
            let balanced = path.chars().all(|c| {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                (0..=1).contains(&depth)
            }) && depth == 0;
            !balanced || path.contains(['(', ')', ':', '?', '*', '$', '^'])
        })
        .collect();
    assert!(
        malformed.is_empty(),
        "OpenAPI paths with regex debris: {malformed:?}"
    );
}
