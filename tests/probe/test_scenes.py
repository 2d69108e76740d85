import dataclasses

import numpy as np
import pytest
from PIL import Image

from catneuron.probe.scenes import (Scene, compose, ellipse_mask, match_histogram, match_sharpness, sharpness,
                                    source_chain)
from catneuron.probe.testsets import BY_NAME, Task, build


def test_the_mask_is_one_inside_and_exactly_zero_on_the_frame_and_beyond():
    m = ellipse_mask(40, 24, 0.3)
    assert m.shape == (40, 24) and m.max() == pytest.approx(1.0) and m[20, 12] == pytest.approx(1.0)
    assert np.all(m[0] == 0) and np.all(m[-1] == 0) and np.all(m[:, 0] == 0) and np.all(m[:, -1] == 0)
    assert np.all(np.diff(m[20, 12:]) <= 1e-12)                 # falls monotonically from the centre


def test_an_object_fades_into_its_scene_without_an_edge():
    """A white object on a black scene: a pasted square would make a 255 step at its frame; the
    mask's smooth fall spreads it over several pixels, and the corners of the frame stay black."""
    rng = np.random.default_rng(0)
    scene = Scene(object_side=(0.7, 0.7), offset=0.0, feather=0.3)
    out = compose(Image.new("RGB", (64, 64), (255, 255, 255)), np.zeros((64, 64, 3), np.uint8), 64, scene, rng)
    steps = max(np.abs(np.diff(out.astype(int), axis=a)).max() for a in (0, 1))
    assert out[32, 32].min() == 255 and steps < 100
    side = round(0.7 * 64)
    top = round(32 - side / 2)
    assert out[top, top].max() == 0 and out[top + side - 1, top + side - 1].max() == 0   # frame corners


def test_every_object_passes_through_the_same_resolution_and_a_low_one_blurs_it():
    scene = Scene()
    rng = np.random.default_rng(1)
    big = Image.fromarray(rng.integers(0, 256, (128, 96, 3), dtype=np.uint8))
    small = Image.fromarray(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    a, b = source_chain(big, 128, scene), source_chain(small, 64, scene)
    assert a.size == b.size == (48, 64)
    mask = ellipse_mask(64, 48, scene.feather)
    blurred = source_chain(big, 16, scene)              # through a 16-pixel positive's resolution
    assert sharpness(np.asarray(blurred, float), mask) < 0.5 * sharpness(np.asarray(a, float), mask)


def test_histogram_matching_gives_the_donors_distribution_inside_the_mask():
    rng = np.random.default_rng(2)
    obj = rng.uniform(0, 100, (30, 30, 3))
    donor = rng.normal(180, 20, (40, 40, 3)).clip(0, 255)
    out = match_histogram(obj, ellipse_mask(30, 30, 0.3), donor, ellipse_mask(40, 40, 0.3))
    inside = ellipse_mask(30, 30, 0.3) > 0.5
    for c in range(3):
        assert np.median(out[..., c][inside]) == pytest.approx(np.median(donor[..., c]), abs=6)
        assert out[..., c][inside].std() == pytest.approx(donor[..., c].std(), rel=0.2)
    # the order of the pixels is kept: matching is a monotone map of each channel
    assert np.all(np.diff(out[..., 0].ravel()[np.argsort(obj[..., 0], axis=None)]) >= -1e-9)


def test_sharpness_matching_only_blurs_and_reaches_the_target():
    rng = np.random.default_rng(3)
    img = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = ellipse_mask(64, 64, 0.3)
    own = sharpness(np.asarray(img, float), mask)
    assert match_sharpness(img, own * 2, 0.3) is img                         # never sharpened
    out = match_sharpness(img, own / 4, 0.3)
    assert sharpness(np.asarray(out, float), mask) <= own / 4


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """Positives: 96x128 bright ovals on mid grey (as large JPEG-free PNGs); distractors: 64x64 noise."""
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(4)
    (tmp_path / "pos").mkdir()
    (tmp_path / "neg").mkdir()
    for k in range(20):
        img = np.full((128, 96, 3), 120, np.uint8)
        img[24:104, 18:78] = (200, 160, 140)
        Image.fromarray(img).save(tmp_path / "pos" / f"{k}.png")
    for k in range(40):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "neg" / f"{k}.png")
    return Task("t", (str(tmp_path / "pos"),), (str(tmp_path / "neg"),), Scene())


def test_a_scene_set_is_seeded_and_its_grey_variant_has_one_value_per_pixel(folders):
    a = build(folders, 32, use_cache=False)
    b = build(folders, 32, use_cache=False)
    assert np.array_equal(a.images, b.images) and a.images.shape[1:] == (32, 32, 3)
    assert a.meta["construction"] == "scene" and a.meta["scene"]["offset"] == 0.25
    other = build(folders, 32, seed=1, use_cache=False)
    assert not np.array_equal(a.images, other.images)
    grey = build(dataclasses.replace(folders, grey=True), 32, use_cache=False)
    assert grey.meta["construction"] == "scene, greyscale"
    assert np.array_equal(grey.images[..., 0], grey.images[..., 1]) and np.array_equal(grey.images[..., 1],
                                                                                       grey.images[..., 2])


def test_distractors_take_the_positives_colours(folders):
    """With statistics matched, the distractor objects (noise) are brought to the positives'
    colours: each class's mean colour is then close; without, the noise stays grey on average."""
    matched = build(folders, 32, use_cache=False)
    plain = build(dataclasses.replace(folders, scene=dataclasses.replace(folders.scene, match_statistics=False)),
                  32, use_cache=False)

    def red_minus_blue(ts, cls):
        x = ts.images[ts.labels == cls].astype(float)
        return (x[..., 0] - x[..., 2]).mean()
    assert abs(red_minus_blue(matched, False) - red_minus_blue(matched, True)) < 0.5 * abs(
        red_minus_blue(plain, False) - red_minus_blue(plain, True))


def test_every_set_has_a_greyscale_variant_and_the_default_face_test_is_in_scenes():
    names = BY_NAME
    for t in list(names.values()):
        if not t.grey:
            assert names[f"{t.name}-grey"].grey and names[f"{t.name}-grey"].positives == t.positives
    assert names["faces"].scene is not None and names["faces"].positives == ("lfw/test",)
    assert names["faces-aligned"].scene is None and names["faces-aligned"].positives == ("lfw/test",)
