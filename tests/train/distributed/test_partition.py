import copy

import numpy as np
import pytest
import torch

from catneuron import config as C
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.train.distributed.partition import SpatialPartition, bands


def _assert_same_objective_and_gradients(whole, split, x):
    a, b = whole.objective(x), split.objective(x)
    torch.testing.assert_close(b.total, a.total, rtol=1e-5, atol=1e-4)
    a.total.backward()
    b.total.backward()
    for (name, p), (_, q) in zip(whole.named_parameters(), split.named_parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_bands_cover_the_rows_once():
    for rows, parts in ((16, 3), (10, 4), (5, 5), (7, 2)):
        b = bands(rows, parts)
        assert b[0][0] == 0 and b[-1][1] == rows and all(x[1] == y[0] for x, y in zip(b, b[1:]))


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("cross", [False, True])
def test_partitioned_forward_and_backward_equal_the_whole_model(parts, cross):
    cfg = copy.deepcopy(C.preset("tiny").model)
    cfg.cross_stage_grad = cross                  # also the input gradients of the upper encoders
    cfg.input_size = 24
    cfg.stages[1].stride = 2                      # odd halos: stride 2 with a 5-wide field
    torch.manual_seed(0)
    whole = DeepSparseAutoencoder(cfg)
    split = copy.deepcopy(whole)
    SpatialPartition(split, parts)
    x = torch.randn(6, 3, 24, 24)
    _assert_same_objective_and_gradients(whole, split, x)
    for oa, ob in zip(whole(x), split(x)):
        torch.testing.assert_close(ob.normalized, oa.normalized, rtol=1e-5, atol=1e-5)


def test_sync_sends_new_weights():
    cfg = C.preset("tiny").model
    whole = DeepSparseAutoencoder(cfg)
    split = copy.deepcopy(whole)
    part = SpatialPartition(split, 2)
    with torch.no_grad():
        for p, q in zip(whole.parameters(), split.parameters()):
            p.mul_(1.5)
            q.mul_(1.5)
    part.sync()
    x = torch.randn(2, 3, 20, 20)
    torch.testing.assert_close(split(x)[-1].normalized, whole(x)[-1].normalized, rtol=1e-5, atol=1e-5)


def test_partitions_on_ray_actors_equal_the_whole_model(local_ray):
    from catneuron.train.distributed.partition import ray_workers
    torch.manual_seed(0)
    whole = DeepSparseAutoencoder(C.preset("tiny").model)
    split = copy.deepcopy(whole)
    SpatialPartition(split, 2, ray_workers(2, cpus_each=0))
    _assert_same_objective_and_gradients(whole, split, torch.randn(4, 3, 20, 20))


def test_gpus_go_to_the_workers_that_compute_at_most_one_each():
    from catneuron.train.distributed.ray_trainer import GpuPlacement, gpu_placement
    assert gpu_placement(0, "cuda", 4, 1) == GpuPlacement()
    assert gpu_placement(8, "cpu", 4, 1) == GpuPlacement()          # train.device = cpu keeps them off
    assert gpu_placement(8, "auto", 4, 1) == GpuPlacement(replica=1.0)
    assert gpu_placement(2, "cuda", 4, 1) == GpuPlacement(replica=0.5)
    assert gpu_placement(8, "cuda", 2, 4) == GpuPlacement(band=1.0)    # model parallel: the bands compute
    assert gpu_placement(4, "cuda", 2, 4) == GpuPlacement(band=0.5)


def test_a_band_worker_answers_in_numpy():
    from catneuron.train.distributed.partition import BandWorker
    cpu = BandWorker()
    cpu.set_weights({0: np.ones((2, 2, 3, 2, 2, 1), np.float32)})
    out = cpu.encode(0, np.ones((1, 1, 3, 3), np.float32), 1)
    assert isinstance(out, np.ndarray) and out.shape == (1, 3, 2, 2) and np.all(out == 4)
