"""A real redis-server for the tests: started from PATH in a temporary directory.

:class:`RedisServer` starts, stops and restarts one server on a free loopback port; the
benchmarks and end-to-end tests import it too. The session fixture shares one server; the
``redis_url`` fixture gives every test its own key prefix on it and deletes that prefix's
keys afterwards (never FLUSHALL: the server is shared).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import pytest
import redis

from tests.servers.ports import free_port
from tests.servers.tls import Certificates


class RedisServer:
    """One redis-server process with its data (and AOF) in ``directory``."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        password: str | None = None,
        binary: str = "redis-server",
        host: str = "127.0.0.1",
        tls: Certificates | None = None,
    ) -> None:
        found = shutil.which(binary)
        if found is None:
            raise RuntimeError(f"{binary} is not on PATH: apt-get install -y redis-server")
        self.binary = found
        self.directory = directory
        self.port = port or free_port()
        self.host = host
        """The address it listens on: loopback, or one that pods on a real node reach."""
        self.appendonly = appendonly
        self.password = password
        self.tls = tls
        """Serve TLS only, with these certificates, and require a client certificate."""
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, *, prefix: str | None = None, password: str | None = None) -> str:
        """The server's URL, with this instance's password unless another is given."""
        secret = password if password is not None else self.password
        auth = f":{secret}@" if secret else ""
        options = {"prefix": prefix} if prefix else {}
        if self.tls is not None:
            options |= {
                "ssl_ca_certs": str(self.tls.ca),
                "ssl_certfile": str(self.tls.client_cert),
                "ssl_keyfile": str(self.tls.client_key),
            }
        query = f"?{urlencode(options)}" if options else ""
        scheme = "redis" if self.tls is None else "rediss"
        return f"{scheme}://{auth}{self.host}:{self.port}/0{query}"

    def start(self, *, timeout: float = 10.0) -> None:
        """Start the server and return once it answers PING (AOF loaded)."""
        if self.process is not None:
            raise RuntimeError("redis-server is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            self.binary, "--port", str(self.port), "--bind", self.host,
            "--dir", str(self.directory), "--save", "", "--daemonize", "no",
            "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
            "--logfile", "redis.log",
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.tls is not None:  # TLS only: the plain port is closed
            command[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            command += [
                "--tls-cert-file", str(self.tls.server_cert),
                "--tls-key-file", str(self.tls.server_key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "yes",
            ]  # fmt: skip
        # Its log goes to redis.log in the directory (see log_tail), never to a pipe that fills.
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.ping():
                return
            time.sleep(0.02)
        self.stop(kill=True)
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{self.log_tail()}")

    def ping(self) -> bool:
        client = self.client(socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM (a clean shutdown) or SIGKILL (a crash)."""
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self, *, kill: bool = False) -> None:
        """Stop and start again on the same port and directory."""
        self.stop(kill=kill)
        self.start()

    def client(self, **options: Any) -> redis.Redis:
        """A synchronous client, for inspecting the server from a test."""
        if self.tls is not None:
            options |= {
                "ssl": True,
                "ssl_ca_certs": str(self.tls.ca),
                "ssl_certfile": str(self.tls.client_cert),
                "ssl_keyfile": str(self.tls.client_key),
            }
        return redis.Redis(host=self.host, port=self.port, password=self.password, **options)

    def delete_prefix(self, prefix: str) -> None:
        """Delete the keys of one shoal prefix (``{prefix}...`` and ``{prefix:queue}...``)."""
        with self.client() as client:
            for pattern in (f"{{{prefix}}}*", f"{{{prefix}:*"):
                keys = list(client.scan_iter(match=pattern, count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start : start + 1000])

    def log_tail(self, lines: int = 20) -> str:
        log = self.directory / "redis.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole session, AOF on, stopped at the end."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A URL with a prefix of its own, whose keys are deleted after the test."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield redis_server.url(prefix=prefix)
    redis_server.delete_prefix(prefix)


@pytest.fixture(scope="session")
def tls_redis(
    tmp_path_factory: pytest.TempPathFactory, tls_certificates: Certificates
) -> Iterator[RedisServer]:
    """A redis-server on a TLS port only, asking every client for a certificate."""
    with RedisServer(tmp_path_factory.mktemp("redis-tls"), tls=tls_certificates) as server:
        yield server
