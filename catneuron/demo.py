"""`catneuron demo`: the laptop reproduction end to end, resumable.

  1. the default corpus (Tiny ImageNet + 2 % face crops) and its face-free control corpus;
  2. three `small` networks with the same budget: the network itself, the same on the control
     corpus, and the same without LCN (the paper's two training controls);
  3. the probe (faces — LFW faces in scenes, the paper's test —, the aligned LFW crops, cat faces,
     bodies vs distractors, with random-weight, linear-filter, K-means, first-layer, no-LCN and
     control baselines and each test's calibration), the pictures (filter galleries and training
     curves included) and the HTML report.

Every step is skipped when its output exists (a killed demo resumes; training resumes from its
checkpoint). The budget is set in steps (`--steps`, per network); at the default the demo takes
under 30 minutes on 2 CPU cores (docs/RESULTS.md).
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from catneuron import config as C
from catneuron.data.compose import DEFAULT_MIX, DEFAULT_SIZE, compose
from catneuron.data.faces import audit, control_corpus
from catneuron.data.sources import data_root, resolve, resolve_all
from catneuron.errors import CatneuronError
from catneuron.probe.pictures import visualize
from catneuron.probe.report import report
from catneuron.probe.run import probe
from catneuron.rundir import RunDir
from catneuron.train.trainer import Trainer

log = logging.getLogger(__name__)
# The probe at the demo's budget: four test sets in whole mode, smaller baselines.
DEMO_PROBE = ['probe.tasks=["faces","faces-aligned","cat faces","bodies"]', "probe.modes=whole",
              "probe.max_positives=2000", "probe.linear_filters=5000", "probe.kmeans_centroids=300",
              "probe.kmeans_images=10000"]


def _train(cfg: C.Config, out: Path, progress: bool) -> None:
    if RunDir(out).weights.exists():
        log.info("%s: already trained", out)
        return
    if Trainer(cfg, out, resume=out.exists(), progress=progress).run().interrupted:
        # Ctrl-C / SIGTERM stopped training with a checkpoint: stop the demo too, not its next step.
        raise CatneuronError(f"interrupted while training {out} (checkpoint saved); run the demo again to resume")


def demo(out: str | Path = "runs/demo", corpus: str | Path = "corpora/default",
         control: str | Path = "corpora/control", steps: int = C.DEMO_STEPS, base: C.Config | None = None,
         workers: int = 2, progress: bool = True) -> Path:
    out, corpus, control = Path(out), Path(corpus), Path(control)
    cfg = base or C.preset("small")
    timings = {}
    start = time.perf_counter()
    if not (corpus / "manifest.json").exists():
        log.info("composing the default corpus into %s", corpus)
        if corpus.exists():
            shutil.rmtree(corpus)
        compose(list(DEFAULT_MIX), corpus, size=DEFAULT_SIZE, seed=cfg.train.seed, root=cfg.data.root,
                progress=progress)
    if not (control / "manifest.json").exists():
        log.info("removing every image with a detected face: %s", control)
        recall = audit(resolve_all(["faces-200/test"], cfg.data.root), patches=0, size=DEFAULT_SIZE,
                       workers=workers, progress=progress).image_fraction
        control_corpus([resolve(str(corpus), data_root(cfg.data.root))], control, size=DEFAULT_SIZE, workers=workers,
                       recall=recall, progress=progress)
    timings["data"] = time.perf_counter() - start

    runs = {"main": out / "main", "control": out / "control", "nolcn": out / "nolcn"}
    for name, path in runs.items():
        t = time.perf_counter()
        run_cfg = C.apply_overrides(cfg, [f"train.steps={steps}", f"train.checkpoint_every={max(1, steps // 4)}"])
        run_cfg.data.train = [str(control if name == "control" else corpus)]
        if name == "nolcn":
            run_cfg.model.lcn = False
        log.info("training %s (%d steps)", path, steps)
        _train(C.validate(run_cfg), path, progress)
        timings[f"train {name}"] = time.perf_counter() - t

    t = time.perf_counter()
    probe_cfg = C.apply_overrides(C.load_file(RunDir(runs["main"]).config), DEMO_PROBE)
    log.info("probing with %s (the defaults score both modes and larger baselines: docs/probe.md)",
             " ".join(DEMO_PROBE))
    probe(runs["main"], probe_cfg, {"control": str(runs["control"]), "nolcn": str(runs["nolcn"])},
          progress=progress)
    timings["probe"] = time.perf_counter() - t
    t = time.perf_counter()
    visualize(runs["main"], probe_cfg, steps=100)
    page = report(runs["main"], out / "report.html")
    timings["pictures and report"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    log.info("demo timings (s): %s", {k: round(v) for k, v in timings.items()})
    return page
