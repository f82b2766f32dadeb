"""Borders: finding the uniform or near-uniform margins that letterboxing, padding and frames add.

A copy with a border is a different picture to PDQ: the DCT sees the border's edge, and the
content is smaller in the 64 x 64 buffer. Trimming the border first gives back the content's
hash. ``find_border`` looks at a picture's luminance from each side inwards:

* the picture is first reduced (area averaging) to at most ``WORK_SIDE`` pixels a side, which
  averages away the noise of a grainy or JPEG-compressed border;
* a line (row or column) belongs to the border while it is flat or an even ramp along its
  length (its mean distance from the straight line that fits it best stays under ``noise``,
  which lets uniform, noisy and gradient borders through and stops at texture and at the
  curved shading of a picture's smooth parts) and close to the line before it everywhere along
  its length
  (``step``, ``step_max``), so a border may change colour slowly from the edge inwards but
  content may not, not even a small shape in a smooth part;
* a border must be at least ``min_share`` and at most ``max_share`` of that side, and must end in
  a clear step to the content along most of its length (``edge``, ``edge_share``), or it is not
  one: a smooth part of the picture that fades into the rest, or that ends at one shape, is
  left alone;
* padding is mostly even: a side whose border blends into the picture's edge (so that it has no
  clear end) is trimmed as deep as the opposite side's border when its lines look like border
  that deep.

Pure numpy; the result is the box of the content in the given array's coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

WORK_SIDE = 256


@dataclass(frozen=True)
class Box:
    """Rows ``top:bottom`` and columns ``left:right`` of a picture (exclusive ends)."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


@dataclass(frozen=True)
class BorderRules:
    noise: float = 6.0  # largest mean residue along a border line, luminance levels
    step: float = 4.0  # largest mean change from one border line to the next
    step_max: float = 16.0  # largest change anywhere along the line from one to the next
    edge: float = 6.0  # smallest mean change from the last border line to the content
    edge_share: float = 0.5  # the share of the line along which the content must start
    min_share: float = 0.01  # a border narrower than this share of the side is ignored
    max_share: float = 0.4  # a border wider than this is not trimmed (one side)
    min_content: float = 0.3  # the content keeps at least this share of each side


