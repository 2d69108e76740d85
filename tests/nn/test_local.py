import pytest
import torch

from catneuron.nn import lc_batched, lc_bf16, lc_native
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
BACKENDS = ["torch", "batched", pytest.param("native", marks=pytest.mark.skipif(not lc_native.available(),
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
    dtype = torch.float32 if backend == "native" else torch.float64
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

    dtype = torch.float32 if backend == "native" else torch.float64
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


def test_decoder_layer_is_the_transpose_of_its_geometry():
    """12 - 5 is odd at stride 2: the last input row and column are covered by no filter and stay 0."""
    dec = LocallyConnectedTranspose2d(3, 4, 12, 5, 2, dtype=torch.float64)
    h = torch.randn(2, 4, *dec.out_size, dtype=torch.float64)
    out = dec(h)
    torch.testing.assert_close(out, reference.locally_connected_transpose(h, dec.weight.detach(), 2, (12, 12)))
    assert out.shape == (2, 3, 12, 12) and out[:, :, 11].abs().sum() == 0 and out[:, :, :, 11].abs().sum() == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(in_channels=3, out_maps=2, in_size=8, receptive_field=9), "larger than the input"),
    (dict(in_channels=3, out_maps=2, in_size=8, receptive_field=3, stride=0), "stride must be >= 1"),
])
def test_bad_geometry_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocallyConnected2d(**kwargs)


def _three_maps(x, w, dy, s, **kw):
    """forward, transpose of dy and weight gradient by lc_batched."""
    return (lc_batched.forward(x, w, s, **kw), lc_batched.transpose(dy, w, s, x.shape[-2:], **kw),
            lc_batched.weight_grad(x, dy, s, w.shape[3], **kw))


@pytest.mark.parametrize("shape", [(5, 3, 11, 13, 4, 2, 3), (7, 2, 9, 9, 3, 1, 9), (3, 5, 15, 8, 2, 2, 11)])
def test_batched_kernels_do_not_depend_on_the_band_size(shape):
    """Bands of one row, of a few rows that do not divide the output (so the last one is short and
    the transpose's bands overlap on the input) and of the whole layer give the reference's results."""
    layer, x, r, s = _case(shape)
    w = layer.weight.detach()
    dy = torch.randn(x.shape[0], layer.out_maps, *layer.out_size, dtype=torch.float64)
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    gw_ref = torch.autograd.grad(reference.locally_connected(xr, wr, s), wr, dy)[0]
    expected = (reference.locally_connected(x, w, s), reference.locally_connected_transpose(dy, w, s, x.shape[-2:]),
                gw_ref)
    row_bytes = layer.out_size[1] * x.shape[0] * r * r * x.shape[1] * 8
    for chunk_bytes in (1, 2 * row_bytes, 3 * row_bytes - 1, 1 << 40):
        for got, want in zip(_three_maps(x, w, dy, s, chunk_bytes=chunk_bytes), expected):
            torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_bf16_multiplies_stay_within_bfloat16_rounding():
    """bf16 rounds each operand to 8 significant bits and accumulates in float32: errors of order
    2^-8 relative, and never those of an unrounded result (so the setting does take effect)."""
    layer, x, r, s = _case((8, 3, 14, 14, 5, 1, 4), dtype=torch.float32)
    w = layer.weight.detach()
    dy = torch.randn(8, 4, *layer.out_size)
    exact = _three_maps(x.double(), w.double(), dy.double(), s)
    for got, want in zip(_three_maps(x, w, dy, s, precision="bf16"), exact):
        assert got.dtype == torch.float32
        error = ((got.double() - want).norm() / want.norm()).item()
        assert 1e-5 < error < 2e-2


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precision_goes_through_a_kernel_that_offers_it(precision):
    layer = LocallyConnected2d(3, 4, 10, 3, precision=precision)
    x = torch.randn(2, 3, 10, 10, requires_grad=True)
    exact = locally_connected(x, layer.weight, 1, backend="torch")
    y = layer(x)
    torch.testing.assert_close(y, exact, rtol=0.05, atol=0.05)
    y.sum().backward()
    w = layer.weight.detach().clone().requires_grad_(True)
    x_exact = x.detach().clone().requires_grad_(True)
    locally_connected(x_exact, w, 1, backend="torch").sum().backward()
    torch.testing.assert_close(layer.weight.grad, w.grad, rtol=0.05, atol=0.05)     # at reduced precision
    torch.testing.assert_close(x.grad, x_exact.grad, rtol=0.05, atol=0.05)
    # On the CPU, bf16 is also lc_bf16's (backend native); tf32 only the batched kernel's.
    for backend in ("native", "torch") if precision == "tf32" else ("torch",):
        with pytest.raises(RuntimeError, match="needs backend auto, batched"):
            locally_connected(x, layer.weight, 1, backend=backend, precision=precision)


