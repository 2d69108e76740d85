"""Model parallelism: the locally connected layers of a replica split into K spatial partitions.

Each partition owns a horizontal band of output rows of every locally connected layer (encoders
and decoders of all stages): their weights, and the forward and backward computation for those
rows. A band's units see only the input rows under their fields, so the head sends each partition
just its band of the input plus the halo that receptive fields reach into, and gets back just its
output band (forward) or its slice of the input gradient (backward; slices of neighbouring bands
overlap by the halo and are summed). Pooling, LCN and the objective stay on the head (they cost
little), which also keeps a copy of the parameters to talk to the parameter servers and receives
each band's weight gradient into the full `.grad`, so the rest of training does not change.

Partitions are `BandWorker`s: in-process objects (tests), or Ray actors (`ray_workers`), whose
calls then run in parallel, each on a GPU share when the cluster has GPUs (the head stays on its
CPU: the bands are where the FLOPs are).
"""
from __future__ import annotations

import numpy as np
import torch

from catneuron.nn.local import LocallyConnected2d, LocallyConnectedTranspose2d, select_kernels


def bands(rows: int, parts: int) -> list[tuple[int, int]]:
    """Split `rows` output rows into `parts` contiguous bands of nearly equal height."""
    edges = np.linspace(0, rows, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _kernels(*tensors):
    return select_kernels("auto", "fp32", *tensors)[0]


def _out(t: torch.Tensor) -> np.ndarray:
    return t.cpu().numpy()


class BandWorker:
    """One partition: its band of every locally connected layer, computed on `device`."""

    def __init__(self, device: str = "cpu"):
        self.device = torch.device(device)
        self.weights: dict[int, torch.Tensor] = {}
        self.saved: dict[int, tuple] = {}

    def _in(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def set_weights(self, weights: dict[int, np.ndarray]) -> None:
        self.weights = {k: torch.from_numpy(np.array(w)).to(self.device) for k, w in weights.items()}

    def encode(self, layer: int, x: np.ndarray, stride: int) -> np.ndarray:
        """Band of y = LC(x) from the input rows under it: x (N, C, rows, W) -> (N, M, band, Wo)."""
        x = self._in(x)
        self.saved[layer] = (x,)
        return _out(_kernels(x, self.weights[layer]).forward(x, self.weights[layer], stride))

    def encode_backward(self, layer: int, dy: np.ndarray, stride: int, need_input_grad: bool):
        (x,) = self.saved.pop(layer)
        dy = self._in(dy)
        w = self.weights[layer]
        k = _kernels(x, w, dy)
        dx = _out(k.transpose(dy, w, stride, x.shape[-2:])) if need_input_grad else None
        return dx, _out(k.weight_grad(x, dy, stride, w.shape[3]))

    def decode(self, layer: int, h: np.ndarray, stride: int, rows: int, width: int) -> np.ndarray:
        """This band's contribution to the reconstruction: h band (N, M, band, Wo) -> (N, C, rows, W)."""
        h = self._in(h)
        self.saved[layer] = (h,)
        return _out(_kernels(h, self.weights[layer]).transpose(h, self.weights[layer], stride, (rows, width)))

    def decode_backward(self, layer: int, dx: np.ndarray, stride: int):
        (h,) = self.saved.pop(layer)
        dx = self._in(dx)
        w = self.weights[layer]
        k = _kernels(h, w, dx)
        return _out(k.forward(dx, w, stride)), _out(k.weight_grad(dx, h, stride, w.shape[3]))


class _Local:
    """Call adapter for in-process workers (same shape as Ray's .remote()/ray.get)."""

    def __init__(self, workers):
        self.workers = workers

    def map(self, method: str, args: list[tuple]) -> list:
        return [getattr(w, method)(*a) for w, a in zip(self.workers, args)]


class _Ray:
    def __init__(self, handles):
        self.workers = handles

    def map(self, method: str, args: list[tuple]) -> list:
        import ray
        return ray.get([getattr(w, method).remote(*a) for w, a in zip(self.workers, args)])


def ray_workers(parts: int, cpus_each: float = 1.0, gpus_each: float = 0.0):
    """`parts` band workers as Ray actors; with gpus_each > 0 each on that share of a GPU (Ray sets
    the actor's CUDA_VISIBLE_DEVICES, so its "cuda" is the one it was given)."""
    import ray
    actor = ray.remote(num_cpus=cpus_each, num_gpus=gpus_each)(BandWorker)
    return _Ray([actor.remote("cuda" if gpus_each else "cpu") for _ in range(parts)])


class _BandedEncoder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, layer, plan):
        ctx.layer, ctx.plan, ctx.in_shape = layer, plan, x.shape
        args = [(layer, x[:, :, a * plan.stride:(b - 1) * plan.stride + plan.r].numpy(), plan.stride)
                for a, b in plan.bands]
        return torch.from_numpy(np.concatenate(plan.pool.map("encode", args), axis=2))

    @staticmethod
    def backward(ctx, dy):
        plan = ctx.plan
        need_dx = ctx.needs_input_grad[0]
        results = plan.pool.map("encode_backward", [(ctx.layer, dy[:, :, a:b].numpy(), plan.stride, need_dx)
                                                    for a, b in plan.bands])
        dw = torch.from_numpy(np.concatenate([w for _, w in results], axis=0))
        dx = None
        if need_dx:
            dx = torch.zeros(ctx.in_shape, dtype=dy.dtype)
            for (a, b), (band_dx, _) in zip(plan.bands, results):
                dx[:, :, a * plan.stride:(b - 1) * plan.stride + plan.r] += torch.tensor(band_dx)   # a copy: arrays from Ray are read-only
        return dx, dw, None, None


class _BandedDecoder(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, layer, plan):
        ctx.layer, ctx.plan = layer, plan
        N, C, H, W = h.shape[0], plan.channels, plan.in_size[0], plan.in_size[1]
        args = [(layer, h[:, :, a:b].numpy(), plan.stride, (b - 1) * plan.stride + plan.r - a * plan.stride, W)
                for a, b in plan.bands]
        out = torch.zeros(N, C, H, W, dtype=h.dtype)
        for (a, b), part in zip(plan.bands, plan.pool.map("decode", args)):
            out[:, :, a * plan.stride:(b - 1) * plan.stride + plan.r] += torch.tensor(part)
        return out

    @staticmethod
    def backward(ctx, dx):
        plan = ctx.plan
        results = plan.pool.map("decode_backward", [
            (ctx.layer, dx[:, :, a * plan.stride:(b - 1) * plan.stride + plan.r].numpy(), plan.stride)
            for a, b in plan.bands])
        dh = torch.from_numpy(np.concatenate([d for d, _ in results], axis=2))
        dw = torch.from_numpy(np.concatenate([w for _, w in results], axis=0))
        return dh, dw, None, None


class _Plan:
    def __init__(self, layer: LocallyConnected2d, parts: int, pool):
        self.bands = bands(layer.out_size[0], parts)
        self.stride, self.r, self.pool = layer.stride, layer.receptive_field, pool
        self.channels, self.in_size = layer.in_channels, layer.in_size


class SpatialPartition:
    """Route every locally connected layer of `model` through K band workers (in place).

    Call `sync()` after the model's parameters change (e.g. after each fetch from the parameter
    servers) to send each partition its bands; gradients arrive in the model's `.grad` as usual.
    """

    def __init__(self, model: torch.nn.Module, parts: int, pool=None):
        self.model, self.pool = model, pool or _Local([BandWorker() for _ in range(parts)])
        self.layers: list[tuple[LocallyConnected2d, _Plan]] = []
        for stage in model.stages:
            for layer in (stage.encoder, stage.decoder):
                if layer is not None:
                    self._route(layer, len(self.layers), _Plan(layer, parts, self.pool))
        self.sync()

    def _route(self, layer: LocallyConnected2d, index: int, plan: _Plan) -> None:
        self.layers.append((layer, plan))
        fn = _BandedDecoder if isinstance(layer, LocallyConnectedTranspose2d) else _BandedEncoder
        layer.forward = lambda x, layer=layer: fn.apply(x.contiguous(), layer.weight, index, plan)

    def sync(self) -> None:
        per_worker = [{} for _ in self.pool.workers]
        for index, (layer, plan) in enumerate(self.layers):
            w = layer.weight.detach()
            for k, (a, b) in enumerate(plan.bands):
                per_worker[k][index] = w[a:b].contiguous().numpy()
        self.pool.map("set_weights", [(w,) for w in per_worker])
