"""hvac against Coffer: leases, response wrapping, cubbyhole, userpass, AppRole and identity
(including a dynamic group matched on login attributes)."""

import json

import hvac
import pytest
import requests
from hvac import exceptions

from conftest import DEV_ROOT_TOKEN, unique


def token_lease_ids(client):
    try:
        keys = client.sys.list_leases("auth/token/create/")["data"]["keys"]
    except exceptions.InvalidPath:  # an empty listing is a 404, as in Vault
        return set()
    return {f"auth/token/create/{k}" for k in keys}


def test_token_leases_lookup_renew_and_revoke(client, addr):
    before = token_lease_ids(client)
    token = client.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    (lease_id,) = token_lease_ids(client) - before
    lease = client.sys.read_lease(lease_id)["data"]
    assert lease["id"] == lease_id
    assert 3590 <= lease["ttl"] <= 3600
    assert lease["renewable"] is True
    renewed = client.sys.renew_lease(lease_id, increment=7200)
    assert renewed["lease_id"] == lease_id
    assert renewed["lease_duration"] == 7200
    client.sys.revoke_lease(lease_id)
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=addr, token=token).auth.token.lookup_self()


def test_revoke_prefix_revokes_every_token_lease_under_it(client, addr):
    tokens = [client.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"] for _ in range(5)]
    client.sys.revoke_prefix("auth/token/create")
    for token in tokens:
        with pytest.raises(exceptions.Forbidden):
            hvac.Client(url=addr, token=token).auth.token.lookup_self()
    with pytest.raises(exceptions.InvalidPath):
        client.sys.list_leases("auth/token/create/")


def test_unknown_and_unrenewable_leases_are_400s(client):
    with pytest.raises(exceptions.InvalidRequest, match="invalid lease"):
        client.sys.read_lease("auth/token/create/does-not-exist")
    before = token_lease_ids(client)
    client.auth.token.create(policies=["default"], ttl="1h", renewable=False)
    (lease_id,) = token_lease_ids(client) - before
    with pytest.raises(exceptions.InvalidRequest, match="not renewable"):
        client.sys.renew_lease(lease_id)
    with pytest.raises(exceptions.InvalidRequest):
        client.sys.renew_lease(lease_id, increment="soon")


def test_wrapped_read_unwraps_once(client, addr):
    path = unique("wrapped")
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"api_key": "wrapped-abc"})
    wrapped = client.read(f"secret/data/{path}", wrap_ttl="5m")
    info = wrapped["wrap_info"]
    assert info["ttl"] == 300 and info["creation_path"] == f"secret/data/{path}"
    assert wrapped.get("data") is None
    unwrapped = hvac.Client(url=addr, token=info["token"]).sys.unwrap()
    assert unwrapped["data"]["data"]["api_key"] == "wrapped-abc"
    with pytest.raises(exceptions.InvalidRequest, match="wrapping token is not valid"):
        client.sys.unwrap(info["token"])


def test_wrap_arbitrary_data_and_lookup(client):
    wrapped = client.sys.wrap(payload={"hello": "world"}, ttl="60s")
    token = wrapped["wrap_info"]["token"]
    lookup = requests.post(f"{client.url}/v1/sys/wrapping/lookup", json={"token": token}).json()
    assert lookup["data"]["creation_ttl"] == 60
    assert client.sys.unwrap(token)["data"] == {"hello": "world"}


def test_cubbyhole_is_per_token(client, addr):
    a = hvac.Client(url=addr, token=client.auth.token.create(policies=["default"])["auth"]["client_token"])
    b = hvac.Client(url=addr, token=client.auth.token.create(policies=["default"])["auth"]["client_token"])
    a.write("cubbyhole/note", value="only-a")
    assert a.read("cubbyhole/note")["data"]["value"] == "only-a"
    assert b.read("cubbyhole/note") is None


