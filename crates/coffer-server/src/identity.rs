//! Identity: entities (a person or a machine), aliases (how one auth mount knows it),
//! groups with explicit members, and **dynamic groups** whose membership is a rule over
//! identity attributes, e.g. `any {instance.compartment.id = 'prod', instance.id = 'i-1'}`.
//!
//! A token carries only its entity id. Its identity policies (the entity's own plus every
//! group's it belongs to, directly, by rule, or through a parent group) are worked out per
//! request from a cache that every identity write invalidates, so a membership change applies
//! on the next request.

use crate::barrier::BarrierView;
use coffer_sdk::cache::Remembered;
use coffer_sdk::clock::{format_time, Clock};
use coffer_sdk::framework::de;
use coffer_sdk::view::{get_json, to_json, View, ViewOp};
use coffer_sdk::{Backend, Engine, Error, Operation, Response, Result};
use parking_lot::RwLock;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A person or machine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
    pub creation_time: String,
    pub last_update_time: String,
}

/// How one auth mount knows an entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alias {
    pub id: String,
    pub canonical_id: String,
    pub mount_accessor: String,
    pub mount_path: String,
    pub mount_type: String,
    pub name: String,
    /// Metadata recorded by the login or by an identity admin; may hold caller-chosen values.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Attributes the auth method verified at the last login (see `Login::verified_attributes`).
    #[serde(default)]
    pub verified: BTreeMap<String, String>,
    pub creation_time: String,
    pub last_update_time: String,
}

/// A group: `internal` (explicit members) or `dynamic` (members by rule).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub member_entity_ids: Vec<String>,
    #[serde(default)]
    pub member_group_ids: Vec<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub rule: Option<String>,
    pub creation_time: String,
    pub last_update_time: String,
}

// ----- dynamic group rules -------------------------------------------------------------------

/// A parsed membership rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub all: bool,
    pub conditions: Vec<Condition>,
}

/// `key = 'value'` or `key != 'value'`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub equals: bool,
    pub value: String,
}

/// Parse `any {k = 'v', ...}` / `all {k != "v", ...}`. Errors say where and what was expected.
pub fn parse_rule(text: &str) -> std::result::Result<Rule, String> {
    let s = text.trim();
    let (all, rest) = if let Some(r) = s.strip_prefix("any") {
        (false, r)
    } else if let Some(r) = s.strip_prefix("all") {
        (true, r)
    } else {
        return Err(
            "a rule starts with `any` or `all`, e.g. any {instance.compartment.id = 'prod'}".into(),
        );
    };
    let rest = rest.trim_start();
    let body = rest
        .strip_prefix('{')
        .and_then(|r| r.trim_end().strip_suffix('}'))
        .ok_or("the conditions must be enclosed in { and }")?;
    let mut conditions = Vec::new();
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= chars.len() {
            break;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || "._-/:".contains(chars[i])) {
            i += 1;
        }
        let key: String = chars[start..i].iter().collect();
        if key.is_empty() {
            return Err(format!(
                "expected an attribute name at position {}",
                start + 1
            ));
        }
        skip_ws(&mut i);
        let equals = if chars.get(i) == Some(&'=') {
            i += 1;
            true
        } else if chars.get(i) == Some(&'!') && chars.get(i + 1) == Some(&'=') {
            i += 2;
            false
        } else {
            return Err(format!("expected = or != after \"{key}\""));
        };
        skip_ws(&mut i);
        let quote = match chars.get(i) {
            Some(q @ ('\'' | '"')) => *q,
            _ => {
                return Err(format!(
                    "the value for \"{key}\" must be quoted, e.g. '{key}'"
                ))
            }
        };
        i += 1;
        let vstart = i;
        while i < chars.len() && chars[i] != quote {
            i += 1;
        }
        if i >= chars.len() {
            return Err(format!("unterminated quoted value for \"{key}\""));
        }
        let value: String = chars[vstart..i].iter().collect();
        i += 1;
        conditions.push(Condition { key, equals, value });
        skip_ws(&mut i);
        match chars.get(i) {
            None => break,
            Some(',') => i += 1,
            Some(c) => return Err(format!("expected , or }} but found '{c}'")),
        }
    }
    if conditions.is_empty() {
        return Err("a rule needs at least one condition".into());
    }
    Ok(Rule { all, conditions })
}

impl Rule {
    /// Whether attributes (each key may have several values, one per alias) satisfy the rule.
    pub fn matches(&self, attributes: &HashMap<String, Vec<String>>) -> bool {
        let check = |c: &Condition| {
            let found = attributes
                .get(&c.key)
                .is_some_and(|vals| vals.contains(&c.value));
            if c.equals {
                found
            } else {
                !found
            }
        };
        if self.all {
            self.conditions.iter().all(check)
        } else {
            self.conditions.iter().any(check)
        }
    }
}

