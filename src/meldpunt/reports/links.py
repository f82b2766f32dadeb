"""The pictures and videos a reported HTML page shows or links to, and what fetched bytes are.

``media_links(body, content_type, page_url, cap)`` parses a page with the standard library's
``html.parser`` and returns the absolute, normalised URLs of its media: ``img`` ``src`` and
``srcset`` (and the ``data-src`` of lazy loading), ``video`` ``src`` and ``poster``, ``source``
``src`` and ``srcset``, ``a href`` to a file with a media extension, ``og:image``/``og:video``
and ``twitter:image`` meta tags, ``link rel=image_src``; resolved against the page's URL (or
its ``<base href>``), in the order they appear, without duplicates or the page itself, at most
``cap``. Parsing is bounded: at most ``MAX_PAGE_CHARS`` characters of the page are read, in one
piece, and it stops once ``cap`` links are found. The parser is never ``close()``d: what is left
unfinished at the end of a page (a tag without its ``>``) is dropped, as HTML5 says, and
``html.parser`` would take time quadratic in its length to hand it over piece by piece (a
2 MB page of ``</`` took minutes). A charset that names no text encoding (``zlib``, ``idna``)
is read as UTF-8.

``sniff(body, content_type)`` says what the bytes are (``Media``): magic numbers first (a
server may call a JPEG ``text/html``), then the content type, then whether the text looks like
HTML.
"""

from __future__ import annotations

import codecs
import contextlib
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from meldpunt.reports.errors import InvalidInput
from meldpunt.reports.items import normalise_url
from meldpunt.reports.vocabulary import Media

__all__ = ["IMAGE_EXTENSIONS", "MAX_PAGE_CHARS", "VIDEO_EXTENSIONS", "media_links", "sniff"]

#: Characters of a page that are parsed at most (the fetcher's byte limit applies first).
MAX_PAGE_CHARS = 2 * 1024 * 1024

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff",
     ".heic", ".heif", ".avif", ".jxl"}
)  # fmt: skip
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".webm", ".mov", ".avi", ".mkv", ".wmv", ".flv", ".mpg", ".mpeg", ".3gp",
     ".ts", ".ogv"}
)  # fmt: skip
_IMAGE_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif")
_VIDEO_MAGIC = (b"\x1a\x45\xdf\xa3", b"FLV\x01", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")
_META_MEDIA = frozenset(
    {
        "og:image",
        "og:image:url",
        "og:image:secure_url",
        "og:video",
        "og:video:url",
        "og:video:secure_url",
        "twitter:image",
        "twitter:image:src",
        "twitter:player:stream",
    }
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def _mime(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _charset(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            wanted = value.strip().strip("\"'")
            try:
                found = codecs.lookup(wanted)
            except LookupError:
                break
            # zlib, base64, rot13 ... are codecs too, of bytes to bytes: no text encodings
            return found.name if getattr(found, "_is_text_encoding", True) else "utf-8"
    return "utf-8"


def _magic(body: bytes) -> Media | None:
    head = body[:32]
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")):
        return Media.image
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return Media.image
    if head[:4] == b"RIFF":
        return {b"WEBP": Media.image, b"AVI ": Media.video}.get(head[8:12])
    if head[4:8] == b"ftyp":  # ISO media: HEIF/AVIF pictures or MP4/MOV/3GP videos
        brand = head[8:12]
        return Media.image if brand in _IMAGE_BRANDS else Media.video
    if head.startswith(_VIDEO_MAGIC):
        return Media.video
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):  # ASF (WMV)
        return Media.video
    return None


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")) or (
        b"<html" in head and head.startswith(b"<")
    )


def sniff(body: bytes, content_type: str | None) -> Media:
    """What ``body`` is: image, video, page, or other (which may still decode as a picture)."""
    found = _magic(body)
    if found is not None:
        return found
    mime = _mime(content_type)
    media_type = mime.startswith(("image/", "video/"))
    if mime in _HTML_TYPES or (not media_type and _looks_like_html(body)):
        return Media.page
    if mime.startswith("image/"):
        return Media.image
    if mime.startswith("video/"):
        return Media.video
    return Media.other


def _extension(url: str) -> str:
    path = urlsplit(url).path.lower()
    name = path.rsplit("/", 1)[-1]
    return name[name.rfind(".") :] if "." in name else ""


class _Full(Exception):
    """The collector has ``cap`` links: parsing stops."""


class _Collector(HTMLParser):
    def __init__(self, page_url: str, cap: int) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.page = page_url
        self.cap = cap
        self.found: dict[str, None] = {}
        self._based = False

    @property
    def full(self) -> bool:
        return len(self.found) >= self.cap

    def _add(self, value: str | None) -> None:
        if self.full:
            raise _Full
        if not value:
            return
        raw = value.strip()
        if not raw or raw.startswith(("data:", "javascript:", "blob:", "#")):
            return
        try:
            url = normalise_url(urljoin(self.base, raw))
        except (InvalidInput, ValueError):
            return  # not an http(s) URL, or not one the hotline can keep
        if url != self.page:
            self.found.setdefault(url, None)

    def _add_srcset(self, value: str | None) -> None:
        for candidate in (value or "").split(","):
            words = candidate.split()
            if words:
                self._add(words[0])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value for name, value in attrs if value is not None}
        if tag == "base" and not self._based and a.get("href"):
            self._based = True
            with contextlib.suppress(ValueError):
                self.base = urljoin(self.page, a["href"].strip())
        elif tag == "img":
            self._add(a.get("src"))
            self._add_srcset(a.get("srcset"))
            self._add(a.get("data-src"))
        elif tag == "video":
            self._add(a.get("src"))
            self._add(a.get("poster"))
        elif tag == "source":
            self._add(a.get("src"))
            self._add_srcset(a.get("srcset"))
        elif tag == "a":
            href = a.get("href")
            try:
                linked = _extension(urljoin(self.base, href.strip())) if href else ""
            except ValueError:  # 'http://[' : this link is no URL, the next one may be
                return
            if linked in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
                self._add(href)
        elif tag == "meta":
            key = (a.get("property") or a.get("name") or "").strip().lower()
            if key in _META_MEDIA:
                self._add(a.get("content"))
        elif tag == "link" and "image_src" in (a.get("rel") or "").lower().split():
            self._add(a.get("href"))

    handle_startendtag = handle_starttag


def media_links(body: bytes, content_type: str | None, page_url: str, cap: int) -> list[str]:
    """The page's picture and video URLs (see the module's docstring), at most ``cap``."""
    if cap <= 0:
        return []
    charset = _charset(content_type)
    head = body[: MAX_PAGE_CHARS * 4]  # no encoding takes more than four bytes a character
    try:
        text = head.decode(charset, errors="replace")[:MAX_PAGE_CHARS]
    except UnicodeError:  # codecs that refuse errors="replace" (idna, punycode)
        text = head.decode("utf-8", errors="replace")[:MAX_PAGE_CHARS]
    collector = _Collector(page_url, cap)
    # In one piece (a tag cut in two is parsed again from its start); stopped by enough links
    # or by html.parser's own complaints about hostile markup.
    with contextlib.suppress(_Full, AssertionError, ValueError):
        collector.feed(text)
    return list(collector.found)[:cap]