def test_userpass_login_and_lockout_error_shape(client, addr):
    mount = unique("up")
    client.sys.enable_auth_method("userpass", path=mount)
    client.auth.userpass.create_or_update_user("carol", password="pw-carol-1", policies=["default"], mount_point=mount)
    login = hvac.Client(url=addr).auth.userpass.login("carol", "pw-carol-1", mount_point=mount)
    assert login["auth"]["policies"] == ["default"]
    assert login["auth"]["entity_id"]
    with pytest.raises(exceptions.InvalidRequest, match="invalid username or password"):
        hvac.Client(url=addr).auth.userpass.login("carol", "wrong-password", mount_point=mount)
    with pytest.raises(exceptions.InvalidRequest, match="invalid username or password"):
        hvac.Client(url=addr).auth.userpass.login("nobody", "pw-carol-1", mount_point=mount)
    user = client.auth.userpass.read_user("carol", mount_point=mount)["data"]
    assert "password" not in user


def test_approle_login_single_use_secret_id(client, addr):
    mount = unique("ar")
    client.sys.enable_auth_method("approle", path=mount)
    client.auth.approle.create_or_update_approle("app", token_policies=["default"], secret_id_num_uses=1, mount_point=mount)
    role_id = client.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id("app", mount_point=mount)["data"]["secret_id"]
    login = hvac.Client(url=addr).auth.approle.login(role_id, secret_id, mount_point=mount)
    assert login["auth"]["client_token"]
    assert login["auth"]["metadata"]["role_name"] == "app"
    with pytest.raises(exceptions.InvalidRequest, match="invalid role or secret ID"):
        hvac.Client(url=addr).auth.approle.login(role_id, secret_id, mount_point=mount)


def test_identity_entities_groups_and_dynamic_group_policies(client, addr):
    policy = unique("p")
    secret = unique("only")
    client.sys.create_or_update_policy(policy, f'path "secret/data/{secret}" {{ capabilities = ["read"] }}')
    client.secrets.kv.v2.create_or_update_secret(path=secret, secret={"v": "granted"})
    mount = unique("hosts")
    client.sys.enable_auth_method("approle", path=mount)
    compartment = unique("prod")
    group = unique("g")
    r = client.adapter.post("/v1/identity/group", json={
        "name": group, "type": "dynamic", "policies": [policy],
        # Secret-id metadata is chosen by whoever generates the secret id, so rules see it only
        # under alias.metadata.*; unprefixed names are for attributes an auth method verified.
        "rule": f"any {{alias.metadata.instance.compartment.id = '{compartment}'}}",
    })
    group_id = r["data"]["id"]
    assert client.secrets.identity.read_group(group_id)["data"]["type"] == "dynamic"

    def host_token(comp):
        # One AppRole role per host: the role id is the identity alias, so hosts sharing a
        # role would share one entity (as in Vault).
        role = unique("host")
        client.auth.approle.create_or_update_approle(role, token_policies=[], mount_point=mount)
        role_id = client.auth.approle.read_role_id(role, mount_point=mount)["data"]["role_id"]
        sid = client.auth.approle.generate_secret_id(role, metadata={"instance.compartment.id": comp}, mount_point=mount)["data"]["secret_id"]
        return hvac.Client(url=addr).auth.approle.login(role_id, sid, mount_point=mount)["auth"]

    prod = host_token(compartment)
    assert prod["identity_policies"] == [policy]
    assert hvac.Client(url=addr, token=prod["client_token"]).secrets.kv.v2.read_secret_version(path=secret, raise_on_deleted_version=True)["data"]["data"]["v"] == "granted"
    dev = host_token("dev")
    with pytest.raises(exceptions.Forbidden):
        hvac.Client(url=addr, token=dev["client_token"]).secrets.kv.v2.read_secret_version(path=secret, raise_on_deleted_version=True)
    entity = client.secrets.identity.read_entity(prod["entity_id"])["data"]
    assert group_id in entity["group_ids"]
    with pytest.raises(exceptions.InvalidRequest, match="invalid rule"):
        client.adapter.post("/v1/identity/group", json={"name": unique("bad"), "type": "dynamic", "rule": "any {x = unquoted}"})

    # Internal groups and entities through hvac's identity API.
    ent = client.secrets.identity.create_or_update_entity(name=unique("web"), metadata={"team": "web"})["data"]
    internal = client.secrets.identity.create_or_update_group(name=unique("ops"), policies=["default"], member_entity_ids=[ent["id"]])["data"]
    assert client.secrets.identity.read_group(internal["id"])["data"]["member_entity_ids"] == [ent["id"]]
    found = client.secrets.identity.lookup_entity(entity_id=ent["id"])["data"]
    assert found["name"] == ent["name"]
    client.secrets.identity.delete_entity(ent["id"])
