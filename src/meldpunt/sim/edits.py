"""Edited copies of benign pictures, the way copies come back: recompressed, resized, recoloured,
turned, framed, cropped, captioned and slightly rotated, alone and combined.

``EDITS`` names every edit with its strength and its group (the rows of the detection
benchmark); ``apply_edit(name, rgb, seed)`` makes the copy as an RGB array and ``encode`` the
bytes a platform would receive. ``photo_like(seed)`` draws a benign, photo-like picture (smooth
colour fields, shapes, texture and grain) for corpora larger than the bundled photos. Everything
is deterministic for a seed. Used by ``bench/detection.py`` and the tests.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

__all__ = ["EDITS", "GROUPS", "Edit", "apply_edit", "encode", "photo_like"]

Rgb = NDArray[np.uint8]


@dataclass(frozen=True)
class Edit:
    name: str
    group: str
    make: Callable[[Image.Image, np.random.Generator], Image.Image]
    quality: int = 85  # the JPEG quality the copy is saved at


def _resize(factor: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        size = (max(8, round(image.width * factor)), max(8, round(image.height * factor)))
        return image.resize(size, Image.Resampling.LANCZOS)

    return make


def _enhance(kind: str, factor: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        enhancer = {"brightness": ImageEnhance.Brightness, "contrast": ImageEnhance.Contrast,
                    "color": ImageEnhance.Color}[kind]  # fmt: skip
        return enhancer(image).enhance(factor)

    return make


def _grey(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.convert("L").convert("RGB")


def _blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(1.5))


def _same(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    return image


def _turn(method: Image.Transpose) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return image.transpose(method)

    return make


def _border(
    share: float, style: str, sides: str = "all"
) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    """A border ``share`` of the picture's height (letterbox: top and bottom only)."""

    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        pad = max(1, round(image.height * share))
        px = 0 if sides == "letterbox" else pad
        width, height = image.width + 2 * px, image.height + 2 * pad
        if style == "noisy":
            base = rng.normal(rng.uniform(40, 215), 8, (height, width, 1))
            canvas = np.repeat(np.clip(base, 0, 255), 3, axis=2).astype(np.uint8)
        elif style == "gradient":
            ramp = np.linspace(rng.uniform(0, 80), rng.uniform(150, 255), width)
            canvas = np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2).astype(np.uint8)
        else:
            colour = (0, 0, 0) if style == "black" else (255, 255, 255)
            canvas = np.empty((height, width, 3), np.uint8)
            canvas[:] = colour
        frame = Image.fromarray(canvas)
        frame.paste(image, (px, pad))
        return frame

    return make


