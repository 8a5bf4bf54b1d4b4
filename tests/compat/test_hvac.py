"""Compatibility of Coffer with the real `hvac` Python client (2.4.0).

Every test drives a real server process through hvac's own methods (or raw `requests` where
hvac has no method), and asserts what HashiCorp Vault answers for the same calls. Tests that
share the dev server work under uniquely named mounts, policies and roles.
"""

import json
import time

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import DEV_ROOT_TOKEN, unique


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def kv_mount(client, version="2", **kwargs):
    """Enable a fresh KV engine and return its path."""
    path = unique(f"kv{version}")
    client.sys.enable_secrets_engine(backend_type="kv", path=path, options={"version": version}, **kwargs)
    return path


def mounts(client):
    """The mount table keyed by path (with trailing slash)."""
    return client.sys.list_mounted_secrets_engines()["data"]


def token_client(addr, token):
    return hvac.Client(url=addr, token=token)


def raw(addr, method, path, token=DEV_ROOT_TOKEN, **kwargs):
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers.setdefault("X-Vault-Token", token)
    return requests.request(method, f"{addr}/v1/{path}", headers=headers, timeout=10, **kwargs)


TOKEN_CREATOR_POLICY = """
path "auth/token/create" {
  capabilities = ["create", "update"]
}
path "auth/token/create-orphan" {
  capabilities = ["create", "update"]
}
"""


def token_creator(client, addr):
    """A non-root client whose policy lets it create child tokens (the default policy does not)."""
    name = unique("creator")
    client.sys.create_or_update_policy(name=name, policy=TOKEN_CREATOR_POLICY)
    token = client.auth.token.create(policies=[name])["auth"]["client_token"]
    return token, name


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


# --------------------------------------------------------------------------------------------
# Health and dev mode
# --------------------------------------------------------------------------------------------


def test_dev_server_prints_root_token_and_is_unsealed(dev_server, client):
    assert "Root Token: root" in dev_server.log()
    assert client.is_authenticated()
    assert client.sys.is_initialized() is True
    assert client.sys.is_sealed() is False
    health = client.sys.read_health_status(method="GET")
    assert health["initialized"] is True and health["sealed"] is False


def test_dev_server_mounts_kv_v2_at_secret(client):
    table = mounts(client)
    assert table["secret/"]["type"] == "kv"
    assert table["secret/"]["options"]["version"] == "2"
    assert table["sys/"]["type"] == "system"


def test_unknown_token_is_forbidden(addr):
    with pytest.raises(exceptions.Forbidden):
        token_client(addr, "not-a-real-token").secrets.kv.v2.read_secret_version(
            path="x", raise_on_deleted_version=True
        )
    assert token_client(addr, "not-a-real-token").is_authenticated() is False


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


def test_token_create_with_policies_ttl_meta_and_lookup(client):
    created = client.auth.token.create(policies=["alpha", "beta"], ttl="1h", meta={"team": "ops"})
    auth = created["auth"]
    assert auth["client_token"] and auth["accessor"]
    assert auth["client_token"] != auth["accessor"]
    assert sorted(auth["policies"]) == ["alpha", "beta", "default"]
    assert sorted(auth["token_policies"]) == ["alpha", "beta", "default"]
    assert auth["metadata"] == {"team": "ops"}
    assert auth["lease_duration"] == 3600
    assert auth["renewable"] is True
    assert auth["orphan"] is False

    data = client.auth.token.lookup(auth["client_token"])["data"]
    assert data["id"] == auth["client_token"]
    assert data["accessor"] == auth["accessor"]
    assert sorted(data["policies"]) == ["alpha", "beta", "default"]
    assert data["meta"] == {"team": "ops"}
    assert data["creation_ttl"] == 3600
    assert 3500 <= data["ttl"] <= 3600
    assert data["num_uses"] == 0
    assert data["orphan"] is False
    assert data["path"] == "auth/token/create"
    assert data["display_name"] == "token-token", "Vault prefixes the display name hvac sends with token-"
    assert data["renewable"] is True
    assert data["expire_time"]


def test_token_lookup_self_reports_the_root_token(client):
    data = client.auth.token.lookup_self()["data"]
    assert data["id"] == DEV_ROOT_TOKEN
    assert data["policies"] == ["root"]
    assert data["ttl"] == 0
    assert data["expire_time"] is None


def test_token_without_default_policy(client):
    auth = client.auth.token.create(policies=["alpha"], no_default_policy=True)["auth"]
    assert auth["policies"] == ["alpha"]


def test_use_limited_token_is_revoked_after_its_uses(client, addr):
    token = client.auth.token.create(policies=["default"], num_uses=2)["auth"]["client_token"]
    assert client.auth.token.lookup(token)["data"]["num_uses"] == 2
    limited = token_client(addr, token)
    limited.auth.token.lookup_self()
    assert client.auth.token.lookup(token)["data"]["num_uses"] == 1
    limited.auth.token.lookup_self()
    with pytest.raises(exceptions.Forbidden):
        limited.auth.token.lookup_self()
    with pytest.raises(exceptions.Forbidden):
        client.auth.token.lookup(token)


def test_periodic_token_reports_its_period(client):
    auth = client.auth.token.create(policies=["default"], period="30m")["auth"]
    assert auth["lease_duration"] == 1800
    data = client.auth.token.lookup(auth["client_token"])["data"]
    assert data["period"] == 1800
    renewed = client.auth.token.renew(auth["client_token"], increment="5h")["auth"]
    assert renewed["lease_duration"] == 1800, "a periodic token renews to its period"


