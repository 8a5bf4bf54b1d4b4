"""hvac against Coffer: the JWT auth method (local public keys and a JWKS URL) and the cert
auth method over a mutual-TLS listener."""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import hvac
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hvac import exceptions

from conftest import COMPARTMENT_OID, unique

AUDIENCE = "https://coffer.test"


# ---------------------------------------------------------------------------------------------
# JWT helpers


class SigningKey:
    """An RSA key pair an issuer signs JWTs with."""

    def __init__(self, kid: str):
        self.kid = kid
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, claims: dict, *, with_kid=True) -> str:
        headers = {"kid": self.kid} if with_kid else None
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers=headers)

    def jwk(self) -> dict:
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key()))
        key.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return key


@pytest.fixture(scope="module")
def issuer_key():
    return SigningKey("issuer-key-1")


@pytest.fixture(scope="module")
def other_key():
    return SigningKey("someone-else")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_secret(claims: dict, secret: bytes) -> str:
    """An HS256 JWT built by hand: PyJWT refuses a PEM public key as an HMAC secret, which is
    exactly the key-confusion attack this token stands for."""
    signing_input = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(signature)


def good_claims(**overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": "repo:acme/web:ref:refs/heads/main",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "repository": "acme/web",
        "ref": "refs/heads/main",
        "workflow": "deploy",
    }
    claims.update(overrides)
    return claims


def reader_policy(client, secret_path):
    """A policy that grants exactly `read` on one KV v2 secret, and that secret."""
    policy = unique("jwt-reader")
    client.sys.create_or_update_policy(policy, f'path "secret/data/{secret_path}" {{ capabilities = ["read"] }}')
    client.secrets.kv.v2.create_or_update_secret(path=secret_path, secret={"deploy_key": "only-for-main"})
    return policy


def create_deploy_role(client, mount, role, policy):
    client.auth.jwt.create_role(
        role,
        user_claim="sub",
        allowed_redirect_uris=None,
        bound_audiences=[AUDIENCE],
        bound_claims_type="glob",
        bound_claims={"repository": "acme/web", "ref": ["refs/heads/*", "refs/tags/v*"]},
        claim_mappings={"repository": "repository", "ref": "git_ref", "workflow": "workflow"},
        token_policies=[policy],
        token_ttl="10m",
        path=mount,
    )


@pytest.fixture
def pubkey_mount(client, issuer_key):
    """A jwt mount trusting `issuer_key` through jwt_validation_pubkeys, with role `deploy`
    granting read on one secret; returns (mount, role, secret path)."""
    mount = unique("jwt")
    client.sys.enable_auth_method("jwt", path=mount)
    client.auth.jwt.configure(jwt_validation_pubkeys=[issuer_key.public_pem], path=mount)
    secret = unique("deploy")
    create_deploy_role(client, mount, "deploy", reader_policy(client, secret))
    return mount, "deploy", secret


def test_jwt_config_and_role_read_back_through_hvac(client, pubkey_mount, issuer_key):
    mount, role, _ = pubkey_mount
    config = client.auth.jwt.read_config(path=mount)["data"]
    assert [k.strip() for k in config["jwt_validation_pubkeys"]] == [issuer_key.public_pem.strip()]
    assert config["jwks_url"] == ""
    read = client.auth.jwt.read_role(role, path=mount)["data"]
    assert read["role_type"] == "jwt"
    assert read["bound_audiences"] == [AUDIENCE]
    assert read["bound_claims_type"] == "glob"
    assert read["bound_claims"] == {"repository": "acme/web", "ref": ["refs/heads/*", "refs/tags/v*"]}
    assert read["claim_mappings"] == {"repository": "repository", "ref": "git_ref", "workflow": "workflow"}
    assert read["user_claim"] == "sub"
    assert read["token_ttl"] == 600
    assert client.auth.jwt.list_roles(path=mount)["data"]["keys"] == [role]


