"""Video signals: PDQ hashes of frames sampled at a fixed interval (the idea of Meta's vPDQ).

A video's signal is the list of its sampled frames' PDQ hashes with their quality and time, as
vPDQ gives them: one frame every ``seconds_per_frame`` seconds of the video's own timeline. The
frames are decoded by PyAV (FFmpeg) from a path, bytes or a binary stream, never written to disk.
Each frame is hashed by ``pdq.LumaBuffers`` from the reference's luminance of its RGB pixels, so
a frame hashes as the same picture saved as a file would.

Hostile input is bounded: the frame size (``max_frame_pixels``), the number of frames decoded
(``max_decoded_frames``) and of frames kept (``max_frames``); anything FFmpeg cannot read is a
``CorruptVideo``, a file that is no video at all is ``NotAVideo``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from .errors import CorruptVideo, ImageTooLarge, NotAVideo
from .pdq import ORIENTATION_TRANSFORMS, ORIENTATIONS, LumaBuffers, luma_from_rgb

__all__ = ["VIDEO_EXTENSIONS", "FrameHash", "VideoOptions", "VideoSignal", "looks_like_video",
           "video_signal"]  # fmt: skip

#: The containers meldpunt treats as video.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm"})


@dataclass(frozen=True)
class VideoOptions:
    seconds_per_frame: float = 1.0
    max_frames: int = 600
    max_decoded_frames: int = 100_000
    max_frame_pixels: int = 40_000_000
    min_quality: int = 50


@dataclass(frozen=True)
class FrameHash:
    """One sampled frame: its PDQ hash, quality and time in seconds."""

    hash: str
    quality: int
    seconds: float


@dataclass(frozen=True)
class VideoSignal:
    frames: tuple[FrameHash, ...]
    duration: float | None
    width: int
    height: int

    def usable(self, min_quality: int) -> tuple[FrameHash, ...]:
        """The frames whose hash is good enough to match (blank frames have quality 0)."""
        return tuple(f for f in self.frames if f.quality >= min_quality)


def looks_like_video(head: bytes) -> bool:
    """Whether a file's first bytes are those of an MP4/MOV, AVI or Matroska/WebM container."""
    return (
        head[4:8] == b"ftyp"
        or head[4:8] in (b"moov", b"mdat", b"wide", b"free")
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or head[:4] == b"\x1a\x45\xdf\xa3"
    )


def _frame_pdq(rgb: np.ndarray[Any, Any]) -> tuple[str, int]:
    luma = luma_from_rgb(rgb)
    primary = LumaBuffers(luma, luma.shape).pdq(ORIENTATION_TRANSFORMS[ORIENTATIONS[0]])
    return primary.hash, primary.quality


def video_signal(
    source: str | os.PathLike[str] | bytes | BinaryIO, options: VideoOptions = VideoOptions()
) -> VideoSignal:
    """The sampled frames' PDQ hashes of a video. Raises ``NotAVideo``, ``CorruptVideo`` or
    ``ImageTooLarge`` (a frame over ``max_frame_pixels``)."""
    import av  # PyAV; imported here so that pictures need no FFmpeg

    opened: Any = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        container = av.open(opened if not isinstance(opened, os.PathLike) else os.fspath(opened))
    except av.error.InvalidDataError as exc:
        raise NotAVideo("not a video in a container FFmpeg reads") from exc
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise CorruptVideo(f"cannot open the video: {_describe(exc)}") from exc
    with container:
        format_name = container.format.name or ""
        if format_name == "image2" or format_name.endswith("_pipe"):
            raise NotAVideo(f"a still picture ({format_name}), not a video")
        if not container.streams.video:
            raise NotAVideo("the container holds no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one process per core already; no threads per video
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > options.max_frame_pixels:
            raise ImageTooLarge(
                f"video frames are {width}x{height}; the limit is {options.max_frame_pixels:,} "
                "pixels"
            )
        duration = float(container.duration) / 1e6 if container.duration else None
        frames: list[FrameHash] = []
        decoded = 0
        next_at = 0.0
        try:
            for frame in container.decode(stream):
                decoded += 1
                if decoded > options.max_decoded_frames:
                    raise CorruptVideo(
                        f"more than {options.max_decoded_frames:,} frames decoded; not hashed"
                    )
                seconds = float(frame.time) if frame.time is not None else decoded - 1.0
                if seconds + 1e-6 < next_at:
                    continue
                if frame.width * frame.height > options.max_frame_pixels:
                    raise ImageTooLarge(f"a frame of {frame.width}x{frame.height} is too large")
                value, quality = _frame_pdq(frame.to_ndarray(format="rgb24"))
                frames.append(FrameHash(value, quality, round(seconds, 3)))
                next_at = seconds + options.seconds_per_frame
                if len(frames) >= options.max_frames:
                    break
        except av.error.FFmpegError as exc:
            if not frames:
                raise CorruptVideo(f"cannot decode the video: {_describe(exc)}") from exc
            # a damaged tail: the frames before it stand
        if not frames:
            raise CorruptVideo("the video has no decodable frame")
        return VideoSignal(tuple(frames), duration, width, height)


def _describe(exc: BaseException) -> str:
    return (str(exc).strip() or type(exc).__name__)[:200]
