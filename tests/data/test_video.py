import numpy as np
import pytest

from catneuron.data.images import decode
from catneuron.data.shards import iter_shard
from catneuron.data.video import extract_frames, find_videos, read_frames
from catneuron.errors import DataError


@pytest.fixture(scope="module")
def videos(datasets):
    return datasets / "videos"


def test_frames_from_the_shared_videos(videos, tmp_path):
    report = extract_frames(videos, tmp_path / "frames", size=96, seed=3, workers=2, progress=False)
    n = len(find_videos(videos))
    assert n >= 25 and report.written == n and not report.skipped           # one frame per video
    records = [r for s in report.shards for r in iter_shard(tmp_path / "frames" / s)]
    sources = [r.meta()["source"] for r in records]
    assert len(set(sources)) == n and {p.rsplit(".", 1)[-1] for p in sources} == {"mkv", "mp4", "gif"}
    for rec in records:
        img = np.asarray(decode(rec.files["jpg"], rec.origin))
        assert img.shape == (96, 96, 3) and img.std() > 10                     # real, non-trivial pixels
        assert 0 <= rec.meta()["timestamp"] and "width" in rec.meta()


def test_frames_are_a_function_of_the_seed(videos):
    path = videos / "scenes" / "car-detection.mp4"
    a = read_frames(path, count=3, seed=7, name="x")
    b = read_frames(path, count=3, seed=7, name="x")
    c = read_frames(path, count=3, seed=8, name="x")
    assert [t for _, t in a] == [t for _, t in b] != [t for _, t in c]
    assert all(np.array_equal(x, y) for (x, _), (y, _) in zip(a, b))
    assert len({t for _, t in a}) == 3                                            # k frames per video


def test_gif_frames_decode_at_their_times(videos):
    frames = read_frames(videos / "head-pose" / "head-pose-face-detection-male.gif", times=[0.0, 2.0, 4.0])
    assert [round(t, 1) for _, t in frames] == [0.0, 2.0, 4.0]
    assert not np.array_equal(frames[0][0], frames[2][0])


def test_corrupt_videos_are_skipped_and_reported(videos, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.mp4").write_bytes((videos / "scenes" / "bottle-detection.mp4").read_bytes())
    (folder / "garbage.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    (folder / "empty.mkv").write_bytes(b"")
    (folder / "notes.txt").write_text("not a video")
    report = extract_frames(folder, tmp_path / "out", progress=False)
    assert report.written == 1
    assert sorted(report.skipped) == ["empty.mkv", "garbage.mp4"]
    assert (tmp_path / "out" / "report.json").exists()


def test_folder_without_usable_videos_is_one_error(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 1 videos could be read"):
        extract_frames(tmp_path, tmp_path / "out", progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no video files"):
        find_videos(empty)


def test_skips_are_keyed_by_path_so_same_named_videos_in_two_folders_both_count(videos, tmp_path):
    folder = tmp_path / "in"
    for sub in ("a", "b"):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video" * 10)
    (folder / "good.mp4").write_bytes((videos / "scenes" / "bottle-detection.mp4").read_bytes())
    report = extract_frames(folder, tmp_path / "out", progress=False)
    assert sorted(report.skipped) == ["a/clip.mp4", "b/clip.mp4"] and report.written == 1
