"""The /v2/ ping against the rig's real registries: a plain-HTTP registry costs no HTTPS attempt (issue 21), a TLS
registry that also allows HTTP still speaks HTTPS."""
import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest

from executor.registry import RegistryError, RegistryOptions
from executor.registry.transport import Transport


def _https_pools(transport: Transport) -> int:
    return len(transport.session.get_adapter("https://x").poolmanager.pools)


@contextlib.contextmanager
def _serving(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A server on 127.0.0.1 that hands each connection to `handle`; yields its host:port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_plain_http_registry_is_pinged_without_https(plain_registry):
    transport = Transport(plain_registry.host, RegistryOptions(), push=False)   # 127.0.0.1: HTTP allowed
    transport.ping()
    assert transport.base == f"http://{plain_registry.host}"
    assert _https_pools(transport) == 0      # requests never opened an HTTPS connection (no CA bundle loaded)


def test_tls_registry_allowing_http_still_speaks_https(basic_registry):
    options = RegistryOptions(registry_certificates={basic_registry.host: basic_registry.ca_path},
                              insecure_registries=[basic_registry.host])
    transport = Transport(basic_registry.host, options, push=True)
    transport.ping()
    assert transport.base == f"https://{basic_registry.host}"
    assert transport.challenge is not None and transport.challenge.scheme == "basic"


def test_a_server_hanging_up_on_tls_and_http_names_both():
    """Neither a TLS handshake nor an HTTP answer: the probe lets HTTPS try, and the error names both schemes."""
    with _serving(lambda conn: conn.close()) as host:
        transport = Transport(host, RegistryOptions(transport_retries=0), push=False)
        with pytest.raises(RegistryError) as err:
            transport.ping()
        assert "https: " in str(err.value) and "http: " in str(err.value)
        assert _https_pools(transport) == 1      # the probe learned nothing: HTTPS was tried as before


def test_a_tls_server_refusing_the_handshake_is_still_tried_over_https(test_pki):
    """A TLS server that answers the probe's handshake with an alert (here: it wants a client certificate) is a TLS
    server: HTTPS is tried and its TLS error is what the user reads, not "does not speak TLS"."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(test_pki.server_cert, test_pki.server_key)
    server_ctx.load_verify_locations(test_pki.ca_cert)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.maximum_version = ssl.TLSVersion.TLSv1_2     # the alert comes within the handshake

    def handshake(conn: socket.socket) -> None:
        try:
            server_ctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    with _serving(handshake) as host:
        options = RegistryOptions(transport_retries=0, registry_certificates={host: test_pki.ca_cert})
        transport = Transport(host, options, push=False)
        assert transport._speaks_tls()
        with pytest.raises(RegistryError) as err:
            transport.ping()
        assert "does not speak TLS" not in str(err.value)
        assert _https_pools(transport) == 1
