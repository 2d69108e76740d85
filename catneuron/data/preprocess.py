"""From decoded images to the network's input.

A batch of uint8 (N, H, W, C) arrays becomes a float tensor (N, C, H, W) in [0, 1] and, with
preprocess = "standardize", each image is shifted to zero mean and divided by
sqrt(variance + 1e-4) over all its pixels and channels: unit variance, except that near-flat
images are not blown up. Global brightness and contrast carry no object identity and would
otherwise dominate the reconstruction error.
"""
from __future__ import annotations

import numpy as np
import torch


def standardize(x: torch.Tensor, preprocess: str = "standardize") -> torch.Tensor:
    """Float (N, C, H, W) in [0, 1] -> the network's input, as described in the module docstring."""
    if preprocess != "standardize":
        return x
    flat = x.flatten(1)
    mean, var = flat.mean(1), flat.var(1)
    return (x - mean[:, None, None, None]) / torch.sqrt(var + 1e-4)[:, None, None, None]


def to_tensor(batch: np.ndarray, preprocess: str = "standardize") -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W), preprocessed."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    return standardize(x, preprocess).contiguous()
