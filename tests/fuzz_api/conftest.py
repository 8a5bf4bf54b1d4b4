"""Fixtures for the API fuzzer: a dev server (started with the compatibility suite's
`CofferProcess` from tests/compat/conftest.py), its OpenAPI document, and the two tokens the
fuzzer runs with."""

import atexit
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import hypothesis.configuration
import pytest
import requests

# tests/compat/conftest.py under a name of its own: a plain `import conftest` would return this
# file, which pytest has already imported as `conftest`.
_spec = importlib.util.spec_from_file_location(
    "coffer_compat_conftest", Path(__file__).resolve().parents[1] / "compat" / "conftest.py"
)
compat = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compat)

# Hypothesis keeps its example database and caches under ./.hypothesis by default; this run
# needs none of them afterwards, so they go to a directory of the run's own.
_hypothesis_home = tempfile.mkdtemp(prefix="coffer-api-fuzz-hypothesis-")
hypothesis.configuration.set_hypothesis_home_dir(_hypothesis_home)
atexit.register(shutil.rmtree, _hypothesis_home, ignore_errors=True)

# The limited token's only policy. The fuzzer's authorisation check reads this table, so a
# request is "inside the policy" exactly when the server should allow it.
LIMITED_POLICY_NAME = "api-fuzz-limited"
LIMITED_RULES = {"secret/data/allowed/*": ("read", "create", "update")}


# Engines mounted before the document is fetched, so their operations are fuzzed too (the dev
# server brings secret/ as KV v2, cubbyhole/, identity/, sys/ and auth/token/). Not jwt: its
# config write fetches the URLs it is given, which the fuzzer would make up.
EXTRA_MOUNTS = {
    "sys/mounts/kv": {"type": "kv", "options": {"version": "1"}},
    "sys/auth/userpass": {"type": "userpass"},
    "sys/auth/approle": {"type": "approle"},
    "sys/auth/cert": {"type": "cert"},
}


def limited_policy_hcl() -> str:
    # An HCL list of strings is written like a JSON array.
    return "".join(
        f'path "{path}" {{\n  capabilities = {json.dumps(list(caps))}\n}}\n'
        for path, caps in LIMITED_RULES.items()
    )


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


class FuzzServer:
    """A dev server with a random root token, restartable in place (same port, same token)."""

    def __init__(self, process, root_token: str):
        self.process = process
        self.addr = process.addr
        self.root_token = root_token
        self.limited_token = None
        self.restarts = []  # why each restart happened

    def request(self, method, path, token=None, **kwargs):
        headers = {"X-Vault-Token": token} if token else {}
        return requests.request(method, f"{self.addr}/v1/{path}", headers=headers, timeout=30, **kwargs)

    def alive(self) -> bool:
        return self.process.process is not None and self.process.process.poll() is None

    def exited_within(self, seconds: float) -> bool:
        try:
            self.process.process.wait(timeout=seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def usable(self) -> bool:
        """Unsealed and the root token still works (a sealed server answers 503)."""
        try:
            return self.request("GET", "auth/token/lookup-self", self.root_token).status_code == 200
        except requests.RequestException:
            return False

    def restart(self, reason: str):
        self.restarts.append(reason)
        self.process.restart()
        self.prepare()

    def prepare(self):
        """Mount the engines to fuzz besides the dev server's own, then make the limited token."""
        for path, body in EXTRA_MOUNTS.items():
            r = self.request("POST", path, self.root_token, json=body)
            assert r.status_code == 204, f"{path}: {r.status_code} {r.text}"
        self.setup_limited_token()

    def setup_limited_token(self):
        """(Re)create the limited policy and a token holding only it: no `default` policy,
        so everything it may reach is its own policy plus the unauthenticated paths."""
        r = self.request("PUT", f"sys/policies/acl/{LIMITED_POLICY_NAME}", self.root_token,
                         json={"policy": limited_policy_hcl()})
        assert r.status_code in (200, 204), r.text
        r = self.request("POST", "auth/token/create", self.root_token,
                         json={"policies": [LIMITED_POLICY_NAME], "no_default_policy": True, "ttl": "4h"})
        assert r.status_code == 200, r.text
        auth = r.json()["auth"]
        assert auth["policies"] == [LIMITED_POLICY_NAME], auth
        self.limited_token = auth["client_token"]
        # Positive control: the token can do what its policy grants, so the 403s the fuzzer
        # sees come from the ACL and not from a broken token.
        r = self.request("POST", "secret/data/allowed/control", self.limited_token, json={"data": {"k": "v"}})
        assert r.status_code == 200, r.text
        r = self.request("GET", "secret/data/allowed/control", self.limited_token)
        assert r.status_code == 200 and r.json()["data"]["data"] == {"k": "v"}, r.text
        r = self.request("GET", "secret/data/elsewhere", self.limited_token)
        assert r.status_code == 403, r.text


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory):
    port = compat.free_port()
    root_token = f"fuzz-root-{uuid.uuid4().hex}"
    log_path = tmp_path_factory.mktemp("api-fuzz") / "coffer.log"
    process = compat.CofferProcess(
        ["server", "-dev", "-dev-no-store-token", f"-dev-root-token-id={root_token}", f"-dev-listen-address=127.0.0.1:{port}"],
        log_path,
        f"http://127.0.0.1:{port}",
    ).start()
    server = FuzzServer(process, root_token)
    try:
        server.prepare()
        yield server
    finally:
        process.stop()
        print(f"\napi fuzz: server log at {log_path}")


@pytest.fixture(scope="session")
def openapi_document(fuzz_server):
    r = fuzz_server.request("GET", "sys/internal/specs/openapi", fuzz_server.root_token)
    assert r.status_code == 200, r.text
    return r.json()
