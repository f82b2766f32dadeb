"""Signal types the registry keeps but meldpunt cannot match.

PhotoDNA is licensed by Microsoft; lists such as VICS and ICSE carry PhotoDNA hashes beside MD5
and SHA-1. The registry stores them with their item (so that an export gives them back and a
licensed matcher could use them later); the index never sees them (``matchable = False``).
"""

from __future__ import annotations

import hashlib
import re

from meldpunt.signals.errors import InvalidSignal
from meldpunt.signals.types import SignalType, get, register

__all__ = [
    "EMPTY_CONTENT_DIGESTS",
    "MAX_OPAQUE_LENGTH",
    "PhotoDNA",
    "register_registry_signal_types",
]

#: The digests of zero bytes. A list entry with one would match every empty file (a failed
#: upload, a truncated download): never accepted into a list, never matched.
EMPTY_CONTENT_DIGESTS: frozenset[tuple[str, str]] = frozenset(
    (name, hashlib.new(name, b"").hexdigest()) for name in ("md5", "sha1", "sha256")
)

#: Longer values are refused: the column holds 1000 characters and no opaque hash is that long.
MAX_OPAQUE_LENGTH = 1000

_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_HEX = re.compile(r"[0-9A-Fa-f]+")


class PhotoDNA(SignalType):
    """An opaque PhotoDNA hash: base64 (192 characters for the usual 144 bytes) or hex, kept
    exactly as given apart from surrounding whitespace. Validated loosely: the right alphabet and
    a sane length, not a particular size, since exporters differ."""

    name = "photodna"
    matchable = False

    @classmethod
    def normalize(cls, value: str) -> str:
        text = value.strip()
        if not text:
            raise InvalidSignal("empty photodna value")
        if len(text) > MAX_OPAQUE_LENGTH:
            raise InvalidSignal(f"photodna value too long ({len(text)} characters)")
        if not (_HEX.fullmatch(text) or (_BASE64.fullmatch(text) and len(text) % 4 == 0)):
            raise InvalidSignal(f"photodna must be base64 or hexadecimal: {text[:40]!r}")
        return text


def register_registry_signal_types() -> None:
    """Register PhotoDNA unless another module already did (a plug-in, the signals room)."""
    try:
        get(PhotoDNA.name)
    except InvalidSignal:
        register(PhotoDNA)
