"""A real PostgreSQL for the tests: Debian's binaries, a temporary directory, a free port.

:class:`PostgresServer` is usable on its own (benchmarks, end-to-end tests)::

    with PostgresServer() as server:
        url = server.url(server.create_database())

The pytest fixtures start one server per session and give each test a database of its own
(``CREATE DATABASE`` per test, dropped afterwards), so no test ever wipes a shared one. Tests
that restart the server use ``restartable_postgres``, a second server of their own.

The server binaries refuse to run as root; when the tests run as root they run the server as
the ``postgres`` user (``runuser``). If the binaries are missing: ``apt-get install -y
postgresql``.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

import pytest

from tests.servers.ports import free_port
from tests.servers.tls import Certificates

SUPERUSER = "shoal"
"""The cluster's superuser; tests connect as it over TCP with a password."""


def find_bindir() -> Path:
    """The newest PostgreSQL server bin directory installed, or a clear failure."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL server binaries not found: apt-get install -y postgresql")


class PostgresServer:
    """One throwaway PostgreSQL cluster on 127.0.0.1, owned by this process.

    ``start`` runs ``initdb`` and ``pg_ctl start``; ``stop`` shuts it down and deletes its
    directory; ``restart`` keeps the data (for tests that restart the database mid-run).
    Durability is switched off (``fsync``, ``synchronous_commit``): it is a test server.
    ``durable=True`` keeps PostgreSQL's defaults instead (every commit flushed to disk, as
    in production), for benchmarks whose figures must mean what they would there.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
        tls: Certificates | None = None,
    ) -> None:
        self.port = port or free_port()
        self.durable = durable
        self.tls = tls
        """Serve TLS with these certificates, and refuse TCP connections without it or
        without a client certificate the CA signed (``clientcert=verify-ca``)."""
        self.settings = dict(settings or {})  # postgresql.conf lines, over the defaults here
        self.password = secrets.token_hex(12)
        self.bindir = find_bindir()
        self.root: Path | None = None
        self._names = itertools.count(1)

    @property
    def datadir(self) -> Path:
        return self._root / "data"

    @property
    def socketdir(self) -> Path:
        return self._root / "sockets"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the PostgreSQL test server is not started")
        return self.root

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        """A TCP URL for ``database``, authenticated with a password (scram-sha-256)."""
        secret = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="shoal-pg-"))
        self.socketdir.mkdir()
        pwfile = self._root / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._hand_over(self._root, self.socketdir, pwfile)
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socketdir}'",
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        if self.tls is not None:
            settings.update(self._serve_tls(self.tls))
        settings.update(self.settings)
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._pg_ctl("start")

    def _serve_tls(self, tls: Certificates) -> dict[str, str]:
        """Copies of the server's files it may read, and pg_hba lines, matched first, that
        refuse TCP without TLS and a client certificate (the Unix socket stays trusted)."""
        copies = {}
        for name, source in (("ca", tls.ca), ("cert", tls.server_cert), ("key", tls.server_key)):
            copy = self._root / f"tls-{name}.pem"
            copy.write_bytes(source.read_bytes())
            copy.chmod(0o600)
            self._hand_over(copy)
            copies[name] = f"'{copy}'"
        hba = self.datadir / "pg_hba.conf"
        rules = (
            "hostnossl all all all reject\nhostssl all all all scram-sha-256 clientcert=verify-ca\n"
        )
        hba.write_text(rules + hba.read_text())
        return {
            "ssl": "on",
            "ssl_ca_file": copies["ca"],
            "ssl_cert_file": copies["cert"],
            "ssl_key_file": copies["key"],
        }

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if self.root is None:
            return
        try:
            if (self.datadir / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def restart(self) -> None:
        """Restart the server, keeping its data: every open connection is cut."""
        self._pg_ctl("restart", "-m", "fast")

    def interrupt(self, seconds: float) -> float:
        """Stop the server (fast shutdown) for ``seconds``, then start it again with its
        data; returns how long it was unreachable in all."""
        began = time.monotonic()
        self._pg_ctl("stop", "-m", "fast")
        time.sleep(seconds)
        self._pg_ctl("start")
        return time.monotonic() - began

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` over the Unix socket (trusted) and return psql's unaligned output."""
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(self.socketdir),
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its name."""
        name = name or f"test_{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- running the binaries as the right user ---------------------------------------------

    def _pg_ctl(self, *args: str) -> None:
        log = self._root / "server.log"
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(log), "-w", "-t", "60", *args)

    def _run(self, binary: str, *args: str) -> None:
        command = [str(self.bindir / binary), *args]
        if os.geteuid() == 0:
            # initdb and postgres refuse to run as root.
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            log = self._root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{binary} {' '.join(args[:1])} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{tail}"
            )

    def _hand_over(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        owner = pwd.getpwnam("postgres")
        for path in paths:
            os.chown(path, owner.pw_uid, owner.pw_gid)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session, stopped and deleted at its end."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def restartable_postgres() -> Iterator[PostgresServer]:
    """A second PostgreSQL, for tests that restart it: the shared one is never cut off."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test alone."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def tls_postgres(tls_certificates: Certificates) -> Iterator[PostgresServer]:
    """A PostgreSQL that takes TCP connections only over TLS, with a client certificate."""
    with PostgresServer(tls=tls_certificates) as server:
        yield server
