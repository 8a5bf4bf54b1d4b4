//! `sys/policy`, `sys/policies/acl` and `sys/capabilities*`: ACL policies and what they grant.

use super::*;
use crate::core::Core;
use coffer_sdk::engine::StatePath;
use coffer_sdk::framework::de;
use coffer_sdk::{Ctx, Engine, Error, Operation, Response, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Map};
use std::sync::Arc;

#[derive(Deserialize, JsonSchema)]
struct PolicyInput {
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    rules: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct CapabilitiesInput {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    accessor: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default, deserialize_with = "de::string_list")]
    paths: Vec<String>,
}

fn requested_paths(input: &CapabilitiesInput) -> Result<Vec<String>> {
    let mut paths = input.paths.clone();
    if let Some(p) = &input.path {
        paths.push(p.clone());
    }
    if paths.is_empty() {
        return Err(Error::bad("missing required field 'paths'"));
    }
    Ok(paths
        .into_iter()
        .map(|p| p.trim_start_matches('/').to_string())
        .collect())
}

async fn capabilities_for(
    core: &Core,
    policies: &[String],
    paths: Vec<String>,
) -> Result<Response> {
    let acl = core.policies.acl(policies).await?;
    let mut data = Map::new();
    let mut all: Vec<&'static str> = Vec::new();
    for p in &paths {
        let names = acl.capability_names(p);
        for n in &names {
            if !all.contains(n) {
                all.push(n);
            }
        }
        data.insert(p.clone(), json!(names));
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), data[&paths[0]].clone());
    } else {
        all.sort();
        data.insert("capabilities".into(), json!(all));
    }
    Ok(legacy(data))
}

/// The paths of this concern.
pub(super) fn paths(e: &Engine<Core>) -> Vec<StatePath<Core>> {
    let list_policies = |core: Arc<Core>, _ctx: Ctx| async move {
        {
            let names = core.policies.list().await?;
            let mut data = Map::new();
            data.insert("policies".into(), json!(names));
            data.insert("keys".into(), json!(names));
            Ok(legacy(data))
        }
    };
    let write_policy = |core: Arc<Core>, ctx: Ctx, input: PolicyInput| async move {
        {
            let text = input
                .policy
                .or(input.rules)
                .ok_or_else(|| Error::bad("'policy' parameter not supplied or empty"))?;
            if text.trim().is_empty() {
                return Err(Error::bad("'policy' parameter not supplied or empty"));
            }
            core.policies.put(ctx.param("name"), &text).await?;
            Ok(Response::empty())
        }
    };
    let delete_policy = |core: Arc<Core>, ctx: Ctx| async move {
        {
            core.policies.delete(ctx.param("name")).await?;
            Ok(Response::empty())
        }
    };

    vec![
        e.path("policy/?")
            .op(Operation::Read, "List policies.", list_policies)
            .op(Operation::List, "List policies.", list_policies)
            .help("List ACL policies.", ""),
        e.path("policy/(?P<name>.+)")
            .op(Operation::Read, "Read a policy.", |core, ctx| async move {
                {
                    let name = ctx.param("name").to_lowercase();
                    if name == "root" {
                        let mut data = Map::new();
                        data.insert("name".into(), json!("root"));
                        data.insert("rules".into(), json!(""));
                        return Ok(legacy(data));
                    }
                    let p = core.policies.get(&name).await?.ok_or(Error::NotFound)?;
                    let mut data = Map::new();
                    data.insert("name".into(), json!(name));
                    data.insert("rules".into(), json!(p.1));
                    Ok(legacy(data))
                }
            })
            .typed_ops(
                &[Operation::Update, Operation::Create],
                "Write a policy.",
                write_policy,
            )
            .op(Operation::Delete, "Delete a policy.", delete_policy)
            .help("Read, write or delete an ACL policy (legacy path).", ""),
        e.path("policies/acl/?")
            .op(
                Operation::List,
                "List ACL policies.",
                |core, _ctx| async move { Response::list(core.policies.list().await?) },
            )
            .help("List ACL policies.", ""),
        e.path("policies/acl/(?P<name>.+)")
            .op(
                Operation::Read,
                "Read an ACL policy.",
                |core, ctx| async move {
                    {
                        let name = ctx.param("name").to_lowercase();
                        if name == "root" {
                            return Ok(Response::data(json!({"name": "root", "policy": ""})));
                        }
                        let p = core.policies.get(&name).await?.ok_or(Error::NotFound)?;
                        Ok(Response::data(json!({"name": name, "policy": p.1})))
                    }
                },
            )
            .typed_ops(
                &[Operation::Update, Operation::Create],
                "Write an ACL policy.",
                write_policy,
            )
            .op(Operation::Delete, "Delete an ACL policy.", delete_policy)
            .help(
                "Read, write or delete an ACL policy.",
                "Policies are HCL or JSON.",
            ),
        e.path("capabilities-self")
            .typed(
                Operation::Update,
                "Capabilities of the calling token.",
                |core, ctx, input: CapabilitiesInput| async move {
                    {
                        let caller = ctx.request.caller.clone().ok_or(Error::PermissionDenied)?;
                        capabilities_for(&core, &caller.policies, requested_paths(&input)?).await
                    }
                },
            )
            .help("Capabilities of the calling token on paths.", ""),
        e.path("capabilities-accessor")
            .typed(
                Operation::Update,
                "Capabilities of a token by accessor.",
                |core, _ctx, input: CapabilitiesInput| async move {
                    {
                        let accessor = input
                            .accessor
                            .clone()
                            .ok_or_else(|| Error::bad("missing required field 'accessor'"))?;
                        let entry = core
                            .tokens
                            .lookup_accessor(&accessor)
                            .await?
                            .ok_or_else(|| Error::bad("invalid accessor"))?;
                        capabilities_for(&core, &entry.policies, requested_paths(&input)?).await
                    }
                },
            )
            .help("Capabilities of a token, named by accessor, on paths.", ""),
        e.path("capabilities")
            .typed(
                Operation::Update,
                "Capabilities of a token.",
                |core, _ctx, input: CapabilitiesInput| async move {
                    {
                        let token = input
                            .token
                            .clone()
                            .ok_or_else(|| Error::bad("missing required field 'token'"))?;
                        let entry = core
                            .tokens
                            .lookup(&token)
                            .await?
                            .ok_or_else(|| Error::bad("invalid token"))?;
                        capabilities_for(&core, &entry.policies, requested_paths(&input)?).await
                    }
                },
            )
            .help("Capabilities of a token on paths.", ""),
    ]
}
