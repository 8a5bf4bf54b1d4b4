"""API fuzzing with schemathesis against the server's own OpenAPI document.

The dev server gets KV v1 and the userpass, AppRole and cert auth methods mounted (conftest.py),
then every operation in its `GET /v1/sys/internal/specs/openapi` gets schemathesis-generated requests:
its deterministic coverage cases (boundary and invalid values of every parameter and body
property, wrong types, missing required fields), then Hypothesis-generated valid and invalid
data. That happens twice:

1. with a limited token whose only policy is ``LIMITED_RULES`` (created without the ``default``
   policy); every other KV request is steered under ``secret/.../allowed/`` so both sides of
   the policy's edge are exercised;
2. with the root token.

Checks on every answer: no 5xx; the server process is still alive (a dropped connection with a
dead process is a crash); no request goes unanswered for REQUEST_TIMEOUT_SECONDS; and, for the
limited token, no 2xx for a request outside its policy unless the path is one the document marks
``x-vault-unauthenticated`` (the pipeline skips the ACL only there). Findings are collected, not
raised at the first one, and each pass fails at its end listing every distinct finding with a
curl command that reproduces it. The last test checks the server still answers ``sys/health``.

Operations that end the root token's session by design (``sys/seal``, ``auth/token/revoke-self``,
a ``revoke-prefix`` that matches the root token's lease, unmounting what the run needs) are not
excluded: excluding them would leave them unfuzzed, and running them last would still make every
answer after the first seal a 503. Instead, after every successful non-GET request the fuzzer
checks that the server is unsealed and the root token still works, and if not it restarts the
in-memory dev server (same port, same root token, a fresh limited token) and carries on. A dead
process is never restarted silently: it is reported as a crash.

Bounds (environment): COFFER_API_FUZZ_EXAMPLES Hypothesis examples per operation and mode
(valid, invalid; default 15; at most ten times as many coverage cases per operation);
COFFER_API_FUZZ_SECONDS seconds per pass (default 75; each operation may use up to three equal
shares of the time left, and one that runs out of it moves on to the next and is listed as cut
short, which is not a failure); COFFER_API_FUZZ_SEED fixes Hypothesis's seed.
"""

import collections
import itertools
import json
import re
import time
from urllib.parse import parse_qs, unquote, urlsplit

import hypothesis
import pytest
import requests
import schemathesis
from conftest import LIMITED_RULES, env_int
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.core import NotSet

EXAMPLES = env_int("COFFER_API_FUZZ_EXAMPLES", 15)
COVERAGE_CASES = 10 * EXAMPLES
SECONDS_PER_PASS = env_int("COFFER_API_FUZZ_SECONDS", 75)
SEED = env_int("COFFER_API_FUZZ_SEED", 0) or None
REQUEST_TIMEOUT_SECONDS = 30
CRASH_GRACE_SECONDS = 2
BODY_EXCERPT_CHARS = 600


def make_schema(document, server):
    config = schemathesis.Config.from_dict({
        "suppress-health-check": ["all"],
        # Reports name the token by a label ("<root token>"), so nothing needs masking.
        "output": {"sanitization": {"enabled": False}},
    })
    schema = schemathesis.openapi.from_dict(document, config=config)
    schema.config.update(base_url=f"{server.addr}/v1", request_timeout=REQUEST_TIMEOUT_SECONDS)
    return schema


@pytest.fixture(scope="session")
def unauthenticated_paths(openapi_document):
    """Request paths (relative to /v1/) that skip the ACL, derived from the document: every
    path item marked `x-vault-unauthenticated`, with each `{param}` matching any text."""
    patterns = []
    for template, item in openapi_document["paths"].items():
        if item.get("x-vault-unauthenticated") is True:
            parts = re.split(r"(\{[^}]+\})", template.lstrip("/"))
            patterns.append(re.compile("".join(".+" if p.startswith("{") else re.escape(p) for p in parts)))
    assert any(p.fullmatch("sys/health") for p in patterns), "sys/health should be unauthenticated"
    assert not any(p.fullmatch("secret/data/x") for p in patterns), "KV paths are never unauthenticated"
    return patterns


# --- reporting ---------------------------------------------------------------------------------


def excerpt(data) -> str:
    if data is None or isinstance(data, NotSet):
        return ""
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    text = data if isinstance(data, str) else json.dumps(data)
    return text if len(text) <= BODY_EXCERPT_CHARS else text[:BODY_EXCERPT_CHARS] + "..."


def describe(problem, case, response, token_label):
    request = response.request if response is not None else None
    lines = [
        problem,
        f"  request:   {case.method.upper()} {request.url if request is not None else case.formatted_path}",
        f"  body:      {excerpt(request.body if request is not None else case.body)}",
    ]
    if response is not None:
        lines.append(f"  response:  {response.status_code} {excerpt(response.content)}")
    lines.append(f"  reproduce: {case.as_curl_command(headers={'X-Vault-Token': token_label})}")
    return "\n".join(lines)


