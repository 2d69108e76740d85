"""`catneuron explore RUN`: a local web page to browse every unit of a probed run.

    /                              the Table 1 analog per test set, training curves and filter galleries
                                   (when `catneuron visualize` drew them), and the table of units
    /?task=T&set=S&stage=&sublayer=&map=&i=&j=&sort=accuracy|auc&limit=
                                   the units of detector set S (trained-whole, random-whole,
                                   compare-control-whole, ...) on test set T, filtered and sorted:
                                   "most selective units for cat faces" is ?task=cat faces&sort=auc
    /unit/T/S/CANDIDATE            one unit (a stable URL): where it is, its accuracy and AUC on every
                                   test set in every network detector set (trained vs random weights,
                                   main vs compared runs, same candidate number), and pictures:
    /unit/T/S/CANDIDATE/P.png      P = histogram, top (its 16 strongest test images), corpus (its 16
                                   strongest of 2,000 training images), optimal (the optimal stimulus,
                                   plain), filter (its stage's W1 and W2 at its location), scale and
                                   translation (mean response to 10 positives moved on its input),
                                   concepts (its AUC for the 15 concepts, of 203, that drive it most) —
                                   computed when first asked for, then cached in RUN/probe/explore/,
                                   so the page itself answers at once.

The scores come from the probe's cache (RUN/probe/stages): every candidate's accuracy and AUC.
Served by Flask on 127.0.0.1 unless --host says otherwise.
"""
from __future__ import annotations

import hashlib
import html
import shutil
import threading
from pathlib import Path
from urllib.parse import quote, urlencode

import numpy as np

from catneuron.files import replacing, safe_name

PICTURES = ("histogram", "top", "corpus", "optimal", "filter", "scale", "translation", "concepts")
CONCEPT_IMAGES = 20        # per Tiny ImageNet class (and 500 per test set) for the "concepts" picture
CORPUS_SAMPLE = 2000       # training images the "corpus" picture's strongest 16 are drawn from
STYLE = """body{font:14px sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}a{color:#15c}
img{border:1px solid #ddd;margin:4px;min-width:120px;min-height:60px;background:#f6f6f6}
.pics{display:flex;flex-wrap:wrap}form input{width:4em}.note{color:#666}"""


def _fingerprint(results: Path, run: Path) -> str:
    from catneuron.train.checkpoint import weights_file
    weights = weights_file(run).stat()
    seen = [results.read_bytes(), str(weights.st_size).encode(), str(weights.st_mtime_ns).encode()]
    return hashlib.sha256(b"\0".join(seen)).hexdigest()[:16]


