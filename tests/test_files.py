import json
import os
import threading

import pytest

from catneuron.files import replacing, write_json


def test_two_writers_of_one_file_both_finish_and_one_complete_file_remains(tmp_path):
    """Fixed temporary names made the second writer's rename fail (FileNotFoundError) after the
    first had renamed the shared temporary file away."""
    target = tmp_path / "results.json"
    barrier, errors = threading.Barrier(2), []

    def writer(k):
        try:
            with replacing(target) as tmp:
                tmp.write_text(json.dumps({"writer": k, "payload": "x" * 10_000}))
                barrier.wait(timeout=10)       # both hold a written temporary file before either renames
        except Exception as err:               # noqa: BLE001 - the test reports any failure
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert json.loads(target.read_text())["writer"] in (0, 1)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "results.json"
    write_json(target, {"old": True})
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask     # the usual mode, not mkstemp's private 0600


def test_published_files_and_folders_get_the_usual_mode_whoever_writes_them(tmp_path):
    from safetensors.torch import save_file
    import torch
    from catneuron.files import replacing_dir
    umask = os.umask(0o022)
    os.umask(umask)
    with replacing(tmp_path / "w.safetensors") as tmp:       # safetensors replaces the prepared file
        save_file({"w": torch.zeros(2)}, str(tmp))
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    (tmp_path / ".out.killed").mkdir()                          # left by a writer that was killed
    for round_ in range(2):
        with replacing_dir(tmp_path / "out") as folder:
            (folder / "a.txt").write_text(str(round_))
    assert (tmp_path / "out" / "a.txt").read_text() == "1" and (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "w.safetensors"]
    with pytest.raises(RuntimeError):
        with replacing_dir(tmp_path / "out") as folder:
            (folder / "a.txt").write_text("half")
            raise RuntimeError
    assert (tmp_path / "out" / "a.txt").read_text() == "1" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out", "w.safetensors"]
