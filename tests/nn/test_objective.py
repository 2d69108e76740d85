import copy

import pytest
import torch

from catneuron.config import ModelConfig, StageConfig, preset
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.nn.local import locally_connected, locally_connected_transpose
from catneuron.nn.objective import stage_loss
from catneuron.nn.stage import Stage
from tests.nn import reference


def _stage(in_size=9, receptive_field=4):
    cfg = ModelConfig(input_size=in_size, channels=2, eps=0.01, backend="torch",
                      stages=[StageConfig(maps=3, receptive_field=receptive_field, pool_size=3, lcn_size=3)])
    return Stage(cfg, 0, dtype=torch.float64)


def test_stage_objective_equals_formula():
    stage = _stage()
    x = torch.randn(5, 2, 9, 9, dtype=torch.float64)
    out = stage(x)
    loss = stage_loss(x, out.code, stage.reconstruct(out))
    W1, W2, lam, eps = stage.encoder.weight, stage.decoder.weight, 0.3, 0.01
    h = reference.locally_connected(x, W1, 1)                                   # W1^T x
    recon = reference.locally_connected_transpose(h, W2, 1, (9, 9))             # W2 W1^T x
    pooled = torch.sqrt(eps + torch.nn.functional.avg_pool2d(h * h, 3, 1, divisor_override=1))
    per_image = ((recon - x) ** 2).sum((1, 2, 3)) + lam * pooled.sum((1, 2, 3))
    torch.testing.assert_close(loss.total(lam), per_image.mean())


def test_each_stage_weighs_its_sparsity_by_its_own_lambda():
    """model.stages.K.sparsity replaces model.sparsity for stage K only; the total is the sum of the
    stages' reconstruction + lambda_K * sparsity."""
    cfg = copy.deepcopy(preset("tiny").model)
    cfg.sparsity, cfg.stages[2].sparsity = 0.1, 2.5
    torch.manual_seed(0)
    model = DeepSparseAutoencoder(cfg)
    objective = model.objective(torch.randn(4, 3, 20, 20))
    expected = sum(s.reconstruction + lam * s.sparsity for s, lam in zip(objective.stages, (0.1, 0.1, 2.5)))
    torch.testing.assert_close(objective.total, expected)
    assert [model.sparsity_weight(k) for k in range(3)] == [0.1, 0.1, 2.5]


def test_stage_objective_gradcheck():
    stage = _stage(in_size=7, receptive_field=3)
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)

    def objective(w1, w2):
        h = locally_connected(x, w1, 1, backend="torch")
        recon = locally_connected_transpose(h, w2, 1, (7, 7), backend="torch")
        return stage_loss(x, stage.pool(h), recon).total(0.1)

    w1 = stage.encoder.weight.detach().clone().requires_grad_()
    w2 = stage.decoder.weight.detach().clone().requires_grad_()
    torch.autograd.gradcheck(objective, (w1, w2))


def _tiny(**overrides) -> DeepSparseAutoencoder:
    cfg = copy.deepcopy(preset("tiny").model)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return DeepSparseAutoencoder(cfg)


@pytest.mark.parametrize("cross", [False, True])
def test_cross_stage_gradient_setting(cross):
    """With cross_stage_grad off, stage 2's objective moves no stage-1 weight; on, it does."""
    model = _tiny(cross_stage_grad=cross)
    x = torch.randn(4, 3, 20, 20)
    obj = model.objective(x)
    grads = torch.autograd.grad(obj.stages[1].total(0.1), model.stages[0].encoder.weight, allow_unused=True)[0]
    if cross:
        assert grads is not None and grads.abs().sum() > 0
    else:
        assert grads is None or grads.abs().sum() == 0


@pytest.mark.parametrize("constraint", ["decoder", "encoder", "both"])
def test_unit_norm_constraint_holds_after_steps(constraint):
    model = _tiny(norm_constraint=constraint)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        model.objective(torch.randn(8, 3, 20, 20)).total.backward()
        opt.step()
        model.project_()
    for stage in model.stages:
        constrained = {"decoder": [stage.decoder.weight], "encoder": [stage.encoder.weight],
                       "both": [stage.encoder.weight, stage.decoder.weight]}[constraint]
        for w in constrained:
            torch.testing.assert_close(w.flatten(3).norm(dim=3), torch.ones(w.shape[:3]), rtol=1e-5, atol=1e-5)


