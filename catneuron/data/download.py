"""Download the public originals and convert them into named sets under the data root.

    catneuron data download tiny-imagenet [--root DIR] [--mirror URL_OR_DIR]

Each archive is fetched from its official address (or first from a mirror: a local folder or a
base URL holding the same file names), resumably (HTTP Range on a ``.part`` file), checked against
its published MD5 and/or size, then converted to WebDataset shards in the layout of
``../shared/datasets`` (``<root>/<set>/<split>-NNNNNN.tar.gz``, JPEG + JSON provenance), so that
named sources such as ``natural-64/train`` resolve. In this workplace ``../shared/datasets`` is
that mirror, already converted; nothing is downloaded.

Checksums: Tiny ImageNet, LFW and Caltech-101 publish MD5s (also pinned by torchvision). UTKFace's
official copy is a Google Drive folder that no longer serves files; we name a public mirror and
check nothing but the archive format. INRIA Person's FTP host is offline; we name a university
mirror and check its size.

Not pooch or torchvision's download utilities: neither resumes a cut download, neither reads a
local mirror folder, and torchvision would pull a CUDA build of PyTorch into a CPU install.
"""
from __future__ import annotations

import hashlib
import gzip
import io
import json
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from catneuron.data.images import decode, encode_jpeg
from catneuron.data.jobs import job_metadata
from catneuron.files import write_json
from catneuron.data.shards import ShardWriter
from catneuron.errors import DataError
from catneuron.progress import progress as progress_bar

ENV_MIRROR = "CATNEURON_MIRROR"
# What reading a cut or corrupt archive raises (UTKFace's has no published checksum to catch it first).
DAMAGED = (EOFError, zlib.error, gzip.BadGzipFile, tarfile.ReadError, zipfile.BadZipFile)


@dataclass(frozen=True)
class Archive:
    url: str
    filename: str
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    terms: str
    archives: tuple[Archive, ...]
    convert: Callable[[list[Path], Path], dict[str, int]]     # (archives, data root) -> images per set written
    homepage: str = ""


# ---------------------------------------------------------------------------------------------
# Fetching

def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, archive: Archive) -> None:
    if archive.size is not None and path.stat().st_size != archive.size:
        raise DataError(f"{path.name}: {path.stat().st_size} bytes, expected {archive.size}")
    if archive.md5 is not None and _md5(path) != archive.md5:
        raise DataError(f"{path.name}: MD5 {_md5(path)} does not match the published {archive.md5}")


