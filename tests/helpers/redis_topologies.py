"""Redis as production runs it, for tests: TLS, a three-master cluster, Sentinel.

Each starts ``redis-server`` processes on free loopback ports in a temp directory and kills
them by PID when its block ends. ``redis_backend`` (tests/conftest.py) gives the store and
queue tests one URL whichever topology they run on: ``single``, ``tls`` or ``cluster``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers.redis_server import require_redis
from tests.helpers.servers import free_port


@dataclass
class Certificates:
    """PEM files: a CA, a server certificate it signed (127.0.0.1 and localhost), a client
    certificate it signed, and a second CA that signed neither."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    wrong_ca: Path


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca = _certificate("voicehooks test CA", None, ca=True)
    server_key, server = _certificate("127.0.0.1", (ca_key, ca), ca=False)
    client_key, client = _certificate("voicehooks test client", (ca_key, ca), ca=False)
    _, wrong = _certificate("some other CA", None, ca=True)
    names = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key", "wrong-ca.pem")
    paths = Certificates(*(directory / name for name in names))
    for path, value in (
        (paths.ca, ca),
        (paths.server_cert, server),
        (paths.client_cert, client),
        (paths.wrong_ca, wrong),
    ):
        path.write_bytes(value.public_bytes(serialization.Encoding.PEM))
    for path, key in ((paths.server_key, server_key), (paths.client_key, client_key)):
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return paths


def _certificate(
    name: str, issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None, *, ca: bool
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    signer_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(signer_key, hashes.SHA256())


@dataclass(frozen=True)
class RedisBackend:
    """Where a store or queue test's Redis is: its topology's name and the URL for it."""

    name: str
    url: str


# The topologies the store and queue tests run on: ``@ALL_BACKENDS`` on a test that takes
# ``redis_backend`` (directly or through a fixture); without it a test gets ``single``.
BACKEND_NAMES = [
    "single",
    pytest.param("tls", marks=pytest.mark.slow),
    pytest.param("cluster", marks=pytest.mark.slow),
]
ALL_BACKENDS = pytest.mark.parametrize("redis_backend", BACKEND_NAMES, indirect=True)


def backend_for(request: pytest.FixtureRequest, name: str) -> RedisBackend:
    """``single``: the test's own ``redis_server``; ``tls`` and ``cluster``: the session's
    (fixtures ``tls_redis`` and ``redis_cluster``), emptied first."""
    if name == "single":
        return RedisBackend(name, request.getfixturevalue("redis_server").url)
    if name == "tls":
        tls: TLSRedis = request.getfixturevalue("tls_redis")
        assert ask(tls.port, "FLUSHALL", tls=tls.context()) == b"+OK\r\n"
        return RedisBackend(name, tls.url())
    cluster: Cluster = request.getfixturevalue("redis_cluster")
    for node in cluster.nodes:
        assert ask(node.port, "FLUSHALL") == b"+OK\r\n"
    return RedisBackend(name, cluster.url)


# -- processes ---------------------------------------------------------------------------


@dataclass
class Node:
    """One redis-server (or Sentinel) process on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]
    directory: Path

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _start(binary: str, directory: Path, port: int, options: dict[str, str]) -> Node:
    directory.mkdir(parents=True)
    base = {"bind": "127.0.0.1", "dir": str(directory), "save": "", "appendonly": "no"}
    base["logfile"] = str(directory / "redis.log")
    command = [binary, *(part for k, v in {**base, **options}.items() for part in (f"--{k}", v))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Node(port, process, directory)


def ask(port: int, *command: str, tls: ssl.SSLContext | None = None) -> bytes:
    """Send one inline command to 127.0.0.1:``port`` and return the raw reply (one read)."""
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), 0.5))
        if tls is not None:
            sock = stack.enter_context(tls.wrap_socket(sock, server_hostname="127.0.0.1"))
        sock.settimeout(1.0)
        sock.sendall(" ".join(command).encode() + b"\r\n")
        return sock.recv(65536)


def replies(port: int, command: tuple[str, ...], expected: bytes) -> bool:
    """Whether ``command``'s reply holds ``expected``."""
    return expected in ask(port, *command)


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} within {timeout} s")


def _stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        node.kill()


@dataclass
class TLSRedis:
    """A redis-server that speaks only TLS, and the certificates around it."""

    node: Node
    certificates: Certificates

    @property
    def port(self) -> int:
        return self.node.port

    def url(self, ca: Path | None = None) -> str:
        return (
            f"rediss://127.0.0.1:{self.port}/0?ssl_cert_reqs=required"
            f"&ssl_ca_certs={ca or self.certificates.ca}"
        )

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificates.ca))


