"""The explorer's HTML: the overview (Table 1 analog, what the network learned, the unit table) and
a unit's page, written from view.py's rows."""
from __future__ import annotations

import html
from urllib.parse import quote, urlencode

from catneuron.probe.explore.view import PICTURES, SORTS, RunView, UnitFilter, UnitTable

STYLE = """body{font:14px sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#eee}a{color:#15c}
img{border:1px solid #ddd;margin:4px;min-width:120px;min-height:60px;background:#f6f6f6}
.pics{display:flex;flex-wrap:wrap}form input{width:4em}.note{color:#666}img.wide{width:100%}
img.gallery{max-width:380px}img.thumb{height:40px;min-width:0;min-height:0;margin:0}th a{color:inherit}"""
LEARNED = ("training-curves", "filters-stage1-encoder", "filters-stage3-top-patches")   # catneuron visualize's


def page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def message(title: str, text: str) -> str:
    """A page of one line (not found, could not compute) with the way back."""
    return page(title, f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p><p><a href='/'>overview</a></p>")


def unit_url(task: str, key: str, candidate: int) -> str:
    return f"/unit/{quote(task)}/{quote(key)}/{candidate}"


def _percent(result: dict | None) -> str:
    return "" if result is None else f"{100 * result['accuracy']:.1f}"


def overview(view: RunView, args) -> str:
    from catneuron.probe.report import table_rows
    tasks = view.tasks()
    task = args.get("task", tasks[0])
    view.check(task)
    sets = view.sets(task)
    key = args.get("set", sets[0] if sets else "")
    if key:
        view.check(task, key)
    parts = [f"<h1>{html.escape(str(view.run))}</h1>", "<p>test sets: " + " · ".join(
        f"<a href='/?{urlencode({'task': t})}'>{html.escape(t)}</a>" for t in tasks) + "</p>"]
    rows = "".join(f"<tr><td style=text-align:left>{html.escape(label)}</td><td>{100 * p['accuracy']:.1f}</td>"
                   f"<td>{_percent(h)}</td><td>{p['auc']:.3f}</td></tr>"
                   for label, _, p, h in table_rows(view.results["tasks"][task]))
    parts.append(f"<h2>{html.escape(task)}: best single detectors</h2><table><tr><th>detector</th><th>paper %</th>"
                 f"<th>held-out %</th><th>AUC</th></tr>{rows}</table>")
    shown = [p for p in LEARNED if view.rundir.picture(p).exists()]
    if shown:          # the curves are a wide figure of several panels: a row of their own
        parts.append("<h2>What the network learned</h2><div class=pics>" + "".join(
            f"<img src='/pictures/{p}.png' alt='{p}' class={'wide' if p == 'training-curves' else 'gallery'}>"
            for p in shown) + "</div>")
    which = UnitFilter.from_args(args)
    form = _form(view, task, key, args)
    if not key:
        parts.append(f"<h2>Units</h2>{form}")
    else:
        parts.append(unit_table(view, task, key, view.unit_table(task, key, which), form, args))
    return page(f"{view.run} — explore", "".join(parts))


def _form(view: RunView, task: str, key: str, args) -> str:
    value = {name: html.escape(args.get(name, "")) for name in ("stage", "sublayer", "map", "i", "j")}
    sort = args.get("sort", "accuracy")
    sets = "".join(f"<option{' selected' if s == key else ''}>{html.escape(s)}</option>" for s in view.sets(task))
    sorts = "".join(f"<option{' selected' if s == sort else ''}>{s}</option>" for s in SORTS)
    return (f"<form method=get><input type=hidden name=task value='{html.escape(task)}'>set <select name=set>{sets}"
            f"</select> stage <input name=stage value='{value['stage']}'> sublayer <input name=sublayer "
            f"value='{value['sublayer']}'> map <input name=map value='{value['map']}'> i <input name=i "
            f"value='{value['i']}'> j <input name=j value='{value['j']}'> sort <select name=sort>{sorts}"
            f"</select> <button>show</button></form>")


def _table_url(args, **change) -> str:
    return "/?" + urlencode({**{k: v for k, v in args.items() if v != ""}, **change})


def unit_table(view: RunView, task: str, key: str, table: UnitTable | None, form: str, args=None) -> str:
    if table is None:
        return (f"<h2>Units</h2>{form}<p class=note>No per-unit scores for {html.escape(key)}: the probe cache "
                f"predates them; run <code>catneuron probe {html.escape(str(view.run))} --force</code>.</p>")
    args = {"task": task, "set": key, **dict(args or {})}
    rows = "".join(f"<tr><td><a href='{unit_url(task, key, r.candidate)}'>{r.candidate}</a></td>"
                   f"<td><a href='{unit_url(task, key, r.candidate)}'><img class=thumb loading=lazy alt='' "
                   f"src='{unit_url(task, key, r.candidate)}/top.png'></a></td><td>{r.stage}</td>"
                   f"<td>{r.sublayer}</td><td>{r.map}</td><td>({r.i},{r.j})</td><td>{100 * r.accuracy:.1f}</td>"
                   f"<td>{r.auc:.3f}</td><td>{'' if r.structure is None else f'{r.structure:.2f}'}</td></tr>"
                   for r in table.rows)
    head = "".join(f"<th><a href='{_table_url(args, sort=sort, start=0)}' title='sort by {title}'>{label}</a></th>"
                   if sort else f"<th>{label}</th>"
                   for label, sort, title in (("unit", "unit", "number"), ("top test images", None, ""),
                                              ("stage", None, ""), ("sublayer", None, ""), ("map", None, ""),
                                              ("location", None, ""), ("accuracy %", "accuracy", "accuracy"),
                                              ("AUC", "auc", "AUC"), ("structure", None, "")))
    size, last = len(table.rows), table.start + len(table.rows)
    step = int(args.get("limit") or 0) or UnitFilter.limit
    pager = " ".join(
        [f"<a href='{_table_url(args, start=max(0, table.start - step))}' id=previous>← previous</a>"]
        * (table.start > 0)
        + [f"<a href='{_table_url(args, start=last)}' id=next>next →</a>"] * (last < table.matched))
    shown = f"units {table.start + 1:,} to {last:,} of {table.matched:,}" if size else f"no units of {table.matched:,}"
    return (f"<h2>Units of {html.escape(key)} on {html.escape(task)}</h2>{form}<p class=note>{shown} that match. "
            f"{pager} Click a header to sort; the pictures are the unit's strongest test images, drawn when first "
            f"shown. Structure: of a filtering unit's own filter (its random start's value is in the report).</p><table id=units><tr>{head}</tr>"
            f"{rows}</table><p>{pager}</p>")


def unit_page(view: RunView, task: str, key: str, candidate: int) -> str:
    view.check(task, key, candidate)
    where = view.detectors(key).describe(candidate)
    rows = "".join(f"<tr><td style=text-align:left>{html.escape(s.task)}</td><td style=text-align:left>"
                   f"<a href='{unit_url(s.task, s.key, candidate)}'>{html.escape(s.key)}</a></td>"
                   f"<td>{100 * s.accuracy:.1f}</td><td>{s.auc:.3f}</td></tr>" for s in view.unit_scores(candidate))
    # Each picture shows "computing…" until the server has drawn it (seconds the first time).
    pictures = "".join(f"<figure><img src='{unit_url(task, key, candidate)}/{p}.png' alt='{p}' "
                       f"onload=\"this.nextElementSibling.remove()\" onerror=\"this.nextElementSibling.textContent="
                       f"'{p}: could not be computed'\"><figcaption class=note>{p}: computing…</figcaption></figure>"
                       for p in PICTURES)
    body = (f"<p><a href='/?{urlencode({'task': task, 'set': key})}' id=back>← all units</a></p>"
            f"<h1>unit {candidate}: {html.escape(where['detector'])}</h1>"
            f"<p>{html.escape(key)} · stage {where['stage']} · {where['sublayer']} · map {where['map']} · "
            f"location ({where['i']},{where['j']}) · field {where['field']} px</p>"
            f"<h2>Scores (the same unit in every network detector set)</h2><table id=scores><tr><th>test set</th>"
            f"<th>detectors</th><th>accuracy %</th><th>AUC</th></tr>{rows}</table>"
            f"<h2>{html.escape(task)}</h2><p class=note>Pictures are computed when first shown, then cached.</p>"
            f"<div class=pics>{pictures}</div>")
    return page(f"unit {candidate}", body)
