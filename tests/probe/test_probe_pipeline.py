import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from catneuron import config as C
from catneuron.probe.pictures import visualize
from catneuron.probe.report import report
from catneuron.probe.run import probe
from catneuron.train.trainer import Trainer
from tests.data.helpers import random_images, write_shards

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, datasets):
    root = tmp_path_factory.mktemp("probe")
    write_shards(root / "data" / "set", random_images(60, size=24), per_shard=30)
    cfg = C.preset("tiny")
    cfg.data.train = [str(root / "data")]
    cfg.train.steps = 20
    Trainer(cfg, root / "run", progress=False).run()
    return root / "run"


def _probe_cfg(run):
    cfg = C.load_file(run / "config.json")
    return C.apply_overrides(cfg, ['probe.tasks=["faces","faces-aligned","bodies"]', "probe.max_positives=60",
                                   "probe.linear_filters=50", "probe.kmeans_centroids=5", "probe.kmeans_images=50",
                                   "probe.ceiling_steps=60", "probe.placements=1"])


def test_own_positives_that_are_all_unreadable_are_an_error_and_keep_the_results(tiny_run, tmp_path, monkeypatch):
    from catneuron.errors import DataError
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    (tmp_path / "pos").mkdir()
    for i in range(4):
        (tmp_path / "pos" / f"{i}.jpg").write_bytes(b"truncated")
    results = tiny_run / "probe" / "results.json"
    before = results.read_bytes() if results.exists() else None
    cfg = C.apply_overrides(_probe_cfg(tiny_run), ["probe.calibrate=false", "probe.kmeans_centroids=0"])
    with pytest.raises(DataError, match="test set custom: no readable positives"):
        probe(tiny_run, cfg, positives=[str(tmp_path / "pos")], negatives=["natural-64/val"], progress=False)
    assert (results.read_bytes() if results.exists() else None) == before


def test_own_test_sets_can_be_explored_and_other_sets_are_not_drawn_from_their_responses(tiny_run, tmp_path,
                                                                                         monkeypatch):
    from catneuron.errors import CatneuronError
    from catneuron.probe.explore import RunView
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    for name, n in (("a", 12), ("b", 14), ("neg", 40)):
        write_shards(tmp_path / name / "set", random_images(n, size=24, seed=n), per_shard=50)
    cfg = C.apply_overrides(_probe_cfg(tiny_run), ["probe.calibrate=false", "probe.kmeans_centroids=0",
                                                   "probe.random_weights=false"])
    probe(tiny_run, cfg, positives=[str(tmp_path / "a")], negatives=[str(tmp_path / "neg")], progress=False)
    view = RunView(tiny_run)
    assert len(view.test_set("custom").labels) == 12 + 22
    with pytest.raises(CatneuronError, match="test set custom: not the one the probe scored"):
        visualize(tiny_run, cfg, steps=2, concepts=False, positives=[str(tmp_path / "b")],
                  negatives=[str(tmp_path / "neg")])
    # without the probe's own sets there is nothing to draw: said, not "pictures of 0 neurons"
    with pytest.raises(CatneuronError, match="probed on custom, not on faces, faces-aligned, bodies; draw what"):
        visualize(tiny_run, cfg, steps=2, concepts=False)


