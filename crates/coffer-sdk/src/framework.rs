//! Engines are declarations. A [`Backend`] is a list of [`PathSpec`]s: a path pattern, the
//! operations it supports with a typed input each, an optional existence check, and help text.
//! Routing, input validation (a wrong type is a 400 before the handler runs), unknown-field
//! warnings, `path-help` and the OpenAPI document are all derived from that one declaration.

use crate::clock::Clock;
pub use crate::host::{BoxFuture, MountInfo};
use crate::logical::{Operation, Request, Response};
use crate::view::View;
use crate::{Error, Result};
use regex::Regex;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};

/// An operation handler.
pub type HandlerFn = Arc<dyn Fn(Ctx) -> BoxFuture<Result<Response>> + Send + Sync>;
/// An existence check: does the target of a write already exist (update) or not (create)?
pub type ExistenceFn = Arc<dyn Fn(Ctx) -> BoxFuture<Result<bool>> + Send + Sync>;

/// Everything a handler gets: the request, its mount's storage view, the clock, the mount,
/// and the named captures of the path pattern.
#[derive(Clone)]
pub struct Ctx {
    pub request: Request,
    pub view: Arc<dyn View>,
    pub clock: Arc<dyn Clock>,
    /// Shared with every request to the mount (not copied per request).
    pub mount: Arc<MountInfo>,
    pub params: Params,
    /// Where this request records rollback entries (see [`crate::engine`]); `None` where the
    /// host keeps no log (engine unit tests).
    pub rollback_log: Option<Arc<dyn crate::host::RollbackLog>>,
}

impl Ctx {
    /// A context for `request` on a mount; path captures are filled in by routing.
    pub fn new(
        request: Request,
        view: Arc<dyn View>,
        clock: Arc<dyn Clock>,
        mount: Arc<MountInfo>,
    ) -> Ctx {
        Ctx {
            request,
            view,
            clock,
            mount,
            params: Params::default(),
            rollback_log: None,
        }
    }

    /// A named capture of the path pattern ("" when absent).
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).unwrap_or("")
    }

    /// The request's rollback log: record an entry before an external side effect.
    pub fn rollback(&self) -> Result<&dyn crate::host::RollbackLog> {
        self.rollback_log
            .as_deref()
            .ok_or_else(|| Error::Internal("this host keeps no rollback log".into()))
    }

    /// What lifecycle hooks see of this context.
    pub fn mount_ctx(&self) -> crate::host::MountCtx {
        crate::host::MountCtx {
            view: self.view.clone(),
            clock: self.clock.clone(),
            mount: self.mount.clone(),
        }
    }
}

/// One operation on a path.
#[derive(Clone)]
pub struct OperationSpec {
    pub operation: Operation,
    pub summary: &'static str,
    /// JSON schema of the input, when typed.
    pub input_schema: Option<Arc<Value>>,
    pub handler: HandlerFn,
}

/// One path pattern of an engine.
#[derive(Clone)]
pub struct PathSpec {
    /// Regular expression (anchored when compiled) with named captures, e.g. `data/(?P<path>.+)`.
    pub pattern: String,
    pub operations: Vec<OperationSpec>,
    pub existence_check: Option<ExistenceFn>,
    /// No token needed (e.g. `sys/seal-status`, logins).
    pub unauthenticated: bool,
    /// Needs `sudo` on top of the operation's capability (Vault's root-protected paths).
    pub sudo: bool,
    /// Operations that need `sudo` although the path as a whole does not.
    pub sudo_operations: Vec<Operation>,
    pub synopsis: &'static str,
    pub description: &'static str,
}

impl PathSpec {
    /// A path with no operations yet.
    pub fn new(pattern: impl Into<String>) -> PathSpec {
        PathSpec {
            pattern: pattern.into(),
            operations: Vec::new(),
            existence_check: None,
            unauthenticated: false,
            sudo: false,
            sudo_operations: Vec::new(),
            synopsis: "",
            description: "",
        }
    }

    /// Help text.
    pub fn help(mut self, synopsis: &'static str, description: &'static str) -> PathSpec {
        self.synopsis = synopsis;
        self.description = description;
        self
    }

    /// Mark as not needing a token.
    pub fn unauthenticated(mut self) -> PathSpec {
        self.unauthenticated = true;
        self
    }

    /// Mark as needing `sudo`.
    pub fn sudo(mut self) -> PathSpec {
        self.sudo = true;
        self
    }

    /// Mark one operation as needing `sudo` (e.g. listing leases, but not looking one up).
    pub fn sudo_for(mut self, operation: Operation) -> PathSpec {
        self.sudo_operations.push(operation);
        self
    }

    /// Whether `operation` on this path needs `sudo`.
    pub fn needs_sudo(&self, operation: Operation) -> bool {
        self.sudo || self.sudo_operations.contains(&operation)
    }

