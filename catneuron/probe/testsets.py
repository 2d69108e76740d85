"""Labeled test sets for the selectivity probe: positives vs distractors at the paper's ratio.

The paper's face test had 13,026 faces and 23,974 distractors (all-negative guessing: 64.8 %), and
its cat and body tests the same ratio. We build each test set at that ratio from what the sources
hold (all of the scarcer side, a seeded subset of the other), split it in halves (validation, to
select a neuron and its threshold, and held-out test, to report), and store every image letterboxed
into a square (aspect kept, the rest its mean colour) at the model's input size. Built sets are
cached (keyed by sources, sizes, seed) in $CATNEURON_CACHE/testsets.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catneuron.data.images import decode, fit_inside
from catneuron.data.sources import data_root, iter_records, resolve_all
from catneuron.errors import DataError

PAPER_POSITIVE_FRACTION = 13026 / (13026 + 23974)


@dataclass(frozen=True)
class Task:
    name: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]


# "faces" is the paper's test: LFW (faces with hair, shoulders and background). "faces-200" are
# tight, aligned UTKFace crops: easy for templates (a linear filter or random weights reach ~88 %),
# kept as a variant.
DEFAULT_TASKS = (Task("faces", ("lfw/test",), ("natural-64/val",)),
                 Task("faces-200", ("faces-200/test",), ("natural-64/val",)),
                 Task("cat faces", ("catfaces/test",), ("natural-64/val",)),
                 Task("bodies", ("bodies/test",), ("natural-64/val",)))


@dataclass
class TestSet:
    name: str
    images: np.ndarray            # (N, S, S, C) uint8
    labels: np.ndarray            # (N,) bool, True = positive
    val: np.ndarray               # (N,) bool, True = validation half
    origins: list[str]
    meta: dict = field(default_factory=dict)

    @property
    def all_negative(self) -> float:
        return float(1 - self.labels.mean())

    def describe(self) -> str:
        p = int(self.labels.sum())
        return (f"{self.name}: {p:,} positives + {len(self.labels) - p:,} distractors "
                f"(all-negative {100 * self.all_negative:.1f} %), {int(self.val.sum()):,} for validation")


def _cache_dir() -> Path:
    root = os.environ.get("CATNEURON_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "catneuron")
    return Path(root) / "testsets"


# How test images are prepared; part of every cache key (of the sets, and of the probe's scores
# through the set's meta), so changing the preparation invalidates what was computed before.
PREPARATION = "letterbox, distractors aspect-matched"


def _crop_to_aspect(img, aspect: float):
    """The largest centred crop of a PIL image with width / height = aspect."""
    w, h = img.size
    cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
    cw, ch = max(1, min(w, cw)), max(1, min(h, ch))
    left, top = (w - cw) // 2, (h - ch) // 2
    return img.crop((left, top, left + cw, top + ch))


def _load_images(specs, root, size: int, channels: int, limit_rng, limit: int | None, aspects=None):
    """Decoded, letterboxed images of the sources (a seeded subset of `limit` when given), their
    origins, and the aspect ratio (width / height) of each. With `aspects`, each image is first cropped to an
    aspect drawn from it: distractors then get the same letterbox bars as the positives, which
    would otherwise give narrow positives (pedestrians) away by their flat borders alone."""
    sources = resolve_all(list(specs), root)
    records = [(rec, spec) for rec, spec in iter_records(sources)]
    if limit is not None and limit < len(records):
        keep = np.sort(limit_rng.choice(len(records), limit, replace=False))
        records = [records[i] for i in keep]
    images, origins, ratios = [], [], []
    for rec, spec in records:
        try:
            img = decode(rec.require_image(), rec.origin)
        except DataError:
            continue
        if aspects:
            img = _crop_to_aspect(img, float(limit_rng.choice(aspects)))
        ratios.append(img.size[0] / img.size[1])
        images.append(fit_inside(img, size, channels))
        origins.append(rec.origin)
    return images, origins, ratios


def count(specs, root) -> int:
    from catneuron.data.sources import count_records
    return count_records(resolve_all(list(specs), root))


def build(task: Task, size: int, channels: int = 3, root: str | None = None, seed: int = 0,
          positive_fraction: float = PAPER_POSITIVE_FRACTION, max_positives: int | None = None,
          use_cache: bool = True) -> TestSet:
    base = data_root(root)
    n_pos, n_neg = count(task.positives, base), count(task.negatives, base)
    if n_pos == 0 or n_neg == 0:
        raise DataError(f"test set {task.name}: needs positives and negatives, got {n_pos} and {n_neg}")
    if max_positives:
        n_pos = min(n_pos, max_positives)
    # The largest set at the ratio: all of the scarcer side.
    want_neg = min(n_neg, int(n_pos * (1 - positive_fraction) / positive_fraction))
    want_pos = min(n_pos, int(round(want_neg * positive_fraction / (1 - positive_fraction))))
    key = hashlib.sha256(json.dumps([task.name, list(task.positives), list(task.negatives), str(base), size, channels,
                                     seed, want_pos, want_neg, PREPARATION]).encode()).hexdigest()[:16]
    path = _cache_dir() / f"{key}.npz"
    if use_cache and path.exists():
        z = np.load(path, allow_pickle=False)
        return TestSet(task.name, z["images"], z["labels"], z["val"], json.loads(str(z["origins"])),
                       json.loads(str(z["meta"])))
    rng = np.random.default_rng(seed)
    pos, pos_origins, pos_aspects = _load_images(task.positives, base, size, channels, rng, want_pos)
    neg, neg_origins, _ = _load_images(task.negatives, base, size, channels, rng, want_neg, pos_aspects)
    images = np.stack(pos + neg)
    labels = np.array([True] * len(pos) + [False] * len(neg))
    val = np.zeros(len(labels), bool)
    for cls in (True, False):                       # stratified halves
        idx = np.flatnonzero(labels == cls)
        val[rng.permutation(idx)[: len(idx) // 2]] = True
    meta = {"task": task.name, "positives": list(task.positives), "negatives": list(task.negatives),
            "size": size, "seed": seed, "positive_fraction_target": positive_fraction, "key": key}
    ts = TestSet(task.name, images, labels, val, pos_origins + neg_origins, meta)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, images=images, labels=labels, val=val, origins=json.dumps(ts.origins), meta=json.dumps(meta))
        os.replace(tmp, path)
    return ts
