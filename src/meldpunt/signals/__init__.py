"""What content IS: bytes to signals (MD5, SHA-1, SHA-256, PDQ and its orientation hashes).

Pure: imports nothing else of meldpunt, touches no database and no network.

    >>> from meldpunt.signals import hash_file, HashOptions
    >>> signals = hash_file("photo.jpg", HashOptions(dihedral=True))
    >>> signals.pdq.hash, signals.pdq.quality, signals.digests.sha256
"""

from .errors import (
    CorruptImage,
    FileTooLarge,
    ImageTooLarge,
    InvalidSignal,
    NotAnImage,
    SignalError,
    UnreadableFile,
)
from .exact import ExactDigests, digest_bytes, digest_file, digest_stream
from .hashing import FileSignals, HashOptions, PdqSignal, hash_file, pdq_cost, pdq_signal
from .image import ImageInfo, ImageLimits, decode_cost, probe_image
from .pdq import ORIENTATIONS, Orientation, hamming

__all__ = [
    "ORIENTATIONS",
    "CorruptImage",
    "ExactDigests",
    "FileSignals",
    "FileTooLarge",
    "HashOptions",
    "ImageInfo",
    "ImageLimits",
    "ImageTooLarge",
    "InvalidSignal",
    "NotAnImage",
    "Orientation",
    "PdqSignal",
    "SignalError",
    "UnreadableFile",
    "decode_cost",
    "digest_bytes",
    "digest_file",
    "digest_stream",
    "hamming",
    "hash_file",
    "pdq_cost",
    "pdq_signal",
    "probe_image",
]
