import numpy as np
import pytest
from PIL import Image

from catneuron.probe.testsets import Task, build


def _folder(path, value: int, n: int = 6):
    path.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        Image.fromarray(np.full((24, 24, 3), value, np.uint8)).save(path / f"{k}.png")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CATNEURON_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "testsets"


def test_the_same_relative_spec_in_another_folder_is_another_set(tmp_path, cache, monkeypatch):
    """The audit's case: `data/imgs` typed in two folders holding different images."""
    task = Task("t", ("data/pos",), ("data/neg",))
    for folder, value in (("a", 200), ("b", 10)):
        _folder(tmp_path / folder / "data" / "pos", value)
        _folder(tmp_path / folder / "data" / "neg", 128)
    monkeypatch.chdir(tmp_path / "a")
    first = build(task, 16)
    monkeypatch.chdir(tmp_path / "b")
    second = build(task, 16)
    assert first.images[first.labels].mean() > 150 and second.images[second.labels].mean() < 50
    assert first.meta["key"] != second.meta["key"] and len(list(cache.glob("*.npz"))) == 2


def test_a_file_replaced_in_place_invalidates_the_set(tmp_path, cache):
    _folder(tmp_path / "pos", 200)
    _folder(tmp_path / "neg", 128)
    task = Task("t", (str(tmp_path / "pos"),), (str(tmp_path / "neg"),))
    before = build(task, 16)
    _folder(tmp_path / "pos", 0)                  # same names, new contents
    after = build(task, 16)
    assert before.meta["key"] != after.meta["key"] and after.images[after.labels].max() == 0


def test_a_damaged_cache_file_is_rebuilt_and_unreadable_images_are_counted(tmp_path, cache):
    _folder(tmp_path / "pos", 200)
    _folder(tmp_path / "neg", 128)
    (tmp_path / "neg" / "broken.png").write_bytes(b"\x89PNG not really")
    task = Task("t", (str(tmp_path / "pos"),), (str(tmp_path / "neg"),))
    first = build(task, 16)
    assert first.meta["unreadable"]["negatives"] == 1 and "1 unreadable images skipped" in first.describe()
    (path,) = cache.glob("*.npz")
    path.write_bytes(path.read_bytes()[:100])
    again = build(task, 16)
    assert np.array_equal(again.images, first.images) and again.meta == first.meta
    assert not list(cache.glob(".*"))       # no temporary file left behind
