"""What the network learned, as pictures: filter galleries of every stage.

Rows are filter locations (an evenly spaced grid, corners included: untied filters differ by
location), columns the maps at that location.
  - Stage 1 filters are RGB patches of the input: W1 (encoder), W2 (decoder) and W1 - W1(init),
    the change training made (a filter that merely kept its random start shows noise in W1 and
    nothing in the change).
  - Stages 2-3 filters act on maps, not pixels; they are shown through the input patches that
    drive each unit most: the mean of its top-k patches (in the unit's receptive field) over a
    sample of training images. For random weights this mean is a blur; for a unit tuned to
    something, that something.
Tiles are scaled symmetrically around grey (0 = mid grey), each tile on its own scale.
"""
from __future__ import annotations

import numpy as np
import torch

from catneuron.nn.structure import sample_locations, summary
from catneuron.nn.geometry import sublayers
from catneuron.probe.drawing import grid_png


def signed_tile(w: torch.Tensor) -> np.ndarray:
    """(r, r, C) -> uint8 (r, r, 3): 0 at grey, the largest |value| at black or white."""
    a = w.detach().float().cpu()
    a = 0.5 + 0.5 * a / a.abs().max().clamp_min(1e-12)
    if a.shape[-1] != 3:
        a = a.mean(-1, keepdim=True).expand(*a.shape[:-1], 3)
    return (a.numpy() * 255).round().astype(np.uint8)


def weight_tiles(weight: torch.Tensor, per_axis: int = 3) -> list[np.ndarray]:
    """(Ho, Wo, M, r, r, C) -> the tiles of the filters at a per_axis x per_axis grid of locations,
    row by row (each row: the M maps of one location)."""
    rows, cols = sample_locations(weight.shape[:2], per_axis)
    return [signed_tile(weight[i, j, m]) for i in rows for j in cols for m in range(weight.shape[2])]


@torch.no_grad()
def top_patch_tiles(model, stage: int, x: torch.Tensor, per_axis: int = 3, top: int = 9) -> list[np.ndarray]:
    """Mean of the `top` input patches that drive each stage-`stage` (1-based) filter unit most.

    x: (N, C, S, S) network inputs (a sample of training images, preprocessed)."""
    group = next(g for g in sublayers(model.cfg) if g.stage == stage and g.kind == "filter")
    h = x
    for k, st in enumerate(model.stages, start=1):
        out = st(h)
        if k == stage:
            codes = out.filtered
            break
        h = out.normalized
    rows, cols = sample_locations(codes.shape[-2:], per_axis)
    # Fields of border units reach past the image (after LCN): pad with 0, the inputs' mean.
    pad = max(0, -group.start) + group.field
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    tiles = []
    for i in rows:
        for j in cols:
            y0, x0 = group.field_start(i) + pad, group.field_start(j) + pad
            patches = padded[:, :, y0:y0 + group.field, x0:x0 + group.field]
            for m in range(codes.shape[1]):
                best = codes[:, m, i, j].topk(min(top, len(x))).indices
                mean = patches[best].mean(0).permute(1, 2, 0)
                tiles.append(signed_tile(mean - mean.mean()))
    return tiles


def galleries(model, start, random, x: torch.Tensor, per_axis: int = 3) -> dict[str, bytes]:
    """PNG galleries: stage1 W1, W2, W1 at the start training began from and the change since
    then; and for every stage its top-patch means, trained beside `random` (the probe's random
    weights baseline, catneuron.nn.autoencoder.random_baseline)."""
    maps = model.cfg.stages[0].maps
    first, first0 = model.stages[0], start.stages[0]
    pngs = {}
    for name, w, what in (("stage1-encoder", first.encoder.weight, "encoder W1"),
                          ("stage1-decoder", first.decoder_weight, "decoder W2"),
                          ("stage1-change", first.encoder.weight - first0.encoder.weight, "W1 - W1(init)"),
                          ("stage1-encoder-init", first0.encoder.weight, "encoder W1 at initialization")):
        s = summary(w)
        pngs[name] = grid_png(weight_tiles(w, per_axis), maps, f"stage 1 {what}: structure {s['structure']:.2f}, "
                              f"localization {s['localization']:.2f} (rows: locations)", scale=0.7)
    for k in range(1, len(model.stages) + 1):
        for label, net in (("", model), ("-random", random)):
            pngs[f"stage{k}-top-patches{label}"] = grid_png(
                top_patch_tiles(net, k, x, per_axis), maps,
                f"stage {k}: mean of the top 9 input patches per unit{' (random weights)' if label else ''}",
                scale=0.7)
    return pngs


def training_curves_png(rows: list[dict]) -> bytes | None:
    """metrics.jsonl rows -> one figure: per stage, relative reconstruction error, filter structure
    (encoder and decoder, with the initialization's value dashed), distance of W1 from its
    initialization, and the codes' kurtosis, against images seen."""
    from catneuron.probe.drawing import png, pyplot
    if not rows or not any("stage1/structure" in r for r in rows):
        return None
    plt = pyplot()
    stages = sorted({int(k[5:k.index("/")]) for r in rows for k in r if k.startswith("stage") and "/" in k})
    panels = [("relative_reconstruction", "reconstruction error / input energy"),
              ("structure", "W1 structure (spectral concentration)"),
              ("decoder_structure", "W2 structure"),
              ("from_init", "||W1 - W1(init)|| / ||W1(init)||"),
              ("kurtosis", "kurtosis of W1^T x (Gaussian: 3)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.0))
    for ax, (key, title) in zip(axes, panels):
        for k in stages:
            name = f"stage{k}/{key}"
            pts = [(r["images"] / 1000, r[name]) for r in rows if name in r]
            if not pts:
                continue
            line, = ax.plot(*zip(*pts), label=f"stage {k}")
            if key in ("structure", "decoder_structure") and rows[0].get(name) is not None:
                ax.axhline(rows[0][name], color=line.get_color(), ls="--", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("images seen (thousands)")
        if key == "relative_reconstruction":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return png(fig)
