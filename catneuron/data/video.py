"""Frames from videos: the paper's training set is one random frame from each of 10 million videos.

    catneuron data frames VIDEO_FOLDER --out corpora/frames [--per-video 1] [--size 200] [--seed 0]

For each video (recursively under the folder), `per_video` times drawn uniformly in [0, duration)
from a generator seeded by (seed, the video's path relative to the folder) — so a video's frames do
not depend on which other videos are present or on the worker count. The frame shown at each time
is decoded (PyAV/FFmpeg: anything FFmpeg reads, GIFs included), resized on its shorter side and
center-cropped to size x size RGB, and stored as JPEG with its provenance (source file, timestamp).
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import numpy as np

from catneuron.data.images import encode_jpeg, fit_square
from catneuron.data.jobs import WorkResult, job_metadata, run_job
from catneuron.files import write_json
from catneuron.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".gif",
                  ".ogv", ".3gp", ".ts")


def find_videos(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"video folder {folder}: not a folder")
    videos = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise DataError(f"video folder {folder}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    return videos


def frame_times(duration: float, count: int, seed: int, name: str) -> list[float]:
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    rng = np.random.default_rng([seed, digest])
    return sorted(float(t) for t in rng.uniform(0.0, duration, size=count))


def read_frames(path: Path, times: list[float] | None = None, count: int = 1, seed: int = 0,
                name: str | None = None):
    """[(RGB uint8 frame, its time in seconds)] at the given times, or at `count` seeded random times."""
    import av  # imported here: only video jobs need FFmpeg

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DataError(f"{path}: no video stream")
        stream = container.streams.video[0]
        duration = _duration(container, stream)
        if times is None:
            times = frame_times(duration, count, seed, name or path.name)
        out = []
        for t in times:
            frame = _frame_at(container, stream, t)
            if frame is None:
                raise DataError(f"{path}: no frame decoded at {t:.3f} s")
            out.append((frame.to_ndarray(format="rgb24"), float(frame.time if frame.time is not None else t)))
        return out


def _duration(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        import av
        return container.duration / av.time_base
    raise DataError("duration unknown")


def _frame_at(container, stream, t: float):
    """The frame on screen at time t: seek to the keyframe before t, decode forward."""
    try:
        container.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
    except Exception:  # some demuxers (GIF) cannot seek; decode from the start
        container.seek(0)
    last = None
    for frame in container.decode(stream):
        if frame.time is not None and frame.time > t + 1e-6 and last is not None:
            return last
        last = frame
        if frame.time is not None and abs(frame.time - t) <= 1e-6:
            return frame
    return last


def _work(item: tuple[str, str], count: int, size: int, seed: int) -> WorkResult:
    path, name = item
    try:
        frames = read_frames(Path(path), count=count, seed=seed, name=name)
    except DataError as err:
        return WorkResult(skipped=[(name, str(err).split(": ", 1)[-1])])
    except Exception as err:  # FFmpeg errors: corrupt file, unknown codec, ...
        return WorkResult(skipped=[(name, f"unreadable video ({type(err).__name__}: {err})")])
    stem = hashlib.sha1(name.encode()).hexdigest()[:16]
    records = []
    for k, (rgb, t) in enumerate(frames):
        meta = {"source": name, "timestamp": round(t, 4), "frame": k, "width": rgb.shape[1],
                "height": rgb.shape[0], "seed": seed}
        records.append((f"{stem}-{k}", {"jpg": encode_jpeg(fit_square(rgb, size)),
                                        "json": json.dumps(meta).encode()}))
    return WorkResult(records)


def extract_frames(folder: Path, out: Path, per_video: int = 1, size: int = 200, seed: int = 0,
                   workers: int = 0, shard_size: int = 5000, progress: bool = True):
    """Frames of every video under `folder` into shards in `out`; returns the job report."""
    videos = find_videos(folder)
    items = [(str(p), str(p.relative_to(folder))) for p in videos]
    work = functools.partial(_work, count=per_video, size=size, seed=seed)
    report = run_job(out, items, work, workers=workers, shard_size=shard_size, desc="frames", progress=progress,
                     job=dict(kind="frames", source=str(folder), per_video=per_video, size=size, seed=seed,
                              shard_size=shard_size))
    if report.written == 0:
        raise DataError(f"video folder {folder}: none of the {len(videos)} videos could be read "
                        f"(e.g. {next(iter(report.skipped.items()), ('?', '?'))[0]}: "
                        f"{next(iter(report.skipped.values()), '?')})")
    write_json(out / "manifest.json", job_metadata(
        kind="frames", source=str(folder), videos=len(videos), per_video=per_video, size=size, seed=seed,
        frames=report.written, skipped=len(report.skipped), shards=report.shards))
    return report
