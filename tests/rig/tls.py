"""A throwaway certificate authority for the rig's TLS registries and token server (openssl CLI)."""
from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestPKI:
    """Paths of PEM files made by :func:`make_pki`."""

    dir: str
    ca_cert: str           # the self-signed CA (trust anchor for clients and for token verification)
    ca_key: str
    server_cert: str       # TLS leaf, SAN IP:127.0.0.1 and DNS:localhost, signed by the CA
    server_key: str
    token_cert: str        # RSA leaf that signs bearer tokens (RS256), signed by the CA
    token_key: str
    cert_dir: str          # a directory holding only ca.crt (for skopeo/containers --cert-dir)


def _openssl(args: list[str], cwd: str) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")


def _leaf(directory: str, name: str, cn: str, key_args: list[str], extensions: str) -> tuple[str, str]:
    key, csr, crt, ext = (os.path.join(directory, f"{name}.{s}") for s in ("key", "csr", "pem", "ext"))
    with open(ext, "w") as f:
        f.write(extensions)
    _openssl(["req", "-new", "-newkey", *key_args, "-nodes", "-keyout", key, "-out", csr,
              "-subj", f"/CN={cn}"], directory)
    _openssl(["x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial",
              str(int.from_bytes(os.urandom(8), "big")), "-days", "3650", "-sha256",
              "-extfile", ext, "-out", crt], directory)
    return crt, key


def make_pki(directory: str) -> TestPKI:
    """Create a CA, a TLS server certificate for 127.0.0.1 and an RSA token-signing certificate."""
    os.makedirs(directory, exist_ok=True)
    ec = ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    _openssl(["req", "-x509", "-newkey", *ec, "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
              "-days", "3650", "-sha256", "-subj", "/CN=kiln test CA",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)
    server_cert, server_key = _leaf(
        directory, "server", "127.0.0.1", ec,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    token_cert, token_key = _leaf(
        directory, "token", "kiln test token signer", ["rsa:2048"],
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    cert_dir = os.path.join(directory, "certs.d")
    os.makedirs(cert_dir, exist_ok=True)
    with open(os.path.join(directory, "ca.pem"), "rb") as src, \
            open(os.path.join(cert_dir, "ca.crt"), "wb") as dst:
        dst.write(src.read())
    log.info("test PKI ready in %s", directory)
    return TestPKI(dir=directory, ca_cert=os.path.join(directory, "ca.pem"),
                   ca_key=os.path.join(directory, "ca.key"), server_cert=server_cert,
                   server_key=server_key, token_cert=token_cert, token_key=token_key,
                   cert_dir=cert_dir)
