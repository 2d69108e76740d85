"""What the explorer shows about one probed run, as data: the units of a detector set filtered and
sorted (`UnitRow`), one unit's scores everywhere (`ScoreRow`), and its pictures, drawn on demand
by the functions of `DRAWINGS` and cached per results and weights in RUN/probe/explore/."""
from __future__ import annotations

import hashlib
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from catneuron.files import replacing, safe_name
from catneuron.rundir import RunDir

CONCEPT_IMAGES = 20        # per Tiny ImageNet class (and 500 per test set) for the "concepts" picture
CORPUS_SAMPLE = 2000       # training images the "corpus" picture's strongest 16 are drawn from


SORTS = ("accuracy", "auc", "unit")


@dataclass(frozen=True)
class UnitFilter:
    """Which units of a detector set the table lists, and in which order."""
    stage: int | None = None
    sublayer: str | None = None
    map: int | None = None
    i: int | None = None
    j: int | None = None
    sort: str = "accuracy"        # accuracy | auc: best first; unit: in the probe's numbering
    limit: int = 50               # rows on a page
    start: int = 0                # of the sorted units, the first on the page

    @classmethod
    def from_args(cls, args) -> "UnitFilter":
        """From a query string's arguments; a ValueError names the one that is not a number."""
        def number(name):
            text = args.get(name, "").strip()
            try:
                value = int(text) if text else None
            except ValueError:
                value = -1
            if value is not None and value < 0:
                raise ValueError(f"{name} = {text!r}: expected a whole number >= 0")
            return value
        sort = args.get("sort", "accuracy")
        if sort not in SORTS:
            raise ValueError(f"sort = {sort!r}: expected one of {', '.join(SORTS)}")
        return cls(number("stage"), args.get("sublayer", "").strip() or None, number("map"), number("i"),
                   number("j"), sort, number("limit") or cls.limit, number("start") or 0)


@dataclass(frozen=True)
class UnitRow:
    candidate: int
    stage: int
    sublayer: str
    map: int
    i: int
    j: int
    accuracy: float
    auc: float
    structure: float | None       # of a filtering unit's own filter (white noise 0.23); None for the others


@dataclass(frozen=True)
class UnitTable:
    matched: int                  # units that pass the filter; `rows` holds `limit` of them from `start`
    start: int
    rows: list[UnitRow]


@dataclass(frozen=True)
class ScoreRow:
    """The same candidate number in another (test set, network detector set)."""
    task: str
    key: str
    accuracy: float
    auc: float


def _fingerprint(results: Path, run: Path) -> str:
    from catneuron.train.checkpoint import weights_file
    weights = weights_file(run).stat()
    seen = [results.read_bytes(), str(weights.st_size).encode(), str(weights.st_mtime_ns).encode()]
    return hashlib.sha256(b"\0".join(seen)).hexdigest()[:16]


