"""Local features: what still matches when a copy is cropped, overlaid or slightly rotated.

PDQ describes a whole picture; cut 10% away, put a caption over a sixth of it or turn it by a few
degrees and its hash moves past any safe threshold. Local features describe small patches around
corners instead: ORB (OpenCV, on the CPU) finds up to a few hundred keypoints and gives each a
256-bit descriptor that stays close under resizing, recompression, colour changes and rotation.
A copy shares many patches with the original, and, checked geometrically, those patches sit
where one similarity transform (shift, scale, turn) of the original puts them. Two unrelated
pictures share a few similar patches by chance, never many in the same geometry: the check is
what keeps false positives out.

* ``local_features(luma)`` gives a picture's features (positions in a frame whose longer side is
  ``FRAME_SIDE`` pixels, descriptors as 32 bytes each), strongest first;
* ``LocalFeatures.to_bytes`` / ``from_bytes`` store them compactly (36 bytes a feature);
* ``verify(pairs)`` fits the transform to candidate correspondences with RANSAC and counts the
  inliers.

Pure: numpy and OpenCV only.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidSignal

FRAME_SIDE = 512
DESCRIPTOR_BYTES = 32
#: How many features a stored entry keeps, and how many a query looks for.
ENTRY_FEATURES = 128
QUERY_FEATURES = 300
_MAGIC = b"MPF1"
_HEADER = struct.Struct("<4sHH")  # magic, feature count, frame side


@dataclass(frozen=True)
class LocalFeatures:
    points: NDArray[np.float32]  # (n, 2) x, y in the frame
    descriptors: NDArray[np.uint8]  # (n, 32)

    def __len__(self) -> int:
        return len(self.descriptors)

    def strongest(self, count: int) -> LocalFeatures:
        return LocalFeatures(self.points[:count], self.descriptors[:count])

    def to_bytes(self) -> bytes:
        """Magic, count and frame side, then the positions (whole frame pixels, two uint16
        each) and the descriptors."""
        count = len(self)
        points = np.clip(np.rint(self.points), 0, 65535).astype("<u2")
        return (
            _HEADER.pack(_MAGIC, count, FRAME_SIDE)
            + points.tobytes()
            + np.ascontiguousarray(self.descriptors, dtype=np.uint8).tobytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        """The features ``to_bytes`` wrote; raises ``InvalidSignal`` for anything else."""
        if len(data) < _HEADER.size:
            raise InvalidSignal("local features are too short")
        magic, count, side = _HEADER.unpack_from(data)
        if magic != _MAGIC or side != FRAME_SIDE:
            raise InvalidSignal("not meldpunt local features (wrong header)")
        expected = _HEADER.size + count * (4 + DESCRIPTOR_BYTES)
        if len(data) != expected:
            raise InvalidSignal(f"local features of {count} points need {expected} bytes")
        points_end = _HEADER.size + 4 * count
        points = np.frombuffer(data[_HEADER.size : points_end], dtype="<u2").reshape(count, 2)
        descriptors = np.frombuffer(data[points_end:], dtype=np.uint8).reshape(
            count, DESCRIPTOR_BYTES
        )
        return cls(points.astype(np.float32), descriptors.copy())


def _frame(luma: NDArray[np.generic]) -> NDArray[np.uint8]:
    import cv2

    rows, cols = luma.shape
    scale = FRAME_SIDE / max(rows, cols)
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    pixels = np.clip(np.asarray(luma, dtype=np.float32), 0, 255)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    framed = cv2.resize(pixels, size, interpolation=interpolation)
    return np.ascontiguousarray(np.rint(framed), dtype=np.uint8)


def local_features(luma: NDArray[np.generic], count: int = QUERY_FEATURES) -> LocalFeatures:
    """Up to ``count`` ORB features of a luminance array, strongest first."""
    import cv2

    frame = _frame(luma)
    empty = LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8))
    if min(frame.shape) < 32:
        return empty
    orb = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=count, scaleFactor=1.3, nlevels=6, edgeThreshold=15, patchSize=31,
        fastThreshold=10,
    )  # fmt: skip
    keypoints, descriptors = orb.detectAndCompute(frame, None)
    if descriptors is None or not keypoints:
        return empty
    order = np.argsort([-k.response for k in keypoints], kind="stable")[:count]
    points = np.array([keypoints[i].pt for i in order], dtype=np.float32).reshape(-1, 2)
    return LocalFeatures(points, np.ascontiguousarray(descriptors[order], dtype=np.uint8))


def descriptor_words(descriptors: NDArray[np.uint8]) -> NDArray[np.uint64]:
    """Descriptors as (n, 4) uint64 words, the layout of ``meldpunt.index``'s 256-bit hashes."""
    raw = np.ascontiguousarray(descriptors, dtype=np.uint8)
    return raw.view(">u8").astype(np.uint64).reshape(-1, 4)


@dataclass(frozen=True)
class Geometry:
    """What RANSAC found: inliers and the similarity transform's scale and angle."""

    inliers: int
    scale: float
    degrees: float


def verify(
    query_points: NDArray[np.float32],
    entry_points: NDArray[np.float32],
    *,
    tolerance: float = 6.0,
    scales: tuple[float, float] = (0.5, 2.0),
) -> Geometry:
    """Fit one similarity transform from the query's points to the entry's (row i of each is a
    candidate correspondence) with RANSAC; the inliers within ``tolerance`` frame pixels. A
    transform that shrinks or grows the picture more than ``scales`` allows counts as none."""
    import cv2

    none = Geometry(0, 0.0, 0.0)
    if len(query_points) < 3:
        return none
    matrix, mask = cv2.estimateAffinePartial2D(
        np.asarray(query_points, np.float32).reshape(-1, 1, 2),
        np.asarray(entry_points, np.float32).reshape(-1, 1, 2),
        method=cv2.RANSAC,
        ransacReprojThreshold=tolerance,
        maxIters=500,
        confidence=0.99,
    )
    if matrix is None or mask is None:
        return none
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if not scales[0] <= scale <= scales[1]:
        return none
    degrees = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
    return Geometry(int(mask.sum()), scale, degrees)