def fetch(url: str, dest: Path, progress: bool = True, timeout: float = 60) -> Path:
    """Download url to dest, continuing a previous ``dest.part`` with an HTTP Range request."""
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:          # the part is already whole
            os.replace(part, dest)
            return dest
        raise DataError(f"download {url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"download {url}: {getattr(err, 'reason', err)}") from None
    with response:
        resumed = start > 0 and response.status == 206
        length = int(response.headers.get("Content-Length") or 0)
        with open(part, "ab" if resumed else "wb") as f, \
                progress_bar(total=(start if resumed else 0) + length or None, initial=start if resumed else 0,
                             unit="B", unit_scale=True, desc=dest.name, enabled=progress) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                f.write(block)
                bar.update(len(block))
    expected = (start if resumed else 0) + length
    got = part.stat().st_size
    if length and got < expected:     # the server closed early: keep the part, a new run continues it
        raise DataError(f"download {url}: the connection dropped at {got:,} of {expected:,} bytes; run the "
                        f"command again to continue from there")
    os.replace(part, dest)
    return dest


def obtain(archive: Archive, folder: Path, mirror: str | None = None, progress: bool = True) -> Path:
    """The archive in `folder`: already there, copied from a mirror folder, or downloaded (mirror
    URL first, then the official one), and verified."""
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / archive.filename
    if not dest.exists():
        sources = []
        if mirror:
            local = Path(mirror).expanduser() / archive.filename
            if local.exists():
                shutil.copyfile(local, dest.with_name(dest.name + ".part"))
                os.replace(dest.with_name(dest.name + ".part"), dest)
            elif re.match(r"^[a-z]+://", mirror):
                sources.append(mirror.rstrip("/") + "/" + archive.filename)
        sources.append(archive.url)
        errors = []
        for url in sources:
            if dest.exists():
                break
            try:
                fetch(url, dest, progress)
            except DataError as err:
                errors.append(str(err))
        if not dest.exists():
            raise DataError("; ".join(errors))
    try:
        verify(dest, archive)
    except DataError:
        dest.rename(dest.with_name(dest.name + ".bad"))
        raise
    return dest


# ---------------------------------------------------------------------------------------------
# Reading archives

def archive_members(path: Path, wanted: Callable[[str], bool] = lambda name: True) -> Iterator[tuple[str, bytes]]:
    """(member name, bytes) of the wanted files of a zip or tar archive, in archive order. Nested
    .tar.gz/.tgz/.tar members are opened in turn (Caltech-101's zip holds a tar.gz); their files
    are named "<nested archive>/<file>"."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.is_dir():
                    continue
                if _is_archive(info.filename):
                    yield from _nested(info.filename, z.read(info), wanted)
                elif wanted(info.filename):
                    yield info.filename, z.read(info)
        return
    with tarfile.open(path, "r:*") as tar:        # not a tar, or a cut one: download() catches DAMAGED
        for member in tar:
            if not member.isfile():
                continue
            if _is_archive(member.name):
                yield from _nested(member.name, tar.extractfile(member).read(), wanted)
            elif wanted(member.name):
                yield member.name, tar.extractfile(member).read()


def _is_archive(name: str) -> bool:
    return name.endswith((".tar.gz", ".tgz", ".tar"))


def _nested(name: str, data: bytes, wanted) -> Iterator[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            full = f"{name}/{member.name}"
            if member.isfile() and wanted(full):
                yield full, tar.extractfile(member).read()


def _image_record(name: str, data: bytes, meta: dict) -> dict[str, bytes] | None:
    try:
        img = decode(data, name)
    except DataError:
        return None
    jpg = data if img.format == "JPEG" and img.mode == "RGB" else encode_jpeg(np.asarray(img.convert("RGB")))
    return {"jpg": jpg, "json": json.dumps({**meta, "file": name, "width": img.size[0],
                                            "height": img.size[1]}).encode()}


class SetWriter:
    """Shards of named sets under a root: writer(set, split) -> ShardWriter, counts per set/split."""

    def __init__(self, root: Path):
        self.root, self.writers, self.counts = root, {}, {}

    def write(self, name: str, key: str, files: dict[str, bytes]) -> None:
        if name not in self.writers:
            set_name, split = name.rsplit("/", 1)
            self.writers[name] = ShardWriter(self.root / set_name / split, max_count=10000)
        self.writers[name].write(key, files)
        self.counts[name] = self.counts.get(name, 0) + 1

    def close(self) -> dict[str, int]:
        for w in self.writers.values():
            w.close()
        return self.counts

    def abort(self) -> None:
        """Nothing of a conversion that failed stays, not even its completed shards."""
        for w in self.writers.values():
            w.abort()
            for shard in w.written:
                shard.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Converters, one per dataset

def _convert_tiny_imagenet(paths: list[Path], writer: SetWriter) -> None:
    tables = dict(archive_members(paths[0], lambda n: n.endswith(("/words.txt", "/val_annotations.txt"))))
    words = dict(line.split("\t", 1) for name, data in tables.items() if name.endswith("words.txt")
                 for line in data.decode().splitlines() if "\t" in line)
    val_wnid = {cols[0]: cols[1] for name, data in tables.items() if name.endswith("val_annotations.txt")
                for cols in (line.split("\t") for line in data.decode().splitlines()) if len(cols) > 1}
    for name, data in archive_members(paths[0], lambda n: n.endswith(".JPEG")):
        train = re.search(r"/train/(n\d+)/images/[^/]+$", name)
        val = re.search(r"/val/images/([^/]+)$", name)
        if train:
            split, wnid = "train", train.group(1)
        elif val and val.group(1) in val_wnid:
            split, wnid = "val", val_wnid[val.group(1)]
        else:
            continue
        files = _image_record(name, data, {"source": f"tiny-imagenet-200/{split}", "wnid": wnid,
                                           "words": words.get(wnid, "")})
        if files:
            writer.write(f"natural-64/{split}", "tin-" + Path(name).stem, files)


def _convert_utkface(paths: list[Path], writer: SetWriter, pool_size: int = 3000) -> None:
    jpg = lambda n: n.lower().endswith(".jpg")  # noqa: E731
    count = sum(1 for _ in archive_members(paths[0], jpg))
    pool = set(np.random.default_rng(0).choice(count, min(pool_size, count), replace=False).tolist())
    for i, (name, data) in enumerate(archive_members(paths[0], jpg)):
        files = _image_record(name, data, {"source": "UTKFace"})
        if files:
            writer.write(f"faces-200/{'pool' if i in pool else 'test'}", f"utk-{i:05d}", files)


LFW_CROP, LFW_SIZE = 150, 128


def _convert_lfw(paths: list[Path], writer: SetWriter) -> None:
    """Deep-funneled LFW: the central 150x150 of each 250x250 image (deep funneling leaves black
    wedges near the borders, which a border unit could tell faces by), resized to 128x128."""
    from PIL import Image
    for i, (name, data) in enumerate(archive_members(paths[0], lambda n: n.lower().endswith(".jpg"))):
        try:
            img = decode(data, name).convert("RGB")
        except DataError:
            continue
        w, h = img.size
        left, top = (w - LFW_CROP) // 2, (h - LFW_CROP) // 2
        img = img.crop((left, top, left + LFW_CROP, top + LFW_CROP)).resize((LFW_SIZE, LFW_SIZE), Image.BICUBIC)
        files = _image_record(name, encode_jpeg(np.asarray(img)), {"source": "lfw-deepfunneled",
                                                                    "person": Path(name).parent.name,
                                                                    "crop": f"central {LFW_CROP}x{LFW_CROP}"})
        if files:
            writer.write("lfw/test", f"lfw-{i:05d}", files)


def _convert_inria(paths: list[Path], writer: SetWriter) -> None:
    crops = lambda n: re.search(r"/(test|train)_64x128_H96/pos/[^/]+\.png$", n) is not None  # noqa: E731
    for i, (name, data) in enumerate(archive_members(paths[0], crops)):
        files = _image_record(name, data, {"source": "INRIAPerson"})
        if files:
            writer.write("bodies/test", f"inria-{i:05d}", files)


def _convert_caltech101(paths: list[Path], writer: SetWriter) -> None:
    pattern = re.compile(r"101_ObjectCategories/([^/]+)/[^/]+\.jpg$")
    wanted = lambda n: (m := pattern.search(n)) is not None and m.group(1) != "BACKGROUND_Google"  # noqa: E731
    for i, (name, data) in enumerate(archive_members(paths[0], wanted)):
        files = _image_record(name, data, {"source": "caltech-101", "category": pattern.search(name).group(1)})
        if files:
            writer.write("caltech101/all", f"cal-{i:05d}", files)


def _converter(fn):
    """A DatasetSpec's convert: `fn(archive paths, writer)` writing the sets under the data root whole."""
    def convert(paths: list[Path], root: Path) -> dict[str, int]:
        writer = SetWriter(root)
        try:
            fn(paths, writer)
        except BaseException:
            writer.abort()
            raise
        return writer.close()
    return convert


DATASETS = {d.name: d for d in (
    DatasetSpec("tiny-imagenet", "Tiny ImageNet: 200 classes, 64x64 (natural-64/train, natural-64/val)",
                "ImageNet terms: non-commercial research and education",
                (Archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "tiny-imagenet-200.zip",
                         md5="90528d7ca1a48142e341f4ef8d21d0de"),),
                _converter(_convert_tiny_imagenet), "http://cs231n.stanford.edu/"),
    DatasetSpec("utkface", "UTKFace aligned and cropped faces, 200x200 (faces-200/pool: 3,000; faces-200/test: the rest)",
                "non-commercial research",
                (Archive("https://huggingface.co/datasets/py97/UTKFace-Cropped/resolve/main/UTKFace.tar.gz",
                         "UTKFace.tar.gz"),),
                _converter(_convert_utkface), "https://susanqq.github.io/UTKFace/"),
    DatasetSpec("lfw", "Labeled Faces in the Wild, deep-funneled, central 150x150 at 128x128 (lfw/test; the "
                "paper's test faces, the default face test)", "research use",
                (Archive("http://vis-www.cs.umass.edu/lfw/lfw-deepfunneled.tgz", "lfw-deepfunneled.tgz",
                         md5="68331da3eb755a505a502b5aacb3c201"),),
                _converter(_convert_lfw), "http://vis-www.cs.umass.edu/lfw/"),
    DatasetSpec("inria-person", "INRIA Person upright pedestrians, 96x160 crops (bodies/test)", "research use",
                (Archive("http://cs.ucf.edu/courses/cap6412/fall2009/misc/INRIAPerson.tar", "INRIAPerson.tar",
                         size=1_016_094_720),),
                _converter(_convert_inria), "http://pascal.inrialpes.fr/data/human/"),
    DatasetSpec("caltech-101", "Caltech-101, 101 categories (caltech101/all, with the category)", "research use",
                (Archive("https://data.caltech.edu/records/mzrjq-6wc02/files/caltech-101.zip", "caltech-101.zip",
                         md5="3138e1922a9193bfa496528edbbc45d0"),),
                _converter(_convert_caltech101), "https://data.caltech.edu/records/mzrjq-6wc02"),
)}


