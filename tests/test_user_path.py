"""A researcher's own images, end to end, as the README's commands and docs/python.md tell it:
train on a folder of JPEGs, stop and resume, probe with own test sets, visualize, report, explore
(every page's pictures load, in headless Chromium where it is installed), classify, and the
Python API on the same run."""
import json
import re
import shutil
import subprocess
import threading
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

import catneuron
from catneuron.cli import main

pytestmark = pytest.mark.slow
pytest.importorskip("flask")


def _jpegs(folder, n: int, seed: int, square: bool = False) -> list:
    """Random 40x48 JPEGs; with `square`, each holds a bright square (the 'positives')."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for k in range(n):
        img = rng.integers(0, 120, (40, 48, 3), dtype=np.uint8)
        if square:
            y, x = rng.integers(4, 20, 2)
            img[y:y + 14, x:x + 14] = 250
        Image.fromarray(img).save(folder / f"{k}.jpg", quality=90)
    return sorted(folder.glob("*.jpg"))


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=300) as r:
        return r.status, r.read()


def _pictures_load(base: str, path: str, browser: str | None, shots) -> str:
    """The page at `path`; every picture it shows is fetched (and, in a browser, drawn without error)."""
    status, body = _get(base + path)
    page = body.decode()
    assert status == 200, path
    for src in sorted(set(re.findall(r"src='(/[^']+\.png)'", page))):
        status, png = _get(base + src.replace("&amp;", "&"))
        assert status == 200 and png.startswith(b"\x89PNG"), src
    if browser:
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1800",
                 "--virtual-time-budget=30000"]
        dom = subprocess.run(flags + ["--dump-dom", base + path], capture_output=True, text=True, timeout=300).stdout
        # a unit page's captions say "computing…" until its picture is drawn, then go; one that failed says so
        assert "<h1>" in dom and re.findall(r"<figcaption[^>]*>([^<]*)</figcaption>", dom) == [], path
        shot = shots / (re.sub(r"\W+", "-", path).strip("-") or "overview")
        subprocess.run(flags + [f"--screenshot={shot}.png", base + path], capture_output=True, timeout=300)
        assert shot.with_suffix(".png").stat().st_size > 10_000
    return page


def test_own_images_train_resume_probe_see_explore_classify_and_load(tmp_path, monkeypatch, capsys, datasets):
    # `datasets`: a unit page's concept scan draws Tiny ImageNet classes
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    own = _jpegs(tmp_path / "own", 80, seed=0)
    positives = _jpegs(tmp_path / "positives", 30, seed=1, square=True)
    _jpegs(tmp_path / "negatives", 30, seed=2)
    run = tmp_path / "runs" / "mine"

    # train, stopped after 4 of 8 steps (a checkpoint, as Ctrl-C leaves), then resumed
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "own"), "--out", str(run), "--steps", "4",
                 "--set", "train.checkpoint_every=2", "--no-progress"]) == 0
    assert main(["train", "--resume", "--out", str(run), "--steps", "8", "--no-progress"]) == 0
    sessions = json.loads((run / "run.json").read_text())["sessions"]
    assert [s["start_step"] for s in sessions] == [0, 4]

    own_sets = ["--positives", str(tmp_path / "positives"), "--negatives", str(tmp_path / "negatives")]
    assert main(["probe", str(run), *own_sets, "--set", "probe.linear_filters=50", "--set", "probe.kmeans_centroids=5",
                 "--set", "probe.calibrate=false", "--no-progress"]) == 0
    results = json.loads((run / "probe" / "results.json").read_text())
    assert list(results["tasks"]) == ["custom"]
    assert results["tasks"]["custom"]["detectors"]["kmeans"]["candidates"] == 5
    assert main(["visualize", str(run), *own_sets, "--steps", "5", "--no-concepts", "--no-progress"]) == 0
    assert main(["report", str(run)]) == 0
    report = (run / "report.html").read_text()
    assert "custom" in report and "data:image/png;base64," in report

    from werkzeug.serving import make_server

    from catneuron.probe.explore import RunView, create_app
    httpd = make_server("127.0.0.1", 0, create_app(RunView(run)), threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base, shots = f"http://127.0.0.1:{httpd.server_port}", tmp_path / "screenshots"
    shots.mkdir()
    try:
        browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        overview = _pictures_load(base, "/?limit=5", browser, shots)
        unit = re.findall(r"href='(/unit/custom/trained-[a-z]+/\d+)'", overview)[0]
        _pictures_load(base, unit, browser, shots)
    finally:
        httpd.shutdown()

    classes = tmp_path / "classes"
    shutil.copytree(tmp_path / "positives", classes / "square")
    shutil.copytree(tmp_path / "negatives", classes / "plain")
    assert main(["classify", "train", str(run), "--task", str(classes), "--out", str(tmp_path / "clf"),
                 "--set", "classify.head_epochs=3", "--set", "classify.finetune_epochs=0", "--no-progress"]) == 0
    clf = catneuron.load(tmp_path / "clf")
    p = clf.predict_proba(str(positives[0]))
    assert p.shape == (1, 2) and bool(((p >= 0) & (p <= 1)).all())
    assert clf.provenance["run"] == str(run.resolve())

    net = catneuron.load_network(run)
    best = results["tasks"]["custom"]["detectors"]["trained-whole"]["paper"]     # the report's best unit, by name
    neuron = net.unit(best["detector"])
    assert neuron.number == best["unit"] and neuron.name == best["detector"]
    responses = neuron(own[:6])
    assert responses.shape == (6,) and torch.isfinite(responses).all()
    capsys.readouterr()