def _crop(share: float, where: str) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    """Remove ``share`` of the width and of the height: evenly from all sides, or at one corner."""

    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        dx, dy = round(image.width * share), round(image.height * share)
        if where == "centre":
            box = (dx // 2, dy // 2, image.width - (dx - dx // 2), image.height - (dy - dy // 2))
        else:
            left, top = int(rng.integers(0, 2)) * dx, int(rng.integers(0, 2)) * dy
            box = (left, top, left + image.width - dx, top + image.height - dy)
        return image.crop(box)

    return make


def _caption(share: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    """A caption band across the bottom, ``share`` of the height, with text on it."""

    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        out = image.copy()
        draw = ImageDraw.Draw(out)
        band = max(4, round(image.height * share))
        shade = int(rng.integers(0, 256))
        draw.rectangle((0, image.height - band, image.width, image.height), fill=(shade,) * 3)
        ink = (255 - shade,) * 3
        size = max(8, band // 2)
        draw.text((band // 3, image.height - band + band // 4), "shared at example.test 2026",
                  fill=ink, font_size=size)  # fmt: skip
        return out

    return make


def _logo(share: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    """An opaque logo (a coloured badge with a mark) covering ``share`` of the area."""

    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        out = image.copy()
        side = round((share * image.width * image.height) ** 0.5)
        x = int(rng.integers(0, max(1, image.width - side)))
        y = int(rng.integers(0, max(1, image.height - side)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw = ImageDraw.Draw(out)
        draw.rectangle((x, y, x + side, y + side), fill=colour)
        draw.ellipse((x + side // 5, y + side // 5, x + 4 * side // 5, y + 4 * side // 5),
                     fill=(255 - colour[0], 255 - colour[1], 255 - colour[2]))  # fmt: skip
        return out

    return make


def _watermark(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Semi-transparent text repeated across the picture."""
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(10, image.height // 12)
    for row in range(1, 4):
        y = row * image.height // 4 - size // 2
        draw.text((image.width // 10, y), "example.test  example.test", fill=(255, 255, 255, 110),
                  font_size=size)  # fmt: skip
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def _rotate(degrees: float) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    """Turned by a few degrees about the centre, the corners filled black (size kept)."""

    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        sign = 1 if rng.random() < 0.5 else -1
        return image.rotate(sign * degrees, resample=Image.Resampling.BICUBIC)

    return make


def _then(
    *steps: Callable[[Image.Image, np.random.Generator], Image.Image],
) -> Callable[[Image.Image, np.random.Generator], Image.Image]:
    def make(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        for step in steps:
            image = step(image, rng)
        return image

    return make


T = Image.Transpose
EDITS: tuple[Edit, ...] = (
    Edit("jpeg-70", "recompression, resizing, colour", _same, 70),
    Edit("jpeg-40", "recompression, resizing, colour", _same, 40),
    Edit("resize-50%", "recompression, resizing, colour", _resize(0.5)),
    Edit("resize-25%", "recompression, resizing, colour", _resize(0.25)),
    Edit("brighter-20%", "recompression, resizing, colour", _enhance("brightness", 1.2)),
    Edit("contrast-70%", "recompression, resizing, colour", _enhance("contrast", 0.7)),
    Edit("saturation-50%", "recompression, resizing, colour", _enhance("color", 0.5)),
    Edit("greyscale", "recompression, resizing, colour", _grey),
    Edit("blur", "recompression, resizing, colour", _blur),
    Edit("mirror", "flip or quarter turn", _turn(T.FLIP_LEFT_RIGHT)),
    Edit("upside-down", "flip or quarter turn", _turn(T.FLIP_TOP_BOTTOM)),
    Edit("turn-90", "flip or quarter turn", _turn(T.ROTATE_90)),
    Edit("turn-180", "flip or quarter turn", _turn(T.ROTATE_180)),
    Edit("turn-270", "flip or quarter turn", _turn(T.ROTATE_270)),
    Edit("border-5%-black", "borders and padding up to 10%", _border(0.05, "black")),
    Edit("border-10%-white", "borders and padding up to 10%", _border(0.10, "white")),
    Edit("border-10%-noisy", "borders and padding up to 10%", _border(0.10, "noisy")),
    Edit("border-10%-gradient", "borders and padding up to 10%", _border(0.10, "gradient")),
    Edit("letterbox-10%", "borders and padding up to 10%", _border(0.10, "black", "letterbox")),
    Edit("border-20%-black", "borders of 20%", _border(0.20, "black")),
    Edit("crop-3%", "crops up to 10%", _crop(0.03, "corner")),
    Edit("crop-5%", "crops up to 10%", _crop(0.05, "corner")),
    Edit("crop-10%", "crops up to 10%", _crop(0.10, "corner")),
    Edit("crop-10%-centre", "crops up to 10%", _crop(0.10, "centre")),
    Edit("crop-15%", "crops of 15%", _crop(0.15, "corner")),
    Edit("caption-10%", "overlays covering up to 15%", _caption(0.10)),
    Edit("caption-15%", "overlays covering up to 15%", _caption(0.15)),
    Edit("logo-5%", "overlays covering up to 15%", _logo(0.05)),
    Edit("logo-15%", "overlays covering up to 15%", _logo(0.15)),
    Edit("watermark", "overlays covering up to 15%", _watermark),
    Edit("rotate-1", "rotations up to 5 degrees", _rotate(1)),
    Edit("rotate-3", "rotations up to 5 degrees", _rotate(3)),
    Edit("rotate-5", "rotations up to 5 degrees", _rotate(5)),
    Edit("rotate-10", "rotations of 10 degrees", _rotate(10)),
    Edit("crop-5%+resize", "combinations", _then(_crop(0.05, "corner"), _resize(0.6)), 75),
    Edit("border+mirror", "combinations", _then(_border(0.08, "black"), _turn(T.FLIP_LEFT_RIGHT))),
    Edit("caption+resize", "combinations", _then(_caption(0.1), _resize(0.5)), 75),
    Edit("rotate-3+crop-5%", "combinations", _then(_rotate(3), _crop(0.05, "centre"))),
    Edit("grey+border", "combinations", _then(_grey, _border(0.1, "white"))),
)  # fmt: skip

GROUPS: tuple[str, ...] = tuple(dict.fromkeys(edit.group for edit in EDITS))
_BY_NAME = {edit.name: edit for edit in EDITS}


def apply_edit(name: str, rgb: Rgb, seed: int = 0) -> tuple[Rgb, int]:
    """The edited copy of ``rgb`` and the JPEG quality to save it at."""
    edit = _BY_NAME[name]
    rng = np.random.default_rng([seed & 0xFFFFFFFF, sum(name.encode())])
    image = edit.make(Image.fromarray(rgb), rng)
    return np.asarray(image.convert("RGB")), edit.quality


def encode(rgb: Rgb, quality: int = 85) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "JPEG", quality=quality)
    return out.getvalue()


def photo_like(seed: int, size: tuple[int, int] = (640, 480)) -> Rgb:
    """A benign, photo-like picture: overlapping smooth colour fields, shapes with soft edges,
    fine texture and sensor grain. Pictures of different seeds share nothing."""
    rng = np.random.default_rng([seed & 0xFFFFFFFF, 0x5EED])
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.zeros((height, width, 3), np.float32) + rng.uniform(30, 220, 3)
    for _ in range(int(rng.integers(4, 9))):  # smooth fields
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        radius = rng.uniform(0.1, 0.6) * max(width, height)
        weight = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
        pixels += weight[:, :, None] * rng.uniform(-120, 120, 3)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 20))):  # shapes
        x0, y0 = rng.uniform(-0.1, 1.0) * width, rng.uniform(-0.1, 1.0) * height
        w, h = rng.uniform(0.03, 0.35) * width, rng.uniform(0.03, 0.35) * height
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        if kind == 0:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 1:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            points = [(x0 + rng.uniform(0, w), y0 + rng.uniform(0, h)) for _ in range(5)]
            draw.polygon(points, fill=colour)
    for _ in range(int(rng.integers(5, 15))):  # lines
        points = [tuple(rng.uniform(0, 1, 2) * (width, height)) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
                  width=int(rng.integers(1, 6)))  # fmt: skip
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.6)))
    texture = rng.standard_normal((height // 4 + 1, width // 4 + 1)).astype(np.float32)
    texture = np.kron(texture, np.ones((4, 4), np.float32))[:height, :width]
    out = np.asarray(image, np.float32) + texture[:, :, None] * rng.uniform(3, 10)
    out += rng.normal(0, rng.uniform(1, 4), (height, width, 1)).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