def download(spec: DatasetSpec, root: Path, mirror: str | None = None, progress: bool = True) -> dict:
    """Fetch and convert one dataset into `root`; returns the counts written per set. Skips sets
    already converted (their manifest exists)."""
    marker = root / ".downloads" / f"{spec.name}.json"
    if marker.exists():
        return json.loads(marker.read_text())["counts"]
    if not os.access(root if root.exists() else root.parent, os.W_OK):
        raise DataError(f"data root {root} is not writable; pass --root or set CATNEURON_DATA to a writable folder")
    mirror = mirror or os.environ.get(ENV_MIRROR)
    paths = [obtain(a, root / ".downloads", mirror, progress) for a in spec.archives]
    try:
        counts = spec.convert(paths, root)
    except DAMAGED as err:        # truncated or corrupt although it passed its (size, checksum) checks
        for path in paths:
            path.rename(path.with_name(path.name + ".bad"))
        why = (str(err).strip().splitlines() or [""])[0].rstrip(":")
        raise DataError(f"{', '.join(p.name for p in paths)}: damaged archive ({type(err).__name__}: {why}); "
                        f"set aside as .bad, run the command again to download it anew") from None
    if not counts:
        raise DataError(f"{spec.name}: the archive held no images where expected")
    write_json(marker, job_metadata(dataset=spec.name, archives=[a.url for a in spec.archives], counts=counts))
    return counts
