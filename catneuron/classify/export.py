"""A trained classifier on disk: one safetensors file whose metadata rebuilds it.

    clf = catneuron.load("runs/classify/four-way")      # a directory or its classifier.safetensors
    clf.predict(["photo.jpg", ...])                     # -> ["face", ...]
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from catneuron import config as C
from catneuron.classify.model import Classifier
from catneuron.errors import CatneuronError
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.provenance import code_version
from catneuron.train.checkpoint import save_weights

FORMAT = "catneuron-classifier-1"
FILE = "classifier.safetensors"


def save(clf: Classifier, directory: str | Path, model_cfg: C.ModelConfig, provenance: dict) -> Path:
    """Write `directory`/classifier.safetensors atomically; `provenance` is stored with it."""
    path = Path(directory) / FILE
    meta = {"format": FORMAT, "classes": json.dumps(clf.classes), "loss": clf.loss_kind,
            "input_size": str(clf.input_size), "channels": str(clf.channels), "preprocess": clf.preprocess,
            "encoder": json.dumps(C.Config(model=model_cfg).to_dict()["model"]) if clf.encoder is not None else "",
            "provenance": json.dumps({**provenance, "code_version": code_version()})}
    save_weights(clf, path, meta)
    return path


def load(path: str | Path, device: str = "cpu") -> Classifier:
    """A Classifier from a directory written by `save` (or the file itself), in eval mode."""
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.parent.name for p in path.glob(f"*/{FILE}"))     # a `classify compare` folder
        if inside and not (path / FILE).exists():
            raise CatneuronError(f"{path}: holds one classifier per start ({', '.join(inside)}); name one, e.g. "
                                 f"{path / inside[0]}")
        path = path / FILE
    if not path.exists():
        raise CatneuronError(f"{path}: no trained classifier (expected a directory holding {FILE})")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT}")
        encoder = None
        if meta["encoder"]:
            model_cfg = C.from_dict({"model": json.loads(meta["encoder"])}).model
            encoder = DeepSparseAutoencoder(model_cfg)
        clf = Classifier(encoder, json.loads(meta["classes"]), int(meta["input_size"]), int(meta["channels"]),
                         meta["preprocess"], meta["loss"])
        clf.load_state_dict(load_file(str(path)))
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as err:
        raise CatneuronError(f"{path}: not a catneuron classifier ({err})") from None
    clf.provenance = json.loads(meta.get("provenance") or "{}")
    return clf.to(device).eval()
