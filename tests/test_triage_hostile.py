"""Hostile collections: zip bombs, archives nested too deep, members too large or too many,
path tricks, links, FIFOs and odd names. Each is named, memory stays bounded, the run goes on."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tracemalloc
import zipfile

import pytest
from sqlalchemy.orm import sessionmaker

from meldpunt.config import get_settings, reset_settings
from meldpunt.triage import LocalHasher, hash_source_file, plan_from, rule_from, run_case
from meldpunt.triage.cases import get_case, iter_files
from triage_support import jpeg, pattern, png, sized, tarred, zipped

MIB = 1024 * 1024


@pytest.fixture
def tight(settings, monkeypatch):
    """Settings with small archive limits, so that the bombs stay quick."""
    monkeypatch.setenv("MELDPUNT_TRIAGE_MAX_MEMBER_BYTES", str(1 * MIB))
    monkeypatch.setenv("MELDPUNT_TRIAGE_MAX_EXPANDED_BYTES", str(24 * MIB))
    monkeypatch.setenv("MELDPUNT_TRIAGE_MAX_ARCHIVE_MEMBERS", "40")
    monkeypatch.setenv("MELDPUNT_TRIAGE_MAX_ARCHIVE_DEPTH", "3")
    reset_settings()
    return get_settings()


def _bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("zeros.bin", "w", force_zip64=True) as member:
            chunk = bytes(MIB)
            for _ in range(64):
                member.write(chunk)
        archive.writestr("after.jpg", jpeg(sized("astronaut")))
    return out.getvalue()


def _nested(levels: int, inner: bytes) -> bytes:
    data = zipped({"deepest.png": inner})
    for level in range(levels - 1, 0, -1):
        data = zipped({f"level{level + 1}.zip": data})
    return data


def _odd_tar() -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in (
            ("/etc/passwd", b"root:x:0:0\n"),
            ("a\x1bb.jpg", png(pattern(3))),
            ("dup.png", png(pattern(4))),
            ("dup.png", png(pattern(5))),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link-to-root")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        archive.addfile(link)
        device = tarfile.TarInfo("dev-null")
        device.type = tarfile.CHRTYPE
        archive.addfile(device)
    return out.getvalue()


def test_hostile_archives_are_named_and_the_run_goes_on(tight, engine, session, tmp_path):
    root = tmp_path / "seized"
    root.mkdir()
    big = os.urandom(3 * MIB)
    (root / "bomb.zip").write_bytes(_bomb())
    (root / "deep.zip").write_bytes(_nested(6, png(pattern(9))))
    (root / "big.tar").write_bytes(tarred({"big.bin": big, "small.png": png(pattern(8))}, "w"))
    (root / "many.zip").write_bytes(zipped({f"f{i}.txt": b"x%d" % i for i in range(60)}))
    (root / "odd.tar").write_bytes(_odd_tar())
    (root / "text.gz").write_bytes(__import__("gzip").compress(b"just text\n"))
    (root / "line\nbreak.png").write_bytes(png(pattern(10)))
    os.symlink("/etc/passwd", root / "outside-link")
    os.symlink(root, root / "loop")
    os.mkfifo(root / "pipe")
    report = run_case("hostile", [root], plan=plan_from(tight), rule=rule_from(tight),
                      hasher=LocalHasher(1), bind=sessionmaker(engine))  # fmt: skip
    assert report.state == "done"
    rows = {r.path: r for r in iter_files(session, get_case(session, "hostile").id)}
    got = {path: (r.file_class, r.error_code) for path, r in rows.items()}
    assert got["seized/bomb.zip"] == ("error", "archive_budget")
    # the bomb ended that archive (its members unread), not the run
    assert not any(path.startswith("seized/bomb.zip/") for path in got)
    # nested too deep: named at the level that is not opened; what lies above is read
    assert got["seized/deep.zip/level2.zip/level3.zip"] == ("ignorable", None)
    assert got["seized/deep.zip/level2.zip/level3.zip/level4.zip"] == ("error", "archive_too_deep")
    assert not any(path.endswith("deepest.png") for path in got)
    # a member over the memory limit is digested without being kept
    assert got["seized/big.tar/big.bin"] == ("error", "file_too_large")
    assert rows["seized/big.tar/big.bin"].sha256 == hashlib.sha256(big).hexdigest()
    assert got["seized/big.tar/small.png"] == ("new", None)
    assert got["seized/many.zip"] == ("error", "archive_budget")
    assert sum(path.startswith("seized/many.zip/") for path in got) == 40
    # path tricks and odd names label the member safely; links and devices are not read
    assert got["seized/odd.tar/etc/passwd"] == ("ignorable", None)
    assert got["seized/odd.tar/a\\x1bb.jpg"] == ("new", None)
    assert got["seized/odd.tar/dup.png"] == got["seized/odd.tar/dup.png~2"] == ("new", None)
    assert rows["seized/odd.tar/dup.png"].sha256 != rows["seized/odd.tar/dup.png~2"].sha256
    assert (
        got["seized/odd.tar/link-to-root"] == got["seized/odd.tar/dev-null"] == ("ignorable", None)
    )
    assert got["seized/text.gz"] == ("error", "corrupt_archive")
    assert got["seized/line\\x0abreak.png"] == ("new", None)
    for name in ("outside-link", "loop", "pipe"):
        assert got[f"seized/{name}"] == ("ignorable", None)
        assert rows[f"seized/{name}"].sha256 is None  # listed, never opened
    assert not any("\n" in path or "\x1b" in path for path in got)


def test_a_zip_bomb_is_read_in_bounded_memory(tight, tmp_path):
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_bomb())
    tracemalloc.start()
    try:
        results = hash_source_file("bomb.zip", str(bomb), plan_from(tight))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert results[0].error_code == "archive_budget"
    assert peak < 8 * MIB  # 64 MiB inside; read a piece at a time, kept up to 1 MiB
