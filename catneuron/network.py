"""A trained network from Python: any sublayer's features for your own images, and one unit by the
address the explorer and the report show.

    net = catneuron.load_network("runs/demo/main")         # a run directory or its weights file
    net.sublayers                                          # ["stage1/filter", ..., "stage3/lcn"]
    f = net.features(["a.jpg", "b.jpg"], "stage3/lcn")     # (2, maps, H, W) tensor
    u = net.unit("stage3/pool map 3 at (1,2)")             # or UnitAddress(...), or the explorer's unit number
    u(images)                                              # (N,) responses

Images are what `catneuron.data.inputs` accepts (paths, PIL images, arrays, torchvision tensors,
one or a batch); each is cut to its central square and resized, as the training corpus was, then
preprocessed as the run's training data was (`data.preprocess`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from catneuron import config as C
from catneuron.data.inputs import as_batch
from catneuron.data.preprocess import to_tensor
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.nn.geometry import Sublayer, sublayers
from catneuron.probe.detectors import NetworkDetectors, UnitAddress
from catneuron.train.checkpoint import load_model, weights_file
from catneuron.train.trainer import resolve_device

_NAME = re.compile(r"stage(\d+)/(\w+) map (\d+) at \((\d+), ?(\d+)\)")


@dataclass(frozen=True)
class Unit:
    """One unit of a Network; calling it gives its responses to images, (N,)."""
    network: "Network"
    address: UnitAddress
    number: int            # its number in a whole-image detector set: the explorer's "unit N"

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def field(self) -> tuple[int, int, int]:
        """(top, left, side) of the input pixels it sees (top and left < 0 past the border)."""
        g = self.network.sublayer(f"stage{self.address.stage}/{self.address.sublayer}")
        return g.field_start(self.address.i), g.field_start(self.address.j), g.field

    def __call__(self, images, batch_size: int = 100) -> torch.Tensor:
        a = self.address
        return self.network.features(images, f"stage{a.stage}/{a.sublayer}", batch_size)[:, a.map, a.i, a.j]


class Network:
    """A trained DeepSparseAutoencoder with the settings it was trained with (`config`, read-only)."""

    def __init__(self, model: DeepSparseAutoencoder, config: C.Config, weights: Path):
        self.model, self.config, self.weights = model.eval(), config, weights
        self.device = next(model.parameters()).device
        self._detectors = NetworkDetectors(model, config.model, "whole", preprocess=config.data.preprocess)
        self._sublayers = {g.name: g for g in sublayers(config.model)}

    @property
    def sublayers(self) -> list[str]:
        """Every sublayer's name, bottom to top."""
        return list(self._sublayers)

    def sublayer(self, name: str) -> Sublayer:
        """The geometry of a sublayer (maps, side, receptive field) by its name."""
        if name not in self._sublayers:
            raise KeyError(f"no sublayer {name!r}; this network has {', '.join(self._sublayers)}")
        return self._sublayers[name]

    def inputs(self, images) -> torch.Tensor:
        """Images -> (N, C, S, S): the network's input, preprocessed as its training data, on its device."""
        m = self.config.model
        return to_tensor(as_batch(images, m.input_size, m.channels), self.config.data.preprocess, self.device)

    @torch.no_grad()
    def features(self, images, sublayer: str | None = None, batch_size: int = 100) -> torch.Tensor:
        """Images -> (N, maps, H, W) outputs of `sublayer` (default: the top stage's last), on the CPU,
        computing nothing above it."""
        g = self.sublayer(sublayer or self.sublayers[-1])
        batch = self.inputs(images)
        outs = [self.model.sublayer(batch[i:i + batch_size], g.stage, g.kind).cpu()
                for i in range(0, len(batch), batch_size)]
        return torch.cat(outs) if outs else torch.zeros(0, g.maps, g.size, g.size)

    def unit(self, address: UnitAddress | str | int) -> Unit:
        """A unit by its address, its name as the report and explorer write it
        ("stage3/pool map 3 at (1,2)") or its number in a whole-image detector set."""
        det = self._detectors
        if isinstance(address, str):
            match = _NAME.fullmatch(address.strip())
            if not match:
                raise ValueError(f"{address!r}: expected a unit name like 'stage3/pool map 3 at (1,2)'")
            s, kind, m, i, j = match.groups()
            address = UnitAddress(int(s), kind, int(m), int(i), int(j))
        if isinstance(address, UnitAddress):
            if address.placement:
                raise ValueError(f"{address}: a placement of a field-mode detector set; a Network's units "
                                 f"see whole images (placement 0)")
            number = det.candidate_at(address)
        else:
            number = int(address)
        return Unit(self, det.address(number), number)


def load_network(run: str | Path, device: str = "cpu") -> Network:
    """The network of a run directory (its final weights, else its newest checkpoint) or of a
    .safetensors weights file, on `device` ("cpu", "cuda", "cuda:N" or "auto")."""
    model, cfg = load_model(run, resolve_device(device))
    return Network(model, cfg, weights_file(run))
