"""Decoding and resizing images (no torch here: this runs in data worker processes).

Every image, whatever its source size, becomes a square `size` x `size` uint8 array:
  1. decode (JPEG/PNG/...), convert to RGB (or grey when channels == 1);
  2. resize so the shorter side is `size` (bicubic, antialiased), then center-crop the square.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from catneuron.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm")


def decode(data: bytes, origin: str) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except UnidentifiedImageError:
        raise DataError(f"{origin}: not a readable image (not a format PIL knows)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{origin}: not a readable image ({err})") from None
    return img


def fit_square(img: Image.Image | np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """Resize the shorter side to `size` and center-crop: -> uint8 (size, size, channels)."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0)
    left, top = (nw - size) // 2, (nh - size) // 2
    arr = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return arr[:, :, None] if channels == 1 else arr


def encode_jpeg(arr: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[-1] == 1 else arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def fit_inside(img: Image.Image | np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """Resize to fit inside size x size keeping the aspect ratio; the rest is the image's mean colour.

    For test images: unlike `fit_square`, nothing is cropped (a pedestrian keeps head and feet), and
    the fill adds no edges or contrast of its own.
    """
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = np.asarray(img.resize((nw, nh), Image.BICUBIC, reducing_gap=3.0), dtype=np.uint8)
    small = small[:, :, None] if channels == 1 else small
    out = np.empty((size, size, channels), np.uint8)
    out[:] = small.reshape(-1, channels).mean(0).round().astype(np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = small
    return out
