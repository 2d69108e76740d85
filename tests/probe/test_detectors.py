import numpy as np
import torch

from catneuron import config as C
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.probe.detectors import NetworkDetectors, SetKey


def _tiny():
    cfg = C.preset("tiny")
    return DeepSparseAutoencoder(cfg.model), cfg


import pytest


@pytest.mark.parametrize("kind", ["sparse", "sigmoid"])
def test_candidates_name_the_unit_they_read(kind):
    model, cfg = _tiny()
    cfg.model.input_size = 40          # room for 2 x 2 placements of the top field
    cfg.model.kind = kind
    model = DeepSparseAutoencoder(cfg.model)
    images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
    det = NetworkDetectors(model, cfg.model, "field", placements=2)
    assert len(det.positions) == 4
    acts = det(images)
    assert acts.shape == (3, det.units * len(det.positions))
    outs = model(det.canvases(images))
    for candidate in (0, det.units - 1, det.candidates // 2 + 7, det.candidates - 1):
        info = det.describe(candidate)
        stage = outs[info["stage"] - 1]
        attribute = {"filter": "filtered", "pool": "pooled", "sigmoid": "hidden", "lcn": "normalized"}
        t = getattr(stage, attribute[info["sublayer"]])
        placement = det.positions.index(tuple(info["placement"]))
        expected = t.view(3, len(det.positions), *t.shape[1:])[:, placement, info["map"], info["i"], info["j"]]
        torch.testing.assert_close(acts[:, candidate], expected)
        # the numbering both ways: a unit and its placement (as an index or as describe's image position)
        assert det.locate(candidate) == (info["unit"], placement)
        assert det.candidate(info["unit"], info["placement"]) == det.candidate(info["unit"], placement) == candidate
    # the same numbering for a whole table at once (the explorer's unit table)
    from catneuron.probe.detectors import addresses
    every = np.arange(det.candidates)
    table = addresses(det.groups, every)
    for candidate in (0, det.units - 1, det.units, det.candidates // 2 + 7, det.candidates - 1):
        info = det.describe(candidate)
        assert [table[k][candidate] for k in ("stage", "sublayer", "map", "i", "j", "unit")] == [
            info[k] for k in ("stage", "sublayer", "map", "i", "j", "unit")]
        assert det.positions[table["placement"][candidate]] == tuple(info["placement"])
    # an address names one candidate and back, for every candidate
    assert [det.candidate_at(det.address(c)) for c in every] == list(every)
    from catneuron.probe.detectors import UnitAddress
    for bad in (UnitAddress(1, "pool", 99, 0, 0), UnitAddress(2, "filter", 0, 0, 0, placement=4),
                UnitAddress(9, "pool", 0, 0, 0)):
        with pytest.raises(IndexError, match=str(bad).replace("(", r"\(").replace(")", r"\)")):
            det.candidate_at(bad)


def test_field_mode_lands_exactly_on_the_field_of_a_top_unit():
    """The image, resized to the top pooling units' field, covers exactly the field of one top unit:
    the canvas holds it there and the image's mean colour elsewhere, and that unit's response moves
    with every pixel of the placed image and with none outside it."""
    from catneuron.nn.geometry import sublayers
    from catneuron.probe.testsets import as_float, resize
    model, cfg = _tiny()
    cfg.model.input_size = 40
    model = DeepSparseAutoencoder(cfg.model, dtype=torch.float64)
    det = NetworkDetectors(model, cfg.model, "field", placements=1, preprocess="none")
    top = [s for s in sublayers(cfg.model) if s.stage == 3 and s.kind == "pool"][0]
    assert det.field == top.field
    (y, x), = det.positions
    i, j = (y - top.start) // top.jump, (x - top.start) // top.jump
    assert (top.field_start(i), top.field_start(j)) == (y, x) and i in top.inside(40)
    img = np.random.default_rng(0).integers(0, 256, (1, 30, 30, 3), dtype=np.uint8)
    canvas = det.canvases(img)[0].double()
    placed = resize(as_float(img), det.field)[0].double()
    torch.testing.assert_close(canvas[:, y:y + det.field, x:x + det.field], placed)
    outside = torch.ones(40, 40, dtype=torch.bool)
    outside[y:y + det.field, x:x + det.field] = False
    fill = as_float(img)[0].double().mean(dim=(1, 2))
    torch.testing.assert_close(canvas[:, outside], fill[:, None].expand(-1, int(outside.sum())))
    x_in = canvas[None].clone().requires_grad_()
    response = model(x_in)[2].pooled[0, 0, i, j]
    (grad,) = torch.autograd.grad(response, x_in)
    moved = grad[0].abs().sum(0) > 0
    assert moved[~outside].all() and not moved[outside].any()


def test_distractors_get_the_letterbox_of_the_positives(tmp_path):
    """Narrow positives must not be told from square distractors by their flat side bars."""
    import numpy as np
    from catneuron.probe.testsets import Task, build
    from tests.data.helpers import random_images, write_shards
    rng = np.random.default_rng(0)
    write_shards(tmp_path / "pos" / "p", [rng.integers(0, 256, (40, 24, 3), dtype=np.uint8) for _ in range(20)])
    write_shards(tmp_path / "neg" / "n", random_images(40, size=32))
    ts = build(Task("narrow", (str(tmp_path / "pos"),), (str(tmp_path / "neg"),)), 20, use_cache=False)
    flat_border = ts.images[:, :, :3].std(axis=(1, 2)).max(axis=1) < 1   # a letterbox bar at the left edge
    assert flat_border[ts.labels].all() and flat_border[~ts.labels].all()


def test_a_detector_sets_key_is_built_and_read_in_one_place():
    for key in (SetKey("trained", "whole"), SetKey("random", "field"), SetKey("compare", "whole", "my-control"),
                SetKey("linear"), SetKey("kmeans")):
        assert SetKey.parse(str(key)) == key
    assert str(SetKey("compare", "field", "nolcn")) == "compare-nolcn-field"
    with pytest.raises(ValueError, match="'pixels-whole': not a detector set"):
        SetKey.parse("pixels-whole")


def test_baselines_are_sized_by_the_distinct_data_and_say_so(caplog):
    import logging
    from catneuron.config import ProbeConfig
    from catneuron.probe.run import BaselineSizes
    p = ProbeConfig(linear_filters=100_000, kmeans_images=20_000, kmeans_centroids=1000)
    sizes = BaselineSizes.of(p, corpus=200, places=25)
    assert sizes[:3] == (5000, 200, 200)                                         # the 200-image folder
    with caplog.at_level(logging.INFO, logger="catneuron"):
        sizes.say(p, "kmeans_images")
    assert caplog.messages == ["probe.kmeans_images = 20,000, but the training data (200 images) allow 200: using 200"]
    assert BaselineSizes.of(p, corpus=200, places=1)[:3] == (200, 200, 200)      # patches as large as the image
    assert BaselineSizes.of(p, corpus=70_000, places=625)[:3] == (100_000, 20_000, 1000)
