"""The bfloat16 CPU kernels (lc_bf16) against the float64 reference and the float32 kernel."""
import pytest
import torch

from catneuron import native
from catneuron.nn import lc_bf16, lc_native
from catneuron.nn.local import locally_connected, locally_connected_transpose, select_kernels
from tests.nn import reference

needs_bf16 = pytest.mark.skipif(not lc_bf16.available(), reason="no AVX-512 BF16 on this CPU, or no compiler")

# (batch, channels, height, width, receptive field, stride, maps): batches that are not a multiple
# of the 16-sample vector (1, 5, 17, 40), odd maps (the transpose pairs maps), odd stride x
# channels (runs that start at odd columns: the second pairing of the input), odd r*C (a padded
# kernel row), maps beyond one 8-row tile, uncovered borders.
SHAPES = [
    (5, 3, 11, 13, 4, 2, 3),
    (17, 9, 10, 10, 4, 1, 16),
    (1, 1, 7, 7, 7, 1, 1),
    (3, 5, 15, 8, 2, 2, 11),
    (40, 3, 16, 14, 5, 1, 8),
    (33, 8, 20, 20, 6, 2, 8),
]
BF16_UNIT = 2.0 ** -8       # unit roundoff of bfloat16's 8-bit significand (round to nearest)


def _operands(shape):
    N, C, H, W, r, s, M = shape
    Ho, Wo = (H - r) // s + 1, (W - r) // s + 1
    x, w, y = torch.randn(N, C, H, W), torch.randn(Ho, Wo, M, r, r, C) * 0.2, torch.randn(N, M, Ho, Wo)
    return x, w, y, r, s


def _maps(kernels, x, w, y, r, s):
    return (kernels.forward(x, w, s), kernels.transpose(y, w, s, x.shape[-2:]), kernels.weight_grad(x, y, s, r))


def _reference_maps(x, w, y, r, s):
    """The three maps in float64, and each applied to absolute values (what bounds its rounding)."""
    def three(x, w, y):
        x, w, y = x.double().requires_grad_(), w.double().requires_grad_(), y.double()
        out = reference.locally_connected(x, w, s)
        return out.detach(), reference.locally_connected_transpose(y, w.detach(), s, x.shape[-2:]), \
            torch.autograd.grad(out, w, y)[0]
    return three(x, w, y), three(x.abs(), w.abs(), y.abs())


def _inner(x, w, y, r):
    """Terms summed per output of forward, transpose and weight gradient."""
    return r * r * x.shape[1], w.shape[2] * r * r, x.shape[0]


@needs_bf16
@pytest.mark.parametrize("shape", SHAPES)
def test_within_bfloat16_rounding_of_the_exact_maps(shape):
    """Each product of bf16-rounded operands is within 2u of the exact one and the float32 sum of K
    of them adds at most K * 2^-24 of the sum of magnitudes, so |got - exact| <= (2u + K 2^-24 + u^2)
    * map(|a|, |b|) elementwise; and some error is there (the operands were rounded)."""
    x, w, y, r, s = _operands(shape)
    exact, magnitude = _reference_maps(x, w, y, r, s)
    got = _maps(lc_bf16, x, w, y, r, s)
    rounded_somewhere = False
    for g, e, m, k in zip(got, exact, magnitude, _inner(x, w, y, r)):
        assert g.dtype == torch.float32 and g.shape == e.shape
        error = (g.double() - e).abs()
        assert (error <= (2 * BF16_UNIT + BF16_UNIT ** 2 + k * 2.0 ** -24) * m + 1e-30).all()
        rounded_somewhere |= bool((error > 2.0 ** -20 * m).any())
    assert rounded_somewhere


