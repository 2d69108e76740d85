"""Every file variant PIL opens decodes to the picture a viewer shows (data/images.py)."""
import io
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from catneuron.data.images import MAX_ASPECT, decode, fit_square
from catneuron.errors import DataError


def _saved(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _encoded(arr: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, arr)
    assert ok
    return buf.tobytes()


RAMP = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))      # 16 x 64, dark left, light right


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_sixteen_bit_grey_is_scaled_not_clipped(ext):
    shown = decode(_encoded(RAMP.astype(np.uint16) * 257, ext), "g16" + ext)
    assert shown.mode == "L" and np.array_equal(np.asarray(shown), RAMP)


def test_sixteen_bit_colour_keeps_its_colours():
    rgb = np.stack([RAMP, 255 - RAMP, np.full_like(RAMP, 100)], -1)
    shown = decode(_encoded(rgb[..., ::-1].astype(np.uint16) * 257, ".png"), "c16.png")      # cv2 writes BGR
    assert shown.mode == "RGB" and np.abs(np.asarray(shown).astype(int) - rgb).max() <= 1


def test_float_samples_in_unit_range_are_scaled_and_others_refused():
    shown = decode(_encoded(RAMP.astype(np.float32) / 255, ".tif"), "f.tif")
    assert np.abs(np.asarray(shown).astype(int) - RAMP).max() <= 1
    with pytest.raises(DataError, match=r"f2.tif: floating-point samples outside \[0, 1\]"):
        decode(_encoded(RAMP.astype(np.float32), ".tif"), "f2.tif")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_composited_over_white(mode):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (200, 0, 0, 255)                   # opaque left half; the right half fully transparent black
    img, extra = Image.fromarray(rgba, "RGBA"), {}
    if mode == "P":                                   # palette entry 0 transparent black, 1 the red
        img = Image.fromarray((rgba[..., 3] > 0).astype(np.uint8), "P")
        img.putpalette([0, 0, 0, 200, 0, 0])
        extra = {"transparency": 0}
    elif mode == "LA":
        img = img.convert("LA")
    shown = np.asarray(decode(_saved(img, "PNG", **extra), "t.png").convert("RGB")).astype(int)
    assert (shown[:, 4:] == 255).all()
    left = (200, 0, 0) if mode != "LA" else (60, 60, 60)         # L = 0.299 R
    assert np.abs(shown[:, :4] - left).max() <= 2


def test_exif_orientation_is_applied_and_the_bytes_are_not_kept_as_is():
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[:, :10] = 255                                 # white left half
    exif = Image.Exif()
    exif[0x0112] = 6                                  # "rotate 90 clockwise to show"
    shown = decode(_saved(Image.fromarray(arr), "JPEG", exif=exif, quality=95), "r.jpg")
    assert shown.size == (10, 20) and shown.format is None
    top, bottom = np.asarray(shown)[:8].mean(), np.asarray(shown)[12:].mean()
    assert top > 200 and bottom < 50                  # the white half is on top once turned
    plain = decode(_saved(Image.fromarray(arr), "JPEG"), "p.jpg")
    assert plain.size == (20, 10) and plain.format == "JPEG"


def test_cmyk_and_bilevel_become_rgb_and_grey():
    cmyk = decode(_saved(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG"), "c.jpg")
    assert cmyk.mode == "RGB" and np.abs(np.asarray(cmyk)[4, 4].astype(int) - (255, 0, 0)).max() < 40
    bits = decode(_saved(Image.new("1", (8, 8), 1), "PNG"), "b.png")
    assert bits.mode == "L" and (np.asarray(bits) == 255).all()


def _srgb_with_red_and_green_swapped() -> bytes:
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    entries = {bytes(icc[o:o + 4]): o for o in range(132, 132 + 12 * int.from_bytes(icc[128:132], "big"), 12)}
    r, g = entries[b"rXYZ"] + 4, entries[b"gXYZ"] + 4          # each tag's (offset, size) in the table
    icc[r:r + 8], icc[g:g + 8] = icc[g:g + 8], icc[r:r + 8]
    return bytes(icc)


def test_an_embedded_colour_profile_is_converted_to_srgb():
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    colour = Image.new("RGB", (8, 8), (180, 90, 40))
    same = decode(_saved(colour, "PNG", icc_profile=srgb), "s.png")
    assert np.abs(np.asarray(same).astype(int) - (180, 90, 40)).max() <= 1 and same.format is None
    red = Image.new("RGB", (8, 8), (200, 0, 0))
    shown = decode(_saved(red, "PNG", icc_profile=_srgb_with_red_and_green_swapped()), "x.png")
    assert np.abs(np.asarray(shown).astype(int) - (0, 200, 0)).max() <= 2


def test_absurd_aspect_ratios_are_refused_with_the_file_named():
    thin = _saved(Image.new("RGB", (MAX_ASPECT * 10 + 1, 10)), "PNG")
    with pytest.raises(DataError, match=r"thin.png: 201x10 pixels, an aspect ratio over 20:1"):
        decode(thin, "thin.png")
    assert decode(_saved(Image.new("RGB", (MAX_ASPECT * 10, 10)), "PNG"), "ok.png").size == (200, 10)


def test_fit_square_takes_the_central_square():
    arr = np.zeros((32, 96, 3), np.uint8)
    arr[:, 32:64] = 255                               # only the central square is white
    out = fit_square(arr, 16)
    assert out.shape == (16, 16, 3) and out[:, 1:-1].min() >= 250 and out.mean() > 245


def test_a_thin_image_costs_memory_by_its_output(tmp_path):
    """A 1 x 300,000 PNG once took 5.8 GB to decode at 64 px; 20:1 is the longest accepted."""
    Image.new("RGB", (300_000, 1), (90, 90, 90)).save(tmp_path / "thin.png")
    Image.new("RGB", (20_000, 1_000), (90, 90, 90)).save(tmp_path / "wide.png")
    code = f"""
import resource
from pathlib import Path
from catneuron.data.loader import decode_record
from catneuron.data.shards import Record
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name in ("thin.png", "wide.png"):
    path = Path({str(tmp_path)!r}) / name
    img, why = decode_record(Record(name, {{"png": path.read_bytes()}}, name), 64, 3)
    print(name, None if img is None else img.shape, why)
print("peak_mb", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "thin.png None" in out and "aspect ratio over 20:1" in out and "wide.png (64, 64, 3)" in out
    assert float(out.split("peak_mb")[1]) < 300
