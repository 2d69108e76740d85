"""Atomic, resumable checkpoints.

A checkpoint is a directory ``checkpoints/step-00001234/`` holding
  model.safetensors   the weights (metadata: config, step, code version)
  trainer.pt          optimizer state, data stream position, RNG states, counters
It is written under a temporary name and renamed when complete, so a kill at any moment leaves
either the previous checkpoints or a complete new one; ``latest`` ignores anything else.
"""
from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from catneuron.errors import CatneuronError

PREFIX = "step-"


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str]) -> None:
    """Weights as safetensors, written to a temporary file and renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as f:
        tmp = Path(f.name)
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def save(directory: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         trainer_state: dict, metadata: dict[str, str], keep: int = 2) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".{final.name}."))
    try:
        save_weights(model, tmp / "model.safetensors", {**metadata, "step": str(step)})
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "rng": _rng_state(), **trainer_state},
                   tmp / "trainer.pt")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
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


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, device) -> dict:
    """Restore weights (and optimizer + RNG when `optimizer` is given); returns the trainer state."""
    try:
        weights = load_file(str(path / "model.safetensors"), device=str(device))
        state = torch.load(path / "trainer.pt", map_location=device, weights_only=False)
    except (OSError, RuntimeError, ValueError) as err:
        raise CatneuronError(f"checkpoint {path}: unreadable ({err})") from None
    model.load_state_dict(weights)
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(state["rng"])
    return state


def read_metadata(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" in meta:
        meta["config"] = json.loads(meta["config"])
    return meta


def _weights_file(path: str | Path) -> Path:
    """A run directory's final weights, else its newest checkpoint's; or the file itself."""
    path = Path(path)
    if path.is_dir():
        final = path / "model.safetensors"
        newest = latest(path / "checkpoints")
        path = final if final.exists() else (newest / "model.safetensors" if newest else final)
    if not path.exists():
        raise CatneuronError(f"{path}: no trained weights (expected a run directory or a model.safetensors)")
    return path


def model_config(path: str | Path):
    """The Config stored with a run's weights (see load_model), without loading the weights."""
    from catneuron import config as C
    path = _weights_file(path)
    try:
        return C.from_dict(read_metadata(path)["config"])
    except (OSError, KeyError, ValueError) as err:
        raise CatneuronError(f"{path}: not a catneuron model ({err})") from None


def load_model(path: str | Path, device="cpu"):
    """(model, config) from a run directory (its final weights, else its newest checkpoint) or from
    a .safetensors file written by the trainer."""
    from catneuron.nn.autoencoder import DeepSparseAutoencoder
    path = _weights_file(path)
    cfg = model_config(path)
    model = DeepSparseAutoencoder(cfg.model, device=device)
    model.load_state_dict(load_file(str(path), device=str(device)))
    return model.eval(), cfg
