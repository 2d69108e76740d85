"""Concept scan (beyond the paper): every neuron against every labeled concept available.

Concepts: each Tiny ImageNet class of natural-64/val (by its wnid, 50 images each), and the face,
cat-face and body test sets (up to `per_set` images each). A neuron's selectivity for a concept is
its ROC AUC for "this concept vs every other image of the scan", computed from the ranks of its
responses (one sort per neuron serves all concepts). Memory is images x neurons, so the scan
covers the sublayers named in `groups` (by default the top stage's).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from catneuron.data.images import decode, fit_inside
from catneuron.data.sources import data_root, iter_records, resolve_all
from catneuron.errors import DataError
from catneuron.probe.detectors import NetworkDetectors
from catneuron.probe.selectivity import average_ranks


@dataclass
class ConceptImages:
    images: np.ndarray        # (N, S, S, C) uint8
    concept: np.ndarray       # (N,) int index into names
    names: list[str]


def load_concepts(size: int, root: str | None = None, per_set: int = 500, seed: int = 0, per_class: int | None = None,
                  classes_from: str = "natural-64/val",
                  sets: tuple[tuple[str, str], ...] = (("faces", "lfw/test"), ("cat faces", "catfaces/test"),
                                                       ("bodies", "bodies/test"))) -> ConceptImages:
    base = data_root(root)
    rng = np.random.default_rng(seed)
    images, concept, names = [], [], []
    index: dict[str, int] = {}
    taken: dict[str, int] = {}
    for rec, _ in iter_records(resolve_all([classes_from], base)):
        meta = rec.meta() if "json" in rec.files else {}
        if "wnid" not in meta:
            continue
        name = f"{meta['wnid']} {meta.get('words', '').split(',')[0]}".strip()
        if name not in index:
            index[name] = len(names)
            names.append(name)
        if per_class is not None and taken.get(name, 0) >= per_class:
            continue
        taken[name] = taken.get(name, 0) + 1
        try:
            images.append(fit_inside(decode(rec.require_image(), rec.origin), size))
        except DataError:
            continue
        concept.append(index[name])
    for name, spec in sets:
        try:
            records = [r for r, _ in iter_records(resolve_all([spec], base))]
        except DataError:
            continue
        keep = rng.permutation(len(records))[:per_class or per_set]
        index[name] = len(names)
        names.append(name)
        for k in keep:
            try:
                images.append(fit_inside(decode(records[k].require_image(), records[k].origin), size))
            except DataError:
                continue
            concept.append(index[name])
    if not images:
        raise DataError(f"concept scan: no labeled images in {classes_from} or the test sets")
    return ConceptImages(np.stack(images), np.asarray(concept), names)


def concept_aucs(acts: torch.Tensor, concept: np.ndarray, concepts: int) -> torch.Tensor:
    """(N, U) responses of U units to N images of the given concepts -> (concepts, U): for each
    concept and unit, the ROC AUC of "this concept vs all the others", from rank sums."""
    N, U = acts.shape
    labels = torch.from_numpy(concept)
    rank_sums = torch.zeros(concepts, U, dtype=torch.float64).index_add_(0, labels, average_ranks(acts))
    n = torch.bincount(labels, minlength=concepts).double()[:, None]
    return ((rank_sums - n * (n + 1) / 2) / (n * (N - n)).clamp_min(1)).float()


def scan(det: NetworkDetectors, data: ConceptImages, groups: list[str] | None = None, batch_size: int = 100,
         top: int = 5) -> dict:
    """AUC of every (concept, neuron) for the neurons of `groups` (whole-input mode)."""
    ranges = det.group_ranges()
    groups = groups or [g.name for g in det.groups if g.stage == det.groups[-1].stage]
    cols = torch.cat([torch.arange(a, b) for name in groups for a, b in ranges[name][:1]])
    acts = torch.cat([det(data.images[s:s + batch_size])[:, cols].cpu()
                      for s in range(0, len(data.images), batch_size)])
    N, U = acts.shape
    C = len(data.names)
    auc = concept_aucs(acts, data.concept, C)
    best = auc.topk(min(top, U), dim=1)
    per_concept = {data.names[c]: [{**det.describe(int(cols[u])), "auc": float(a)}
                                   for a, u in zip(best.values[c], best.indices[c])] for c in range(C)}
    # Concepts of the most concept-selective neurons.
    strongest = auc.max(0).values.topk(min(20, U)).indices
    per_neuron = []
    for u in strongest.tolist():
        order = auc[:, u].argsort(descending=True)[:3]
        per_neuron.append({**det.describe(int(cols[u])),
                           "concepts": [{"concept": data.names[c], "auc": float(auc[c, u])} for c in order.tolist()]})
    return {"groups": groups, "neurons": U, "images": N, "concepts": data.names, "per_concept": per_concept,
            "per_neuron": per_neuron}
