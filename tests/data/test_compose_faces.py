import json
from collections import Counter

import numpy as np
import pytest

from catneuron.data.compose import compose, parse_mix
from catneuron.data.faces import FaceDetector, audit, control_corpus, record_source
from catneuron.data.images import decode
from catneuron.data.shards import iter_shard
from catneuron.data.sources import resolve
from catneuron.errors import DataError

MIX = [("natural-64/train", 0.9), ("faces-200/pool", 0.1)]


@pytest.fixture(scope="module")
def corpus(datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "c"
    compose(MIX, out, size=64, seed=5, count=400, root=str(datasets), shard_size=150, progress=False)
    return out


def _records(folder):
    return [r for s in sorted(folder.glob("train-*.tar.gz")) for r in iter_shard(s)]


def test_composition_holds_its_ratios_and_manifest(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    records = _records(corpus)
    counts = Counter(r.meta()["source_set"] for r in records)
    assert len(records) == manifest["count"] == 400 and len(manifest["shards"]) == 3
    assert counts == {"natural-64/train": 360, "faces-200/pool": 40}
    # every part of the corpus has the mix, not just the whole: 150-record shards within 10 points
    first = Counter(r.meta()["source_set"] for r in iter_shard(corpus / "train-000000.tar.gz"))
    assert abs(first["faces-200/pool"] / 150 - 0.1) < 0.1
    assert [s["taken"] for s in manifest["sources"]] == [360, 40] and manifest["seed"] == 5
    assert all(decode(r.files["jpg"], r.origin).size == (64, 64) for r in records[:50])
    assert len({r.meta()["origin"] for r in records}) == 400          # no image taken twice


def test_composition_is_deterministic_by_seed(corpus, datasets, tmp_path):
    again = tmp_path / "again"
    compose(MIX, again, size=64, seed=5, count=400, root=str(datasets), shard_size=150, progress=False)
    other = tmp_path / "other"
    compose(MIX, other, size=64, seed=6, count=400, root=str(datasets), shard_size=150, progress=False)
    origins = lambda f: [r.meta()["origin"] for r in _records(f)]  # noqa: E731
    assert origins(again) == origins(corpus) != origins(other)


def test_compose_refuses_test_splits_and_bad_mixes(datasets, tmp_path):
    with pytest.raises(DataError, match="held-out test split"):
        compose([("faces-200/test", 1.0)], tmp_path / "x", root=str(datasets), progress=False)
    with pytest.raises(DataError, match="expected SOURCE=FRACTION"):
        parse_mix(["natural-64/train"])
    with pytest.raises(DataError, match="has 3000 images, 6000 wanted"):
        compose([("faces-200/pool", 0.5), ("natural-64/train", 0.5)], tmp_path / "y", count=12000,
                root=str(datasets), progress=False)
    assert not (tmp_path / "y").exists()


def test_audit_finds_faces_in_face_images_and_few_in_natural_ones(corpus):
    report = audit([resolve(str(corpus))], patches=300, patch_size=60, seed=1, progress=False)
    faces, natural = report.by_source["faces-200/pool"], report.by_source["natural-64/train"]
    assert faces["faces"] / faces["images"] > 0.8 and faces["patch_faces"] / faces["patches"] > 0.7
    assert natural["faces"] / natural["images"] < 0.05 and natural["patch_faces"] / max(1, natural["patches"]) < 0.05
    assert report.patches == 300 and report.images == 400
    assert 0.05 < report.patch_fraction < 0.2


def test_control_corpus_has_no_image_where_the_detector_fires(corpus, tmp_path):
    manifest = control_corpus([resolve(str(corpus))], tmp_path / "control", recall=0.9, progress=False)
    kept = _records(tmp_path / "control")
    detector = FaceDetector()
    assert len(kept) == manifest["kept"] == 400 - manifest["removed"]
    assert not any(detector.detect(np.asarray(decode(r.files["jpg"], r.origin))) for r in kept)
    assert manifest["removed_by_source"]["faces-200/pool"] >= 32
    assert Counter(record_source(r, "?") for r in kept)["faces-200/pool"] <= 8
    assert manifest["expected_missed_faces"] == pytest.approx(manifest["removed"] / 9, abs=0.1)
    originals = {r.key: r.files["jpg"] for r in _records(corpus)}
    assert all(originals[r.key] == r.files["jpg"] for r in kept)     # copied byte for byte


def _folder_with_broken_files(folder, good: int, broken: int):
    from PIL import Image
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k in range(good):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{k:03d}.png")
    for k in range(broken):            # named to sort last: no readable record comes after them
        (folder / f"zz{k}.png").write_bytes(b"\x89PNG broken")


def test_unreadable_picks_are_replaced_from_the_whole_source(tmp_path):
    """The audit's case: 72 of 76 files readable, and compose blamed the source ("fewer than 30
    readable images") because a late unreadable pick could only be replaced by a later record."""
    _folder_with_broken_files(tmp_path / "bad", 72, 4)
    manifest = compose([(str(tmp_path / "bad"), 1.0)], tmp_path / "c", size=16, seed=0, count=72, progress=False)
    assert manifest["count"] == 72 and len(manifest["unreadable"]) == 4
    assert len(_records(tmp_path / "c")) == 72


def test_default_count_leaves_out_unreadable_files_and_an_explicit_count_says_why(tmp_path):
    _folder_with_broken_files(tmp_path / "bad", 72, 4)
    manifest = compose([(str(tmp_path / "bad"), 1.0)], tmp_path / "c", size=16, progress=False)
    assert manifest["count"] == 72 and manifest["sources"][0]["taken"] == 72
    with pytest.raises(DataError, match=r"has 72 readable images of 76 \(4 unreadable\), 76 wanted for --count 76"):
        compose([(str(tmp_path / "bad"), 1.0)], tmp_path / "d", size=16, count=76, progress=False)
    assert not (tmp_path / "d").exists()


def test_a_corpus_of_no_images_is_refused_before_anything_is_written(tmp_path):
    """The audit's `--count 0`: the manifest was written, then a ZeroDivisionError."""
    _folder_with_broken_files(tmp_path / "bad", 3, 2)
    for count in (0, -3):
        with pytest.raises(DataError, match=f"--count {count}; expected at least 1 image"):
            compose([(str(tmp_path / "bad"), 1.0)], tmp_path / "c", size=16, count=count, progress=False)
    with pytest.raises(DataError, match="size 0 and shard size 5000; expected both >= 1"):
        compose([(str(tmp_path / "bad"), 1.0)], tmp_path / "c", size=0, progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        compose([(str(tmp_path / "empty"), 1.0)], tmp_path / "c", size=16, progress=False)
    assert not (tmp_path / "c").exists()
    for weight in ("nan", "inf", "-1"):
        with pytest.raises(DataError, match="the fraction must be a number > 0"):
            parse_mix([f"natural-64/train={weight}"])


def test_an_audit_that_measured_nothing_says_so_instead_of_0_percent(tmp_path):
    _folder_with_broken_files(tmp_path / "bad", 0, 3)
    with pytest.raises(DataError, match=r"audit: none of the 3 records could be read \(first: .*zz0.png"):
        audit([resolve(str(tmp_path / "bad"))], patches=10, progress=False)
    _folder_with_broken_files(tmp_path / "good", 4, 0)
    report = audit([resolve(str(tmp_path / "good"))], patches=0, progress=False)
    assert report.patch_fraction is None and "patches with a face: none measured" in report.summary()
    assert report.image_fraction is not None and "of 4 = " in report.summary()
    large = audit([resolve(str(tmp_path / "good"))], patches=12, patch_size=1000, progress=False)
    assert large.patches == 0 and large.patches_too_small == 12
    assert "1000x1000 patches with a face: none measured" in large.summary()
    assert "patches not measured, their image smaller than 1000 px: 12" in large.summary()
