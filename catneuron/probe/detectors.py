"""Candidate detectors: functions from a batch of test images to one response per candidate.

    NetworkDetectors      every neuron of every sublayer (filtering, pooling, LCN of each stage)
    LinearFilterDetectors image patches from the training corpus used as linear filters
    CentroidDetectors     K-means centroids of downsampled training images (minus squared distance)

All take uint8 (B, S, S, C) test images (squares at the input size, see testsets.py) and return float
(B, candidates) on their device (the images travel there as uint8 and are resized and
standardized there); `describe(index)` names a candidate.

How the network sees a test image (`mode`):
  whole  the image resized to the whole input;
  field  the image resized to the receptive field of the top stage's pooling units (the paper
         resized its test images "to fit the visible areas of the top neurons") and placed exactly
         on the field of top units at `placements` x `placements` positions spread over those whose
         field is inside the input (1: the centre), the rest of the input the image's mean colour.
         Every neuron is scored at every placement; the top units at the placement's location are
         the ones whose field it is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from catneuron.config import ModelConfig
from catneuron.data.preprocess import preprocessed
from catneuron.nn.geometry import Sublayer, sublayers
from catneuron.probe.testsets import as_float, place, resize


SOURCES = ("trained", "random", "compare", "linear", "kmeans")
MODES = ("whole", "field")          # how a network detector set shows a test image (module docstring)


@dataclass(frozen=True)
class SetKey:
    """Which detector set a probe result is: `source` (one of SOURCES), the compared run's `name`
    (compare only) and the `mode` (network sets). Its string is the results' key and the score
    cache's file name: trained-whole, random-field, compare-control-whole, linear, kmeans."""
    source: str
    mode: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        return "-".join(part for part in (self.source, self.name, self.mode) if part)

    @classmethod
    def parse(cls, key: str) -> "SetKey":
        source, _, rest = key.partition("-")
        if source not in SOURCES:
            raise ValueError(f"{key!r}: not a detector set (expected one of {', '.join(SOURCES)}, then -MODE)")
        if source == "compare":
            name, _, mode = rest.rpartition("-")
            return cls(source, mode, name)
        return cls(source, rest or None)


@dataclass(frozen=True)
class UnitAddress:
    """Where a network unit is: its stage (from 1), sublayer (filter, pool, lcn, sigmoid), map and
    (i, j) in that sublayer's grid; `placement`: which of its detector set's image placements
    (field mode; 0 in whole mode). What the explorer's and the report's unit names say."""
    stage: int
    sublayer: str
    map: int
    i: int
    j: int
    placement: int = 0

    @property
    def name(self) -> str:
        """'stage3/pool map 3 at (1,2)': how the report, the explorer and network.Network name it."""
        return f"stage{self.stage}/{self.sublayer} map {self.map} at ({self.i},{self.j})"


def addresses(groups: list[Sublayer], candidates) -> dict[str, np.ndarray]:
    """Candidate numbers (an array) -> where their units are, as arrays: `stage`, `sublayer` (kind),
    `map`, `i`, `j` (in the sublayer's grid), `placement` (index), `unit` (within a placement) and
    `group` (index into `groups`). Candidates number the units of `groups` in order, then the
    placements: NetworkDetectors' numbering, for a whole table at once."""
    candidates = np.asarray(candidates, dtype=np.int64)
    sizes = np.array([g.units for g in groups])
    placement, unit = np.divmod(candidates, sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)])
    group = np.searchsorted(starts, unit, side="right") - 1
    side = np.array([g.size for g in groups])[group]
    m, rest = np.divmod(unit - starts[group], side * side)
    i, j = np.divmod(rest, side)
    return {"stage": np.array([g.stage for g in groups])[group],
            "sublayer": np.array([g.kind for g in groups], dtype=object)[group],
            "map": m, "i": i, "j": j, "placement": placement, "unit": unit, "group": group}


def _grid(span: int, n: int) -> list[int]:
    return [0] if n <= 1 or span <= 0 else sorted({round(span * i / (n - 1)) for i in range(n)})


