"""Decoding and per-image preprocessing.

Every image, whatever its source size, becomes a square `size` x `size` uint8 array:
  1. decode (JPEG/PNG/...), convert to RGB (or grey when channels == 1);
  2. resize so the shorter side is `size` (bicubic, antialiased), then center-crop the square.
At training time a batch of those arrays becomes a float tensor (N, C, size, size) in [0, 1]
and, with preprocess = "standardize", each image is shifted to zero mean and divided by
sqrt(variance + 1e-4) over all its pixels and channels: unit variance, except that near-flat
images are not blown up. Global brightness and contrast carry no object identity and would
otherwise dominate the reconstruction error.
"""
from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from catneuron.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm")


def decode(data: bytes, origin: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{origin}: not a readable image ({err})") from None
    return img


def fit_square(img: Image.Image, size: int, channels: int = 3) -> np.ndarray:
    """Resize the shorter side to `size` and center-crop: -> uint8 (size, size, channels)."""
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return arr[:, :, None] if channels == 1 else arr


def to_tensor(batch: np.ndarray, preprocess: str = "standardize") -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W), preprocessed as described in the module docstring."""
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
    if preprocess == "standardize":
        flat = x.flatten(1)
        mean, var = flat.mean(1), flat.var(1)
        x = (x - mean[:, None, None, None]) / torch.sqrt(var + 1e-4)[:, None, None, None]
    return x.contiguous()
