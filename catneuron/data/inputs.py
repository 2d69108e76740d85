"""Images handed to a Python call (a network's features, a classifier's predictions) as one batch.

Accepted, alone or in a list: an image file's path (str or Path), a PIL image, an array or a
tensor. Arrays are (H, W) or (H, W, C), or a batch (N, H, W, C); tensors are torchvision's
(C, H, W) or (N, C, H, W). Values are uint8 0-255 or floats in [0, 1] (torchvision's ToTensor);
anything else is refused with the range it has, since a guess (floats of 0-255, normalized
values) would silently feed the network another image.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from catneuron.data.images import decode, fit_square
from catneuron.errors import DataError

Fit = Callable[[Image.Image | np.ndarray, int, int], np.ndarray]


def _uint8(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.size == 0:
        raise DataError(f"{what}: an empty array")
    lo, hi = float(arr.min()), float(arr.max())
    if np.issubdtype(arr.dtype, np.floating):
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo and hi <= 1):
            raise DataError(f"{what}: float values from {lo:g} to {hi:g}; expected [0, 1] "
                            f"(or uint8 0-255)")
        return np.rint(arr * 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and 0 <= lo and hi <= 255:
        return arr.astype(np.uint8)
    raise DataError(f"{what}: {arr.dtype} values from {lo:g} to {hi:g}; expected uint8 0-255 or floats in [0, 1]")


def _one(item, what: str) -> Image.Image | np.ndarray:
    """One image as a PIL image or a uint8 (H, W[, C]) array."""
    if isinstance(item, (str, Path)):
        path = Path(item)
        if path.is_dir():
            raise DataError(f"{path}: a folder; pass its image files (e.g. sorted(Path(folder).glob('*.jpg')))")
        if not path.is_file():
            raise DataError(f"{path}: no such image file")
        return decode(path.read_bytes(), str(path))
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, torch.Tensor):
        if item.ndim != 3:
            raise DataError(f"{what}: a tensor of shape {tuple(item.shape)}; expected (C, H, W)")
        item = item.detach().cpu().permute(1, 2, 0).numpy()
    if isinstance(item, np.ndarray):
        if item.ndim == 3 and item.shape[-1] == 1:
            item = item[:, :, 0]
        if item.ndim not in (2, 3) or (item.ndim == 3 and item.shape[-1] not in (3, 4)):
            raise DataError(f"{what}: an array of shape {item.shape}; expected (H, W) or (H, W, C) with C in 1, 3, 4")
        return _uint8(item, what)
    raise DataError(f"{what}: type {type(item).__name__}; expected an image path, a PIL image, an array or a tensor")


def as_batch(images, size: int, channels: int = 3, fit: Fit = fit_square) -> np.ndarray:
    """uint8 (N, size, size, channels): each image brought to the network's input by `fit` (the
    training corpus's central square by default)."""
    if isinstance(images, (str, Path, Image.Image)):
        images = [images]
    elif isinstance(images, torch.Tensor) and images.ndim == 3:
        images = [images]
    elif isinstance(images, np.ndarray) and images.ndim in (2, 3) and not (
            images.ndim == 3 and images.shape[-1] not in (1, 3, 4)):
        images = [images]
    elif isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim != 4:
        raise DataError(f"images: shape {tuple(images.shape)}; expected one image or a batch "
                        f"(N, H, W, C) array / (N, C, H, W) tensor")
    out = [fit(_one(item, f"image {k}"), size, channels) for k, item in enumerate(images)]
    return np.stack(out) if out else np.zeros((0, size, size, channels), np.uint8)
