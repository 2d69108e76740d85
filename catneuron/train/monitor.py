"""What the trainer logs about learning itself, beside the loss: per stage, how far the filters
moved from their initialization, how much structure they have (``catneuron.nn.structure``) and how
sparse their codes are. Computed on a fixed grid of filter locations, so the cost does not grow
with the model (the `paper` preset has 9 GB of weights)."""
from __future__ import annotations

import torch

from catneuron.nn.structure import kurtosis, location_sample, summary


class LearningMonitor:
    """Holds the sampled encoder filters of the initialization; `row` compares the model with them."""

    def __init__(self, initial: list[torch.Tensor]):
        """`initial`: per stage, the initialization's encoder filters at the sampled locations (a
        distributed replica gets the driver's)."""
        self.initial = initial

    @classmethod
    def of(cls, model) -> "LearningMonitor":
        return cls([location_sample(stage.encoder.weight.detach()).clone() for stage in model.stages])

    @torch.no_grad()
    def row(self, model, filtered: list[torch.Tensor] | None = None) -> dict[str, float]:
        """Per stage: structure and localization of W1, structure of W2, relative distance of W1
        from its initialization, and (given the batch's filter outputs) the codes' kurtosis, for
        the stages the step computed (a greedy step computes none above the one it trains)."""
        row = {}
        for k, (stage, enc0) in enumerate(zip(model.stages, self.initial), start=1):
            encoder = summary(stage.encoder.weight)
            row[f"stage{k}/structure"] = encoder["structure"]
            row[f"stage{k}/decoder_structure"] = summary(stage.decoder_weight)["structure"]
            row[f"stage{k}/localization"] = encoder["localization"]
            enc = location_sample(stage.encoder.weight)
            enc0 = enc0.to(enc.device)
            row[f"stage{k}/from_init"] = float((enc - enc0).norm() / enc0.norm().clamp_min(1e-30))
            if filtered is not None and k <= len(filtered):
                row[f"stage{k}/kurtosis"] = float(kurtosis(filtered[k - 1]))
        return row
