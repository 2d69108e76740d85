"""`catneuron visualize RUN`: the pictures of the best neurons the probe found.

For each test set: the best trained neuron's response histogram (balanced), its top 48 test
stimuli, and its optimal stimulus (plain and regularized); for faces also the invariance curves;
the filter galleries (stage 1 beside its initialization, every stage's top patches beside random
weights') and the training curves (catneuron.probe.filters); and the concept scan. Writes
RUN/probe/pictures/: the PNGs and their index, index.json, which names the results.json they were
drawn from (`results_sha256`). The folder is drawn under a temporary name and swapped in whole, so
a killed visualize leaves the previous pictures or the new ones, never a mix.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from catneuron.config import Config
from catneuron.files import read_context, read_jsonl, replacing, replacing_dir, safe_name, write_json
from catneuron.data.sources import data_root, iter_records, resolve_all
from catneuron.data.images import decode, fit_inside
from catneuron.data.preprocess import to_tensor
from catneuron.errors import CatneuronError
from catneuron.nn.autoencoder import DeepSparseAutoencoder, random_baseline
from catneuron.probe import testsets
from catneuron.probe.concepts import load_concepts, scan
from catneuron.probe.detectors import NetworkDetectors, SetKey
from catneuron.nn.structure import summary as structure_summary
from catneuron.probe.filters import galleries, training_curves_png
from catneuron.probe.invariance import UnitOnField, curves_pngs, head_turn_frames, orl_png, rotation_png, \
    scale_translation_curves
from catneuron.probe.optvis import blur, input_norm, jitter, optimal_stimulus, unit
from catneuron.probe.run import read_results, tasks_of, training_sample
from catneuron.probe.drawing import grid_png, histogram_png, to_image
from catneuron.rundir import RunDir
from catneuron.train.checkpoint import load_model

log = logging.getLogger(__name__)


def best_trained(task_results: dict) -> tuple[str, dict]:
    """(detector key, paper result) of the trained network's best neuron over its modes."""
    trained = {k: v for k, v in task_results["detectors"].items() if SetKey.parse(k).source == "trained"}
    if not trained:
        raise CatneuronError("the probe results hold no trained-network scores; run `catneuron probe` first")
    key = max(trained, key=lambda k: trained[k]["paper"]["accuracy"])
    return key, trained[key]["paper"]


def _write(folder: Path, name: str, data: bytes) -> str:
    path = folder / f"{name}.png"
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return path.name


def _load_set(spec: str, root, size: int, limit: int | None = None) -> np.ndarray:
    records = [r for r, _ in iter_records(resolve_all([spec], data_root(root)))][:limit]
    return np.stack([fit_inside(decode(r.require_image(), r.origin), size) for r in records])


def visualize(run: str | Path, cfg: Config | None = None, steps: int = 200, concepts: bool = True,
              positives: list[str] | None = None, negatives: list[str] | None = None, device="cpu",
              concept_images: int | None = None) -> dict:
    """`concept_images` caps the images per concept in the scan (default: all)."""
    run = Path(run)
    results, raw = read_results(run)
    model, run_cfg = load_model(run, device)
    cfg = dataclasses.replace(cfg or run_cfg, model=run_cfg.model)    # as trained; the caller's config unchanged
    asked = [t.name for t in tasks_of(cfg, positives, negatives)]
    if not set(asked) & set(results["tasks"]):
        raise CatneuronError(f"{run}: probed on {', '.join(results['tasks'])}, not on {', '.join(asked)}; draw what "
                             f"the probe scored (its probe.tasks, or its --positives and --negatives)")
    rundir = RunDir(run)
    with replacing_dir(rundir.pictures) as folder:
        out = _draw(run, results, folder, model, cfg, steps, concepts, positives, negatives, device, concept_images)
        out["results_sha256"] = hashlib.sha256(raw).hexdigest()
        write_json(folder / rundir.pictures_index.name, out)
    return out


