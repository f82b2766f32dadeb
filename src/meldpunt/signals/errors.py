"""Typed errors for input that cannot be hashed.

Every failure to read or decode a file is one of these, with a message a person can act on; the
caller decides whether to go on with the next file. ``code`` is stable and machine-readable, and
``status`` is the HTTP status a face answers with. The base class is ``meldpunt.errors``, a leaf
module that imports nothing of meldpunt, so this room stays usable on its own.
"""

from __future__ import annotations

from meldpunt.errors import MeldpuntError


class SignalError(MeldpuntError):
    """Base class: this input gives no signal."""

    code = "signal_error"


class UnreadableFile(SignalError):
    """The file could not be opened or read (missing, permissions, a device, vanished)."""

    code = "unreadable"


class FileTooLarge(SignalError):
    """The file is larger than the configured limit for images."""

    code = "file_too_large"
    status = 413


class NotAnImage(SignalError):
    """The bytes are not in any image format meldpunt decodes."""

    code = "not_an_image"
    status = 415


class CorruptImage(SignalError):
    """The bytes claim to be an image but cannot be decoded (truncated, damaged, hostile)."""

    code = "corrupt_image"


class ImageTooLarge(SignalError):
    """The image has more pixels than the configured limit (a decompression bomb guard)."""

    code = "image_too_large"
    status = 413


class NotAVideo(SignalError):
    """The bytes are not a video container with a video stream that FFmpeg reads."""

    code = "not_a_video"
    status = 415


class CorruptVideo(SignalError):
    """The file is a video container but its frames cannot be decoded (damaged, hostile)."""

    code = "corrupt_video"


class InvalidSignal(SignalError, ValueError):
    """A hash value that is not valid for its signal type."""

    code = "invalid_signal"
