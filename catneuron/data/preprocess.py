"""From decoded images to the network's input.

A batch of uint8 (N, H, W, C) arrays becomes a float tensor (N, C, H, W) in [0, 1], then, by the
`data.preprocess` setting:

  standardize  each image shifted to zero mean and divided by sqrt(variance + 1e-4) over all its
               pixels and channels: unit variance, except that near-flat images are not blown up.
               Global brightness and contrast carry no object identity and would otherwise
               dominate the reconstruction error.
  whiten       each channel filtered by R(f) = f exp(-(f / f0)^4), f0 = 0.4 cycles/pixel (Olshausen
               & Field 1996: it flattens the 1/f amplitude spectrum of natural images, with a soft
               cut below the Nyquist frequency against aliasing and noise), then standardized. The
               reconstruction error then weighs all spatial frequencies alike instead of being
               dominated by the lowest.
  lcn          standardized, then local contrast normalization with a 9x9 Gaussian window (as
               Jarrett et al. 2009 apply to their inputs), then standardized again.
  none         [0, 1] values as they are.
"""
from __future__ import annotations

import numpy as np
import torch

WHITENING_CUTOFF = 0.4     # f0, cycles per pixel
INPUT_LCN_SIZE = 9


def _per_image_standardize(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    mean, var = flat.mean(1), flat.var(1)
    return (x - mean[:, None, None, None]) / torch.sqrt(var + 1e-4)[:, None, None, None]


def whitening_filter(height: int, width: int, cutoff: float = WHITENING_CUTOFF, device=None) -> torch.Tensor:
    """(H, W) frequency response f exp(-(f / cutoff)^4), f the radial frequency in cycles/pixel."""
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.fftfreq(width, device=device)[None, :]
    f = torch.sqrt(fx * fx + fy * fy)
    return f * torch.exp(-(f / cutoff) ** 4)


def whiten(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> the same, each channel filtered by ``whitening_filter`` (zero mean by it: R(0) = 0)."""
    response = whitening_filter(*x.shape[-2:], device=x.device).to(x.dtype)
    return torch.fft.ifft2(torch.fft.fft2(x) * response).real


def preprocessed(x: torch.Tensor, preprocess: str = "standardize") -> torch.Tensor:
    """Float (N, C, H, W) in [0, 1] -> the network's input, as described in the module docstring."""
    if preprocess == "standardize":
        return _per_image_standardize(x)
    if preprocess == "whiten":
        return _per_image_standardize(whiten(x))
    if preprocess == "lcn":
        from catneuron.nn.lcn import local_contrast_norm
        return _per_image_standardize(local_contrast_norm(_per_image_standardize(x), INPUT_LCN_SIZE))
    return x


def to_tensor(batch: np.ndarray, preprocess: str = "standardize", device=None) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) on `device`, preprocessed there.

    The batch crosses to an accelerator as uint8 (a quarter of float32's bytes) from pinned memory,
    asynchronously, and is converted and standardized on the device, off the CPU's critical path."""
    x = torch.from_numpy(batch)
    if device is not None and torch.device(device).type == "cuda":
        x = x.pin_memory().to(device, non_blocking=True)
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    return preprocessed(x, preprocess).contiguous()
