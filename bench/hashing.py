"""Hashing benchmark: meldpunt's fast and exact PDQ paths against ThreatExchange's PDQ hasher.

Same run, same bytes, one core (the process is pinned to one CPU, BLAS to one thread), bytes held
in memory so that the disk is not measured. Per size: images per second of each implementation
and the ratio to the peer; the distance between fast and reference hashes; the cost and catch
rate of orientation hashes against rotated and flipped copies.

    .venv/bin/python bench/hashing.py            # full corpus (cached in bench/.corpus)
    .venv/bin/python bench/hashing.py --quick    # a few images per size

It also matches edited copies (contrast, brightness, gamma, JPEG quality, resizing, greyscale,
blur) of corpus pictures against their original's reference hash: how many of the matches the
reference finds at distance 31 the fast path finds too.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance, ImageFilter  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import corpus  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from meldpunt.signals import HashOptions, hamming, pdq_signal  # noqa: E402

VECTORS = HERE.parent.parent / "shared" / "data" / "pdq-vectors"
TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270,
         Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM,
         Image.Transpose.TRANSPOSE, Image.Transpose.TRANSVERSE)  # fmt: skip
FAST = HashOptions(exif_transpose=False)
FAST_DIHEDRAL = HashOptions(exif_transpose=False, dihedral=True)
EXACT = HashOptions(exif_transpose=False, exact=True)
# the fast path as it was before low-contrast pictures were decoded a second time
ONE_DECODE = HashOptions(exif_transpose=False, precise_below=0)


def peer_hash(data: bytes) -> tuple[str, int]:
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes

    return pdq_from_bytes(data)


def timed(function: Callable[[bytes], object], data: bytes) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(data)
    return time.perf_counter() - start, result


def measure(images: list[corpus.CorpusImage], console: Console) -> dict[str, dict]:
    warm = images[0].path.read_bytes()  # imports and first-call set-up are not measured
    for options in (FAST, EXACT, FAST_DIHEDRAL):
        pdq_signal(warm, options)
    peer_hash(warm)
    per_size: dict[str, dict] = {}
    for size_name in dict.fromkeys(i.size_name for i in images):
        group = [i for i in images if i.size_name == size_name]
        totals = {"peer": 0.0, "fast": 0.0, "exact": 0.0, "fast_dihedral": 0.0, "one_decode": 0.0}
        distances: list[int] = []
        distances_q80: list[int] = []
        for image in group:
            data = image.path.read_bytes()
            # interleaved, so that a noisy moment hits every implementation alike
            t_peer, (ref, ref_quality) = timed(peer_hash, data)
            t_fast, fast = timed(lambda d: pdq_signal(d, FAST), data)
            t_exact, exact = timed(lambda d: pdq_signal(d, EXACT), data)
            t_dih, _ = timed(lambda d: pdq_signal(d, FAST_DIHEDRAL), data)
            t_one, _ = timed(lambda d: pdq_signal(d, ONE_DECODE), data)
            assert exact.hash == ref, f"exact path differs from the reference on {image.path}"
            totals["peer"] += t_peer
            totals["fast"] += t_fast
            totals["exact"] += t_exact
            totals["fast_dihedral"] += t_dih
            totals["one_decode"] += t_one
            distance = hamming(fast.hash, ref)
            distances.append(distance)
            if ref_quality >= 80:
                distances_q80.append(distance)
        n = len(group)
        result = {name: n / seconds for name, seconds in totals.items()}
        result.update(
            images=n,
            megapixels=round(
                np.mean([Image.open(i.path).size[0] * Image.open(i.path).size[1] for i in group])
                / 1e6,
                2,
            ),  # fmt: skip
            fast_vs_peer=totals["peer"] / totals["fast"],
            exact_vs_peer=totals["peer"] / totals["exact"],
            dihedral_cost=totals["fast_dihedral"] / totals["fast"],
            one_decode_vs_peer=totals["peer"] / totals["one_decode"],
            distance_max=max(distances),
            distance_mean=float(np.mean(distances)),
            within10_q80=float(np.mean([d <= 10 for d in distances_q80])) if distances_q80 else 1.0,
            distances=distances,
        )
        per_size[size_name] = result
        console.log(f"{size_name}: {n} images, fast {result['fast_vs_peer']:.1f}x the peer")
    return per_size


def vector_drift() -> list[int]:
    """Fast-path distance to the reference on Meta's vectors of quality >= 80."""
    import csv

    out = []
    path = VECTORS / "reference-hashes.csv"
    if not path.exists():
        return out
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            file = VECTORS / row["path"]
            if file.exists() and int(row["quality"]) >= 80:
                out.append(hamming(pdq_signal(file, FAST).hash, row["pdq"]))
    return out