class OperationTimeUp(Exception):
    """The current operation used its share of the pass's time."""


class Pass:
    """One fuzzing pass with one token: its budget, counters and findings."""

    def __init__(self, name, server, token_attr, token_label):
        self.name = name
        self.server = server
        self.token_attr = token_attr  # the token is re-read per request: a restart replaces it
        self.token_label = token_label
        self.started = time.monotonic()
        self.requests = 0
        self.statuses = {}
        self.findings = {}  # (kind, method, operation, status) -> [first description, count]
        self.deadline = self.started + SECONDS_PER_PASS
        self.operation_deadline = self.deadline
        self.cut_short = []
        self.restarts_before = len(server.restarts)
        self.unsatisfiable = []

    def finding(self, kind, case, response, problem):
        status = response.status_code if response is not None else None
        key = (kind, case.method.upper(), case.operation.path, status)
        if key in self.findings:
            self.findings[key][1] += 1
        else:
            self.findings[key] = [describe(problem, case, response, self.token_label), 1]

    def send(self, case, retried=False):
        if time.monotonic() > self.operation_deadline:
            raise OperationTimeUp
        self.requests += 1
        try:
            response = case.call(
                headers={"X-Vault-Token": getattr(self.server, self.token_attr)}, timeout=REQUEST_TIMEOUT_SECONDS
            )
        except requests.Timeout:
            self.finding("timeout", case, None, f"no answer within {REQUEST_TIMEOUT_SECONDS}s")
            return None
        except requests.RequestException as exc:
            # A dying process drops the connection before it is gone: give it a moment.
            if self.server.exited_within(CRASH_GRACE_SECONDS):
                code = self.server.process.process.returncode
                log_tail = "\n".join(f"    | {line}" for line in self.server.process.log().splitlines()[-12:])
                self.finding("crash", case, None,
                             f"server process died (exit status {code}) on this request; its log ends:\n{log_tail}")
                self.server.restart(f"crash on {case.method.upper()} {case.formatted_path}")
            elif not retried:
                # The server may close a connection it refuses early, and a pooled connection
                # from before a restart is dead: one retry on a fresh connection.
                return self.send(case, retried=True)
            else:
                self.finding("connection", case, None, f"connection failed twice while the server ran: {exc}")
            return None
        bucket = f"{response.status_code // 100}xx"
        self.statuses[bucket] = self.statuses.get(bucket, 0) + 1
        if response.status_code >= 500:
            self.finding("5xx", case, response, f"server error {response.status_code}")
        self.keep_session_usable(case, response)
        return response

    def keep_session_usable(self, case, response):
        """A successful write may have sealed the server or revoked the root token (by design
        with the root token). Restart the in-memory dev server then, so later answers still
        mean something; a dead process is a crash."""
        if response.status_code >= 300 or case.method.upper() == "GET" or self.server.usable():
            return
        if not self.server.alive():
            self.finding("crash", case, response, "server process died after answering this request")
        self.server.restart(f"{case.method.upper()} {case.formatted_path} -> {response.status_code}")

    def run(self, schema, on_response, prepare=lambda case: None):
        operations = [result.ok() for result in schema.get_all_operations()]
        for index, operation in enumerate(operations):
            # An operation may use up to three times an equal share of the time left (operations
            # with large bodies need more than those without), so a slow machine fuzzes every
            # operation less rather than the last ones not at all.
            now = time.monotonic()
            share = 3 * max(0.0, self.deadline - now) / (len(operations) - index)
            self.operation_deadline = min(self.deadline, now + share)
            try:
                self.fuzz_operation(schema, operation, on_response, prepare)
            except OperationTimeUp:
                self.cut_short.append(operation.label)

    def fuzz_operation(self, schema, operation, on_response, prepare):
        def one(case):
            prepare(case)
            response = self.send(case)
            if response is not None:
                on_response(case, response)

        coverage = schema.iter_coverage_cases(
            operation,
            generation_modes=list(GenerationMode),
            generation_config=schema.config.generation_for(operation=operation, phase="coverage"),
        )
        for case in itertools.islice(coverage, COVERAGE_CASES):
            one(case)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            # Findings are recorded, never raised, so Hypothesis has nothing to shrink or replay;
            # OperationTimeUp is the only exception that leaves.
            explore = settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                print_blob=False,
                verbosity=hypothesis.Verbosity.quiet,
            )(given(case=operation.as_strategy(mode))(one))
            if SEED is not None:
                explore = hypothesis.seed(SEED)(explore)
            try:
                explore()
            except hypothesis.errors.Unsatisfiable:
                self.unsatisfiable.append(f"{operation.label} ({mode.value})")

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        lines = [f"{self.name}: {self.requests} requests in {elapsed:.0f}s, statuses {self.statuses}"]
        restarts = collections.Counter(self.server.restarts[self.restarts_before:])
        if restarts:
            lines.append("  server restarts: " + ", ".join(f"{n}x after {why}" for why, n in restarts.items()))
        if self.unsatisfiable:
            # Mostly invalid data for operations without inputs: nothing there can be invalid.
            lines.append(f"  {len(self.unsatisfiable)} operation/mode pairs had no data to generate")
        if self.cut_short:
            lines.append(
                f"  {len(self.cut_short)} operations cut short by their share of the {SECONDS_PER_PASS}s "
                f"budget (COFFER_API_FUZZ_SECONDS): {self.cut_short}"
            )
        return "\n".join(lines)

    def assert_no_findings(self):
        print("\n" + self.summary())
        if self.findings:
            text = "\n\n".join(
                f"{description}\n  (seen {count}x)" for description, count in self.findings.values()
            )
            pytest.fail(f"{self.name}: {len(self.findings)} distinct findings\n\n{text}", pytrace=False)


