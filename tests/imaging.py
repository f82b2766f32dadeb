"""Benign test pictures: Meta's PDQ vectors and photos that ship inside scikit-image."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

_DEFAULT_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pdq-vectors"
VECTORS = Path(os.environ.get("MELDPUNT_PDQ_VECTORS", _DEFAULT_VECTORS))

if os.environ.get("CI") == "true" and not (VECTORS / "reference-hashes.csv").exists():
    # CI always has the vectors beside the clone; never let the conformance tests skip there
    raise RuntimeError(f"PDQ reference vectors not found at {VECTORS}")

needs_vectors = pytest.mark.skipif(
    not (VECTORS / "reference-hashes.csv").exists(),
    reason=f"PDQ reference vectors not found at {VECTORS} (set MELDPUNT_PDQ_VECTORS)",
)


@dataclass(frozen=True)
class Reference:
    path: Path
    pdq: str
    quality: int
    width: int
    height: int
    md5: str
    sha256: str


@cache
def references() -> tuple[Reference, ...]:
    rows: list[Reference] = []
    if not (VECTORS / "reference-hashes.csv").exists():
        return ()  # the tests that use them are skipped (needs_vectors)
    with open(VECTORS / "reference-hashes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            path = VECTORS / row["path"]
            if path.exists():
                rows.append(Reference(path, row["pdq"], int(row["quality"]), int(row["width"]),
                                      int(row["height"]), row["md5"], row["sha256"]))  # fmt: skip
    return tuple(rows)


@cache
def photo(name: str) -> np.ndarray:
    """An RGB uint8 photo from scikit-image's bundled data (brick, grass, gravel, coffee, ...)."""
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return np.ascontiguousarray(array[:, :, :3].astype(np.uint8))


def encode(image: Image.Image | np.ndarray, fmt: str = "JPEG", **params: object) -> bytes:
    picture = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    out = io.BytesIO()
    picture.save(out, format=fmt, **params)
    return out.getvalue()


def jpeg(array: np.ndarray, quality: int = 92) -> bytes:
    return encode(array, "JPEG", quality=quality)
