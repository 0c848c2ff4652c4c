"""What a failed TLS handshake means, said alike for every backend.

A driver reports a refused certificate as an ``ssl`` error somewhere in its chain of
exceptions (asyncpg raises it as it is; redis-py wraps it in its ``ConnectionError``).
:func:`tls_failure` finds it and says, in one sentence, what the person should check in
terms of their own URL's options: the CA file, the host name the certificate must hold, or
the client certificate and key. A TLS failure is not an outage: retrying cannot fix it, so
the backends raise it at once instead of reconnecting until their timeout.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """How a backend's URL names its TLS files, for the advice in an error."""

    ca: str
    """The option naming the CA bundle that signed the server's certificate."""
    client: str
    """The options naming the client's certificate and key."""


POSTGRES = TlsOptions(ca="sslrootcert", client="sslcert and sslkey")
REDIS = TlsOptions(ca="ssl_ca_certs", client="ssl_certfile and ssl_keyfile")


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def tls_failure(error: BaseException, options: TlsOptions) -> str | None:
    """One sentence on the TLS failure behind ``error``, or None if it is not one."""
    for cause in _chain(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or str(cause)
            if cause.verify_code == 62 or "mismatch" in reason:  # X509_V_ERR_HOSTNAME_MISMATCH
                return (
                    f"the server's TLS certificate does not name the host in the URL "
                    f"({reason}): connect by a name or address its subjectAltName holds"
                )
            return (
                f"the server's TLS certificate is not trusted ({reason}): check that "
                f"{options.ca} names the CA certificate that signed the server's"
            )
        if isinstance(cause, ssl.SSLError):
            reason = getattr(cause, "reason", None) or str(cause)  # set by OpenSSL only
            return (
                f"the TLS handshake failed ({reason}): check the server's TLS settings, "
                f"and {options.client} if the server asks for a client certificate"
            )
    return None