class RunView:
    """What the pages show about one run, read from its probe cache; per-unit pictures on demand."""

    def __init__(self, run: str | Path, device: str = "cpu"):
        self.run = Path(run)
        from catneuron.probe.run import read_results
        self.results, _ = read_results(self.run)
        path = self.run / "probe" / "results.json"
        from catneuron import config as C
        self.cfg = C.from_dict(self.results["config"])     # the probe's settings, the run's network
        self.device = device
        # Pictures are drawn from these results and weights: a new probe or more training gets new ones.
        self.cache = self.run / "probe" / "explore" / _fingerprint(path, self.run)
        for stale in (p for p in self.cache.parent.glob("*") if p.is_dir() and p != self.cache):
            shutil.rmtree(stale, ignore_errors=True)
        self._lock = threading.Lock()           # one computation at a time: they share the model
        self._loading = threading.RLock()       # each network and test set is loaded once
        self._networks: dict[str, object] = {}
        self._test_sets: dict[str, object] = {}
        self._recent: dict[tuple, np.ndarray] = {}     # the last units' responses: their pictures share them
        self._corpus: np.ndarray | None = None
        self._concepts = None
        self._structure: dict[tuple[str, int], np.ndarray] = {}

    def tasks(self) -> list[str]:
        return list(self.results["tasks"])

    def sets(self, task: str) -> list[str]:
        """Network detector sets of a task (the ones whose units have pages)."""
        dets = self.results["tasks"][task]["detectors"]
        return [k for k, d in dets.items() if d.get("kind") == "network"]

    def structure(self, key: str, stage: int) -> np.ndarray:
        """Structure score (nn.structure: spectral concentration; white noise 0.23) of every filter of
        a stage's encoder, (Ho, Wo, M), for the filtering units' column of the unit table."""
        from catneuron.nn.structure import spectral_concentration
        if (key, stage) not in self._structure:
            w = self.detectors(key).model.stages[stage - 1].encoder.weight.detach().cpu()
            self._structure[key, stage] = spectral_concentration(w).numpy()
        return self._structure[key, stage]

    def scores(self, task: str, key: str) -> dict[str, np.ndarray] | None:
        path = self.run / "probe" / "stages" / f"{safe_name(task)}__{key}.npz"
        try:
            with np.load(path) as z:
                return {"accuracy": z["_accuracy"], "auc": z["_auc"]} if "_accuracy" in z else None
        except (OSError, ValueError):
            return None

    def warm(self) -> None:
        """Load every test set, the first network, the corpus sample and the concept images before
        anyone asks (seconds each: LFW's folders, decoding from the corpus shards)."""
        for task in self.tasks():
            self.test_set(task)
            for key in self.sets(task)[:1]:
                self.detectors(key)
        with self._lock:
            self._corpus_sample()
            self._concept_images()

    def _corpus_sample(self) -> np.ndarray:
        if self._corpus is None:
            from catneuron.probe.run import training_sample
            self._corpus = training_sample(self.cfg, CORPUS_SAMPLE, self.cfg.probe.seed + 3)[0]
        return self._corpus

    def _concept_images(self):
        if self._concepts is None:
            from catneuron.probe.concepts import load_concepts
            cfg = self.cfg
            self._concepts = load_concepts(cfg.model.input_size, cfg.data.root, seed=cfg.probe.seed,
                                           per_class=CONCEPT_IMAGES)
        return self._concepts

    def detectors(self, key: str):
        """The NetworkDetectors of a network detector set (the run's, random weights, or a compared run)."""
        with self._loading:
            return self._detectors(key)

    def _detectors(self, key: str):
        if key not in self._networks:
            from catneuron.probe.run import detector_sets
            from catneuron.train.checkpoint import load_model
            model, cfg = load_model(self.run, self.device)
            cfg.probe = self.cfg.probe
            compare = {k: Path(v) for k, v in self.results.get("compare", {}).items()}
            by_key = {d.key: d for d in detector_sets(self.run, model, cfg, compare, self.device)}
            if key not in by_key:
                raise KeyError(key)
            self._networks[key] = by_key[key].make()
        return self._networks[key]

    def test_set(self, task: str):
        with self._loading:
            if task not in self._test_sets:
                self._test_sets[task] = self._build_test_set(task)
            return self._test_sets[task]

    def _build_test_set(self, task: str):
        from catneuron.probe import testsets
        cfg = self.cfg
        meta = self.results["tasks"][task]["set"]
        t = testsets.BY_NAME.get(task) or testsets.Task(task, tuple(meta["positive_sources"]),
                                                        tuple(meta["negative_sources"]))
        return testsets.rebuild(t, meta, cfg.model.input_size, cfg.model.channels, cfg.data.root, cfg.probe.seed,
                                max_positives=cfg.probe.max_positives or None)

    def picture(self, task: str, key: str, candidate: int, what: str) -> bytes:
        """PNG of one picture of one unit, from the cache or computed now."""
        path = self.cache / safe_name(task) / key / f"{candidate}-{what}.png"
        if path.exists():
            return path.read_bytes()
        with self._lock:
            data = self._draw(task, key, candidate, what)
            path.parent.mkdir(parents=True, exist_ok=True)
            with replacing(path) as tmp:
                tmp.write_bytes(data)
        return data

    def _responses(self, task: str, key: str, candidate: int):
        det, ts = self.detectors(key), self.test_set(task)
        if (task, key, candidate) not in self._recent:
            if len(self._recent) >= 32:
                self._recent.pop(next(iter(self._recent)))
            self._recent[task, key, candidate] = unit_responses(det, candidate, ts.images)
        return det, ts, self._recent[task, key, candidate]

    def _draw(self, task: str, key: str, candidate: int, what: str) -> bytes:
        from catneuron.probe.visualize import grid_png, histogram_png, to_image
        if what == "histogram":
            _, ts, r = self._responses(task, key, candidate)
            return histogram_png(r[ts.labels], r[~ts.labels], f"unit {candidate}", task)
        if what == "top":
            _, ts, r = self._responses(task, key, candidate)
            order = np.argsort(-r)[:16]
            return grid_png([ts.images[k] for k in order], 8,
                            f"16 strongest test images ({int(ts.labels[order].sum())} positives)")
        if what == "corpus":
            corpus = self._corpus_sample()
            r = unit_responses(self.detectors(key), candidate, corpus)
            return grid_png([corpus[k] for k in np.argsort(-r)[:16]], 8,
                            f"16 strongest of {len(corpus):,} training images")
        if what == "concepts":
            return self._concept_png(key, candidate)
        if what in ("scale", "translation"):
            from catneuron.probe.invariance import Probe, curves_pngs, scale_translation_curves
            det, ts = self.detectors(key), self.test_set(task)
            positives = ts.images[ts.labels][:10]
            return curves_pngs(scale_translation_curves(Probe(det, candidate, det.preprocess), positives))[what]
        if what == "optimal":
            from catneuron.probe.optvis import blur, input_norm, jitter, optimal_stimulus, unit
            det, ts = self.detectors(key), self.test_set(task)
            S, C = det.cfg.input_size, det.cfg.channels
            f, norm = unit(det, candidate % det.units), input_norm(det, ts.images[:100])
            plain = optimal_stimulus(f, (C, S, S), steps=60, norm=norm)
            regular = optimal_stimulus(f, (C, S, S), steps=60, norm=norm, transforms=[jitter(2)], after_step=[blur(0.5)])
            return grid_png([to_image(plain.image), to_image(regular.image)], 2,
                            f"optimal stimulus, plain {plain.response:.3g} / regularized {regular.response:.3g}",
                            scale=2.0)
        if what == "filter":
            from catneuron.probe.filters import signed_tile
            det = self.detectors(key)
            info = det.describe(candidate)
            stage = det.model.stages[info["stage"] - 1]
            w1, w2 = stage.encoder.weight, stage.decoder_weight
            own = info["sublayer"] == "filter"
            i = info["i"] if own else w1.shape[0] // 2
            j = info["j"] if own else w1.shape[1] // 2
            title = (f"stage {info['stage']} encoder W1 (top) and decoder W2 at location ({i},{j})"
                     + ("" if own else ", the stage's centre"))
            return grid_png([signed_tile(w[i, j, m]) for w in (w1, w2) for m in range(w1.shape[2])], w1.shape[2],
                            title)
        raise KeyError(what)

    def _concept_png(self, key: str, candidate: int) -> bytes:
        """AUC of "this concept vs all the others" for the concepts the unit responds to most."""
        import torch
        from catneuron.probe.concepts import concept_aucs
        from catneuron.probe.visualize import pyplot, png
        data = self._concept_images()
        r = unit_responses(self.detectors(key), candidate, data.images)
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


