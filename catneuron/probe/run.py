"""`catneuron probe RUN`: the paper's selectivity analysis of a trained network and its baselines.

For each test set (faces, cat faces, bodies, or --positives/--negatives) and each detector set —
the trained network (per mode), the same architecture at its initialization, linear filters
(training-corpus patches), K-means centroids, and other trained runs to compare (e.g. without LCN,
on the face-free control corpus) — it reports:

  paper      the best candidate over the whole test set and its accuracy at the best of 20
             thresholds ("response above threshold = positive"), as the paper selected and reported;
  held-out   the candidate and threshold selected on the validation half, and its accuracy (and AUC)
             on the other half, whose labels were not used to choose anything (the threshold grid
             spans the responses over both halves; that uses no label);
  AUC        of the paper's candidate and the best AUC of any candidate;
and the same per sublayer (stage/filter, stage/pool, stage/lcn) for networks.

Stages are cached in RUN/probe/stages/*.json (and the selected candidates' responses in *.npz), so
an interrupted probe resumes and adding a comparison run only scores what is new.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from catneuron.config import Config
from catneuron.files import replacing, write_json
from catneuron.data.images import decode, fit_square
from catneuron.data.loader import PYTHON_DATA
from catneuron.data.sources import count_records, data_root, iter_records, resolve_all
from catneuron.errors import CatneuronError, ConfigError, DataError
from catneuron.nn.autoencoder import DeepSparseAutoencoder, random_baseline
from catneuron.probe import calibration, testsets
from catneuron.probe.detectors import CentroidDetectors, LinearFilterDetectors, NetworkDetectors, SetKey
from catneuron.probe.selectivity import StreamingScorer, accuracy_at, exact_auc
from catneuron.progress import heartbeat, progress as progress_bar
from catneuron.provenance import code_version
from catneuron.rundir import RunDir
from catneuron.train.checkpoint import load_model, model_config, weights_file

log = logging.getLogger(__name__)


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def score(det, ts: testsets.TestSet, batch_size: int = 100, progress: bool = True, desc: str = "") -> tuple[dict, dict]:
    """Score every candidate of `det` on `ts`; returns (results, arrays): the responses of the selected
    candidates (by candidate id) and every candidate's paper-protocol accuracy and AUC ("_accuracy",
    "_auc", for the explorer's unit table)."""
    n, labels = len(ts.labels), torch.from_numpy(ts.labels)
    # Class ids: validation negative/positive = 0/1, held-out negative/positive = 2/3.
    ids = torch.from_numpy(ts.labels.astype(np.int64) + 2 * (~ts.val))
    scorer = StreamingScorer(det.candidates, classes=4)
    bar = progress_bar(total=2 * n, unit="img", desc=desc, enabled=progress, leave=False)
    for stage in ("range", "histogram"):
        for sl in _batches(n, batch_size):
            acts = det(ts.images[sl])
            if stage == "range":
                scorer.observe_range(acts)
            else:
                scorer.observe(acts, ids[sl])
            bar.update(sl.stop - sl.start)
    bar.close()
    fs, vs = scorer.scores((1, 3), (0, 2)), scorer.scores((1,), (0,))

    ranges = det.group_ranges()
    picks = {"paper": int(fs.accuracy.argmax()), "auc": int(fs.auc.argmax()), "heldout": int(vs.accuracy.argmax())}
    for name, spans in ranges.items():
        idx = torch.cat([torch.arange(a, b) for a, b in spans])
        picks[f"{name}|paper"] = int(idx[fs.accuracy[idx].argmax()])
        picks[f"{name}|heldout"] = int(idx[vs.accuracy[idx].argmax()])
    chosen = sorted(set(picks.values()))
    responses = np.concatenate([det(ts.images[sl])[:, chosen].cpu().numpy() for sl in _batches(n, batch_size)])
    column = {c: responses[:, k] for k, c in enumerate(chosen)}

    test = ~ts.val

    def paper(c):
        return {**det.describe(c), "accuracy": float(fs.accuracy[c]), "accuracy_either": float(fs.accuracy_either[c]),
                "auc": exact_auc(torch.from_numpy(column[c]), labels),
                "threshold": float(fs.threshold[c])}

    def heldout(c):
        r = torch.from_numpy(column[c][test])
        y = labels[torch.from_numpy(test)]
        return {**det.describe(c), "val_accuracy": float(vs.accuracy[c]), "threshold": float(vs.threshold[c]),
                "accuracy": accuracy_at(r, y, float(vs.threshold[c])), "auc": exact_auc(r, y)}

    results = {
        "candidates": det.candidates, "positives": fs.positives, "negatives": fs.negatives,
        "all_negative": fs.all_negative, "test_all_negative": float(1 - ts.labels[test].mean()),
        "paper": paper(picks["paper"]), "best_auc": paper(picks["auc"]), "heldout": heldout(picks["heldout"]),
        "groups": {name: {"paper": paper(picks[f"{name}|paper"]), "heldout": heldout(picks[f"{name}|heldout"])}
                   for name in ranges},
    }
    return results, {**{str(c): column[c] for c in chosen}, "_accuracy": fs.accuracy.numpy(), "_auc": fs.auc.numpy()}


