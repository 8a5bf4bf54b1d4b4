"""Escalation attempts against the real binary, one per path in Vault's token, identity and
lease rules that could hand a caller more than it holds. Each asserts the refusal *and* that
nothing changed: the set of token leases, roles, policies, mounts, entities and groups is the
same before and after."""

import json

import hvac
import pytest
import requests

from conftest import DEV_ROOT_TOKEN, unique


def call(addr, token, method, path, body=None):
    headers = {"X-Vault-Token": token} if token else {}
    return requests.request(method, f"{addr}/v1/{path}", headers=headers,
                            data=json.dumps(body) if body is not None else None, timeout=10)


def listing(addr, path):
    resp = call(addr, DEV_ROOT_TOKEN, "LIST", path)
    if resp.status_code == 404:
        return []
    assert resp.status_code == 200, (path, resp.status_code, resp.text)
    return sorted(resp.json()["data"]["keys"])


def state(addr):
    """Everything an escalation could add to, as root sees it."""
    return {
        "token_leases": listing(addr, "sys/leases/lookup/auth/token/create/"),
        "orphan_leases": listing(addr, "sys/leases/lookup/auth/token/create-orphan/"),
        "roles": listing(addr, "auth/token/roles"),
        "policies": listing(addr, "sys/policies/acl"),
        "mounts": sorted(call(addr, DEV_ROOT_TOKEN, "GET", "sys/mounts").json()["data"].keys()),
        "entities": listing(addr, "identity/entity/id"),
        "groups": listing(addr, "identity/group/id"),
    }


def policy(client, name, text):
    client.sys.create_or_update_policy(name=name, policy=text)


def holder(client, *policies, **extra):
    return client.auth.token.create(policies=list(policies), no_default_policy=True, **extra)["auth"]["client_token"]


def refused(addr, token, method, path, body, status):
    before = state(addr)
    resp = call(addr, token, method, path, body)
    assert resp.status_code == status, (method, path, body, resp.status_code, resp.text)
    assert "errors" in resp.json()
    assert state(addr) == before, f"{method} {path} {body} was refused but changed state"


CREATE_WITH_ROLES = 'path "auth/token/create/*" { capabilities = ["create", "update"] }'
CREATE_PLAIN = '''
path "auth/token/create" { capabilities = ["create", "update"] }
path "auth/token/create-orphan" { capabilities = ["create", "update"] }
'''


def test_a_token_that_may_only_create_tokens_cannot_mint_root(client, addr):
    """The reported attack: a role with no allowed policies, then policies=[root]."""
    creator = unique("creator")
    policy(client, creator, CREATE_WITH_ROLES)
    attacker = holder(client, creator)
    role = unique("plain")
    client.auth.token.create_or_update_role(role)
    for policies in (["root"], ["Root"], [" ROOT "], ["root", "default"]):
        refused(addr, attacker, "POST", f"auth/token/create/{role}", {"policies": policies}, 400)
    refused(addr, attacker, "POST", "sys/mounts/x", {"type": "kv"}, 403)


def test_root_comes_only_from_root_through_roles_that_allow_it(client, addr):
    creator = unique("creator")
    policy(client, creator, CREATE_PLAIN + CREATE_WITH_ROLES)
    attacker = holder(client, creator)
    allows_root = unique("allows-root")
    client.auth.token.create_or_update_role(allows_root, allowed_policies=["root", creator])
    globbed = unique("glob")
    call(addr, DEV_ROOT_TOKEN, "POST", f"auth/token/roles/{globbed}", {"allowed_policies_glob": ["*"]})
    for path, body in [
        ("auth/token/create", {"policies": ["root"]}),
        ("auth/token/create-orphan", {"policies": ["root"]}),
        (f"auth/token/create/{allows_root}", {"policies": ["root"]}),
        (f"auth/token/create/{globbed}", {"policies": ["root"]}),
    ]:
        refused(addr, attacker, "POST", path, body, 400)


def test_children_are_subsets_and_roles_are_used_only_through_their_path(client, addr):
    creator, other = unique("creator"), unique("other")
    policy(client, creator, CREATE_PLAIN)
    policy(client, other, 'path "secret/data/other" { capabilities = ["read"] }')
    attacker = holder(client, creator)
    refused(addr, attacker, "POST", "auth/token/create", {"policies": [other]}, 400)
    refused(addr, attacker, "POST", "auth/token/create-orphan", {"policies": [other]}, 400)
    role = unique("grants-other")
    client.auth.token.create_or_update_role(role, allowed_policies=[other])
    refused(addr, attacker, "POST", "auth/token/create", {"role_name": role}, 400)
    refused(addr, attacker, "POST", f"auth/token/create/{role}", {}, 403)
    open_role = unique("open")
    client.auth.token.create_or_update_role(open_role, disallowed_policies=[creator])
    policy(client, creator + "-r", CREATE_WITH_ROLES)
    attacker2 = holder(client, creator, creator + "-r")
    refused(addr, attacker2, "POST", f"auth/token/create/{open_role}", {"policies": [other]}, 400)
    refused(addr, attacker2, "POST", f"auth/token/create/{open_role}", {"policies": [creator]}, 400)


