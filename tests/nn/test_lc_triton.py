"""The Triton kernels (nn/lc_triton.py) against the reference: compiled on CUDA, in Triton's
interpreter on the CPU (the same programs, run by numpy; tests/conftest.py chooses it)."""
import pytest
import torch

from catneuron.nn import lc_triton
from catneuron.nn.local import locally_connected, locally_connected_transpose, select_kernels
from tests.nn import reference

pytestmark = pytest.mark.skipif(not lc_triton.available(), reason="the triton package is not installed")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (batch, channels, height, width, receptive field, stride, maps): a batch over one BLOCK_N and not
# a multiple of it, K = r*r*C below, at and across BLOCK_K, maps over the 16 a dot pads to, strides
# that leave border pixels no field covers, non-square inputs.
SHAPES = [
    (5, 3, 11, 13, 4, 2, 3),
    (70, 4, 12, 10, 5, 3, 17),
    (3, 1, 8, 8, 8, 1, 8),
    (9, 8, 9, 7, 3, 1, 2),
]


def _case(shape):
    N, C, H, W, r, s, M = shape
    Ho, Wo = (H - r) // s + 1, (W - r) // s + 1
    g = torch.Generator().manual_seed(sum(shape))
    x, dy = torch.randn(N, C, H, W, generator=g), torch.randn(N, M, Ho, Wo, generator=g)
    w = torch.randn(Ho, Wo, M, r, r, C, generator=g) / (r * r * C) ** 0.5
    return x.double(), w.double(), dy.double(), s


def _expected(x, w, dy, s):
    """forward, transpose of dy, weight gradient (and x's gradient, which is that transpose)."""
    wr = w.clone().requires_grad_()
    gw, = torch.autograd.grad(reference.locally_connected(x, wr, s), wr, dy)
    return reference.locally_connected(x, w, s), reference.locally_connected_transpose(dy, w, s, x.shape[-2:]), gw


def _on_device(*tensors):
    return [t.float().to(DEVICE).requires_grad_() for t in tensors]


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_both_gradients_match_reference(shape):
    x, w, dy, s = _case(shape)
    y_ref, dx_ref, dw_ref = _expected(x, w, dy, s)
    xd, wd = _on_device(x, w)
    y = locally_connected(xd, wd, s, backend="triton")
    dx, dw = torch.autograd.grad(y, (xd, wd), dy.float().to(DEVICE))
    for got, want in ((y, y_ref), (dx, dx_ref), (dw, dw_ref)):
        torch.testing.assert_close(got.double().cpu(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_transpose_layer_and_its_gradients_match_reference(shape):
    """The decoder's direction: transpose forward, and its gradients (a forward and a weight gradient)."""
    x, w, dy, s = _case(shape)
    h, wt = (t.clone().requires_grad_() for t in (dy, w))
    out_ref = reference.locally_connected_transpose(h, wt, s, x.shape[-2:])
    gh_ref, gw_ref = torch.autograd.grad(out_ref, (h, wt), x)
    hd, wd = _on_device(dy, w)
    out = locally_connected_transpose(hd, wd, s, x.shape[-2:], backend="triton")
    gh, gw = torch.autograd.grad(out, (hd, wd), x.float().to(DEVICE))
    for got, want in ((out, out_ref), (gh, gh_ref), (gw, gw_ref)):
        torch.testing.assert_close(got.double().cpu(), want.detach(), rtol=1e-4, atol=1e-4)


def test_bf16_rounds_the_operands_and_tf32_stays_close():
    """bf16: errors of bfloat16's order (2^-8 relative), never those of unrounded float32, so the
    setting takes effect in all three maps; tf32 (exact in the interpreter) within TF32's."""
    x, w, dy, s = _case((20, 3, 14, 14, 5, 1, 4))
    expected = _expected(x, w, dy, s)
    xd, wd, dyd = (t.float().to(DEVICE) for t in (x, w, dy))
    for precision, lo, hi in (("bf16", 1e-5, 2e-2), ("tf32", 0.0, 5e-3)):
        got = (lc_triton.forward(xd, wd, s, precision), lc_triton.transpose(dyd, wd, s, x.shape[-2:], precision),
               lc_triton.weight_grad(xd, dyd, s, w.shape[3], precision))
        for g, want in zip(got, expected):
            assert g.dtype == torch.float32
            error = ((g.double().cpu() - want).norm() / want.norm()).item()
            assert lo < error < hi, (precision, error)


def test_backend_triton_is_chosen_where_it_runs_and_refused_elsewhere(monkeypatch):
    x = torch.zeros(1, device=DEVICE)
    assert select_kernels("triton", "fp32", x)[0] is lc_triton
    if DEVICE == "cuda":
        assert select_kernels("auto", "bf16", x)[0] is lc_triton
    monkeypatch.setattr(lc_triton, "interpreting", lambda: False)      # a CPU as users have it
    cpu = torch.zeros(1)
    assert select_kernels("auto", "fp32", cpu)[0] is not lc_triton
    with pytest.raises(RuntimeError, match="triton locally connected kernel needs .* CUDA"):
        select_kernels("triton", "fp32", cpu)
    with pytest.raises(RuntimeError, match="triton locally connected kernel needs"):
        select_kernels("triton", "fp32", torch.zeros(1, dtype=torch.float64, device=DEVICE))


def test_a_device_where_the_kernels_fail_falls_back_with_the_reason(monkeypatch):
    """auto asks launch_problem once per device: None where the kernels build and agree with
    lc_batched, else the reason, said in a warning (and auto then takes lc_batched)."""
    lc_triton.launch_problem.cache_clear()
    try:
        assert lc_triton.launch_problem(DEVICE) is None

        def broken(*args, **kwargs):
            raise RuntimeError("ptxas not found\nmore detail")
        monkeypatch.setattr(lc_triton, "forward", broken)
        lc_triton.launch_problem.cache_clear()
        said = r"do not run on .* \(RuntimeError: ptxas not found\); using lc_batched"
        with pytest.warns(RuntimeWarning, match=said):
            assert lc_triton.launch_problem(DEVICE) == "RuntimeError: ptxas not found"
    finally:
        lc_triton.launch_problem.cache_clear()
