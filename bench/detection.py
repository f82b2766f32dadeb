"""Detection benchmark: do edited copies of known pictures match, and do unrelated ones never?

Corpus (benign, built here): known pictures (photos bundled with scikit-image and matplotlib,
Meta's PDQ test photos, and photo-like pictures generated from seeds), each copied with every
edit of ``meldpunt.sim.edits`` (recompression, resizing, colour, flips and quarter turns,
borders, crops, captions and logos, small rotations, combinations), and ``--distractors``
unrelated pictures (other photos, regions of them at many positions and scales, and generated
pictures of other seeds).

Two sets hold the known pictures: ``pixels`` (entries made from the pictures, as `meldpunt sets
add` makes them) and ``hashes`` (entries as bare PDQ hashes, as lists arrive). Each copy is
checked:

* peer ``pdq``: the reference PDQ (``pdqhash``) of the copy against the known pictures' at 31;
* peer ``pdq+dihedral``: the reference's 8 dihedral hashes of the copy, the best of them at 31;
* meldpunt ``hash``: the copy's reference PDQ sent alone to meldpunt's matcher (estimated
  orientations on), against ``hashes`` and against ``pixels``;
* meldpunt ``file``: the copy's bytes hashed by meldpunt as the check service does (orientation
  hashes, trimmed hash, local features) against ``hashes`` and ``pixels``.

A copy counts as found when a match names its own picture; any match of a distractor (or of a
copy to another picture) is a false positive. Also measured: hashing cost per picture, bytes
stored per entry, and the matcher's throughput at 1,000,000 entries with the new lookups on and
off.

    .venv/bin/python bench/detection.py                       # 10,000 distractors
    .venv/bin/python bench/detection.py --distractors 500     # quick
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from PIL import Image  # noqa: E402

from meldpunt.sim.edits import EDITS, GROUPS, apply_edit, encode, photo_like  # noqa: E402

VECTORS = HERE.parent.parent / "shared" / "data" / "pdq-vectors"
THRESHOLD = 31
KNOWN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "retina",
                "immunohistochemistry", "cell", "coins")  # fmt: skip
DISTRACTOR_PHOTOS = ("brick", "grass", "gravel", "moon", "hubble_deep_field", "page", "text",
                     "clock", "horse", "logo", "microaneurysms", "colorwheel",
                     "shepp_logan_phantom")  # fmt: skip
METHODS = ("pdq", "pdq+dihedral", "hash→hashes", "hash→pixels", "file→hashes", "file→pixels")
MAX_SIDE = 1024
MIN_QUALITY = 50


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.dtype != np.uint8:
        array = (255 * (array.astype(np.float64) / max(1.0, float(array.max())))).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(array[:, :, :3]))
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    return np.asarray(image.convert("RGB"))


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    return _rgb(getattr(skimage.data, name)())


def known_pictures(generated: int) -> list[tuple[str, np.ndarray]]:
    out = [(name, _skimage(name)) for name in KNOWN_PHOTOS]
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        out.append(("grace_hopper", _rgb(np.asarray(Image.open(handle).convert("RGB")))))
    folder = VECTORS / "reg-test-input"
    for path in sorted((folder / "labelme-subset").glob("*.jpg")) + [
        folder / "dih" / "bridge-1-original.jpg",
        folder / "pen-and-coaster.png",
    ]:
        if path.exists():
            out.append((path.stem, _rgb(np.asarray(Image.open(path).convert("RGB")))))
    sizes = ((640, 480), (480, 640), (1024, 768), (800, 800))
    out += [(f"generated-{i}", photo_like(i, sizes[i % 4])) for i in range(1, generated + 1)]
    # A picture that PDQ itself rates below quality 50 (nearly flat: two of the PDQ test
    # photos) has a hash of noise; meldpunt never matches such hashes, so none is known here.
    return [(name, rgb) for name, rgb in out if _reference(rgb)[1] >= MIN_QUALITY]


def distractor(number: int) -> np.ndarray:
    """Distractor ``number``: half generated pictures of other seeds, half regions of photos
    that are not known, at many positions and scales."""
    rng = np.random.default_rng([number, 7])
    if number % 2 == 0:
        return photo_like(
            1_000_000 + number, (int(rng.integers(200, 640)), int(rng.integers(200, 640)))
        )
    source = _distractor_source(DISTRACTOR_PHOTOS[(number // 2) % len(DISTRACTOR_PHOTOS)])
    height, width = source.shape[:2]
    h = int(rng.integers(max(48, height // 4), height + 1))
    w = int(rng.integers(max(48, width // 4), width + 1))
    y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
    region = Image.fromarray(source[y : y + h, x : x + w])
    scale = rng.uniform(0.5, 1.5)
    region = region.resize((max(32, int(w * scale)), max(32, int(h * scale))))
    return np.asarray(region)


_SOURCES: dict[str, np.ndarray] = {}


def _distractor_source(name: str) -> np.ndarray:
    if name not in _SOURCES:
        _SOURCES[name] = _skimage(name)
    return _SOURCES[name]


# -- the worker processes -----------------------------------------------------------------------

_W: dict[str, Any] = {}


def _reference(rgb: np.ndarray) -> tuple[str, int, list[str]]:
    import pdqhash

    def hexed(bits: np.ndarray) -> str:
        return f"{int(''.join('1' if b else '0' for b in bits), 2):064x}"

    bits, quality = pdqhash.compute(np.ascontiguousarray(rgb))
    turned, _ = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
    return hexed(bits), int(quality), [hexed(b) for b in turned]


def _init(db_url: str, data_dir: str, known_refs: list[str]) -> None:
    os.environ["MELDPUNT_DATABASE_URL"] = db_url
    os.environ["MELDPUNT_DATA_DIR"] = data_dir
    from meldpunt.registry.matching import Matcher
    from meldpunt.registry.sets import get_set
    from meldpunt.store import session_scope

    with session_scope() as session:
        _W["matcher"] = Matcher.build(session)
        _W["sets"] = {name: get_set(session, name).id for name in ("pixels", "hashes")}
    _W["refs"] = np.array([int(h, 16) for h in known_refs], dtype=object)
    _W["known_refs"] = known_refs


def _evaluate(task: tuple[str, int, str, bytes]) -> dict[str, Any]:
    """One copy (or distractor): which known pictures each method finds, and how long it took."""
    from meldpunt.registry.matching import Query, picture_query
    from meldpunt.signals import HashOptions
    from meldpunt.signals.hashing import QUERY

    kind, number, edit, data = task
    matcher = _W["matcher"]
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    ref, quality, turned = _reference(rgb)
    found: dict[str, list[int]] = {}
    refs = _W["known_refs"]
    value = int(ref, 16)
    found["pdq"] = [i for i, k in enumerate(refs) if (int(k, 16) ^ value).bit_count() <= THRESHOLD]
    turned_values = [int(t, 16) for t in turned]
    found["pdq+dihedral"] = [
        i for i, k in enumerate(refs)
        if min((int(k, 16) ^ t).bit_count() for t in turned_values) <= THRESHOLD
    ]  # fmt: skip
    ways: dict[str, list[str]] = {}
    started = time.perf_counter()
    hash_query = Query(pdq=ref, pdq_quality=quality)
    for target in ("hashes", "pixels"):
        answer = matcher.match(hash_query, sets=[_W["sets"][target]])
        found[f"hash→{target}"] = [m.entry for m in answer.matches]
        ways[f"hash→{target}"] = [str(m.way) for m in answer.matches]
    hash_seconds = (time.perf_counter() - started) / 2
    started = time.perf_counter()
    options = HashOptions(dihedral=True, features=QUERY)
    query, _problem = picture_query(data, options)
    hashed = time.perf_counter()
    for target in ("hashes", "pixels"):
        answer = matcher.match(query, sets=[_W["sets"][target]])
        found[f"file→{target}"] = [m.entry for m in answer.matches]
        ways[f"file→{target}"] = [str(m.way) for m in answer.matches]
    done = time.perf_counter()
    return {"kind": kind, "number": number, "edit": edit, "found": found, "ways": ways,
            "hash_s": hash_seconds, "file_hash_s": hashed - started,
            "file_match_s": (done - hashed) / 2}  # fmt: skip


# -- the run ---------------------------------------------------------------------------------------


def build_registry(workdir: Path, known: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    os.environ["MELDPUNT_DATA_DIR"] = str(workdir)
    os.environ["MELDPUNT_DATABASE_URL"] = f"sqlite:///{workdir / 'meldpunt.db'}"
    from meldpunt.config import get_settings

    get_settings.cache_clear()
    from meldpunt.registry.items import add_item
    from meldpunt.registry.pictures import add_pictures
    from meldpunt.registry.sets import create_set
    from meldpunt.signals import HashOptions, digest_bytes
    from meldpunt.store import init_db, session_scope

    init_db()
    refs, entries = [], {}
    pixel_bytes = []
    with session_scope() as session:
        create_set(session, "pixels", default_category="csam_baseline")
        create_set(session, "hashes", default_category="csam_baseline")
        for name, rgb in known:
            data = encode(rgb, 92)
            ref, quality, _ = _reference(rgb)
            refs.append(ref)
            (outcome,) = add_pictures(session, "pixels", [(name, data)], HashOptions(min_quality=0))
            digests = digest_bytes(data)
            bare = add_item(session, "hashes", [("pdq", ref), ("md5", digests.md5)])
            entries[name] = (outcome.item_id, bare.item.id)
            pixel_bytes.append(outcome.signals)
        from sqlalchemy import func, select

        from meldpunt.store.models import ItemFeatures, ItemSignal

        value_bytes = session.scalar(
            select(func.sum(func.length(ItemSignal.value))).where(ItemSignal.set_id == 1)
        )
        signal_count = session.scalar(select(func.count()).where(ItemSignal.set_id == 1))
        feature_bytes = session.scalar(select(func.sum(func.length(ItemFeatures.data))))
    per_entry = {
        "signals_per_entry": signal_count / len(known),
        "signal_value_bytes_per_entry": value_bytes / len(known),
        "feature_bytes_per_entry": (feature_bytes or 0) / len(known),
        "bare_entry_bytes": 64 + 32,
    }
    return {"refs": refs, "entries": entries, "storage": per_entry}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    known = known_pictures(args.generated)
    print(f"{len(known)} known pictures, {len(EDITS)} edits each, {args.distractors:,} distractors")
    workdir = Path(tempfile.mkdtemp(prefix="meldpunt-detection-"))
    registry = build_registry(workdir, known)
    names = [name for name, _ in known]
    tasks: list[tuple[str, int, str, bytes]] = []
    for i, (_name, rgb) in enumerate(known):
        for edit in EDITS:
            copy, quality = apply_edit(edit.name, rgb, seed=i)
            tasks.append(("copy", i, edit.name, encode(copy, quality)))
    tasks += [("distractor", n, "", encode(distractor(n), 85)) for n in range(args.distractors)]
    results = []
    db_url = os.environ["MELDPUNT_DATABASE_URL"]
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())  # fmt: skip
    with (
        ProcessPoolExecutor(args.jobs, initializer=_init,
                            initargs=(db_url, str(workdir), registry["refs"])) as pool,
        Progress(*columns) as progress,
    ):  # fmt: skip
        bar = progress.add_task("checking", total=len(tasks))
        for result in pool.map(_evaluate, tasks, chunksize=8):
            results.append(result)
            progress.advance(bar)
    return summarise(results, names, registry, args)


def summarise(results: list[dict[str, Any]], names: list[str], registry: dict[str, Any],
              args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    group_of = {edit.name: edit.group for edit in EDITS}
    entries = registry["entries"]
    found: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    per_edit: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    false_pos: Counter[str] = Counter()
    ways: Counter[tuple[str, str]] = Counter()
    for r in results:
        for method in METHODS:
            hits = r["found"][method]
            if r["kind"] == "distractor":
                false_pos[method] += bool(hits)
                continue
            i = r["number"]
            if method.startswith("pdq"):
                own = i
            else:
                pixel_id, bare_id = entries[names[i]]
                own = pixel_id if method.endswith("pixels") else bare_id
            ok = own in hits
            wrong = any(h != own for h in hits)
            false_pos[method] += wrong
            for key, table in (((group_of[r["edit"]], method), found),
                               ((r["edit"], method), per_edit)):  # fmt: skip
                table[key][0] += ok
                table[key][1] += 1
            if method == "file→pixels" and ok:
                for way in set(r["ways"][method]):
                    ways[(group_of[r["edit"]], way)] += 1
    copies = [r for r in results if r["kind"] == "copy"]
    timing = {
        "hash_query_ms": 1000 * float(np.mean([r["hash_s"] for r in results])),
        "file_hash_ms": 1000 * float(np.mean([r["file_hash_s"] for r in results])),
        "file_match_ms": 1000 * float(np.mean([r["file_match_s"] for r in results])),
    }
    return {
        "known": len(names),
        "edits": len(EDITS),
        "copies": len(copies),
        "distractors": args.distractors,
        "recall": {
            f"{g}|{m}": found[(g, m)][0] / max(1, found[(g, m)][1]) for g in GROUPS for m in METHODS
        },  # fmt: skip
        "recall_by_edit": {
            f"{e.name}|{m}": per_edit[(e.name, m)][0] / max(1, per_edit[(e.name, m)][1])
            for e in EDITS
            for m in METHODS
        },  # fmt: skip
        "false_positives": dict(false_pos),
        "ways": {f"{g}|{w}": n for (g, w), n in ways.items()},
        "timing": timing,
        "storage": registry["storage"],
    }


# -- costs -----------------------------------------------------------------------------------------


def hashing_costs(repeats: int = 5) -> dict[str, float]:
    """Milliseconds to hash one picture (0.3 and 2 megapixels), by what is computed."""
    from meldpunt.signals import HashOptions, pdq_signal
    from meldpunt.signals.hashing import QUERY

    out = {}
    for label, size in (("0.3MP", (640, 480)), ("2MP", (1632, 1224))):
        data = [encode(photo_like(900 + i, size), 88) for i in range(repeats)]
        variants = {
            "peer pdqhash": None,
            "plain": HashOptions(trim=False),
            "+orientations": HashOptions(dihedral=True, trim=False),
            "+trimmed": HashOptions(dihedral=True),
            "+features": HashOptions(dihedral=True, features=QUERY),
        }
        for name, options in variants.items():
            started = time.perf_counter()
            for blob in data:
                if options is None:
                    _reference(np.asarray(Image.open(io.BytesIO(blob)).convert("RGB")))
                else:
                    pdq_signal(blob, options)
            out[f"{label} {name}"] = 1000 * (time.perf_counter() - started) / repeats
    return out


def throughput(entries: int, batch: int = 1000, rounds: int = 5) -> dict[str, float]:
    """Hash-only queries per second against ``entries`` PDQ entries (random, as bare lists),
    with the estimated orientations off and on."""
    from meldpunt.index import PdqIndex
    from meldpunt.registry.matching import Matcher, MatchRules, Query
    from meldpunt.registry.sets import HashSetInfo
    from meldpunt.registry.vocabulary import MatchWay  # noqa: F401

    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, size=(entries, 4), dtype=np.uint64)
    matcher = Matcher(rules=MatchRules())
    matcher.pdq = PdqIndex(hashes)
    matcher.pdq_payload.extend(
        np.ones(entries, np.int32), np.arange(entries), np.zeros(entries, np.int16)
    )
    matcher.codes = ["csam_baseline"]
    from datetime import UTC, datetime

    stamp = datetime.now(UTC)
    matcher.sets = {1: HashSetInfo(1, "list", "", None, "blocklist", None, THRESHOLD, "active",
                                   stamp, stamp)}  # fmt: skip
    near = hashes[rng.integers(0, entries, batch)]
    flips = rng.integers(0, 2**16, size=(batch, 4), dtype=np.uint64)
    values = [
        f"{int(a):016x}{int(b):016x}{int(c):016x}{int(d):016x}" for a, b, c, d in near ^ flips
    ]
    queries = [Query(pdq=v, pdq_quality=100) for v in values]
    out = {}
    for label, rules in (
        ("plain", MatchRules(estimate=False)),
        ("estimated orientations", MatchRules()),
    ):
        matcher.match_many(queries[:50], rules=rules)
        started = time.perf_counter()
        for _ in range(rounds):
            matcher.match_many(queries, rules=rules)
        out[label] = batch * rounds / (time.perf_counter() - started)
    return out


# -- report ----------------------------------------------------------------------------------------


def report(summary: dict[str, Any], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=170)
    table = Table(title=f"Recall by edit group ({summary['known']} known pictures, "
                        f"{summary['distractors']:,} distractors)")  # fmt: skip
    table.add_column("edit")
    for method in METHODS:
        table.add_column(method, justify="right")
    for group in GROUPS:
        table.add_row(group, *(f"{summary['recall'][f'{group}|{m}']:.2f}" for m in METHODS))
    table.add_row("false positives", *(str(summary["false_positives"].get(m, 0)) for m in METHODS))
    console.print(table)
    for key in ("timing", "storage", "hashing_ms", "throughput_qps"):
        if key in summary:
            console.print(key, summary[key])
    out.mkdir(parents=True, exist_ok=True)
    (out / "detection.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    chart(summary, out / "detection.png")
    console.print(f"wrote {out / 'detection.json'} and {out / 'detection.png'}")


def chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("pdq", "pdq+dihedral", "hash→pixels", "file→pixels")
    fig, ax = plt.subplots(figsize=(13, 4.8))
    width = 0.8 / len(shown)
    for k, method in enumerate(shown):
        values = [summary["recall"][f"{g}|{method}"] for g in GROUPS]
        ax.bar(np.arange(len(GROUPS)) + (k - (len(shown) - 1) / 2) * width, values, width,
               label=("peer " if method.startswith("pdq") else "meldpunt ") + method)  # fmt: skip
    ax.set_xticks(range(len(GROUPS)), [g.replace(", ", ",\n").replace(" up to", "\nup to")
                                        for g in GROUPS], fontsize=7)  # fmt: skip
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall")
    fps = ", ".join(f"{m}: {summary['false_positives'].get(m, 0)}" for m in shown)
    ax.set_title(f"Copies found, by edit (false positives on {summary['distractors']:,} "
                 f"distractors: {fps})", fontsize=10)  # fmt: skip
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)  # fmt: skip
    parser.add_argument("--distractors", type=int, default=10_000)
    parser.add_argument("--generated", type=int, default=24, help="generated known pictures")
    parser.add_argument("--entries", type=int, default=1_000_000, help="for the throughput part")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--chart", type=Path, metavar="JSON", help="redraw the chart of a run")
    args = parser.parse_args()
    if args.chart:
        summary = json.loads(args.chart.read_text())
        chart(summary, args.chart.with_suffix(".png"))
        return
    summary = run(args)
    summary["hashing_ms"] = hashing_costs()
    summary["throughput_qps"] = throughput(args.entries)
    report(summary, args.out)


if __name__ == "__main__":
    main()