def test_periodic_orphan_and_custom_id_tokens_need_sudo(client, addr):
    creator = unique("creator")
    policy(client, creator, CREATE_PLAIN)
    attacker = holder(client, creator)
    refused(addr, attacker, "POST", "auth/token/create", {"period": "1h"}, 400)
    refused(addr, attacker, "POST", "auth/token/create", {"no_parent": True}, 400)
    refused(addr, attacker, "POST", "auth/token/create", {"id": unique("chosen")}, 400)


def test_a_limited_use_token_cannot_create_children(client, addr):
    creator = unique("creator")
    policy(client, creator, CREATE_PLAIN)
    limited = client.auth.token.create(policies=[creator], num_uses=5)["auth"]["client_token"]
    before = state(addr)
    resp = call(addr, limited, "POST", "auth/token/create", {})
    assert resp.status_code == 400, resp.text
    assert state(addr) == before


def test_renewal_never_passes_the_token_roles_maximum(client, addr):
    role = unique("short")
    call(addr, DEV_ROOT_TOKEN, "POST", f"auth/token/roles/{role}", {"token_ttl": "1h", "token_max_ttl": "90m"})
    token = call(addr, DEV_ROOT_TOKEN, "POST", f"auth/token/create/{role}", {"policies": ["default"]}).json()["auth"]["client_token"]
    renewed = hvac.Client(url=addr, token=token).auth.token.renew_self(increment="24h")
    assert renewed["auth"]["lease_duration"] <= 90 * 60
    assert any("max_ttl" in w for w in renewed.get("warnings") or []), renewed


def test_identity_policies_cannot_contain_root(client, addr):
    name = unique("e")
    for path, body in [
        ("identity/entity", {"name": name, "policies": ["root"]}),
        ("identity/entity", {"name": name, "policies": ["ROOT", "default"]}),
        ("identity/group", {"name": name, "policies": ["root"]}),
    ]:
        refused(addr, DEV_ROOT_TOKEN, "POST", path, body, 400)


def test_listing_leases_needs_sudo(client, addr):
    name = unique("leases")
    policy(client, name, 'path "sys/leases/lookup/*" { capabilities = ["list", "update"] }')
    token = holder(client, name)
    refused(addr, token, "LIST", "sys/leases/lookup/auth/token/create/", None, 403)


def test_secret_id_metadata_cannot_join_a_dynamic_group(client, addr):
    mount = unique("approle")
    client.sys.enable_auth_method("approle", path=mount)
    secret_policy = unique("prod-secret")
    policy(client, secret_policy, 'path "secret/data/prod-only" { capabilities = ["read"] }')
    client.secrets.kv.v2.create_or_update_secret(path="prod-only", secret={"k": "v"})
    group = unique("prod")
    created = call(addr, DEV_ROOT_TOKEN, "POST", "identity/group", {
        "name": group, "type": "dynamic", "policies": [secret_policy],
        "rule": "any {instance.compartment.id = 'prod-escalation'}"})
    assert created.status_code == 200, created.text
    call(addr, DEV_ROOT_TOKEN, "POST", f"auth/{mount}/role/app", {})
    sid_policy = unique("sid-gen")
    policy(client, sid_policy, f'path "auth/{mount}/role/app/secret-id" {{ capabilities = ["update"] }}')
    attacker = holder(client, sid_policy)
    role_id = call(addr, DEV_ROOT_TOKEN, "GET", f"auth/{mount}/role/app/role-id").json()["data"]["role_id"]
    sid = call(addr, attacker, "POST", f"auth/{mount}/role/app/secret-id",
               {"metadata": json.dumps({"instance.compartment.id": "prod-escalation"})}).json()["data"]["secret_id"]
    login = call(addr, None, "POST", f"auth/{mount}/login", {"role_id": role_id, "secret_id": sid}).json()["auth"]
    assert secret_policy not in (login.get("identity_policies") or [])
    assert call(addr, login["client_token"], "GET", "secret/data/prod-only").status_code == 403