def unit_responses(det, candidate: int, images: np.ndarray, batch_size: int = 200) -> np.ndarray:
    """One candidate's responses (N,) to uint8 images (N, S, S, C), placed as its detector set places
    them, computing only the sublayers up to the candidate's."""
    import torch
    from catneuron.probe.optvis import unit
    f = unit(det, candidate % det.units)
    placement, placements = candidate // det.units, len(det.positions)
    with torch.no_grad():
        return np.concatenate([f(det.canvases(images[s:s + batch_size])[placement::placements]).cpu().numpy()
                               for s in range(0, len(images), batch_size)])


# ---------------------------------------------------------------------------------------------
# Pages

def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _percent(result: dict | None) -> str:
    return "" if result is None else f"{100 * result['accuracy']:.1f}"


def _unit_url(task: str, key: str, candidate: int) -> str:
    return f"/unit/{quote(task)}/{quote(key)}/{candidate}"


def overview(view: RunView, args) -> str:
    from catneuron.probe.report import table_rows
    tasks = view.tasks()
    task = args.get("task", tasks[0])
    if task not in tasks:
        raise LookupError(f"no test set {task!r}; the probe scored {', '.join(tasks)}")
    sets = view.sets(task)
    key = args.get("set", sets[0] if sets else "")
    if key and key not in sets:
        raise LookupError(f"no network detector set {key!r} on {task}; expected one of {', '.join(sets)}")
    parts = [f"<h1>{html.escape(str(view.run))}</h1>", "<p>test sets: " + " · ".join(
        f"<a href='/?{urlencode({'task': t})}'>{html.escape(t)}</a>" for t in tasks) + "</p>"]
    rows = "".join(f"<tr><td style=text-align:left>{html.escape(label)}</td><td>{100 * p['accuracy']:.1f}</td>"
                   f"<td>{_percent(h)}</td><td>{p['auc']:.3f}</td></tr>"
                   for label, _, p, h in table_rows(view.results["tasks"][task]))
    parts.append(f"<h2>{html.escape(task)}: best single detectors</h2><table><tr><th>detector</th><th>paper %</th>"
                 f"<th>held-out %</th><th>AUC</th></tr>{rows}</table>")
    pictures = view.run / "probe" / "pictures"
    shown = [p for p in ("training-curves", "filters-stage1-encoder", "filters-stage3-top-patches")
             if (pictures / f"{p}.png").exists()]
    if shown:
        parts.append("<h2>What the network learned</h2><div class=pics>" + "".join(
            f"<img src='/pictures/{p}.png' alt='{p}' style='max-width:380px'>" for p in shown) + "</div>")
    parts.append(unit_table(view, task, key, args))
    return _page(f"{view.run} — explore", "".join(parts))