def test_probes_that_cannot_mean_anything_are_refused(tiny_run, tmp_path, monkeypatch):
    from catneuron.errors import CatneuronError, ConfigError, DataError
    from catneuron.probe.run import require_current
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    cfg = C.apply_overrides(_probe_cfg(tiny_run), ["probe.calibrate=false", "probe.kmeans_centroids=0"])
    with pytest.raises(DataError, match="1 positives and 1 distractors cannot make two halves"):
        probe(tiny_run, C.apply_overrides(cfg, ['probe.tasks=["faces-aligned"]', "probe.max_positives=1"]),
              progress=False)
    with pytest.raises(ConfigError, match="probe.tasks is empty"):
        probe(tiny_run, C.apply_overrides(cfg, ["probe.tasks=[]"]), progress=False)
    (tmp_path / "unreadable").mkdir()
    (tmp_path / "unreadable" / "0.jpg").write_bytes(b"not a picture")
    with pytest.raises(DataError, match="no readable training image for the baselines"):
        probe(tiny_run, C.apply_overrides(cfg, ['probe.tasks=["faces-aligned"]', "probe.random_weights=false",
                                                f"data.train={tmp_path / 'unreadable'}"]), progress=False)
    grey = C.load_file(tiny_run / "config.json")
    grey.model.channels, grey.train.steps = 1, 2
    Trainer(grey, tmp_path / "grey", progress=False).run()
    with pytest.raises(ConfigError, match="--compare grey=.*takes 20x20x1 images, this run's 20x20x3"):
        probe(tiny_run, cfg, compare={"grey": str(tmp_path / "grey")}, progress=False)
    # scores of earlier weights are not drawn from once the run has trained further
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    results = probe(run, C.apply_overrides(cfg, ['probe.tasks=["faces-aligned"]']), progress=False)
    require_current(run, results)
    moved = tmp_path / "elsewhere" / "run"              # a run moved with its files' times keeps its scores
    shutil.copytree(run, moved)
    require_current(moved, results)
    # copies of one image among positives and distractors, or twice on one side, score nothing
    own = tmp_path / "own"
    for i, image in enumerate(random_images(6, size=24)):
        own.mkdir(exist_ok=True)
        Image.fromarray(image).save(own / f"{i}.png")
    from catneuron.probe.testsets import Task, build
    with pytest.raises(DataError, match=r"6 file\(s\) are both positives and distractors"):
        build(Task("own", (str(own),), (str(own),)), 20, root=None, use_cache=False)
    with pytest.raises(DataError, match=r"0.png is given more than once among the positives"):
        build(Task("own", (str(own / "0.png"), str(own / "0.png")), (str(own / "1.png"),)), 20, use_cache=False)
    more = C.load_file(run / "config.json")
    more.train.steps += 2
    Trainer(more, run, resume=True, progress=False).run()
    with pytest.raises(CatneuronError, match="its weights changed since it was probed"):
        require_current(run, json.loads((run / "probe" / "results.json").read_text()))


