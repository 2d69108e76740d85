import pytest
import torch

from catneuron.nn import lc_native
from catneuron.nn.local import (LocallyConnected2d, LocallyConnectedTranspose2d, locally_connected,
                                locally_connected_transpose)
from tests.nn import reference

# (batch, channels, height, width, receptive field, stride, maps): odd sizes, strides that leave
# uncovered border pixels, maps and channels that are not multiples of the kernel's 8-row tile,
# batches below, at and above one vector.
SHAPES = [
    (5, 3, 11, 13, 4, 2, 3),
    (7, 2, 9, 9, 3, 1, 9),
    (17, 4, 12, 10, 5, 3, 2),
    (33, 8, 20, 20, 6, 2, 8),
    (16, 9, 10, 10, 4, 1, 16),
    (1, 1, 7, 7, 7, 1, 1),
    (3, 5, 15, 8, 2, 2, 11),
]
BACKENDS = ["torch", pytest.param("native", marks=pytest.mark.skipif(not lc_native.available(),
                                                                       reason="no C++ compiler"))]


def _case(shape, dtype=torch.float64):
    N, C, H, W, r, s, M = shape
    layer = LocallyConnected2d(C, M, (H, W), r, s, dtype=dtype)
    x = torch.randn(N, C, H, W, dtype=dtype)
    return layer, x, r, s


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_backward_match_reference(shape, backend):
    layer, x, r, s = _case(shape)
    weight = layer.weight.detach()
    x.requires_grad_()
    w = weight.clone().requires_grad_()
    y_ref = reference.locally_connected(x, w, s)
    dy = torch.randn_like(y_ref)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (x, w), dy)

    # The native kernel is float32 only: compare it to the float64 reference at float32 precision.
    dtype = torch.float64 if backend == "torch" else torch.float32
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    xb = x.detach().to(dtype).requires_grad_()
    wb = weight.to(dtype).requires_grad_()
    y = locally_connected(xb, wb, s, backend=backend)
    gx, gw = torch.autograd.grad(y, (xb, wb), dy.to(dtype))
    torch.testing.assert_close(y.double(), y_ref.detach(), **tol)
    torch.testing.assert_close(gx.double(), gx_ref, **tol)
    torch.testing.assert_close(gw.double(), gw_ref, **tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_transpose_and_its_gradients_match_reference(shape, backend):
    layer, x, r, s = _case(shape)
    N, C, H, W = x.shape
    h = torch.randn(N, layer.out_maps, *layer.out_size, dtype=torch.float64, requires_grad=True)
    w = layer.weight.detach().clone().requires_grad_()
    x_ref = reference.locally_connected_transpose(h, w, s, (H, W))
    dx = torch.randn_like(x_ref)
    gh_ref, gw_ref = torch.autograd.grad(x_ref, (h, w), dx)

    dtype = torch.float64 if backend == "torch" else torch.float32
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    hb = h.detach().to(dtype).requires_grad_()
    wb = w.detach().to(dtype).requires_grad_()
    out = locally_connected_transpose(hb, wb, s, (H, W), backend=backend)
    gh, gw = torch.autograd.grad(out, (hb, wb), dx.to(dtype))
    torch.testing.assert_close(out.double(), x_ref.detach(), **tol)
    torch.testing.assert_close(gh.double(), gh_ref, **tol)
    torch.testing.assert_close(gw.double(), gw_ref, **tol)


def test_gradcheck_torch_backend():
    layer, x, r, s = _case((2, 2, 7, 6, 3, 2, 3))
    x.requires_grad_()
    torch.autograd.gradcheck(lambda a, b: locally_connected(a, b, s, backend="torch"), (x, layer.weight))
    h = torch.randn(2, 3, *layer.out_size, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b: locally_connected_transpose(a, b, s, (7, 6), backend="torch"),
                             (h, layer.weight))


def test_transpose_is_the_adjoint():
    """<LC x, y> = <x, LC^T y> for the same weights: the decoder shares the encoder's connectivity."""
    layer, x, r, s = _case((4, 3, 13, 13, 5, 2, 6), dtype=torch.float32)
    y = torch.randn(4, 6, *layer.out_size)
    lhs = (locally_connected(x, layer.weight, s) * y).sum()
    rhs = (x * locally_connected_transpose(y, layer.weight, s, (13, 13))).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-4, atol=1e-3)


def test_untied_weights_are_not_a_convolution():
    """Changing the filter at one location changes the output there and nowhere else."""
    layer, x, r, s = _case((2, 3, 10, 10, 3, 1, 2), dtype=torch.float32)
    before = layer(x).detach()
    with torch.no_grad():
        layer.weight[2, 5] += 1.0
    changed = (layer(x).detach() - before).abs().sum(dim=(0, 1)) > 0
    assert changed[2, 5] and changed.sum() == 1


@pytest.mark.skipif(not lc_native.available(), reason="no C++ compiler")
def test_native_results_do_not_depend_on_thread_count():
    layer, x, r, s = _case((23, 8, 16, 16, 5, 1, 8), dtype=torch.float32)
    dy = torch.randn(23, 8, *layer.out_size)
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            xb = x.clone().requires_grad_()
            w = layer.weight.detach().clone().requires_grad_()
            y = locally_connected(xb, w, s, backend="native")
            results.append((y, *torch.autograd.grad(y, (xb, w), dy)))
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert torch.equal(a, b)


def test_decoder_layer_reconstructs_shape():
    dec = LocallyConnectedTranspose2d(3, 4, 12, 5, 2)
    h = torch.randn(2, 4, *dec.out_size)
    assert dec(h).shape == (2, 3, 12, 12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=3, out_maps=2, in_size=8, receptive_field=9), "larger than the input"),
    (dict(in_channels=3, out_maps=2, in_size=8, receptive_field=3, stride=0), "stride must be >= 1"),
])
def test_bad_geometry_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocallyConnected2d(**kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    layer, x, r, s = _case((9, 3, 12, 12, 4, 2, 5), dtype=torch.float32)
    y_cpu = layer(x)
    y_gpu = layer.cuda()(x.cuda())
    torch.testing.assert_close(y_gpu.cpu(), y_cpu, rtol=1e-4, atol=1e-4)