def unit_table(view: RunView, task: str, key: str, args) -> str:
    scores = view.scores(task, key) if key else None
    form = ("<form method=get><input type=hidden name=task value='{t}'>set <select name=set>{sets}</select> "
            "stage <input name=stage value='{stage}'> sublayer <input name=sublayer value='{sub}'> "
            "map <input name=map value='{map}'> i <input name=i value='{i}'> j <input name=j value='{j}'> "
            "sort <select name=sort><option{acc}>accuracy</option><option{auc}>auc</option></select> "
            "<button>show</button></form>").format(
        t=html.escape(task), stage=html.escape(args.get("stage", "")), sub=html.escape(args.get("sublayer", "")),
        map=html.escape(args.get("map", "")), i=html.escape(args.get("i", "")), j=html.escape(args.get("j", "")),
        acc="" if args.get("sort") == "auc" else " selected", auc=" selected" if args.get("sort") == "auc" else "",
        sets="".join(f"<option{' selected' if s == key else ''}>{html.escape(s)}</option>"
                     for s in view.sets(task)))
    if scores is None:
        return (f"<h2>Units</h2>{form}<p class=note>No per-unit scores for {html.escape(key or 'this set')}: "
                f"the probe cache predates them; run <code>catneuron probe {html.escape(str(view.run))} "
                f"--force</code>.</p>")
    det_groups = view.results["tasks"][task]["detectors"][key]["groups"]
    from catneuron.nn.geometry import sublayers
    subs = sublayers(view.cfg.model)
    if [s.name for s in subs] != list(det_groups):          # a compared run with another architecture
        subs = [s for s in subs if s.name in det_groups]
    units = sum(s.units for s in subs)
    candidates = np.arange(len(scores["accuracy"]))
    stage_of = np.concatenate([np.full(s.units, s.stage) for s in subs])
    kind_of = np.concatenate([np.full(s.units, s.kind, dtype=object) for s in subs])
    local = np.concatenate([np.arange(s.units) for s in subs])
    side = np.concatenate([np.full(s.units, s.size) for s in subs])
    per_unit = candidates % units
    m, rest = local[per_unit] // (side[per_unit] ** 2), local[per_unit] % (side[per_unit] ** 2)
    i, j = rest // side[per_unit], rest % side[per_unit]
    keep = np.ones(len(candidates), bool)
    for name, values in (("stage", stage_of[per_unit]), ("map", m), ("i", i), ("j", j)):
        if args.get(name, "").strip():
            keep &= values == int(args[name])
    if args.get("sublayer", "").strip():
        keep &= kind_of[per_unit] == args["sublayer"].strip()
    order = candidates[keep][np.argsort(-scores["auc" if args.get("sort") == "auc" else "accuracy"][keep],
                                        kind="stable")][:int(args.get("limit", 100))]
    def structure(c) -> str:           # of the unit's own filter; pooling and LCN units have none
        if kind_of[per_unit[c]] != "filter":
            return ""
        return f"{view.structure(key, int(stage_of[per_unit[c]]))[i[c], j[c], m[c]]:.2f}"

    rows = "".join(f"<tr><td><a href='{_unit_url(task, key, int(c))}'>{c}</a></td><td>{stage_of[per_unit[c]]}</td>"
                   f"<td>{kind_of[per_unit[c]]}</td><td>{m[c]}</td><td>({i[c]},{j[c]})</td>"
                   f"<td>{100 * scores['accuracy'][c]:.1f}</td><td>{scores['auc'][c]:.3f}</td><td>{structure(c)}</td>"
                   f"</tr>" for c in order)
    return (f"<h2>Units of {html.escape(key)} on {html.escape(task)}</h2>{form}<p class=note>{int(keep.sum()):,} "
            f"units match; the first {len(order)} shown. Structure: of a filtering unit's filter (white noise "
            f"0.23).</p><table id=units><tr><th>unit</th><th>stage</th><th>sublayer</th><th>map</th><th>location</th>"
            f"<th>accuracy %</th><th>AUC</th><th>structure</th></tr>{rows}</table>")