class RunView:
    """One probed run: its probe's scores, its networks and test sets (each loaded once, when first
    needed), and its units' pictures."""

    def __init__(self, run: str | Path, device: str = "cpu"):
        from catneuron import config as C
        from catneuron.probe.run import read_results
        self.run = Path(run)
        self.rundir = RunDir(run)
        self.results, _ = read_results(self.run)
        self.cfg = C.from_dict(self.results["config"])     # the probe's settings, the run's network
        self.device = device
        # Pictures are drawn from these results and weights: a new probe or more training gets new ones.
        self.cache = self.rundir.explore_cache / _fingerprint(self.rundir.results, self.run)
        for stale in (p for p in self.cache.parent.glob("*") if p.is_dir() and p != self.cache):
            shutil.rmtree(stale, ignore_errors=True)
        self._lock = threading.Lock()           # one computation at a time: they share the model
        self._loading = threading.RLock()       # each network and test set is loaded once
        self._sets = None                       # the probe's detector sets, by key (not yet made)
        self._networks: dict[str, object] = {}
        self._test_sets: dict[str, object] = {}
        self._recent: dict[tuple, np.ndarray] = {}     # the last units' responses: their pictures share them
        self._corpus: np.ndarray | None = None
        self._concepts = None
        self._structure: dict[tuple[str, int], np.ndarray] = {}

    # -- what the probe scored -----------------------------------------------------------------

    def tasks(self) -> list[str]:
        return list(self.results["tasks"])

    def sets(self, task: str) -> list[str]:
        """Network detector sets of a task (the ones whose units have pages)."""
        dets = self.results["tasks"][task]["detectors"]
        return [k for k, d in dets.items() if d.get("kind") == "network"]

    def check(self, task: str, key: str | None = None, candidate: int | None = None) -> None:
        """A LookupError naming what the probe did not score: the test set, the network detector
        set on it, or the unit."""
        if task not in self.tasks():
            raise LookupError(f"no test set {task!r}; the probe scored {', '.join(self.tasks())}")
        if key is not None and key not in self.sets(task):
            raise LookupError(f"no network detector set {key!r} on {task}; expected one of "
                              f"{', '.join(self.sets(task))}")
        if candidate is not None:
            n = self.results["tasks"][task]["detectors"][key]["candidates"]
            if not 0 <= candidate < n:
                raise LookupError(f"unit {candidate} is out of range: {key} has units 0 to {n - 1:,}")

    def scores(self, task: str, key: str) -> dict[str, np.ndarray] | None:
        """Every candidate's accuracy and AUC (the probe's cache); None when the cache predates them."""
        try:
            with np.load(self.rundir.scores(task, key)) as z:
                return {"accuracy": z["_accuracy"], "auc": z["_auc"]} if "_accuracy" in z else None
        except (OSError, ValueError):
            return None

    def structure(self, key: str, stage: int) -> np.ndarray:
        """Structure score (nn.structure: spectral concentration; white noise 0.23) of every filter of
        a stage's encoder, (Ho, Wo, M)."""
        from catneuron.nn.structure import spectral_concentration
        if (key, stage) not in self._structure:
            w = self.detectors(key).model.stages[stage - 1].encoder.weight.detach().cpu()
            self._structure[key, stage] = spectral_concentration(w).numpy()
        return self._structure[key, stage]

    def unit_table(self, task: str, key: str, which: UnitFilter) -> UnitTable | None:
        """The units of `key` on `task` that pass `which`, best first; None without per-unit scores."""
        from catneuron.nn.geometry import sublayers
        from catneuron.probe.detectors import addresses
        scores = self.scores(task, key)
        if scores is None:
            return None
        groups = self.results["tasks"][task]["detectors"][key]["groups"]
        subs = [s for s in sublayers(self.cfg.model) if s.name in groups]    # a compared run may differ
        candidates = np.arange(len(scores["accuracy"]))
        where = addresses(subs, candidates)
        stage, kind, m, i, j = (where[k] for k in ("stage", "sublayer", "map", "i", "j"))
        keep = np.ones(len(candidates), bool)
        for wanted, values in ((which.stage, stage), (which.map, m), (which.i, i), (which.j, j),
                               (which.sublayer, kind)):
            if wanted is not None:
                keep &= values == wanted
        kept = candidates[keep]
        if which.sort != "unit":
            kept = kept[np.argsort(-scores[which.sort][keep], kind="stable")]
        order = kept[which.start:which.start + which.limit]

        def structure(c) -> float | None:
            return float(self.structure(key, int(stage[c]))[i[c], j[c], m[c]]) if kind[c] == "filter" else None
        rows = [UnitRow(int(c), int(stage[c]), str(kind[c]), int(m[c]), int(i[c]), int(j[c]),
                        float(scores["accuracy"][c]), float(scores["auc"][c]), structure(c)) for c in order]
        return UnitTable(int(keep.sum()), which.start, rows)

    def unit_scores(self, candidate: int) -> list[ScoreRow]:
        """The candidate's scores in every test set and network detector set that has it."""
        rows = []
        for task in self.tasks():
            for key in self.sets(task):
                s = self.scores(task, key)
                if s is not None and candidate < len(s["accuracy"]):
                    rows.append(ScoreRow(task, key, float(s["accuracy"][candidate]), float(s["auc"][candidate])))
        return rows

    # -- what is loaded on demand --------------------------------------------------------------

    def warm(self) -> None:
        """Load every test set, the first network, the corpus sample and the concept images before
        anyone asks (seconds each: LFW's folders, decoding from the corpus shards)."""
        for task in self.tasks():
            self.test_set(task)
            for key in self.sets(task)[:1]:
                self.detectors(key)
        with self._lock:
            self.corpus_sample()
            self.concept_images()

    def corpus_sample(self) -> np.ndarray:
        if self._corpus is None:
            from catneuron.probe.run import training_sample
            self._corpus = training_sample(self.cfg, CORPUS_SAMPLE, self.cfg.probe.seed + 3, distinct=True)[0]
        return self._corpus

    def concept_images(self):
        if self._concepts is None:
            from catneuron.probe.concepts import load_concepts
            cfg = self.cfg
            self._concepts = load_concepts(cfg.model.input_size, cfg.data.root, seed=cfg.probe.seed,
                                           per_class=CONCEPT_IMAGES)
        return self._concepts

    def detectors(self, key: str):
        """The NetworkDetectors of one network detector set (the run's, random weights', or a
        compared run's); only that set's network is loaded."""
        with self._loading:
            if key not in self._networks:
                if self._sets is None:
                    from catneuron.probe.run import detector_sets
                    from catneuron.train.checkpoint import load_model
                    model, cfg = load_model(self.run, self.device)
                    cfg.probe = self.cfg.probe
                    compare = {k: Path(v) for k, v in self.results.get("compare", {}).items()}
                    self._sets = {d.key: d for d in detector_sets(self.run, model, cfg, compare, self.device)}
                self._networks[key] = self._sets[key].make()
            return self._networks[key]

    def test_set(self, task: str):
        with self._loading:
            if task not in self._test_sets:
                from catneuron.probe import testsets
                cfg, meta = self.cfg, self.results["tasks"][task]["set"]
                t = testsets.BY_NAME.get(task) or testsets.Task(task, tuple(meta["positive_sources"]),
                                                                tuple(meta["negative_sources"]))
                self._test_sets[task] = testsets.rebuild(t, meta, cfg.model.input_size, cfg.model.channels,
                                                         cfg.data.root, cfg.probe.seed,
                                                         max_positives=cfg.probe.max_positives or None)
            return self._test_sets[task]

    def responses(self, task: str, key: str, candidate: int) -> np.ndarray:
        """The unit's responses to the test set's images (the last few units' are kept)."""
        if (task, key, candidate) not in self._recent:
            if len(self._recent) >= 32:
                self._recent.pop(next(iter(self._recent)))
            self._recent[task, key, candidate] = unit_responses(self.detectors(key), candidate,
                                                                self.test_set(task).images)
        return self._recent[task, key, candidate]

    def picture(self, task: str, key: str, candidate: int, what: str) -> bytes:
        """PNG of one picture (a name in PICTURES) of one unit, from the cache or drawn now."""
        draw = DRAWINGS[what]
        path = self.cache / safe_name(task) / key / f"{candidate}-{what}.png"
        if path.exists():
            return path.read_bytes()
        with self._lock:
            data = draw(self, task, key, candidate)
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp:
                tmp.write_bytes(data)
        return data