@pytest.mark.parametrize("ref", ["refs/heads/main", "refs/heads/feature/x", "refs/tags/v1.2.0"])
def test_jwt_login_with_pubkey_maps_claims_into_metadata(client, addr, pubkey_mount, issuer_key, ref):
    mount, role, secret = pubkey_mount
    login = hvac.Client(url=addr).auth.jwt.jwt_login(role, issuer_key.sign(good_claims(ref=ref)), path=mount)
    auth = login["auth"]
    assert auth["metadata"] == {"repository": "acme/web", "git_ref": ref, "workflow": "deploy", "role": role}
    policy = client.auth.jwt.read_role(role, path=mount)["data"]["token_policies"][0]
    assert policy in auth["policies"]
    assert auth["lease_duration"] == 600
    assert auth["entity_id"]

    # The token is real: it reads the one secret its policy grants, and lookup shows its metadata.
    holder = hvac.Client(url=addr, token=auth["client_token"])
    secret_data = holder.secrets.kv.v2.read_secret_version(path=secret, raise_on_deleted_version=True)
    assert secret_data["data"]["data"] == {"deploy_key": "only-for-main"}
    assert holder.auth.token.lookup_self()["data"]["meta"]["git_ref"] == ref
    with pytest.raises(exceptions.Forbidden):
        holder.secrets.kv.v2.read_secret_version(path=unique("other"), raise_on_deleted_version=True)

    # The alias is named by user_claim.
    entity = client.secrets.identity.read_entity(auth["entity_id"])["data"]
    assert [a["name"] for a in entity["aliases"]] == ["repo:acme/web:ref:refs/heads/main"]


def refused_tokens(issuer_key, other_key):
    now = int(time.time())
    return {
        "alg none": (jwt.encode(good_claims(), None, algorithm="none"), "unsupported signing algorithm"),
        "HS256 keyed with the public key": (
            hs256_with_secret(good_claims(), issuer_key.public_pem.encode()),
            "unsupported signing algorithm",
        ),
        "signed by an unknown key": (other_key.sign(good_claims()), "no known key successfully validated"),
        # Well beyond the 60 s clock-skew and 150 s expiration leeways.
        "expired": (issuer_key.sign(good_claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600)), "token is expired"),
        "wrong audience": (issuer_key.sign(good_claims(aud="https://somewhere.else")), "invalid audience"),
        "bound claim glob mismatch": (
            issuer_key.sign(good_claims(ref="refs/pull/7/merge")),
            'claim "ref" does not match any associated bound claim values',
        ),
        "bound claim exact mismatch": (
            issuer_key.sign(good_claims(repository="acme/webhooks")),
            'claim "repository" does not match',
        ),
        "bound claim missing": (
            issuer_key.sign({k: v for k, v in good_claims().items() if k != "ref"}),
            'claim "ref" is missing',
        ),
        "tampered claims": (
            # A valid signature over different claims: swap in a payload naming another repository.
            (lambda t: ".".join([t.split(".")[0], b64url(json.dumps(good_claims(repository="acme/*")).encode()), t.split(".")[2]]))(
                issuer_key.sign(good_claims())
            ),
            "no known key successfully validated",
        ),
    }


REFUSALS = [
    "alg none",
    "HS256 keyed with the public key",
    "signed by an unknown key",
    "expired",
    "wrong audience",
    "bound claim glob mismatch",
    "bound claim exact mismatch",
    "bound claim missing",
    "tampered claims",
]


@pytest.mark.parametrize("case", REFUSALS)
def test_jwt_login_refusals_are_400s(addr, pubkey_mount, issuer_key, other_key, case):
    mount, role, _ = pubkey_mount
    token, reason = refused_tokens(issuer_key, other_key)[case]
    with pytest.raises(exceptions.InvalidRequest) as refused:
        hvac.Client(url=addr).auth.jwt.jwt_login(role, token, path=mount)
    assert reason in str(refused.value)
    assert token not in str(refused.value.text)  # the JWT is never echoed


def test_jwt_role_without_audience_refuses_a_token_with_one(client, addr, pubkey_mount, issuer_key):
    mount, _, _ = pubkey_mount
    # A role needs some bound constraint (as in Vault); this one binds the subject only.
    client.auth.jwt.create_role(
        "open",
        user_claim="sub",
        allowed_redirect_uris=None,
        bound_subject=good_claims()["sub"],
        token_policies=["default"],
        path=mount,
    )
    no_aud = {k: v for k, v in good_claims().items() if k != "aud"}
    assert hvac.Client(url=addr).auth.jwt.jwt_login("open", issuer_key.sign(no_aud), path=mount)["auth"]["client_token"]
    with pytest.raises(exceptions.InvalidRequest, match="no audiences bound to the role"):
        hvac.Client(url=addr).auth.jwt.jwt_login("open", issuer_key.sign(good_claims()), path=mount)


