"""The instance's Ed25519 key: it signs every page of our feeds; partners verify with its public
half, which ``meldpunt exchange key`` shows.

The private key is made on first use and kept in ``data_dir`` (``exchange-ed25519.pem``, readable
by its owner only), so that every process of one installation signs alike. Public keys travel as
the raw 32 bytes in base64 (44 characters); a key's fingerprint is the first 16 hex digits of
the SHA-256 of those bytes, short enough to read out over the phone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from meldpunt.exchange.errors import InvalidInput

__all__ = [
    "KEY_FILE",
    "InstanceKey",
    "fingerprint",
    "instance_key",
    "parse_public_key",
    "verify",
]

KEY_FILE = "exchange-ed25519.pem"


def fingerprint(public_key: str) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key."""
    return hashlib.sha256(_raw(public_key)).hexdigest()[:16]


def _raw(public_key: str) -> bytes:
    try:
        raw = base64.b64decode(public_key.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("a public key is 32 bytes in base64 (44 characters)") from None
    if len(raw) != 32:
        raise InvalidInput(f"a public key is 32 bytes in base64, not {len(raw)} bytes")
    return raw


def parse_public_key(public_key: str) -> str:
    """``public_key`` checked (base64 of 32 bytes) and in its canonical spelling."""
    raw = _raw(public_key)
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidInput("that is not an Ed25519 public key") from None
    return base64.b64encode(raw).decode("ascii")


def verify(public_key: str, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is the signature of ``data`` by the key ``public_key``."""
    key = Ed25519PublicKey.from_public_bytes(_raw(public_key))
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class InstanceKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> str:
        raw = self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode("ascii")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)


def _load(path: Path) -> InstanceKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path} does not hold an Ed25519 key")
    return InstanceKey(key)


def instance_key(data_dir: str | os.PathLike[str]) -> InstanceKey:
    """This instance's key, made and saved under ``data_dir`` on first use."""
    path = Path(data_dir) / KEY_FILE
    if path.exists():
        return _load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return _load(path)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return InstanceKey(key)
