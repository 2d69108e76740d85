"""The network's geometry from its ModelConfig alone: every sublayer's size, receptive field and jump.

The one place it is computed; the modules, the accounting, the probe and the benchmark read it.

    field   input pixels that move one unit, along an axis: a window of w units of a layer of field
            f and jump j (filtering, pooling) gives f + (w - 1) j; LCN's window is centred and
            applied twice (the local mean, then the local RMS of what is left), so it gives
            f + 2 (w - 1) j
    jump    input pixels between neighbouring units: the product of the strides below
    start   the input pixel where the field of unit 0 begins; unit i's field begins at start + i jump.
            Negative after LCN: the fields of border units reach past the image (LCN renormalizes
            its window there)

Stages of kind "sigmoid" (the deep-autoencoder baseline) have a filtering and a sigmoid sublayer
and no pooling or LCN.
"""
from __future__ import annotations

from dataclasses import dataclass

from catneuron.errors import ConfigError


def output_size(in_size: int, window: int, stride: int) -> int:
    """Number of window positions along one axis (no padding)."""
    return (in_size - window) // stride + 1


@dataclass(frozen=True)
class Sublayer:
    stage: int       # 1-based
    kind: str        # filter | pool | lcn | sigmoid
    maps: int
    size: int        # output side, units
    field: int       # receptive field side in input pixels
    jump: int        # input pixels between neighbouring units
    start: int       # where unit 0's field begins (input pixels; < 0 after LCN)

    def field_start(self, index: int) -> int:
        """Input pixel where the field of unit `index` (along one axis) begins."""
        return self.start + index * self.jump

    def inside(self, input_size: int) -> range:
        """Indices of the units whose whole field lies inside an input of this side."""
        first = -(self.start // self.jump) if self.start < 0 else 0
        last = (input_size - self.field - self.start) // self.jump
        return range(first, min(last, self.size - 1) + 1)

    @property
    def name(self) -> str:
        return f"stage{self.stage}/{self.kind}"

    @property
    def units(self) -> int:
        return self.maps * self.size * self.size


@dataclass(frozen=True)
class StageGeometry:
    in_channels: int
    in_size: int        # input side, pixels
    filter_size: int    # filtering sublayer output side
    pool_size: int      # pooling / LCN output side (= filter_size for sigmoid stages)
    maps: int
    sublayers: tuple[Sublayer, ...]

    @property
    def locations(self) -> int:
        return self.filter_size ** 2


def geometry(model) -> list[StageGeometry]:
    """Sizes, fields and jumps of every stage of a ModelConfig; ConfigError when a stage does not fit."""
    out, channels, size, field, jump, start = [], model.channels, model.input_size, 1, 1, 0
    for k, st in enumerate(model.stages):
        where = f"model.stages.{k}"
        for name in ("maps", "receptive_field", "stride", "pool_size", "pool_stride", "lcn_size"):
            if getattr(st, name) < 1:
                raise ConfigError(f"{where}.{name} must be >= 1, got {getattr(st, name)}")
        if st.receptive_field > size:
            raise ConfigError(f"{where}.receptive_field = {st.receptive_field} is larger than the stage's "
                              f"{size}x{size} input")
        filt = output_size(size, st.receptive_field, st.stride)
        field, jump = field + (st.receptive_field - 1) * jump, jump * st.stride
        subs = [Sublayer(k + 1, "filter", st.maps, filt, field, jump, start)]
        if model.kind == "sigmoid":
            subs.append(Sublayer(k + 1, "sigmoid", st.maps, filt, field, jump, start))
            out.append(StageGeometry(channels, size, filt, filt, st.maps, tuple(subs)))
            channels, size = st.maps, filt
            continue
        if st.pool_size > filt:
            raise ConfigError(f"{where}.pool_size = {st.pool_size} is larger than the {filt}x{filt} filtering output")
        if st.lcn_size % 2 == 0:
            raise ConfigError(f"{where}.lcn_size must be odd, got {st.lcn_size}")
        pooled = output_size(filt, st.pool_size, st.pool_stride)
        field, jump = field + (st.pool_size - 1) * jump, jump * st.pool_stride
        subs.append(Sublayer(k + 1, "pool", st.maps, pooled, field, jump, start))
        if model.lcn:      # LCN keeps the size and the jump; its centred windows widen the field both ways
            field, start = field + 2 * (st.lcn_size - 1) * jump, start - (st.lcn_size - 1) * jump
            subs.append(Sublayer(k + 1, "lcn", st.maps, pooled, field, jump, start))
        out.append(StageGeometry(channels, size, filt, pooled, st.maps, tuple(subs)))
        channels, size = st.maps, pooled
    return out


def sublayers(model) -> list[Sublayer]:
    """Every sublayer of every stage, bottom to top."""
    return [s for g in geometry(model) for s in g.sublayers]
