"""`catneuron report RUN`: one self-contained HTML page (images embedded) with the Table 1 analog,
the pictures, the concept scan and the provenance of everything on it.

Written with f-strings and html.escape rather than Jinja2 templates (the explorer's): a static
file of mostly numbers and embedded pictures, built in one pass, where a template per section
would only move the same markup into another file."""
from __future__ import annotations

import base64
import datetime as dt
import html
import json
from pathlib import Path

from catneuron.provenance import code_version
from catneuron.files import read_context, read_jsonl, write_text
from catneuron.probe import calibration
from catneuron.probe.detectors import MODES, SetKey
from catneuron.probe.pictures import read_index
from catneuron.probe.run import read_results
from catneuron.rundir import RunDir

# Reference accuracies (%) the paper states in its text (Table 1's other cells did not survive the
# text extraction we have, so they are left out rather than recalled).
PAPER = {
    "faces": {"all negative": 64.8, "linear filter": 74.0, "first layer": 71.0, "best neuron": 81.7,
              "without LCN": 78.5, "control corpus": 72.5},
    "cat faces": {"all negative": 64.8, "linear filter": 67.2, "best neuron": 74.8},
    "bodies": {"all negative": 64.8, "linear filter": 68.1, "best neuron": 76.7},
}


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return f"<p class=missing>({html.escape(alt)}: not drawn)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def table_rows(task: dict) -> list[tuple[str, str, dict | None, dict | None]]:
    """(row label, paper reference key, paper-protocol result, held-out result) in Table 1 order."""
    dets = task["detectors"]
    rows = [("random guess (all negative)", "all negative",
             {"accuracy": task["set"]["all_negative"], "auc": 0.5, "detector": "—"}, None)]

    def add(label, ref, keys, group_prefix=None):
        found = []
        for key in keys:
            if key not in dets:
                continue
            d = dets[key]
            if group_prefix:
                groups = {g: v for g, v in d["groups"].items() if g.startswith(group_prefix)}
                if not groups:
                    continue
                paper = max((v["paper"] for v in groups.values()), key=lambda r: r["accuracy"])
                held = max((v["heldout"] for v in groups.values()), key=lambda r: r["val_accuracy"])
            else:
                paper, held = d["paper"], d["heldout"]
            found.append((SetKey.parse(key).mode, paper, held))
        scores = [(p["accuracy"], p["auc"], h and h["accuracy"]) for _, p, h in found]
        if len(found) == 2 and scores[0] == scores[1]:
            # the top units see the whole input, so field mode places the image as whole mode does
            found = [(" = ".join(mode for mode, _, _ in found), *found[0][1:])]
        rows.extend((f"{label} ({mode})" if mode else label, ref, paper, held) for mode, paper, held in found)

    trained = [str(SetKey("trained", mode)) for mode in MODES]
    add("same architecture, random weights", "random weights", [str(SetKey("random", mode)) for mode in MODES])
    add(dets.get("linear", {}).get("label", "best linear filter"), "linear filter", ["linear"])
    groups = dets.get("linear", {}).get("groups", {})
    if len(groups) > 1:        # the corpus mixes sources: the best filter from each
        for name, g in groups.items():
            rows.append((f"best linear filter, {name}", "", g["paper"], g["heldout"]))
    add("best first-layer neuron", "first layer", trained, group_prefix="stage1/")
    add("best neuron", "best neuron", trained)
    for key, d in dets.items():
        which = SetKey.parse(key)
        if which.source == "compare":
            name = which.name
            ref = {"nolcn": "without LCN", "control": "control corpus", "sigmoid": "sigmoid autoencoder"}.get(name, "")
            rows.append((f"best neuron, {d['label']}", ref, d["paper"], d["heldout"]))
    add(dets.get("kmeans", {}).get("label", "K-means"), "k-means", ["kmeans"])
    return rows


