"""The explorer's HTML: the overview (Table 1 analog, what the network learned, the unit table) and
a unit's page, from view.py's rows through the Jinja2 templates beside this file. Jinja2 (Flask's
own) escapes every value it writes, so a test set, a folder or a detector named with HTML in it
shows as text: the pages are served, unlike the report, which is one static file."""
from __future__ import annotations

from urllib.parse import quote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

from catneuron.probe.explore.view import PICTURES, SORTS, RunView, UnitFilter, UnitTable

LEARNED = ("training-curves", "filters-stage1-encoder", "filters-stage3-top-patches")   # catneuron visualize's
TEMPLATES = Environment(loader=PackageLoader("catneuron.probe.explore"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
HEADERS = (("unit", "unit"), ("top test images", None), ("stage", None), ("sublayer", None), ("map", None),
           ("location", None), ("accuracy %", "accuracy"), ("AUC", "auc"), ("structure", None))


def message(title: str, text: str) -> str:
    """A page of one line (not found, could not compute) with the way back."""
    return TEMPLATES.get_template("message.html").render(title=title, text=text)


def unit_url(task: str, key: str, candidate: int) -> str:
    return f"/unit/{quote(task)}/{quote(key)}/{candidate}"


def _percent(result: dict | None) -> str:
    return "" if result is None else f"{100 * result['accuracy']:.1f}"


def _url(args: dict, **change) -> str:
    return "/?" + urlencode({**{k: v for k, v in args.items() if v != ""}, **change})


def overview(view: RunView, args) -> str:
    from catneuron.probe.report import table_rows
    tasks = view.tasks()
    task = args.get("task", tasks[0])
    view.check(task)
    sets = view.sets(task)
    key = args.get("set", sets[0] if sets else "")
    if key:
        view.check(task, key)
    table = view.unit_table(task, key, UnitFilter.from_args(args)) if key else None
    context = {"title": f"{view.run} — explore", "run": str(view.run), "task": task, "key": key, "sets": sets,
               "sort": args.get("sort", "accuracy"), "sorts": SORTS,
               "tasks": [{"name": t, "url": _url({"task": t})} for t in tasks],
               "table1": [{"label": label, "paper": f"{100 * p['accuracy']:.1f}", "heldout": _percent(h),
                           "auc": f"{p['auc']:.3f}"} for label, _, p, h in table_rows(view.results["tasks"][task])],
               # the curves are a wide figure of several panels: a row of their own
               "learned": [{"name": p, "css": "wide" if p == "training-curves" else "gallery"}
                           for p in LEARNED if view.rundir.picture(p).exists()],
               "form": {name: args.get(name, "") for name in ("stage", "sublayer", "map", "i", "j")},
               "table": table}
    if table is not None:
        context.update(_unit_table(task, key, table, {"task": task, "set": key, **dict(args)}))
    return TEMPLATES.get_template("overview.html").render(**context)


def _unit_table(task: str, key: str, table: UnitTable, args: dict) -> dict:
    last, step = table.start + len(table.rows), int(args.get("limit") or 0) or UnitFilter.limit
    return {"rows": [{**r.__dict__, "url": unit_url(task, key, r.candidate)} for r in table.rows],
            "headers": [{"label": label, "url": sort and _url(args, sort=sort, start=0)} for label, sort in HEADERS],
            "shown": f"units {table.start + 1:,} to {last:,} of {table.matched:,}" if table.rows
            else f"no units of {table.matched:,}",
            "previous": _url(args, start=max(0, table.start - step)) if table.start > 0 else None,
            "next": _url(args, start=last) if last < table.matched else None}


def unit_page(view: RunView, task: str, key: str, candidate: int) -> str:
    view.check(task, key, candidate)
    scores = [{**s.__dict__, "url": unit_url(s.task, s.key, candidate)} for s in view.unit_scores(candidate)]
    return TEMPLATES.get_template("unit.html").render(
        title=f"unit {candidate}", task=task, key=key, candidate=candidate, scores=scores, pictures=PICTURES,
        where=view.detectors(key).describe(candidate), url=unit_url(task, key, candidate),
        back=_url({"task": task, "set": key}))
