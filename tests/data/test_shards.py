import io

import numpy as np
import pytest
from PIL import Image

from catneuron.data.images import decode, fit_square
from catneuron.data.preprocess import to_tensor
from catneuron.data.shards import ShardWriter, iter_shard
from catneuron.data.sources import resolve, resolve_all
from catneuron.errors import DataError
from tests.data.helpers import png_bytes, random_images, write_shards


def test_shard_round_trip_preserves_pixels(tmp_path):
    images = random_images(25)
    shards = write_shards(tmp_path / "set", images, per_shard=10)
    assert [p.name for p in shards] == ["set-000000.tar.gz", "set-000001.tar.gz", "set-000002.tar.gz"]
    got = [rec for p in shards for rec in iter_shard(p)]
    assert [r.meta()["index"] for r in got] == list(range(25))
    for rec, img in zip(got, images):
        np.testing.assert_array_equal(np.asarray(decode(rec.files["png"], rec.origin)), img)


def test_interrupted_writer_publishes_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with ShardWriter(tmp_path / "part", max_count=100) as w:
            w.write("a", {"png": png_bytes(random_images(1)[0])})
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_real_shard_reads(datasets):
    first = next(iter_shard(sorted((datasets / "natural-64").glob("val-*.tar.gz"))[0]))
    assert "wnid" in first.meta()
    img = fit_square(decode(first.files["jpg"], first.origin), 64)
    assert img.shape == (64, 64, 3) and img.std() > 5


def test_fit_square_crops_the_center_of_non_square_images():
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, 20:60] = 255                             # a white square in the middle
    out = fit_square(Image.fromarray(arr), 20)
    assert out.shape == (20, 20, 3) and out.min() > 200


def test_standardize_gives_zero_mean_unit_variance():
    x = to_tensor(np.stack(random_images(3)), "standardize")
    assert x.shape == (3, 3, 24, 24)
    np.testing.assert_allclose(x.flatten(1).mean(1).numpy(), 0, atol=1e-5)
    np.testing.assert_allclose(x.flatten(1).std(1).numpy(), 1, atol=1e-3)


def test_resolve_named_folder_and_file_sources(tmp_path, datasets):
    named = resolve("natural-64/train", datasets)
    assert len(named.shards) == 5
    folder = tmp_path / "imgs" / "sub"
    folder.mkdir(parents=True)
    (folder / "a.png").write_bytes(png_bytes(random_images(1)[0]))
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in resolve(str(tmp_path / "imgs")).images] == ["a.png"]


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "no such file or folder"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "folder contains no shards and no images"),
    (lambda p: (p / "x.txt").write_text("hi") and p / "x.txt", "not a shard"),
    (lambda p: p / "*.tar", "the pattern matches no shard files"),
])
def test_unusable_sources_give_one_clear_line(tmp_path, make, message):
    with pytest.raises(DataError) as err:
        resolve_all([str(make(tmp_path))])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_corrupt_shard_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad-000000.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match="bad-000000.tar.gz: unreadable"):
        list(iter_shard(bad))


def test_decode_rejects_truncated_jpeg():
    buf = io.BytesIO()
    Image.fromarray(random_images(1, 64)[0]).save(buf, format="JPEG")
    with pytest.raises(DataError, match="not a readable image"):
        decode(buf.getvalue()[:200], "cut.jpg")


@pytest.mark.parametrize("compress", [True, False])
def test_a_shard_cut_anywhere_is_reported_never_read_as_shorter(tmp_path, compress):
    """The audit cut a 200-record .tar.gz at 60 random places; one cut (inside a tar header) read
    as a complete shard of 96 records. Every cut must either lose nothing (a cut after the
    end-of-archive marker, in the padding or the gzip trailer) or raise."""
    (shard,) = write_shards(tmp_path / "s", random_images(200, size=8), per_shard=200) if compress else \
        _plain_shard(tmp_path, 200)
    data = shard.read_bytes()
    cuts = sorted(set(np.random.default_rng(0).integers(1, len(data), 60).tolist()))
    if not compress:     # and exactly inside the header of the 101st member
        cuts.append(_header_offset(shard, 100) + 100)
    silent = []
    for cut in cuts:
        part = tmp_path / f"cut{shard.name[shard.name.index('.'):]}"
        part.write_bytes(data[:cut])
        try:
            n = len(list(iter_shard(part)))
        except DataError as err:
            assert "truncated" in str(err) or "unreadable" in str(err)
            continue
        if n != 200:
            silent.append((cut, n))
    assert not silent


def _plain_shard(tmp_path, n):
    with ShardWriter(tmp_path / "p", max_count=None, compress=False) as w:
        for i, img in enumerate(random_images(n, size=8)):
            w.write(f"img{i:05d}", {"png": png_bytes(img)})
    return w.written


def _header_offset(path, index):
    import tarfile
    with tarfile.open(path) as tar:
        return tar.getmembers()[index].offset
