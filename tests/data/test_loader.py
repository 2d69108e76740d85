import numpy as np
import pytest

from catneuron.data.loader import ImageStream, StreamState
from catneuron.data.sources import resolve
from catneuron.errors import DataError
from tests.data.helpers import random_images, write_shards


def _stream(tmp_path, seed=0, state=None, buffer=8):
    if not list(tmp_path.glob("set-*")):
        write_shards(tmp_path / "set", random_images(30), per_shard=7)
    return ImageStream([resolve(str(tmp_path))], size=16, seed=seed, shuffle_buffer=buffer, state=state)


def _take(stream, n):
    return [img for img, _ in zip((i for i, _ in stream.images()), range(n))]


def test_order_is_a_function_of_the_seed(tmp_path):
    a, b = _take(_stream(tmp_path, 1), 40), _take(_stream(tmp_path, 1), 40)
    c = _take(_stream(tmp_path, 2), 40)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_each_epoch_visits_every_image_once(tmp_path):
    images = _take(_stream(tmp_path), 60)
    first, second = images[:30], images[30:]
    key = lambda im: im.tobytes()  # noqa: E731
    assert len({key(i) for i in first}) == 30 and {key(i) for i in first} == {key(i) for i in second}
    assert [key(i) for i in first] != [key(i) for i in second]       # reshuffled


def test_resume_continues_at_the_same_sample(tmp_path):
    full = _stream(tmp_path, 3)
    batches = full.batches(7)
    seen = [next(batches) for _ in range(6)]        # 42 images: crosses an epoch boundary
    batches.close()
    state = seen[2][1]
    resumed = _stream(tmp_path, 3, state=StreamState(state.epoch, state.position)).batches(7)
    for expected, _ in seen[3:]:
        got, _ = next(resumed)
        np.testing.assert_array_equal(got, expected)
    resumed.close()


def test_unreadable_images_are_skipped_and_reported(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, img in enumerate(random_images(3)):
        from PIL import Image
        Image.fromarray(img).save(folder / f"ok{i}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (folder / "empty.png").write_bytes(b"")
    stream = ImageStream([resolve(str(folder))], size=8, shuffle_buffer=1)
    assert len(_take(stream, 3)) == 3
    assert sorted(p.rsplit("/", 1)[-1] for p in stream.skipped) == ["broken.jpg", "empty.png"]


def test_nothing_usable_is_one_error(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="no usable images"):
        _take(ImageStream([resolve(str(folder))], size=8), 1)


def test_worker_processes_give_the_same_stream(tmp_path):
    plain = _take(_stream(tmp_path, 4), 45)
    stream = _stream(tmp_path, 4)
    stream.workers = 2
    parallel = _take(stream, 45)
    assert all(np.array_equal(a, b) for a, b in zip(plain, parallel))


def test_a_python_iterable_streams_in_its_order_rebatched_epoch_after_epoch():
    import torch
    from catneuron.data.inputs import as_batch
    from catneuron.data.loader import IterableStream
    images = np.stack(random_images(7, size=8))
    as_loader = [(torch.from_numpy(images[k:k + 3]).permute(0, 3, 1, 2), torch.zeros(len(images[k:k + 3])))
                 for k in range(0, 7, 3)]                  # (images, labels) batches of 3, 3 and 1
    stream = IterableStream(as_loader, 8)
    batches = stream.batches(5)
    first, second, third = (next(batches) for _ in range(3))
    want = as_batch(images, 8)
    np.testing.assert_array_equal(first[0], want[:5])
    np.testing.assert_array_equal(second[0], np.concatenate([want[5:], want[:3]]))   # into the next epoch
    assert second[1] == StreamState(1, 3) and third[1] == StreamState(2, 1)


def test_a_map_style_dataset_is_read_by_index_and_an_empty_one_is_an_error():
    from catneuron.data.loader import IterableStream

    class Images:                      # torch.utils.data.Dataset's protocol: no __iter__
        def __len__(self):
            return 2

        def __getitem__(self, k):
            if k >= 2:
                raise AssertionError("read past its length")
            return random_images(1, size=8, seed=k)[0], k
    batch, state = next(IterableStream(Images(), 8).batches(2))
    np.testing.assert_array_equal(batch, np.stack([random_images(1, size=8, seed=k)[0] for k in range(2)]))
    with pytest.raises(DataError, match="the list given as data yields no images"):
        next(IterableStream([], 8).batches(2))
