import io
import json

import numpy as np
import pytest
from PIL import Image

from catneuron.data.ingest import NearDuplicateIndex, ingest, phash
from catneuron.data.jobs import WorkResult, run_job
from catneuron.data.shards import iter_shard
from catneuron.data.sources import resolve
from catneuron.errors import CatneuronError, DataError
from tests.data.helpers import random_images


def _photo(seed: int, size: int = 120) -> np.ndarray:
    """A smooth random image (blurred noise), so that JPEG and small edits keep its perceptual hash."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def _save(arr, path, **kw):
    Image.fromarray(arr).save(path, **kw)


def test_perceptual_hash_separates_near_from_different():
    a, b = _photo(1), _photo(2)
    brighter = np.clip(a.astype(int) + 8, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=40)
    recompressed = np.asarray(Image.open(buf))
    near = lambda x, y: bin(phash(x) ^ phash(y)).count("1")  # noqa: E731
    assert near(a, brighter) <= 3 and near(a, recompressed) <= 3 and near(a, b) > 10


def test_near_duplicate_index_matches_brute_force():
    rng = np.random.default_rng(0)
    kept = [int(h) for h in rng.integers(0, 2 ** 63, 300)]
    index = NearDuplicateIndex(near=3)
    for h in kept:
        index.add(h)
    queries = kept[:50] + [h ^ (1 << int(rng.integers(64))) ^ (1 << int(rng.integers(64))) for h in kept[:50]] + \
        [int(h) for h in rng.integers(0, 2 ** 63, 100)]
    for q in queries:
        brute = any(bin(q ^ h).count("1") <= 3 for h in kept)
        assert (index.find(q) is not None) == brute


def test_ingest_drops_duplicates_and_reports_bad_files(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(6):
        _save(_photo(i), src / f"p{i}.png")
    _save(_photo(0), src / "sub" / "copy.png")                                           # exact duplicate
    _save(np.clip(_photo(1).astype(int) + 6, 0, 255).astype(np.uint8), src / "bright.jpg", quality=90)  # near
    full = io.BytesIO()
    Image.fromarray(_photo(7)).save(full, format="JPEG")
    (src / "truncated.jpg").write_bytes(full.getvalue()[:150])
    (src / "zero.png").write_bytes(b"")
    (src / "readme.txt").write_text("skip me")
    report = ingest([resolve(str(src))], tmp_path / "out", size=32, near=3, workers=2, progress=False)
    assert report.written == 6 and report.dropped == 2
    assert sorted(p.rsplit("/", 1)[-1] for p in report.skipped) == ["truncated.jpg", "zero.png"]
    dropped = {k.rsplit("/", 1)[-1]: v for k, v in report.dropped_examples.items()}
    assert dropped["copy.png"] == f"exact duplicate of {src / 'p0.png'}"
    assert dropped["p1.png"].startswith(f"near duplicate of {src / 'bright.jpg'} (")   # bright.jpg sorts first
    records = [r for s in report.shards for r in iter_shard(tmp_path / "out" / s)]
    assert all(Image.open(io.BytesIO(r.files["jpg"])).size == (32, 32) for r in records)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["written"] == 6


def test_folder_with_nothing_usable_is_one_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 1 inputs was a usable image"):
        ingest([resolve(str(tmp_path))], tmp_path / "out", progress=False)


def _numbers(item):
    return WorkResult([(f"k{item:04d}", {"txt": str(item).encode()})])


def test_interrupted_job_leaves_only_whole_shards_and_resumes(tmp_path):
    calls = []

    def crash_after_25(item):
        calls.append(item)
        if len(calls) > 25:
            raise KeyboardInterrupt
        return _numbers(item)

    with pytest.raises(KeyboardInterrupt):
        run_job(tmp_path / "job", list(range(40)), crash_after_25, shard_size=10, progress=False)
    names = sorted(p.name for p in (tmp_path / "job").iterdir())
    assert names == ["progress.json", "train-000000.tar.gz", "train-000001.tar.gz"]     # no half shard
    (tmp_path / "job" / "train-000002.tar.gz.tmp").write_bytes(b"left by a SIGKILL")
    resumed = run_job(tmp_path / "job", list(range(40)), _numbers, shard_size=10, progress=False)
    assert resumed.sessions == 2 and resumed.written == 40 and not list((tmp_path / "job").glob("*.tmp"))
    keys = [r.key for s in resumed.shards for r in iter_shard(tmp_path / "job" / s)]
    assert keys == [f"k{i:04d}" for i in range(40)]                # nothing lost, nothing twice


@pytest.mark.parametrize("record", ['{"inputs": 4', '[1, 2]', '{"inputs": 4, "colour": "blue"}'])
def test_a_damaged_progress_record_is_one_line_naming_it(tmp_path, record):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "progress.json").write_text(record)
    with pytest.raises(CatneuronError, match=r"progress.json: .*use a new output folder or delete .*progress.json"):
        run_job(tmp_path / "job", list(range(4)), _numbers, shard_size=10, progress=False)


def test_a_folder_holding_another_job_is_refused_not_reported_as_new(tmp_path):
    """The third audit's case: ingest of other images (or at another size) into the folder of an
    earlier ingest printed the earlier job's count and rewrote its manifest with the new settings."""
    from tests.data.helpers import write_shards
    write_shards(tmp_path / "a" / "set", random_images(12), per_shard=6)
    write_shards(tmp_path / "b" / "set", random_images(12, seed=1), per_shard=6)
    first = ingest([resolve(str(tmp_path / "a"))], tmp_path / "out", size=24, near=None, progress=False)
    again = ingest([resolve(str(tmp_path / "a"))], tmp_path / "out", size=24, near=None, progress=False)
    assert again.written == first.written == 12           # the same job again: already complete
    with pytest.raises(DataError, match=r"out: holds a job with other sources \(\[.*a'\], now \[.*b'\]\)"):
        ingest([resolve(str(tmp_path / "b"))], tmp_path / "out", size=24, near=None, progress=False)
    with pytest.raises(DataError, match=r"holds a job with other size \(24, now 32\); use a new output folder"):
        ingest([resolve(str(tmp_path / "a"))], tmp_path / "out", size=32, near=None, progress=False)
    (tmp_path / "out" / "progress.json").unlink()
    with pytest.raises(DataError, match="holds shards but no progress.json"):
        run_job(tmp_path / "out", list(range(4)), _numbers, shard_size=10, progress=False)


