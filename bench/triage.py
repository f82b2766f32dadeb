"""Triage benchmark: meldpunt triage against a peer built from today's open tools, same run,
same files, then hashing on a local Ray cluster with one and then two worker processes.

The collection is generated (benign photos from scikit-image, cropped, resized, with grain):
pictures at phone sizes, about 5% known (copies and edits of pictures the registry lists),
a few percent in groups of near-copies (recompressed and resized), 1% videos (some known by
their frames, one re-encoded), 2% files that are no media, and a tenth of the files inside
zip archives (one nested in a tar.gz). The registry holds ``--registry`` PDQ hashes, the known
ones among random ones.

Peer: ``threatexchange``'s PDQ hasher (``pdq_from_bytes``) and its ``PDQIndex`` (FAISS), MD5
from hashlib against the registry's digests, archives opened with ``zipfile``/``tarfile``, as a
team would build this today; it has no video hash (vPDQ does not build here), so videos are
matched by MD5 only. Both are timed on one core (meldpunt with one hashing process).

    .venv/bin/python bench/triage.py                                   # the full size
    .venv/bin/python bench/triage.py --files 1000 --registry 50000 --size 1632x1224
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import sys  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import PHOTOS, _photo  # noqa: E402

RADIUS = 31


class _Renderer:
    """Distinct phone-like pictures, quickly: a random crop of a photo, resized, with sensor
    grain taken from a few precomputed noise fields at random offsets (the corpus's own
    renderer draws fresh noise for every picture, which is slow at phone sizes)."""

    def __init__(self, size: tuple[int, int], rng: random.Random) -> None:
        self.size = size
        noise = np.random.default_rng(rng.randint(0, 2**31))
        self.fields = [np.clip(noise.normal(0, 4, (size[1], size[0])), -12, 12).astype(np.int16)
                       for _ in range(4)]  # fmt: skip

    def __call__(self, photo: np.ndarray, rng: random.Random) -> Image.Image:
        height, width = photo.shape[:2]
        crop_w, crop_h = int(width * rng.uniform(0.5, 1.0)), int(height * rng.uniform(0.5, 1.0))
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        image = Image.fromarray(photo[top : top + crop_h, left : left + crop_w])
        image = image.resize(self.size, Image.Resampling.BILINEAR)
        grain = np.roll(self.fields[rng.randrange(4)], rng.randrange(self.size[0]), axis=1)
        pixels = np.asarray(image, dtype=np.int16) + grain[:, :, None]
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _render(photo: np.ndarray, size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A small picture (video frames) by the same method."""
    return _Renderer(size, rng)(photo, rng)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _video(frames: list[np.ndarray]) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=2)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def generate(folder: Path, files: int, size: tuple[int, int], seed: int = 11) -> dict:
    """The collection under ``folder`` and the truth: which labels are known, which pictures
    and videos the registry lists. Cached: an existing ``truth.json`` is reused."""
    truth_path = folder / "truth.json"
    if truth_path.exists():
        return json.loads(truth_path.read_text())
    rng = random.Random(seed)
    photos = {name: _photo(name) for name in PHOTOS}
    root = folder / "seized"
    (root / "dcim").mkdir(parents=True, exist_ok=True)
    truth: dict = {"known": [], "listed_jpegs": [], "listed_video_md5": [], "listed_frames": []}
    archived: dict[str, bytes] = {}
    n_videos = max(3, files // 100)
    n_other = max(1, files // 50)
    n_pictures = files - n_videos - n_other
    listed: list[bytes] = []
    made = 0
    render = _Renderer(size, rng)
    while made < n_pictures:
        picture = render(photos[PHOTOS[made % len(PHOTOS)]], rng)
        roll = rng.random()
        names = [f"IMG_{made:06d}.jpg"]
        data = [_jpeg(picture, rng.randint(80, 95))]
        if roll < 0.05:  # known: the registry lists this picture; the collection has it or an edit
            listed.append(data[0])
            if rng.random() < 0.5:
                small = picture.resize((size[0] // 2, size[1] // 2))
                data[0] = _jpeg(small, 70)
            truth["known"].append(names[0])
        elif roll < 0.09:  # a near-copy group of 2-4 pictures
            for copy in range(rng.randint(1, 3)):
                names.append(f"IMG_{made:06d}_{copy}.jpg")
                edited = picture.resize((size[0] * 3 // 4, size[1] * 3 // 4))
                data.append(_jpeg(edited, rng.randint(50, 75)))
        for name, content in zip(names, data, strict=True):
            if made >= n_pictures:
                break
            if rng.random() < 0.1:
                archived[name] = content
            else:
                (root / "dcim" / name).write_bytes(content)
            made += 1
    truth["listed_jpegs"] = [hashlib.sha256(d).hexdigest() for d in listed]
    (folder / "listed").mkdir(exist_ok=True)
    for i, data in enumerate(listed):
        (folder / "listed" / f"{i}.jpg").write_bytes(data)
    (root / "video").mkdir(exist_ok=True)
    for v in range(n_videos):
        # every video its own scenes: random crops of the photos
        scenes = [np.asarray(_render(photos[PHOTOS[(v + k) % len(PHOTOS)]], (320, 240), rng))
                  for k in range(3)]  # fmt: skip
        data = _video([scenes[k // 2] for k in range(6)])
        name = f"VID_{v:04d}.mp4"
        if v % 10 == 0:  # known: listed by its frames and its MD5
            truth["listed_video_md5"].append(hashlib.md5(data).hexdigest())
            truth["listed_frames"].append(name)
            truth["known"].append(name)
        (root / "video" / name).write_bytes(data)
    (root / "documents").mkdir(exist_ok=True)
    for o in range(n_other):
        (root / "documents" / f"note_{o:04d}.txt").write_bytes(secrets.token_bytes(2000))
    names = sorted(archived)
    half = len(names) // 2
    with zipfile.ZipFile(root / "backup.zip", "w") as archive:
        for name in names[:half]:
            archive.writestr(name, archived[name])
        inner = io.BytesIO()
        with tarfile.open(fileobj=inner, mode="w:gz") as tar:
            for name in names[half:]:
                info = tarfile.TarInfo(name)
                info.size = len(archived[name])
                tar.addfile(info, io.BytesIO(archived[name]))
        archive.writestr("older.tar.gz", inner.getvalue())
    truth["archived"] = {name: ("backup.zip" if i < half else "backup.zip/older.tar.gz")
                         for i, name in enumerate(names)}  # fmt: skip
    truth_path.write_text(json.dumps(truth))
    return truth


def _label(name: str, truth: dict) -> str:
    if name in truth["archived"]:
        return f"seized/{truth['archived'][name]}/{name}"
    folder = "video" if name.startswith("VID") else "dcim"
    return f"seized/{folder}/{name}"


def build_registry(db_url: str, folder: Path, truth: dict, size: int) -> None:
    """The registry: the listed pictures' PDQ, the known videos' frames and MD5, and random PDQ
    hashes up to ``size``; loaded through the registry's own import."""
    from meldpunt import registry
    from meldpunt.signals import HashOptions, hash_file, video_signal
    from meldpunt.store import init_db, make_engine, session_scope

    init_db(db_url)
    engine = make_engine(db_url)
    lines = []
    for path in sorted((folder / "listed").iterdir()):
        signal = hash_file(path, HashOptions())
        assert signal.pdq is not None
        lines.append(json.dumps({"signals": [{"type": "pdq", "value": signal.pdq.hash}],
                                 "category": "csam_baseline"}))  # fmt: skip
    for name, md5 in zip(truth["listed_frames"], truth["listed_video_md5"], strict=True):
        frames = video_signal(folder / "seized" / "video" / name).frames
        values = [{"type": "md5", "value": md5}] + [{"type": "pdq", "value": f.hash}
                                                     for f in frames]  # fmt: skip
        lines.append(json.dumps({"signals": values, "category": "csam_baseline"}))
    rng = np.random.default_rng(5)
    while len(lines) < size:
        lines.append(json.dumps({"signals": [{"type": "pdq",
                                              "value": rng.bytes(32).hex()}]}))  # fmt: skip
    data = ("\n".join(lines) + "\n").encode()
    with session_scope(engine) as session:
        registry.create_set(session, "national", default_category="csam_baseline")
    with session_scope(engine) as session:
        registry.import_stream(session, "national", io.BytesIO(data), format="jsonl",
                               batch_size=20_000)  # fmt: skip
    (folder / "registry.jsonl").write_bytes(data)
    engine.dispose()


def run_meldpunt(db_url: str, folder: Path, case: str, hasher
                 ) -> tuple[float, float, dict[str, str]]:  # fmt: skip
    from sqlalchemy.orm import sessionmaker

    from meldpunt.config import load_settings
    from meldpunt.registry.matching import Matcher
    from meldpunt.store import make_engine
    from meldpunt.triage import plan_from, rule_from, run_case
    from meldpunt.triage.cases import get_case, iter_files

    settings = load_settings(database_url=db_url)
    engine = make_engine(db_url)
    bind = sessionmaker(engine)
    with bind() as session:
        matcher = Matcher.build(session)  # the registry in memory, as a service holds it
    start, cpu = time.perf_counter(), _cpu()
    run_case(case, [folder / "seized"], plan=plan_from(settings), rule=rule_from(settings),
             hasher=hasher, bind=bind, matcher=matcher, batch_files=32)  # fmt: skip
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    with bind() as session:
        classes = {r.path: r.file_class for r in iter_files(session, get_case(session, case).id)}
    engine.dispose()
    return seconds, cpu, classes


def _cpu() -> float:
    """CPU seconds of this process and its finished children: a side's cost on its core,
    whatever else the machine runs meanwhile."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def run_peer(folder: Path) -> tuple[float, float, dict[str, str]]:
    """The peer: walk, open archives in memory, MD5 + threatexchange PDQ, PDQIndex at 31."""
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    pdq_values, md5_values = [], set()
    for line in (folder / "registry.jsonl").read_text().splitlines():
        for signal in json.loads(line)["signals"]:
            if signal["type"] == "pdq":
                pdq_values.append(signal["value"])
            else:
                md5_values.add(signal["value"])
    index = PDQIndex(zip(pdq_values, range(len(pdq_values)), strict=True))
    classes: dict[str, str] = {}

    def one(label: str, data: bytes) -> None:
        known = hashlib.md5(data).hexdigest() in md5_values
        hashlib.sha256(data).hexdigest()
        if not known and not label.endswith((".mp4", ".txt")):
            try:
                value, quality = pdq_from_bytes(data)
            except Exception:
                classes[label] = "ignorable"
                return
            known = quality >= 50 and bool(index.query(value))
        classes[label] = "known" if known else "new"

    def archive(label: str, data: bytes) -> None:
        if data[:2] == b"PK":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                for info in z.infolist():
                    member = z.read(info)
                    route = archive if info.filename.endswith((".zip", ".gz")) else one
                    route(f"{label}/{info.filename}", member)
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as t:
                for info in t:
                    extracted = t.extractfile(info)
                    if extracted is not None:
                        one(f"{label}/{info.name}", extracted.read())

    start, cpu = time.perf_counter(), _cpu()
    for path in sorted((folder / "seized").rglob("*")):
        if path.is_file():
            label = "seized/" + path.relative_to(folder / "seized").as_posix()
            data = path.read_bytes()
            (archive if path.suffix in (".zip", ".gz") else one)(label, data)
    return time.perf_counter() - start, _cpu() - cpu, classes


def _score(classes: dict[str, str], truth: dict) -> dict[str, int]:
    known = {_label(name, truth) for name in truth["known"]}
    found = {path for path, c in classes.items() if c == "known"}
    return {"known_in_truth": len(known), "missed": len(known - found),
            "false_known": len(found - known)}  # fmt: skip


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["peer (threatexchange)", "meldpunt"]
    rates = [results["peer"]["files_per_cpu_second"], results["meldpunt"]["files_per_cpu_second"]]
    left.bar(names, rates, color=["#6e7781", "#0969da"])
    left.set_ylabel("files per CPU second, one core")
    left.set_title(f"triage, {results['files']:,} files ({results['size']})")
    ray = results.get("ray", {})
    if ray:
        workers = sorted(ray, key=int)
        right.bar([f"{w} worker(s)" for w in workers],
                  [ray[w]["files_per_second"] for w in workers], color="#1a7f37")  # fmt: skip
        right.set_title("meldpunt on a local Ray cluster")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--registry", type=int, default=1_000_000)
    parser.add_argument("--size", default="4000x3000", help="picture size, WxH")
    parser.add_argument("--workdir", type=Path, default=HERE / ".triage")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray scaling runs")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    folder = args.workdir / f"{args.files}-{args.size}"
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    truth = generate(folder, args.files, (width, height))
    print(f"collection: {args.files:,} files in {time.perf_counter() - began:.0f} s", flush=True)
    db = folder / f"registry-{args.registry}.db"
    db_url = f"sqlite:///{db}"
    if not db.exists():
        began = time.perf_counter()
        build_registry(db_url, folder, truth, args.registry)
        print(f"registry: {args.registry:,} hashes in {time.perf_counter() - began:.0f} s")
    from meldpunt.triage import LocalHasher, RayHasher

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for both
    stamp = str(int(time.time()))
    seconds, cpu, classes = run_meldpunt(db_url, folder, f"bench-{stamp}", LocalHasher(1))
    records = len(classes)
    print(f"meldpunt: {records:,} files in {seconds:.1f} s ({cpu:.1f} s of CPU)", flush=True)
    peer_seconds, peer_cpu, peer_classes = run_peer(folder)
    print(f"peer: {len(peer_classes):,} files in {peer_seconds:.1f} s ({peer_cpu:.1f} s of CPU)",
          flush=True)  # fmt: skip
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    results: dict = {
        "files": records, "registry": args.registry, "size": args.size,
        "machine": f"{os.cpu_count()} cores",
        "meldpunt": {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                     "files_per_second": round(records / seconds, 1),
                     "files_per_cpu_second": round(records / cpu, 1), **_score(classes, truth)},
        "peer": {"seconds": round(peer_seconds, 2), "cpu_seconds": round(peer_cpu, 2),
                 "files_per_second": round(len(peer_classes) / peer_seconds, 1),
                 "files_per_cpu_second": round(len(peer_classes) / peer_cpu, 1),
                 **_score(peer_classes, truth)},
    }  # fmt: skip
    # per core: files per CPU second (both sides are pinned to one core; CPU time leaves out
    # what other work on the machine took of it); wall-clock ratio beside it
    ours, peer = results["meldpunt"], results["peer"]
    results["ratio"] = round(ours["files_per_cpu_second"] / peer["files_per_cpu_second"], 2)
    results["wall_ratio"] = round(ours["files_per_second"] / peer["files_per_second"], 2)
    print(
        f"meldpunt / peer, files per CPU second on one core: {results['ratio']}x (wall clock "
        f"{results['wall_ratio']}x); known missed: meldpunt {ours['missed']}, peer "
        f"{peer['missed']} of {ours['known_in_truth']}"
    )
    if not args.no_ray:
        results["ray"] = {}
        for workers in (1, 2):
            hasher = RayHasher("local", workers=workers)
            ray_seconds, _, ray_classes = run_meldpunt(db_url, folder, f"ray{workers}-{stamp}",
                                                       hasher)  # fmt: skip
            assert ray_classes == classes, "Ray gave another result"
            rate = round(records / ray_seconds, 1)
            results["ray"][str(workers)] = {"seconds": round(ray_seconds, 2),
                                            "files_per_second": rate}  # fmt: skip
            print(f"ray, {workers} worker(s): {records / ray_seconds:.1f} files/s", flush=True)
        per_core = results["meldpunt"]["files_per_cpu_second"]
        results["cluster_cores_for_1m_files_per_hour"] = round(1_000_000 / 3600 / per_core, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "triage.json").write_text(json.dumps(results, indent=2) + "\n")
    chart(results, args.out / "triage.png")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
