"""Certificates for the TLS tests, made here with ``cryptography``: a CA, a server
certificate for ``localhost`` and ``127.0.0.1`` that it signed, a client certificate it
signed, and a second CA that signed nothing the servers present (a client that trusts only
it must refuse them). Valid for one day, as :mod:`tests.servers.kubernetes_pki`'s are.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers.kubernetes_pki import certificate, write_pem


@dataclass(frozen=True)
class Certificates:
    """The files, in one directory."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @property
    def other_ca(self) -> Path:
        """A CA that signed none of the above."""
        return self.directory / "other-ca.crt"


def make_certificates(directory: Path, *, client_name: str = "shoal") -> Certificates:
    """Write the files into ``directory``; the client's common name is ``client_name``
    (PostgreSQL's ``cert`` authentication maps it to the user)."""
    directory.mkdir(parents=True, exist_ok=True)
    made = Certificates(directory)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("shoal-test-tls-ca", ca_key, ca_key, ca=True)
    write_pem(made.ca, ca, directory / "ca.key", ca_key)
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
    ]
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = certificate("shoal-test-server", server_key, ca_key, issuer=ca, names=names)
    write_pem(made.server_cert, server, made.server_key, server_key)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = certificate(client_name, client_key, ca_key, issuer=ca)
    write_pem(made.client_cert, client, made.client_key, client_key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = certificate("another-ca", other_key, other_key, ca=True)
    write_pem(made.other_ca, other, directory / "other-ca.key", other_key)
    return made


@pytest.fixture(scope="session")
def tls_certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """One set of certificates for the session's TLS servers and their clients."""
    return make_certificates(tmp_path_factory.mktemp("tls"))