    /// An operation whose handler reads the raw request itself (reads, deletes, lists).
    pub fn op<F, Fut>(mut self, operation: Operation, summary: &'static str, f: F) -> PathSpec
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        let handler: HandlerFn = Arc::new(move |ctx| Box::pin(f(ctx)));
        self.operations.push(OperationSpec {
            operation,
            summary,
            input_schema: None,
            handler,
        });
        self
    }

    /// An operation with a typed input `T`, deserialised from the request data. A field of the
    /// wrong type is a 400 naming the field; fields `T` does not know produce Vault's
    /// "Endpoint ignored these unrecognized parameters" warning. Register the same input for
    /// several operations with [`PathSpec::typed_ops`].
    pub fn typed<T, F, Fut>(self, operation: Operation, summary: &'static str, f: F) -> PathSpec
    where
        T: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(Ctx, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        self.typed_ops::<T, F, Fut>(&[operation], summary, f)
    }

    /// Like [`PathSpec::typed`], for several operations sharing one handler (create + update).
    pub fn typed_ops<T, F, Fut>(
        mut self,
        operations: &[Operation],
        summary: &'static str,
        f: F,
    ) -> PathSpec
    where
        T: DeserializeOwned + JsonSchema + Send + 'static,
        F: Fn(Ctx, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response>> + Send + 'static,
    {
        let schema = input_schema::<T>();
        let known: Option<Vec<String>> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| props.keys().cloned().collect());
        let f = Arc::new(f);
        let handler: HandlerFn = Arc::new(move |mut ctx: Ctx| {
            let data = std::mem::take(&mut ctx.request.data);
            let unknown: Vec<String> = match &known {
                Some(known) => data
                    .keys()
                    .filter(|k| !known.contains(k))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            // Keep the raw fields available to the handler too (e.g. for merge-patch).
            ctx.request.data = data.clone();
            match decode_input::<T>(data) {
                Err(e) => Box::pin(async move { Err(e) }),
                Ok(input) => {
                    let fut = f(ctx, input);
                    Box::pin(async move {
                        let mut resp = fut.await?;
                        if !unknown.is_empty() {
                            resp.warnings.push(format!(
                                "Endpoint ignored these unrecognized parameters: [{}]",
                                unknown.join(" ")
                            ));
                        }
                        Ok(resp)
                    })
                }
            }
        });
        for &operation in operations {
            self.operations.push(OperationSpec {
                operation,
                summary,
                input_schema: Some(schema.clone()),
                handler: handler.clone(),
            });
        }
        self
    }

    /// Declare how to tell create from update for writes on this path.
    pub fn existence<F, Fut>(mut self, f: F) -> PathSpec
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool>> + Send + 'static,
    {
        self.existence_check = Some(Arc::new(move |ctx| Box::pin(f(ctx))));
        self
    }

    /// The handler for `operation`; a `Create` falls back to the `Update` handler and vice
    /// versa, as Vault does for paths that register only one of them.
    pub fn handler_for(&self, operation: Operation) -> Option<&OperationSpec> {
        let find = |op: Operation| self.operations.iter().find(|o| o.operation == op);
        find(operation).or_else(|| match operation {
            Operation::Create => find(Operation::Update),
            Operation::Update => find(Operation::Create),
            _ => None,
        })
    }

    /// The OpenAPI path templates of this pattern: named captures become `{name}`, each
    /// optional group `(?:...)?` yields a path with and one without it, and the remaining regex
    /// syntax (anchors, optional trailing slash) is dropped.
    pub fn openapi_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = expand_optional_groups(&self.pattern)
            .iter()
            .map(|variant| template_captures(variant))
            .collect();
        out.dedup();
        out
    }

    /// The first of [`PathSpec::openapi_paths`].
    pub fn openapi_path(&self) -> String {
        self.openapi_paths().into_iter().next().unwrap_or_default()
    }
}

/// Index of the `)` closing the group that opens at `open`, skipping escapes and classes.
fn closing_paren(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    let mut in_class = false;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 1,
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '(' if !in_class => depth += 1,
            ')' if !in_class => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Every variant of a pattern with each top-level `(?:...)?` group present or absent.
fn expand_optional_groups(pattern: &str) -> Vec<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i] == '(' && chars.get(i + 1) == Some(&'?') && chars.get(i + 2) == Some(&':') {
            if let Some(close) = closing_paren(&chars, i) {
                if chars.get(close + 1) == Some(&'?') {
                    let before: String = chars[..i].iter().collect();
                    let inner: String = chars[i + 3..close].iter().collect();
                    let after: String = chars[close + 2..].iter().collect();
                    let mut out = Vec::new();
                    for tail in expand_optional_groups(&after) {
                        out.push(format!("{before}{tail}"));
                        for middle in expand_optional_groups(&inner) {
                            out.push(format!("{before}{middle}{tail}"));
                        }
                    }
                    return out;
                }
            }
        }
        i += 1;
    }
    vec![pattern.to_string()]
}