def _reduce(luma: NDArray[np.generic]) -> tuple[NDArray[np.float32], float, float]:
    rows, cols = luma.shape
    fy = max(1, -(-rows // WORK_SIDE))
    fx = max(1, -(-cols // WORK_SIDE))
    h, w = rows // fy, cols // fx
    if h < 8 or w < 8:
        return np.asarray(luma, dtype=np.float32), 1.0, 1.0
    import cv2  # its area reduction is the blocks' mean, several times numpy's speed

    pixels = np.asarray(luma[: h * fy, : w * fx], dtype=np.float32)
    small = np.asarray(cv2.resize(pixels, (w, h), interpolation=cv2.INTER_AREA), np.float32)
    return small, float(fy), float(fx)


def _smooth(lines: NDArray[np.float32], width: int = 7) -> NDArray[np.float32]:
    """Each row of ``lines`` averaged over a sliding window (edges repeated)."""
    pad = width // 2
    padded = np.pad(lines, ((0, 0), (pad, pad)), mode="edge")
    sums = np.cumsum(padded, axis=1, dtype=np.float64)
    sums = np.concatenate([np.zeros((len(lines), 1)), sums], axis=1)
    return ((sums[:, width:] - sums[:, :-width]) / width).astype(np.float32)


def _linear_fit(lines: NDArray[np.float32]) -> NDArray[np.float32]:
    """Each row of ``lines`` as the straight line that fits it best (least squares)."""
    x = np.linspace(-1.0, 1.0, lines.shape[1], dtype=np.float32)
    mean = lines.mean(axis=1, keepdims=True)
    slope = (lines * x).sum(axis=1, keepdims=True) / float((x * x).sum())
    fitted: NDArray[np.float32] = (mean + slope * x).astype(np.float32)
    return fitted


def _border_depth(lines: NDArray[np.float32], rules: BorderRules) -> tuple[int, int]:
    """How many of ``lines`` (outermost first) form a border (0 when they do not), and how many
    look like one, whether or not they end in a clear step."""
    count = len(lines)
    limit = int(count * rules.max_share) + 1
    head = lines[: limit + 1]
    most = min(limit, count - 1)  # the deepest a border's run can go
    # A line continues the border while it is flat or an even ramp and close to the line before
    # it. Each line's smoothing and residue depend on that line only, so they are computed a
    # few lines at a time as the run goes on (most sides stop at their first line or two).
    smooth = np.empty(head.shape, dtype=np.float32)
    done = depth = 0
    while depth == done and done < min(len(head), most):
        stop = min(len(head), max(2 * done, 8))
        part = head[done:stop]
        smooth[done:stop] = _smooth(part)
        fits = np.abs(part - _linear_fit(part)).mean(axis=1) <= rules.noise
        if done:  # each line against the one before it (the first line has none)
            before = smooth[done - 1 : stop - 1]
        else:
            before = np.concatenate([smooth[:1], smooth[: stop - 1]])
        change = np.abs(smooth[done:stop] - before)
        fits &= (change.mean(axis=1) <= rules.step) & (change.max(axis=1) <= rules.step_max)
        failing = np.flatnonzero(~fits)
        depth = done + (int(failing[0]) if len(failing) else len(part))
        done = stop
    depth = min(depth, most)
    if depth < max(1, int(np.ceil(count * rules.min_share))) or depth > limit - 1:
        return 0, depth
    # the content starts at the next line, or the one after when the next is half border (the
    # border's edge fell inside a line of the reduced picture)
    if depth + 2 > done:
        smooth[done : depth + 2] = _smooth(head[done : depth + 2])
    ends = [np.abs(smooth[k] - smooth[depth - 1]) for k in (depth, min(depth + 1, len(head) - 1))]
    if not any(
        e.mean() >= rules.edge and np.mean(e > rules.edge) >= rules.edge_share for e in ends
    ):
        return 0, depth  # no clear end all along: a smooth part of the picture, not a border
    return depth, depth


def _opposite(one: tuple[int, int], other: tuple[int, int]) -> tuple[int, int]:
    """Padding is mostly even: where one side has a border and the opposite side's lines look
    like border as deep (their end just blends into the picture's edge), both sides get it."""
    (depth_a, run_a), (depth_b, run_b) = one, other
    if depth_a and not depth_b and run_b >= 0.9 * depth_a:
        depth_b = depth_a
    elif depth_b and not depth_a and run_a >= 0.9 * depth_b:
        depth_a = depth_b
    return depth_a, depth_b


def _refine(lines: NDArray[np.float32], depth: int, factor: float, rules: BorderRules) -> int:
    """The first line of ``lines`` (full resolution, outermost first) that differs from the
    border clearly, searched around line ``depth * factor``; 0 for no border."""
    if not depth:
        return 0
    guess = int(round(depth * factor))
    inside = max(0, int(depth * factor - 2 * factor) - 1)  # a line surely in the border
    reference = _smooth(lines[inside : inside + 1])[0]
    first = max(inside + 1, guess - int(2 * factor))
    last = min(len(lines) - 1, guess + int(2 * factor) + 1)
    window = _smooth(lines[first : last + 1])
    for offset, line in enumerate(window):
        change = np.abs(line - reference)
        if change.mean() >= rules.edge and np.mean(change > rules.edge) >= rules.edge_share:
            return first + offset
    return int(np.ceil((depth + 0.5) * factor))  # no clear line: half a reduced line inwards


def _edges_are_content(luma: NDArray[np.generic], rules: BorderRules) -> bool:
    """True when none of the four outermost lines of the reduced picture could begin a border
    (each is further than ``noise`` from a straight line): most pictures, settled from their
    edges alone, without reducing the whole picture. The lines are reduced as ``_reduce``
    reduces them."""
    rows, cols = luma.shape
    fy = max(1, -(-rows // WORK_SIDE))
    fx = max(1, -(-cols // WORK_SIDE))
    h, w = rows // fy, cols // fx
    if h < 8 or w < 8:
        return False
    top = np.asarray(luma[:fy, : w * fx], dtype=np.float32)
    bottom = np.asarray(luma[(h - 1) * fy : h * fy, : w * fx], dtype=np.float32)
    left = np.asarray(luma[: h * fy, :fx], dtype=np.float32)
    right = np.asarray(luma[: h * fy, (w - 1) * fx : w * fx], dtype=np.float32)
    lines = [
        top.reshape(1, fy, w, fx).mean(axis=(1, 3), dtype=np.float32)[0],
        bottom.reshape(1, fy, w, fx).mean(axis=(1, 3), dtype=np.float32)[0],
        left.reshape(h, fy, 1, fx).mean(axis=(1, 3), dtype=np.float32)[:, 0],
        right.reshape(h, fy, 1, fx).mean(axis=(1, 3), dtype=np.float32)[:, 0],
    ]
    for line in lines:
        row = line[None, :]
        if np.abs(row - _linear_fit(row)).mean() <= rules.noise:
            return False
    return True


def find_border(luma: NDArray[np.generic], rules: BorderRules = BorderRules()) -> Box | None:
    """The content's box inside a border, or None when the picture has no border to trim."""
    rows, cols = luma.shape
    if _edges_are_content(luma, rules):
        return None
    small, fy, fx = _reduce(luma)
    h, w = small.shape
    if h < 8 or w < 8:
        return None
    top, bottom = _opposite(_border_depth(small, rules), _border_depth(small[::-1], rules))
    left, right = _opposite(_border_depth(small.T, rules), _border_depth(small.T[::-1], rules))
    if not (top or bottom or left or right):
        return None

    # back to the array's coordinates: the border's edge sought line by line near where the
    # reduced picture puts it
    array = np.asarray(luma, dtype=np.float32)
    box = Box(
        top=_refine(array, top, fy, rules),
        bottom=rows - _refine(array[::-1], bottom, fy, rules),
        left=_refine(array.T, left, fx, rules),
        right=cols - _refine(array.T[::-1], right, fx, rules),
    )
    if box.height < rules.min_content * rows or box.width < rules.min_content * cols:
        return None
    return box
