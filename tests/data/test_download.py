import dataclasses
import hashlib
import http.server
import io
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from catneuron.data.download import DATASETS, Archive, download, fetch
from catneuron.data.shards import iter_shard
from catneuron.data.sources import resolve
from catneuron.errors import DataError


def _jpeg(seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _tiny_imagenet_zip() -> bytes:
    """The Tiny ImageNet archive layout, two classes of two images and two validation images."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("tiny-imagenet-200/words.txt", "n01\tgoldfish\nn02\ttabby cat\n")
        for c in ("n01", "n02"):
            for i in range(2):
                z.writestr(f"tiny-imagenet-200/train/{c}/images/{c}_{i}.JPEG", _jpeg(hash((c, i)) % 1000))
        z.writestr("tiny-imagenet-200/val/val_annotations.txt", "val_0.JPEG\tn02\t0\t0\t1\t1\nval_1.JPEG\tn01\t0\t0\t1\t1\n")
        for i in range(2):
            z.writestr(f"tiny-imagenet-200/val/images/val_{i}.JPEG", _jpeg(100 + i))
    return buf.getvalue()


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    files: dict = {}
    ranges: list = []
    drop_at: float | None = None        # send this fraction of the body, then close the connection

    def do_GET(self):
        data = self.files.get(self.path.lstrip("/"))
        if data is None:
            self.send_error(404)
            return
        start = 0
        if self.headers.get("Range"):
            self.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.drop_at is not None:
            body = body[:int(len(body) * self.drop_at)]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_RangeHandler,), {"files": {}, "ranges": [], "drop_at": None})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _spec(url: str, data: bytes, md5: str | None = None):
    archive = Archive(url, "tiny-imagenet-200.zip", md5=md5 or hashlib.md5(data).hexdigest(), size=len(data))
    return dataclasses.replace(DATASETS["tiny-imagenet"], archives=(archive,))


def test_resumed_download_is_verified_and_converted(server, tmp_path):
    handler, base = server
    data = _tiny_imagenet_zip()
    handler.files["tiny-imagenet-200.zip"] = data
    root = tmp_path / "datasets"
    part = root / ".downloads" / "tiny-imagenet-200.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: len(data) // 2])                       # an interrupted earlier download
    counts = download(_spec(f"{base}/tiny-imagenet-200.zip", data), root, progress=False)
    assert handler.ranges == [f"bytes={len(data) // 2}-"]
    assert (root / ".downloads" / "tiny-imagenet-200.zip").read_bytes() == data
    assert counts == {"natural-64/train": 4, "natural-64/val": 2}
    val = [r.meta() for s in resolve("natural-64/val", root).shards for r in iter_shard(s)]
    assert sorted((m["wnid"], m["words"]) for m in val) == [("n01", "goldfish"), ("n02", "tabby cat")]
    assert download(_spec(f"{base}/nowhere.zip", data), root, progress=False) == counts   # done: not again


def test_checksum_mismatch_is_an_error_and_keeps_nothing(server, tmp_path):
    handler, base = server
    data = _tiny_imagenet_zip()
    handler.files["tiny-imagenet-200.zip"] = data
    bad = dataclasses.replace(_spec(f"{base}/tiny-imagenet-200.zip", data),
                              archives=(Archive(f"{base}/tiny-imagenet-200.zip", "tiny-imagenet-200.zip",
                                                md5="0" * 32),))
    with pytest.raises(DataError, match="does not match the published 000"):
        download(bad, tmp_path, progress=False)
    assert not (tmp_path / "natural-64").exists()
    assert (tmp_path / ".downloads" / "tiny-imagenet-200.zip.bad").exists()


def test_local_mirror_needs_no_network(tmp_path):
    data = _tiny_imagenet_zip()
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny-imagenet-200.zip").write_bytes(data)
    counts = download(_spec("http://127.0.0.1:9/unreachable.zip", data), tmp_path / "root", mirror=str(mirror),
                      progress=False)
    assert counts["natural-64/train"] == 4


def test_unreachable_server_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="download http://127.0.0.1:9/x.zip"):
        fetch("http://127.0.0.1:9/x.zip", tmp_path / "x.zip", progress=False)


def test_a_dropped_connection_is_not_a_complete_download_and_is_continued(server, tmp_path):
    handler, base = server
    data = _tiny_imagenet_zip()
    handler.files["t.zip"], handler.drop_at = data, 0.6
    with pytest.raises(DataError, match=f"the connection dropped at {int(len(data) * 0.6):,} of {len(data):,} bytes"):
        fetch(f"{base}/t.zip", tmp_path / "t.zip", progress=False)
    assert not (tmp_path / "t.zip").exists() and (tmp_path / "t.zip.part").stat().st_size == int(len(data) * 0.6)
    handler.drop_at = None
    assert fetch(f"{base}/t.zip", tmp_path / "t.zip", progress=False).read_bytes() == data


def test_a_damaged_archive_without_a_checksum_is_set_aside_and_fetched_anew(server, tmp_path):
    handler, base = server
    data = _tiny_imagenet_zip()
    handler.files["tiny-imagenet-200.zip"] = data[:len(data) // 2]          # cut, and served as if whole
    spec = dataclasses.replace(DATASETS["tiny-imagenet"], archives=(
        Archive(f"{base}/tiny-imagenet-200.zip", "tiny-imagenet-200.zip"),))    # no size, no MD5 (as UTKFace)
    with pytest.raises(DataError, match="tiny-imagenet-200.zip: damaged archive .*run the command again"):
        download(spec, tmp_path, progress=False)
    assert (tmp_path / ".downloads" / "tiny-imagenet-200.zip.bad").exists()
    assert not (tmp_path / ".downloads" / "tiny-imagenet-200.zip").exists() and not (tmp_path / "natural-64").exists()
    handler.files["tiny-imagenet-200.zip"] = data
    assert download(spec, tmp_path, progress=False) == {"natural-64/train": 4, "natural-64/val": 2}