/// Named captures to `{name}`; other regex syntax removed.
fn template_captures(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let rest: String = chars[i..chars.len().min(i + 4)].iter().collect();
        if rest == "(?P<" {
            let name_end = chars[i..].iter().position(|&c| c == '>').map(|p| p + i);
            let close = closing_paren(&chars, i);
            if let (Some(name_end), Some(close)) = (name_end, close) {
                out.push('{');
                out.extend(&chars[i + 4..name_end]);
                out.push('}');
                i = close + 1;
                if chars.get(i) == Some(&'?') {
                    i += 1;
                }
                continue;
            }
        }
        match chars[i] {
            '^' | '$' => {}
            '?' => {
                // `x?`: an optional character; a path template keeps the text without it.
                if out.ends_with('/') {
                    out.pop();
                }
            }
            '\\' => {
                if let Some(&next) = chars.get(i + 1) {
                    out.push(next);
                }
                i += 1;
            }
            c => out.push(c),
        }
        i += 1;
    }
    while out.ends_with('/') {
        out.pop();
    }
    out
}

/// Decode request fields into a typed input. A wrong value is a 400 naming the field by its
/// path (`options.cas`). What the message may repeat of the submitted value follows the rule
/// in ARCHITECTURE.md (Invariants, "Bad input changes nothing"):
///
/// - serde's own messages never repeat it (a value in the wrong field may be a secret);
/// - a field decoder may quote, with `{:?}`, a short value of a non-secret kind to help the
///   user (`de::opt_duration` quotes the duration text);
/// - for a secret-bearing field ([`is_secret_field`]), and for an error no field can be blamed
///   for (a flattened input), nothing quoted survives, whatever the decoder said.
pub fn decode_input<T: DeserializeOwned>(data: Map<String, Value>) -> Result<T> {
    let value = Value::Object(data);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = scrub_values(&e.into_inner().to_string());
        if path == "." || path.is_empty() {
            Error::bad(format!("invalid request: {}", hide_quoted(&inner)))
        } else if path_is_secret(&path) {
            Error::bad(format!(
                "invalid value for field \"{path}\": {}",
                hide_quoted(&inner)
            ))
        } else {
            Error::bad(format!("invalid value for field \"{path}\": {inner}"))
        }
    })
}

/// Whether a request field carries a secret, by its name: passwords, tokens, secret IDs, keys
/// (unseal, recovery and private keys), JWTs, client secrets, nonces, custom token IDs (`id`)
/// and secret data (`data`). Accessors, role IDs, names and `*_ttl`/`*_file` settings are not
/// secrets.
pub fn is_secret_field(name: &str) -> bool {
    const NAMES: [&str; 11] = [
        "password",
        "token",
        "secret",
        "secret_id",
        "key",
        "keys",
        "jwt",
        "id",
        "nonce",
        "data",
        "otp",
    ];
    const SUFFIXES: [&str; 6] = [
        "_password",
        "_token",
        "_secret",
        "_secret_id",
        "_key",
        "_jwt",
    ];
    let name = name.to_ascii_lowercase();
    NAMES.contains(&name.as_str()) || SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

/// Whether any segment of a serde path (`data.password`, `keys[0]`) names a secret.
fn path_is_secret(path: &str) -> bool {
    path.split(['.', '[', ']'])
        .filter(|segment| !segment.is_empty())
        .any(is_secret_field)
}

/// Remove submitted values from serde messages: `invalid type: string "hunter2"` → `a string`,
/// ``invalid type: integer `12345` `` → `an integer`, ``unknown variant `x` `` → `unknown
/// variant`. A value in the wrong field may be a secret.
fn scrub_values(msg: &str) -> String {
    static QUOTED: OnceLock<Regex> = OnceLock::new();
    static TICKED: OnceLock<Regex> = OnceLock::new();
    static VARIANT: OnceLock<Regex> = OnceLock::new();
    let quoted = QUOTED
        .get_or_init(|| Regex::new(r#"(string|value) "(?:[^"\\]|\\.)*""#).expect("static regex"));
    let ticked = TICKED.get_or_init(|| {
        Regex::new(r"(integer|floating point|boolean|character|value) `[^`]*`")
            .expect("static regex")
    });
    let variant =
        VARIANT.get_or_init(|| Regex::new(r"unknown variant `[^`]*`").expect("static regex"));
    let msg = quoted.replace_all(msg, "a $1");
    let msg = ticked.replace_all(&msg, |caps: &regex::Captures<'_>| match &caps[1] {
        "integer" => "an integer".to_string(),
        kind => format!("a {kind}"),
    });
    variant.replace_all(&msg, "unknown variant").into_owned()
}

/// Replace every quoted span (`"..."` or `` `...` ``, an unterminated one to the end) by
/// `(value hidden)`, except a field name (`` missing field `token` ``).
fn hide_quoted(msg: &str) -> String {
    static QUOTED: OnceLock<Regex> = OnceLock::new();
    let quoted = QUOTED.get_or_init(|| {
        Regex::new(r#"(field )?(?:"(?:[^"\\]|\\.)*"?|`[^`]*`?)"#).expect("static regex")
    });
    quoted
        .replace_all(msg, |caps: &regex::Captures<'_>| match caps.get(1) {
            Some(_) => caps[0].to_string(),
            None => "(value hidden)".to_string(),
        })
        .into_owned()
}

/// An auth method's check, run when a token it issued is renewed: does the login still hold
/// (the role still exists, the same certificate is presented...)? An error refuses the renewal.
pub type LoginRenewFn =
    Arc<dyn Fn(Ctx, crate::logical::LoginRenewal) -> BoxFuture<Result<()>> + Send + Sync>;

/// Revokes one leased secret; gets the lease's internal data.
pub type RevokeFn = Arc<dyn Fn(Ctx, Map<String, Value>) -> BoxFuture<Result<()>> + Send + Sync>;
/// Checks that a leased secret may be extended (e.g. the database user still exists).
pub type RenewFn = Arc<dyn Fn(Ctx, Map<String, Value>) -> BoxFuture<Result<()>> + Send + Sync>;

/// A kind of leased secret an engine issues, with its lifecycle callbacks. The lease manager
/// calls them; engines never track expiry themselves.
#[derive(Clone)]
pub struct SecretType {
    pub name: &'static str,
    pub revoke: RevokeFn,
    /// `None` = leases of this type cannot be renewed.
    pub renew: Option<RenewFn>,
}

impl SecretType {
    /// A secret type with a revoke callback.
    pub fn new<F, Fut>(name: &'static str, revoke: F) -> SecretType
    where
        F: Fn(Ctx, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        SecretType {
            name,
            revoke: Arc::new(move |ctx, data| Box::pin(revoke(ctx, data))),
            renew: None,
        }
    }

    /// Allow renewal, checked by `renew`.
    pub fn renewable<F, Fut>(mut self, renew: F) -> SecretType
    where
        F: Fn(Ctx, Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.renew = Some(Arc::new(move |ctx, data| Box::pin(renew(ctx, data))));
        self
    }
}

/// The named captures of a matched path pattern, in pattern order. A pattern has a capture or
/// two, so a short list searched in order serves better than a hash map, which allocated a
/// table and hashed each name on every request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The capture called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Set the capture called `name`, replacing an earlier value.
    pub fn insert(&mut self, name: String, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => *v = value,
            None => self.0.push((name, value)),
        }
    }

    /// Every capture, in pattern order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many captures there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::ops::Index<&str> for Params {
    type Output = String;

    /// The capture called `name`; panics when there is none (as a map's index does).
    fn index(&self, name: &str) -> &String {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no path capture called {name:?}"))
    }
}

impl<'a> IntoIterator for &'a Params {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;

    /// Every capture as (name, value), in pattern order, as a map's iteration gives them.
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(name, value)| (name, value))
    }
}

