import numpy as np

from catneuron.probe.calibration import ceiling, floor, giveaway, low_level_features, rows
from catneuron.probe import testsets


def _set(images: np.ndarray, labels: np.ndarray, seed: int = 0) -> testsets.TestSet:
    rng = np.random.default_rng(seed)
    val = np.zeros(len(labels), bool)
    for cls in (True, False):
        idx = np.flatnonzero(labels == cls)
        val[rng.permutation(idx)[: len(idx) // 2]] = True
    return testsets.TestSet("t", images, labels, val, [""] * len(labels))


def _noise(n: int, rng, size: int = 32) -> np.ndarray:
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_the_giveaway_check_finds_a_planted_border_and_nothing_where_there_is_none():
    rng = np.random.default_rng(0)
    labels = np.arange(300) < 100
    clean = _noise(300, rng)
    assert giveaway(_set(clean, labels)) <= (1 - labels.mean()) + 0.08          # no cue: near all-negative
    cued = clean.copy()
    cued[labels, :3] = 255                                                       # a bright top border
    assert giveaway(_set(cued, labels)) >= 0.95


def test_low_level_features_see_blur_and_jpeg_blocks():
    rng = np.random.default_rng(1)
    sharp = _noise(4, rng)
    smooth = np.repeat(np.repeat(sharp[:, ::4, ::4], 4, axis=1), 4, axis=2)     # 4x4 blocks: blurry and blocky
    f_sharp, f_smooth = low_level_features(sharp), low_level_features(smooth)
    assert np.all(f_smooth[:, 42] < f_sharp[:, 42])          # mean absolute Laplacian
    assert np.all(f_smooth[:, 45] > 1.5) and np.all(np.abs(f_sharp[:, 45] - 1) < 0.2)   # steps at 8-px boundaries


def test_the_ceiling_cnn_learns_a_shape_that_no_colour_or_place_gives_away():
    """A dark ring at random places on noise vs noise alone: recognizable by shape only."""
    rng = np.random.default_rng(2)
    n = 240
    images = _noise(n, rng).astype(np.int16) // 2 + 64
    labels = np.arange(n) < 80
    yy, xx = np.mgrid[:32, :32]
    for k in np.flatnonzero(labels):
        cy, cx = rng.integers(10, 22, 2)
        ring = np.abs(np.hypot(yy - cy, xx - cx) - 6) < 1.5
        images[k][ring] = 0
    assert ceiling(_set(images.astype(np.uint8), labels), steps=60) >= 0.95


def _task(random_accs, trained_stage1, linear):
    def groups(accs):
        return {f"stage{s}/pool": {"paper": {"accuracy": a}} for s, a in enumerate(accs, 1)}
    return {"set": {"all_negative": 0.648},
            "detectors": {"random-whole": {"paper": {"accuracy": max(random_accs)}, "groups": groups(random_accs)},
                          "trained-whole": {"paper": {"accuracy": 0.9},
                                            "groups": groups([trained_stage1, 0.9, 0.7])},
                          "linear": {"paper": {"accuracy": linear}, "groups": {}}},
            "calibration": {"ceiling": 0.97, "giveaway": 0.70, "test_all_negative": 0.648}}


def test_the_floor_and_its_verdicts():
    task = _task([0.66, 0.70, 0.65], 0.80, 0.72)
    fl = floor(task)
    assert fl["random_best"] == 0.70 and fl["random_by_stage"] == {"stage1": 0.66, "stage2": 0.70, "stage3": 0.65}
    assert fl["stage1_best"] == 0.80 and fl["linear_best"] == 0.72 and fl["kmeans_best"] is None
    verdicts = {label.split(":")[0] + ":" + label.split(":")[1][:12]: met for label, _, _, met in rows(task)}
    assert list(verdicts.values()) == [True, False, True, False, True]      # giveaway 70 > 64.8 + 5; stage 1 80 > 75