def test_orphan_tokens_have_no_parent(client):
    by_flag = client.auth.token.create(policies=["default"], no_parent=True)["auth"]
    assert by_flag["orphan"] is True
    assert client.auth.token.lookup(by_flag["client_token"])["data"]["orphan"] is True
    by_path = client.auth.token.create_orphan(policies=["default"])["auth"]
    assert by_path["orphan"] is True
    assert client.auth.token.lookup(by_path["client_token"])["data"]["path"] == "auth/token/create-orphan"


def test_token_create_with_explicit_id(client):
    wanted = unique("mytoken")
    auth = client.auth.token.create(id=wanted, policies=["default"])["auth"]
    assert auth["client_token"] == wanted
    assert client.auth.token.lookup(wanted)["data"]["id"] == wanted


def test_lookup_accessor_hides_the_token_id(client):
    auth = client.auth.token.create(policies=["default"], meta={"k": "v"})["auth"]
    data = client.auth.token.lookup_accessor(auth["accessor"])["data"]
    assert data["accessor"] == auth["accessor"]
    assert data["id"] == ""
    assert data["meta"] == {"k": "v"}


def test_list_accessors_is_refused_because_accessors_are_only_stored_hashed(client):
    # A deliberate difference from Vault: Coffer keeps no plaintext accessor to list.
    with pytest.raises(hvac.exceptions.InvalidRequest, match="salted hashes"):
        client.auth.token.list_accessors()


def test_renew_and_renew_self(client, addr):
    auth = client.auth.token.create(policies=["default"], ttl="1h")["auth"]
    renewed = client.auth.token.renew(auth["client_token"], increment="2h")["auth"]
    assert renewed["client_token"] == auth["client_token"]
    assert renewed["lease_duration"] == 7200
    assert 7100 <= client.auth.token.lookup(auth["client_token"])["data"]["ttl"] <= 7200

    own = token_client(addr, auth["client_token"])
    again = own.auth.token.renew_self(increment="3h")["auth"]
    assert again["lease_duration"] == 10800

    by_accessor = client.auth.token.renew_accessor(auth["accessor"], increment="4h")["auth"]
    assert by_accessor["lease_duration"] == 14400
    assert by_accessor["client_token"] == ""


def test_non_renewable_token_cannot_be_renewed(client):
    auth = client.auth.token.create(policies=["default"], ttl="1h", renewable=False)["auth"]
    assert auth["renewable"] is False
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.renew(auth["client_token"])


def test_revoke_token(client, addr):
    token = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke(token)
    with pytest.raises(exceptions.Forbidden):
        client.auth.token.lookup(token)
    with pytest.raises(exceptions.Forbidden):
        token_client(addr, token).auth.token.lookup_self()


def test_revoke_accessor(client, addr):
    auth = client.auth.token.create(policies=["default"])["auth"]
    client.auth.token.revoke_accessor(auth["accessor"])
    with pytest.raises(exceptions.Forbidden):
        token_client(addr, auth["client_token"]).auth.token.lookup_self()


def test_revoke_self(client, addr):
    token = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    own = token_client(addr, token)
    own.auth.token.revoke_self()
    with pytest.raises(exceptions.Forbidden):
        own.auth.token.lookup_self()


def test_revoking_parent_revokes_children(client, addr):
    parent, policy = token_creator(client, addr)
    child = token_client(addr, parent).auth.token.create(policies=[policy])["auth"]
    assert child["orphan"] is False
    grandchild = token_client(addr, child["client_token"]).auth.token.create(policies=["default"])["auth"]
    sibling = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke(parent)
    for token in (child["client_token"], grandchild["client_token"]):
        with pytest.raises(exceptions.Forbidden):
            client.auth.token.lookup(token)
    assert client.auth.token.lookup(sibling)["data"]["id"] == sibling, "unrelated tokens survive"