def orientation_catch(images: list[corpus.CorpusImage], threshold: int = 31) -> dict[str, float]:
    """Share of rotated/flipped copies matched by orientation hashes: meldpunt's and PDQ's own."""
    import pdqhash

    caught_ours = caught_pdq = total = 0
    for image in images:
        original = Image.open(image.path).convert("RGB")
        original.thumbnail((1024, 1024))
        stored = pdq_signal(_jpeg(original), FAST).hash
        for turn in TURNS:
            copy = _jpeg(original.transpose(turn))
            ours = pdq_signal(copy, FAST_DIHEDRAL).dihedral or ()
            caught_ours += min(hamming(h, stored) for h in ours) <= threshold
            vectors, _ = pdqhash.compute_dihedral(
                np.asarray(Image.open(io.BytesIO(copy)).convert("RGB"))
            )
            theirs = [f"{int(''.join(map(str, v)), 2):064x}" for v in vectors]
            caught_pdq += min(hamming(h, stored) for h in theirs) <= threshold
            total += 1
    return {"copies": total, "meldpunt": caught_ours / total, "pdq_dihedral": caught_pdq / total}


def _jpeg(image: Image.Image, quality: int = 88) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _contrast(factor: float) -> Callable[[Image.Image], Image.Image]:
    return lambda image: ImageEnhance.Contrast(image).enhance(factor)


def _brightness(factor: float) -> Callable[[Image.Image], Image.Image]:
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


def _gamma(gamma: float) -> Callable[[Image.Image], Image.Image]:
    table = [min(255, round(255 * (i / 255) ** gamma)) for i in range(256)]
    return lambda image: image.point(table * 3)


def _half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


def _grey(image: Image.Image) -> Image.Image:
    return image.convert("L").convert("RGB")


def _blur(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(1.5))


