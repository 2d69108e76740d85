import pytest
import torch

from catneuron.config import ModelConfig, StageConfig
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.nn.geometry import sublayers

@pytest.mark.parametrize("kind", ["sparse", "sigmoid"])
def test_every_sublayer_unit_sees_exactly_its_stated_field(kind):
    """The input pixels that move a unit (its gradient's support) are the square of side `field`
    that begins at field_start(index): the geometry is the modules', strides, pooling and LCN's
    two centred windows included."""
    cfg = ModelConfig(input_size=40, channels=2, kind=kind, backend="torch",
                      stages=[StageConfig(3, 4, 2, 3, 1, 3), StageConfig(2, 3, 1, 2, 2, 3)])
    torch.manual_seed(0)
    model = DeepSparseAutoencoder(cfg, dtype=torch.float64)
    for sub in sublayers(cfg):
        inside = sub.inside(40)           # units whose field the image edge does not cut
        assert len(inside) > 0, sub
        i = j = inside[len(inside) // 2]
        x = torch.randn(1, 2, 40, 40, dtype=torch.float64, requires_grad=True)
        unit = model(x)[sub.stage - 1].sublayers[sub.kind][0, 0, i, j]
        (grad,) = torch.autograd.grad(unit, x)
        rows, cols = grad.abs().sum(dim=(0, 1)).nonzero(as_tuple=True)
        assert (rows.min().item(), cols.min().item()) == (sub.field_start(i), sub.field_start(j)), sub
        assert (rows.max() - rows.min() + 1).item() == sub.field == (cols.max() - cols.min() + 1).item(), sub
        assert model(x)[sub.stage - 1].sublayers[sub.kind].shape[-1] == sub.size


def test_units_inside_are_exactly_those_whose_field_fits():
    cfg = ModelConfig(input_size=40, channels=2, stages=[StageConfig(3, 4, 2, 3, 1, 3), StageConfig(2, 3, 1, 2, 2, 3)])
    for sub in sublayers(cfg):
        fits = [i for i in range(sub.size) if 0 <= sub.field_start(i) and sub.field_start(i) + sub.field <= 40]
        assert list(sub.inside(40)) == fits, sub
