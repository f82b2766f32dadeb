"""What content IS: bytes to signals (MD5, SHA-1, SHA-256, PDQ and its orientation hashes).

Pure: imports nothing else of meldpunt, touches no database and no network.

    >>> from meldpunt.signals import hash_file, HashOptions
    >>> signals = hash_file("photo.jpg", HashOptions(dihedral=True))
    >>> signals.pdq.hash, signals.pdq.quality, signals.digests.sha256
"""

from .errors import (
    CorruptImage,
    CorruptVideo,
    FileTooLarge,
    ImageTooLarge,
    InvalidSignal,
    NotAnImage,
    NotAVideo,
    SignalError,
    UnreadableFile,
)
from .exact import Digester, ExactDigests, digest_bytes, digest_file, digest_stream
from .hashing import FileSignals, HashOptions, PdqSignal, hash_file, pdq_cost, pdq_signal
from .image import ImageInfo, ImageLimits, decode_cost, probe_image
from .pdq import ORIENTATIONS, Orientation, hamming
from .video import (
    VIDEO_EXTENSIONS,
    FrameHash,
    VideoOptions,
    VideoSignal,
    looks_like_video,
    video_signal,
)

__all__ = [
    "ORIENTATIONS",
    "VIDEO_EXTENSIONS",
    "CorruptImage",
    "CorruptVideo",
    "Digester",
    "ExactDigests",
    "FileSignals",
    "FileTooLarge",
    "FrameHash",
    "HashOptions",
    "ImageInfo",
    "ImageLimits",
    "ImageTooLarge",
    "InvalidSignal",
    "NotAVideo",
    "NotAnImage",
    "Orientation",
    "PdqSignal",
    "SignalError",
    "UnreadableFile",
    "VideoOptions",
    "VideoSignal",
    "decode_cost",
    "digest_bytes",
    "digest_file",
    "digest_stream",
    "hamming",
    "hash_file",
    "looks_like_video",
    "pdq_cost",
    "pdq_signal",
    "probe_image",
    "video_signal",
]
