"""Atomic, resumable checkpoints.

A checkpoint is a directory ``checkpoints/step-00001234/`` holding
  model.safetensors   the weights (metadata: config, step, code version)
  trainer.pt          optimizer state, data stream position, RNG states, counters
It is written under a temporary name and renamed when complete, so a kill at any moment leaves
either the previous checkpoints or a complete new one; ``latest`` ignores anything else, and
``remove_partial`` deletes what a killed save left. A checkpoint damaged afterwards (a truncated
copy, a bad disk) is skipped by ``load_latest`` for the intact one before it.
"""
from __future__ import annotations

import json
import logging
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from catneuron.errors import CatneuronError
from catneuron.files import replacing, replacing_dir
from catneuron.rundir import RunDir
from catneuron.train.optim import restore

PREFIX = "step-"
UNREADABLE = (OSError, RuntimeError, ValueError, EOFError, KeyError, SafetensorError, pickle.UnpicklingError)

log = logging.getLogger(__name__)


def _rng_state() -> dict:
    """Every generator's state as tensors and plain values, so that trainer.pt loads with
    torch.load(weights_only=True): a checkpoint is data, never code."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def nonfinite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first tensor holding a NaN or an infinity, else None."""
    return next((name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()),
                None)


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Weights as safetensors, written to a temporary file and renamed; never non-finite ones."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    bad = nonfinite(tensors)
    if bad is not None:
        raise CatneuronError(f"{path}: not written: {bad} holds NaN or inf (the training diverged)")
    try:
        with replacing(path) as tmp:
            save_file(tensors, str(tmp), metadata=metadata)
    except SafetensorError as err:     # e.g. a full disk, reported by the Rust writer
        raise CatneuronError(f"{path}: cannot write ({_first_line(err)})") from None


def save(directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         trainer_state: dict, metadata: dict[str, str], keep: int = 2) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:08d}"
    with replacing_dir(final) as tmp:
        save_weights(model, tmp / "model.safetensors", {**metadata, "step": str(step)})
        try:
            with replacing(tmp / "trainer.pt") as path:
                torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": _rng_state(),
                            **trainer_state}, path)
        except RuntimeError as err:     # torch's writer reports a full disk this way
            raise CatneuronError(f"{final}: cannot write the checkpoint ({_first_line(err)})") from None
    for old in complete(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def complete(directory: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.name.startswith(PREFIX) and (p / "trainer.pt").exists() and (p / "model.safetensors").exists())


def latest(directory: Path) -> Path | None:
    found = complete(directory)
    return found[-1] if found else None


def remove_partial(directory: Path) -> list[Path]:
    """Delete the temporary folders of saves that were killed (call while holding the run's lock)."""
    stale = sorted(directory.glob(f".{PREFIX}*")) if directory.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, device) -> dict:
    """Restore weights (and optimizer + RNG when `optimizer` is given); returns the trainer state.
    Both files are read whole before anything is restored, so a damaged checkpoint changes nothing."""
    try:
        weights = load_file(str(path / "model.safetensors"), device=str(device))
        state = torch.load(path / "trainer.pt", map_location=device, weights_only=True)
        _require_finite(weights, path / "model.safetensors")
        model.load_state_dict(weights)
    except pickle.UnpicklingError:
        raise CatneuronError(f"checkpoint {path}: trainer.pt holds objects other than tensors and plain values "
                             f"(another program wrote it, or a catneuron older than this check); not loaded, since "
                             f"unpickling it could run code") from None
    except UNREADABLE as err:
        raise CatneuronError(f"checkpoint {path}: unreadable ({_first_line(err)})") from None
    if optimizer is not None:
        restore(optimizer, state["optimizer"])
        _set_rng_state(state["rng"])
    return state


def load_latest(directory: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                device) -> tuple[Path, dict] | None:
    """Restore the newest checkpoint that reads back whole (skipping damaged newer ones, with a
    warning); None when there is none. A CatneuronError when every checkpoint is damaged."""
    found = complete(directory)
    for path in reversed(found):
        try:
            return path, load(path, model, optimizer, device)
        except CatneuronError as err:
            log.warning("%s; trying the checkpoint before it", err)
    if found:
        raise CatneuronError(f"{directory}: none of the {len(found)} checkpoints is readable")
    return None


def _require_finite(weights: dict[str, torch.Tensor], path: Path) -> None:
    bad = nonfinite(weights)
    if bad is not None:
        raise CatneuronError(f"{path}: {bad} holds NaN or inf (written by a training that diverged); "
                             f"retrain with a lower train.lr")


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def read_metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if "config" in meta:
            meta["config"] = json.loads(meta["config"])
    except UNREADABLE as err:
        raise CatneuronError(f"{path}: not a readable safetensors file ({_first_line(err)})") from None
    return meta


def weights_file(path: str | Path) -> Path:
    """A run directory's newest weights: its final ones, unless a resumed session trained past them
    and was stopped (then its newest checkpoint's, which is later); or the file itself."""
    path = Path(path)
    if path.is_dir():
        run = RunDir(path)
        final, newest = run.weights, latest(run.checkpoints)
        if newest is None:
            path = final
        elif not final.exists() or int(read_metadata(final).get("step", -1)) < int(newest.name[len(PREFIX):]):
            path = newest / "model.safetensors"
        else:
            path = final
    if not path.exists():
        raise CatneuronError(f"{path}: no trained weights (expected a run directory or a model.safetensors)")
    return path


def model_config(path: str | Path):
    """The Config stored with a run's weights (see load_model), without loading the weights."""
    from catneuron import config as C
    path = weights_file(path)
    try:
        return C.from_dict(read_metadata(path)["config"])
    except (OSError, KeyError, ValueError) as err:
        raise CatneuronError(f"{path}: not a catneuron model ({err})") from None


def load_model(path: str | Path, device="cpu"):
    """(model, config) from a run directory (its final weights, else its newest checkpoint) or from
    a .safetensors file written by the trainer."""
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    path = weights_file(path)
    cfg = model_config(path)
    model = DeepSparseAutoencoder(cfg.model, device=device)
    try:
        weights = load_file(str(path), device=str(device))
    except UNREADABLE as err:
        raise CatneuronError(f"{path}: unreadable weights ({_first_line(err)})") from None
    _require_finite(weights, path)
    model.load_state_dict(weights)
    return model.eval(), cfg