def test_constraint_removes_the_scale_cheat():
    """Untied, W1 -> W1 / 10 and W2 -> 10 W2 keeps every reconstruction and cuts the sparsity term:
    the objective can be lowered without learning anything. Unit-norm decoder bases remove that."""
    model = _tiny(norm_constraint="decoder", sparsity=0.1)
    x = torch.randn(8, 3, 20, 20)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    for _ in range(100):  # to where reconstruction beats the trivial all-zero output
        opt.zero_grad()
        model.objective(x).total.backward()
        opt.step()
        model.project_()
    honest = model.objective(x).stages[0]
    assert honest.reconstruction < 0.5 * x.pow(2).sum((1, 2, 3)).mean()
    cheat = copy.deepcopy(model)
    with torch.no_grad():
        cheat.stages[0].encoder.weight /= 10
        cheat.stages[0].decoder.weight *= 10
    cheated = cheat.objective(x).stages[0]
    torch.testing.assert_close(cheated.reconstruction, honest.reconstruction, rtol=1e-4, atol=1e-3)
    assert cheated.total(0.1) < honest.total(0.1) and cheated.sparsity < 0.2 * honest.sparsity
    cheat.project_()
    projected = cheat.objective(x).stages[0]
    assert projected.total(0.1) > honest.total(0.1)


def test_tied_weights_share_one_parameter():
    model = _tiny(tied_weights=True)
    assert all(stage.decoder is None for stage in model.stages)
    untied = _tiny()
    assert sum(p.numel() for p in untied.parameters()) == 2 * sum(p.numel() for p in model.parameters())
    # The tied weight's gradient is the sum of the encoder's and the decoder's in the untied model
    # holding the same values in both.
    with torch.no_grad():
        for tied, free in zip(model.stages, untied.stages):
            free.encoder.weight.copy_(tied.encoder.weight)
            free.decoder.weight.copy_(tied.encoder.weight)
    x = torch.randn(2, 3, 20, 20)
    model.objective(x).total.backward()
    untied.objective(x).total.backward()
    for tied, free in zip(model.stages, untied.stages):
        torch.testing.assert_close(tied.encoder.weight.grad, free.encoder.weight.grad + free.decoder.weight.grad,
                                   rtol=1e-4, atol=1e-5)


def test_forward_gives_every_sublayer_with_documented_shapes():
    cfg = ModelConfig(input_size=20, channels=3, stages=[StageConfig(4, 5, 1, 3, 1, 3), StageConfig(6, 3, 2, 2, 1, 3)])
    outs = DeepSparseAutoencoder(cfg)(torch.randn(2, 3, 20, 20))
    assert [tuple(o.filtered.shape) for o in outs] == [(2, 4, 16, 16), (2, 6, 6, 6)]
    assert [tuple(o.pooled.shape) for o in outs] == [(2, 4, 14, 14), (2, 6, 5, 5)]
    assert all(o.normalized.shape == o.pooled.shape for o in outs)


def test_sigmoid_autoencoder_baseline():
    """Table 1's deep autoencoder: same connectivity, sigmoid units, no pooling or LCN."""
    model = _tiny(kind="sigmoid")
    x = torch.randn(6, 3, 20, 20)
    outs = model(x)
    assert [tuple(o.filtered.shape) for o in outs] == [(6, 4, 16, 16), (6, 4, 12, 12), (6, 4, 10, 10)]
    assert all(torch.equal(o.hidden, torch.sigmoid(o.filtered)) and o.normalized is o.hidden for o in outs)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        opt.zero_grad()
        obj = model.objective(x)
        obj.total.backward()
        opt.step()
        model.project_()
        first = first or obj.total.item()
    assert obj.total.item() < 0.8 * first
    assert model.stages[0].hidden_bias.abs().sum() > 0       # the biases learn


def test_joint_training_across_stages_is_stable_on_tiny():
    """model.cross_stage_grad: the exact gradient of the summed objective reaches the stages below;
    200 Adam steps on a fixed set of images keep it finite and lower it."""
    from catneuron.train.optim import make_optimizer
    from catneuron.train.trainer import train_step
    cfg = preset("tiny")
    cfg.model.cross_stage_grad = True
    cfg.train.optimizer, cfg.train.lr = "adam", 0.003
    torch.manual_seed(0)
    model = DeepSparseAutoencoder(cfg.model)
    optimizer = make_optimizer(cfg.train, model.parameters())
    images = torch.randn(40, 3, 20, 20)
    losses = [train_step(model, optimizer, cfg, images[(k % 2) * 20:(k % 2) * 20 + 20]).total.item()
              for k in range(200)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) < 0.7 * sum(losses[:10])
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("kind", ["sparse", "sigmoid"])
def test_a_stage_computes_one_sublayer_alone_as_in_its_full_output(kind):
    model = _tiny(kind=kind)
    x = torch.randn(3, 3, 20, 20)
    out = model.stages[0](x)
    for name, value in out.sublayers.items():
        torch.testing.assert_close(model.stages[0].sublayer(x, name), value)