# --- authorisation oracle for the limited token ------------------------------------------------


def granted_by_limited_policy(method, path, query) -> bool:
    """Whether LIMITED_RULES grant this request. POST/PUT are create or update depending on
    whether the target exists; a grant of either counts (LIMITED_RULES grant both)."""
    if method == "LIST" or (method in ("GET", "HEAD") and query.get("list", [""])[0] in ("true", "1")):
        needed = {"list"}
    else:
        needed = {
            "GET": {"read"}, "HEAD": {"read"}, "POST": {"create", "update"}, "PUT": {"create", "update"},
            "PATCH": {"patch"}, "DELETE": {"delete"},
        }.get(method, set())
    for pattern, caps in LIMITED_RULES.items():
        matches = path.startswith(pattern[:-1]) if pattern.endswith("*") else path == pattern
        if matches and needed & set(caps):
            return True
    return False


def sent_path_and_query(response):
    """The decoded path (relative to /v1/) and query of the request actually sent; the server
    percent-decodes paths the same way before routing and ACL checks."""
    url = urlsplit(response.request.url)
    path = unquote(url.path)
    return (path[len("/v1/"):] if path.startswith("/v1/") else path.lstrip("/")), parse_qs(url.query)


# --- tests -------------------------------------------------------------------------------------


def test_openapi_document_is_valid(openapi_document, fuzz_server):
    """The document passes schemathesis's OpenAPI validation, every `$ref` resolves, and every
    operation is one schemathesis can fuzz (LIST is a GET with `list=true`, not a `list` key)."""
    schema = make_schema(openapi_document, fuzz_server)
    schema.validate()
    refs = re.findall(r'"\$ref": "#/([^"]+)"', json.dumps(openapi_document))
    for ref in refs:
        node = openapi_document
        for part in ref.split("/"):
            assert isinstance(node, dict) and part in node, f"unresolvable $ref #/{ref}"
            node = node[part]
    methods = {m for item in openapi_document["paths"].values() for m in item if m in
               ("get", "put", "post", "delete", "options", "head", "patch", "trace", "list")}
    assert "list" not in methods, "OpenAPI has no `list` method; schemathesis would skip these"
    assert any("list" == p.get("name") for item in openapi_document["paths"].values()
               for p in item.get("get", {}).get("parameters", [])), "LIST operations are advertised"


def test_limited_token(openapi_document, fuzz_server, unauthenticated_paths):
    fuzz = Pass("limited-token pass", fuzz_server, "limited_token", "<limited token>")
    steer = itertools.count()

    def prepare(case):
        # Every other KV request goes under `allowed/`, where the policy's edge is.
        if case.operation.path.startswith("/secret/") and isinstance(case.path_parameters, dict) \
                and isinstance(case.path_parameters.get("path"), str) and next(steer) % 2 == 0:
            case.path_parameters["path"] = f"allowed/{case.path_parameters['path']}"

    def check(case, response):
        if not 200 <= response.status_code < 300:
            return
        path, query = sent_path_and_query(response)
        method = response.request.method.upper()
        if any(p.fullmatch(path) for p in unauthenticated_paths) or granted_by_limited_policy(method, path, query):
            return
        fuzz.finding("authz", case, response,
                     f"limited token (policy {LIMITED_RULES}, no default policy) got {response.status_code} "
                     f"for {method} {path}, outside its policy")

    fuzz.run(make_schema(openapi_document, fuzz_server), check, prepare)
    fuzz.assert_no_findings()


def test_root_token(openapi_document, fuzz_server):
    fuzz = Pass("root-token pass", fuzz_server, "root_token", "<root token>")
    fuzz.run(make_schema(openapi_document, fuzz_server), lambda case, response: None)
    fuzz.assert_no_findings()


def test_server_survived(fuzz_server):
    """After both passes the server process is the one that ran them (or its restart after a
    seal or a revoked root token, never after a crash) and still answers."""
    assert fuzz_server.alive(), f"server exited with {fuzz_server.process.process.returncode}"
    health = fuzz_server.request("GET", "sys/health")
    assert health.status_code == 200, health.text
    assert fuzz_server.usable(), "root token no longer works"