def _table1(results: dict) -> str:
    tasks = list(results["tasks"])
    head = "".join(f"<th colspan=3>{html.escape(t)}</th>" for t in tasks)
    sub = "".join("<th>paper protocol</th><th>held-out</th><th>in the paper</th>" for _ in tasks)
    labels: list[tuple[str, str]] = []
    cells: dict[tuple[str, str], tuple] = {}
    for t in tasks:
        for label, ref, paper, held in table_rows(results["tasks"][t]):
            if label not in [lab for lab, _ in labels]:
                labels.append((label, ref))
            cells[(label, t)] = (paper, held)
    body = []
    for label, ref in labels:
        row = f"<td class=l>{html.escape(label)}</td>"
        for t in tasks:
            paper, held = cells.get((label, t), (None, None))
            p = f"{_pct(paper['accuracy'])} <small>AUC {paper['auc']:.3f}</small>" if paper else "–"
            h = f"{_pct(held['accuracy'])} <small>AUC {held['auc']:.3f}</small>" if held else "–"
            ref_value = PAPER.get(t, {}).get(ref)
            title = html.escape(paper.get("detector", "")) if paper else ""
            row += f"<td title=\"{title}\">{p}</td><td>{h}</td><td class=ref>{ref_value if ref_value else ''}</td>"
        body.append(f"<tr>{row}</tr>")
    return (f"<table><tr><th rowspan=2>detector</th>{head}</tr><tr>{sub}</tr>{''.join(body)}</table>"
            "<p class=note>Accuracy (%) of the best single detector at the best of 20 thresholds between its "
            "minimum and maximum response (response ≥ threshold = positive). <b>Paper protocol</b>: selected and "
            "reported on the whole test set, as the paper did. <b>Held-out</b>: the detector and threshold chosen "
            "on the validation half, accuracy on the other half. AUC beside each. Hover a cell for the detector.</p>")


def _targets(task: dict) -> str:
    dets = task["detectors"]
    trained, random_ = calibration.best_of(dets, "trained"), calibration.best_of(dets, "random")
    linear, first = calibration.best_of(dets, "linear"), calibration.best_of(dets, "trained", "stage1/")
    control = calibration.best_of(dets, "compare", name="control")
    lines = []
    for name, other, need in (("best linear filter", linear, 7), ("random weights", random_, 10),
                              ("first-layer neuron", first, 10)):
        if trained is not None and other is not None:
            gap = 100 * (trained - other)
            verdict = "enough" if gap >= need else "not enough"
            lines.append(f"<li>best trained neuron − {name}: <b>{gap:+.1f}</b> points ({verdict} to call it a "
                         f"learned detector, which needs +{need} or more)</li>")
    if control is not None and trained is not None:
        drop = 100 * (trained - control)
        verdict = "as a face detector should" if drop >= 5 else "less than the 5 points a face detector should lose"
        lines.append(f"<li>drop after training on the face-free control corpus: <b>{drop:+.1f}</b> points "
                     f"({verdict})</li>")
    return f"<ul>{''.join(lines)}</ul>" if lines else ""


def _calibration(name: str, task: dict, pics: dict, folder: Path) -> str:
    """What a test set can show: its construction, its calibration lines and its picture."""
    lines = "".join(f"<tr><td class=l>{html.escape(label)}</td><td>{_pct(value)}</td><td>{html.escape(ref)}</td>"
                    f"<td>{'' if met is None else ('met' if met else '<b>not met</b>')}</td></tr>"
                    for label, value, ref, met in calibration.rows(task))
    picture = _img(folder / pics["samples"], f"{name}: samples") if "samples" in pics else ""
    return (f"<h3>{html.escape(name)} ({html.escape(task['set'].get('construction', 'letterbox'))})</h3>"
            f"<table><tr><th>what</th><th>accuracy %</th><th>target</th><th></th></tr>{lines}</table>{picture}")


def _sublayers(task: dict) -> str:
    rows = []
    for key in (str(SetKey(source, mode)) for source in ("trained", "random") for mode in MODES):
        d = task["detectors"].get(key)
        if not d:
            continue
        cells = "".join(f"<td>{_pct(v['paper']['accuracy'])}<br><small>{_pct(v['heldout']['accuracy'])}</small></td>"
                        for v in d["groups"].values())
        head = "".join(f"<th>{html.escape(g)}</th>" for g in d["groups"])
        rows.append((head, f"<tr><td class=l>{html.escape(d['label'])}</td>{cells}</tr>"))
    if not rows:
        return ""
    return (f"<table><tr><th></th>{rows[0][0]}</tr>{''.join(r for _, r in rows)}</table>"
            "<p class=note>Best accuracy per sublayer (paper protocol; held-out below).</p>")