def test_probe_visualize_report_on_a_tiny_checkpoint(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    cfg = C.apply_overrides(_probe_cfg(tiny_run), ["train.steps=999"])
    results = probe(tiny_run, cfg, compare={"control": str(tiny_run)}, progress=False)
    assert cfg.train.steps == 999 and results["config"]["train"]["steps"] == 20   # the run's, the caller's unchanged
    # the default face test shows faces in scenes; its calibration and floor come with the scores
    scene = results["tasks"]["faces"]
    assert scene["set"]["construction"] == "scene" and scene["set"]["positives"] == 60
    assert set(scene["calibration"]) >= {"ceiling", "giveaway", "test_all_negative"}
    assert all(0 <= scene["calibration"][k] <= 1 for k in ("ceiling", "giveaway", "test_all_negative"))
    random_units = [d["paper"]["accuracy"] for k, d in scene["detectors"].items() if k.startswith("random-")]
    assert scene["floor"]["random_best"] == max(random_units)
    assert scene["floor"]["linear_best"] == scene["detectors"]["linear"]["paper"]["accuracy"]
    # the aligned, letterboxed faces: a set that even a 20-step tiny network's units pass
    faces = results["tasks"]["faces-aligned"]
    # at the paper's ratio (13,026 faces to 23,974 distractors): 60 * 23,974 / 13,026 = 110.4 distractors
    from catneuron.probe.testsets import PAPER_POSITIVE_FRACTION as f
    assert faces["set"]["positives"] == 60 and faces["set"]["negatives"] == int(60 * (1 - f) / f) == 110
    dets = faces["detectors"]
    assert set(dets) == {"trained-whole", "trained-field", "random-whole", "random-field", "linear", "kmeans",
                         "compare-control-whole", "compare-control-field"}
    for d in dets.values():
        # the selected detector beats guessing "no face" and ranks faces above distractors more often
        # than not; either polarity can only do better than the paper's
        assert faces["set"]["all_negative"] < d["paper"]["accuracy"] <= 1 and d["best_auc"]["auc"] > 0.6
        assert d["paper"]["accuracy_either"] >= d["paper"]["accuracy"] - 1e-9
        assert 0 <= d["heldout"]["accuracy"] <= 1 and d["heldout"]["val_accuracy"] > faces["set"]["all_negative"]
    # comparing the run with itself reproduces its scores exactly
    assert dets["compare-control-whole"]["paper"]["accuracy"] == dets["trained-whole"]["paper"]["accuracy"]
    again = probe(tiny_run, _probe_cfg(tiny_run), compare={"control": str(tiny_run)}, progress=False)  # cached
    assert again["tasks"]["faces-aligned"]["detectors"]["linear"]["paper"] == dets["linear"]["paper"]
    stage = tiny_run / "probe" / "stages" / "faces-aligned__linear.json"
    stage.write_text(stage.read_text()[:50])          # damaged: scored again, no traceback
    again = probe(tiny_run, _probe_cfg(tiny_run), compare={"control": str(tiny_run)}, progress=False)
    assert again["tasks"]["faces-aligned"]["detectors"]["linear"]["paper"] == dets["linear"]["paper"]
    assert json.loads(stage.read_text())["signature"]

    pics = visualize(tiny_run, _probe_cfg(tiny_run), steps=10, concept_images=4)
    assert set(pics["tasks"]) == {"faces", "faces-aligned", "bodies"} and "scale" in pics["tasks"]["faces"]
    assert all((tiny_run / "probe" / "pictures" / t["samples"]).exists() for t in pics["tasks"].values())
    for task in pics["tasks"].values():          # at the inputs' norm the optimum beats every test image
        assert task["optimal_response"][0] >= task["max_test_response"]
    filters = pics["filters"]
    assert {"stage1-encoder", "stage1-change", "stage3-top-patches", "training_curves"} <= set(filters)
    assert filters["structure"]["stage1"]["trained"]["structure"] != filters["structure"]["stage1"]["init"]["structure"]
    assert pics["concepts"]["per_concept"]["faces"]
    page = report(tiny_run)
    text = page.read_text()
    for section in ("summary", "table1", "testsets", "learned", "sublayers", "neurons", "concepts", "provenance"):
        assert f"<section id={section}>" in text
    assert "What each test can show" in text and "ceiling: supervised CNN" in text
    assert text.count("data:image/png;base64,") >= 19 and "What drives each stage" in text and "Table 1 analog" in text and "control corpus" in text
    if shutil.which("chromium"):
        shot = tmp_path / "shot.png"
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1000,2000",
                        f"--screenshot={shot}", page.as_uri()], capture_output=True, timeout=120)
        pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
        assert pixels.shape == (2000, 1000) and pixels.std() > 20          # rendered, not a blank page
    # a new probe: the pictures drawn from the old results are not shown beside the new scores
    results = tiny_run / "probe" / "results.json"
    results.write_text(results.read_text().replace('"code_version"', '"code_version" ', 1))
    text = report(tiny_run).read_text()
    assert "drawn from an earlier probe" in text and text.count("data:image/png;base64,") < 19
    # damaged files a kill or a careless hand leaves: a cut metrics line is skipped, a damaged
    # pictures index counts as stale, a damaged results.json is one line naming it, not a traceback
    metrics, index = tiny_run / "metrics.jsonl", tiny_run / "probe" / "pictures" / "index.json"
    saved_results, saved_metrics = results.read_text(), metrics.read_text()
    metrics.write_text(saved_metrics + '{"step": 21, "ima')
    index.write_text('{"tasks": ')
    text = report(tiny_run).read_text()
    assert "drawn from an earlier probe" in text and f"{json.loads(saved_metrics.splitlines()[-1])['images']:,}" in text
    from catneuron.errors import CatneuronError
    from catneuron.probe.explore import RunView
    unknown_set = json.dumps({**json.loads(saved_results), "tasks": {"faces": {"detectors": {"pixels-whole": {}}}}})
    for damaged in (saved_results[:120], "[]", '{"tasks": {}}', unknown_set):
        results.write_text(damaged)
        for read in (report, lambda run: visualize(run, steps=1), RunView):
            with pytest.raises(CatneuronError, match=r"results.json: damaged \(not a probe's results\); run"):
                read(tiny_run)
    results.write_text(saved_results)
    metrics.write_text(saved_metrics)


