"""What every command shares: the configuration flags, the run's own settings, the device."""
from __future__ import annotations

import argparse
import difflib
import logging
import math
import re

from catneuron import config as C
from catneuron.errors import CatneuronError
from catneuron.rundir import NOT_THE_NETWORK, RunDir

DEVICE_HELP = "cpu, cuda, cuda:N or auto (default: the run's train.device where this machine has it, else auto)"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block), that names the command's --help and, for a
    mistyped choice (--preset tinny), the choice meant."""

    def error(self, message: str):
        wrong = re.search(r"invalid choice: '?([^' ]*)'? \(choose from (.*)\)", message)
        if wrong:
            options = [o.strip().strip("'") for o in wrong.group(2).split(",")]
            close = difflib.get_close_matches(wrong.group(1), options, n=1)
            if close:
                message += f"; did you mean {close[0]}?"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def config_args(p: argparse.ArgumentParser, default_preset: str | None) -> None:
    """The settings flags; `default_preset` None for commands on a trained run, whose settings start
    from the run's own (so they take no --preset)."""
    settings_args(p, default_preset)
    p.add_argument("--print-config", action="store_true",
                   help="print the settings this command would run with (JSON, usable as --config) and exit")
    progress_arg(p)


def settings_args(p: argparse.ArgumentParser, default_preset: str | None) -> None:
    if default_preset is not None:
        p.add_argument("--preset", default=None, choices=sorted(C.PRESETS),
                       help=f"named configuration to start from (default: {default_preset}, or the one in --config)")
    p.add_argument("--config", metavar="FILE", help="JSON or TOML file of settings, applied over the "
                                                    + ("preset" if default_preset else "run's own"))
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.lr=0.02 --set model.stages.*.maps=16 "
                        "(every key: catneuron config show)")


def progress_arg(p: argparse.ArgumentParser) -> None:
    """For commands with no settings of their own (they read a run's or a classifier's)."""
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: a log line every 30 s instead (the default when stderr is not a terminal)")


class ConfigPrinted(Exception):
    """--print-config: the settings are printed, and the command stops there (exit status 0)."""


def _print_if_asked(args, cfg: C.Config) -> C.Config:
    if getattr(args, "print_config", False):
        print(cfg.to_json())
        raise ConfigPrinted
    return cfg


def build_config(args, default_preset: str, base: C.Config | None = None) -> C.Config:
    """Preset (or `base`), then --config, then flags and --set overrides; with --print-config,
    printed instead of run."""
    return _print_if_asked(args, _merge(args, default_preset, base))


def _merge(args, default_preset: str, base: C.Config | None) -> C.Config:
    if base is None and args.config and not args.preset:
        cfg = C.load_file(args.config)          # the file names its own preset
    else:
        cfg = base or C.preset(args.preset or default_preset)
        if args.config:
            cfg = C.load_file(args.config, cfg)
    overrides = list(args.overrides)
    for flag, key in (("steps", "train.steps"), ("batch_size", "train.batch_size"), ("device", "train.device"),
                      ("seed", "train.seed"), ("threads", "train.threads"), ("replicas", "distributed.replicas"),
                      ("ps_shards", "distributed.shards"), ("fetch_every", "distributed.fetch_every"),
                      ("push_every", "distributed.push_every"), ("partitions", "distributed.partitions"),
                      ("threads_per_replica", "distributed.threads"), ("warm_start", "distributed.warm_start"),
                      ("address", "distributed.address")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "data", None):
        overrides.append("data.train=" + ",".join(args.data))
    return C.validate(C.apply_overrides(cfg, overrides))


def run_config(args) -> C.Config:
    """The run's own settings (as trained), then this command line's --config and --set; its
    network is the one its weights were trained as, so neither a preset nor model.* may change it."""
    if getattr(args, "preset", None):      # only classify train has --preset (for --init pixels without a run)
        raise CatneuronError(f"--preset {args.preset}: {args.run} keeps the settings it was trained with; "
                             f"change probe or classify settings with --set or --config")
    saved = saved_config(args.run)
    cfg = _merge(args, "small", saved)
    was, now = saved.to_dict()["model"], cfg.to_dict()["model"]
    for key in (k for k in was if k not in NOT_THE_NETWORK and was[k] != now[k]):
        raise CatneuronError(f"model.{key} is {now[key]!r} but {args.run} was trained with {was[key]!r}; a trained "
                             f"network's settings cannot change (train a new run to change them)")
    return _print_if_asked(args, cfg)


def saved_config(run) -> C.Config:
    """The settings a run was trained with (its config.json)."""
    path = RunDir(run).config
    if not path.exists():
        raise CatneuronError(f"{run}: not a run directory (no config.json)")
    return C.load_file(path)


def device(args, cfg: C.Config | None) -> str:
    """--device; else the run's own train.device where this machine has it; else auto."""
    from catneuron.train.trainer import resolve_device
    if getattr(args, "device", None) or cfg is None:
        return str(resolve_device(getattr(args, "device", None) or "auto"))
    import torch
    if cfg.train.device.startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger("catneuron").info("the run was set up for %s, which this machine lacks: using the CPU",
                                            cfg.train.device)
        return "cpu"
    return str(resolve_device(cfg.train.device))


def pairs(items: list[str], flag: str) -> dict[str, str]:
    """NAME=PATH items of a repeated flag."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise CatneuronError(f"{flag} {item}: expected NAME=RUN_DIRECTORY, e.g. control=runs/control")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise CatneuronError(f"{flag} {item}: the name {name!r} may hold letters, digits, '_', '-' and '.' "
                                 f"only (it names files)")
        out[name] = path
    return out


def integer(lo: int, hi: int | None = None):
    """An argparse type: an integer in [lo, hi], else argparse's one-line error naming the flag."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"from {lo} to {hi}"
            raise argparse.ArgumentTypeError(f"expected an integer {bound}, got {value}")
        return value
    return parse


def nonnegative(text: str) -> float:
    """An argparse type: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value
