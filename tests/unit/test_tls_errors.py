"""What a TLS failure is said to be, from the ssl errors drivers raise (pure: the real
handshakes are in tests/integration/test_tls.py)."""

from __future__ import annotations

import ssl

from shoal.backends.shared.tls import POSTGRES, REDIS, tls_failure


def verification(code: int, message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] {message}")
    error.verify_code, error.verify_message = code, message
    return error


def test_an_untrusted_certificate_names_the_ca_option() -> None:
    said = tls_failure(verification(19, "self-signed certificate in certificate chain"), REDIS)
    assert said == (
        "the server's TLS certificate is not trusted (self-signed certificate in certificate "
        "chain): check that ssl_ca_certs names the CA certificate that signed the server's"
    )


def test_a_host_name_mismatch_says_to_connect_by_a_name_the_certificate_holds() -> None:
    said = tls_failure(verification(62, "Hostname mismatch, certificate is not valid"), POSTGRES)
    assert said is not None and "does not name the host in the URL" in said


def test_a_wrapped_handshake_failure_is_found_in_the_chain() -> None:
    try:
        try:
            raise ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED]")
        except ssl.SSLError as inner:
            raise ConnectionError("Error connecting to 127.0.0.1:6380") from inner
    except ConnectionError as outer:
        said = tls_failure(outer, REDIS)
    assert said is not None and "ssl_certfile and ssl_keyfile" in said


def test_other_errors_are_not_tls_failures() -> None:
    assert tls_failure(ConnectionRefusedError(111, "Connection refused"), POSTGRES) is None
