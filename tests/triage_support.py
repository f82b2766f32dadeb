"""A benign seized collection for the triage tests, built from scikit-image's photos, their
edits, generated pictures and small generated videos (PyAV), with archives inside archives,
broken and hostile files, and files named like pictures that are not; and a registry that
knows some of it. ``EXPECTED`` says what every file is."""

from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps
from sqlalchemy.orm import Session

from imaging import photo
from meldpunt import registry
from meldpunt.signals import HashOptions, hash_file, video_signal

SIDE = (320, 240)
SMALL = (160, 120)


def jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def png(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def pattern(seed: int, size: tuple[int, int] = (256, 256)) -> np.ndarray:
    """A generated picture: smooth random blobs, different for every seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC))


def video(frames: list[np.ndarray], fmt: str = "mp4", codec: str = "libx264",
          rate: int = 4) -> bytes:  # fmt: skip
    """A small video of ``frames`` (each shown 1/rate s)."""
    out = io.BytesIO()
    height, width = frames[0].shape[:2]
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def sized(name: str) -> np.ndarray:
    return np.asarray(Image.fromarray(photo(name)).resize(SIDE))


def zipped(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def tarred(members: dict[str, bytes], mode: str = "w:gz") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def sevenzipped(members: dict[str, bytes]) -> bytes:
    import py7zr

    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return out.getvalue()


@dataclass(frozen=True)
class Collection:
    root: Path  # the source folder, called "phone"
    known_video_frames: tuple[str, ...]  # the registry's video entry (its frames' PDQ)


# path -> class, for the collection ``build`` makes (the archive members included)
EXPECTED: dict[str, str] = {
    "phone/photos/astronaut.jpg": "known",  # its PDQ is listed
    "phone/photos/astronaut_small.png": "known",  # resized: PDQ within the threshold
    "phone/photos/astronaut_mirrored.jpg": "known",  # mirrored: an orientation hash
    "phone/photos/chelsea.png": "known",  # its SHA-256 is listed
    "phone/photos/coffee.jpg": "ignorable",  # on the allow-list
    "phone/photos/camera.png": "new",
    "phone/photos/camera_q40.jpg": "new",  # a recompressed copy: same group as camera.png
    "phone/photos/gravel.jpg": "new",
    "phone/photos/generated.png": "new",
    "phone/photos/empty.jpg": "ignorable",  # zero bytes: nothing to see
    "phone/docs/readme.txt": "ignorable",
    "phone/docs/holiday.jpg": "ignorable",  # named like a picture, it is text
    "phone/docs/truncated.jpg": "error",  # a JPEG cut short
    "phone/video/known.mp4": "known",  # its frames are a listed video's
    "phone/video/brick.mkv": "known",  # its frames are a listed picture
    "phone/video/new.webm": "new",
    "phone/video/broken.mp4": "error",  # a video cut short
    "phone/video/notes.avi": "ignorable",  # named like a video, it is text
    "phone/backup.zip": "ignorable",
    "phone/backup.zip/astronaut copy.jpg": "known",
    "phone/backup.zip/%2E%2E/%2E%2E/etc/gravel.jpg": "new",  # a path trick, labelled safely
    "phone/backup.zip/old.tar.gz": "ignorable",
    "phone/backup.zip/old.tar.gz/camera.png": "new",
    "phone/backup.zip/old.tar.gz/more.7z": "ignorable",
    "phone/backup.zip/old.tar.gz/more.7z/generated copy.png": "new",
    "phone/backup.zip/old.tar.gz/more.7z/clip.mp4": "known",
    "phone/damaged.zip": "error",  # a zip archive cut short
}


def build(root: Path) -> Collection:
    phone = root / "phone"
    for folder in ("photos", "docs", "video"):
        (phone / folder).mkdir(parents=True, exist_ok=True)
    astronaut = sized("astronaut")
    camera = sized("camera")
    files: dict[str, bytes] = {
        "photos/astronaut.jpg": jpeg(astronaut),
        "photos/astronaut_small.png": png(np.asarray(Image.fromarray(astronaut).resize(SMALL))),
        "photos/astronaut_mirrored.jpg": jpeg(np.asarray(ImageOps.mirror(Image.fromarray(
            astronaut)))),
        "photos/chelsea.png": png(sized("chelsea")),
        "photos/coffee.jpg": jpeg(sized("coffee")),
        "photos/camera.png": png(camera),
        "photos/camera_q40.jpg": jpeg(camera, quality=40),
        "photos/gravel.jpg": jpeg(sized("gravel")),
        "photos/generated.png": png(pattern(7)),
        "photos/empty.jpg": b"",
        "docs/readme.txt": b"shopping list\n",
        "docs/holiday.jpg": b"this is not a picture\n" * 20,
        "docs/truncated.jpg": jpeg(sized("rocket"))[:1500],
    }  # fmt: skip
    known_frames = [np.roll(sized("rocket"), 12 * i, axis=1) for i in range(12)]
    files["video/known.mp4"] = video(known_frames)
    files["video/brick.mkv"] = video([sized("brick")] * 8, fmt="matroska")
    files["video/new.webm"] = video([pattern(100 + i % 3, SIDE[::-1]) for i in range(8)],
                                    fmt="webm", codec="libvpx-vp9")  # fmt: skip
    files["video/broken.mp4"] = video(known_frames)[:700]
    files["video/notes.avi"] = b"not a video\n" * 10
    inner_7z = sevenzipped({
        "generated copy.png": files["photos/generated.png"],
        "clip.mp4": files["video/known.mp4"],
    })  # fmt: skip
    old = tarred({"camera.png": files["photos/camera.png"], "more.7z": inner_7z})
    files["backup.zip"] = zipped({
        "astronaut copy.jpg": files["photos/astronaut.jpg"],
        "../../etc/gravel.jpg": files["photos/gravel.jpg"],
        "old.tar.gz": old,
    })  # fmt: skip
    files["damaged.zip"] = files["backup.zip"][: len(files["backup.zip"]) // 2]
    for name, data in files.items():
        (phone / name).write_bytes(data)
    frames = tuple(dict.fromkeys(f.hash for f in video_signal(files["video/known.mp4"]).frames))
    return Collection(phone, frames)


def seed_registry(session: Session, collection: Collection) -> None:
    """A blocklist that knows the astronaut (PDQ), chelsea (SHA-256), the brick (PDQ, as a
    picture) and the rocket video (its frames' PDQ); an allow-list with the coffee (PDQ)."""
    photos = collection.root / "photos"

    def signals(name: str):
        return hash_file(photos / name, HashOptions())

    registry.create_set(session, "known", default_category="csam_baseline", actor="test")
    registry.create_set(session, "harmless", kind="allowlist", actor="test")
    astronaut = signals("astronaut.jpg").pdq
    assert astronaut is not None
    registry.add_item(session, "known", [("pdq", astronaut.hash)], actor="test")
    chelsea = signals("chelsea.png").digests
    assert chelsea is not None
    registry.add_item(session, "known", [("sha256", chelsea.sha256)], category="csam_national",
                      actor="test")  # fmt: skip
    brick = hash_file_bytes(png(sized("brick")))
    registry.add_item(session, "known", [("pdq", brick)], actor="test")
    registry.add_item(session, "known", [("pdq", h) for h in collection.known_video_frames],
                      category="A1", actor="test")  # fmt: skip
    coffee = signals("coffee.jpg").pdq
    assert coffee is not None
    registry.add_item(session, "harmless", [("pdq", coffee.hash)], actor="test")
    session.commit()


def hash_file_bytes(data: bytes) -> str:
    from meldpunt.signals import pdq_signal

    return pdq_signal(data).hash