def unit_responses(det, candidate: int, images: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """One candidate's responses (N,) to uint8 images (N, S, S, C), placed as its detector set places
    them, computing only the sublayers up to the candidate's."""
    import torch
    from catneuron.probe.optvis import unit
    f, (_, placement), placements = unit(det, candidate), det.locate(candidate), len(det.positions)
    with torch.no_grad():
        return np.concatenate([f(det.canvases(images[s:s + batch_size])[placement::placements]).cpu().numpy()
                               for s in range(0, len(images), batch_size)])


# ---------------------------------------------------------------------------------------------
# A unit's pictures: (view, test set, detector set, candidate) -> PNG bytes


def _histogram(view: RunView, task: str, key: str, candidate: int) -> bytes:
    from catneuron.probe.drawing import histogram_png
    ts, r = view.test_set(task), view.responses(task, key, candidate)
    return histogram_png(r[ts.labels], r[~ts.labels], f"unit {candidate}", task)


def _top(view: RunView, task: str, key: str, candidate: int) -> bytes:
    from catneuron.probe.drawing import grid_png
    ts, r = view.test_set(task), view.responses(task, key, candidate)
    order = np.argsort(-r)[:16]
    return grid_png([ts.images[k] for k in order], 8,
                    f"16 strongest test images ({int(ts.labels[order].sum())} positives)")


def _corpus(view: RunView, task: str, key: str, candidate: int) -> bytes:
    from catneuron.probe.drawing import grid_png
    corpus = view.corpus_sample()
    r = unit_responses(view.detectors(key), candidate, corpus)
    return grid_png([corpus[k] for k in np.argsort(-r)[:16]], 8, f"16 strongest of {len(corpus):,} training images")


def _optimal(view: RunView, task: str, key: str, candidate: int) -> bytes:
    from catneuron.probe.optvis import blur, input_norm, jitter, optimal_stimulus, unit
    from catneuron.probe.drawing import grid_png, to_image
    det, ts = view.detectors(key), view.test_set(task)
    S, C = det.cfg.input_size, det.cfg.channels
    f, norm = unit(det, candidate), input_norm(det, ts.images[:100])
    plain = optimal_stimulus(f, (C, S, S), steps=60, norm=norm)
    regular = optimal_stimulus(f, (C, S, S), steps=60, norm=norm, transforms=[jitter(2)], after_step=[blur(0.5)])
    return grid_png([to_image(plain.image), to_image(regular.image)], 2,
                    f"optimal stimulus, plain {plain.response:.3g} / regularized {regular.response:.3g}", scale=2.0)


def _filter(view: RunView, task: str, key: str, candidate: int) -> bytes:
    from catneuron.probe.filters import signed_tile
    from catneuron.probe.drawing import grid_png
    det = view.detectors(key)
    info = det.describe(candidate)
    stage = det.model.stages[info["stage"] - 1]
    w1, w2 = stage.encoder.weight, stage.decoder_weight
    own = info["sublayer"] == "filter"
    i = info["i"] if own else w1.shape[0] // 2
    j = info["j"] if own else w1.shape[1] // 2
    title = (f"stage {info['stage']} encoder W1 (top) and decoder W2 at location ({i},{j})"
             + ("" if own else ", the stage's centre"))
    return grid_png([signed_tile(w[i, j, m]) for w in (w1, w2) for m in range(w1.shape[2])], w1.shape[2], title)


def _invariance(what: str):
    def draw(view: RunView, task: str, key: str, candidate: int) -> bytes:
        from catneuron.probe.invariance import UnitOnField, curves_pngs, scale_translation_curves
        det, ts = view.detectors(key), view.test_set(task)
        positives = ts.images[ts.labels][:10]
        return curves_pngs(scale_translation_curves(UnitOnField(det, candidate, det.preprocess), positives))[what]
    return draw


def _concepts(view: RunView, task: str, key: str, candidate: int) -> bytes:
    """AUC of "this concept vs all the others" for the concepts the unit responds to most."""
    import torch
    from catneuron.probe.concepts import concept_aucs
    from catneuron.probe.drawing import png, pyplot
    data = view.concept_images()
    r = unit_responses(view.detectors(key), candidate, data.images)
    auc = concept_aucs(torch.from_numpy(r)[:, None], data.concept, len(data.names))[:, 0].numpy()
    best = np.argsort(-auc)[:15][::-1]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.barh([data.names[c] for c in best], auc[best], color="#4a7")
    ax.axvline(0.5, color="#999", lw=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("AUC, this concept vs all others")
    ax.set_title(f"concepts ({len(data.names)}, {len(r):,} images)")
    return png(fig)


DRAWINGS = {"histogram": _histogram, "top": _top, "corpus": _corpus, "optimal": _optimal, "filter": _filter,
            "scale": _invariance("scale"), "translation": _invariance("translation"), "concepts": _concepts}
PICTURES = tuple(DRAWINGS)
