"""The neuron explorer, served on a loopback port and driven through its pages."""
import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from html import unescape

import numpy as np
import pytest
from PIL import Image

from catneuron import config as C
from catneuron.errors import CatneuronError
from catneuron.probe.run import probe
from catneuron.train.trainer import Trainer
from tests.data.helpers import random_images, write_shards

pytestmark = pytest.mark.slow

pytest.importorskip("flask")


@pytest.fixture(scope="module")
def server(tmp_path_factory, datasets):
    from werkzeug.serving import make_server

    from catneuron.probe.explore import RunView, create_app
    root = tmp_path_factory.mktemp("explore")
    write_shards(root / "data" / "set", random_images(60, size=24), per_shard=30)
    cfg = C.preset("tiny")
    cfg.data.train, cfg.train.steps = [str(root / "data")], 10
    Trainer(cfg, root / "run", progress=False).run()
    cfg = C.apply_overrides(C.load_file(root / "run" / "config.json"),
                            ['probe.tasks=["faces","bodies"]', "probe.max_positives=40", "probe.linear_filters=20",
                             "probe.kmeans_centroids=0", 'probe.modes=["whole"]', "probe.calibrate=false"])
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CATNEURON_CACHE", str(root / "cache"))
        probe(root / "run", cfg, progress=False)
        httpd = make_server("127.0.0.1", 0, create_app(RunView(root / "run")), threaded=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_port}", root / "run"
        httpd.shutdown()


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_unit_table_lists_filters_and_sorts_the_probes_scores(server):
    from catneuron.probe.explore import RunView, UnitFilter
    _, run = server
    view = RunView(run)
    table = view.unit_table("faces", "trained-whole", UnitFilter())
    rows = table.rows
    assert len(rows) == UnitFilter.limit and table.matched == view.results["tasks"]["faces"]["detectors"][
        "trained-whole"]["candidates"]
    assert [r.accuracy for r in rows] == sorted((r.accuracy for r in rows), reverse=True)
    best = json.loads((run / "probe" / "results.json").read_text())["tasks"]["faces"]["detectors"]["trained-whole"]
    assert rows[0].accuracy == pytest.approx(best["paper"]["accuracy"], abs=5e-4)   # the paper's best unit on top
    from catneuron.nn.structure import spectral_concentration
    from catneuron.train.checkpoint import load_model
    model, _ = load_model(run)
    det = view.detectors("trained-whole")
    for r in rows[:20]:                  # each row names the unit the candidate number reads
        where = det.describe(r.candidate)
        assert (where["stage"], where["sublayer"], where["map"], where["i"], where["j"]) == (
            r.stage, r.sublayer, r.map, r.i, r.j)
        if r.sublayer == "filter":       # the structure of its own filter, against its weights
            weight = model.stages[r.stage - 1].encoder.weight.detach()[r.i, r.j, r.map]
            assert r.structure == pytest.approx(float(spectral_concentration(weight)), abs=1e-5)
        else:
            assert r.structure is None
    pools = view.unit_table("bodies", "random-whole", UnitFilter.from_args(
        {"stage": "3", "sublayer": "pool", "sort": "auc", "limit": "7"})).rows
    assert len(pools) == 7 and all((r.stage, r.sublayer) == (3, "pool") for r in pools)
    assert [r.auc for r in pools] == sorted((r.auc for r in pools), reverse=True)
    for bad in ("x", "-3"):
        with pytest.raises(ValueError, match=f"map = '{bad}': expected a whole number >= 0"):
            UnitFilter.from_args({"map": bad})
    with pytest.raises(ValueError, match="sort = 'size': expected one of accuracy, auc, unit"):
        UnitFilter.from_args({"sort": "size"})
    second = view.unit_table("faces", "trained-whole", UnitFilter.from_args({"start": str(UnitFilter.limit)}))
    assert second.start == UnitFilter.limit and second.rows[0].accuracy <= rows[-1].accuracy   # the next page
    assert not {r.candidate for r in second.rows} & {r.candidate for r in rows}
    by_number = view.unit_table("faces", "trained-whole", UnitFilter.from_args({"sort": "unit", "start": "3"}))
    assert [r.candidate for r in by_number.rows[:3]] == [3, 4, 5]


def test_overview_shows_table_1_and_the_unit_table(server):
    base, _ = server
    status, body = _get(base + "/")
    page = body.decode()
    assert status == 200 and "faces: best single detectors" in page and "same architecture, random weights" in page
    assert len(re.findall(r"<tr><td><a href='/unit/faces/trained-whole/\d+'>", page)) == 50
    assert "units 1 to 50 of" in page and "id=next" in page and "id=previous" not in page
    assert "<a href='/?task=faces&amp;set=trained-whole&amp;sort=auc&amp;start=0'" in page    # a header sorts
    status, body = _get(base + "/?task=bodies&set=random-whole&stage=3&sublayer=pool&sort=auc&limit=5&start=5")
    page = body.decode()
    assert status == 200 and len(re.findall(r"<td>3</td><td>pool</td>", page)) == 5 and "units 6 to 10 of" in page
    assert "id=previous" in page
    for src in sorted(set(re.findall(r"src='(/unit/[^']+\.png)'", page)))[:2]:   # the rows' thumbnails are pictures
        status, png = _get(base + src)
        assert status == 200 and png[:4] == b"\x89PNG"


