"""A benign benchmark corpus, made from photos that ship inside scikit-image.

Each image is one photo, cropped to a random window and aspect, resized to the target size, given
fine sensor-like grain (so that large images carry the high-frequency detail and the file sizes of
real camera pictures), and saved as JPEG at a random quality between 75 and 95, or as PNG.
The corpus is deterministic for a given seed and cached on disk.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina",
          "immunohistochemistry", "brick", "grass", "gravel", "camera", "moon", "cell")  # fmt: skip

SIZES = {  # name -> (width, height): about 0.3, 2 and 12 megapixels
    "0.3MP": (640, 480),
    "2MP": (1632, 1224),
    "12MP": (4000, 3000),
}


@dataclass(frozen=True)
class CorpusImage:
    path: Path
    size_name: str
    photo: str
    quality: int | None  # JPEG quality; None for PNG


def _photo(name: str) -> np.ndarray:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[:, :, :3])


def _render(photo: np.ndarray, size: tuple[int, int], rng: random.Random) -> Image.Image:
    height, width = photo.shape[:2]
    crop_w = int(width * rng.uniform(0.6, 1.0))
    crop_h = int(height * rng.uniform(0.6, 1.0))
    left = rng.randint(0, width - crop_w)
    top = rng.randint(0, height - crop_h)
    if rng.random() < 0.3:  # a portrait picture
        size = (size[1], size[0])
    image = Image.fromarray(photo[top : top + crop_h, left : left + crop_w])
    image = image.resize(size, Image.Resampling.LANCZOS)
    grain = np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 6), size[::-1])
    pixels = np.asarray(image, dtype=np.float32) + grain[:, :, None].astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def build(directory: Path, per_size: int = 12, seed: int = 7, png_share: float = 0.15,
          sizes: dict[str, tuple[int, int]] | None = None) -> list[CorpusImage]:  # fmt: skip
    """Create (or reuse) the corpus under ``directory``; returns its images."""
    rng = random.Random(seed)
    photos = {name: _photo(name) for name in PHOTOS}
    images: list[CorpusImage] = []
    for size_name, size in (sizes or SIZES).items():
        for n in range(per_size):
            photo = PHOTOS[n % len(PHOTOS)]
            as_png = rng.random() < png_share
            quality = None if as_png else rng.randint(75, 95)
            path = directory / size_name / f"{n:03d}-{photo}.{'png' if as_png else 'jpg'}"
            state = rng.getstate()
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                picture = _render(photos[photo], size, rng)
                tmp = path.with_suffix(".tmp")
                if as_png:
                    picture.save(tmp, format="PNG", compress_level=6)
                else:
                    picture.save(tmp, format="JPEG", quality=quality)
                tmp.rename(path)
            rng.setstate(state)
            rng.random()  # keep the sequence independent of what was cached
            images.append(CorpusImage(path, size_name, photo, quality))
    return images
