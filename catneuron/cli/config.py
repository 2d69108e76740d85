"""`catneuron config show`: every setting, its value, the preset's where it differs, and its meaning."""
from __future__ import annotations

import json
import textwrap

from catneuron.cli.common import build_config, saved_config, settings_args

KEY_WIDTH = 46


def add_config(sub) -> None:
    group = sub.add_parser("config", help="the settings: every key with its value and meaning").add_subparsers(
        dest="config_command", required=True, metavar="SUBCOMMAND")
    p = group.add_parser("show", help="every setting of a preset, a file or a run, with the overrides applied",
                         description="Every setting as KEY = VALUE (a --set takes the same form), the preset's "
                                     "value where it differs, and what the setting means.")
    settings_args(p, "small")
    p.add_argument("--run", help="start from a trained run's own settings (its config.json) instead of a preset")
    p.add_argument("--changed", action="store_true", help="only the settings that differ from the preset's")
    p.add_argument("--json", action="store_true", help="the settings as JSON (a file --config reads)")
    p.set_defaults(func=cmd_show)


def cmd_show(args) -> None:
    from catneuron.config.meanings import rows
    from catneuron.errors import CatneuronError
    if args.run and args.preset:
        raise CatneuronError(f"--run {args.run} and --preset {args.preset}: a run's settings start from its own")
    cfg = build_config(args, "small", saved_config(args.run) if args.run else None)
    if args.json:
        print(cfg.to_json())
        return
    for key, value, preset_value, meaning in rows(cfg):
        if args.changed and value == preset_value:
            continue
        left = f"{key} = {json.dumps(value)}"
        if value != preset_value:
            left += f"  (preset {cfg.preset}: {json.dumps(preset_value)})"
        print(textwrap.fill(meaning, 120, initial_indent=f"{left:<{KEY_WIDTH}} ",
                            subsequent_indent=" " * (KEY_WIDTH + 1)) if meaning else left)