@dataclass
class Detectors:
    key: str           # file-name-safe identifier
    label: str         # row label in the report
    make: callable     # () -> detector
    kind: str          # network | baseline
    signature: dict    # everything the scores depend on besides the test set (cache key)


def _weights_id(run: Path) -> str:
    """Identifies a run's weights without reading them: which file in the run, its size and time.
    Not where the run lies: a run moved or copied with its times (cp -p) keeps its scores."""
    path = weights_file(run)
    st = path.stat()
    return f"{path.relative_to(run).as_posix()}:{st.st_size}:{st.st_mtime_ns}"


# `--compare` names for the paper's training controls and its sigmoid-autoencoder baseline.
COMPARE_LABELS = {"control": "network trained on the face-free control corpus",
                  "nolcn": "network trained without LCN",
                  "sigmoid": "deep autoencoder of the same connectivity with sigmoids"}


def training_sources(cfg: Config) -> list:
    """The run's training data, for what is drawn from it (baselines, galleries); a run trained on
    data given in Python has none on disk, and is told how to name some."""
    if any(spec.startswith(PYTHON_DATA) for spec in cfg.data.train):
        raise DataError(f"data.train = {cfg.data.train[0]} (trained from Python): the linear-filter and K-means "
                        f"baselines and the galleries draw training images; name them with --set data.train=FOLDER, "
                        f"or skip the baselines with --set probe.linear_filters=0 --set probe.kmeans_centroids=0")
    return resolve_all(cfg.data.train, cfg.data.root)