@contextlib.contextmanager
def running_tls_redis(directory: Path, *, client_certificates: bool = False) -> Iterator[TLSRedis]:
    """``redis-server --port 0 --tls-port P``: TLS only; with ``client_certificates`` it
    refuses clients without a certificate its CA signed."""
    binary = require_redis()
    certificates = make_certificates(directory / "certs")
    port = free_port()
    node = _start(
        binary,
        directory / f"tls-{port}",
        port,
        {
            "port": "0",
            "tls-port": str(port),
            "tls-cert-file": str(certificates.server_cert),
            "tls-key-file": str(certificates.server_key),
            "tls-ca-cert-file": str(certificates.ca),
            "tls-auth-clients": "yes" if client_certificates else "no",
        },
    )
    server = TLSRedis(node, certificates)
    try:
        if not client_certificates:
            wait_until(
                lambda: ask(port, "PING", tls=server.context()).startswith(b"+PONG"),
                10,
                "the TLS redis-server did not answer",
            )
        else:
            time.sleep(0.3)  # its PING needs a client certificate; the test connects itself
        yield server
    finally:
        node.kill()


@dataclass
class Cluster:
    """Three masters, no replicas, every slot assigned."""

    nodes: list[Node]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2]) + "/"


@contextlib.contextmanager
def running_cluster(directory: Path) -> Iterator[Cluster]:
    """``redis-server --cluster-enabled yes`` three times, joined by ``redis-cli --cluster
    create ... --cluster-replicas 0``."""
    binary = require_redis()
    nodes: list[Node] = []
    try:
        for _ in range(3):
            port = free_port()
            nodes.append(
                _start(
                    binary,
                    directory / f"cluster-{port}",
                    port,
                    {
                        "port": str(port),
                        "cluster-enabled": "yes",
                        "cluster-port": str(free_port()),  # port + 10000 may not exist
                        "cluster-config-file": "nodes.conf",
                        "cluster-node-timeout": "2000",
                    },
                )
            )
        for node in nodes:
            wait_until(partial(replies, node.port, ("PING",), b"+PONG"), 10, "no PONG")
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        for node in nodes:
            wait_until(
                partial(replies, node.port, ("CLUSTER", "INFO"), b"cluster_state:ok"),
                15,
                "the cluster did not come up",
            )
        yield Cluster(nodes)
    finally:
        _stop_all(nodes)


@dataclass
class SentinelSetup:
    """A master, a replica and three Sentinels watching them as ``mymaster``."""

    master: Node
    replica: Node
    sentinels: list[Node] = field(default_factory=list)

    def url(self, query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/mymaster/0" + (f"?{query}" if query else "")

    def master_port(self) -> int:
        """The port the Sentinels now name as the master's."""
        reply = ask(self.sentinels[0].port, "SENTINEL", "get-master-addr-by-name", "mymaster")
        return int(reply.split(b"\r\n")[4])


@contextlib.contextmanager
def running_replicated(directory: Path, *, appendonly: bool = False) -> Iterator[tuple[Node, Node]]:
    """A master and a replica of it, in sync; killed by PID when the block ends."""
    binary = require_redis()
    nodes: list[Node] = []
    persistence = {"appendonly": "yes" if appendonly else "no"}
    try:
        master_port = free_port()
        # No wait before the first sync (Redis waits 5 s for more replicas to share it).
        master = _start(
            binary,
            directory / "master",
            master_port,
            {"port": str(master_port), "repl-diskless-sync-delay": "0", **persistence},
        )
        nodes.append(master)
        replica_port = free_port()
        replica = _start(
            binary,
            directory / "replica",
            replica_port,
            {"port": str(replica_port), "replicaof": f"127.0.0.1 {master_port}", **persistence},
        )
        nodes.append(replica)
        wait_until(
            lambda: b"master_link_status:up" in ask(replica_port, "INFO", "replication"),
            10,
            "the replica did not sync",
        )
        yield master, replica
    finally:
        _stop_all(nodes)


@contextlib.contextmanager
def running_sentinel(
    directory: Path,
    *,
    down_after_milliseconds: int = 500,
    failover_timeout_milliseconds: int = 2000,
) -> Iterator[SentinelSetup]:
    """``running_replicated`` and three Sentinels (``redis-server --sentinel``) watching it
    as ``mymaster``, each knowing the two others."""
    binary = require_redis()
    sentinels: list[Node] = []
    with running_replicated(directory) as (master, replica):
        setup = SentinelSetup(master, replica, sentinels)
        try:
            for index in range(3):
                port = free_port()
                config = directory / f"sentinel-{index}.conf"
                config.write_text(
                    f"port {port}\nbind 127.0.0.1\n"
                    f"sentinel monitor mymaster 127.0.0.1 {master.port} 2\n"
                    f"sentinel down-after-milliseconds mymaster {down_after_milliseconds}\n"
                    f"sentinel failover-timeout mymaster {failover_timeout_milliseconds}\n"
                    "sentinel parallel-syncs mymaster 1\n"
                )
                folder = directory / f"sentinel-{index}"
                folder.mkdir()
                process = subprocess.Popen(
                    [binary, str(config), "--sentinel", "--dir", str(folder)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                sentinels.append(Node(port, process, folder))
            for sentinel in sentinels:
                wait_until(
                    partial(
                        replies,
                        sentinel.port,
                        ("SENTINEL", "master", "mymaster"),
                        b"num-other-sentinels\r\n$1\r\n2\r\n",
                    ),
                    15,
                    "the Sentinels did not find each other",
                )
            yield setup
        finally:
            _stop_all(sentinels)
