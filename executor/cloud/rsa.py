"""RSASSA-PKCS1-v1_5 with SHA-256 (RS256, RFC 8017 section 8.2), signing only, for Google service-account keys.

The key is a PEM "PRIVATE KEY" (PKCS#8, what Google's key files hold) or "RSA PRIVATE KEY" (PKCS#1). The DER
reader below knows just enough ASN.1 for those two structures. The signature is deterministic, so tests
verify it with `openssl dgst -verify` against the public key.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from .errors import CloudError

# DigestInfo prefix of SHA-256 (RFC 8017 section 9.2, note 1)
_SHA256_PREFIX = bytes.fromhex("3031300d060960864801650304020105000420")
_RSA_OID = bytes.fromhex("2a864886f70d010101")


@dataclass(frozen=True)
class RSAPrivateKey:
    """The numbers of an RSA private key read from PEM (PKCS#8 or PKCS#1), enough to sign a service account's JWT
    with RS256."""
    n: int
    e: int
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    def sign_sha256(self, message: bytes) -> bytes:
        digest_info = _SHA256_PREFIX + hashlib.sha256(message).digest()
        k = self.size
        if k < len(digest_info) + 11:
            raise CloudError("RSA key too small for a SHA-256 signature")
        em = b"\x00\x01" + b"\xff" * (k - len(digest_info) - 3) + b"\x00" + digest_info
        m = int.from_bytes(em, "big")
        # CRT (RFC 8017 section 5.1.2), then a check against the public exponent so that a fault never
        # leaks a signature that would reveal the key
        s1, s2 = pow(m, self.dp, self.p), pow(m, self.dq, self.q)
        h = (self.qinv * (s1 - s2)) % self.p
        s = s2 + self.q * h
        if pow(s, self.e, self.n) != m:
            raise CloudError("RSA signature self-check failed (is the private key consistent?)")
        return s.to_bytes(k, "big")


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER TLV at `pos` -> (tag, value, next position)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER value")
    return tag, data[pos:pos + length], pos + length


def _sequence(data: bytes) -> list[tuple[int, bytes]]:
    tag, body, _ = _read(data, 0)
    if tag != 0x30:
        raise ValueError("expected a SEQUENCE")
    items, pos = [], 0
    while pos < len(body):
        t, v, pos = _read(body, pos)
        items.append((t, v))
    return items


def _pkcs1(der: bytes) -> RSAPrivateKey:
    items = _sequence(der)
    if len(items) < 9 or any(t != 0x02 for t, _ in items[:9]):
        raise ValueError("not an RSAPrivateKey")
    ints = [int.from_bytes(v, "big", signed=True) for _, v in items[1:9]]
    return RSAPrivateKey(*ints)


def load_private_key(pem: str) -> RSAPrivateKey:
    """The RSA key of a PEM text; CloudError when it is not one."""
    lines = pem.strip().splitlines()
    if not lines or not lines[0].startswith("-----BEGIN ") or not lines[-1].startswith("-----END "):
        raise CloudError("the private key is not PEM text")
    label = lines[0][len("-----BEGIN "):].rstrip("-")
    try:
        der = base64.b64decode("".join(line.strip() for line in lines[1:-1]), validate=True)
        if label == "RSA PRIVATE KEY":
            return _pkcs1(der)
        if label == "PRIVATE KEY":
            items = _sequence(der)   # version, AlgorithmIdentifier, OCTET STRING privateKey
            if len(items) < 3 or items[1][0] != 0x30 or items[2][0] != 0x04:
                raise ValueError("not a PKCS#8 PrivateKeyInfo")
            _, oid, _ = _read(items[1][1], 0)
            if oid != _RSA_OID:
                raise CloudError("the private key is not an RSA key (only RS256 keys are supported)")
            return _pkcs1(items[2][1])
    except (ValueError, base64.binascii.Error) as e:
        raise CloudError(f"the private key cannot be read: {e}") from None
    raise CloudError(f"unsupported private key type {label!r} (expected PRIVATE KEY or RSA PRIVATE KEY)")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