// ----- the store --------------------------------------------------------------------------

/// Identity storage (`sys/identity/` in the barrier) and the policy cache.
pub struct Identity {
    pub view: BarrierView,
    clock: Arc<dyn Clock>,
    generation: AtomicU64,
    groups: RwLock<Option<(u64, Arc<Vec<Group>>)>>,
    policies: RwLock<HashMap<String, (u64, Arc<IdentityPolicies>)>>,
    /// Aliases by (mount accessor, name) as logins resolve them (a login reads two records
    /// otherwise); forgotten by every identity write through [`Identity::invalidate`].
    aliases: Remembered<(String, String), Alias>,
}

/// Cached aliases beyond this are dropped wholesale (idle ones live in storage).
const ALIAS_CACHE_LIMIT: usize = 100_000;

/// What identity adds to a token at request time.
#[derive(Debug, Clone, Default)]
pub struct IdentityPolicies {
    pub policies: Vec<String>,
    pub group_ids: Vec<String>,
    pub disabled: bool,
}

fn hex_name(name: &str) -> String {
    coffer_sdk::lower_hex(name.as_bytes())
}

fn validate_name(kind: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 256
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(Error::bad(format!(
            "{kind} name must be 1-256 characters without '/'"
        )));
    }
    Ok(())
}

fn string_map(m: Option<Map<String, Value>>) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in m.unwrap_or_default() {
        match v {
            Value::String(s) => {
                out.insert(k, s);
            }
            _ => {
                return Err(Error::bad(format!(
                    "metadata value for \"{k}\" must be a string"
                )))
            }
        }
    }
    Ok(out)
}

impl Identity {
    /// A store over `view`.
    pub fn new(view: BarrierView, clock: Arc<dyn Clock>) -> Identity {
        Identity {
            view,
            clock,
            generation: AtomicU64::new(1),
            groups: RwLock::new(None),
            policies: RwLock::new(HashMap::new()),
            aliases: Remembered::new(ALIAS_CACHE_LIMIT),
        }
    }

    /// The time for creation and update stamps, from the server's clock.
    fn now(&self) -> String {
        format_time(self.clock.now())
    }

