"""The ``catneuron`` command line.

Every command takes ``--preset``, ``--config FILE`` (JSON/TOML) and ``--set key=value`` overrides,
applied in that order. User errors print one line (``catneuron: error: ...``) and exit with 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from catneuron import config as C
from catneuron.errors import CatneuronError
from catneuron.runtime import keep_freed_memory


def _config_args(p: argparse.ArgumentParser, default_preset: str) -> None:
    p.add_argument("--preset", default=None, choices=sorted(C.PRESETS),
                   help=f"named configuration to start from (default: {default_preset}, or the one in --config)")
    p.add_argument("--config", help="JSON or TOML file of settings, applied over the preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, e.g. --set train.lr=0.02 --set model.stages.*.maps=16")


def build_config(args, default_preset: str, base: C.Config | None = None) -> C.Config:
    """Preset (or `base`), then --config, then flags and --set overrides."""
    if base is None and args.config and not args.preset:
        cfg = C.load_file(args.config)          # the file names its own preset
    else:
        cfg = base or C.preset(args.preset or default_preset)
        if args.config:
            cfg = C.load_file(args.config, cfg)
    overrides = list(args.overrides)
    for flag, key in (("steps", "train.steps"), ("batch_size", "train.batch_size"), ("device", "train.device"),
                      ("seed", "train.seed"), ("threads", "train.threads")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={value}")
    if getattr(args, "data", None):
        overrides.append("data.train=" + ",".join(args.data))
    return C.validate(C.apply_overrides(cfg, overrides))


def cmd_info(args) -> None:
    from catneuron.nn.accounting import describe
    cfg = build_config(args, "paper")
    print(f"preset {cfg.preset}")
    print(describe(cfg.model, args.batch_size or cfg.train.batch_size))


def cmd_train(args) -> None:
    from catneuron.train.trainer import Trainer
    out = args.out or os.path.join("runs", args.preset or "small")
    saved = os.path.join(out, "config.json")
    # A resumed run continues with its own settings; this command line's flags still apply on top.
    base = C.from_dict(json.loads(open(saved).read())) if args.resume and os.path.exists(saved) else None
    cfg = build_config(args, "small", base)
    result = Trainer(cfg, out, resume=args.resume, progress=not args.no_progress).run()
    state = "interrupted" if result.interrupted else "finished"
    print(f"{state} at step {result.step} ({result.images_seen:,} images); run directory {result.run_dir}")


def cmd_bench(args) -> None:
    from catneuron.bench import run_benchmark
    cfg = build_config(args, "small")
    run_benchmark(cfg, quick=args.quick, repeats=args.repeats, out=args.out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="catneuron", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="parameter and connection counts, memory and FLOPs of a configuration")
    _config_args(info, "paper")
    info.add_argument("--batch-size", type=int, help="batch size for the memory estimate (default: the config's)")
    info.set_defaults(func=cmd_info)

    train = sub.add_parser("train", help="train the deep sparse autoencoder on unlabeled images")
    _config_args(train, "small")
    train.add_argument("--data", nargs="+", help="shards, shard folders, image folders or named sets such as "
                                                  "natural-64/train (default: the config's data.train)")
    train.add_argument("--out", help="run directory (default: runs/<preset>)")
    train.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    train.add_argument("--steps", type=int, help="total optimizer steps (train.steps)")
    train.add_argument("--batch-size", type=int, help="images per step (train.batch_size)")
    train.add_argument("--device", help="cpu, cuda, cuda:N or auto (train.device)")
    train.add_argument("--seed", type=int, help="train.seed")
    train.add_argument("--threads", type=int, help="CPU threads (train.threads)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    bench = sub.add_parser("bench", help="locally connected layer benchmark: ours vs naive vs Conv2d vs sgemm")
    _config_args(bench, "small")
    bench.add_argument("--quick", action="store_true", help="fewer repeats, skip the slow naive layer on big cases")
    bench.add_argument("--repeats", type=int, default=5, help="timed repeats per measurement (median reported)")
    bench.add_argument("--out", help="also write the table as JSON here")
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s" if args.verbose else "catneuron: %(message)s")
    try:
        args.func(args)
    except CatneuronError as err:
        print(f"catneuron: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
