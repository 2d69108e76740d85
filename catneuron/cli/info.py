"""`catneuron info`: a configuration's network in numbers (counts, memory, FLOPs), as text."""
from __future__ import annotations

from catneuron.cli.common import build_config, config_args, integer
from catneuron.errors import ConfigError
from catneuron.nn.config import ModelConfig
from catneuron.nn.geometry import geometry

# CUDA's context and the caching allocator's fragmentation take some of a GPU's memory.
RESERVED_GPU_BYTES = 2 * 2 ** 30


def add_info(sub) -> None:
    p = sub.add_parser("info", help="parameter and connection counts, memory and FLOPs of a configuration")
    config_args(p, "paper")
    p.add_argument("--batch-size", type=integer(1), help="batch size for the memory estimate (default: the config's)")
    p.add_argument("--gpu-memory", metavar="SIZE", help="say whether training fits a GPU of this memory, "
                                                       "e.g. 80GiB or 24GB (a bare number is GiB)")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> None:
    cfg = build_config(args, "paper")
    gpu = parse_bytes(args.gpu_memory, "--gpu-memory") if args.gpu_memory else None
    print(f"preset {cfg.preset}")
    print(describe(cfg.model, args.batch_size or cfg.train.batch_size, cfg.train.optimizer, gpu))


def parse_bytes(text: str, setting: str) -> int:
    """'80GiB', '80 GB', '24g', '512MiB', '80' -> bytes (GB = 10^9, GiB = 2^30; a bare G, or a bare
    number, means GiB: no accelerator has 80 bytes)."""
    units = {"": 2 ** 30, "b": 1, "k": 2 ** 10, "kb": 10 ** 3, "kib": 2 ** 10, "m": 2 ** 20, "mb": 10 ** 6,
             "mib": 2 ** 20, "g": 2 ** 30, "gb": 10 ** 9, "gib": 2 ** 30, "t": 2 ** 40, "tb": 10 ** 12, "tib": 2 ** 40}
    number = text.strip().lower().rstrip("abgikmt ")
    unit = text.strip().lower()[len(number):].strip()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or not 0 < value < float("inf"):
        raise ConfigError(f"{setting} {text!r}: expected a size such as 80GiB, 24GB or 512MiB")
    return int(value * units[unit])


def _human(n: float, unit: str = "") -> str:
    for suffix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g} {suffix}{unit}".strip()
        n /= 1000
    return f"{n:.3g} P{unit}"


def _bytes(n: int) -> str:
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1000:
            return f"{n:.3g} {suffix}"
        n /= 1024
    return f"{n:.3g} PiB"


def describe(cfg: ModelConfig, batch: int = 100, optimizer: str = "adagrad", gpu_memory: int | None = None) -> str:
    from catneuron.nn.accounting import count        # imports torch: not for --help
    c = count(cfg)
    fields = [(g.sublayers[0].field, g.sublayers[-1].field) for g in geometry(cfg)]
    lines = [f"input {cfg.input_size}x{cfg.input_size}x{cfg.channels}, {len(c.stages)} stages "
             f"({3 * len(c.stages)} layers), {'tied' if cfg.tied_weights else 'untied'} weights, "
             f"LCN {'on' if cfg.lcn else 'off'}",
             "",
             f"{'stage':<6}{'input':>14}{'filtering':>14}{'pooled':>12}{'W1 (connections)':>19}{'W2':>16}"
             f"{'field px':>11}"]
    for k, (s, f) in enumerate(zip(c.stages, fields)):
        ci, hi, _ = s.in_shape
        m, ho, _ = s.filter_shape
        _, hp, _ = s.pool_shape
        lines.append(f"{k + 1:<6}{f'{hi}x{hi}x{ci}':>14}{f'{ho}x{ho}x{m}':>14}{f'{hp}x{hp}x{m}':>12}"
                     f"{s.encoder_params:>19,}{s.decoder_params:>16,}{f[0]:>6}-{f[1]:<4}")
    mem = c.memory(batch, optimizer)
    lines += ["",
              f"encoder connections (W1):     {c.connections:,}",
              f"trainable parameters (W1+W2): {c.parameters:,}",
              f"memory of a training step at batch {batch} (float32): weights {_bytes(mem['weights'])}, gradients "
              f"{_bytes(mem['gradients'])}, {optimizer} state {_bytes(mem['optimizer_state'])}, activations kept "
              f"for backward {_bytes(mem['activations'])}, kernel workspace {_bytes(mem['workspace'])}; total "
              f"{_bytes(sum(mem.values()))}",
              f"FLOPs per image: features (encoder + pooling) {_human(c.forward_flops())}, "
              f"training step {_human(c.train_flops())}",
              f"FLOPs per training step at batch {batch}: {_human(c.train_flops() * batch)}"]
    if gpu_memory:
        total = sum(mem.values())
        usable = max(0, gpu_memory - RESERVED_GPU_BYTES)
        verdict = (f"fits, {_bytes(usable - total)} to spare" if total <= usable
                   else f"does not fit: {_bytes(total - usable)} short; lower the batch size or use model "
                        f"parallelism (--partitions)")
        lines.append(f"on a GPU of {_bytes(gpu_memory)} ({_bytes(usable)} usable): {verdict}")
    return "\n".join(lines)
