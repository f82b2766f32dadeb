"""Benign pictures for the simulated hosters: the photos bundled with meldpunt and generated
ones, each the same bytes every time it is asked for.

A generated picture is a function of ``(seed, number)``: a colour gradient, a few shapes and a
little noise, drawn with numpy and PIL and encoded as JPEG (every fifth as PNG). Pictures of
one seed differ from each other by far more than any PDQ threshold, so the registry knows
exactly the ones the simulation seeds into it. They are made when first asked for and kept in
a bounded cache; one that fell out of the cache is made again, bit for bit the same.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

import meldpunt

__all__ = ["SAMPLES", "Picture", "PictureStore", "generated_picture", "sample_photos"]

SAMPLES = Path(meldpunt.__file__).parent / "samples"


class Picture:
    """A picture's bytes and type."""

    __slots__ = ("body", "content_type")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type


@cache
def sample_photos() -> tuple[Picture, ...]:
    """The bundled benign photos (``meldpunt/samples/*.jpg``), in name order."""
    return tuple(Picture(path.read_bytes(), "image/jpeg") for path in sorted(SAMPLES.glob("*.jpg")))


def generated_picture(seed: int, number: int, size: int = 160) -> Picture:
    """Picture ``number`` of ``seed``: deterministic, benign, ``size`` pixels square."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, number])
    # A diagonal gradient between two random colours.
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    weight = (ramp[:, None] * rng.uniform(0.2, 1.0) + ramp[None, :] * rng.uniform(0.2, 1.0)) / 2
    low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = (low[None, None, :] + (high - low)[None, None, :] * weight[:, :, None]).astype(
        np.float32
    )
    # Blocky noise gives every picture its own texture (and PDQ plenty to work with).
    blocks = rng.standard_normal((size // 16, size // 16, 3), dtype=np.float32) * 40.0
    pixels += blocks.repeat(16, axis=0).repeat(16, axis=1)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 7))):
        x0, y0 = (int(v) for v in rng.integers(0, size - 24, 2))
        x1, y1 = x0 + int(rng.integers(16, size // 2)), y0 + int(rng.integers(16, size // 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
    out = io.BytesIO()
    kind = _type_of(number)
    if kind == "image/png":
        image.save(out, "PNG", compress_level=1)
    else:
        image.save(out, "JPEG", quality=85)
    return Picture(out.getvalue(), kind)


def _type_of(number: int) -> str:
    return "image/png" if number % 5 == 4 else "image/jpeg"


class PictureStore:
    """Pictures by number: numbers below the count of sample photos are the photos, the rest
    generated from ``seed``. Thread-safe; keeps at most ``capacity`` generated pictures."""

    def __init__(self, seed: int, *, capacity: int = 4096, size: int = 160) -> None:
        self.seed = seed
        self.size = size
        self.capacity = capacity
        self._samples = sample_photos()
        self._cache: OrderedDict[int, Picture] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def photos(self) -> int:
        """How many numbers stand for the bundled photos (0 .. photos - 1)."""
        return len(self._samples)

    def get(self, number: int) -> Picture:
        if number < len(self._samples):
            return self._samples[number]
        with self._lock:
            found = self._cache.get(number)
            if found is not None:
                self._cache.move_to_end(number)
                return found
        made = generated_picture(self.seed, number, self.size)  # outside the lock: ~2 ms
        with self._lock:
            self._cache[number] = made
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return made

    def ready(self, number: int) -> bool:
        """Whether picture ``number`` is made already (a photo, or generated and cached)."""
        return number < len(self._samples) or number in self._cache

    def content_type(self, number: int) -> str:
        """Picture ``number``'s type, without making it."""
        if number < len(self._samples):
            return self._samples[number].content_type
        return _type_of(number)

    def digest(self, number: int) -> str:
        """SHA-256 of picture ``number``'s bytes."""
        return hashlib.sha256(self.get(number).body).hexdigest()
