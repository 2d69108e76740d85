"""Single-process training of the deep sparse autoencoder.

A run directory (its files: catneuron/rundir.py) holds everything about one training run: the
config, provenance per session, the metrics log, checkpoints and the final weights. Ctrl-C (or
SIGTERM) writes a checkpoint before exiting, so ``--resume`` continues exactly. One training writes
a run directory at a time, and an existing run is refused without ``--resume``.
"""
from __future__ import annotations

import json
import logging
import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from catneuron.config import Config, validate
from catneuron.data.preprocess import to_tensor
from catneuron.data.loader import PYTHON_DATA, ImageStream, IterableStream, StreamState
from catneuron.data.sources import resolve_all
from catneuron.errors import CatneuronError
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.progress import progress as progress_bar
from catneuron.provenance import code_version, environment
from catneuron.rundir import RunDir
from catneuron.train import checkpoint
from catneuron.train.monitor import LearningMonitor
from catneuron.train.optim import decay_, make_optimizer

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    images_seen: int
    final_loss: float
    interrupted: bool
    signal: int = 0          # the signal that interrupted it (SIGINT, SIGTERM), 0 when it finished


def resolve_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise CatneuronError(f"train.device = {setting} but PyTorch sees no CUDA device; use train.device=cpu")
    return torch.device(setting)


