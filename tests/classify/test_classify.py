import copy
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from catneuron import config as C
from catneuron import load
from catneuron.classify import export
from catneuron.classify.datasets import LabeledSet, from_field, from_folders, load_task
from catneuron.classify.model import Classifier
from catneuron.classify.train import accuracy, finetune, fit_head
from catneuron.cli import main
from catneuron.errors import CatneuronError, DataError
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.data.shards import ShardWriter
from tests.data.helpers import png_bytes


def _separable(n=400, size=8, classes=3, seed=0) -> LabeledSet:
    """Random images labeled by the largest of `classes` fixed random projections of the pixels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    directions = rng.standard_normal((classes, size * size * 3))
    flat = images.transpose(0, 3, 1, 2).reshape(n, -1) / 255.0
    labels = (flat @ directions.T).argmax(1)
    return LabeledSet(images, labels.astype(np.int64), [f"c{k}" for k in range(classes)], [str(i) for i in range(n)])


@pytest.mark.parametrize("loss", ["one-vs-all", "softmax"])
def test_logistic_classifiers_recover_a_linearly_separable_labeling(loss):
    data = _separable()
    # preprocess "none": the features are the pixels themselves, so the labeling is linear in them
    clf = Classifier(None, data.classes, 8, 3, preprocess="none", loss=loss)
    cfg = C.ClassifyConfig(loss=loss, head_epochs=150, head_lr=0.05, batch_size=50)
    losses = fit_head(clf, data, cfg, progress=False)
    assert losses[-1] < 0.2 * losses[0]
    assert accuracy(clf, data) >= 0.97


def _tiny_classifier(data: LabeledSet) -> Classifier:
    torch.manual_seed(0)
    return Classifier(DeepSparseAutoencoder(C.preset("tiny").model), data.classes, 20, 3)


def test_frozen_training_keeps_the_network_and_finetuning_changes_it():
    data = _separable(n=60, size=20, classes=2)
    clf = _tiny_classifier(data)
    before = copy.deepcopy(clf.encoder.state_dict())
    cfg = C.ClassifyConfig(head_epochs=3, finetune_epochs=1, batch_size=20, finetune_lr=1e-3)
    fit_head(clf, data, cfg, progress=False)
    assert all(torch.equal(before[k], v) for k, v in clf.encoder.state_dict().items())
    assert clf.head.weight.abs().sum() > 0
    finetune(clf, data, cfg, progress=False)
    changed = [k for k, v in clf.encoder.state_dict().items() if not torch.equal(before[k], v)]
    assert any(k.endswith("encoder.weight") for k in changed)
    assert all("stages.0" in k or "stages.1" in k or "stages.2" in k for k in changed)


def test_a_diverging_fine_tune_is_an_error_and_nothing_is_saved(tmp_path):
    data = _separable(n=60, size=20, classes=2)
    clf = _tiny_classifier(data)
    cfg = C.ClassifyConfig(head_epochs=2, finetune_epochs=2, batch_size=20, finetune_lr=1e30)
    fit_head(clf, data, cfg, progress=False)
    with pytest.raises(CatneuronError, match=r"loss became (nan|inf) in epoch \d; lower classify.finetune_lr \(now 1e\+30\)"):
        finetune(clf, data, cfg, progress=False)
    with pytest.raises(CatneuronError, match="not written: .* holds NaN or inf"):
        export.save(clf, tmp_path / "clf", C.preset("tiny").model, {})
    assert not (tmp_path / "clf" / export.FILE).exists()


def test_halves_are_disjoint_complete_seeded_and_stratified():
    data = _separable(n=101)
    a, b = data.halves(seed=3)
    assert not set(a.origins) & set(b.origins)
    assert sorted(a.origins + b.origins, key=int) == data.origins
    assert data.halves(seed=3)[0].origins == a.origins and data.halves(seed=4)[0].origins != a.origins
    per_class = np.bincount(data.labels)
    assert np.array_equal(np.bincount(a.labels, minlength=len(per_class)), per_class // 2)
    assert np.array_equal(np.bincount(b.labels, minlength=len(per_class)), per_class - per_class // 2)


def test_a_class_too_small_for_both_halves_is_refused():
    data = _separable(n=40, classes=2)
    rare = data.subset(np.concatenate([np.flatnonzero(data.labels == 0), np.flatnonzero(data.labels == 1)[:1]]))
    with pytest.raises(DataError, match="class '.*' has 1 image\\(s\\); the two halves"):
        rare.halves(seed=0)


def _folder(tmp_path, counts):
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        (tmp_path / name).mkdir(parents=True)
        for i in range(n):
            (tmp_path / name / f"{i}.png").write_bytes(png_bytes(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)))
    return tmp_path


def test_bad_labels_are_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="empty: class folder has no images"):
        from_folders(_folder(tmp_path / "a", {"cat": 2, "empty": 0}), 20, progress=False)
    broken = _folder(tmp_path / "c", {"cat": 2, "dog": 0})
    for i in range(3):
        (broken / "dog" / f"{i}.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"class 'dog' has no readable image \(3 unreadable\)"):
        from_folders(broken, 20, progress=False)
    with pytest.raises(DataError, match="found 1 class sub-folders, expected at least 2"):
        from_folders(_folder(tmp_path / "b", {"cat": 2}), 20, progress=False)
    with ShardWriter(tmp_path / "s" / "set", max_count=10) as w:
        for i, label in enumerate(["n1", "n2", "n9"]):
            w.write(f"k{i}", {"png": png_bytes(np.zeros((8, 8, 3), np.uint8)), "json": json.dumps({"wnid": label}).encode()})
    with pytest.raises(DataError, match="label 'n9' is not one of the 2 given classes"):
        from_field([str(tmp_path / "s")], "wnid", 8, classes=["n1", "n2"], progress=False)
    with pytest.raises(DataError, match="no label field 'class'"):
        from_field([str(tmp_path / "s")], "class", 8, progress=False)
    assert from_field([str(tmp_path / "s")], "wnid", 8, progress=False).classes == ["n1", "n2", "n9"]
    with pytest.raises(DataError, match="expected tiny-imagenet or four-way or a folder"):
        load_task(str(tmp_path / "missing"), 8, progress=False)


def test_saved_classifier_predicts_like_the_trained_one(tmp_path):
    data = _separable(n=60, size=20, classes=2)
    clf = _tiny_classifier(data)
    fit_head(clf, data, C.ClassifyConfig(head_epochs=2, batch_size=20), progress=False)
    export.save(clf, tmp_path / "clf", C.preset("tiny").model, {"task": "synthetic"})
    loaded = load(tmp_path / "clf")
    torch.testing.assert_close(loaded.scores(data.images), clf.scores(data.images))
    assert loaded.predict(list(data.images[:5])) == clf.predict(data.images[:5])
    assert loaded.provenance["task"] == "synthetic" and "code_version" in loaded.provenance
    # one image by its path, a torchvision tensor batch: the same predictions as the arrays
    Image.fromarray(data.images[0]).save(tmp_path / "one.png")
    assert loaded.predict(str(tmp_path / "one.png")) == loaded.predict(data.images[:1])
    as_tensors = torch.from_numpy(data.images[:5]).permute(0, 3, 1, 2) / 255
    assert loaded.predict(as_tensors) == loaded.predict(data.images[:5])
    p = loaded.predict_proba(data.images[:5])
    torch.testing.assert_close(p, loaded.scores(data.images[:5]).sigmoid())     # one-vs-all
    assert p.shape == (5, 2) and loaded.predict(data.images[:5]) == [loaded.classes[k] for k in p.argmax(1)]
    with pytest.raises(DataError, match=r"image 0: float values from \d+ to \d+; expected \[0, 1\]"):
        loaded.predict(data.images[:1].astype(np.float32))


def test_cli_trains_on_class_folders_and_predicts_a_folder(tmp_path, capsys):
    folders = _folder(tmp_path / "data", {"a": 6, "b": 6})
    assert main(["classify", "train", "--init", "random", "--preset", "tiny", "--task", str(folders), "--out",
                 str(tmp_path / "clf"), "--set", "classify.head_epochs=2", "--set", "classify.finetune_epochs=1",
                 "--no-progress"]) == 0
    assert "validation top-1 frozen" in capsys.readouterr().out
    assert main(["classify", "predict", str(tmp_path / "clf"), str(folders / "a"), "--out", str(tmp_path / "p.csv"),
                 "--no-progress"]) == 0
    rows = (tmp_path / "p.csv").read_text().splitlines()
    assert rows[0] == "file,class,probability" and len(rows) == 7 and all(r.split(",")[1] in "ab" for r in rows[1:])
    assert all(0 <= float(r.split(",")[2]) <= 1 for r in rows[1:])
    assert main(["classify", "predict", str(tmp_path / "clf"), str(tmp_path / "nothing-here")]) == 2
    assert "nothing-here: no such image file or folder" in capsys.readouterr().err
    (folders / "a" / "9.png").write_bytes(b"\x89PNG cut short")      # unreadable, among readable ones
    assert main(["classify", "predict", str(tmp_path / "clf"), str(folders / "a"), "--out", str(tmp_path / "p.csv"),
                 "--no-progress"]) == 0
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 7
    assert "(1 unreadable images skipped)" in capsys.readouterr().out
    for f in (folders / "a").iterdir():
        f.write_bytes(b"nothing")
    assert main(["classify", "predict", str(tmp_path / "clf"), str(folders / "a"), "--out", str(tmp_path / "p.csv"),
                 "--no-progress"]) == 2
    assert "none of the 7 images is readable" in capsys.readouterr().err
    assert len((tmp_path / "p.csv").read_text().splitlines()) == 7            # the earlier CSV, untouched
    (tmp_path / "compare").mkdir()                  # `classify compare` writes one folder per start
    shutil.copytree(tmp_path / "clf", tmp_path / "compare" / "random")
    with pytest.raises(CatneuronError, match="compare: holds one classifier per start \\(random\\); name one"):
        load(tmp_path / "compare")
    weights = tmp_path / "clf" / export.FILE
    weights.write_bytes(weights.read_bytes()[:200])
    with pytest.raises(CatneuronError, match="classifier.safetensors: not a catneuron classifier"):
        load(tmp_path / "clf")


def test_four_way_task_from_the_real_data(datasets):
    data = load_task("four-way", 32, per_class=5, root=str(datasets), progress=False)
    assert data.classes == ["face", "cat face", "body", "natural"]
    assert np.bincount(data.labels).tolist() == [5, 5, 5, 5] and data.images.shape == (20, 32, 32, 3)
    assert data.images.std() > 10
