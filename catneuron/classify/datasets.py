"""Labeled image sets for the supervised experiments.

Three ways to name one (`load_task`):
  - ``tiny-imagenet``: natural-64 train + val, labeled by each record's ImageNet ``wnid`` (200 classes);
  - ``four-way``: faces-200/test, catfaces/test, bodies/test and natural-64/val, one class each;
  - a folder with one sub-folder of images per class (the sub-folder name is the class).

Images are letterboxed to the network's input (`fit_inside`: a pedestrian keeps head and feet).
The paper's protocol splits the labeled data randomly into halves for training and validation
(`LabeledSet.halves`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catneuron.data.images import IMAGE_SUFFIXES, decode, fit_inside
from catneuron.data.sources import data_root, images_under, iter_records, resolve_all
from catneuron.errors import DataError
from catneuron.progress import progress as progress_bar


@dataclass
class LabeledSet:
    images: np.ndarray           # uint8 (N, S, S, C)
    labels: np.ndarray           # int64 (N,), indices into classes
    classes: list[str]
    origins: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "LabeledSet":
        return LabeledSet(self.images[index], self.labels[index], self.classes, [self.origins[i] for i in index])

    def halves(self, seed: int) -> tuple["LabeledSet", "LabeledSet"]:
        """The paper's protocol: a seeded random split into two disjoint halves (train, validation),
        stratified (each class split in two, its odd image to validation), so that a rare class
        is never missing from training while scored in validation."""
        counts = np.bincount(self.labels, minlength=len(self.classes))
        if counts.min() < 2:
            rare = self.classes[int(counts.argmin())]
            raise DataError(f"class {rare!r} has {counts.min()} image(s); the two halves (training, validation) "
                            f"need at least 2 of every class")
        rng = np.random.default_rng(seed)
        train = np.zeros(len(self), bool)
        for label in range(len(self.classes)):
            members = np.flatnonzero(self.labels == label)
            train[rng.permutation(members)[: len(members) // 2]] = True
        return self.subset(np.flatnonzero(train)), self.subset(np.flatnonzero(~train))


FOUR_WAY = {"face": ["faces-200/test"], "cat face": ["catfaces/test"], "body": ["bodies/test"],
            "natural": ["natural-64/val"]}
TINY_IMAGENET = ["natural-64/train", "natural-64/val"]


def _cap(groups: dict[str, list], per_class: int, seed: int) -> dict[str, list]:
    if not per_class:
        return groups
    rng = np.random.default_rng(seed)
    return {c: [items[i] for i in np.sort(rng.choice(len(items), per_class, replace=False))]
            if len(items) > per_class else items for c, items in groups.items()}


def _decode_all(groups: dict[str, list], classes: list[str], size: int, channels: int, what: str,
                progress: bool) -> LabeledSet:
    """groups: class -> [(bytes or path, origin)] -> LabeledSet; unreadable images are skipped."""
    images, labels, origins = [], [], []
    total = sum(len(v) for v in groups.values())
    with progress_bar(total=total, desc=f"decode {what}", unit="img", enabled=progress) as bar:
        for label, name in enumerate(classes):
            for data, origin in groups[name]:
                bar.update()
                try:
                    raw = data if isinstance(data, bytes) else Path(data).read_bytes()
                    images.append(fit_inside(decode(raw, origin), size, channels))
                except (DataError, OSError):
                    continue
                labels.append(label)
                origins.append(origin)
    if not images:
        raise DataError(f"{what}: no readable images")
    counts = np.bincount(labels, minlength=len(classes))
    empty = [name for name, n in zip(classes, counts) if n == 0]
    if empty:
        raise DataError(f"{what}: class {empty[0]!r} has no readable image ({len(groups[empty[0]])} unreadable); "
                        f"every class needs examples")
    return LabeledSet(np.stack(images), np.asarray(labels, dtype=np.int64), classes, origins)


def from_field(specs: list[str], field: str, size: int, channels: int = 3, root: str | None = None,
               classes: list[str] | None = None, per_class: int = 0, seed: int = 0,
               progress: bool = True) -> LabeledSet:
    """Shards whose records' JSON carries the label in `field` (e.g. Tiny ImageNet's wnid)."""
    groups: dict[str, list] = {}
    for rec, spec in iter_records(resolve_all(specs, root)):
        if rec.error:
            continue
        label = rec.meta().get(field)
        if label is None:
            raise DataError(f"{rec.origin}: no label field {field!r} in its JSON")
        if classes is not None and label not in classes:
            raise DataError(f"{rec.origin}: label {label!r} is not one of the {len(classes)} given classes")
        groups.setdefault(str(label), []).append((rec.image(), rec.origin))
    names = classes or sorted(groups)
    if not groups:
        raise DataError(f"{', '.join(specs)}: no labeled images")
    return _decode_all(_cap(groups, per_class, seed), names, size, channels, ", ".join(specs), progress)


def from_groups(groups: dict[str, list[str]], size: int, channels: int = 3, root: str | None = None,
                per_class: int = 0, seed: int = 0, progress: bool = True) -> LabeledSet:
    """One class per named group of sources (e.g. the four-way task)."""
    items = {}
    for name, specs in groups.items():
        items[name] = [(rec.image(), rec.origin) for rec, _ in iter_records(resolve_all(specs, root))
                       if not rec.error]
        if not items[name]:
            raise DataError(f"class {name!r} ({', '.join(specs)}): no images")
    return _decode_all(_cap(items, per_class, seed), list(groups), size, channels, "four-way task", progress)


def from_folders(folder: str | Path, size: int, channels: int = 3, per_class: int = 0, seed: int = 0,
                 progress: bool = True) -> LabeledSet:
    """A folder with one sub-folder of images per class."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected one sub-folder of images per class)")
    groups = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):   # .ipynb_checkpoints
        files = images_under(sub)
        if not files:
            raise DataError(f"{sub}: class folder has no images ({', '.join(IMAGE_SUFFIXES)})")
        groups[sub.name] = [(p, str(p)) for p in files]
    if len(groups) < 2:
        raise DataError(f"{folder}: found {len(groups)} class sub-folders, expected at least 2")
    return _decode_all(_cap(groups, per_class, seed), list(groups), size, channels, str(folder), progress)


TASKS = ("tiny-imagenet", "four-way")


def load_task(task: str, size: int, channels: int = 3, root: str | None = None, per_class: int = 0,
              seed: int = 0, progress: bool = True) -> LabeledSet:
    if task == "tiny-imagenet":
        return from_field(TINY_IMAGENET, "wnid", size, channels, root, per_class=per_class, seed=seed,
                          progress=progress)
    if task == "four-way":
        return from_groups(FOUR_WAY, size, channels, root, per_class=per_class, seed=seed, progress=progress)
    if Path(task).is_dir():
        return from_folders(task, size, channels, per_class, seed, progress)
    raise DataError(f"task {task!r}: expected {' or '.join(TASKS)} or a folder of class sub-folders "
                    f"(data root {data_root(root)})")
