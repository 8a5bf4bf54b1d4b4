"""Fixtures that run real Coffer server processes for the hvac compatibility suite.

The server binary comes from ``COFFER_BIN`` (default ``target/debug/coffer`` relative to the
repository root). Every server listens on a free loopback port and is killed when its fixture
ends, so the suite never depends on anything already running on the machine.
"""

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import hvac
import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_ROOT_TOKEN = "root"
STARTUP_TIMEOUT_SECONDS = 30


def coffer_bin() -> Path:
    """The server binary under test; relative paths are taken from the repository root."""
    path = Path(os.environ.get("COFFER_BIN", "target/debug/coffer"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.exists():
        pytest.exit(f"coffer binary not found at {path}; build it with `cargo build -p coffer`", 2)
    return path


def free_port() -> int:
    """A loopback port nothing is listening on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unique(prefix: str) -> str:
    """A name no other test uses, so tests can share one dev server."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class CofferProcess:
    """One `coffer server ...` child process with its output captured to a log file."""

    def __init__(self, args, log_path: Path, addr: str):
        self.args = args
        self.log_path = log_path
        self.addr = addr
        self.process = None

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(coffer_bin()), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.wait_until_answering()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_answering(self):
        """Wait until /v1/sys/health answers with any status (a sealed server answers 503)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"coffer exited with {self.process.returncode}:\n{self.log()}")
            try:
                requests.get(f"{self.addr}/v1/sys/health", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"coffer did not answer within {STARTUP_TIMEOUT_SECONDS}s:\n{self.log()}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self):
        self.stop()
        return self.start()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory):
    """A dev-mode server (unsealed, in-memory, KV v2 at secret/, root token `root`)."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("dev-server") / "coffer.log"
    server = CofferProcess(
        ["server", "-dev", f"-dev-root-token-id={DEV_ROOT_TOKEN}", f"-dev-listen-address=127.0.0.1:{port}"],
        log_path,
        addr,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def client(dev_server):
    """An hvac client holding the dev server's root token."""
    return hvac.Client(url=dev_server.addr, token=DEV_ROOT_TOKEN)


@pytest.fixture
def addr(dev_server):
    return dev_server.addr


@pytest.fixture
def file_server(tmp_path):
    """A fresh, uninitialized, sealed server running from an HCL config with file storage."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = tmp_path / "coffer.hcl"
    config.write_text(
        f'storage "file" {{\n  path = "{data_dir}"\n}}\n\n'
        f'listener "tcp" {{\n  address     = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
    )
    server = CofferProcess(["server", "-config", str(config)], tmp_path / "coffer.log", addr).start()
    yield server
    server.stop()
