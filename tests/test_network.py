import numpy as np
import pytest
import torch

import catneuron
from catneuron import config as C
from catneuron.probe.detectors import NetworkDetectors, UnitAddress
from catneuron.train.trainer import Trainer
from tests.data.helpers import random_images, write_shards


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("network")
    write_shards(root / "data" / "set", random_images(40, size=24), per_shard=20)
    cfg = C.preset("tiny")
    cfg.data.train, cfg.train.steps = [str(root / "data")], 3
    Trainer(cfg, root / "run", progress=False).run()
    return root / "run"


def test_features_are_the_probes_responses_sublayer_by_sublayer(run):
    net = catneuron.load_network(run)
    images = np.stack(random_images(5, size=net.config.model.input_size, seed=3))
    probe = NetworkDetectors(net.model, net.config.model, "whole", preprocess=net.config.data.preprocess)(images)
    start = 0
    for name in net.sublayers:
        g = net.sublayer(name)
        f = net.features(images, name, batch_size=2)
        assert f.shape == (5, g.maps, g.size, g.size)
        torch.testing.assert_close(f.flatten(1), probe[:, start:start + g.units])
        start += g.units
    assert start == probe.shape[1]
    torch.testing.assert_close(net.features(list(images)), net.features(images, net.sublayers[-1]))


def test_a_unit_by_number_name_or_address_is_the_same_unit(run):
    net = catneuron.load_network(run)
    images = np.stack(random_images(4, size=net.config.model.input_size, seed=4))
    probe = NetworkDetectors(net.model, net.config.model, "whole", preprocess=net.config.data.preprocess)(images)
    last = probe.shape[1] - 1
    for number in (0, 17, last):
        unit = net.unit(number)
        assert net.unit(unit.name).number == number and net.unit(unit.address).number == number
        torch.testing.assert_close(unit(images), probe[:, number])
    top = net.unit(last)
    assert top.name.startswith(net.sublayers[-1]) and top.field[2] == net.sublayer(net.sublayers[-1]).field


@pytest.mark.parametrize("address, error, message", [
    ("stage9/pool map 0 at (0,0)", IndexError, "no sublayer pool at stage 9"),
    ("unit 3", ValueError, "expected a unit name like"),
    (UnitAddress(1, "pool", 0, 0, 0, placement=2), ValueError, "a placement of a field-mode detector set"),
    (10 ** 9, IndexError, "this detector set has 0 to"),
])
def test_a_unit_that_is_not_there_is_one_line(run, address, error, message):
    with pytest.raises(error, match=message):
        catneuron.load_network(run).unit(address)


def test_an_unknown_sublayer_names_the_ones_there(run):
    with pytest.raises(KeyError, match="no sublayer 'stage1/relu'; this network has stage1/filter"):
        catneuron.load_network(run).features(np.zeros((1, 8, 8, 3), np.uint8), "stage1/relu")
