"""Signal types: a name, how to validate and normalise a value, and a distance.

One small class per type, kept in a registry, so that more types (vPDQ, licensed algorithms such
as PhotoDNA) can be added as plug-ins: subclass ``SignalType`` and call ``register``, or expose a
``meldpunt.signal_types`` entry point that returns the class.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import ClassVar

from .errors import InvalidSignal


class SignalType:
    """Base class. Subclasses set ``name`` and may override ``normalize`` and ``distance``."""

    name: ClassVar[str]
    # Perceptual types compare by distance; exact types only by equality.
    perceptual: ClassVar[bool] = False
    # Whether meldpunt can match values of this type (opaque types are kept, not matched).
    matchable: ClassVar[bool] = True

    @classmethod
    def normalize(cls, value: str) -> str:
        """The canonical form of ``value``; raises ``InvalidSignal`` when it is not valid."""
        text = value.strip()
        if not text:
            raise InvalidSignal(f"empty {cls.name} value")
        return text

    @classmethod
    def is_valid(cls, value: str) -> bool:
        try:
            cls.normalize(value)
        except InvalidSignal:
            return False
        return True

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """0 when equal; exact types have no notion of 'near', so anything else is 1."""
        return 0 if cls.normalize(a) == cls.normalize(b) else 1


class HexSignalType(SignalType):
    """A fixed-length hexadecimal value, stored lower-case."""

    hex_length: ClassVar[int]
    _pattern: ClassVar[re.Pattern[str]] = re.compile(r"[0-9a-f]+")

    @classmethod
    def normalize(cls, value: str) -> str:
        text = value.strip().lower()
        if len(text) != cls.hex_length:
            raise InvalidSignal(
                f"{cls.name} must be {cls.hex_length} hex digits, got {len(text)} characters"
            )
        if not cls._pattern.fullmatch(text):
            raise InvalidSignal(f"{cls.name} must be hexadecimal: {value.strip()[:80]!r}")
        return text


class MD5(HexSignalType):
    name = "md5"
    hex_length = 32


class SHA1(HexSignalType):
    name = "sha1"
    hex_length = 40


class SHA256(HexSignalType):
    name = "sha256"
    hex_length = 64


class PDQ(HexSignalType):
    """Meta's 256-bit perceptual hash; distance is the Hamming distance."""

    name = "pdq"
    hex_length = 64
    perceptual = True
    max_distance = 256

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return (int(cls.normalize(a), 16) ^ int(cls.normalize(b), 16)).bit_count()


class PDQOrientation(PDQ):
    """The PDQ hash of an entry's picture turned or mirrored (stored for entries made from
    pixels, so a copy hashed by someone else in another orientation matches its own hash)."""

    name = "pdq_orientation"


class PDQTrimmed(PDQ):
    """The PDQ hash of a picture without its uniform border (``borders.py``)."""

    name = "pdq_trimmed"


class LocalFeaturesRef(HexSignalType):
    """The SHA-256 of a picture's local features (``features.py``); the features themselves are
    kept beside the entry, and only the digest travels in the change log and in exports."""

    name = "features"
    hex_length = 64


#: The PDQ-like types, all searched in the one PDQ index.
PDQ_TYPES = ("pdq", "pdq_orientation", "pdq_trimmed")

_REGISTRY: dict[str, type[SignalType]] = {}
_ALIASES = {"pdq_hash": "pdq", "sha-1": "sha1", "sha-256": "sha256", "md-5": "md5",
            "photo_md5": "md5", "video_md5": "md5"}  # fmt: skip


def register(signal_type: type[SignalType]) -> type[SignalType]:
    """Add a signal type; usable as a class decorator. Names are unique and lower-case."""
    name = signal_type.name
    if name != name.lower() or not name:
        raise ValueError(f"signal type names are lower-case: {name!r}")
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not signal_type:
        raise ValueError(f"signal type {name!r} is already registered")
    _REGISTRY[name] = signal_type
    return signal_type


for _builtin in (MD5, SHA1, SHA256, PDQ, PDQOrientation, PDQTrimmed, LocalFeaturesRef):
    register(_builtin)

_plugins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in metadata.entry_points(group="meldpunt.signal_types"):
        register(entry.load())


def get(name: str) -> type[SignalType]:
    """The signal type called ``name`` (case-insensitive, common aliases accepted)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        _load_plugins()
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise InvalidSignal(f"unknown signal type {name!r} (known: {known})") from None


def names() -> list[str]:
    _load_plugins()
    return sorted(_REGISTRY)


def parse(text: str) -> tuple[str, str]:
    """Parse ``type:value`` or ``type value`` into a normalised (type, value) pair."""
    stripped = text.strip()
    for separator in (":", " ", "\t", ","):
        if separator in stripped:
            kind, _, value = stripped.partition(separator)
            signal_type = get(kind)
            return signal_type.name, signal_type.normalize(value)
    raise InvalidSignal(f"expected '<type>:<value>', got {stripped[:80]!r}")