@needs_bf16
@pytest.mark.parametrize("shape", SHAPES)
def test_equals_the_float32_kernel_on_rounded_operands(shape):
    """On operands already in bfloat16 the products are exact: only the order of the float32 sums
    differs from the float32 kernel's."""
    if not lc_native.available():
        pytest.skip("no float32 native kernel")
    x, w, y, r, s = _operands(shape)
    x, w, y = (t.to(torch.bfloat16).float() for t in (x, w, y))
    _, magnitude = _reference_maps(x, w, y, r, s)
    for g, want, m, k in zip(_maps(lc_bf16, x, w, y, r, s), _maps(lc_native, x, w, y, r, s), magnitude,
                             _inner(x, w, y, r)):
        assert ((g.double() - want.double()).abs() <= 2 * k * 2.0 ** -24 * m + 1e-30).all()


@needs_bf16
def test_results_do_not_depend_on_thread_count():
    x, w, y, r, s = _operands((23, 3, 16, 16, 5, 1, 8))
    threads = torch.get_num_threads()
    try:
        runs = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            runs.append(_maps(lc_bf16, x, w, y, r, s))
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


@needs_bf16
def test_precision_bf16_trains_through_the_bf16_kernel():
    """The layer's autograd picks lc_bf16 for bf16 on the CPU, and its gradients are the kernel's."""
    x, w, y, r, s = _operands((6, 3, 12, 12, 4, 1, 4))
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    assert select_kernels("auto", "bf16", xg, wg)[0] is lc_bf16
    out = locally_connected(xg, wg, s, precision="bf16")
    gx, gw = torch.autograd.grad(out, (xg, wg), y)
    torch.testing.assert_close(out, lc_bf16.forward(x, w, s), rtol=0, atol=0)
    torch.testing.assert_close(gx, lc_bf16.transpose(y, w, s, x.shape[-2:]), rtol=0, atol=0)
    torch.testing.assert_close(gw, lc_bf16.weight_grad(x, y, s, r), rtol=0, atol=0)
    h = y.clone().requires_grad_()
    back = locally_connected_transpose(h, wg, s, x.shape[-2:], precision="bf16")
    torch.testing.assert_close(back, lc_bf16.transpose(y, w, s, x.shape[-2:]), rtol=0, atol=0)


def test_the_kernel_is_built_exactly_where_the_cpu_has_the_instructions():
    """The source compiles on any CPU; it reports bf16 support iff /proc/cpuinfo lists avx512_bf16."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    if not flags or native.load("lc_bf16") is None:
        pytest.skip("not x86 Linux, or no compiler")
    assert bool(native.load("lc_bf16").catneuron_bf16_supported()) == ("avx512_bf16" in flags)


def test_without_the_instructions_bf16_falls_back_to_float32_and_says_so(monkeypatch):
    if not lc_native.available():
        pytest.skip("no float32 native kernel")
    monkeypatch.setenv("CATNEURON_CPU_BF16", "0")      # stands for a CPU without AVX-512 BF16
    x, w, y, r, s = _operands((6, 3, 12, 12, 4, 1, 4))
    with pytest.warns(RuntimeWarning, match="compute in float32"):
        out = locally_connected(x, w, s, precision="bf16")
    assert torch.equal(out, lc_native.forward(x, w, s))


@needs_bf16
def test_a_tiny_network_step_in_bf16_matches_float32():
    """The whole objective and its gradient in bf16 against float32, same weights and batch."""
    from catneuron.config import preset
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    cfg = preset("tiny").model
    models = {}
    for precision in ("fp32", "bf16"):
        cfg.precision = precision
        torch.manual_seed(1)
        models[precision] = DeepSparseAutoencoder(cfg)
    x = torch.randn(20, 3, 20, 20)
    losses, grads = {}, {}
    for precision, model in models.items():
        objective = model.objective(x).total
        objective.backward()
        losses[precision] = objective.item()
        grads[precision] = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert abs(losses["bf16"] - losses["fp32"]) <= 0.01 * abs(losses["fp32"])
    assert torch.nn.functional.cosine_similarity(grads["bf16"], grads["fp32"], dim=0) > 0.999
