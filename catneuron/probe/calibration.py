"""What a test set can show, measured on the test set alone, before any trained network is judged on it.

A single-neuron test shows a face detector only between two bounds:

  ceiling   a small supervised CNN trained on the validation half scores the held-out half: the
            positives must stay plainly recognizable (the paper's faces are; ≥ 95 %);
  giveaway  a classifier on low-level statistics only — colour histogram, mean and contrast,
            sharpness, JPEG blocking, border pixels — trained and scored the same way: it should
            be near all-negative guessing. If it is not, the construction leaves a cue that a unit
            can use without seeing the object (a resolution, colour or border difference);
  floor     what needs no learning, from the probe's own detector sets: the best unit of the same
            network with random weights (per stage), the best first-stage unit, the best linear
            filter and K-means centroid — beside the paper's 67 / 71 / 74 (`floor`).

Ceiling and giveaway are cached beside the test set (keyed by its cache key).
"""
from __future__ import annotations

import json
import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from catneuron.files import write_json
from catneuron.probe.detectors import SetKey
from catneuron.probe.scenes import laplacian, luminance
from catneuron.probe.testsets import TestSet, as_float, cache_dir, resize
from catneuron.progress import heartbeat

log = logging.getLogger(__name__)

CALIBRATION_VERSION = 2
PAPER_FLOOR = {"random_best": 0.67, "stage1_best": 0.71, "linear_best": 0.74}


# ---------------------------------------------------------------- giveaway: low-level statistics

def low_level_features(images: np.ndarray) -> np.ndarray:
    """uint8 (N, S, S, C) -> float (N, F): statistics that say nothing about what is pictured.

    colour: an 8-bin histogram of each channel and of the luminance, each channel's mean and
    standard deviation; contrast: RMS contrast and the 5/50/95th luminance percentiles;
    sharpness: mean absolute Laplacian, mean gradient magnitude, and the share of spectral power
    above a quarter of the sampling rate; JPEG: the mean step across 8-pixel block boundaries
    over the mean step elsewhere, per axis; borders: mean and standard deviation of each channel
    in the outer 4 pixels, and their luminance step to the next 4 pixels in."""
    x = images.astype(np.float64)
    lum = luminance(x)
    n, S = len(x), x.shape[1]
    feats = []
    for c in list(np.moveaxis(x, -1, 0)) + [lum]:
        feats.append(np.stack([np.histogram(im, bins=8, range=(0, 256))[0] for im in c]) / (S * S))
    feats += [x.mean((1, 2)), x.std((1, 2)), lum.std((1, 2))[:, None] / (lum.mean((1, 2))[:, None] + 1),
              np.percentile(lum.reshape(n, -1), [5, 50, 95], axis=1).T]
    lap = laplacian(lum)
    gy, gx = np.diff(lum, axis=1)[:, :, :-1], np.diff(lum, axis=2)[:, :-1, :]
    power = np.abs(np.fft.fft2(lum - lum.mean((1, 2), keepdims=True))) ** 2
    f = np.abs(np.fft.fftfreq(S))
    high = (np.maximum(f[:, None], f[None, :]) > 0.25)
    feats += [np.abs(lap).mean((1, 2))[:, None], np.hypot(gy, gx).mean((1, 2))[:, None],
              (power[:, high].sum(1) / (power.sum((1, 2)) + 1e-9))[:, None]]
    for axis in (1, 2):
        step = np.abs(np.diff(lum, axis=axis)).mean(3 - axis)        # (N, S-1): mean step at each offset
        at_block = (np.arange(S - 1) % 8) == 7
        feats.append((step[:, at_block].mean(1) / (step[:, ~at_block].mean(1) + 1e-9))[:, None])
    ring = np.ones((S, S), bool)
    ring[4:-4, 4:-4] = False
    inner = np.zeros((S, S), bool)
    inner[4:-4, 4:-4] = True
    inner[8:-8, 8:-8] = False
    feats += [x[:, ring].mean(1), x[:, ring].std(1), (lum[:, ring].mean(1) - lum[:, inner].mean(1))[:, None]]
    return np.concatenate([np.asarray(f, np.float64).reshape(n, -1) for f in feats], 1)