    /// Invalidate every cached membership (after any identity write, and on seal).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.policies.write().clear();
        self.aliases.forget();
    }

    /// A record (`entity` or `group`) by id.
    async fn record<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        id: &str,
    ) -> Result<Option<T>> {
        if id.is_empty() || id.contains('/') {
            return Ok(None);
        }
        get_json(&self.view, &format!("{kind}/id/{id}")).await
    }

    /// A record by its unique name (an index from hex(name) to id).
    async fn record_by_name<T: serde::de::DeserializeOwned>(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<T>> {
        match self
            .view
            .get(&format!("{kind}/name/{}", hex_name(name)))
            .await?
        {
            Some(id) => self.record(kind, &String::from_utf8_lossy(&id)).await,
            None => Ok(None),
        }
    }

    /// Write a record and its name index in one batch (dropping the old name's index after a
    /// rename), then invalidate cached memberships.
    async fn save_record<T: Serialize + Sync>(
        &self,
        kind: &str,
        id: &str,
        name: &str,
        old_name: Option<&str>,
        value: &T,
    ) -> Result<()> {
        let mut ops = vec![
            ViewOp::Put {
                key: format!("{kind}/id/{id}"),
                value: to_json(value)?,
            },
            ViewOp::Put {
                key: format!("{kind}/name/{}", hex_name(name)),
                value: id.as_bytes().to_vec(),
            },
        ];
        if let Some(old) = old_name.filter(|o| *o != name) {
            ops.push(ViewOp::Delete {
                key: format!("{kind}/name/{}", hex_name(old)),
            });
        }
        self.view.batch(ops).await?;
        self.invalidate();
        Ok(())
    }

    /// Delete a record and its name index in one batch.
    async fn delete_record(&self, kind: &str, id: &str, name: &str) -> Result<()> {
        self.view
            .batch(vec![
                ViewOp::Delete {
                    key: format!("{kind}/id/{id}"),
                },
                ViewOp::Delete {
                    key: format!("{kind}/name/{}", hex_name(name)),
                },
            ])
            .await?;
        self.invalidate();
        Ok(())
    }

    pub async fn entity(&self, id: &str) -> Result<Option<Entity>> {
        self.record("entity", id).await
    }

    pub async fn entity_by_name(&self, name: &str) -> Result<Option<Entity>> {
        self.record_by_name("entity", name).await
    }

    async fn save_entity(&self, e: &Entity, old_name: Option<&str>) -> Result<()> {
        self.save_record("entity", &e.id, &e.name, old_name, e)
            .await
    }

    pub async fn alias(&self, id: &str) -> Result<Option<Alias>> {
        if id.is_empty() || id.contains('/') {
            return Ok(None);
        }
        get_json(&self.view, &format!("alias/id/{id}")).await
    }

    async fn alias_by_name(&self, mount_accessor: &str, name: &str) -> Result<Option<Alias>> {
        self.aliases
            .get_or_load(&(mount_accessor.to_string(), name.to_string()), || async {
                match self
                    .view
                    .get(&format!("alias/lookup/{mount_accessor}/{}", hex_name(name)))
                    .await?
                {
                    Some(id) => self.alias(&String::from_utf8_lossy(&id)).await,
                    None => Ok(None),
                }
            })
            .await
    }

    async fn save_alias(&self, a: &Alias) -> Result<()> {
        self.view
            .batch(vec![
                ViewOp::Put {
                    key: format!("alias/id/{}", a.id),
                    value: to_json(a)?,
                },
                ViewOp::Put {
                    key: format!("alias/lookup/{}/{}", a.mount_accessor, hex_name(&a.name)),
                    value: a.id.clone().into_bytes(),
                },
                ViewOp::Put {
                    key: format!("alias/by-entity/{}/{}", a.canonical_id, a.id),
                    value: Vec::new(),
                },
            ])
            .await?;
        self.invalidate();
        Ok(())
    }

    async fn delete_alias(&self, a: &Alias) -> Result<()> {
        self.view
            .batch(vec![
                ViewOp::Delete {
                    key: format!("alias/id/{}", a.id),
                },
                ViewOp::Delete {
                    key: format!("alias/lookup/{}/{}", a.mount_accessor, hex_name(&a.name)),
                },
                ViewOp::Delete {
                    key: format!("alias/by-entity/{}/{}", a.canonical_id, a.id),
                },
            ])
            .await?;
        self.invalidate();
        Ok(())
    }

    pub async fn aliases_of(&self, entity_id: &str) -> Result<Vec<Alias>> {
        let mut out = Vec::new();
        for id in self
            .view
            .list(&format!("alias/by-entity/{entity_id}/"))
            .await?
        {
            if let Some(a) = self.alias(&id).await? {
                out.push(a);
            }
        }
        Ok(out)
    }

    pub async fn group(&self, id: &str) -> Result<Option<Group>> {
        self.record("group", id).await
    }

    pub async fn group_by_name(&self, name: &str) -> Result<Option<Group>> {
        self.record_by_name("group", name).await
    }

    async fn save_group(&self, g: &Group, old_name: Option<&str>) -> Result<()> {
        self.save_record("group", &g.id, &g.name, old_name, g).await
    }

    async fn delete_group(&self, g: &Group) -> Result<()> {
        self.delete_record("group", &g.id, &g.name).await
    }

    async fn all_groups(&self) -> Result<Arc<Vec<Group>>> {
        let gen = self.generation.load(Ordering::SeqCst);
        if let Some((g, groups)) = self.groups.read().as_ref() {
            if *g == gen {
                return Ok(groups.clone());
            }
        }
        let mut groups = Vec::new();
        for id in self.view.list("group/id/").await? {
            if let Some(g) = self.group(&id).await? {
                groups.push(g);
            }
        }
        let groups = Arc::new(groups);
        *self.groups.write() = Some((gen, groups.clone()));
        Ok(groups)
    }

    /// The attributes dynamic-group rules see, each named by where it came from, so that a
    /// value a caller could choose never answers to the name of a verified one:
    /// - `entity.id`, `entity.name`, `entity.metadata.<key>`: written by an identity admin;
    /// - `alias.name`, `alias.mount_path`, `alias.mount_type`, `alias.mount_accessor`: the
    ///   identity store's own record of each alias;
    /// - `alias.metadata.<key>`: metadata the login recorded, which may be caller-chosen (an
    ///   AppRole secret id's metadata);
    /// - `<name>` unprefixed: attributes an auth method verified (certificate fields and
    ///   extensions, mapped JWT claims), under the names its configuration gives them. Names
    ///   starting `entity.` or `alias.` are not accepted from an auth method.
    async fn attributes(&self, entity: &Entity) -> Result<HashMap<String, Vec<String>>> {
        let mut attrs: HashMap<String, Vec<String>> = HashMap::new();
        let mut add =
            |k: &str, v: &str| attrs.entry(k.to_string()).or_default().push(v.to_string());
        add("entity.name", &entity.name);
        add("entity.id", &entity.id);
        for (k, v) in &entity.metadata {
            add(&format!("entity.metadata.{k}"), v);
        }
        for alias in self.aliases_of(&entity.id).await? {
            add("alias.name", &alias.name);
            add("alias.mount_path", &alias.mount_path);
            add("alias.mount_type", &alias.mount_type);
            add("alias.mount_accessor", &alias.mount_accessor);
            for (k, v) in &alias.metadata {
                add(&format!("alias.metadata.{k}"), v);
            }
            for (k, v) in &alias.verified {
                if !k.starts_with("entity.") && !k.starts_with("alias.") {
                    add(k, v);
                }
            }
        }
        Ok(attrs)
    }

    /// Groups (ids, including parents) and policies an entity gets, cached until the next
    /// identity write.
    pub async fn policies_for(&self, entity_id: &str) -> Result<Arc<IdentityPolicies>> {
        let gen = self.generation.load(Ordering::SeqCst);
        if let Some((g, p)) = self.policies.read().get(entity_id) {
            if *g == gen {
                return Ok(p.clone());
            }
        }
        let Some(entity) = self.entity(entity_id).await? else {
            return Ok(Arc::new(IdentityPolicies::default()));
        };
        let groups = self.all_groups().await?;
        let attrs = self.attributes(&entity).await?;
        let mut member: HashSet<String> = HashSet::new();
        for g in groups.iter() {
            let direct = match g.kind.as_str() {
                "dynamic" => g
                    .rule
                    .as_deref()
                    .and_then(|r| parse_rule(r).ok())
                    .is_some_and(|r| r.matches(&attrs)),
                _ => g.member_entity_ids.contains(&entity.id),
            };
            if direct {
                member.insert(g.id.clone());
            }
        }
        // A group whose member groups include one of ours is ours too (to a fixed point).
        loop {
            let before = member.len();
            for g in groups.iter() {
                if !member.contains(&g.id) && g.member_group_ids.iter().any(|m| member.contains(m))
                {
                    member.insert(g.id.clone());
                }
            }
            if member.len() == before {
                break;
            }
        }
        let mut policies: Vec<String> = entity.policies.clone();
        let mut group_ids: Vec<String> = member.into_iter().collect();
        group_ids.sort();
        for g in groups.iter().filter(|g| group_ids.contains(&g.id)) {
            policies.extend(g.policies.iter().cloned());
        }
        // Root comes only from a root token; an entry written before this rule held cannot
        // confer it.
        policies.retain(|p| p != "root");
        policies.sort();
        policies.dedup();
        let result = Arc::new(IdentityPolicies {
            policies,
            group_ids,
            disabled: entity.disabled,
        });
        self.policies
            .write()
            .insert(entity_id.to_string(), (gen, result.clone()));
        Ok(result)
    }

    /// At login: find or create the entity behind an alias, refreshing the alias's metadata.
    pub async fn login_entity(
        &self,
        mount_accessor: &str,
        mount_path: &str,
        mount_type: &str,
        alias_name: &str,
        alias_metadata: &Map<String, Value>,
        verified: &BTreeMap<String, String>,
    ) -> Result<String> {
        let metadata: BTreeMap<String, String> = alias_metadata
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        if let Some(mut alias) = self.alias_by_name(mount_accessor, alias_name).await? {
            if alias.metadata != metadata || alias.verified != *verified {
                alias.metadata = metadata.clone();
                alias.verified = verified.clone();
                alias.last_update_time = self.now();
                self.save_alias(&alias).await?;
            }
            // Deleting an entity deletes its aliases first, so an alias that resolves names a
            // live entity; only a crash between those two writes leaves an orphan, which the
            // identity policy lookup treats as an entity without policies.
            return Ok(alias.canonical_id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let entity = Entity {
            id: id.clone(),
            name: format!("entity_{}", &id[..8]),
            metadata: BTreeMap::new(),
            policies: Vec::new(),
            disabled: false,
            creation_time: self.now(),
            last_update_time: self.now(),
        };
        self.save_entity(&entity, None).await?;
        let alias = Alias {
            id: uuid::Uuid::new_v4().to_string(),
            canonical_id: id.clone(),
            mount_accessor: mount_accessor.to_string(),
            mount_path: mount_path.to_string(),
            mount_type: mount_type.to_string(),
            name: alias_name.to_string(),
            metadata,
            verified: verified.clone(),
            creation_time: self.now(),
            last_update_time: self.now(),
        };
        self.save_alias(&alias).await?;
        Ok(id)
    }

    async fn entity_json(&self, e: &Entity) -> Result<Value> {
        let aliases = self.aliases_of(&e.id).await?;
        let ip = self.policies_for(&e.id).await?;
        Ok(json!({
            "id": e.id, "name": e.name, "metadata": e.metadata, "policies": e.policies, "disabled": e.disabled,
            "aliases": aliases, "group_ids": ip.group_ids, "direct_group_ids": ip.group_ids, "inherited_group_ids": [],
            "creation_time": e.creation_time, "last_update_time": e.last_update_time, "namespace_id": "root",
        }))
    }

    async fn delete_entity(&self, e: &Entity) -> Result<()> {
        for a in self.aliases_of(&e.id).await? {
            self.delete_alias(&a).await?;
        }
        self.delete_record("entity", &e.id, &e.name).await
    }
}

// ----- the identity/ engine ----------------------------------------------------------------

#[derive(Deserialize, JsonSchema, Default)]
struct EntityInput {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "de::string_list")]
    policies: Vec<String>,
    #[serde(default, deserialize_with = "de::opt_bool")]
    disabled: Option<bool>,
}

