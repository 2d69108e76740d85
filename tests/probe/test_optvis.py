"""Optimal stimuli and composable objectives (probe/optvis.py)."""
import numpy as np
import pytest
import torch

from catneuron import config as C
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.probe.detectors import NetworkDetectors, UnitAddress
from catneuron.probe.optvis import blur, channel, input_norm, jitter, neuron, optimal_stimulus, unit
from tests.data.helpers import random_images


def test_optimal_stimulus_keeps_its_norm_and_raises_the_response():
    cfg = C.preset("tiny")
    model = DeepSparseAutoencoder(cfg.model)
    det = NetworkDetectors(model, cfg.model, "whole")
    rho = input_norm(det, np.stack(random_images(8, size=20)))
    assert rho == pytest.approx((3 * 20 * 20) ** 0.5, rel=1e-2)     # standardized images: sqrt(C S S)
    for candidate in (det.units - 5, 1000):                  # a top LCN unit, a stage-1 unit
        f = unit(det, candidate)
        for transforms, after_step in (([], []), ([jitter(2)], [blur(0.5)])):
            opt = optimal_stimulus(f, (3, 20, 20), steps=40, seed=1, transforms=transforms, after_step=after_step,
                                   norm=rho)
            assert opt.image.norm().item() == pytest.approx(rho, rel=1e-5)
            assert opt.response > opt.start_response
            assert all(b >= a for a, b in zip(opt.history, opt.history[1:]))     # ascent never goes down
            assert f(opt.image[None]).item() == pytest.approx(opt.response, rel=1e-4, abs=1e-5)


def test_objectives_compose_and_a_channel_objective_is_raised():
    cfg = C.preset("tiny")
    model = DeepSparseAutoencoder(cfg.model)
    det = NetworkDetectors(model, cfg.model, "whole")
    x = torch.randn(4, 3, 20, 20)
    a, b = unit(det, 10), unit(det, det.units - 3)
    torch.testing.assert_close((a - 0.5 * b)(x), a(x) - 0.5 * b(x))
    torch.testing.assert_close((-a)(x), -a(x))
    torch.testing.assert_close(neuron(det, UnitAddress(1, "pool", 2, 3, 4))(x), model(x)[0].pooled[:, 2, 3, 4])
    torch.testing.assert_close(b(x), neuron(det, det.address(det.units - 3))(x))   # a candidate is its address
    mean_map = channel(det, 1, "pool", 2)
    torch.testing.assert_close(mean_map(x), model(x)[0].pooled[:, 2].flatten(1).mean(1))
    opt = optimal_stimulus(mean_map, (3, 20, 20), steps=20, seed=0, norm=20.0)
    assert opt.response > opt.start_response and opt.image.norm().item() == pytest.approx(20.0, rel=1e-5)