def active_stage(cfg: Config, step: int) -> int | None:
    """The stage that step `step` (from 0) trains under train.schedule = greedy; None: all of them."""
    if cfg.train.schedule == "simultaneous":
        return None
    stages = len(cfg.model.stages)
    return min(stages - 1, step * stages // cfg.train.steps)


def train_step(model: DeepSparseAutoencoder, optimizer: torch.optim.Optimizer, cfg: Config, x: torch.Tensor,
               active: int | None = None):
    """One update on batch x: objective, gradient, optimizer step, weight decay, norm constraint;
    with `active`, of that stage only (active_stage). Returns the objective (computed before the update)."""
    objective = model.objective(x, active)
    optimizer.zero_grad(set_to_none=True)
    objective.total.backward()
    optimizer.step()
    decay_(cfg.train, model.parameters())
    model.project_(active)
    return objective


class StopRequest:
    """Ctrl-C / SIGTERM set a flag that the loop checks between steps, so a checkpoint never holds a
    half-applied step; a second Ctrl-C stops at once (losing the steps since the last checkpoint)."""

    def __init__(self):
        self.requested = False
        self.signal = 0

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum

    @contextmanager
    def installed(self):
        try:
            previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # signals can only be handled in the main thread
            yield self
            return
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def weights_metadata(cfg: Config) -> dict[str, str]:
    return {"config": json.dumps(cfg.to_dict()), "code_version": code_version(), "format": "catneuron-autoencoder-1"}


class Trainer:
    """Trains `cfg`'s network into `run_dir` on `cfg.data.train`, or on `data`: a Python iterable of
    images or batches (a torch DataLoader with its transforms, a Dataset, a list; see
    data.loader.IterableStream), recorded in the run as data.train = ["python:<its type>"]."""

    def __init__(self, cfg: Config, run_dir: str | Path, resume: bool = False, progress: bool = True, data=None):
        if data is not None:
            cfg = replace(cfg, data=replace(cfg.data, train=[PYTHON_DATA + type(data).__name__]))
        self.cfg = validate(cfg)
        self.rundir = RunDir(run_dir)
        self.resume, self.progress, self.data = resume, progress, data

    def run(self) -> TrainResult:
        with self.rundir.locked():
            self.rundir.refuse_existing(self.resume)
            if self.resume:
                self.rundir.check_resume(self.cfg.to_dict())
            for stale in checkpoint.remove_partial(self.rundir.checkpoints):
                log.info("removed %s, left by a save that was killed", stale)
            return self._run()

    def _run(self) -> TrainResult:
        cfg, t = self.cfg, self.cfg.train
        if t.threads:
            torch.set_num_threads(t.threads)
        device = resolve_device(t.device)
        if self.data is None and any(spec.startswith(PYTHON_DATA) for spec in cfg.data.train):
            raise CatneuronError(f"{self.rundir.path} was trained on data given in Python ({cfg.data.train[0]}); "
                                 f"resume it there: Trainer(cfg, run, resume=True, data=...)")
        sources = [] if self.data is not None else resolve_all(cfg.data.train, cfg.data.root)

        torch.manual_seed(t.seed)
        model = DeepSparseAutoencoder(cfg.model, device=device)
        monitor = LearningMonitor.of(model)       # the seed fixes the initialization, resumed or not
        optimizer = make_optimizer(t, model.parameters())
        step, images_seen, stream_state = 0, 0, StreamState()
        restored = checkpoint.load_latest(self.rundir.checkpoints, model, optimizer, device) if self.resume else None
        if restored is not None:
            _, state = restored
            step, images_seen = state["step"], state["images_seen"]
            stream_state = StreamState(**state["stream"])
            log.info("resuming %s at step %d (%d images seen)", self.rundir.path, step, images_seen)
        elif self.resume:
            log.info("no checkpoint in %s yet: starting from scratch", self.rundir.checkpoints)
        self.rundir.truncate_metrics(step)
        self.rundir.record_session(cfg.to_dict(), sources, {**environment(), "start_step": step})

        if self.data is not None:
            if restored is not None:
                log.info("the data given in Python is gone through again from its start")
            stream = IterableStream(self.data, cfg.model.input_size, cfg.model.channels, stream_state)
        else:
            stream = ImageStream(sources, cfg.model.input_size, cfg.model.channels, t.seed, cfg.data.shuffle_buffer,
                                 stream_state, workers=cfg.data.workers)
        writer = _tensorboard(self.rundir.path) if t.tensorboard else None
        meta = weights_metadata(cfg)

        def save_checkpoint():
            bad = checkpoint.nonfinite(model.state_dict())
            if bad is not None:      # the checkpoints already written stay the ones to resume from
                raise self._diverged(f"the weights became NaN or inf by step {step} ({bad})")
            checkpoint.save(self.rundir.checkpoints, step, model, optimizer,
                            {"images_seen": images_seen, "stream": stream.state.as_dict()}, meta)

        bar = progress_bar(total=t.steps, initial=step, enabled=self.progress, unit="step",
                           desc=f"train {cfg.preset}")
        loss_value, stop = float("nan"), StopRequest()
        window_start, window_images = time.perf_counter(), 0
        batches = stream.batches(t.batch_size)
        try:
            with stop.installed(), open(self.rundir.metrics, "a") as metrics:
                if step == 0:       # the initialization's values, for every curve to start from
                    metrics.write(json.dumps({"step": 0, "images": 0, **monitor.row(model)}) + "\n")
                while step < t.steps and not stop.requested:
                    batch, _ = next(batches)
                    x = to_tensor(batch, cfg.data.preprocess, device)
                    objective = train_step(model, optimizer, cfg, x, active_stage(cfg, step))
                    step += 1
                    images_seen += len(batch)
                    window_images += len(batch)
                    if step % t.log_every == 0 or step == t.steps:
                        loss_value = objective.total.item()
                        if not math.isfinite(loss_value):
                            last_logged = (step - 1) // t.log_every * t.log_every
                            raise self._diverged(f"the objective became {loss_value} between steps "
                                                 f"{last_logged} and {step}")
                        now = time.perf_counter()
                        rate = window_images / max(now - window_start, 1e-9)
                        window_start, window_images = now, 0
                        row = {"step": step, "images": images_seen, "epoch": stream.state.epoch,
                               "loss": loss_value, "images_per_s": round(rate, 2)}
                        for k, part in enumerate(objective.stages):
                            row[f"stage{k + 1}/reconstruction"] = part.reconstruction.item()
                            row[f"stage{k + 1}/relative_reconstruction"] = part.relative_reconstruction()
                            row[f"stage{k + 1}/sparsity"] = part.sparsity.item()
                        row.update(monitor.row(model, objective.filtered))
                        metrics.write(json.dumps(row) + "\n")
                        metrics.flush()
                        if writer is not None:
                            for key, value in row.items():
                                if key != "step":
                                    writer.add_scalar(key, value, step)
                        bar.set_postfix(loss=f"{loss_value:.4g}", img_s=f"{rate:.0f}", epoch=stream.state.epoch)
                    bar.update(1)
                    if step % t.checkpoint_every == 0 and step < t.steps:
                        save_checkpoint()
        finally:
            batches.close()
            bar.close()
            if writer is not None:
                writer.close()
        save_checkpoint()
        self.rundir.record_skipped(stream.skipped)
        interrupted = step < t.steps
        if interrupted:
            log.warning("interrupted at step %d; checkpoint saved. Continue with --resume --out %s", step,
                        self.rundir.path)
        else:
            checkpoint.save_weights(model, self.rundir.weights, {**meta, "step": str(step)})
        return TrainResult(self.rundir.path, step, images_seen, loss_value, interrupted, stop.signal)

    def _diverged(self, what: str) -> CatneuronError:
        good = checkpoint.latest(self.rundir.checkpoints)
        kept = f"; the last good checkpoint is {good.name}" if good else "; no checkpoint was written"
        return CatneuronError(f"{what}{kept}. Lower train.lr (now {self.cfg.train.lr}) and continue with --resume")


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.warning("train.tensorboard is set but the tensorboard package is not installed; pip install tensorboard")
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