def test_orphan_child_survives_parent_revocation(client, addr):
    parent, _ = token_creator(client, addr)
    orphan = token_client(addr, parent).auth.token.create_orphan(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke(parent)
    assert client.auth.token.lookup(orphan)["data"]["orphan"] is True


def test_revoke_and_orphan_children_keeps_children(client, addr):
    parent, _ = token_creator(client, addr)
    child = token_client(addr, parent).auth.token.create(policies=["default"])["auth"]["client_token"]
    client.auth.token.revoke_and_orphan_children(parent)
    with pytest.raises(exceptions.Forbidden):
        client.auth.token.lookup(parent)
    assert client.auth.token.lookup(child)["data"]["orphan"] is True


def test_default_policy_does_not_allow_creating_tokens(client, addr):
    token = client.auth.token.create(policies=["default"])["auth"]["client_token"]
    with pytest.raises(exceptions.Forbidden):
        token_client(addr, token).auth.token.create(policies=["default"])


def test_non_root_token_cannot_grant_policies_it_lacks(client, addr):
    token, policy = token_creator(client, addr)
    creator = token_client(addr, token)
    with pytest.raises(exceptions.InvalidRequest):
        creator.auth.token.create(policies=["admin"])
    child = creator.auth.token.create(policies=[policy])["auth"]
    assert sorted(child["policies"]) == sorted([policy, "default"])


def test_token_roles_create_read_list_use_and_delete(client):
    role = unique("role")
    client.auth.token.create_or_update_role(
        role, allowed_policies=["alpha", "beta"], orphan=True, token_period="1h"
    )
    data = client.auth.token.read_role(role)["data"]
    assert data["name"] == role
    assert sorted(data["allowed_policies"]) == ["alpha", "beta"]
    assert data["orphan"] is True
    assert data["renewable"] is True
    assert data["token_period"] == 3600

    assert role in client.auth.token.list_roles()["data"]["keys"]

    auth = client.auth.token.create(role_name=role, policies=["alpha"])["auth"]
    assert sorted(auth["policies"]) == ["alpha", "default"]
    assert auth["orphan"] is True
    assert auth["lease_duration"] == 3600
    looked = client.auth.token.lookup(auth["client_token"])["data"]
    assert looked["role"] == role
    assert looked["path"] == f"auth/token/create/{role}"
    assert looked["period"] == 3600

    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.create(role_name=role, policies=["gamma"])

    client.auth.token.delete_role(role)
    with pytest.raises(exceptions.InvalidPath):
        client.auth.token.read_role(role)
    with pytest.raises(exceptions.InvalidRequest):
        client.auth.token.create(role_name=role)


# --------------------------------------------------------------------------------------------
# Policies
# --------------------------------------------------------------------------------------------

LIMITED_POLICY = """
path "secret/data/allowed/*" {
  capabilities = ["create", "read", "update"]
}
path "secret/metadata/allowed/*" {
  capabilities = ["list"]
}
"""


def test_policy_create_read_list_and_delete(client):
    name = unique("pol")
    client.sys.create_or_update_policy(name=name, policy=LIMITED_POLICY)
    read = client.sys.read_policy(name)
    assert read["data"]["name"] == name
    assert 'path "secret/data/allowed/*"' in read["data"]["rules"]
    listed = client.sys.list_policies()["data"]["policies"]
    assert name in listed and "default" in listed and "root" in listed

    client.sys.create_or_update_policy(name=name, policy='path "x/*" { capabilities = ["deny"] }')
    assert client.sys.read_policy(name)["data"]["rules"] == 'path "x/*" { capabilities = ["deny"] }'

    client.sys.delete_policy(name)
    assert name not in client.sys.list_policies()["data"]["policies"]
    with pytest.raises(exceptions.InvalidPath):
        client.sys.read_policy(name)


def test_policy_given_as_dict_is_sent_as_json(client):
    name = unique("jsonpol")
    client.sys.create_or_update_policy(
        name=name, policy={"path": {"secret/data/j/*": {"capabilities": ["read"]}}}
    )
    caps = client.sys.get_capabilities(
        paths=["secret/data/j/x"],
        token=client.auth.token.create(policies=[name])["auth"]["client_token"],
    )
    assert caps["data"]["capabilities"] == ["read"]


def test_invalid_policy_is_rejected(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.create_or_update_policy(name=unique("bad"), policy='path "x" { capabilities = ["fly"] }')
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.create_or_update_policy(name=unique("bad"), policy="this is not hcl {")


def test_root_and_default_policies_are_protected(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.delete_policy("root")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.delete_policy("default")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.create_or_update_policy(name="root", policy='path "*" { capabilities = ["read"] }')


def test_limited_token_is_forbidden_outside_its_policy(client, addr):
    name = unique("limited")
    client.sys.create_or_update_policy(name=name, policy=LIMITED_POLICY)
    token = client.auth.token.create(policies=[name])["auth"]["client_token"]
    limited = token_client(addr, token)

    limited.secrets.kv.v2.create_or_update_secret(path="allowed/app", secret={"k": "v"})
    read = limited.secrets.kv.v2.read_secret_version(path="allowed/app", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"k": "v"}
    assert limited.secrets.kv.v2.list_secrets(path="allowed")["data"]["keys"] == ["app"]

    client.secrets.kv.v2.create_or_update_secret(path="forbidden/app", secret={"k": "v"})
    with pytest.raises(exceptions.Forbidden):
        limited.secrets.kv.v2.read_secret_version(path="forbidden/app", raise_on_deleted_version=True)
    with pytest.raises(exceptions.Forbidden):
        limited.secrets.kv.v2.create_or_update_secret(path="forbidden/app", secret={"k": "x"})
    with pytest.raises(exceptions.Forbidden):
        limited.secrets.kv.v2.delete_metadata_and_all_versions(path="allowed/app")
    with pytest.raises(exceptions.Forbidden):
        limited.sys.list_mounted_secrets_engines()
    with pytest.raises(exceptions.Forbidden):
        limited.sys.create_or_update_policy(name=name, policy='path "*" { capabilities = ["sudo"] }')
    assert client.secrets.kv.v2.read_secret_version(path="forbidden/app", raise_on_deleted_version=True)[
        "data"
    ]["data"] == {"k": "v"}


def test_capabilities_self_and_of_other_tokens(client, addr):
    name = unique("caps")
    client.sys.create_or_update_policy(name=name, policy=LIMITED_POLICY)
    auth = client.auth.token.create(policies=[name])["auth"]
    limited = token_client(addr, auth["client_token"])

    mine = limited.sys.get_capabilities(paths=["secret/data/allowed/x", "sys/mounts"])["data"]
    assert sorted(mine["secret/data/allowed/x"]) == ["create", "read", "update"]
    assert mine["sys/mounts"] == ["deny"]

    raw_self = raw(addr, "POST", "sys/capabilities-self", token=auth["client_token"], json={"path": "secret/data/allowed/y"})
    assert raw_self.status_code == 200
    assert sorted(raw_self.json()["capabilities"]) == ["create", "read", "update"]

    by_token = client.sys.get_capabilities(paths=["secret/metadata/allowed/x"], token=auth["client_token"])
    assert by_token["data"]["capabilities"] == ["list"]
    by_accessor = client.sys.get_capabilities(paths=["secret/data/other"], accessor=auth["accessor"])
    assert by_accessor["data"]["capabilities"] == ["deny"]
    assert client.sys.get_capabilities(paths=["anything/at/all"])["data"]["capabilities"] == ["root"]


# --------------------------------------------------------------------------------------------
# Mounts
# --------------------------------------------------------------------------------------------


def test_enable_kv_engines_with_options_description_and_config(client):
    v1 = unique("eng1")
    v2 = unique("eng2")
    client.sys.enable_secrets_engine(
        backend_type="kv",
        path=v1,
        description="version one",
        options={"version": "1"},
        config={"default_lease_ttl": "1h", "max_lease_ttl": "2h"},
    )
    client.sys.enable_secrets_engine(backend_type="kv", path=v2, description="version two", options={"version": "2"})
    table = mounts(client)
    assert table[f"{v1}/"]["type"] == "kv"
    assert table[f"{v1}/"]["description"] == "version one"
    assert table[f"{v1}/"]["options"]["version"] == "1"
    assert table[f"{v1}/"]["config"]["default_lease_ttl"] == 3600
    assert table[f"{v1}/"]["config"]["max_lease_ttl"] == 7200
    assert table[f"{v2}/"]["options"]["version"] == "2"
    assert table[f"{v2}/"]["description"] == "version two"
    assert table[f"{v1}/"]["accessor"] != table[f"{v2}/"]["accessor"]

    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine(backend_type="kv", path=v1)
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine(backend_type="no-such-engine", path=unique("x"))


def test_tune_and_read_mount_configuration(client):
    path = kv_mount(client, "2")
    client.sys.tune_mount_configuration(
        path=path, default_lease_ttl="30m", max_lease_ttl="3h", description="tuned"
    )
    config = client.sys.read_mount_configuration(path)["data"]
    assert config["default_lease_ttl"] == 1800
    assert config["max_lease_ttl"] == 10800
    assert config["description"] == "tuned"
    table = mounts(client)
    assert table[f"{path}/"]["description"] == "tuned"
    assert table[f"{path}/"]["config"]["default_lease_ttl"] == 1800


def test_move_backend_keeps_the_data(client):
    source = kv_mount(client, "2")
    target = unique("moved")
    client.secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"}, mount_point=source)
    client.sys.move_backend(from_path=source, to_path=target)
    assert wait_for(lambda: f"{target}/" in mounts(client)), "remount never finished"
    table = mounts(client)
    assert f"{source}/" not in table
    read = client.secrets.kv.v2.read_secret_version(path="app", mount_point=target, raise_on_deleted_version=True)
    assert read["data"]["data"] == {"k": "v"}


def test_disable_secrets_engine_removes_mount_and_data(client):
    path = kv_mount(client, "1")
    client.secrets.kv.v1.create_or_update_secret(path="a", secret={"k": "v"}, mount_point=path)
    client.sys.disable_secrets_engine(path)
    assert f"{path}/" not in mounts(client)
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v1.read_secret(path="a", mount_point=path)
    client.sys.enable_secrets_engine(backend_type="kv", path=path, options={"version": "1"})
    with pytest.raises(exceptions.InvalidPath):
        client.secrets.kv.v1.read_secret(path="a", mount_point=path)


def test_system_mounts_cannot_be_disabled_or_shadowed(client):
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.disable_secrets_engine("sys")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine(backend_type="kv", path="sys/inner")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_secrets_engine(backend_type="kv", path="auth/x")


def test_enabling_an_unknown_auth_method_is_refused(client):
    path = unique("nope")
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.enable_auth_method(method_type="no-such-method", path=path)
    methods = client.sys.list_auth_methods()["data"]
    assert methods["token/"]["type"] == "token"
    assert f"{path}/" not in methods


# --------------------------------------------------------------------------------------------
# KV version 1
# --------------------------------------------------------------------------------------------


def test_kv_v1_create_read_list_and_delete(client):
    mount = kv_mount(client, "1")
    kv1 = client.secrets.kv.v1
    kv1.create_or_update_secret(path="app/db", secret={"user": "ann", "port": 5432}, mount_point=mount)
    kv1.create_or_update_secret(path="app/cache", secret={"size": 1}, mount_point=mount)
    kv1.create_or_update_secret(path="top", secret={"x": "y"}, mount_point=mount)

    read = kv1.read_secret(path="app/db", mount_point=mount)
    assert read["data"] == {"user": "ann", "port": 5432}
    assert read["lease_duration"] == 2764800

    assert kv1.list_secrets(path="app", mount_point=mount)["data"]["keys"] == ["cache", "db"]
    assert kv1.list_secrets(path="", mount_point=mount)["data"]["keys"] == ["app/", "top"]

    kv1.create_or_update_secret(path="app/db", secret={"user": "bob"}, mount_point=mount)
    assert kv1.read_secret(path="app/db", mount_point=mount)["data"] == {"user": "bob"}, "writes replace"

    kv1.delete_secret(path="app/db", mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        kv1.read_secret(path="app/db", mount_point=mount)
    assert kv1.list_secrets(path="app", mount_point=mount)["data"]["keys"] == ["cache"]
    with pytest.raises(exceptions.InvalidPath):
        kv1.list_secrets(path="nothing-here", mount_point=mount)


def test_kv_v1_ttl_key_sets_lease_duration(client):
    mount = kv_mount(client, "1")
    client.secrets.kv.v1.create_or_update_secret(path="t", secret={"ttl": "1h", "v": 1}, mount_point=mount)
    read = client.secrets.kv.v1.read_secret(path="t", mount_point=mount)
    assert read["lease_duration"] == 3600
    assert read["data"] == {"ttl": "1h", "v": 1}


# --------------------------------------------------------------------------------------------
# KV version 2
# --------------------------------------------------------------------------------------------


def read_v2(client, path, mount, version=None, raise_on_deleted=True):
    return client.secrets.kv.v2.read_secret_version(
        path=path, version=version, mount_point=mount, raise_on_deleted_version=raise_on_deleted
    )


def test_kv_v2_configure_and_read_configuration(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    defaults = kv2.read_configuration(mount_point=mount)["data"]
    assert defaults == {"cas_required": False, "delete_version_after": "0s", "max_versions": 0}

    kv2.configure(max_versions=5, cas_required=True, delete_version_after="1h", mount_point=mount)
    config = kv2.read_configuration(mount_point=mount)["data"]
    assert config["max_versions"] == 5
    assert config["cas_required"] is True
    assert config["delete_version_after"] == "1h0m0s"

    with pytest.raises(exceptions.InvalidRequest):
        kv2.create_or_update_secret(path="needs-cas", secret={"a": 1}, mount_point=mount)
    kv2.create_or_update_secret(path="needs-cas", secret={"a": 1}, cas=0, mount_point=mount)
    metadata = kv2.read_secret_metadata(path="needs-cas", mount_point=mount)["data"]
    assert metadata["delete_version_after"] == "0s", "key metadata keeps its own setting"


def test_kv_v2_create_with_cas_and_read_versions(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    first = kv2.create_or_update_secret(path="app", secret={"user": "ann", "pw": "one"}, cas=0, mount_point=mount)
    assert first["data"]["version"] == 1
    assert first["data"]["deletion_time"] == ""
    assert first["data"]["destroyed"] is False
    assert first["data"]["created_time"]

    with pytest.raises(exceptions.InvalidRequest):
        kv2.create_or_update_secret(path="app", secret={"pw": "x"}, cas=0, mount_point=mount)
    with pytest.raises(exceptions.InvalidRequest):
        kv2.create_or_update_secret(path="app", secret={"pw": "x"}, cas=5, mount_point=mount)
    second = kv2.create_or_update_secret(path="app", secret={"user": "ann", "pw": "two"}, cas=1, mount_point=mount)
    assert second["data"]["version"] == 2
    kv2.create_or_update_secret(path="app", secret={"user": "ann", "pw": "three"}, mount_point=mount)

    latest = read_v2(client, "app", mount)["data"]
    assert latest["data"] == {"user": "ann", "pw": "three"}
    assert latest["metadata"]["version"] == 3
    assert read_v2(client, "app", mount, version=1)["data"]["data"] == {"user": "ann", "pw": "one"}
    assert read_v2(client, "app", mount, version=2)["data"]["metadata"]["version"] == 2
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "app", mount, version=9)
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "never-written", mount)

    via_read_secret = kv2.read_secret(path="app", mount_point=mount, raise_on_deleted_version=True)
    assert via_read_secret["data"]["data"]["pw"] == "three"


def test_kv_v2_patch_merges_into_latest_version(client, addr):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    kv2.create_or_update_secret(path="app", secret={"user": "ann", "pw": "one"}, mount_point=mount)
    patched = kv2.patch(path="app", secret={"pw": "two", "extra": True}, mount_point=mount)
    assert patched["data"]["version"] == 2
    assert read_v2(client, "app", mount)["data"]["data"] == {"user": "ann", "pw": "two", "extra": True}

    with pytest.raises(exceptions.InvalidPath):
        kv2.patch(path="missing", secret={"a": 1}, mount_point=mount)

    # The HTTP PATCH verb with a JSON merge patch: null removes a key.
    response = raw(
        addr,
        "PATCH",
        f"{mount}/data/app",
        headers={"Content-Type": "application/merge-patch+json"},
        data=json.dumps({"data": {"extra": None, "pw": "three"}}),
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["version"] == 3
    assert read_v2(client, "app", mount)["data"]["data"] == {"user": "ann", "pw": "three"}

    wrong_type = raw(addr, "PATCH", f"{mount}/data/app", json={"data": {"pw": "four"}})
    assert wrong_type.status_code == 415 or wrong_type.status_code == 400, wrong_type.text
    assert read_v2(client, "app", mount)["data"]["metadata"]["version"] == 3


def test_kv_v2_delete_latest_version_and_read_deleted(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    kv2.create_or_update_secret(path="app", secret={"v": 1}, mount_point=mount)
    kv2.create_or_update_secret(path="app", secret={"v": 2}, mount_point=mount)
    kv2.delete_latest_version_of_secret(path="app", mount_point=mount)

    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "app", mount)
    soft = read_v2(client, "app", mount, raise_on_deleted=False)
    assert soft["data"]["data"] is None
    assert soft["data"]["metadata"]["version"] == 2
    assert soft["data"]["metadata"]["deletion_time"] != ""
    assert read_v2(client, "app", mount, version=1)["data"]["data"] == {"v": 1}


def test_kv_v2_delete_undelete_and_destroy_versions(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    for value in (1, 2, 3):
        kv2.create_or_update_secret(path="app", secret={"v": value}, mount_point=mount)

    kv2.delete_secret_versions(path="app", versions=[1, 2], mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "app", mount, version=1)
    versions = kv2.read_secret_metadata(path="app", mount_point=mount)["data"]["versions"]
    assert versions["1"]["deletion_time"] != "" and versions["2"]["deletion_time"] != ""
    assert versions["3"]["deletion_time"] == ""

    kv2.undelete_secret_versions(path="app", versions=[1], mount_point=mount)
    assert read_v2(client, "app", mount, version=1)["data"]["data"] == {"v": 1}
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "app", mount, version=2)

    kv2.destroy_secret_versions(path="app", versions=[1], mount_point=mount)
    versions = kv2.read_secret_metadata(path="app", mount_point=mount)["data"]["versions"]
    assert versions["1"]["destroyed"] is True
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "app", mount, version=1, raise_on_deleted=False)
    kv2.undelete_secret_versions(path="app", versions=[1], mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "app", mount, version=1)
    assert read_v2(client, "app", mount)["data"]["data"] == {"v": 3}

    # hvac refuses an empty list itself, so send it raw: Vault answers 400.
    assert raw(client.url, "POST", f"{mount}/delete/app", json={"versions": []}).status_code == 400


def test_kv_v2_list_secrets(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    for path in ("dir/b", "dir/a", "dir/sub/c", "other"):
        kv2.create_or_update_secret(path=path, secret={"x": 1}, mount_point=mount)
    assert kv2.list_secrets(path="dir", mount_point=mount)["data"]["keys"] == ["a", "b", "sub/"]
    assert kv2.list_secrets(path="", mount_point=mount)["data"]["keys"] == ["dir/", "other"]
    with pytest.raises(exceptions.InvalidPath):
        kv2.list_secrets(path="empty", mount_point=mount)

    kv2.delete_latest_version_of_secret(path="dir/a", mount_point=mount)
    assert "a" in kv2.list_secrets(path="dir", mount_point=mount)["data"]["keys"], "soft delete keeps the key"


def test_kv_v2_read_secret_metadata(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    kv2.create_or_update_secret(path="app", secret={"v": 1}, mount_point=mount)
    kv2.create_or_update_secret(path="app", secret={"v": 2}, mount_point=mount)
    metadata = kv2.read_secret_metadata(path="app", mount_point=mount)["data"]
    assert metadata["current_version"] == 2
    assert metadata["oldest_version"] == 0
    assert metadata["max_versions"] == 0
    assert metadata["cas_required"] is False
    assert metadata["delete_version_after"] == "0s"
    assert metadata["custom_metadata"] is None
    assert sorted(metadata["versions"]) == ["1", "2"]
    assert metadata["created_time"] <= metadata["updated_time"]
    assert metadata["versions"]["2"]["destroyed"] is False
    with pytest.raises(exceptions.InvalidPath):
        kv2.read_secret_metadata(path="missing", mount_point=mount)


def test_kv_v2_update_metadata(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    kv2.create_or_update_secret(path="app", secret={"v": 1}, mount_point=mount)
    kv2.update_metadata(
        path="app",
        max_versions=2,
        custom_metadata={"owner": "ops", "tier": "gold"},
        delete_version_after="30m",
        cas_required=True,
        mount_point=mount,
    )
    metadata = kv2.read_secret_metadata(path="app", mount_point=mount)["data"]
    assert metadata["max_versions"] == 2
    assert metadata["custom_metadata"] == {"owner": "ops", "tier": "gold"}
    assert metadata["delete_version_after"] == "30m0s"
    assert metadata["cas_required"] is True

    with pytest.raises(exceptions.InvalidRequest):
        kv2.create_or_update_secret(path="app", secret={"v": 2}, mount_point=mount)
    kv2.create_or_update_secret(path="app", secret={"v": 2}, cas=1, mount_point=mount)
    kv2.create_or_update_secret(path="app", secret={"v": 3}, cas=2, mount_point=mount)

    metadata = kv2.read_secret_metadata(path="app", mount_point=mount)["data"]
    assert metadata["current_version"] == 3
    assert sorted(metadata["versions"]) == ["2", "3"], "max_versions prunes the oldest version"
    assert metadata["oldest_version"] == 2
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "app", mount, version=1)
    assert read_v2(client, "app", mount)["data"]["metadata"]["custom_metadata"] == {"owner": "ops", "tier": "gold"}


def test_kv_v2_delete_metadata_and_all_versions(client):
    mount = kv_mount(client, "2")
    kv2 = client.secrets.kv.v2
    kv2.create_or_update_secret(path="dir/app", secret={"v": 1}, mount_point=mount)
    kv2.create_or_update_secret(path="dir/keep", secret={"v": 1}, mount_point=mount)
    kv2.delete_metadata_and_all_versions(path="dir/app", mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        kv2.read_secret_metadata(path="dir/app", mount_point=mount)
    with pytest.raises(exceptions.InvalidPath):
        read_v2(client, "dir/app", mount, raise_on_deleted=False)
    assert kv2.list_secrets(path="dir", mount_point=mount)["data"]["keys"] == ["keep"]
    again = kv2.create_or_update_secret(path="dir/app", secret={"v": 2}, mount_point=mount)
    assert again["data"]["version"] == 1, "versions start over after the metadata is gone"


def test_kv_v2_read_secret_subkeys(client, addr):
    mount = kv_mount(client, "2")
    client.secrets.kv.v2.create_or_update_secret(
        path="app", secret={"a": 1, "nested": {"b": "x", "deeper": {"c": True}}}, mount_point=mount
    )
    client.secrets.kv.v2.create_or_update_secret(path="app", secret={"only": "v2"}, mount_point=mount)
    subkeys = client.adapter.get(f"/v1/{mount}/subkeys/app", params={"version": 1})["data"]
    assert subkeys["subkeys"] == {"a": None, "nested": {"b": None, "deeper": {"c": None}}}
    assert subkeys["metadata"]["version"] == 1
    shallow = client.adapter.get(f"/v1/{mount}/subkeys/app", params={"version": 1, "depth": 1})["data"]
    assert shallow["subkeys"] == {"a": None, "nested": None}
    latest = client.adapter.get(f"/v1/{mount}/subkeys/app")["data"]
    assert latest["subkeys"] == {"only": None}
    assert raw(addr, "GET", f"{mount}/subkeys/missing").status_code == 404


def test_kv_v2_secret_under_default_secret_mount(client):
    path = unique("default-mount")
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"hello": "world"})
    assert client.secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)["data"]["data"] == {
        "hello": "world"
    }


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_malformed_json_is_a_400_with_errors(addr):
    response = raw(addr, "POST", "secret/data/bad-json", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert isinstance(body["errors"], list) and body["errors"]


def test_non_object_json_body_is_a_400(addr):
    response = raw(addr, "POST", "sys/policies/acl/x", data="[1, 2]")
    assert response.status_code == 400
    assert response.json()["errors"]


@pytest.mark.parametrize(
    "path,body",
    [
        ("auth/token/create", {"num_uses": "lots"}),
        ("auth/token/create", {"ttl": {"hours": 1}}),
        ("auth/token/create", {"policies": {"a": 1}}),
        ("secret/config", {"max_versions": "many"}),
        ("secret/config", {"cas_required": "perhaps"}),
        ("sys/mounts/wrong-types", {"type": 7}),
        ("sys/policies/acl/wrong-types", {"policy": ["a", "b"]}),
        ("secret/data/wrong-types", {"data": "not an object"}),
        ("secret/data/wrong-types", {"data": {"a": 1}, "options": {"cas": "zero"}}),
    ],
)
def test_wrong_types_are_a_400(addr, path, body):
    response = raw(addr, "POST", path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errors"]


def test_missing_kv_v2_data_is_a_400(addr):
    response = raw(addr, "POST", "secret/data/no-data", json={"options": {}})
    assert response.status_code == 400, response.text


def test_namespace_header_is_a_400(addr):
    response = raw(addr, "GET", "secret/data/anything", headers={"X-Vault-Namespace": "team-a"})
    assert response.status_code == 400
    assert response.json()["errors"]
    with pytest.raises(exceptions.InvalidRequest):
        hvac.Client(url=addr, token=DEV_ROOT_TOKEN, namespace="team-a").sys.list_mounted_secrets_engines()


def test_missing_token_is_a_403_and_unknown_path_is_a_404(addr):
    assert raw(addr, "GET", "secret/data/x", token=None).status_code == 403
    assert raw(addr, "GET", "no-such-mount/x").status_code == 404
    assert raw(addr, "GET", "sys/health", token=None).status_code == 200


def test_unsupported_operation_is_a_405(addr):
    response = raw(addr, "DELETE", "sys/health")
    assert response.status_code == 405, response.text


# --------------------------------------------------------------------------------------------
# Init, unseal, seal, rekey, rotate: a file-backed server started from an HCL config
# --------------------------------------------------------------------------------------------


def init_and_unseal(server, shares=5, threshold=3):
    c = hvac.Client(url=server.addr)
    result = c.sys.initialize(shares, threshold)
    c.sys.submit_unseal_keys(result["keys"][:threshold])
    c.token = result["root_token"]
    return c, result


def test_initialize_unseal_seal_and_reunseal(file_server):
    c = hvac.Client(url=file_server.addr)
    assert c.sys.is_initialized() is False
    assert c.sys.read_init_status()["initialized"] is False
    assert requests.get(f"{file_server.addr}/v1/sys/health", timeout=5).status_code == 501

    result = c.sys.initialize(5, 3)
    assert len(result["keys"]) == 5 and len(set(result["keys"])) == 5
    assert len(result["keys_base64"]) == 5
    assert result["root_token"]
    assert c.sys.is_initialized() is True
    with pytest.raises(exceptions.InvalidRequest):
        c.sys.initialize(5, 3)

    status = c.sys.read_seal_status()
    assert status["sealed"] is True and status["initialized"] is True
    assert status["t"] == 3 and status["n"] == 5 and status["progress"] == 0
    assert requests.get(f"{file_server.addr}/v1/sys/health", timeout=5).status_code == 503

    partial = c.sys.submit_unseal_key(result["keys"][0])
    assert partial["sealed"] is True and partial["progress"] == 1
    reset = c.sys.submit_unseal_key(reset=True)
    assert reset["progress"] == 0 and reset["sealed"] is True

    unsealed = c.sys.submit_unseal_keys(result["keys"][:3])
    assert unsealed["sealed"] is False
    assert c.sys.is_sealed() is False
    assert requests.get(f"{file_server.addr}/v1/sys/health", timeout=5).status_code == 200

    c.token = result["root_token"]
    assert c.auth.token.lookup_self()["data"]["policies"] == ["root"]
    assert "secret/" not in mounts(c), "only dev mode mounts kv at secret/"

    c.sys.seal()
    assert c.sys.is_sealed() is True
    with pytest.raises(exceptions.VaultDown):
        c.auth.token.lookup_self()

    # A different subset of shares, given base64-encoded, unseals as well.
    again = c.sys.submit_unseal_keys(result["keys_base64"][2:5])
    assert again["sealed"] is False
    assert c.auth.token.lookup_self()["data"]["id"] == result["root_token"]


def test_non_root_token_cannot_seal(file_server):
    c, _ = init_and_unseal(file_server)
    token = c.auth.token.create(policies=["default"])["auth"]["client_token"]
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=file_server.addr, token=token).sys.seal()
    assert c.sys.is_sealed() is False


def test_sealed_server_answers_503_on_secret_reads(file_server):
    c, _ = init_and_unseal(file_server)
    c.sys.enable_secrets_engine(backend_type="kv", path="secret", options={"version": "2"})
    c.secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"})
    c.sys.seal()
    response = raw(file_server.addr, "GET", "secret/data/app", token=c.token)
    assert response.status_code == 503
    assert response.json()["errors"]
    with pytest.raises(exceptions.VaultDown):
        c.secrets.kv.v2.read_secret_version(path="app", raise_on_deleted_version=True)


def test_data_and_tokens_survive_a_restart(file_server):
    c, result = init_and_unseal(file_server)
    c.sys.enable_secrets_engine(backend_type="kv", path="kv", options={"version": "2"})
    c.secrets.kv.v2.create_or_update_secret(path="app", secret={"k": "v"}, mount_point="kv")
    child = c.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    policy = unique("kept")
    c.sys.create_or_update_policy(name=policy, policy='path "kv/*" { capabilities = ["read"] }')

    file_server.restart()
    assert c.sys.is_sealed() is True
    c.sys.submit_unseal_keys(result["keys"][1:4])
    assert c.secrets.kv.v2.read_secret_version(path="app", mount_point="kv", raise_on_deleted_version=True)["data"][
        "data"
    ] == {"k": "v"}
    assert c.auth.token.lookup(child)["data"]["id"] == child
    assert policy in c.sys.list_policies()["data"]["policies"]


def test_rekey_replaces_the_unseal_keys(file_server):
    c, result = init_and_unseal(file_server)
    old_keys = result["keys"]

    started = c.sys.start_rekey(secret_shares=3, secret_threshold=2)
    assert started["started"] is True
    assert started["t"] == 2 and started["n"] == 3
    assert started["nonce"]
    progress = c.sys.read_rekey_progress()
    assert progress["started"] is True and progress["nonce"] == started["nonce"]

    with pytest.raises(exceptions.InvalidRequest):
        c.sys.rekey(old_keys[0], nonce="not-the-nonce")

    rekeyed = c.sys.rekey_multi(old_keys[:3], nonce=started["nonce"])
    assert rekeyed["complete"] is True
    new_keys = rekeyed["keys"]
    assert len(new_keys) == 3 and not set(new_keys) & set(old_keys)
    assert c.sys.read_rekey_progress()["started"] is False

    c.sys.seal()
    status = c.sys.read_seal_status()
    assert status["t"] == 2 and status["n"] == 3

    with pytest.raises(exceptions.InvalidRequest):
        c.sys.submit_unseal_keys(old_keys[:3])
    assert c.sys.is_sealed() is True

    c.sys.submit_unseal_key(reset=True)
    assert c.sys.submit_unseal_keys(new_keys[1:3])["sealed"] is False
    assert c.auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_rekey_can_be_cancelled(file_server):
    c, result = init_and_unseal(file_server)
    c.sys.start_rekey(secret_shares=3, secret_threshold=2)
    c.sys.cancel_rekey()
    assert c.sys.read_rekey_progress()["started"] is False
    c.sys.seal()
    assert c.sys.submit_unseal_keys(result["keys"][:3])["sealed"] is False


def test_rotate_encryption_key(file_server):
    c, result = init_and_unseal(file_server)
    c.sys.enable_secrets_engine(backend_type="kv", path="kv", options={"version": "1"})
    c.secrets.kv.v1.create_or_update_secret(path="before", secret={"k": "old"}, mount_point="kv")

    before = c.sys.get_encryption_key_status()["data"]
    assert before["term"] == 1
    assert before["install_time"]
    c.sys.rotate_encryption_key()
    after = c.sys.get_encryption_key_status()["data"]
    assert after["term"] == 2

    c.secrets.kv.v1.create_or_update_secret(path="after", secret={"k": "new"}, mount_point="kv")
    c.sys.seal()
    c.sys.submit_unseal_keys(result["keys"][:3])
    assert c.sys.get_encryption_key_status()["data"]["term"] == 2
    assert c.secrets.kv.v1.read_secret(path="before", mount_point="kv")["data"] == {"k": "old"}
    assert c.secrets.kv.v1.read_secret(path="after", mount_point="kv")["data"] == {"k": "new"}
