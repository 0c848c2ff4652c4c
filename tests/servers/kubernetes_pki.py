"""Certificates and kubeconfigs for the test cluster of :mod:`tests.servers.kubernetes`.

:func:`make_pki` writes a CA, the apiserver's serving certificate, an admin client certificate
in ``system:masters``, a service-account signing key and, for a real node, the kubelet's client
certificate (``O=system:nodes``, ``CN=system:node:<name>``, as the Node authorizer expects).
Everything is valid for one day: a test session's.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def make_pki(
    pki: Path, *, service_cidr: str, node_name: str | None = None, address: str = "127.0.0.1"
) -> None:
    """``ca``, ``apiserver``, ``admin`` (and ``node``) ``.crt``/``.key``; ``sa.key``/``sa.pub``.
    The apiserver's certificate names loopback, ``address`` (where it listens) and the
    ``kubernetes`` Service's address, which pods use."""
    pki.mkdir(exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("shoal-test-ca", ca_key, ca_key, ca=True)
    write_pem(pki / "ca.crt", ca, pki / "ca.key", ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_names: list[x509.GeneralName] = [
        x509.DNSName(name)
        for name in (
            "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]  # fmt: skip
    addresses = {"127.0.0.1", address, str(next(ipaddress.IPv4Network(service_cidr).hosts()))}
    server_names += [x509.IPAddress(ipaddress.IPv4Address(a)) for a in sorted(addresses)]
    server = certificate("kube-apiserver", server_key, ca_key, issuer=ca, names=server_names)
    write_pem(pki / "apiserver.crt", server, pki / "apiserver.key", server_key)
    clients = {"admin": ("shoal-admin", "system:masters")}
    if node_name is not None:
        clients["node"] = (f"system:node:{node_name}", "system:nodes")
    for file_name, (common_name, group) in clients.items():
        key = ec.generate_private_key(ec.SECP256R1())
        client = certificate(common_name, key, ca_key, issuer=ca, group=group)
        write_pem(pki / f"{file_name}.crt", client, pki / f"{file_name}.key", key)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    write_pem(None, None, pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_kubeconfig(path: Path, pki: Path, user: str, server: str) -> None:
    """A kubeconfig for ``server`` with ``pki/<user>.crt`` and its key inlined."""

    def data(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    # kubeconfig is YAML, and JSON is YAML: no YAML library needed.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "shoal-test",
                "cluster": {"server": server, "certificate-authority-data": data("ca.crt")},
            }
        ],
        "users": [
            {
                "name": f"shoal-{user}",
                "user": {
                    "client-certificate-data": data(f"{user}.crt"),
                    "client-key-data": data(f"{user}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "shoal-test", "context": {"cluster": "shoal-test", "user": f"shoal-{user}"}}
        ],
        "current-context": "shoal-test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def certificate(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None = None,
    ca: bool = False,
    group: str | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A one-day certificate: the CA itself, a server's (``names``) or a client's."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if group:  # Kubernetes reads a client certificate's O as its group
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, group))
    subject = x509.Name(attributes)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = builder.add_extension(usage, critical=True)
    elif names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def write_pem(
    cert_path: Path | None,
    cert: x509.Certificate | None,
    key_path: Path,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    if cert_path is not None and cert is not None:
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