def _draw(run, results, folder, model, cfg, steps, concepts, positives, negatives, device, concept_images) -> dict:
    S, C, pre = cfg.model.input_size, cfg.model.channels, cfg.data.preprocess
    out = {"tasks": {}}
    for task in tasks_of(cfg, positives, negatives):
        if task.name not in results["tasks"]:
            continue
        key, best = best_trained(results["tasks"][task.name])
        mode = SetKey.parse(key).mode
        det = NetworkDetectors(model, cfg.model, mode, cfg.probe.placements, pre, device)
        candidate = det.candidate(best["unit"], best["placement"])
        ts = testsets.rebuild(task, results["tasks"][task.name]["set"], S, C, cfg.data.root, cfg.probe.seed,
                              max_positives=cfg.probe.max_positives or None)
        responses = np.load(RunDir(run).scores(task.name, key))[str(candidate)]
        name = safe_name(task.name)
        pics = {"neuron": best, "mode": mode}
        pics["samples"] = _write(folder, f"{name}-samples", grid_png(
            list(ts.images[testsets.sample_indices(ts, 32, cfg.probe.seed)]), 8,
            f"{task.name} ({task.construction}): 32 positives, then 32 distractors"))
        pics["histogram"] = _write(folder, f"{name}-histogram", histogram_png(
            responses[ts.labels], responses[~ts.labels], f"{best['detector']}: {100 * best['accuracy']:.1f} %",
            task.name, cfg.probe.seed, best["threshold"]))
        order = np.argsort(-responses)[:48]
        pics["top_stimuli"] = _write(folder, f"{name}-top48", grid_png(
            [ts.images[i] for i in order], 8, f"top 48 test stimuli ({int(ts.labels[order].sum())} positives)"))
        pics["top_positive_fraction"] = float(ts.labels[order].mean())
        f = unit(det, candidate)
        norm = input_norm(det, ts.images[:200])
        # Plain ascent from a random start and from the top test stimulus (the better is kept: the
        # response is not concave, and a random start may end in a poorer local optimum); the
        # regularized one from the random start.
        top_input = det.canvases(ts.images[order[:1]])[det.positions.index(tuple(best["placement"]))]
        plain = max((optimal_stimulus(f, (C, S, S), steps=steps, seed=cfg.probe.seed, norm=norm, start=start)
                     for start in (None, top_input)), key=lambda o: o.response)
        regularized = optimal_stimulus(f, (C, S, S), steps=steps, seed=cfg.probe.seed, transforms=[jitter(2)],
                                       after_step=[blur(0.5)], norm=norm)
        stimuli = [(to_image(o.image), o) for o in (plain, regularized)]
        pics["optimal"] = _write(folder, f"{name}-optimal", grid_png(
            [s for s, _ in stimuli], 2, "optimal stimulus: plain / regularized (jitter, blur)", scale=2.2))
        pics["optimal_norm"] = norm
        pics["optimal_response"] = [o.response for _, o in stimuli]
        pics["optimal_start_response"] = [o.start_response for _, o in stimuli]
        pics["max_test_response"] = float(responses.max())
        if task.name == "faces":
            # Scale and translation curves start from faces centred in the frame: the aligned crops.
            aligned = testsets.build(testsets.BY_NAME["faces-aligned"], S, C, cfg.data.root, cfg.probe.seed,
                                     max_positives=cfg.probe.max_positives or None)
            pics.update(_invariance(folder, det, candidate, aligned, ts, cfg, pre))
        out["tasks"][task.name] = pics
        log.info("pictures for %s: %s", task.name, best["detector"])
    out["filters"] = _filters(folder, run, model, cfg, device)
    if concepts:
        det = NetworkDetectors(model, cfg.model, "whole", 1, pre, device)
        out["concepts"] = scan(det, load_concepts(S, cfg.data.root, seed=cfg.probe.seed, per_class=concept_images))
    return out


def read_index(run: Path) -> dict | None:
    """The pictures' index when they were drawn from the run's current results.json, else None."""
    rundir = RunDir(run)
    index, results = rundir.pictures_index, rundir.results
    if not index.exists() or not results.exists():
        return None
    pictures = read_context(index)         # damaged: drawn again, as when stale
    current = hashlib.sha256(results.read_bytes()).hexdigest()
    return pictures if pictures and pictures.get("results_sha256") == current else None


FILTER_IMAGES = 2000        # training images the top-patch galleries are drawn from


def _filters(folder: Path, run: Path, model, cfg: Config, device) -> dict:
    """Filter galleries of the trained network and of its initialization, and the training curves."""
    torch.manual_seed(cfg.train.seed)            # the initialization training started from
    init = DeepSparseAutoencoder(cfg.model, device=device).eval()
    torch.manual_seed(cfg.train.seed)
    random = DeepSparseAutoencoder(random_baseline(cfg.model), device=device).eval()
    images, _ = training_sample(cfg, FILTER_IMAGES, cfg.probe.seed + 3, distinct=True)
    x = to_tensor(images, cfg.data.preprocess, device)
    pics = {name: _write(folder, f"filters-{name}", data)
            for name, data in galleries(model, init, random, x).items()}
    pics["structure"] = {f"stage{k}": {"trained": structure_summary(st.encoder.weight),
                                       "init": structure_summary(st0.encoder.weight)}
                         for k, (st, st0) in enumerate(zip(model.stages, init.stages), start=1)}
    metrics = RunDir(run).metrics
    if metrics.exists():
        rows = read_jsonl(metrics)
        curves = training_curves_png(rows)
        if curves is not None:
            pics["training_curves"] = _write(folder, "training-curves", curves)
    return pics


def _invariance(folder: Path, det, candidate, aligned, ts, cfg, pre) -> dict:
    """Scale and translation curves of 10 held-out `aligned` faces, head turns, and ORL's posed faces
    against the test set `ts`."""
    probe = UnitOnField(det, candidate, pre)
    rng = np.random.default_rng(cfg.probe.seed)
    held_out_faces = np.flatnonzero(aligned.labels & ~aligned.val)
    faces = aligned.images[rng.choice(held_out_faces, min(10, len(held_out_faces)), replace=False)]
    curves = scale_translation_curves(probe, faces)
    pngs = curves_pngs(curves)
    pics = {"invariance": curves, "scale": _write(folder, "faces-scale", pngs["scale"]),
            "translation": _write(folder, "faces-translation", pngs["translation"])}
    root = data_root(cfg.data.root)
    head_pose = root / "videos" / "head-pose" if root else None
    if head_pose is not None and head_pose.is_dir():
        clips = head_turn_frames(head_pose, cfg.model.input_size)
        if clips:
            image, data = rotation_png(probe, clips)
            pics["rotation"], pics["rotation_data"] = _write(folder, "faces-rotation", image), data
    try:
        orl = _load_set("orl/all", cfg.data.root, cfg.model.input_size)
        image, data = orl_png(probe, orl, ts.images[ts.labels][:500], ts.images[~ts.labels][:500])
        pics["orl"], pics["orl_data"] = _write(folder, "faces-orl", image), data
    except CatneuronError as err:
        log.info("no ORL comparison: %s", err)
    return pics
