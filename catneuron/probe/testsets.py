"""Labeled test sets for the selectivity probe: positives vs distractors at the paper's ratio.

The paper's face test had 13,026 faces and 23,974 distractors (all-negative guessing: 64.8 %), and
its cat and body tests the same ratio. We build each test set at that ratio from what the sources
hold (all of the scarcer side, a seeded subset of the other), split it in halves (validation, to
select a neuron and its threshold, and held-out test, to report), and store every image letterboxed
into a square (aspect kept, the rest its mean colour) at the model's input size. Built sets are
cached (keyed by the sources' files, sizes, seed) in $CATNEURON_CACHE/testsets. `place` puts a test
image on the network's input canvas at a size and position (the probe's field mode, the invariance
curves).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from catneuron.data.images import decode, fit_inside
from catneuron.data.sources import data_root, iter_records, resolve_all
from catneuron.errors import DataError
from catneuron.files import replacing

log = logging.getLogger(__name__)

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
        bad = self.meta.get("unreadable", {})
        skipped = bad.get("positives", 0) + bad.get("negatives", 0)
        return (f"{self.name}: {p:,} positives + {len(self.labels) - p:,} distractors "
                f"(all-negative {100 * self.all_negative:.1f} %), {int(self.val.sum()):,} for validation"
                + (f"; {skipped:,} unreadable images skipped" if skipped else ""))


def as_float(images: np.ndarray, device=None) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float (B, C, H, W) in [0, 1] on `device` (crossing to it as uint8)."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255.0)


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B, C, size, size), bicubic with antialiasing."""
    if x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


def place(x: torch.Tensor, canvas: int, size: int, top: int, left: int) -> torch.Tensor:
    """How a test image meets a network input smaller or larger than itself: (B, C, H, W) in [0, 1]
    resized to size x size with its top-left corner at (top, left) of a canvas x canvas input filled
    with each image's mean colour; what falls outside the canvas is cut."""
    small = resize(x, max(1, size))
    out = x.mean(dim=(2, 3), keepdim=True).expand(-1, -1, canvas, canvas).clone()
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(canvas, top + size), min(canvas, left + size)
    if y1 > y0 and x1 > x0:
        out[:, :, y0:y1, x0:x1] = small[:, :, y0 - top:y1 - top, x0 - left:x1 - left]
    return out


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
    images, origins, ratios, unreadable = [], [], [], []
    for rec, spec in records:
        try:
            img = decode(rec.require_image(), rec.origin)
        except DataError as err:
            unreadable.append(str(err))
            continue
        if aspects:
            img = _crop_to_aspect(img, float(limit_rng.choice(aspects)))
        ratios.append(img.size[0] / img.size[1])
        images.append(fit_inside(img, size, channels))
        origins.append(rec.origin)
    if unreadable:
        log.warning("%d unreadable test images skipped, e.g. %s", len(unreadable), unreadable[0])
    return images, origins, ratios, unreadable


def file_identity(specs, root) -> list:
    """Every file behind the sources: resolved path, size and modification time. Part of the cache
    key, so that the same specs naming other files (a relative folder from another directory, a
    file replaced in place) never reuse a set built from the old ones."""
    out = []
    for source in resolve_all(list(specs), root):
        for f in source.files:
            st = f.stat()
            out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _load_cached(path: Path, name: str) -> TestSet | None:
    """The cached set, or None when it is missing or unreadable (a damaged file is rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return TestSet(name, z["images"], z["labels"], z["val"], json.loads(str(z["origins"])),
                           json.loads(str(z["meta"])))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning("test-set cache %s is unreadable (%s): building the set again", path, err)
        return None


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
    key = hashlib.sha256(json.dumps([task.name, file_identity(task.positives, base),
                                     file_identity(task.negatives, base), size, channels, seed, want_pos, want_neg,
                                     PREPARATION]).encode()).hexdigest()[:16]
    path = _cache_dir() / f"{key}.npz"
    cached = _load_cached(path, task.name) if use_cache else None
    if cached is not None:
        return cached
    rng = np.random.default_rng(seed)
    pos, pos_origins, pos_aspects, pos_bad = _load_images(task.positives, base, size, channels, rng, want_pos)
    neg, neg_origins, _, neg_bad = _load_images(task.negatives, base, size, channels, rng, want_neg, pos_aspects)
    images = np.stack(pos + neg)
    labels = np.array([True] * len(pos) + [False] * len(neg))
    val = np.zeros(len(labels), bool)
    for cls in (True, False):                       # stratified halves
        idx = np.flatnonzero(labels == cls)
        val[rng.permutation(idx)[: len(idx) // 2]] = True
    meta = {"task": task.name, "positives": list(task.positives), "negatives": list(task.negatives),
            "size": size, "seed": seed, "positive_fraction_target": positive_fraction, "key": key,
            "unreadable": {"positives": len(pos_bad), "negatives": len(neg_bad),
                           "examples": (pos_bad + neg_bad)[:5]}}
    ts = TestSet(task.name, images, labels, val, pos_origins + neg_origins, meta)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path, suffix=".tmp.npz") as tmp:
            np.savez(tmp, images=images, labels=labels, val=val, origins=json.dumps(ts.origins),
                     meta=json.dumps(meta))
    return ts