def test_a_corrupt_shard_is_reported_and_the_job_goes_on(tmp_path):
    from tests.data.helpers import write_shards
    write_shards(tmp_path / "in" / "set", random_images(12), per_shard=6)
    good = (tmp_path / "in" / "set-000001.tar.gz").read_bytes()
    (tmp_path / "in" / "set-000001.tar.gz").write_bytes(good[: len(good) // 2])   # truncated shard
    report = ingest([resolve(str(tmp_path / "in"))], tmp_path / "out", size=24, near=None, progress=False)
    assert report.written >= 6
    assert any(k.endswith("set-000001.tar.gz") and "unreadable" in v for k, v in report.skipped.items())


def test_a_bad_json_sidecar_is_skipped_with_a_reason_that_says_so(tmp_path):
    from catneuron.data.shards import ShardWriter
    from tests.data.helpers import png_bytes
    images = random_images(3)
    with ShardWriter(tmp_path / "in" / "set", max_count=None) as w:
        w.write("good", {"png": png_bytes(images[0]), "json": b'{"a": 1}'})
        w.write("bad", {"png": png_bytes(images[1]), "json": b"{ oops"})
        w.write("list", {"png": png_bytes(images[2]), "json": b"[1, 2]"})
    report = ingest([resolve(str(tmp_path / "in"))], tmp_path / "out", size=24, near=None, progress=False)
    assert report.written == 1
    reasons = {k.rsplit(":", 1)[-1]: v for k, v in report.skipped.items()}
    assert reasons["bad"].startswith("its .json sidecar is not valid JSON (Expecting property name")
    assert reasons["list"] == "its .json sidecar is a list, expected an object"
