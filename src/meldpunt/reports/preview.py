"""A blurred preview of an item's picture, for an analyst who asks for one.

The picture is fetched again through the safe fetcher (the hotline keeps no bytes), decoded
under the image limits, made small (at most ``PREVIEW_SIDE`` pixels a side) and strongly
blurred (a Gaussian blur of a twentieth of its side), and handed back as JPEG bytes. Nothing is
stored: no file, no database row; the caller sends the bytes with ``Cache-Control: no-store``.
Pages and videos have no preview.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from PIL import Image, ImageFilter, ImageOps

from meldpunt.config import Settings
from meldpunt.reports import items
from meldpunt.reports.context import HotlineContext
from meldpunt.reports.errors import Conflict, ReportsError
from meldpunt.reports.fetcher import FetchError, FetchPolicy, FetchRefused, fetch
from meldpunt.reports.links import sniff
from meldpunt.reports.vocabulary import Media
from meldpunt.signals import ImageLimits, SignalError, decode_cost, probe_image
from meldpunt.signals.image import open_image

__all__ = ["PREVIEW_SIDE", "PreviewUnavailable", "blurred", "blurred_preview", "preview_item"]

PREVIEW_SIDE = 320
#: Holds ``cost`` bytes of a decoding budget while the block runs (None: no budget).
Reserve = Callable[[int], AbstractContextManager[object]] | None


@contextmanager
def _unlimited(cost: int) -> Iterator[None]:
    yield


class PreviewUnavailable(ReportsError):
    """The picture could not be fetched or decoded again for a preview."""

    status, code = 502, "preview_unavailable"


def _limits(settings: Settings) -> ImageLimits:
    return ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels,
                       max_decode_bytes=settings.decode_budget_bytes)  # fmt: skip


def blurred(
    data: bytes, limits: ImageLimits, *, exif_transpose: bool = True, reserve: Reserve = None
) -> bytes:
    """``data`` (a picture) small and blurred, as JPEG bytes; raises ``SignalError`` when it is
    no picture or breaks the limits. ``reserve(cost)`` holds the decoding's memory while it
    runs (the service's decode budget, which uploads share: a preview of a 100-megapixel PNG
    needs 750 MB, and analysts asking for several at once must wait, not add up)."""
    info = probe_image(data, limits)
    cost = decode_cost(info)
    if limits.max_decode_bytes is not None and cost > limits.max_decode_bytes:
        raise PreviewUnavailable(f"the picture ({info.width}x{info.height}) is too large to decode")
    with (reserve or _unlimited)(cost):
        return _blur(data, limits, exif_transpose)


def _blur(data: bytes, limits: ImageLimits, exif_transpose: bool) -> bytes:
    with open_image(data, limits) as image:
        image.draft("RGB", (PREVIEW_SIDE * 2, PREVIEW_SIDE * 2))  # JPEG: decoded small
        picture: Image.Image = ImageOps.exif_transpose(image) if exif_transpose else image
        picture = picture.convert("RGB")
        picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    radius = max(4.0, max(picture.size) / 20)
    out = io.BytesIO()
    picture.filter(ImageFilter.GaussianBlur(radius)).save(out, format="JPEG", quality=70)
    return out.getvalue()


def blurred_preview(
    url: str, policy: FetchPolicy, settings: Settings, reserve: Reserve = None
) -> bytes:
    """Fetch ``url`` again and return its picture blurred (see the module's docstring)."""
    try:
        result = fetch(url, policy)
    except FetchRefused as exc:
        raise PreviewUnavailable(f"refused: {exc}") from None
    except FetchError as exc:
        raise PreviewUnavailable(f"the picture could not be fetched: {exc}") from None
    if not 200 <= result.status < 300:
        raise PreviewUnavailable(f"HTTP {result.status} from {result.final_url}")
    if result.truncated:
        raise PreviewUnavailable("the file is larger than the fetcher reads")
    media = sniff(result.body, result.content_type)
    if media in (Media.page, Media.video):
        raise Conflict(f"the URL now serves a {media}: there is no picture to preview")
    try:
        return blurred(result.body, _limits(settings), exif_transpose=settings.exif_transpose,
                       reserve=reserve)  # fmt: skip
    except SignalError as exc:
        raise PreviewUnavailable(f"not a picture that can be shown: {exc}") from None


def preview_item(context: HotlineContext, item_id: int, reserve: Reserve = None) -> bytes:
    """The blurred preview of an item's picture (the database is read, then let go, before the
    fetch); ``reserve`` as for ``blurred``."""
    with context.sessions() as session:
        item = items.get_item(session, item_id)
        url, media = item.url, item.media
    if media in (Media.page, Media.video):
        raise Conflict(f"item {item_id} is a {media}: only pictures have a preview")
    return blurred_preview(url, context.fetch_policy, context.settings, reserve)
