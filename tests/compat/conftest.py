"""Fixtures that run real Coffer server processes for the hvac compatibility suite.

The server binary comes from ``COFFER_BIN`` (default ``target/debug/coffer`` relative to the
repository root). Every server listens on a free loopback port and is killed when its fixture
ends, so the suite never depends on anything already running on the machine.
"""

import itertools
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


# Ports free_port hands out: below Linux's default ephemeral range (32768-60999), so no outgoing
# connection takes one as its source port between a test choosing it and the server binding it.
_TEST_PORTS = range(32000, 20000, -1)
_ports_handed_out = itertools.count(os.getpid() * 7919)


def free_port() -> int:
    """A loopback port nothing is listening on right now, never handed out before by this
    process (asking the kernel for port 0 twice can give the same port twice)."""
    for _ in _TEST_PORTS:
        port = _TEST_PORTS[next(_ports_handed_out) % len(_TEST_PORTS)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20001 and 32000")


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
        # -dev-no-store-token: the suite's server leaves the user's ~/.coffer-token alone.
        ["server", "-dev", "-dev-no-store-token", f"-dev-root-token-id={DEV_ROOT_TOKEN}", f"-dev-listen-address=127.0.0.1:{port}"],
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


# ---------------------------------------------------------------------------------------------
# A server with a TLS listener and the PKI around it, for the cert auth method.

COMPARTMENT_OID = "1.3.6.1.4.1.57264.1.2"


class TestCa:
    """A certificate authority made with `cryptography`: its key, certificate and PEM."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, common_name: str):
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, directory: Path, stem: str, common_name: str, *, dns_sans=(), server=False,
              compartment=None, valid_days=(-1, 30)):
        """Sign a leaf certificate and write `<stem>.pem` and `<stem>-key.pem` (PKCS#8) into
        `directory`. `compartment` puts a DER UTF8String under COMPARTMENT_OID; `valid_days` is
        (not-before, not-after) in days from now, so (-10, -1) is an expired certificate."""
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=valid_days[0]))
            .not_valid_after(now + datetime.timedelta(days=valid_days[1]))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        if dns_sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_sans]), critical=False
            )
        if compartment is not None:
            value = compartment.encode()
            assert len(value) < 128  # short-form DER length
            der_utf8_string = bytes([0x0C, len(value)]) + value
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier(COMPARTMENT_OID), der_utf8_string),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = directory / f"{stem}.pem"
        key_path = directory / f"{stem}-key.pem"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_path, key_path


class TlsServer:
    """An initialised, unsealed server with a plain and a TLS listener, and the PKI for it."""

    def __init__(self, process, root_token, tls_addr, server_ca_path, client_ca, client_certs, pki_dir):
        self.process = process
        self.addr = process.addr
        self.root_token = root_token
        self.tls_addr = tls_addr
        self.server_ca_path = server_ca_path
        self.client_ca = client_ca
        self.client_certs = client_certs
        self.pki_dir = pki_dir


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A server from an HCL config (in-memory storage, a plain listener and a TLS listener
    whose certificate a fresh server CA signed), initialised and unsealed; plus a client CA and
    client certificates it issued:

    - ``prod``: CN web-01, the compartment extension holding "prod";
    - ``prod-2``: another host (CN web-03, own key) from the same CA, also "prod";
    - ``expired``: the same CA and extension, but its validity ended yesterday;
    - ``stranger``: CN web-01 with the extension, from a different CA of the same name.
    """
    tmp = tmp_path_factory.mktemp("tls-server")
    server_ca = TestCa("Coffer Test Server CA")
    server_ca_path = tmp / "server-ca.pem"
    server_ca_path.write_text(server_ca.pem)
    server_cert, server_key = server_ca.issue(tmp, "server", "localhost", dns_sans=["localhost"], server=True)

    client_ca = TestCa("Coffer Instance CA")
    stranger_ca = TestCa("Coffer Instance CA")
    client_certs = {
        "prod": client_ca.issue(tmp, "prod", "web-01", dns_sans=["web-01.internal"], compartment="prod"),
        "prod-2": client_ca.issue(tmp, "prod-2", "web-03", compartment="prod"),
        "expired": client_ca.issue(tmp, "expired", "web-02", compartment="prod", valid_days=(-10, -1)),
        "stranger": stranger_ca.issue(tmp, "stranger", "web-01", compartment="prod"),
    }

    port, tls_port = free_port(), free_port()
    config = tmp / "coffer.hcl"
    config.write_text(
        'storage "inmem" {}\n\n'
        f'listener "tcp" {{\n  address     = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n\n'
        f'listener "tcp" {{\n  address       = "127.0.0.1:{tls_port}"\n'
        f'  tls_cert_file = "{server_cert}"\n  tls_key_file  = "{server_key}"\n}}\n'
    )
    process = CofferProcess(["server", "-config", str(config)], tmp / "coffer.log", f"http://127.0.0.1:{port}").start()
    try:
        unauthenticated = hvac.Client(url=process.addr)
        init = unauthenticated.sys.initialize(secret_shares=1, secret_threshold=1)
        unsealed = unauthenticated.sys.submit_unseal_key(init["keys"][0])
        assert unsealed["sealed"] is False, unsealed
        yield TlsServer(process, init["root_token"], f"https://localhost:{tls_port}", server_ca_path,
                        client_ca, client_certs, tmp)
    finally:
        process.stop()