class NetworkDetectors:
    def __init__(self, model: torch.nn.Module, cfg: ModelConfig, mode: str = "whole", placements: int = 1,
                 preprocess: str = "standardize", device=None):
        self.model, self.cfg, self.mode, self.preprocess = model.eval(), cfg, mode, preprocess
        self.device = device or next(model.parameters()).device
        self.groups = sublayers(cfg)      # every unit of every sublayer is a candidate
        self.units = sum(g.units for g in self.groups)
        S = cfg.input_size
        # The visible area of a top unit: the field its pooling (or, in sigmoid stages, its filter)
        # sublayer covers. LCN's normalizing windows reach further (in `small`, past the 64-pixel
        # input), and only rescale what the pooling units see.
        top = [g for g in self.groups if g.stage == self.groups[-1].stage and g.kind != "lcn"][-1]
        inside = top.inside(S)          # top units whose whole field is in the input
        self.field = top.field if len(inside) else S
        if mode == "whole" or not len(inside):
            self.positions = [(0, 0)]
        else:
            # The placements are fields of top units, spread over those inside the input.
            picks = [inside[k] for k in _grid(len(inside) - 1, placements)]
            axis = [top.field_start(i) for i in (picks if placements > 1 else [inside[len(inside) // 2]])]
            self.positions = [(y, x) for y in axis for x in axis]
        self.candidates = self.units * len(self.positions)

    def canvases(self, images: np.ndarray) -> torch.Tensor:
        """(B, S, S, C) uint8 -> (B * placements, C, S, S) network input, on the network's device."""
        x = as_float(images, self.device)
        S = self.cfg.input_size
        if self.mode == "whole":
            return preprocessed(resize(x, S), self.preprocess)
        placed = [place(x, S, self.field, y, x0) for y, x0 in self.positions]
        return preprocessed(torch.stack(placed, 1).flatten(0, 1), self.preprocess)

    @torch.no_grad()
    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """Network input (N, C, S, S) -> every neuron's response (N, units)."""
        outs = self.model(x.to(self.device))
        return torch.cat([outs[g.stage - 1].sublayers[g.kind].flatten(1) for g in self.groups], 1)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        acts = self.responses(self.canvases(images))
        B, P = len(images), len(self.positions)
        return acts.view(B, P * self.units)                    # columns in `candidate` order

    def candidate(self, unit: int, placement: int | tuple[int, int] = 0) -> int:
        """The candidate (column of the responses) of `unit` at a placement: its index in
        `positions`, or its (y, x) image position as `describe` gives it."""
        index = placement if isinstance(placement, int) else self.positions.index(tuple(placement))
        return index * self.units + unit

    def locate(self, candidate: int) -> tuple[int, int]:
        """(unit, placement index) of a candidate: `candidate`'s inverse."""
        placement, unit = divmod(int(candidate), self.units)
        return unit, placement

    def address(self, candidate: int) -> UnitAddress:
        if not 0 <= candidate < self.candidates:
            raise IndexError(f"candidate {candidate}: this detector set has 0 to {self.candidates - 1}")
        where = addresses(self.groups, [candidate])
        return UnitAddress(*(int(where[k][0]) if k != "sublayer" else where[k][0]
                             for k in ("stage", "sublayer", "map", "i", "j", "placement")))

    def candidate_at(self, address: UnitAddress) -> int:
        """The candidate of the unit at `address`: `address`'s inverse."""
        a, start = address, 0
        for g in self.groups:
            if (g.stage, g.kind) == (a.stage, a.sublayer):
                if not (0 <= a.map < g.maps and 0 <= a.i < g.size and 0 <= a.j < g.size
                        and 0 <= a.placement < len(self.positions)):
                    raise IndexError(f"{address}: outside {g.name} ({g.maps} maps of {g.size}x{g.size}) or its "
                                     f"{len(self.positions)} placements")
                return self.candidate(start + (a.map * g.size + a.i) * g.size + a.j, a.placement)
            start += g.units
        raise IndexError(f"{address}: no sublayer {a.sublayer} at stage {a.stage}")

    def describe(self, index: int) -> dict:
        a = self.address(index)
        g = next(g for g in self.groups if (g.stage, g.kind) == (a.stage, a.sublayer))
        y, x = self.positions[a.placement]
        image = f", image at ({y},{x})" if self.mode == "field" else ""
        return {"detector": f"{a.name}{image}",
                "group": g.name, "stage": g.stage, "sublayer": g.kind, "map": a.map, "i": a.i, "j": a.j,
                "field": g.field, "placement": [y, x], "unit": self.locate(index)[0]}

    def group_ranges(self) -> dict[str, list[tuple[int, int]]]:
        """Candidate index ranges of each group (one per placement)."""
        ranges, start = {}, 0
        for g in self.groups:
            ranges[g.name] = [(p * self.units + start, p * self.units + start + g.units)
                              for p in range(len(self.positions))]
            start += g.units
        return ranges


class LinearFilterDetectors:
    """Patches of training images as linear filters on the test image resized to `size` (the top
    units' field). Filters and images are standardized; response = their dot product. Filters are
    grouped by the source set their patch came from (so that patches of face crops in the corpus
    can be told apart from patches of natural images)."""

    def __init__(self, patches: torch.Tensor, size: int, preprocess: str = "standardize",
                 groups: list[str] | None = None):
        self.filters = patches.flatten(1)                  # (K, C*size*size)
        self.size, self.preprocess = size, preprocess
        self.candidates = len(self.filters)
        self.groups = groups or ["training images"] * self.candidates

    @classmethod
    def sample(cls, images: np.ndarray, sources: list[str], size: int, seed: int = 0,
               preprocess: str = "standardize"):
        """One random size x size patch (random position) of each uint8 (S, S, C) image."""
        rng = np.random.default_rng(seed)
        order = sorted(range(len(images)), key=lambda k: sources[k])       # groups contiguous
        patches = []
        for k in order:
            S = images[k].shape[0]
            y, x = rng.integers(0, S - size + 1, size=2) if S > size else (0, 0)
            patches.append(images[k][y:y + size, x:x + size])
        p = preprocessed(as_float(np.stack(patches)), preprocess)
        p = p / p.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None, None]
        return cls(p, size, preprocess, [sources[k] for k in order])

    def to(self, device) -> "LinearFilterDetectors":
        self.filters = self.filters.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = preprocessed(resize(as_float(images, self.filters.device), self.size), self.preprocess).flatten(1)
        return x @ self.filters.T

    def describe(self, index: int) -> dict:
        return {"detector": f"linear filter {index} (a patch of {self.groups[index]})",
                "group": f"patches of {self.groups[index]}", "unit": int(index)}

    def group_ranges(self) -> dict[str, list[tuple[int, int]]]:
        ranges: dict[str, list[tuple[int, int]]] = {}
        for k, g in enumerate(self.groups):
            name = f"patches of {g}"
            if name in ranges and ranges[name][-1][1] == k:
                ranges[name][-1] = (ranges[name][-1][0], k + 1)
            else:
                ranges.setdefault(name, []).append((k, k + 1))
        return ranges


class CentroidDetectors:
    """K-means centroids of training images downsampled to `size` x `size`; response = minus the
    squared distance of the (equally downsampled, standardized) test image to the centroid."""

    def __init__(self, centroids: torch.Tensor, size: int, preprocess: str = "standardize"):
        self.centroids, self.size, self.preprocess = centroids, size, preprocess
        self.sq = (centroids ** 2).sum(1)
        self.candidates = len(centroids)

    @classmethod
    def fit(cls, images: np.ndarray, k: int, size: int, seed: int = 0, preprocess: str = "standardize"):
        from sklearn.cluster import MiniBatchKMeans
        x = preprocessed(resize(as_float(images), size), preprocess).flatten(1).numpy()
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3).fit(x)
        return cls(torch.from_numpy(km.cluster_centers_).float(), size, preprocess)

    def to(self, device) -> "CentroidDetectors":
        self.centroids, self.sq = self.centroids.to(device), self.sq.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> torch.Tensor:
        x = preprocessed(resize(as_float(images, self.centroids.device), self.size), self.preprocess).flatten(1)
        return 2 * x @ self.centroids.T - self.sq[None, :] - (x ** 2).sum(1, keepdim=True)

    def describe(self, index: int) -> dict:
        return {"detector": f"centroid {index}", "group": "k-means", "unit": int(index)}

    def group_ranges(self) -> dict[str, list[tuple[int, int]]]:
        return {"k-means": [(0, self.candidates)]}