def test_the_sigmoid_baseline_flows_through_the_probe(tiny_run, tmp_path, monkeypatch):
    """Table 1's deep autoencoder (model.kind = sigmoid), trained and compared like the others."""
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    cfg = C.load_file(tiny_run / "config.json")
    cfg.model.kind, cfg.train.steps = "sigmoid", 10
    Trainer(cfg, tmp_path / "sigmoid", progress=False).run()
    cfg = C.apply_overrides(_probe_cfg(tiny_run), ["probe.calibrate=false"])     # calibration: the test above
    results = probe(tiny_run, cfg, compare={"sigmoid": str(tmp_path / "sigmoid")}, progress=False)
    assert "calibration" not in results["tasks"]["faces"]
    dets = results["tasks"]["faces-aligned"]["detectors"]
    sig = dets["compare-sigmoid-whole"]
    assert sig["label"].startswith("deep autoencoder of the same connectivity with sigmoids")
    assert {g.split("/")[1] for g in sig["groups"]} == {"filter", "sigmoid"}
    assert results["tasks"]["faces-aligned"]["set"]["all_negative"] < sig["paper"]["accuracy"] <= 1
    assert sig["paper"]["sublayer"] in ("filter", "sigmoid") and 0 <= sig["best_auc"]["auc"] <= 1


def test_probe_needs_a_trained_run(tmp_path):
    from catneuron.errors import CatneuronError
    with pytest.raises(CatneuronError, match="no trained weights"):
        probe(tmp_path)


def test_a_run_trained_from_python_is_probed_with_its_baselines_named_or_skipped(tmp_path, monkeypatch, capsys):
    from catneuron.cli import main
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    cfg = C.preset("tiny")
    cfg.train.steps = 2
    Trainer(cfg, tmp_path / "run", progress=False, data=random_images(30, size=24)).run()
    for name, seed in (("pos", 1), ("neg", 2), ("train", 3)):
        (tmp_path / name).mkdir()
        for k, img in enumerate(random_images(20, size=24, seed=seed)):
            Image.fromarray(img).save(tmp_path / name / f"{k}.png")
    own = [str(tmp_path / "run"), "--positives", str(tmp_path / "pos"), "--negatives", str(tmp_path / "neg"),
           "--set", "probe.calibrate=false", "--no-progress"]
    assert main(["probe", *own]) == 2                 # the baselines have no training images to draw
    assert "(trained from Python): the linear-filter and K-means baselines" in capsys.readouterr().err
    assert main(["probe", *own, "--set", "probe.linear_filters=0", "--set", "probe.kmeans_centroids=0"]) == 0
    assert main(["probe", *own, "--set", f"data.train={tmp_path / 'train'}", "--set", "probe.kmeans_centroids=3"]) == 0
    results = json.loads((tmp_path / "run" / "probe" / "results.json").read_text())
    assert {"linear", "kmeans"} <= set(results["tasks"]["custom"]["detectors"])