def test_a_unit_page_shows_its_scores_everywhere_and_its_pictures(server):
    base, run = server
    status, body = _get(base + "/unit/faces/trained-whole/7")
    page = unescape(body.decode())
    assert status == 200 and "unit 7: stage1/filter map 0 at (0,7)" in page
    assert len(re.findall(r"<tr><td style=text-align:left>(faces|bodies)</td>", page)) == 4   # 2 sets x 2 tasks
    assert "<a href='/unit/bodies/random-whole/7'>random-whole</a>" in page    # the same unit elsewhere
    from catneuron.probe.explore import PICTURES
    assert all(f"{p}: computing…" in page for p in PICTURES)        # until each picture arrives
    for what in PICTURES:
        status, png = _get(f"{base}/unit/faces/trained-whole/7/{what}.png")
        assert status == 200 and png.startswith(b"\x89PNG"), what
        cached, = (run / "probe" / "explore").glob(f"*/faces/trained-whole/7-{what}.png")
        assert cached.read_bytes() == png


def test_pictures_are_cached_per_results_and_weights(server):
    from catneuron.probe.explore import RunView
    _, run = server
    results = run / "probe" / "results.json"
    first = RunView(run).cache
    text = results.read_text()
    try:
        results.write_text(text.replace('"code_version"', '"code_version_"', 1))      # as after a new probe
        second = RunView(run).cache
    finally:
        results.write_text(text)
    assert first != second and RunView(run).cache == first


@pytest.mark.parametrize("path, message", [
    ("/unit/faces/trained-whole/99999999", "unit 99999999 is out of range: trained-whole has units 0 to"),
    ("/unit/cats/trained-whole/1", "no test set &#39;cats&#39;"),
    ("/unit/faces/linear/1", "no network detector set &#39;linear&#39;"),
    ("/unit/faces/trained-whole/1/nothing.png", "no picture"),
    ("/?task=nothing", "no test set &#39;nothing&#39;"),
    ("/?task=%3Cscript%3Ealert(1)%3C/script%3E", "no test set &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;"),
    ("/?task=faces&map=x", "map = &#39;x&#39;: expected a whole number &gt;= 0"),
    ("/?task=faces&limit=-5", "limit = &#39;-5&#39;: expected a whole number &gt;= 0"),
    ("/no/such/page", "no such page"),
])
def test_bad_input_gets_a_clear_page(server, path, message):
    status, body = _get(server[0] + path)
    assert status == 404 and message in body.decode() and "Traceback" not in body.decode()


def test_requests_for_another_host_are_refused(server):
    """A page on attacker.example re-bound to 127.0.0.1 sends its own name as Host (DNS rebinding)."""
    base, _ = server
    status, body = _get(urllib.request.Request(base + "/", headers={"Host": "attacker.example:8000"}))
    assert status == 403 and b"not attacker.example" in body
    port = base.rsplit(":", 1)[1]
    assert _get(urllib.request.Request(base + "/", headers={"Host": f"localhost:{port}"}))[0] == 200


def test_an_unprobed_run_is_one_clear_error(tmp_path):
    from catneuron.probe.explore import RunView
    with pytest.raises(CatneuronError, match="probe/results.json: not found; run `catneuron probe"):
        RunView(tmp_path)


@pytest.mark.skipif(not shutil.which("chromium"), reason="no headless Chromium")
def test_chromium_goes_from_the_overview_to_a_unit_page_and_back(server, tmp_path):
    base, _ = server
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]

    def dom(url):
        return subprocess.run(["chromium", *flags, "--dump-dom", url], capture_output=True, text=True,
                              timeout=180).stdout

    overview = dom(base + "/?task=faces")
    first = re.search(r'href="(/unit/faces/trained-whole/\d+)"', overview).group(1)
    unit = dom(base + first)
    assert "Scores (the same unit in every network detector set)" in unit and 'id="scores"' in unit
    # every picture was drawn: its "computing…" caption removed by its onload, none left by an error
    assert unit.count("<img") == 8 and re.findall(r"<figcaption[^>]*>([^<]*)<", unit) == []
    back = re.search(r'<a href="([^"]+)" id="back">', unit).group(1)
    assert "Units of trained-whole on faces" in dom(base + unescape(back))
    shot = tmp_path / "unit.png"
    subprocess.run(["chromium", *flags, "--window-size=1100,900", f"--screenshot={shot}", base + first],
                   capture_output=True, timeout=180)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (900, 1100) and pixels.std() > 20