impl FromIterator<(String, String)> for Params {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Params {
        let mut params = Params::default();
        for (name, value) in iter {
            params.insert(name, value);
        }
        params
    }
}

/// A resolved route: which path spec matched and its captures.
pub struct Route<'a> {
    pub spec: &'a PathSpec,
    pub params: Params,
}

impl<'a> Route<'a> {
    /// Hand the captures to `ctx`, turn an update of something that does not exist yet into a
    /// create (Vault's rule, by the path's existence check), and pick the operation's handler.
    pub async fn resolve(self, ctx: &mut Ctx) -> Result<&'a OperationSpec> {
        ctx.params = self.params;
        if ctx.request.operation == Operation::Update {
            if let Some(check) = &self.spec.existence_check {
                if !check(ctx.clone()).await? {
                    ctx.request.operation = Operation::Create;
                }
            }
        }
        self.spec
            .handler_for(ctx.request.operation)
            .ok_or(Error::UnsupportedOperation)
    }
}

/// An engine: its type name, help, and path declarations, compiled for routing.
pub struct Backend {
    pub kind: &'static str,
    pub help: &'static str,
    /// Hooks, rollback and jobs the host runs around the paths.
    pub lifecycle: crate::host::Lifecycle,
    secret_types: Vec<SecretType>,
    login_renewal: Option<LoginRenewFn>,
    paths: Vec<PathSpec>,
    matchers: Vec<Matcher>,
}

/// A compiled path pattern: the literal text every match must start with (a cheap filter),
/// and the anchored regex.
struct Matcher {
    literal_prefix: String,
    regex: Regex,
    /// Set when the pattern is its literal prefix followed by one capture of the rest
    /// (`data/(?P<path>.+)`), the shape of most secret paths: matched without the regex.
    rest: Option<RestCapture>,
}

/// The named capture that takes the rest of a path, as `(?P<name>.+)` or `(?P<name>.*)`.
struct RestCapture {
    name: String,
    /// `.*` rather than `.+`.
    may_be_empty: bool,
}

impl RestCapture {
    /// Recognise `(?P<name>.+)` / `(?P<name>.*)` (nothing else) as the part of a pattern
    /// after its literal prefix.
    fn parse(after_prefix: &str) -> Option<RestCapture> {
        let inner = after_prefix.strip_prefix("(?P<")?;
        let (name, tail) = inner.split_once('>')?;
        let may_be_empty = match tail {
            ".+)" => false,
            ".*)" => true,
            _ => return None,
        };
        let plain_name = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit();
        plain_name.then(|| RestCapture {
            name: name.to_string(),
            may_be_empty,
        })
    }

