import copy

import numpy as np
import pytest
import torch

from catneuron import config as C
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.train.distributed.params import gather, partition, scatter
from catneuron.train.distributed.replica import Replica
from catneuron.train.distributed.server import InProcessShards, ParameterShard, normalized_runs
from catneuron.train.monitor import LearningMonitor
from catneuron.train.optim import make_optimizer
from catneuron.train.trainer import train_step
from tests.data.helpers import random_images, write_shards


def _model():
    torch.manual_seed(0)
    return DeepSparseAutoencoder(C.preset("tiny").model)


def test_shards_hold_disjoint_parameter_sets_whose_union_is_the_model():
    model = _model()
    for shards in (1, 2, 3, 5):
        specs = partition(model, shards)
        covered = {name: np.zeros(p.numel(), int) for name, p in model.named_parameters()}
        for spec in specs:
            for piece in spec.pieces:
                covered[piece.name][piece.row_start * piece.row_size:piece.row_end * piece.row_size] += 1
        assert all((c == 1).all() for c in covered.values())                    # each value exactly once
        sizes = [spec.size for spec in specs]
        assert max(sizes) - min(sizes) <= 2 * 5 * 5 * 4                          # balanced to a feature row
        # a round trip through the shards gives the parameters back
        other = copy.deepcopy(model)
        with torch.no_grad():
            for p in other.parameters():
                p.zero_()
        for spec in specs:
            scatter(other, spec, gather(model, spec))
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))


@pytest.mark.parametrize("optimizer, settings", [("adagrad", []), ("adam", ["train.weight_decay=0.5"]),
                                                 ("sgd", ["train.momentum=0.9", "train.weight_decay=0.5"])])
def test_a_shard_steps_as_the_single_process_trainer_does(optimizer, settings):
    """Shards of the parameters, each stepped by its own optimizer, give the weights the
    single-process trainer's step gives (optimizer, decoupled decay, unit-norm constraint):
    the update rule is one, whatever the optimizer, Adam included."""
    cfg = C.apply_overrides(C.preset("tiny"), [f"train.optimizer={optimizer}", "train.lr=0.05", *settings])
    model = _model()
    reference = copy.deepcopy(model)
    opt = make_optimizer(cfg.train, reference.parameters())
    specs = partition(model, 2)
    shards = [ParameterShard(gather(model, spec), normalized_runs(spec), cfg.train) for spec in specs]
    x = torch.randn(4, 3, 20, 20)
    for _ in range(3):
        train_step(reference, opt, cfg, x)
        for spec, shard in zip(specs, shards):
            scatter(model, spec, shard.pull()[1])
        model.zero_grad()
        model.objective(x).total.backward()
        for spec, shard in zip(specs, shards):
            assert shard.push(gather(model, spec, grads=True), version=shard.version) == 0
    for spec, shard in zip(specs, shards):
        scatter(model, spec, shard.pull()[1])
    for a, b in zip(reference.parameters(), model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    w = model.stages[0].decoder.weight
    torch.testing.assert_close(w.flatten(3).norm(dim=3), torch.ones(w.shape[:3]), rtol=1e-5, atol=1e-5)
    # a shard restored from its state continues exactly (the optimizer's moments travel with it)
    again = ParameterShard(gather(model, specs[0]), normalized_runs(specs[0]), cfg.train)
    again.load_state_dict(shards[0].state_dict())
    grad = np.random.default_rng(0).standard_normal(specs[0].size).astype(np.float32)
    shards[0].push(grad, shards[0].version)
    again.push(grad, again.version)
    np.testing.assert_allclose(again.pull()[1], shards[0].pull()[1], rtol=1e-6)


@pytest.fixture
def keep_threads():
    """A replica sets its process's thread count (distributed.threads); give the others theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_replicas_fetch_and_push_every_p_and_g_steps_and_lower_the_objective(tmp_path, keep_threads):
    write_shards(tmp_path / "data" / "set", random_images(80, size=24), per_shard=20)
    cfg = C.apply_overrides(C.preset("tiny"), ["distributed.fetch_every=3",
                                               "distributed.push_every=2", "distributed.replicas=2"])
    cfg.data.train = [str(tmp_path / "data")]
    model = _model()
    monitor = LearningMonitor.of(model)
    specs = partition(model, 2)
    shards = [ParameterShard(gather(model, s), normalized_runs(s), cfg.train) for s in specs]
    local = InProcessShards(shards)
    replicas = [Replica(cfg, r, specs, monitor.initial) for r in range(2)]
    first = last = None
    for _ in range(4):
        for rep in replicas:
            stats = rep.run(local, 6)
            assert (stats.pulls, stats.pushes) == (2, 3)
            first = first if first is not None else stats.losses[0]
            last = stats.losses[-1]
    assert all(s.counts() == {"version": 24, "pushes": 24, "pulls": 16} for s in shards)
    assert last < 0.7 * first
    # the learning measures, against the shards' initialization: the filters moved from it
    for k in range(1, len(cfg.model.stages) + 1):
        assert 0 < stats.learning[f"stage{k}/from_init"] < 1
        assert {f"stage{k}/structure", f"stage{k}/kurtosis"} <= set(stats.learning)