def _then(*edits: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
    def edit(image: Image.Image) -> Image.Image:
        for step in edits:
            image = step(image)
        return image

    return edit


# Edits a hotline meets in re-uploaded copies: name -> (edit, JPEG quality of the copy)
EDITS: dict[str, tuple[Callable[[Image.Image], Image.Image], int]] = {
    "contrast 60%": (_contrast(0.6), 85),
    "contrast 40%": (_contrast(0.4), 85),
    "brightness 70%": (_brightness(0.7), 85),
    "brightness 130%": (_brightness(1.3), 85),
    "gamma 0.6": (_gamma(0.6), 85),
    "gamma 1.6": (_gamma(1.6), 85),
    "JPEG quality 30": (lambda image: image, 30),
    "resized to 50%": (_half, 85),
    "greyscale": (_grey, 85),
    "blur (1.5 px)": (_blur, 85),
    "contrast 60% + greyscale": (_then(_contrast(0.6), _grey), 85),
    "contrast 40% + 50%": (_then(_contrast(0.4), _half), 85),
    "dark + contrast 60%": (_then(_brightness(0.6), _contrast(0.6)), 85),
    "contrast 60% + blur + JPEG 30": (_then(_contrast(0.6), _blur), 30),
}


def edited_recall(images: list[corpus.CorpusImage], threshold: int = 31) -> dict[str, dict]:
    """Per edit: of the edited copies the reference matches to their original's reference hash
    (the list entry), how many the fast path matches; with one decoding only (the fast path
    before low-contrast pictures were decoded again) and as it is now. Plus the time per copy."""
    out: dict[str, dict] = {}
    for name, (edit, quality) in EDITS.items():
        row = {"copies": 0, "reference": 0, "fast": 0, "one_decode": 0, "bits": [],
               "t_fast": 0.0, "t_one": 0.0, "t_peer": 0.0}  # fmt: skip
        for image in images:
            original = Image.open(image.path).convert("RGB")
            entry = pdq_signal(image.path.read_bytes(), EXACT).hash
            copy = _jpeg(edit(original), quality)
            reference = pdq_signal(copy, EXACT).hash
            t_peer, _ = timed(peer_hash, copy)
            t_fast, fast = timed(lambda d: pdq_signal(d, FAST), copy)
            t_one, one = timed(lambda d: pdq_signal(d, ONE_DECODE), copy)
            row["copies"] += 1
            row["t_fast"] += t_fast
            row["t_one"] += t_one
            row["t_peer"] += t_peer
            row["bits"].append(hamming(fast.hash, reference))
            if hamming(reference, entry) <= threshold:
                row["reference"] += 1
                row["fast"] += hamming(fast.hash, entry) <= threshold
                row["one_decode"] += hamming(one.hash, entry) <= threshold
        row["max_bits"] = max(row.pop("bits"))
        out[name] = row
    return out


def chart(per_size: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(per_size)
    fig, (speed, drift) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.27
    series = (
        ("peer", "threatexchange pdq_from_bytes"),
        ("exact", "meldpunt exact"),
        ("fast", "meldpunt fast"),
    )
    for k, (name, label) in enumerate(series):
        values = [per_size[s][name] for s in sizes]
        bars = speed.bar(np.arange(len(sizes)) + (k - 1) * width, values, width, label=label)
        speed.bar_label(bars, fmt="%.3g", fontsize=8)
    speed.set_xticks(range(len(sizes)), sizes)
    speed.set_yscale("log")
    speed.set_ylabel("images per second, one core (log)")
    speed.set_title("PDQ hashing speed")
    speed.legend(fontsize=8)
    all_distances = [d for s in sizes for d in per_size[s]["distances"]]
    drift.hist(all_distances, bins=range(0, max(all_distances + [10]) + 2), color="tab:green")
    drift.axvline(10.5, color="red", linestyle="--", label="10 bits")
    drift.set_xlabel("bits from the reference hash (fast path)")
    drift.set_ylabel("images")
    drift.set_title("Fast path vs reference")
    drift.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--per-size", type=int, default=24, help="images per size")
    parser.add_argument("--quick", action="store_true", help="4 images per size")
    parser.add_argument(
        "--edited",
        type=int,
        default=12,
        help="corpus images per size (0.3 and 2 MP) to edit and match",
    )
    parser.add_argument("--corpus", type=Path, default=HERE / ".corpus")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    console = Console(width=140)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    per_size_count = 4 if args.quick else args.per_size
    with console.status("building the benign corpus"):
        images = corpus.build(args.corpus, per_size=per_size_count)
    per_size = measure(images, console)
    vectors = vector_drift()
    catch = orientation_catch([i for i in images if i.size_name != "12MP"][:8])
    edited_sources = [
        i
        for size in ("0.3MP", "2MP")
        for i in [i for i in images if i.size_name == size][: args.edited]
    ]
    with console.status("matching edited copies"):
        edited = edited_recall(edited_sources)

    table = Table(title="PDQ hashing, images per second on one core")
    for column in ("size", "MP", "images", "peer", "meldpunt exact", "meldpunt fast",
                   "fast / peer", "one decoding / peer", "dihedral cost", "max bits",
                   "q>=80 within 10"):  # fmt: skip
        table.add_column(column, justify="right")
    for size, r in per_size.items():
        table.add_row(size, f"{r['megapixels']}", str(r["images"]), f"{r['peer']:.1f}",
                      f"{r['exact']:.1f}", f"{r['fast']:.1f}", f"{r['fast_vs_peer']:.1f}x",
                      f"{r['one_decode_vs_peer']:.1f}x",
                      f"{r['dihedral_cost']:.2f}x", str(r["distance_max"]),
                      f"{100 * r['within10_q80']:.1f}%")  # fmt: skip
    console.print(table)
    all_q80 = [d for r in per_size.values() for d in r["distances"]]
    console.print(
        f"corpus: {sum(d <= 10 for d in all_q80)}/{len(all_q80)} fast hashes within 10 bits; "
        f"vectors (quality >= 80): max {max(vectors, default=0)} bits over {len(vectors)} images"
    )
    console.print(
        f"rotated/flipped copies caught at distance <= 31: meldpunt orientation hashes "
        f"{100 * catch['meldpunt']:.1f}%, "
        f"PDQ's own dihedral hashes {100 * catch['pdq_dihedral']:.1f}% "
        f"({catch['copies']} copies)"
    )
    recall = Table(title=f"Edited copies matched at distance 31 ({len(edited_sources)} originals)")
    for column in ("edit", "reference matches", "fast, one decoding", "fast", "max bits fast/ref",
                   "fast ms/copy", "one decoding ms", "peer ms"):  # fmt: skip
        recall.add_column(column, justify="right")
    for name, r in edited.items():
        n = r["copies"]
        recall.add_row(name, f"{r['reference']}/{n}", str(r["one_decode"]), str(r["fast"]),
                       str(r["max_bits"]), f"{1000 * r['t_fast'] / n:.1f}",
                       f"{1000 * r['t_one'] / n:.1f}", f"{1000 * r['t_peer'] / n:.1f}")  # fmt: skip
    console.print(recall)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {
        "per_size": {
            s: {k: v for k, v in r.items() if k != "distances"} for s, r in per_size.items()
        },
        "distances": {s: r["distances"] for s, r in per_size.items()},
        "vector_distances": vectors,
        "orientation_catch": catch,
        "edited_copies": edited,
    }
    (args.out / "hashing.json").write_text(json.dumps(summary, indent=2))
    chart(per_size, args.out / "hashing.png")
    console.print(f"wrote {args.out / 'hashing.json'} and {args.out / 'hashing.png'}")


if __name__ == "__main__":
    main()