def _learned(filters: dict | None, folder: Path) -> str:
    """Filter galleries and training curves (catneuron.probe.filters)."""
    if not filters:
        return "<p>(run <code>catneuron visualize</code> for the filter galleries)</p>"
    rows = "".join(f"<tr><td class=l>stage {k[5:]}</td><td>{v['trained']['structure']:.3f}</td>"
                   f"<td>{v['init']['structure']:.3f}</td><td>{v['trained']['localization']:.3f}</td>"
                   f"<td>{v['init']['localization']:.3f}</td></tr>" for k, v in filters["structure"].items())
    parts = ["<p>Encoder filters W1: structure = share of each filter's power in its strongest 10 % of "
             "spatial frequencies; localization = share of its energy in the best-placed window of half its "
             "side. A random filter of the same shape scores what the <i>at init</i> columns show; a filter that "
             "learned an edge or a blob scores well above it.</p>",
             f"<table><tr><th></th><th>structure</th><th>at init</th><th>localization</th><th>at init</th></tr>"
             f"{rows}</table>"]
    if "training_curves" in filters:
        parts.append(_img(folder / filters["training_curves"], "training curves"))
    parts.append("<h3>Stage 1 filters (rows: locations across the input, corners included)</h3><div class=row>")
    parts += [_img(folder / filters[k], k) for k in ("stage1-encoder", "stage1-decoder", "stage1-change",
                                                      "stage1-encoder-init") if k in filters]
    parts.append("</div><h3>What drives each stage: mean of the top 9 training patches per unit, trained vs "
                 "random weights</h3><div class=row>")
    for k in range(1, len(filters["structure"]) + 1):
        parts += [_img(folder / filters[key], key) for key in (f"stage{k}-top-patches", f"stage{k}-top-patches-random")
                  if key in filters]
    return "".join(parts) + "</div>"


def _neuron_section(name: str, pics: dict, folder: Path) -> str:
    n = pics["neuron"]
    parts = [f"<h3>{html.escape(name)}: {html.escape(n['detector'])} ({pics['mode']} mode)</h3>",
             f"<p>accuracy {_pct(n['accuracy'])} % (either polarity {_pct(n['accuracy_either'])} %), AUC "
             f"{n['auc']:.3f}; {100 * pics['top_positive_fraction']:.0f} % of its top 48 test stimuli are "
             f"positives. Optimal stimulus (at the inputs' norm, {pics.get('optimal_norm', 1):.3g}) response "
             f"{pics['optimal_response'][0]:.3g} (from {pics['optimal_start_response'][0]:.3g} at its start); "
             f"the largest response to a test image is {pics['max_test_response']:.3g}.</p>",
             "<div class=row>", _img(folder / pics["histogram"], "histogram"), _img(folder / pics["optimal"], "optimal"),
             "</div>", _img(folder / pics["top_stimuli"], "top stimuli")]
    if "scale" in pics:
        parts += ["<h4>Invariance (mean ± s.d. over 10 held-out faces)</h4><div class=row>",
                  _img(folder / pics["scale"], "scale"), _img(folder / pics["translation"], "translation"), "</div>"]
        row = [_img(folder / pics[k], k) for k in ("rotation", "orl") if k in pics]
        if row:
            parts += ["<div class=row>", *row, "</div>"]
    return "\n".join(parts)


