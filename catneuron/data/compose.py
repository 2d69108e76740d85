"""The unlabeled training corpus, composed from named sources with mixing ratios.

    catneuron data compose --mix natural-64/train=0.98 --mix faces-200/pool=0.02 --size 64 --out corpora/default

Each source gets the given fraction of the corpus. Without --count the corpus is as large as the
sources allow without repeating an image. From each source a seeded random subset is taken;
the corpus order interleaves the sources at random (seeded), so every part of every shard has
the target mix. Images are resized to size x size (kept byte for byte when already square JPEGs
of that size). Each record's JSON keeps its original metadata plus "source_set" (the source it
came from) and "origin" (shard and key there). manifest.json records the recipe, the counts per
source (wanted, available, taken), the seed and the code version.

The whole corpus is written in a temporary folder and renamed when complete.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catneuron.data.images import decode, encode_jpeg, fit_square
from catneuron.data.jobs import job_metadata
from catneuron.files import replacing_dir, write_json
from catneuron.data.shards import Record, ShardWriter
from catneuron.data.sources import Source, count_records, data_root, iter_records, resolve
from catneuron.errors import DataError
from catneuron.progress import progress as progress_bar

# The laptop reproduction's corpus: Tiny ImageNet with 2 % UTKFace crops, the largest share at
# which the face audit stays under the paper's "faces in under 3 % of 60x60 patches" (the detector
# fires on 0.8 % of Tiny ImageNet patches and on 95 % of face-crop patches; docs/RESULTS.md).
DEFAULT_MIX = (("natural-64/train", 0.98), ("faces-200/pool", 0.02))
DEFAULT_SIZE = 64


@dataclass
class Part:
    spec: str
    weight: float
    source: Source
    available: int = 0
    take: int = 0


def parse_mix(items: list[str]) -> list[tuple[str, float]]:
    """["natural-64/train=0.95", "faces-200/pool=0.05"] -> [(spec, weight)]; weights are normalized."""
    mix = []
    for item in items:
        spec, sep, weight = item.rpartition("=")
        if not sep:
            raise DataError(f"--mix {item}: expected SOURCE=FRACTION, e.g. faces-200/pool=0.05")
        try:
            w = float(weight)
        except ValueError:
            raise DataError(f"--mix {item}: {weight!r} is not a number") from None
        if not 0 < w < math.inf:
            raise DataError(f"--mix {item}: the fraction must be a number > 0")
        mix.append((spec, w))
    if not mix:
        raise DataError("compose: no sources; give --mix SOURCE=FRACTION at least once")
    total = sum(w for _, w in mix)
    return [(s, w / total) for s, w in mix]


def plan(parts: list[Part], count: int | None) -> int:
    """Fill each part's `take`; returns the corpus size."""
    if count is None:
        count = int(min(p.available / p.weight for p in parts))
        if count < 1:
            raise DataError("compose: " + ", ".join(f"{p.spec} holds {p.available} images" for p in parts) +
                            "; too few for a corpus of these fractions")
    elif count < 1:
        raise DataError(f"compose: --count {count}; expected at least 1 image")
    takes = [int(round(p.weight * count)) for p in parts]
    takes[int(np.argmax([p.weight for p in parts]))] += count - sum(takes)
    for p, k in zip(parts, takes):
        if k > p.available:
            raise DataError(f"compose: {p.spec} has {p.available} images, {k} wanted for {count} at "
                            f"{100 * p.weight:.1f} %; lower --count")
        p.take = k
    return count


def _fit(rec: Record, size: int) -> bytes:
    data = rec.require_image()
    img = decode(data, rec.origin)
    if img.format == "JPEG" and img.size == (size, size) and img.mode == "RGB":
        return data
    return encode_jpeg(fit_square(img, size))


def compose(mix: list[tuple[str, float]], out: Path, size: int = DEFAULT_SIZE, seed: int = 0,
            count: int | None = None, root: str | None = None, shard_size: int = 5000,
            progress: bool = True) -> dict:
    """Write the corpus to `out` (see the module docstring); returns the manifest."""
    if size < 1 or shard_size < 1:
        raise DataError(f"compose: size {size} and shard size {shard_size}; expected both >= 1")
    if out.exists() and (out / "manifest.json").exists():
        raise DataError(f"compose: {out} already holds a corpus; choose another --out or delete it")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"compose: {out} exists and is not an empty folder; choose another --out")
    for spec, _ in mix:
        if spec.rstrip("/").rsplit("/", 1)[-1].startswith("test"):
            raise DataError(f"compose: {spec} is a held-out test split; putting it in a training corpus would "
                            f"leak the probe's test images")
    base = data_root(root)
    parts = [Part(spec, w, resolve(spec, base)) for spec, w in mix]
    for p in parts:
        p.available = count_records([p.source])
    total = plan(parts, count)
    rng = np.random.default_rng(seed)
    chosen = [set(rng.choice(p.available, p.take, replace=False).tolist()) for p in parts]
    order = rng.permutation(np.repeat(np.arange(len(parts)), [p.take for p in parts]))

    skipped: list[dict[str, str]] = [{} for _ in parts]       # per part: unreadable record -> why
    streams = [_selected(p, sel, size, bad) for p, sel, bad in zip(parts, chosen, skipped)]
    taken = [0] * len(parts)
    with replacing_dir(out) as tmp:
        with ShardWriter(tmp / "train", max_count=shard_size) as writer, \
                progress_bar(total=total, unit="img", desc="compose", enabled=progress) as bar:
            for which in order:
                rec, data = next(streams[which], (None, None))
                bar.update(1)
                if rec is None:
                    p = parts[which]
                    if count is not None:
                        raise DataError(f"compose: {p.spec} has {taken[which]} readable images of {p.available} "
                                        f"({len(skipped[which])} unreadable), {p.take} wanted for --count {count}; "
                                        f"lower --count")
                    continue      # the default size is what the sources allow: one image fewer
                meta = rec.meta() if "json" in rec.files else {}
                meta.update({"source_set": parts[which].spec, "origin": rec.origin})
                writer.write(f"{sum(taken):08d}", {"jpg": data, "json": json.dumps(meta).encode()})
                taken[which] += 1
        manifest = job_metadata(
            kind="corpus", size=size, seed=seed, count=sum(taken), shard_size=shard_size,
            sources=[{"spec": p.spec, "fraction": round(p.weight, 6), "available": p.available, "taken": k,
                      "files": [str(f) for f in p.source.files]} for p, k in zip(parts, taken)],
            shards=[s.name for s in writer.written], unreadable={k: v for bad in skipped for k, v in bad.items()})
        write_json(tmp / "manifest.json", manifest)
    return manifest


def _selected(part: Part, selected: set[int], size: int, skipped: dict[str, str]):
    """(record, image bytes at the corpus size) of the selected records, in stored order; then, for
    each unreadable selected record (noted in `skipped`), a readable unselected one, drawn from
    the whole source in stored order. Ends early only when the source has too few readable images."""
    owed = 0
    for index, (rec, _) in enumerate(iter_records([part.source])):
        if index not in selected:
            continue
        try:
            data = _fit(rec, size)
        except DataError as err:
            skipped[rec.origin] = str(err).split(": ", 1)[-1]
            owed += 1
            continue
        yield rec, data
    for index, (rec, _) in enumerate(iter_records([part.source])):
        if owed == 0:
            return
        if index in selected:
            continue
        try:
            data = _fit(rec, size)
        except DataError as err:
            skipped[rec.origin] = str(err).split(": ", 1)[-1]
            continue
        owed -= 1
        yield rec, data
