"""Long data jobs over many input files: worker processes, shards, a skipped-files report, resume.

    report = run_job(out_dir, inputs, work, workers=2, shard_size=5000, desc="frames")

`work(item)` runs in a worker process and returns a WorkResult: the records made from one input
(a video, a shard, a chunk of image files) and the files in it that were skipped, with why.
Results are consumed in input order, so the output is the same whatever the number of workers. An optional `accept` callback (in the main
process) may drop records, e.g. duplicates. Records go to ``<out>/<prefix>-NNNNNN.tar.gz``.

Shards end only between inputs, and after each completed shard ``progress.json`` records how
many inputs are fully inside completed shards. A killed job leaves complete shards, the progress
file and at most one ``.tmp`` shard that no reader accepts; running it again deletes the ``.tmp``
and continues after the last completed shard. The final report (``report.json``) lists every
skipped input with its reason.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


from catneuron.data.parallel import ordered_map
from catneuron.data.shards import ShardWriter
from catneuron.errors import DataError
from catneuron.files import read_json, write_json
from catneuron.progress import progress as progress_bar
from catneuron.provenance import code_version

PROGRESS = "progress.json"
REPORT = "report.json"


@dataclass
class WorkResult:
    records: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)   # (file or record, why)
    files: int = 1                                     # files read, for the progress bar
    stats: dict[str, int] = field(default_factory=dict)   # counts summed into JobReport.stats


@dataclass
class JobReport:
    inputs: int = 0
    done: int = 0                        # inputs fully processed (over all sessions)
    written: int = 0                     # records in completed shards
    dropped: int = 0                     # records refused by `accept` (duplicates, ...)
    files: int = 0                       # files (images, videos, records) read
    skipped: dict[str, str] = field(default_factory=dict)    # file -> reason
    dropped_examples: dict[str, str] = field(default_factory=dict)
    shards: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    sessions: int = 0
    job: dict = field(default_factory=dict)      # what was asked (kind, sources, settings): resumed only alike

    def save(self, path: Path) -> None:
        write_json(path, asdict(self))


def _load_progress(out: Path, inputs: int, job: dict) -> JobReport:
    path = out / PROGRESS
    if not path.exists():
        return JobReport(inputs=inputs, job=job)
    fresh = f"use a new output folder or delete {path}"
    saved = read_json(path, fresh)
    try:
        report = JobReport(**saved)
    except TypeError:
        raise DataError(f"{path}: not a job's progress record; {fresh}") from None
    if report.job != job:
        differ = sorted(k for k in {**report.job, **job} if report.job.get(k) != job.get(k))
        raise DataError(f"{out}: holds a job with other {', '.join(differ)} ({report.job.get(differ[0])!r}, now "
                        f"{job.get(differ[0])!r}); {fresh}")
    if report.inputs != inputs:
        raise DataError(f"{out}: holds a partial run over {report.inputs} inputs, this one has {inputs}; "
                        f"use a new output folder or delete {path}")
    missing = [s for s in report.shards if not (out / s).exists()]
    if missing:
        raise DataError(f"{out}: {PROGRESS} lists {missing[0]} which is gone; delete the folder and start again")
    return report


def run_job(out: Path, inputs: Sequence, work: Callable[[Any], WorkResult], *, workers: int = 0,
            shard_size: int = 5000, prefix: str = "train", desc: str = "job",
            accept: Callable[[str, dict[str, bytes]], str | None] | None = None,
            progress: bool = True, total_files: int | None = None, job: dict | None = None) -> JobReport:
    """Run `work` over `inputs` into shards in `out` (see the module docstring).

    `accept(key, files)` returns None to keep a record or a reason to drop it. `total_files`
    sizes the progress bar (files/s); by default it counts inputs. `job` says what is asked (its
    sources and settings); a folder holding another job's shards is refused, not continued.
    """
    job = json.loads(json.dumps(job or {}))          # as it reads back from progress.json
    if out.exists() and not (out / PROGRESS).exists() and any(out.glob(f"{prefix}-*")):
        raise DataError(f"{out}: holds shards but no {PROGRESS}; use a new output folder or delete it")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.tmp"):
        stale.unlink()
    report = _load_progress(out, len(inputs), job)
    report.sessions += 1
    writer = ShardWriter(out / prefix, max_count=None, start_index=len(report.shards))
    pending: list[str] = []            # records in the shard being written, not yet counted
    bar = progress_bar(total=total_files or len(inputs), initial=report.files if total_files else report.done,
                       unit="file", desc=desc, enabled=progress)
    try:
        results = ordered_map(work, inputs[report.done:], workers, chunk=1)
        for index, result in enumerate(results, start=report.done):
            report.skipped.update(result.skipped)
            report.files += result.files
            for name, n in result.stats.items():
                report.stats[name] = report.stats.get(name, 0) + n
            for key, files in result.records:
                reason = accept(key, files) if accept else None
                if reason is not None:
                    report.dropped += 1
                    if len(report.dropped_examples) < 1000:
                        report.dropped_examples[_origin(key, files)] = reason
                    continue
                writer.write(key, files)
                pending.append(key)
            report.done = index + 1
            if writer.count >= shard_size:
                writer.end_shard()
                report.shards.append(writer.written[-1].name)
                report.written += len(pending)
                pending = []
                report.save(out / PROGRESS)
            bar.update(result.files if total_files else 1)
            bar.set_postfix(written=report.written + len(pending), skipped=len(report.skipped))
        if writer.count:
            writer.end_shard()
            report.shards.append(writer.written[-1].name)
            report.written += len(pending)
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
    report.save(out / PROGRESS)
    report.save(out / REPORT)
    return report


def _origin(key: str, files: dict[str, bytes]) -> str:
    try:
        return json.loads(files["json"]).get("origin", key)
    except (KeyError, ValueError):
        return key


def job_metadata(**extra) -> dict:
    return {"code_version": code_version(), **extra}