def giveaway(ts: TestSet, seed: int = 0) -> float:
    """Held-out accuracy of gradient-boosted trees on `low_level_features`, fitted on the
    validation half (a non-linear classifier: a stricter check than a linear one)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    feats = low_level_features(ts.images)
    clf = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    clf.fit(feats[ts.val], ts.labels[ts.val])
    return float((clf.predict(feats[~ts.val]) == ts.labels[~ts.val]).mean())


# ---------------------------------------------------------------- ceiling: a small supervised CNN

CEILING_SIDE = 64          # images are seen at this size (faces stay recognizable; a CPU trains it in seconds)


class SmallCNN(nn.Module):
    """(B, C, 64, 64) -> (B,) logit: four 3x3 conv + batch norm + ReLU blocks (16, 32, 64, 64 maps),
    max pooling after the first three, global average pooling, one linear unit."""

    def __init__(self, channels: int = 3):
        super().__init__()
        layers, c_in = [], channels
        for k, c_out in enumerate((16, 32, 64, 64)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
            if k < 3:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3))).squeeze(1)


def _inputs(images: np.ndarray) -> torch.Tensor:
    x = resize(as_float(images), CEILING_SIDE)
    return (x - x.mean((1, 2, 3), keepdim=True)) / (x.std((1, 2, 3), keepdim=True) + 1e-3)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random mirror and shift by up to 4 pixels (reflected borders)."""
    flip = torch.rand(len(x), generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = torch.randint(-4, 5, (2,), generator=gen).tolist()
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    return padded[:, :, 4 + dy:4 + dy + x.shape[2], 4 + dx:4 + dx + x.shape[3]]


def ceiling(ts: TestSet, steps: int = 900, seed: int = 0) -> float:
    """Held-out accuracy of `SmallCNN` trained (Adam, one-cycle rate, class-balanced loss, batches of
    64) for `steps` steps on the validation half. A fixed number of steps rather than of epochs:
    the small sets (bodies: 1,300 training images) need as many updates as the large ones."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x, y = _inputs(ts.images), torch.from_numpy(ts.labels).float()
    train, test = torch.from_numpy(ts.val), torch.from_numpy(~ts.val)
    xt, yt = x[train], y[train]
    net = SmallCNN(x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    pos_weight = (1 - yt.mean()) / yt.mean().clamp_min(1e-6)
    net.train()
    step = 0
    while step < steps:
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(xt), 64):
            if step == steps:
                break
            idx = order[start:start + 64]
            loss = F.binary_cross_entropy_with_logits(net(_augment(xt[idx], gen)), yt[idx], pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[test][s:s + 256]) for s in range(0, int(test.sum()), 256)])
    return float(((logits > 0) == y[test].bool()).float().mean())


# ---------------------------------------------------------------- the whole calibration of a set

def calibrate(ts: TestSet, seed: int = 0, ceiling_steps: int = 900, use_cache: bool = True) -> dict:
    """Ceiling and giveaway of a test set (accuracy on its held-out half) with its held-out
    all-negative rate; cached beside the set."""
    path = cache_dir() / f"{ts.meta.get('key', ts.name)}-calibration-v{CALIBRATION_VERSION}-{seed}-{ceiling_steps}.json"
    if use_cache and path.exists():
        try:
            return json.loads(path.read_text())
        except ValueError:
            log.warning("%s is damaged: calibrating again", path)
    with heartbeat(f"{ts.name}: calibrating (ceiling CNN and low-level giveaway check)"):
        result = {"test_all_negative": float(1 - ts.labels[~ts.val].mean()), "giveaway": giveaway(ts, seed),
                  "ceiling": ceiling(ts, ceiling_steps, seed=seed), "version": CALIBRATION_VERSION,
                  "ceiling_steps": ceiling_steps}
    if use_cache and "key" in ts.meta:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, result)
    return result


def best_of(detectors: dict, source: str, group: str | None = None, name: str | None = None) -> float | None:
    """The best paper-protocol accuracy among the detector sets of `source` (detectors.SOURCES;
    of the compared run `name`, for compare) and, when given, only their sublayer groups starting
    with `group`; None when there are none."""
    vals = []
    for key, d in detectors.items():
        which = SetKey.parse(key)
        if which.source == source and name in (None, which.name):
            vals += [v["paper"]["accuracy"] for g, v in (d["groups"].items() if group else [("", d)])
                     if not group or g.startswith(group)]
    return max(vals) if vals else None


def floor(task: dict) -> dict:
    """From one task's probe results: the best unit (paper protocol) of the random-weight network
    per stage and overall, the trained network's best stage-1 unit, the best linear filter and
    K-means centroid (fractions; None where that detector set was not scored)."""
    dets = task["detectors"]
    stages = sorted({g.split("/")[0] for k, d in dets.items() if SetKey.parse(k).source == "random"
                     for g in d["groups"]})
    return {"all_negative": task["set"]["all_negative"], "random_best": best_of(dets, "random"),
            "random_by_stage": {s: best_of(dets, "random", f"{s}/") for s in stages},
            "stage1_best": best_of(dets, "trained", "stage1/"), "linear_best": best_of(dets, "linear"),
            "kmeans_best": best_of(dets, "kmeans")}


def rows(task: dict) -> list[tuple[str, float | None, str, bool | None]]:
    """(what, accuracy, reference, target met) per line of a task's calibration, for the probe's
    printout and the report. The targets are those a face test must meet to show a face neuron:
    floor ≤ 75 %, ceiling ≥ 95 %, giveaway within 5 points of the held-out all-negative rate."""
    fl, cal = task.get("floor") or floor(task), task.get("calibration")
    out: list[tuple[str, float | None, str, bool | None]] = []
    if cal:
        out.append(("ceiling: supervised CNN, trained on the validation half", cal["ceiling"], "≥ 95",
                    cal["ceiling"] >= 0.95))
        limit = cal["test_all_negative"] + 0.05
        out.append((f"giveaway: low-level statistics only (all-negative {100 * cal['test_all_negative']:.1f})",
                    cal["giveaway"], f"≤ {100 * limit:.1f}", cal["giveaway"] <= limit))
    stages = " / ".join("–" if v is None else f"{100 * v:.1f}" for v in fl["random_by_stage"].values())
    for label, key in ((f"floor: random weights, best unit (by stage {stages})", "random_best"),
                       ("floor: trained network, best stage-1 unit", "stage1_best"),
                       ("floor: best linear filter", "linear_best"), ("floor: K-means", "kmeans_best")):
        if fl.get(key) is not None:
            paper = PAPER_FLOOR.get(key)
            ref = f"≤ 75 (paper {100 * paper:.0f})" if paper else ""
            out.append((label, fl[key], ref, fl[key] <= 0.75 if key != "kmeans_best" else None))
    return out