    /// What the regex would capture of `rest` (the path after the literal prefix): all of it,
    /// when it is long enough and has no line break (`.` stops at `\n`).
    fn capture<'p>(&self, rest: &'p str) -> Option<&'p str> {
        let long_enough = self.may_be_empty || !rest.is_empty();
        (long_enough && !rest.contains('\n')).then_some(rest)
    }
}

/// The literal text a pattern starts with, up to its first regex syntax.
fn literal_prefix(pattern: &str) -> String {
    let end = pattern
        .find(|c: char| ".^$*+?()[]{}|\\".contains(c))
        .unwrap_or(pattern.len());
    let prefix = &pattern[..end];
    // A quantifier binds to the character before it (`roles/?`): that character is optional.
    match pattern[end..].chars().next() {
        Some('?' | '*' | '{') => prefix[..prefix.len().saturating_sub(1)].to_string(),
        _ => prefix.to_string(),
    }
}

/// The JSON schema of input type `T`, generated once per process. Every mount builds its
/// engine, and generating the schema of each typed operation again cost more than the rest of
/// a mount (measured in the pipeline fuzz target, which remounts on every input).
fn input_schema<T: JsonSchema + 'static>() -> Arc<Value> {
    static SCHEMAS: OnceLock<Mutex<HashMap<std::any::TypeId, Arc<Value>>>> = OnceLock::new();
    let cache = SCHEMAS.get_or_init(Default::default);
    let id = std::any::TypeId::of::<T>();
    if let Some(schema) = cache.lock().expect("schema cache").get(&id) {
        return schema.clone();
    }
    let schema = Arc::new(schemars::schema_for!(T).to_value());
    cache
        .lock()
        .expect("schema cache")
        .insert(id, schema.clone());
    schema
}

/// The compiled, anchored regex of a path pattern, compiled once per process.
///
/// Every mount builds its engine's `Backend`, and compiling an engine's patterns costs far more
/// than anything else in a mount (an AppRole backend's took ~1 ms). Patterns are code, so the
/// cache holds at most the patterns the engines declare; a `Regex` clone shares the compiled
/// program.
fn compiled_pattern(pattern: &str) -> Regex {
    static COMPILED: OnceLock<Mutex<HashMap<String, Regex>>> = OnceLock::new();
    let cache = COMPILED.get_or_init(Default::default);
    if let Some(regex) = cache.lock().expect("pattern cache").get(pattern) {
        return regex.clone();
    }
    let regex = Regex::new(&format!("^(?:{pattern})$")).expect("engine path patterns must compile");
    cache
        .lock()
        .expect("pattern cache")
        .insert(pattern.to_string(), regex.clone());
    regex
}

impl Backend {
    /// Compile the declarations. Panics on an invalid pattern: patterns are code, not input.
    pub fn new(kind: &'static str, help: &'static str, paths: Vec<PathSpec>) -> Backend {
        let matchers = paths.iter().map(|p| Matcher::new(&p.pattern)).collect();
        Backend {
            kind,
            help,
            lifecycle: crate::host::Lifecycle::default(),
            secret_types: Vec::new(),
            login_renewal: None,
            paths,
            matchers,
        }
    }

    /// Declare a kind of leased secret this engine issues.
    pub fn with_secret_type(mut self, secret_type: SecretType) -> Backend {
        self.secret_types.push(secret_type);
        self
    }

    /// Declare the check an auth method runs when one of its tokens is renewed.
    pub fn with_login_renewal<F, Fut>(mut self, check: F) -> Backend
    where
        F: Fn(Ctx, crate::logical::LoginRenewal) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        self.login_renewal = Some(Arc::new(move |ctx, renewal| Box::pin(check(ctx, renewal))));
        self
    }

    /// The auth method's renewal check, if it declared one.
    pub fn login_renewal(&self) -> Option<&LoginRenewFn> {
        self.login_renewal.as_ref()
    }

    /// The declared secret type called `name`.
    pub fn secret_type(&self, name: &str) -> Option<&SecretType> {
        self.secret_types.iter().find(|t| t.name == name)
    }

    /// Every declared path.
    pub fn paths(&self) -> &[PathSpec] {
        &self.paths
    }

    /// The whole of dispatch for a host without a pipeline (test harnesses, fuzz targets):
    /// route `ctx.request.path`, resolve create/update, run the handler. The pipeline runs the
    /// same steps ([`Backend::route`], [`Route::resolve`]) with its checks between them.
    pub async fn dispatch(&self, mut ctx: Ctx) -> Result<Response> {
        let route = self
            .route(&ctx.request.path)
            .ok_or_else(|| Error::UnsupportedPath(ctx.request.path.clone()))?;
        let handler = route.resolve(&mut ctx).await?.handler.clone();
        handler(ctx).await
    }

    /// Find the first declared path that matches `path` (relative to the mount).
    pub fn route(&self, path: &str) -> Option<Route<'_>> {
        self.matchers.iter().enumerate().find_map(|(index, m)| {
            Some(Route {
                spec: &self.paths[index],
                params: m.params(path)?,
            })
        })
    }
}

