"""Decoding and resizing images (no torch here: this runs in data worker processes).

Every image, whatever its source size, becomes a square `size` x `size` uint8 array:
  1. decode (JPEG/PNG/...) to the picture the file shows, 8-bit RGB or grey (`decode`);
  2. center-crop the square and resize it to `size` (bicubic, antialiased), then RGB or grey as
     the model wants.

"Shows" means what an image viewer displays: EXIF orientation applied, 16-bit and [0, 1] float
samples scaled (not clipped) to 8 bits, transparency composited over white, an embedded colour
profile converted to sRGB. Images more than MAX_ASPECT times longer than wide (or the reverse) are
refused: their central square is a sliver, and resizing them whole once took gigabytes.
"""
from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from catneuron.errors import DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm")


MAX_ASPECT = 20
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_TRANSPARENT = ("RGBA", "RGBa", "LA", "La", "PA")
_SRGB = ImageCms.createProfile("sRGB")
_ORIENTATION = 0x0112          # the EXIF tag


def decode(data: bytes, origin: str, size: int | None = None) -> Image.Image:
    """The picture `data` shows, as an 8-bit "RGB" or (grey sources) "L" image (module docstring).
    With `size`, a JPEG is decoded at the smallest scale that keeps both sides >= size. `format`
    is the file's only when the pixels are the file's own (no orientation, mode or colour change)."""
    try:
        img = Image.open(io.BytesIO(data))
        if size is not None and img.format == "JPEG":
            img.draft(img.mode, (size, size))
        img.load()
        shown = _as_shown(img, origin)
    except UnidentifiedImageError:
        raise DataError(f"{origin}: not a readable image (not a format PIL knows)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"{origin}: not a readable image ({err})") from None
    w, h = shown.size
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise DataError(f"{origin}: {w}x{h} pixels, an aspect ratio over {MAX_ASPECT}:1; not used")
    shown.format = img.format if shown is img else None
    return shown


def _as_shown(img: Image.Image, origin: str) -> Image.Image:
    if img.getexif().get(_ORIENTATION, 1) != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT:
        return Image.fromarray(_to_uint8(np.asarray(img, np.float64) / 257), "L")
    if img.mode == "F":
        samples = np.asarray(img, np.float64)
        if not (np.isfinite(samples).all() and samples.min() >= 0 and samples.max() <= 1):
            raise DataError(f"{origin}: floating-point samples outside [0, 1]; save it with 8 or 16 bits")
        return Image.fromarray(_to_uint8(samples * 255), "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in _TRANSPARENT:
        grey = img.mode in ("LA", "La")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
        return img.convert("L" if grey else "RGB")
    if img.mode in ("RGB", "CMYK") and img.info.get("icc_profile"):
        img = _to_srgb(img)
    if img.mode in ("1", "L"):
        return img if img.mode == "L" else img.convert("L")
    try:
        return img if img.mode == "RGB" else img.convert("RGB")
    except ValueError:
        raise DataError(f"{origin}: colour mode {img.mode} cannot be shown as RGB; save it as RGB") from None


def _to_uint8(samples: np.ndarray) -> np.ndarray:
    return np.clip(samples + 0.5, 0, 255).astype(np.uint8)


def _to_srgb(img: Image.Image) -> Image.Image:
    """`img` through its embedded profile to sRGB (converted naively when the profile is unreadable)."""
    transform = _srgb_transform(img.info["icc_profile"], img.mode)
    return img.convert("RGB") if transform is None else ImageCms.applyTransform(img, transform)


@functools.lru_cache(maxsize=16)
def _srgb_transform(icc: bytes, mode: str):
    """The transform for one embedded profile; cached because a camera's photos share theirs."""
    try:
        return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, mode, "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def fit_square(img: Image.Image | np.ndarray, size: int, channels: int = 3) -> np.ndarray:
    """The central square, resized to `size`: -> uint8 (size, size, channels). Only the square is
    resampled, so memory follows the output, not the input's longer side."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) / 2, (h - side) / 2
    if (w, h) != (size, size):
        img = img.resize((size, size), Image.BICUBIC, box=(left, top, left + side, top + side), reducing_gap=3.0)
    arr = np.asarray(img, dtype=np.uint8)
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