#[derive(Deserialize, JsonSchema)]
struct AliasInput {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    canonical_id: Option<String>,
    #[serde(default)]
    mount_accessor: Option<String>,
    #[serde(default)]
    custom_metadata: Option<Map<String, Value>>,
}

#[derive(Deserialize, JsonSchema, Default)]
struct GroupInput {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "de::string_list")]
    policies: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    member_entity_ids: Vec<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    member_group_ids: Vec<String>,
    /// Membership rule of a dynamic group, e.g. `any {instance.compartment.id = 'prod'}`.
    #[serde(default)]
    rule: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct LookupInput {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    alias_id: Option<String>,
    #[serde(default)]
    alias_name: Option<String>,
    #[serde(default)]
    alias_mount_accessor: Option<String>,
}

fn norm_policies(p: &[String]) -> Vec<String> {
    let mut out: Vec<String> = p
        .iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn upsert_entity(
    id: &Identity,
    existing: Option<Entity>,
    input: EntityInput,
    data: &Map<String, Value>,
) -> Result<Response> {
    let creating = existing.is_none();
    let mut e = existing.unwrap_or_else(|| {
        let new_id = uuid::Uuid::new_v4().to_string();
        Entity {
            name: format!("entity_{}", &new_id[..8]),
            id: new_id,
            metadata: BTreeMap::new(),
            policies: Vec::new(),
            disabled: false,
            creation_time: id.now(),
            last_update_time: id.now(),
        }
    });
    let old_name = e.name.clone();
    if let Some(name) = input.name.filter(|n| !n.is_empty()) {
        validate_name("entity", &name)?;
        if let Some(other) = id.entity_by_name(&name).await? {
            if other.id != e.id {
                return Err(Error::bad(format!(
                    "entity name \"{name}\" is already in use"
                )));
            }
        }
        e.name = name;
    }
    if data.contains_key("metadata") {
        e.metadata = string_map(input.metadata)?;
    }
    if data.contains_key("policies") {
        e.policies = norm_policies(&input.policies);
        if e.policies.iter().any(|p| p == "root") {
            return Err(Error::bad(
                "identity policies cannot include the root policy",
            ));
        }
    }
    if let Some(d) = input.disabled {
        e.disabled = d;
    }
    e.last_update_time = id.now();
    id.save_entity(&e, Some(&old_name)).await?;
    if creating {
        Ok(Response::data(
            json!({"id": e.id, "name": e.name, "aliases": null}),
        ))
    } else {
        Ok(Response::empty())
    }
}

async fn upsert_group(
    id: &Identity,
    existing: Option<Group>,
    input: GroupInput,
    data: &Map<String, Value>,
) -> Result<Response> {
    let creating = existing.is_none();
    let mut g = existing.unwrap_or_else(|| {
        let new_id = uuid::Uuid::new_v4().to_string();
        Group {
            name: format!("group_{}", &new_id[..8]),
            id: new_id,
            kind: "internal".into(),
            policies: Vec::new(),
            member_entity_ids: Vec::new(),
            member_group_ids: Vec::new(),
            metadata: BTreeMap::new(),
            rule: None,
            creation_time: id.now(),
            last_update_time: id.now(),
        }
    });
    let old_name = g.name.clone();
    if let Some(kind) = input.kind.filter(|k| !k.is_empty()) {
        if !creating && kind != g.kind {
            return Err(Error::bad("a group's type cannot be changed"));
        }
        match kind.as_str() {
            "internal" | "dynamic" => g.kind = kind,
            "external" => {
                return Err(Error::bad(
                    "external groups are not supported yet; use internal or dynamic",
                ))
            }
            other => {
                return Err(Error::bad(format!(
                    "invalid group type \"{other}\": use internal or dynamic"
                )))
            }
        }
    }
    if let Some(name) = input.name.filter(|n| !n.is_empty()) {
        validate_name("group", &name)?;
        if let Some(other) = id.group_by_name(&name).await? {
            if other.id != g.id {
                return Err(Error::bad(format!(
                    "group name \"{name}\" is already in use"
                )));
            }
        }
        g.name = name;
    }
    if data.contains_key("metadata") {
        g.metadata = string_map(input.metadata)?;
    }
    if data.contains_key("policies") {
        g.policies = norm_policies(&input.policies);
        if g.policies.iter().any(|p| p == "root") {
            return Err(Error::bad(
                "identity policies cannot include the root policy",
            ));
        }
    }
    if data.contains_key("member_entity_ids") {
        if g.kind == "dynamic" && !input.member_entity_ids.is_empty() {
            return Err(Error::bad(
                "a dynamic group's members come from its rule; member_entity_ids cannot be set",
            ));
        }
        for m in &input.member_entity_ids {
            if id.entity(m).await?.is_none() {
                return Err(Error::bad(format!("entity \"{m}\" does not exist")));
            }
        }
        g.member_entity_ids = input.member_entity_ids;
    }
    if data.contains_key("member_group_ids") {
        for m in &input.member_group_ids {
            if *m == g.id || id.group(m).await?.is_none() {
                return Err(Error::bad(format!(
                    "group \"{m}\" does not exist or is the group itself"
                )));
            }
        }
        g.member_group_ids = input.member_group_ids;
    }
    if let Some(rule) = input.rule {
        if g.kind != "dynamic" {
            return Err(Error::bad(
                "only dynamic groups have a rule; set type = \"dynamic\"",
            ));
        }
        parse_rule(&rule).map_err(|e| Error::bad(format!("invalid rule: {e}")))?;
        g.rule = Some(rule);
    }
    if g.kind == "dynamic" && g.rule.is_none() {
        return Err(Error::bad(
            "a dynamic group needs a rule, e.g. any {instance.compartment.id = 'prod'}",
        ));
    }
    g.last_update_time = id.now();
    id.save_group(&g, Some(&old_name)).await?;
    if creating {
        Ok(Response::data(json!({"id": g.id, "name": g.name})))
    } else {
        Ok(Response::empty())
    }
}

fn group_json(g: &Group) -> Value {
    json!({
        "id": g.id, "name": g.name, "type": g.kind, "policies": g.policies, "member_entity_ids": g.member_entity_ids,
        "member_group_ids": g.member_group_ids, "metadata": g.metadata, "rule": g.rule,
        "creation_time": g.creation_time, "last_update_time": g.last_update_time, "namespace_id": "root",
    })
}

/// The declaration of `identity/`.
pub fn backend(identity: &Arc<Identity>) -> Backend {
    let e = Engine::new(
        "identity",
        "Entities, aliases, groups and dynamic groups.",
        identity.clone(),
    );
    let paths = vec![
        e.path("entity/?")
            .typed_ops(&[Operation::Update, Operation::Create], "Create or update an entity.", |id, ctx, input: EntityInput| async move { {
                let existing = match (&input.id, &input.name) {
                    (Some(i), _) if !i.is_empty() => Some(id.entity(i).await?.ok_or_else(|| Error::bad(format!("entity \"{i}\" does not exist")))?),
                    (_, Some(n)) if !n.is_empty() => id.entity_by_name(n).await?,
                    _ => None,
                };
                let data = ctx.request.data.clone();
                upsert_entity(&id, existing, input, &data).await
            } })
            .help("Create or update an entity (a person or machine).", ""),
        e.path("entity/id/?")
            .op(Operation::List, "List entity ids.", |id, _ctx| async move { Response::list(id.view.list("entity/id/").await?) })
            .help("List entities by id.", ""),
        e.path("entity/id/(?P<id>[^/]+)")
            .op(Operation::Read, "Read an entity.", |id, ctx| async move { {
                let e = id.entity(ctx.param("id")).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(id.entity_json(&e).await?))
            } })
            .typed_ops(&[Operation::Update, Operation::Create], "Update an entity.", |id, ctx, input: EntityInput| async move { {
                let e = id.entity(ctx.param("id")).await?.ok_or_else(|| Error::bad("entity does not exist"))?;
                let data = ctx.request.data.clone();
                upsert_entity(&id, Some(e), input, &data).await
            } })
            .op(Operation::Delete, "Delete an entity.", |id, ctx| async move { {
                if let Some(e) = id.entity(ctx.param("id")).await? {
                    id.delete_entity(&e).await?;
                }
                Ok(Response::empty())
            } })
            .help("Read, update or delete an entity by id.", ""),
        e.path("entity/name/?")
            .op(Operation::List, "List entity names.", |id, _ctx| async move { {
                let mut names = Vec::new();
                for i in id.view.list("entity/id/").await? {
                    if let Some(e) = id.entity(&i).await? { names.push(e.name); }
                }
                names.sort();
                Response::list(names)
            } })
            .help("List entities by name.", ""),
        e.path("entity/name/(?P<name>[^/]+)")
            .op(Operation::Read, "Read an entity by name.", |id, ctx| async move { {
                let e = id.entity_by_name(ctx.param("name")).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(id.entity_json(&e).await?))
            } })
            .typed_ops(&[Operation::Update, Operation::Create], "Create or update an entity by name.", |id, ctx, input: EntityInput| async move { {
                let mut input = input;
                let name = ctx.param("name").to_string();
                validate_name("entity", &name)?;
                input.name = Some(name.clone());
                let existing = id.entity_by_name(&name).await?;
                let data = ctx.request.data.clone();
                upsert_entity(&id, existing, input, &data).await
            } })
            .op(Operation::Delete, "Delete an entity by name.", |id, ctx| async move { {
                if let Some(e) = id.entity_by_name(ctx.param("name")).await? {
                    id.delete_entity(&e).await?;
                }
                Ok(Response::empty())
            } })
            .help("Read, create, update or delete an entity by name.", ""),
        e.path("entity-alias/?")
            .typed_ops(&[Operation::Update, Operation::Create], "Create an entity alias.", |id, _ctx, input: AliasInput| async move { {
                let name = input.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| Error::bad("missing required field 'name'"))?;
                let canonical = input.canonical_id.clone().filter(|n| !n.is_empty()).ok_or_else(|| Error::bad("missing required field 'canonical_id'"))?;
                let accessor = input.mount_accessor.clone().filter(|n| !n.is_empty()).ok_or_else(|| Error::bad("missing required field 'mount_accessor'"))?;
                id.entity(&canonical).await?.ok_or_else(|| Error::bad(format!("entity \"{canonical}\" does not exist")))?;
                if let Some(existing) = id.alias_by_name(&accessor, &name).await? {
                    if existing.canonical_id != canonical {
                        return Err(Error::bad("alias already exists for requested entity name and mount accessor"));
                    }
                    return Ok(Response::data(json!({"id": existing.id, "canonical_id": existing.canonical_id})));
                }
                for a in id.aliases_of(&canonical).await? {
                    if a.mount_accessor == accessor {
                        return Err(Error::bad("an entity has at most one alias per auth mount"));
                    }
                }
                let alias = Alias {
                    id: input.id.clone().filter(|i| !i.is_empty() && !i.contains('/')).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                    canonical_id: canonical,
                    mount_accessor: accessor,
                    mount_path: String::new(),
                    mount_type: String::new(),
                    name,
                    metadata: string_map(input.custom_metadata)?,
                    verified: BTreeMap::new(),
                    creation_time: id.now(),
                    last_update_time: id.now(),
                };
                id.save_alias(&alias).await?;
                Ok(Response::data(json!({"id": alias.id, "canonical_id": alias.canonical_id})))
            } })
            .help("Create an entity alias (one per auth mount).", ""),
        e.path("entity-alias/id/?")
            .op(Operation::List, "List aliases.", |id, _ctx| async move { Response::list(id.view.list("alias/id/").await?) })
            .help("List entity aliases.", ""),
        e.path("entity-alias/id/(?P<id>[^/]+)")
            .op(Operation::Read, "Read an alias.", |id, ctx| async move { {
                let a = id.alias(ctx.param("id")).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(serde_json::to_value(&a).map_err(|e| Error::Internal(e.to_string()))?))
            } })
            .op(Operation::Delete, "Delete an alias.", |id, ctx| async move { {
                if let Some(a) = id.alias(ctx.param("id")).await? { id.delete_alias(&a).await?; }
                Ok(Response::empty())
            } })
            .help("Read or delete an entity alias.", ""),
        e.path("group/?")
            .typed_ops(&[Operation::Update, Operation::Create], "Create or update a group.", |id, ctx, input: GroupInput| async move { {
                let existing = match (&input.id, &input.name) {
                    (Some(i), _) if !i.is_empty() => Some(id.group(i).await?.ok_or_else(|| Error::bad(format!("group \"{i}\" does not exist")))?),
                    (_, Some(n)) if !n.is_empty() => id.group_by_name(n).await?,
                    _ => None,
                };
                let data = ctx.request.data.clone();
                upsert_group(&id, existing, input, &data).await
            } })
            .help("Create or update a group: internal (explicit members) or dynamic (members by rule).", "Dynamic groups take a rule such as any {instance.compartment.id = 'prod', instance.id = 'i-1'} or all {...}."),
        e.path("group/id/?")
            .op(Operation::List, "List group ids.", |id, _ctx| async move { Response::list(id.view.list("group/id/").await?) })
            .help("List groups by id.", ""),
        e.path("group/id/(?P<id>[^/]+)")
            .op(Operation::Read, "Read a group.", |id, ctx| async move { {
                let g = id.group(ctx.param("id")).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(group_json(&g)))
            } })
            .typed_ops(&[Operation::Update, Operation::Create], "Update a group.", |id, ctx, input: GroupInput| async move { {
                let g = id.group(ctx.param("id")).await?.ok_or_else(|| Error::bad("group does not exist"))?;
                let data = ctx.request.data.clone();
                upsert_group(&id, Some(g), input, &data).await
            } })
            .op(Operation::Delete, "Delete a group.", |id, ctx| async move { {
                if let Some(g) = id.group(ctx.param("id")).await? {
                    id.delete_group(&g).await?;
                }
                Ok(Response::empty())
            } })
            .help("Read, update or delete a group by id.", ""),
        e.path("group/name/?")
            .op(Operation::List, "List group names.", |id, _ctx| async move { {
                let mut names: Vec<String> = id.all_groups().await?.iter().map(|g| g.name.clone()).collect();
                names.sort();
                Response::list(names)
            } })
            .help("List groups by name.", ""),
        e.path("group/name/(?P<name>[^/]+)")
            .op(Operation::Read, "Read a group by name.", |id, ctx| async move { {
                let g = id.group_by_name(ctx.param("name")).await?.ok_or(Error::NotFound)?;
                Ok(Response::data(group_json(&g)))
            } })
            .typed_ops(&[Operation::Update, Operation::Create], "Create or update a group by name.", |id, ctx, input: GroupInput| async move { {
                let mut input = input;
                let name = ctx.param("name").to_string();
                validate_name("group", &name)?;
                input.name = Some(name.clone());
                let existing = id.group_by_name(&name).await?;
                let data = ctx.request.data.clone();
                upsert_group(&id, existing, input, &data).await
            } })
            .op(Operation::Delete, "Delete a group by name.", |id, ctx| async move { {
                if let Some(g) = id.group_by_name(ctx.param("name")).await? {
                    id.delete_group(&g).await?;
                }
                Ok(Response::empty())
            } })
            .help("Read, create, update or delete a group by name.", ""),
        e.path("lookup/entity")
            .typed(Operation::Update, "Find an entity.", |id, _ctx, input: LookupInput| async move { {
                let e = if let Some(i) = input.id.filter(|s| !s.is_empty()) {
                    id.entity(&i).await?
                } else if let Some(n) = input.name.filter(|s| !s.is_empty()) {
                    id.entity_by_name(&n).await?
                } else if let Some(a) = input.alias_id.filter(|s| !s.is_empty()) {
                    match id.alias(&a).await? { Some(a) => id.entity(&a.canonical_id).await?, None => None }
                } else if let (Some(n), Some(acc)) = (input.alias_name, input.alias_mount_accessor) {
                    match id.alias_by_name(&acc, &n).await? { Some(a) => id.entity(&a.canonical_id).await?, None => None }
                } else {
                    return Err(Error::bad("one of id, name, alias_id, or alias_name with alias_mount_accessor is required"));
                };
                match e {
                    Some(e) => Ok(Response::data(id.entity_json(&e).await?)),
                    None => Ok(Response::empty()),
                }
            } })
            .help("Look up an entity by id, name or alias.", ""),
        e.path("lookup/group")
            .typed(Operation::Update, "Find a group.", |id, _ctx, input: LookupInput| async move { {
                let g = if let Some(i) = input.id.filter(|s| !s.is_empty()) {
                    id.group(&i).await?
                } else if let Some(n) = input.name.filter(|s| !s.is_empty()) {
                    id.group_by_name(&n).await?
                } else {
                    return Err(Error::bad("one of id or name is required"));
                };
                Ok(g.map(|g| Response::data(group_json(&g))).unwrap_or_default())
            } })
            .help("Look up a group by id or name.", ""),
    ];
    e.paths(paths).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in pairs {
            m.entry(k.to_string()).or_default().push(v.to_string());
        }
        m
    }

    #[test]
    fn rules_parse_and_match() {
        let r =
            parse_rule("any {instance.compartment.id = 'prod', instance.id = \"i-1\"}").unwrap();
        assert!(!r.all);
        assert_eq!(r.conditions.len(), 2);
        assert!(r.matches(&attrs(&[("instance.compartment.id", "prod")])));
        assert!(r.matches(&attrs(&[("instance.id", "i-1")])));
        assert!(!r.matches(&attrs(&[("instance.compartment.id", "dev")])));
        let all = parse_rule("all { a = 'x' , b != 'y' }").unwrap();
        assert!(all.matches(&attrs(&[("a", "x")])));
        assert!(!all.matches(&attrs(&[("a", "x"), ("b", "y")])));
        assert!(
            all.matches(&attrs(&[("a", "z"), ("a", "x")])),
            "any alias's value counts"
        );
    }

    #[test]
    fn malformed_rules_are_refused_with_a_reason() {
        for bad in [
            "",
            "some {a = 'b'}",
            "any a = 'b'",
            "any {}",
            "any {a 'b'}",
            "any {a = b}",
            "any {a = 'b}",
            "any {a = 'b' c = 'd'}",
            "any {= 'b'}",
        ] {
            assert!(parse_rule(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
