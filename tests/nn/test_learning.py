"""Known-answer tests of learning: the objective and the optimizers recover structure that is there.

Loss curves cannot show that filters learned anything (a random overcomplete frame plus its dual
reconstructs well); these tests check the filters themselves."""
import math

import numpy as np
import torch

from catneuron import config as C
from catneuron.data.preprocess import to_tensor
from catneuron.nn.autoencoder import DeepSparseAutoencoder
from catneuron.nn.structure import duplicated, localization, spectral_concentration
from catneuron.train.optim import make_optimizer
from catneuron.train.trainer import train_step


def gabor_dictionary(n: int, size: int, gen: torch.Generator) -> torch.Tensor:
    """n unit-norm Gabor patches (size x size) at random orientations, phases and places."""
    t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    atoms = []
    for _ in range(n):
        theta, phase = (torch.rand(2, generator=gen) * torch.tensor([math.pi, 2 * math.pi])).tolist()
        cy, cx = ((torch.rand(2, generator=gen) - 0.5) * size / 2).tolist()
        u = (xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)
        envelope = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * (size / 5) ** 2))
        atom = envelope * torch.cos(2 * math.pi * u / (size / 2.5) + phase)
        atoms.append(atom / atom.norm())
    return torch.stack(atoms)


def sparse_batch(dictionary: torch.Tensor, batch: int, gen: torch.Generator, active: float = 2.0,
                 noise: float = 0.05) -> torch.Tensor:
    """(batch, 1, size, size): on average `active` atoms with amplitudes +-[1, 3], plus Gaussian noise."""
    n = dictionary.shape[0]
    on = (torch.rand(batch, n, generator=gen) < active / n).float()
    amplitude = (1 + 2 * torch.rand(batch, n, generator=gen)) * torch.randn(batch, n, generator=gen).sign()
    x = torch.einsum("bn,nhw->bhw", on * amplitude, dictionary)
    return (x + noise * torch.randn(x.shape, generator=gen))[:, None]


def one_stage(size: int, channels: int, maps: int, field: int, pool: int, **model) -> C.Config:
    cfg = C.preset("tiny")
    cfg.model = C.ModelConfig(input_size=size, channels=channels, lcn=False, stages=[
        C.StageConfig(maps=maps, receptive_field=field, pool_size=pool, lcn_size=1)], **model)
    return cfg


def train(cfg: C.Config, batches, steps: int) -> DeepSparseAutoencoder:
    """The trainer's step (catneuron.train.trainer.train_step) without its data plumbing."""
    torch.manual_seed(cfg.train.seed)
    model = DeepSparseAutoencoder(cfg.model)
    optimizer = make_optimizer(cfg.train, model.parameters())
    for _ in range(steps):
        train_step(model, optimizer, cfg, next(batches))
    return model


def matched_atoms(dictionary: torch.Tensor, bases: torch.Tensor) -> torch.Tensor:
    """Per atom, the largest |cosine| with any basis: (n,)."""
    bases = bases.flatten(1)
    bases = bases / bases.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (dictionary.flatten(1) @ bases.T).abs().max(1).values


def test_duplicated_counts_near_copies_at_one_location_only():
    torch.manual_seed(0)
    w = torch.randn(2, 3, 4, 5, 5, 3)                      # random 75-dim filters: |cosine| ~ 0.1
    assert duplicated(w) == 0
    w[1, 2, 3] = -2 * w[1, 2, 0] + 0.01 * torch.randn(5, 5, 3)      # a scaled, sign-flipped copy
    w[0, 0, 1] = w[1, 1, 1]                                 # the same filter at another location: not a copy
    assert duplicated(w) == 2 / (2 * 3 * 4)


def test_one_stage_recovers_a_known_sparse_dictionary():
    """Data made of sparse combinations of 16 Gabor atoms (8x8): the decoder bases of one stage,
    trained with the model's objective and optimizer, must find most atoms (|cos| >= 0.9); its
    random start matches none."""
    gen = torch.Generator().manual_seed(0)
    dictionary = gabor_dictionary(16, 8, gen)
    cfg = one_stage(8, 1, 16, 8, 1, sparsity=1.0)       # one location, pooling of one unit: an L1 penalty
    cfg.train.optimizer, cfg.train.lr = "adam", 0.01
    batches = iter(lambda: sparse_batch(dictionary, 100, gen), None)
    start = DeepSparseAutoencoder(cfg.model)
    before = matched_atoms(dictionary, start.stages[0].decoder_weight[0, 0, :, :, :, 0].detach())
    model = train(cfg, batches, 500)
    after = matched_atoms(dictionary, model.stages[0].decoder_weight[0, 0, :, :, :, 0].detach())
    assert (before >= 0.9).float().mean() == 0
    assert (after >= 0.9).float().mean() >= 0.75, after


def natural_batches(images: np.ndarray, batch: int, preprocess: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    while True:
        yield to_tensor(images[rng.integers(0, len(images), batch)], preprocess)


def test_stage1_filters_trained_on_natural_images_gain_structure(datasets):
    """One stage on real natural images (Tiny ImageNet at 32x32): with the `small` preset's
    optimizer and start, the encoder filters leave white noise for structure (spectral
    concentration far above its value at initialization); with the old start (full-scale random
    encoder and decoder, Adagrad at 0.002) they keep the look of their initialization."""
    from catneuron.data.loader import decode_record
    from catneuron.data.sources import iter_records, resolve_all
    images = []
    for rec, _ in iter_records(resolve_all(["natural-64/train"], str(datasets))):
        img, _ = decode_record(rec, 32, 3)
        if img is not None:
            images.append(img)
        if len(images) == 2000:
            break
    images = np.stack(images)
    small = C.preset("small")

    def structure_after(steps: int, **settings) -> tuple[float, float]:
        cfg = one_stage(32, 3, 4, 8, 3, sparsity=small.model.sparsity, **settings.pop("model", {}))
        for key, value in settings.items():
            setattr(cfg.train, key, value)
        model = train(cfg, natural_batches(images, 50, small.data.preprocess), steps)
        w = model.stages[0].encoder.weight.detach()
        return float(spectral_concentration(w).mean()), float(localization(w).mean())

    model_settings = {k: getattr(small.model, k) for k in ("encoder_init", "decoder_init", "norm_constraint")}
    learned, _ = structure_after(150, optimizer=small.train.optimizer, lr=small.train.lr,
                                 weight_decay=small.train.weight_decay, model=model_settings)
    old, _ = structure_after(150, optimizer="adagrad", lr=0.002, weight_decay=0.0,
                             model={"encoder_init": 1.0, "decoder_init": "random", "norm_constraint": "decoder"})
    noise = float(spectral_concentration(torch.randn(1000, 8, 8, 3)).mean())
    assert old < noise + 0.05
    assert learned > noise + 0.25, (learned, noise)