impl Matcher {
    fn new(pattern: &str) -> Matcher {
        let literal_prefix = literal_prefix(pattern);
        Matcher {
            rest: RestCapture::parse(&pattern[literal_prefix.len()..]),
            regex: compiled_pattern(pattern),
            literal_prefix,
        }
    }

    /// The named captures of `path`, or `None` when it does not match.
    fn params(&self, path: &str) -> Option<Params> {
        let rest = path.strip_prefix(self.literal_prefix.as_str())?;
        match &self.rest {
            Some(capture) => {
                let value = capture.capture(rest)?;
                Some(Params(vec![(capture.name.clone(), value.to_string())]))
            }
            None => self.regex_params(path),
        }
    }

    /// The named captures as the regex finds them.
    fn regex_params(&self, path: &str) -> Option<Params> {
        let caps = self.regex.captures(path)?;
        Some(
            self.regex
                .capture_names()
                .flatten()
                .filter_map(|name| {
                    caps.name(name)
                        .map(|v| (name.to_string(), v.as_str().to_string()))
                })
                .collect(),
        )
    }
}

/// Lenient field decoders for values Vault accepts as strings or numbers (query parameters
/// always arrive as strings).
pub mod de {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(serde_json::Number),
        Bool(bool),
        Str(String),
    }

    /// `Option<u64>` from `5` or `"5"`.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<NumOrStr>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrStr::Num(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("expected a non-negative integer")),
            Some(NumOrStr::Str(s)) if s.is_empty() => Ok(None),
            Some(NumOrStr::Str(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom("expected a non-negative integer")),
            Some(NumOrStr::Bool(_)) => {
                Err(serde::de::Error::custom("expected a non-negative integer"))
            }
        }
    }

    /// `Option<i64>` from `-5` or `"-5"`.
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<NumOrStr>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrStr::Num(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("expected an integer")),
            Some(NumOrStr::Str(s)) if s.is_empty() => Ok(None),
            Some(NumOrStr::Str(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom("expected an integer")),
            Some(NumOrStr::Bool(_)) => Err(serde::de::Error::custom("expected an integer")),
        }
    }

    /// `Option<bool>` from `true`, `"true"`, `1`, `"1"`.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Option::<NumOrStr>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrStr::Bool(b)) => Ok(Some(b)),
            Some(NumOrStr::Num(n)) => match n.as_u64() {
                Some(0) => Ok(Some(false)),
                Some(1) => Ok(Some(true)),
                _ => Err(serde::de::Error::custom("expected a boolean")),
            },
            Some(NumOrStr::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "t" => Ok(Some(true)),
                "false" | "0" | "f" => Ok(Some(false)),
                _ => Err(serde::de::Error::custom("expected a boolean")),
            },
        }
    }

    /// `Option<Duration>` from seconds (`3600`, `"3600"`) or a duration string (`"1h"`).
    pub fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<NumOrStr>::deserialize(d)? {
            None => Ok(None),
            Some(NumOrStr::Num(n)) => {
                n.as_u64()
                    .map(|s| Some(Duration::from_secs(s)))
                    .ok_or_else(|| {
                        serde::de::Error::custom("expected a non-negative number of seconds")
                    })
            }
            Some(NumOrStr::Str(s)) if s.is_empty() => Ok(None),
            Some(NumOrStr::Str(s)) => crate::duration::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            Some(NumOrStr::Bool(_)) => Err(serde::de::Error::custom("expected a duration")),
        }
    }

    /// `Vec<String>` from `["a","b"]` or `"a,b"` (Vault's comma-string form).
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum ListOrStr {
            List(Vec<String>),
            Str(String),
        }
        Ok(match Option::<ListOrStr>::deserialize(d)? {
            None => Vec::new(),
            Some(ListOrStr::List(v)) => v,
            Some(ListOrStr::Str(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Strict {
        name: String,
    }

    #[derive(Deserialize, JsonSchema)]
    struct Input {
        #[serde(default, deserialize_with = "de::opt_u64")]
        count: Option<u64>,
    }

    fn backend() -> Backend {
        Backend::new(
            "test",
            "",
            vec![
                PathSpec::new("config").op(Operation::Read, "read config", |_ctx| async {
                    Ok(Response::data(serde_json::json!({"a": 1})))
                }),
                PathSpec::new("data/(?P<path>.+)").typed(
                    Operation::Update,
                    "write",
                    |ctx: Ctx, input: Input| async move {
                        Ok(Response::data(
                            serde_json::json!({"path": ctx.param("path"), "count": input.count}),
                        ))
                    },
                ),
            ],
        )
    }

    fn ctx(op: Operation, path: &str, data: Value) -> Ctx {
        Ctx {
            request: Request::new(op, path).with_data(data),
            view: Arc::new(crate::view::MemoryView::new()),
            clock: Arc::new(crate::clock::SystemClock),
            mount: Arc::new(MountInfo::default()),
            params: Params::default(),
            rollback_log: None,
        }
    }

    #[test]
    fn params_find_each_capture_by_name_and_a_later_value_replaces_an_earlier() {
        let mut params: Params = [("name", "a"), ("rest", "b/c"), ("name", "d")]
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(params.len(), 2);
        assert_eq!(params.get("name"), Some("d"));
        assert_eq!(params["rest"], "b/c");
        assert_eq!(params.get("nam"), None);
        assert_eq!(params.get("names"), None);
        params.insert("other".into(), String::new());
        assert_eq!(
            params.iter().collect::<Vec<_>>(),
            [("name", "d"), ("rest", "b/c"), ("other", "")]
        );
        assert_eq!(
            (&params)
                .into_iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>(),
            ["name=d", "rest=b/c", "other="]
        );
        let c = Ctx {
            params,
            ..ctx(Operation::Read, "x", serde_json::json!({}))
        };
        assert_eq!(c.param("rest"), "b/c");
        assert_eq!(c.param("absent"), "");
        assert!(std::panic::catch_unwind(|| c.params["absent"].len()).is_err());
    }

    #[test]
    fn rest_of_path_patterns_match_as_their_regex_does() {
        let patterns = [
            "data/(?P<path>.+)",
            "metadata/(?P<path>.*)",
            "(?P<name>.+)",
            "(?P<name>.*)",
            "roles/?(?P<role>.+)",
            "creds/(?P<name>.+)/rotate",
            "keys/(?P<name>\\w(([\\w.-]+)?\\w)?)",
            "config",
        ];
        let paths = [
            "",
            "data",
            "data/",
            "data/a",
            "data/a/b/",
            "data/a\nb",
            "data/\n",
            "data/\r",
            "metadata",
            "metadata/",
            "metadata/x",
            "metadatax",
            "roles",
            "roles/",
            "rolesx",
            "roles/r",
            "creds/x/rotate",
            "creds//rotate",
            "keys/k",
            "keys/k-1",
            "config",
            "config/",
            "data/ü/ß",
            "data/%2F",
            "\n",
        ];
        let mut fast = 0;
        for pattern in patterns {
            let m = Matcher::new(pattern);
            fast += usize::from(m.rest.is_some());
            for path in paths {
                assert_eq!(
                    m.params(path),
                    m.regex_params(path),
                    "{pattern:?} on {path:?}"
                );
            }
        }
        assert_eq!(fast, 4, "the four rest-of-path patterns skip the regex");
    }

    #[tokio::test]
    async fn routes_by_pattern_and_captures_params() {
        let b = backend();
        let route = b.route("data/a/b").expect("route");
        assert_eq!(route.params["path"], "a/b");
        assert!(b.route("nope").is_none());
        assert!(b.route("config/x").is_none(), "patterns are anchored");
        let mut c = ctx(
            Operation::Update,
            "data/a/b",
            serde_json::json!({"count": "7", "extra": true}),
        );
        c.params = route.params.clone();
        let resp = (route.spec.handler_for(Operation::Create).unwrap().handler)(c)
            .await
            .unwrap();
        assert_eq!(resp.data.unwrap()["count"], 7);
        assert_eq!(
            resp.warnings,
            vec!["Endpoint ignored these unrecognized parameters: [extra]"]
        );
    }

    #[tokio::test]
    async fn wrong_type_is_a_bad_request_naming_the_field_without_the_value() {
        let b = backend();
        let route = b.route("data/x").unwrap();
        let c = ctx(
            Operation::Update,
            "data/x",
            serde_json::json!({"count": "hunter2"}),
        );
        let numeric = decode_input::<Strict>(
            serde_json::json!({"name": 12345})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap_err();
        assert!(!numeric.to_string().contains("12345"), "{numeric}");
        let err = (route.spec.handler_for(Operation::Update).unwrap().handler)(c)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);
        let msg = err.to_string();
        assert!(msg.contains("count"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    /// A decoder that refuses everything and quotes what it got, as a careless one might.
    fn quoting<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
        let got = Value::deserialize(d)?;
        Err(serde::de::Error::custom(format!("not accepted: {got}")))
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Secrets {
        #[serde(default, deserialize_with = "quoting")]
        password: String,
        #[serde(default, deserialize_with = "quoting")]
        secret_id: String,
        #[serde(default, deserialize_with = "quoting")]
        token: String,
        #[serde(default, deserialize_with = "quoting")]
        key: String,
        #[serde(default, deserialize_with = "quoting")]
        jwt: String,
        #[serde(default, deserialize_with = "quoting")]
        oidc_client_secret: String,
        #[serde(default)]
        data: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Nested {
        #[serde(deserialize_with = "quoting")]
        anything: String,
    }

    #[test]
    fn a_secret_fields_value_is_never_quoted_whatever_its_decoder_says() {
        for field in [
            "password",
            "secret_id",
            "token",
            "key",
            "jwt",
            "oidc_client_secret",
        ] {
            for value in [
                serde_json::json!("hunter2-secret"),
                serde_json::json!(["hunter2-secret"]),
                serde_json::json!({"hunter2-secret": "hunter2-secret"}),
            ] {
                let mut data = Map::new();
                data.insert(field.to_string(), value.clone());
                let msg = decode_input::<Secrets>(data).unwrap_err().to_string();
                assert!(!msg.contains("hunter2"), "{field} = {value}: {msg}");
                assert!(msg.contains(field), "{msg}");
            }
        }
        let data = serde_json::json!({"data": {"anything": "hunter2-secret"}});
        let msg = decode_input::<Secrets>(data.as_object().unwrap().clone())
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(msg.contains("data.anything"), "{msg}");
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Settings {
        #[serde(default)]
        mode: Option<Mode>,
        #[serde(default, deserialize_with = "de::opt_duration")]
        ttl: Option<std::time::Duration>,
        #[serde(default)]
        count: Option<u32>,
    }

    #[derive(Debug, Deserialize)]
    enum Mode {
        Fast,
        Slow,
    }

    #[test]
    fn serde_never_echoes_a_value_but_a_duration_may_be_quoted() {
        for (field, value) in [
            ("mode", serde_json::json!("hunter2")),
            ("count", serde_json::json!("hunter2")),
            ("count", serde_json::json!(73_571_337_000_u64)),
            ("count", serde_json::json!(-7357.5)),
        ] {
            let mut data = Map::new();
            data.insert(field.to_string(), value.clone());
            let msg = decode_input::<Settings>(data).unwrap_err().to_string();
            assert!(
                !msg.contains("hunter2") && !msg.contains("7357"),
                "{field} = {value}: {msg}"
            );
            assert!(msg.contains(field), "{msg}");
        }
        // Durations are not secrets: the text is repeated to show what was not understood.
        let data = serde_json::json!({"ttl": "ten minutes"});
        let msg = decode_input::<Settings>(data.as_object().unwrap().clone())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("\"ten minutes\""), "{msg}");
    }

    #[test]
    fn secret_field_names() {
        for name in [
            "password",
            "token",
            "client_token",
            "wrapping_token",
            "secret_id",
            "key",
            "unseal_key",
            "private_key",
            "jwt",
            "oidc_client_secret",
            "data",
            "id",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in [
            "token_ttl",
            "token_policies",
            "secret_id_ttl",
            "secret_id_accessor",
            "accessor",
            "role_id",
            "ttl",
            "tls_key_file",
            "jwt_validation_pubkeys",
            "type",
        ] {
            assert!(!is_secret_field(name), "{name}");
        }
    }

    #[test]
    fn literal_prefixes_stop_at_regex_syntax_and_optional_characters() {
        assert_eq!(literal_prefix("data/(?P<path>.+)"), "data/");
        assert_eq!(literal_prefix("roles/?"), "roles");
        assert_eq!(literal_prefix("config"), "config");
        assert_eq!(literal_prefix("(?P<path>.*)"), "");
        assert_eq!(
            literal_prefix("leases/renew(?:/(?P<id>.+))?"),
            "leases/renew"
        );
    }

    #[test]
    fn the_first_declared_matching_path_wins() {
        let b = Backend::new(
            "t",
            "",
            vec![
                PathSpec::new("roles/?"),
                PathSpec::new("roles/(?P<name>[^/]+)"),
                PathSpec::new("(?P<rest>.*)"),
            ],
        );
        assert_eq!(b.route("roles").unwrap().spec.pattern, "roles/?");
        assert_eq!(b.route("roles/").unwrap().spec.pattern, "roles/?");
        assert_eq!(b.route("roles/x").unwrap().params["name"], "x");
        assert_eq!(b.route("roles/x/y").unwrap().params["rest"], "roles/x/y");
    }

    #[test]
    fn openapi_paths_handle_nested_groups_and_optional_parts() {
        assert_eq!(
            PathSpec::new(r"users/(?P<username>\w(([\w-.]+)?\w)?)").openapi_paths(),
            vec!["users/{username}"]
        );
        assert_eq!(
            PathSpec::new("leases/renew(?:/(?P<url_lease_id>.+))?").openapi_paths(),
            vec!["leases/renew", "leases/renew/{url_lease_id}"]
        );
        assert_eq!(
            PathSpec::new("role/(?P<role_name>[^/]+)/secret-id/?").openapi_paths(),
            vec!["role/{role_name}/secret-id"]
        );
        assert_eq!(
            PathSpec::new("leases/lookup(?:/(?P<prefix>.*))?").openapi_paths(),
            vec!["leases/lookup", "leases/lookup/{prefix}"]
        );
    }

    #[test]
    fn openapi_path_templates_captures() {
        assert_eq!(
            PathSpec::new("data/(?P<path>.+)").openapi_path(),
            "data/{path}"
        );
        assert_eq!(PathSpec::new("metadata/?$").openapi_path(), "metadata");
        assert_eq!(PathSpec::new("config").openapi_path(), "config");
    }
}