def test_auto_picks_the_kernel_by_device_and_dtype():
    from catneuron.nn.local import select_kernels
    x32, x64 = torch.zeros(1), torch.zeros(1, dtype=torch.float64)
    assert select_kernels("auto", "fp32", x64)[0].__name__.endswith("lc_torch")
    if lc_bf16.available():
        assert select_kernels("auto", "bf16", x32)[0] is lc_bf16
    if lc_native.available():
        assert select_kernels("auto", "fp32", x32)[0] is lc_native
    meta = torch.zeros(1, device="meta")       # stands for any accelerator
    assert select_kernels("auto", "fp32", meta)[0] is lc_batched


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@needs_cuda
@pytest.mark.parametrize("shape", SHAPES)
def test_cuda_forward_and_gradients_match_reference(shape):
    layer, x, r, s = _case(shape)
    w = layer.weight.detach()
    dy = torch.randn(x.shape[0], layer.out_maps, *layer.out_size, dtype=torch.float64)
    expected = _three_maps(x, w, dy, s)
    xc, wc = x.float().cuda().requires_grad_(), w.float().cuda().requires_grad_()
    y = locally_connected(xc, wc, s)
    gx, gw = torch.autograd.grad(y, (xc, wc), dy.float().cuda())
    h = dy.float().cuda().requires_grad_()
    back = locally_connected_transpose(h, wc.detach(), s, x.shape[-2:])
    for got, want in zip((y, back, gw), expected):
        torch.testing.assert_close(got.double().cpu(), want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gx.double().cpu(), expected[1], rtol=1e-4, atol=1e-4)


@needs_cuda
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_cuda_reduced_precision_trains_a_stage(precision):
    """One stage on CUDA at reduced precision: its objective and gradients stay close to float32's."""
    from catneuron.config import preset
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    cfg = preset("tiny").model
    torch.manual_seed(0)
    exact = DeepSparseAutoencoder(cfg, device="cuda")
    cfg.precision = precision
    reduced = DeepSparseAutoencoder(cfg, device="cuda")
    reduced.load_state_dict(exact.state_dict())
    x = torch.randn(16, 3, 20, 20, device="cuda")
    losses = []
    for model in (exact, reduced):
        total = model.objective(x).total
        total.backward()
        losses.append(total.item())
    assert abs(losses[1] - losses[0]) < 0.02 * abs(losses[0])
    for a, b in zip(exact.parameters(), reduced.parameters()):
        assert ((a.grad - b.grad).norm() / a.grad.norm()).item() < 0.05


def _ops_dispatched(fn) -> int:
    """Number of ATen operators fn() dispatches: on a GPU each is at least one kernel launch."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        calls = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.calls


def test_batched_kernel_launches_few_operators_per_layer():
    """Forward + both gradients of a 32x32x3 layer with 8x8 fields: the batched kernel dispatches a
    few dozen operators per band (views included; 3 bands here), the row-by-row kernel
    thousands (one per output row and kernel row, per kernel column too in the transpose) — the
    launch count that bounds it on a GPU."""
    w = torch.randn(25, 25, 8, 8, 8, 3) * 0.01

    def layer(kernel, batch, **kw):    # the row kernel's count does not depend on the batch
        x, dy = torch.randn(batch, 3, 32, 32), torch.randn(batch, 8, 25, 25)
        return lambda: (kernel.forward(x, w, 1, **kw), kernel.transpose(dy, w, 1, (32, 32), **kw),
                        kernel.weight_grad(x, dy, 1, 8, **kw))
    from catneuron.nn import lc_torch
    row_bytes = 25 * 100 * 8 * 8 * 3 * 4
    batched = _ops_dispatched(layer(lc_batched, 100, chunk_bytes=9 * row_bytes))     # bands of 9, 9 and 7 rows
    rows = _ops_dispatched(layer(lc_torch, 2))
    assert batched <= 3 * 40 and rows >= 2000, (batched, rows)
