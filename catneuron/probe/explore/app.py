"""The explorer's web app: Flask routes over a RunView (pages.py writes the HTML)."""
from __future__ import annotations

from catneuron.probe.explore import pages
from catneuron.probe.explore.view import DRAWINGS, PICTURES, RunView

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
        return Response(pages.message("Not found", str(err)), status=404)

    @app.route("/")
    def index():
        try:
            return pages.overview(view, request.args)
        except (LookupError, ValueError) as err:
            return missing(err)

    @app.route("/unit/<task>/<key>/<int:candidate>")
    def one_unit(task, key, candidate):
        try:
            return pages.unit_page(view, task, key, candidate)
        except (LookupError, ValueError) as err:
            return missing(err)

    @app.route("/unit/<task>/<key>/<int:candidate>/<what>.png")
    def picture(task, key, candidate, what):
        if what not in DRAWINGS:
            return missing(f"no picture {what!r}; expected {', '.join(PICTURES)}")
        try:
            view.check(task, key, candidate)
        except LookupError as err:
            return missing(err)
        return Response(view.picture(task, key, candidate, what), mimetype="image/png")

    @app.route("/pictures/<name>.png")
    def run_picture(name):
        path = view.rundir.picture(name)
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
        return Response(pages.message("Could not compute this page", first), status=500)

    return app