def test_jwt_token_is_not_renewed_after_its_role_is_deleted(client, addr, pubkey_mount, issuer_key):
    """Vault's jwt renew handler refuses once the role is gone ("role ... does not exist during
    renewal"); while the role exists the token renews."""
    mount, _, _ = pubkey_mount
    client.auth.jwt.create_role(
        "short", user_claim="sub", allowed_redirect_uris=None, bound_audiences=[AUDIENCE],
        token_policies=["default"], token_ttl="60s", token_max_ttl="1h", path=mount,
    )
    holder = hvac.Client(url=addr)
    holder.auth.jwt.jwt_login("short", issuer_key.sign(good_claims()), path=mount)
    assert holder.auth.token.renew_self(increment=120)["auth"]["lease_duration"] == 120
    client.auth.jwt.delete_role("short", path=mount)
    try:
        holder.auth.token.renew_self(increment=1800)
    except exceptions.VaultError:
        pass
    assert holder.auth.token.lookup_self()["data"]["ttl"] <= 120


# ---------------------------------------------------------------------------------------------
# JWKS URL


class JwksServer:
    """A JWKS document served over plain HTTP on loopback, counting fetches."""

    def __init__(self, keys):
        self.keys = list(keys)
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                outer.fetches += 1
                body = json.dumps({"keys": [k.jwk() for k in outer.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server(issuer_key):
    with JwksServer([issuer_key]) as server:
        yield server


def test_jwt_login_with_keys_from_a_jwks_url(client, addr, jwks_server, issuer_key, other_key):
    mount = unique("jwks")
    client.sys.enable_auth_method("jwt", path=mount)
    client.auth.jwt.configure(jwks_url=jwks_server.url, path=mount)
    assert jwks_server.fetches == 1, "writing the config checks the URL once"
    assert client.auth.jwt.read_config(path=mount)["data"]["jwks_url"] == jwks_server.url
    secret = unique("jwks-deploy")
    create_deploy_role(client, mount, "deploy", reader_policy(client, secret))

    auth = hvac.Client(url=addr).auth.jwt.jwt_login("deploy", issuer_key.sign(good_claims()), path=mount)["auth"]
    assert auth["metadata"]["git_ref"] == "refs/heads/main"
    holder = hvac.Client(url=addr, token=auth["client_token"])
    assert holder.secrets.kv.v2.read_secret_version(path=secret, raise_on_deleted_version=True)["data"]["data"]["deploy_key"] == "only-for-main"

    # A key the JWKS does not publish is refused, also when its kid is unknown to the set.
    with pytest.raises(exceptions.InvalidRequest, match="no known key successfully validated"):
        hvac.Client(url=addr).auth.jwt.jwt_login("deploy", other_key.sign(good_claims()), path=mount)
    # A token signed by the published key but with the other key's kid does not verify either.
    mislabelled = jwt.encode(good_claims(), issuer_key.private_key, algorithm="RS256", headers={"kid": other_key.kid})
    with pytest.raises(exceptions.InvalidRequest, match="no known key successfully validated"):
        hvac.Client(url=addr).auth.jwt.jwt_login("deploy", mislabelled, path=mount)
    # The same refusals as with local keys apply.
    with pytest.raises(exceptions.InvalidRequest, match="invalid audience"):
        hvac.Client(url=addr).auth.jwt.jwt_login("deploy", issuer_key.sign(good_claims(aud="elsewhere")), path=mount)


def test_jwt_key_rotation_is_picked_up_from_the_jwks_on_an_unknown_kid(client, addr, jwks_server, issuer_key):
    mount = unique("jwks-rot")
    client.sys.enable_auth_method("jwt", path=mount)
    client.auth.jwt.configure(jwks_url=jwks_server.url, path=mount)
    create_deploy_role(client, mount, "deploy", "default")
    rotated = SigningKey(unique("rotated"))
    jwks_server.keys.append(rotated)
    # Past the 5 s minimum interval between refetches triggered by unknown key ids.
    time.sleep(5.5)
    auth = hvac.Client(url=addr).auth.jwt.jwt_login("deploy", rotated.sign(good_claims()), path=mount)["auth"]
    assert auth["client_token"]


def test_jwt_config_with_unreachable_jwks_url_is_refused_and_keeps_the_old_config(client, pubkey_mount, issuer_key):
    mount, _, _ = pubkey_mount
    with JwksServer([]) as stopped:
        dead_url = stopped.url
    with pytest.raises(exceptions.InvalidRequest, match="error checking jwks URL"):
        client.auth.jwt.configure(jwks_url=dead_url, path=mount)
    config = client.auth.jwt.read_config(path=mount)["data"]
    assert config["jwks_url"] == ""
    assert [k.strip() for k in config["jwt_validation_pubkeys"]] == [issuer_key.public_pem.strip()]


# ---------------------------------------------------------------------------------------------
# Cert auth over the TLS listener


@pytest.fixture(scope="module")
def cert_mount(tls_server):
    """On the TLS server: a KV v2 mount with one secret, a policy reading it, the cert method at
    a fresh path and role `hosts` trusting the client CA; returns (mount, role, policy, secret)."""
    root = hvac.Client(url=tls_server.addr, token=tls_server.root_token)
    root.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    secret = "hosts/db"
    root.secrets.kv.v2.create_or_update_secret(path=secret, secret={"password": "for-hosts"})
    policy = "hosts-reader"
    root.sys.create_or_update_policy(policy, f'path "secret/data/{secret}" {{ capabilities = ["read"] }}')
    mount = "cert"
    root.sys.enable_auth_method("cert", path=mount)
    root.auth.cert.create_ca_certificate_role(
        "hosts",
        certificate=tls_server.client_ca.pem,
        token_policies=[policy],
        token_ttl="15m",
        mount_point=mount,
    )
    # hvac 2.4.0's create_ca_certificate_role has no metadata_extensions (a Coffer field).
    root.adapter.post(
        f"/v1/auth/{mount}/certs/hosts",
        json={"metadata_extensions": {"instance.compartment.id": COMPARTMENT_OID}},
    )
    return mount, "hosts", policy, secret


def https_client(tls_server, cert_name=None, **kwargs):
    cert = tls_server.client_certs[cert_name] if cert_name else None
    return hvac.Client(url=tls_server.tls_addr, cert=cert, verify=str(tls_server.server_ca_path), **kwargs)


def test_cert_role_reads_back_and_lists(tls_server, cert_mount):
    mount, role, policy, _ = cert_mount
    root = hvac.Client(url=tls_server.addr, token=tls_server.root_token)
    read = root.auth.cert.read_ca_certificate_role(role, mount_point=mount)["data"]
    assert read["certificate"] == tls_server.client_ca.pem
    assert read["token_policies"] == [policy]
    assert read["token_ttl"] == 900
    assert read["metadata_extensions"] == {"instance.compartment.id": COMPARTMENT_OID}
    assert read["allowed_common_names"] == []
    assert root.auth.cert.list_certificate_roles(mount_point=mount)["data"]["keys"] == [role]


def test_cert_login_over_mutual_tls_gives_a_working_token(tls_server, cert_mount):
    mount, role, policy, secret = cert_mount
    host = https_client(tls_server, "prod")
    auth = host.auth.cert.login(mount_point=mount)["auth"]
    assert policy in auth["policies"]
    assert auth["lease_duration"] == 900
    assert auth["metadata"]["instance.compartment.id"] == "prod"
    assert auth["metadata"]["cert_name"] == role
    assert auth["metadata"]["common_name"] == "web-01"
    assert auth["metadata"]["dns_sans"] == "web-01.internal"

    # use_token=True (hvac's default) put the token on the client; it works over TLS ...
    assert host.token == auth["client_token"]
    assert host.secrets.kv.v2.read_secret_version(path=secret, raise_on_deleted_version=True)["data"]["data"] == {"password": "for-hosts"}
    # ... and over the plain listener, with the metadata on the token.
    plain = hvac.Client(url=tls_server.addr, token=auth["client_token"])
    meta = plain.auth.token.lookup_self()["data"]["meta"]
    assert meta["instance.compartment.id"] == "prod"
    assert meta["cert_name"] == role
    with pytest.raises(exceptions.Forbidden):
        plain.secrets.kv.v2.read_secret_version(path="hosts/other", raise_on_deleted_version=True)


def test_cert_login_with_cert_pem_arguments_and_role_name(tls_server, cert_mount):
    mount, role, policy, _ = cert_mount
    cert_path, key_path = tls_server.client_certs["prod"]
    login = https_client(tls_server).auth.cert.login(
        name=role, cert_pem=str(cert_path), key_pem=str(key_path), mount_point=mount
    )
    assert login["auth"]["metadata"]["instance.compartment.id"] == "prod"
    assert policy in login["auth"]["policies"]


def test_cert_login_refuses_a_certificate_from_another_ca(tls_server, cert_mount):
    mount, _, _, _ = cert_mount
    with pytest.raises(exceptions.InvalidRequest, match="invalid certificate or no client certificate supplied"):
        https_client(tls_server, "stranger").auth.cert.login(mount_point=mount)


def test_cert_login_refuses_an_expired_certificate(tls_server, cert_mount):
    mount, role, _, _ = cert_mount
    with pytest.raises(exceptions.InvalidRequest, match="invalid certificate or no client certificate supplied"):
        https_client(tls_server, "expired").auth.cert.login(mount_point=mount)
    with pytest.raises(exceptions.InvalidRequest, match="invalid certificate or no client certificate supplied"):
        https_client(tls_server, "expired").auth.cert.login(name=role, mount_point=mount)


def test_cert_login_without_a_certificate_is_refused(tls_server, cert_mount):
    mount, _, _, _ = cert_mount
    with pytest.raises(exceptions.InvalidRequest, match="client certificate must be supplied"):
        https_client(tls_server).adapter.post(f"/v1/auth/{mount}/login", json={})
    # Over the plain listener there is no TLS handshake, so no certificate either.
    with pytest.raises(exceptions.InvalidRequest, match="client certificate must be supplied"):
        hvac.Client(url=tls_server.addr).adapter.post(f"/v1/auth/{mount}/login", json={})


def test_cert_config_endpoint_takes_disable_binding(tls_server, cert_mount):
    mount, _, _, _ = cert_mount
    root = hvac.Client(url=tls_server.addr, token=tls_server.root_token)
    root.auth.cert.configure_tls_certificate(mount_point=mount, disable_binding=False)
    assert root.adapter.get(f"/v1/auth/{mount}/config")["data"]["disable_binding"] is False


@pytest.fixture
def renew_mount(tls_server):
    """A fresh cert mount whose role issues 60 s tokens renewable up to an hour."""
    root = hvac.Client(url=tls_server.addr, token=tls_server.root_token)
    mount = unique("cert-renew")
    root.sys.enable_auth_method("cert", path=mount)
    root.auth.cert.create_ca_certificate_role(
        "renewers", certificate=tls_server.client_ca.pem, token_policies=["default"],
        token_ttl="60s", token_max_ttl="1h", mount_point=mount,
    )
    return root, mount


def remaining_ttl(tls_server, token):
    return hvac.Client(url=tls_server.addr, token=token).auth.token.lookup_self()["data"]["ttl"]


def test_cert_token_renews_when_its_own_certificate_is_presented(tls_server, renew_mount):
    _, mount = renew_mount
    host = https_client(tls_server, "prod")
    host.auth.cert.login(mount_point=mount)
    assert host.auth.token.renew_self(increment=1800)["auth"]["lease_duration"] == 1800
    assert remaining_ttl(tls_server, host.token) > 1700


def test_cert_token_renewal_needs_the_login_certificate(tls_server, renew_mount):
    """Vault binds a cert-auth token's renewal to the certificate it logged in with (the
    default, disable_binding=false): renewing without a client certificate, or with another
    host's certificate from the same CA, is refused and the TTL is not extended."""
    _, mount = renew_mount
    token = https_client(tls_server, "prod").auth.cert.login(mount_point=mount)["auth"]["client_token"]

    with pytest.raises(exceptions.VaultError):
        hvac.Client(url=tls_server.addr, token=token).auth.token.renew_self(increment=1800)
    assert remaining_ttl(tls_server, token) <= 60

    other_host = https_client(tls_server, "prod-2", token=token)
    with pytest.raises(exceptions.VaultError):
        other_host.auth.token.renew_self(increment=1800)
    assert remaining_ttl(tls_server, token) <= 60


def test_cert_token_is_not_renewed_after_its_role_is_deleted(tls_server, renew_mount):
    """Vault's cert renew handler stops renewing once the role (cert_name) is gone."""
    root, mount = renew_mount
    host = https_client(tls_server, "prod")
    host.auth.cert.login(mount_point=mount)
    root.auth.cert.delete_certificate_role("renewers", mount_point=mount)
    try:
        host.auth.token.renew_self(increment=1800)
    except exceptions.VaultError:
        pass
    assert remaining_ttl(tls_server, host.token) <= 60