def unit_page(view: RunView, task: str, key: str, candidate: int) -> str:
    if task not in view.tasks():
        raise LookupError(f"no test set {task!r}; the probe scored {', '.join(view.tasks())}")
    if key not in view.sets(task):
        raise LookupError(f"no network detector set {key!r} on {task}; expected one of {', '.join(view.sets(task))}")
    n = view.results["tasks"][task]["detectors"][key]["candidates"]
    if not 0 <= candidate < n:
        raise LookupError(f"unit {candidate} is out of range: {key} has units 0 to {n - 1:,}")
    where = view.detectors(key).describe(candidate)
    rows = []
    for t in view.tasks():
        for k in view.sets(t):
            s = view.scores(t, k)
            if s is not None and candidate < len(s["accuracy"]):
                rows.append(f"<tr><td style=text-align:left>{html.escape(t)}</td><td style=text-align:left>"
                            f"<a href='{_unit_url(t, k, candidate)}'>{html.escape(k)}</a></td>"
                            f"<td>{100 * s['accuracy'][candidate]:.1f}</td><td>{s['auc'][candidate]:.3f}</td></tr>")
    # Each picture shows "computing…" until the server has drawn it (seconds the first time).
    pictures = "".join(f"<figure><img src='{_unit_url(task, key, candidate)}/{p}.png' alt='{p}' "
                       f"onload=\"this.nextElementSibling.remove()\" onerror=\"this.nextElementSibling.textContent="
                       f"'{p}: could not be computed'\"><figcaption class=note>{p}: computing…</figcaption></figure>"
                       for p in PICTURES)
    body = (f"<p><a href='/?{urlencode({'task': task, 'set': key})}' id=back>← all units</a></p>"
            f"<h1>unit {candidate}: {html.escape(where['detector'])}</h1>"
            f"<p>{html.escape(key)} · stage {where['stage']} · {where['sublayer']} · map {where['map']} · "
            f"location ({where['i']},{where['j']}) · field {where['field']} px</p>"
            f"<h2>Scores (the same unit in every network detector set)</h2><table id=scores><tr><th>test set</th>"
            f"<th>detectors</th><th>accuracy %</th><th>AUC</th></tr>{''.join(rows)}</table>"
            f"<h2>{html.escape(task)}</h2><p class=note>Pictures are computed when first shown, then cached.</p>"
            f"<div class=pics>{pictures}</div>")
    return _page(f"unit {candidate}", body)


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def create_app(view: RunView, hosts: tuple[str, ...] | None = LOOPBACK_NAMES):
    """The explorer's Flask app. Requests whose Host header names another host than `hosts` are
    refused (None: any), so that a web page whose domain is re-bound to this machine's address
    (DNS rebinding) cannot read or drive it."""
    from flask import Flask, Response, request

    app = Flask("catneuron.explore")

    @app.before_request
    def only_our_host():
        name = request.host
        name = name[1:name.index("]")] if name.startswith("[") else name.rsplit(":", 1)[0]
        if hosts is not None and name.lower() not in hosts:
            return Response(f"explore serves {', '.join(hosts)}, not {name}", status=403, mimetype="text/plain")

    def missing(err):
        return Response(_page("not found", f"<h1>Not found</h1><p>{html.escape(str(err))}</p>"
                                            "<p><a href='/'>overview</a></p>"), status=404)

    @app.route("/")
    def index():
        try:
            return overview(view, request.args)
        except (LookupError, ValueError) as err:
            return missing(err)

    @app.route("/unit/<task>/<key>/<int:candidate>")
    def one_unit(task, key, candidate):
        try:
            return unit_page(view, task, key, candidate)
        except (LookupError, ValueError) as err:
            return missing(err)

    @app.route("/unit/<task>/<key>/<int:candidate>/<what>.png")
    def picture(task, key, candidate, what):
        if what not in PICTURES:
            return missing(f"no picture {what!r}; expected {', '.join(PICTURES)}")
        try:
            unit_page(view, task, key, candidate)          # the same checks as the page's
            return Response(view.picture(task, key, candidate, what), mimetype="image/png")
        except (LookupError, ValueError) as err:
            return missing(err)

    @app.route("/pictures/<name>.png")
    def run_picture(name):
        path = view.run / "probe" / "pictures" / f"{safe_name(name)}.png"
        if not path.exists():
            return missing(f"{path.name}: not drawn (run catneuron visualize)")
        return Response(path.read_bytes(), mimetype="image/png")

    @app.errorhandler(404)
    def not_found(err):
        return missing("no such page")

    @app.errorhandler(Exception)
    def failed(err):       # logged in full by Flask; the page gets one line
        app.logger.exception("explore: %s", err)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return Response(_page("error", f"<h1>Could not compute this page</h1><p>{html.escape(first)}</p>"
                                       "<p><a href='/'>overview</a></p>"), status=500)

    return app
