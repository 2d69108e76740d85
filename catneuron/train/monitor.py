"""What the trainer logs about learning itself, beside the loss: per stage, how far the filters
moved from their initialization, how much structure they have (``catneuron.nn.structure``) and how
sparse their codes are. Computed on a fixed grid of filter locations, so the cost does not grow
with the model (the `paper` preset has 9 GB of weights)."""
from __future__ import annotations

import torch

from catneuron.nn.structure import kurtosis, localization, location_sample, spectral_concentration


class LearningMonitor:
    """Holds the sampled filters of the initialization; `row` compares the model with them."""

    def __init__(self, model):
        self.initial = [self._sample(stage) for stage in model.stages]

    @staticmethod
    @torch.no_grad()
    def _sample(stage) -> tuple[torch.Tensor, torch.Tensor]:
        return location_sample(stage.encoder.weight).clone(), location_sample(stage.decoder_weight).clone()

    @torch.no_grad()
    def row(self, model, codes: list[torch.Tensor] | None = None) -> dict[str, float]:
        """Per stage: structure and localization of W1 and W2, relative distance of W1 from its
        initialization, and (given the batch's filter outputs) the codes' kurtosis."""
        row = {}
        for k, (stage, (enc0, _)) in enumerate(zip(model.stages, self.initial), start=1):
            enc, dec = self._sample(stage)
            row[f"stage{k}/structure"] = float(spectral_concentration(enc).mean())
            row[f"stage{k}/decoder_structure"] = float(spectral_concentration(dec).mean())
            row[f"stage{k}/localization"] = float(localization(enc).mean())
            row[f"stage{k}/from_init"] = float((enc - enc0).norm() / enc0.norm().clamp_min(1e-30))
            if codes is not None:
                row[f"stage{k}/kurtosis"] = float(kurtosis(codes[k - 1]))
        return row