def training_sample(cfg: Config, count: int, seed: int, distinct: bool = False) -> tuple[np.ndarray, list[str]]:
    """`count` training images (a seeded random subset of the corpus, each image at most
    ceil(count / corpus size) times; with `distinct`, once, and fewer when the corpus is smaller) at
    the input size, and the source set of each."""
    sources = training_sources(cfg)
    total = count_records(sources)
    if distinct and count > total:
        log.warning("the training data hold %s images, fewer than the %s asked for: using each once",
                    f"{total:,}", f"{count:,}")
        count = total
    repeats = -(-count // max(1, total))
    picks = np.random.default_rng(seed).permutation(np.tile(np.arange(total), repeats))[:count]
    wanted = np.bincount(picks, minlength=total)
    images, names = [], []
    for index, (rec, spec) in enumerate(iter_records(sources)):
        if not wanted[index]:
            continue
        try:
            size = cfg.model.input_size
            img = fit_square(decode(rec.require_image(), rec.origin, size), size, cfg.model.channels)
        except DataError:
            continue
        name = rec.meta().get("source_set", spec) if "json" in rec.files else spec
        images += [img] * int(wanted[index])
        names += [name] * int(wanted[index])
    if not images:
        raise DataError(f"data.train ({', '.join(cfg.data.train)}): no readable training image for the baselines "
                        f"(linear filters, K-means)")
    return np.stack(images), names


class BaselineSizes(NamedTuple):
    """What the baselines can be given the corpus: K-means is fitted on distinct images only (a
    copy adds nothing to it) and has at most one centroid per image; linear filters are patches at
    random places, so an image gives as many as it has places (one when the patch is the image)."""
    linear_filters: int
    kmeans_images: int
    kmeans_centroids: int

    corpus: int

    @classmethod
    def of(cls, p, corpus: int, places: int) -> "BaselineSizes":
        images = min(p.kmeans_images, corpus)
        return cls(min(p.linear_filters, corpus * places), images, min(p.kmeans_centroids, images), corpus)

    def say(self, p, *keys: str) -> None:
        """Log each of `keys` the data made smaller than its setting (when its baseline is computed)."""
        for key in keys:
            want, have = getattr(p, key), getattr(self, key)
            if have < want:
                log.info("probe.%s = %s, but the training data (%s images) allow %s: using %s",
                         key, f"{want:,}", f"{self.corpus:,}", f"{have:,}", f"{have:,}")


def detector_sets(run: Path, model, cfg: Config, compare: dict[str, Path], device) -> list[Detectors]:
    p = cfg.probe
    common = {"preprocess": cfg.data.preprocess, "placements": p.placements}
    sets = []
    for mode in p.modes:
        sets.append(Detectors(str(SetKey("trained", mode)), f"trained network ({mode})",
                              lambda mode=mode: NetworkDetectors(model, cfg.model, mode, p.placements,
                                                                 cfg.data.preprocess, device), "network",
                              {**common, "mode": mode, "weights": _weights_id(run)}))
    if p.random_weights:
        random_model = random_baseline(cfg.model)

        def random_net(mode):
            torch.manual_seed(cfg.train.seed)
            net = DeepSparseAutoencoder(random_model, device=device)
            return NetworkDetectors(net, random_model, mode, p.placements, cfg.data.preprocess, device)
        for mode in p.modes:
            sets.append(Detectors(str(SetKey("random", mode)), f"same architecture, random weights ({mode})",
                                  lambda mode=mode: random_net(mode), "network",
                                  {**common, "mode": mode, "model": dataclasses.asdict(random_model),
                                   "seed": cfg.train.seed}))
    top_field = NetworkDetectors(model, cfg.model, "field", 1, cfg.data.preprocess, device).field
    if p.linear_filters or p.kmeans_centroids:
        places = max(1, cfg.model.input_size - top_field + 1) ** 2
        n = BaselineSizes.of(p, count_records(training_sources(cfg)), places)
        corpus = {"data": cfg.data.train, "files": testsets.file_identity(cfg.data.train, data_root(cfg.data.root)),
                  "seed": p.seed, "preprocess": cfg.data.preprocess, "sample": "records"}
    if p.linear_filters:
        def linear():
            n.say(p, "linear_filters")
            patches = training_sample(cfg, n.linear_filters, p.seed + 1)
            return LinearFilterDetectors.sample(*patches, top_field, p.seed, cfg.data.preprocess).to(device)
        sets.append(Detectors("linear", f"best linear filter ({n.linear_filters:,} training patches, "
                                        f"{top_field}x{top_field})", linear, "baseline",
                              {**corpus, "filters": n.linear_filters, "size": top_field}))
    if p.kmeans_centroids:
        def kmeans():
            n.say(p, "kmeans_images", "kmeans_centroids")
            images, _ = training_sample(cfg, n.kmeans_images, p.seed + 2)
            what = f"K-means: {n.kmeans_centroids:,} centroids on {len(images):,} training images"
            with heartbeat(what):        # scikit-learn's fit reports nothing while it runs
                return CentroidDetectors.fit(images, n.kmeans_centroids, p.kmeans_size, p.seed,
                                             cfg.data.preprocess).to(device)
        sets.append(Detectors("kmeans", f"K-means ({n.kmeans_centroids:,} centroids, "
                                        f"{p.kmeans_size}x{p.kmeans_size} images)", kmeans, "baseline",
                              {**corpus, "k": n.kmeans_centroids, "size": p.kmeans_size, "images": n.kmeans_images}))
    for name, other in compare.items():
        other_cfg = model_config(other)          # its weights are loaded when its scores are needed
        mine, theirs = (cfg.model.input_size, cfg.model.channels), (other_cfg.model.input_size, other_cfg.model.channels)
        if theirs != mine:
            raise ConfigError(f"--compare {name}={other}: its network takes {theirs[0]}x{theirs[0]}x{theirs[1]} "
                              f"images, this run's {mine[0]}x{mine[0]}x{mine[1]}; compare runs of one input format")
        for mode in p.modes:
            sets.append(Detectors(str(SetKey("compare", mode, name)), f"{COMPARE_LABELS.get(name, name)} ({mode})",
                                  lambda other=other, mode=mode: _compared(other, mode, p.placements, device),
                                  "network", {**common, "mode": mode, "weights": _weights_id(other)}))
    return sets


def _compared(run: Path, mode: str, placements: int, device) -> NetworkDetectors:
    model, cfg = load_model(run, device)
    return NetworkDetectors(model, cfg.model, mode, placements, cfg.data.preprocess, device)


def tasks_of(cfg: Config, positives: list[str] | None, negatives: list[str] | None) -> list[testsets.Task]:
    if positives or negatives:
        if not (positives and negatives):
            raise ConfigError("--positives and --negatives go together")
        return [testsets.Task("custom", tuple(positives), tuple(negatives))]
    unknown = [t for t in cfg.probe.tasks if t not in testsets.BY_NAME]
    if unknown:
        raise ConfigError(f"probe.tasks: unknown test set {unknown[0]!r}; expected {', '.join(testsets.BY_NAME)}")
    if not cfg.probe.tasks:
        raise ConfigError("probe.tasks is empty; name at least one test set, or give --positives and --negatives")
    return [testsets.BY_NAME[t] for t in cfg.probe.tasks]


def read_results(run: Path) -> tuple[dict, bytes]:
    """RUN/probe/results.json parsed, and its bytes (what pictures are keyed by); a one-line error
    when it is missing or damaged, or when the run's weights changed since it was written."""
    path = RunDir(run).require_probe()
    raw = path.read_bytes()
    try:
        results = json.loads(raw)
    except ValueError:
        results = None
    if not (isinstance(results, dict) and isinstance(results.get("tasks"), dict)
            and isinstance(results.get("config"), dict) and _detector_keys_parse(results["tasks"])):
        raise CatneuronError(f"{path}: damaged (not a probe's results); run `catneuron probe {run}` again")
    require_current(run, results)
    return results, raw


def _detector_keys_parse(tasks: dict) -> bool:
    try:
        for task in tasks.values():
            for key in task["detectors"]:
                SetKey.parse(key)
    except (ValueError, TypeError, KeyError, AttributeError):
        return False
    return True


def require_current(run: Path, results: dict) -> None:
    """A CatneuronError when the run's weights are not those its results.json was scored with
    (trained further since): pictures and pages drawn from both would mix two networks."""
    now = _weights_id(run)
    for task in results.get("tasks", {}).values():
        for key, d in task.get("detectors", {}).items():
            scored = d.get("signature", {}).get("weights")
            if SetKey.parse(key).source == "trained" and scored is not None and scored != now:
                raise CatneuronError(f"{run}: its weights changed since it was probed (trained further?); run "
                                     f"`catneuron probe {run}` again")


def _cached_stage(path: Path) -> dict | None:
    """A stage's cached scores, or None when missing or damaged (then it is scored again)."""
    try:
        cached = json.loads(path.read_text())
        return cached if isinstance(cached, dict) and path.with_suffix(".npz").exists() else None
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as err:
        log.warning("%s is damaged (%s): scoring it again", path, err)
        return None


def probe(run: str | Path, cfg: Config | None = None, compare: dict[str, str] | None = None,
          positives: list[str] | None = None, negatives: list[str] | None = None, device="cpu",
          progress: bool = True, force: bool = False) -> dict:
    """Score the run and its baselines on every test set; writes RUN/probe/results.json.

    1. the run's network (its own model settings, whatever the command line says);
    2. the detector sets: the network per mode, random weights, linear filters, K-means, compared runs;
    3. per task, the test set (built once, cached by its sources' files) and its calibration:
       the supervised ceiling and the low-level giveaway check (cached beside it);
    4. per (task, detector set), the scores: read back from RUN/probe/stages when their signature
       matches, else scored (two passes over the set) and written there;
    5. everything, with config and code version, in results.json; per task also its floor (the
       best unit of random weights per stage, the first stage, linear filters, K-means).
    """
    run = Path(run)
    model, run_cfg = load_model(run, device)                                       # 1
    # the network as trained; the caller's config is not changed
    cfg = dataclasses.replace(cfg or run_cfg, model=run_cfg.model, train=run_cfg.train)
    rundir = RunDir(run)
    rundir.score_cache.mkdir(parents=True, exist_ok=True)
    compare_paths = {k: Path(v) for k, v in (compare or {}).items()}
    sets = detector_sets(run, model, cfg, compare_paths, device)                   # 2
    results = {"run": str(run), "code_version": code_version(), "config": cfg.to_dict(),
               "compare": {k: str(v) for k, v in compare_paths.items()}, "tasks": {}}
    for task in tasks_of(cfg, positives, negatives):
        ts = testsets.build(task, cfg.model.input_size, cfg.model.channels, cfg.data.root, cfg.probe.seed,
                            max_positives=cfg.probe.max_positives or None)        # 3
        log.info("%s", ts.describe())
        entry = {"set": {**ts.meta, "positive_sources": ts.meta["positives"], "negative_sources": ts.meta["negatives"],
                         "positives": int(ts.labels.sum()), "negatives": int((~ts.labels).sum()),
                         "all_negative": ts.all_negative, "validation": int(ts.val.sum())}, "detectors": {}}
        if cfg.probe.calibrate:
            entry["calibration"] = calibration.calibrate(ts, cfg.probe.seed, cfg.probe.ceiling_steps)
        for d in sets:                                                             # 4
            entry["detectors"][d.key] = _scored(d, task, ts, rundir.scores(task.name, d.key, ".json"),
                                                cfg.probe.batch_size, force, progress)
        entry["floor"] = calibration.floor(entry)
        results["tasks"][task.name] = entry
    write_json(rundir.results, results)                                           # 5
    return results


def _scored(d: Detectors, task: testsets.Task, ts: testsets.TestSet, path: Path, batch_size: int, force: bool,
            progress: bool) -> dict:
    """The scores of one detector set on one test set: cached at `path` (and the selected
    candidates' responses beside it, .npz) under a signature of everything they depend on."""
    signature = json.loads(json.dumps({**d.signature, "test_set": ts.meta, "size": len(ts.labels)}))
    cached = None if force else _cached_stage(path)
    if cached is not None and cached.get("signature") == signature:
        return cached
    start = time.perf_counter()
    res, responses = score(d.make(), ts, batch_size, progress, f"{task.name}: {d.label}")
    res.update({"label": d.label, "kind": d.kind, "seconds": round(time.perf_counter() - start, 1),
                "signature": signature})
    with replacing(path.with_suffix(".npz"), suffix=".tmp.npz") as tmp:
        np.savez(tmp, **responses)
    write_json(path, res)
    log.info("%s, %s: best %.1f %% (held-out %.1f %%, AUC %.3f) in %.0f s", task.name, d.label,
             100 * res["paper"]["accuracy"], 100 * res["heldout"]["accuracy"], res["paper"]["auc"], res["seconds"])
    return res
