"""Test images in context: each object (a face, a cat face, a body, or a distractor) seen at a
random size and place in a natural scene, the same way for both classes.

The paper's test faces were whole, non-aligned LFW photographs: the face at about 35-60 % of the
frame, wherever the photographer put it. Our copy of LFW is the central, deep-funneled crop (the
face fills it, eyes and mouth at fixed pixels), and our distractors are native 64-pixel Tiny
ImageNet images: with those, a random 12x12 unit at a fixed place tells the classes apart (85 %).
Here every test image, positive or distractor, is built by one pipeline:

  1. source chain: the object's image is brought to `source_side` pixels on its longer side (a
     distractor first through the native resolution of a random positive, so that low-resolution
     positives are not told by their blur) and JPEG-encoded once at `jpeg_quality`;
  2. statistics (`match_statistics`): a distractor is blurred (never sharpened) to at most the
     sharpness of a random positive, and its colour histogram inside the mask is mapped onto that
     positive's, so that neither blur nor skin tones tell the classes apart;
  3. scene: a background from the distractor pool (never the object's own image), resized to the
     canvas and mirrored at random;
  4. placement: the object's longer side a uniform fraction `object_side` of the canvas, its
     centre up to `offset` of the canvas off-centre on each axis, blended through an elliptical
     mask inscribed in its frame whose edge fades smoothly to zero (`feather`) — no square edge,
     bar or wedge of either class reaches the image.

The object's aspect ratio is kept (a distractor is cropped to the aspect of a random positive, as
in the letterboxed sets), so the mask has the same shape distribution in both classes.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Scene:
    object_side: tuple[float, float] = (0.65, 1.05)   # object frame's longer side / canvas side
    offset: float = 0.25            # largest shift of the object's centre from the canvas centre, / side
    feather: float = 0.3            # the mask falls from 1 to 0 over this outer fraction of its radius
    source_side: int = 64           # every object passes through this resolution (Tiny ImageNet's)
    jpeg_quality: int = 90
    match_statistics: bool = True   # distractors take a random positive's colour histogram and sharpness


def source_chain(img: Image.Image, resolution: int, scene: Scene, sharpness: float | None = None) -> Image.Image:
    """An object's image at `resolution` pixels on its longer side, then at the scene's source
    side, blurred down to `sharpness` when given (`match_sharpness`), JPEG-encoded once: the
    resolution chain every object of a test goes through."""
    img = img.convert("RGB")
    for side in (min(resolution, scene.source_side), scene.source_side):
        w, h = img.size
        scale = side / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if size != img.size:
            img = img.resize(size, Image.BICUBIC, reducing_gap=3.0)
    if sharpness is not None:
        img = match_sharpness(img, sharpness, scene.feather)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=scene.jpeg_quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def ellipse_mask(height: int, width: int, feather: float) -> np.ndarray:
    """(H, W) float in [0, 1]: 1 inside the inscribed ellipse's inner (1 - feather) of its radius,
    falling smoothly (smoothstep) to exactly 0 at the ellipse, 0 outside; so 0 on the frame's edge."""
    # The outermost pixel centres lie on the ellipse (radius 1), so the frame's edge is exactly 0.
    y = np.linspace(-1, 1, height) if height > 1 else np.zeros(1)
    x = np.linspace(-1, 1, width) if width > 1 else np.zeros(1)
    r = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    t = np.clip((1 - r) / feather, 0, 1)
    return t * t * (3 - 2 * t)


def luminance(x: np.ndarray) -> np.ndarray:
    """(..., C) -> (...): ITU-R 601 luminance of RGB values; one channel is taken as it is."""
    return x @ np.array([0.299, 0.587, 0.114]) if x.shape[-1] == 3 else x[..., 0]


def laplacian(lum: np.ndarray) -> np.ndarray:
    """(..., H, W) -> (..., H-2, W-2): the 5-point Laplacian of the interior pixels."""
    c = lum[..., 1:-1, 1:-1]
    return 4 * c - lum[..., :-2, 1:-1] - lum[..., 2:, 1:-1] - lum[..., 1:-1, :-2] - lum[..., 1:-1, 2:]


def sharpness(obj: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute Laplacian of the luminance of a float (H, W, 3) image inside `mask`."""
    lap = laplacian(luminance(obj))
    w = mask[1:-1, 1:-1]
    return float((np.abs(lap) * w).sum() / max(w.sum(), 1e-9))


BLURS = (0.0, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.7, 2.2)     # Gaussian radii tried, pixels


def match_sharpness(img: Image.Image, target: float, feather: float) -> Image.Image:
    """`img` blurred by the least of `BLURS` that brings its masked sharpness down to `target`
    (or the most, when none does); never sharpened."""
    from PIL import ImageFilter
    mask = ellipse_mask(img.size[1], img.size[0], feather)
    out = img
    for radius in BLURS:
        out = img.filter(ImageFilter.GaussianBlur(radius)) if radius else img
        if sharpness(np.asarray(out, np.float64), mask) <= target:
            break
    return out


def match_histogram(obj: np.ndarray, mask: np.ndarray, donor: np.ndarray, donor_mask: np.ndarray) -> np.ndarray:
    """`obj` (float (H, W, C)) with each channel's mask-weighted distribution mapped onto the
    donor's (quantile matching): the same colour histogram inside the object, whatever it shows."""
    out = np.empty_like(obj)
    q = np.linspace(0, 1, 257)
    for c in range(obj.shape[-1]):
        own = _weighted_quantiles(obj[..., c], mask, q)
        theirs = _weighted_quantiles(donor[..., c], donor_mask, q)
        out[..., c] = np.interp(obj[..., c], own + np.arange(len(q)) * 1e-6, theirs)
    return out


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(values, axis=None)
    v, w = values.ravel()[order], weights.ravel()[order]
    cdf = np.cumsum(w)
    cdf = cdf / cdf[-1]
    return np.interp(q, cdf, v)


def compose(obj: Image.Image, background: np.ndarray, size: int, scene: Scene, rng: np.random.Generator,
            donor: Image.Image | None = None) -> np.ndarray:
    """One test image: uint8 (size, size, 3), the object blended into the background (uint8
    (h, w, 3), resized to the canvas) at a random size and place; with a `donor` (a positive's
    object image), the object's masked colour histogram is mapped onto the donor's."""
    canvas = np.asarray(Image.fromarray(background).resize((size, size), Image.BICUBIC), np.float64)
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1]
    w, h = obj.size
    side = rng.uniform(*scene.object_side) * size
    ow, oh = max(2, round(side * w / max(w, h))), max(2, round(side * h / max(w, h)))
    pixels = np.asarray(obj.resize((ow, oh), Image.BICUBIC, reducing_gap=3.0), np.float64)
    mask = ellipse_mask(oh, ow, scene.feather)
    if donor is not None:
        theirs = np.asarray(donor, np.float64)
        pixels = match_histogram(pixels, mask, theirs, ellipse_mask(*theirs.shape[:2], scene.feather))
    cy, cx = (size / 2 + rng.uniform(-scene.offset, scene.offset, 2) * size)
    top, left = round(cy - oh / 2), round(cx - ow / 2)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(size, top + oh), min(size, left + ow)
    if y1 > y0 and x1 > x0:
        a = mask[y0 - top:y1 - top, x0 - left:x1 - left, None]
        region = canvas[y0:y1, x0:x1]
        canvas[y0:y1, x0:x1] = a * pixels[y0 - top:y1 - top, x0 - left:x1 - left] + (1 - a) * region
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
