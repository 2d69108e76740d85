"""The ``catneuron`` command line: one module per command group, each command's arguments beside
its handler (train.py: info, train, bench, demo; data.py; probe.py: probe, visualize, report;
classify.py). Handlers import what they need when they run, so ``--help`` and ``info`` start fast.

Every command takes ``--preset``, ``--config FILE`` (JSON/TOML) and ``--set key=value`` overrides,
applied in that order. User errors, and files that cannot be read or written, print one line
(``catneuron: error: ...``) and exit with 2; an interrupted command exits with 128 + the signal
(130 for Ctrl-C, 143 for SIGTERM), as shells expect, so ``&&`` chains stop.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys

from catneuron.cli import classify, config, data, info, probe, train
from catneuron.cli.common import ConfigPrinted, Parser
from catneuron.errors import CatneuronError

DESCRIPTION = """Train the deep sparse autoencoder of Le et al., ICML 2012 ("the cat neuron") on
unlabeled images, find the single neurons that became face, cat or body detectors, see them, and
reuse the features."""

EXAMPLES = """examples:
  catneuron demo                                          the whole pipeline on the default data (~30 min)
  catneuron train --preset small --data my-images/ --out runs/mine
  catneuron train --resume --out runs/mine                continue after Ctrl-C
  catneuron probe runs/mine --compare control=runs/ctrl   which units detect faces, against the baselines
  catneuron visualize runs/mine && catneuron report runs/mine
  catneuron explore runs/mine                             browse every unit in the browser
  catneuron config show --preset small                    every setting, its value and meaning

A command's own help: catneuron COMMAND --help. Python: docs/python.md."""


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="catneuron", description=DESCRIPTION, epilog=EXAMPLES,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (train.add_demo, train.add_train, probe.add_probe, probe.add_visualize, probe.add_report,
                probe.add_explore, classify.add_classify, data.add_data, config.add_config, info.add_info,
                train.add_bench):
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from catneuron.runtime import keep_freed_memory, yield_idle_cores
    yield_idle_cores()   # before any handler imports torch
    try:
        args = parser().parse_args(argv)
        keep_freed_memory()
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s" if args.verbose else "catneuron: %(message)s")
        return args.func(args) or 0
    except ConfigPrinted:
        return 0
    except CatneuronError as err:
        return _error(str(err))
    except OSError as err:       # unwritable --out, a full disk, a file gone: the file and the reason
        where = f"{err.filename}: " if err.filename else ""
        return _error(f"{where}{err.strerror or err}")
    except KeyboardInterrupt:    # a second Ctrl-C, or one before training installed its handler
        print("catneuron: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


def _error(message: str) -> int:
    print(f"catneuron: error: {message}", file=sys.stderr)
    return 2