def _concepts(scan: dict | None) -> str:
    if not scan:
        return "<p>(concept scan not run)</p>"
    named = [c for c in scan["concepts"] if not c.startswith("n")] + \
        sorted((c for c in scan["concepts"] if c.startswith("n")),
               key=lambda c: -scan["per_concept"][c][0]["auc"])[:25]
    rows = "".join(f"<tr><td class=l>{html.escape(c)}</td><td>{scan['per_concept'][c][0]['auc']:.3f}</td>"
                   f"<td class=l>{html.escape(scan['per_concept'][c][0]['detector'])}</td></tr>" for c in named)
    neurons = "".join(
        f"<tr><td class=l>{html.escape(n['detector'])}</td><td class=l>" +
        ", ".join(f"{html.escape(c['concept'])} ({c['auc']:.2f})" for c in n["concepts"]) + "</td></tr>"
        for n in scan["per_neuron"][:10])
    return (f"<p>{scan['neurons']:,} neurons ({', '.join(scan['groups'])}) × {len(scan['concepts'])} concepts on "
            f"{scan['images']:,} images; AUC of each concept against all other images.</p>"
            f"<div class=row><table><tr><th>concept</th><th>best AUC</th><th>neuron</th></tr>{rows}</table>"
            f"<table><tr><th>neuron</th><th>its top concepts (AUC)</th></tr>{neurons}</table></div>")


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}td.l,th{text-align:left}td.ref{color:#888}.note{color:#555;font-size:12px}
.row{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}img{max-width:100%}pre{background:#f6f6f6;
padding:.6em;overflow:auto;font-size:11px;max-height:25em}h2{border-bottom:1px solid #ddd;margin-top:1.6em}"""


def _no_pictures(stale: bool) -> str:
    if stale:
        return ("<p>(the pictures were drawn from an earlier probe's results and are not shown: run "
                "<code>catneuron visualize</code> again)</p>")
    return "<p>(run <code>catneuron visualize</code> for pictures)</p>"


def report(run: str | Path, out: str | Path | None = None) -> Path:
    run = Path(run)
    results, _ = read_results(run)
    rundir = RunDir(run)
    folder = rundir.pictures
    index = read_index(run)      # None too when the pictures are from another probe than results.json
    stale = index is None and rundir.pictures_index.exists()
    pictures = index or {"tasks": {}}
    run_json = read_context(rundir.record) or {}
    corpora = {src: read_context(Path(src) / "manifest.json") for src in results["config"]["data"]["train"]}
    corpora = {src: manifest for src, manifest in corpora.items() if manifest is not None}
    summary = "".join(f"<li>{html.escape(t)}: {v['set']['positives']:,} positives, {v['set']['negatives']:,} "
                      f"distractors (all-negative {_pct(v['set']['all_negative'])} %)</li>"
                      for t, v in results["tasks"].items())
    targets = "".join(f"<h3>{html.escape(t)}</h3>{_targets(v)}" for t, v in results["tasks"].items())
    neurons = "".join(_neuron_section(t, p, folder) for t, p in pictures.get("tasks", {}).items())
    sublayers = "".join(f"<h3>{html.escape(t)}</h3>{_sublayers(v)}" for t, v in results["tasks"].items())
    calibrations = "".join(_calibration(t, v, pictures.get("tasks", {}).get(t, {}), folder)
                           for t, v in results["tasks"].items())
    sessions = run_json.get("sessions", [])
    images_seen = None
    if rundir.metrics.exists():
        rows = read_jsonl(rundir.metrics)
        images_seen = rows[-1].get("images") if rows else None
    body = f"""<!doctype html><html><head><meta charset=utf-8><title>catneuron report: {html.escape(run.name)}</title>
<style>{CSS}</style></head><body>
<h1>catneuron report: {html.escape(str(run))}</h1>
<section id=summary><h2>Summary</h2>
<p>Network {html.escape(results['config']['preset'])}, trained on {', '.join(map(html.escape, results['config']['data']['train']))}
({f'{images_seen:,} images seen' if images_seen else 'images seen unknown'}). Report written
{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} by catneuron {html.escape(code_version())};
probe by {html.escape(results['code_version'])}.</p><ul>{summary}</ul>{targets}</section>
<section id=table1><h2>Table 1 analog: best single detectors</h2>{_table1(results)}</section>
<section id=testsets><h2>What each test can show</h2><p class=note>A test shows a detector only above what needs
no learning (the floor: random weights, the first stage, linear filters) and only if the positives stay recognizable
(the ceiling: a small CNN trained on the validation half) while low-level statistics alone cannot tell the classes
(the giveaway check). Held-out half; docs/probe.md has the construction.</p>{calibrations}</section>
<section id=learned><h2>What the network learned</h2>{_learned(pictures.get('filters'), folder)}</section>
<section id=sublayers><h2>Where the best neurons are</h2>{sublayers}</section>
<section id=neurons><h2>The best neurons</h2>{neurons or _no_pictures(stale)}</section>
<section id=concepts><h2>Concept scan</h2>{_concepts(pictures.get('concepts'))}</section>
<section id=provenance><h2>Provenance</h2>
<h3>Configuration</h3><pre>{html.escape(json.dumps(results['config'], indent=1))}</pre>
<h3>Training corpus manifest</h3><pre>{html.escape(json.dumps(corpora, indent=1)) if corpora else '(no manifest: the data are not a composed corpus)'}</pre>
<h3>Training sessions</h3><pre>{html.escape(json.dumps(sessions, indent=1))}</pre>
<h3>Compared runs</h3><pre>{html.escape(json.dumps(results.get('compare', {}), indent=1))}</pre>
</section></body></html>"""
    out = Path(out) if out else run / "report.html"
    write_text(out, body)
    return out
