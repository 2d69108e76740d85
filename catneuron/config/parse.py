"""Configs from nested dicts, JSON/TOML files and "dotted.key=value" overrides, with the types of
the dataclasses enforced (one ConfigError naming the setting otherwise)."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

from catneuron.config.presets import preset
from catneuron.config.schema import Config
from catneuron.errors import ConfigError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib


def _coerce(value: Any, tp: Any, key: str, current: Any = None) -> Any:
    """`value` as type `tp`; a table given for a dataclass changes only the fields it names of
    `current` (so a config file's stage list keeps the preset's other stage settings)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _coerce(value, args[0], key, current)
    if origin is list:
        (item,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        if not isinstance(value, list):
            raise ConfigError(f"setting {key}: expected a list, got {value!r}")
        old = current if isinstance(current, list) else []
        return [_coerce(v, item, f"{key}.{i}", old[i] if i < len(old) else None) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"setting {key}: expected a table of {tp.__name__} fields, got {value!r}")
        return _from_dict(tp, value, key, current if isinstance(current, tp) else None)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"setting {key}: expected true or false, got {value!r}")
    if tp in (int, float):
        expected = "an integer" if tp is int else "a number"
        try:
            number = math.nan if isinstance(value, bool) else float(value)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        # JSON reads 1e400 as inf; no setting means anything at inf or nan
        if not math.isfinite(number) or (tp is int and not number.is_integer()):
            raise ConfigError(f"setting {key}: expected {expected}, got {value!r}")
        return int(number) if tp is int else number
    if tp is str or origin is typing.Literal:      # a Literal's values are validate's to check
        if not isinstance(value, str):
            raise ConfigError(f"setting {key}: expected a string, got {value!r}")
        return value
    return value


def _from_dict(cls, data: dict, prefix: str = "", base=None):
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(f"unknown setting{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}{where}; "
                          f"expected {', '.join(sorted(known))}")
    obj = copy.deepcopy(base) if base is not None else cls()
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            setattr(obj, name, _from_dict(type(current), value, key, current))
        else:
            setattr(obj, name, _coerce(value, hints[name], key, current))
    return obj


def from_dict(data: dict, base: Config | None = None) -> Config:
    """A Config from nested dicts; missing keys come from `base` (or the preset named in data)."""
    if base is None:
        name = data.get("preset", "paper")
        if not isinstance(name, str):
            raise ConfigError(f"setting preset: expected a preset's name, got {name!r}")
        base = preset(name)
    return _from_dict(Config, data, base=base)


def load_file(path: str | Path, base: Config | None = None) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"config file {path}: cannot read ({err.strerror})")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text (expected JSON or TOML)") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'} ({err})")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of settings at the top level")
    return from_dict(data, base)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply "dotted.key=value" overrides; list items by index, or all of them with "*"."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.lr=0.01")
        key, text = item.split("=", 1)
        _set_path(cfg, key.strip().split("."), _parse_value(text.strip()), key.strip())
    return cfg


def _set_path(obj: Any, parts: list[str], value: Any, key: str) -> None:
    head, rest = parts[0], parts[1:]
    if not dataclasses.is_dataclass(obj) or head not in {f.name for f in dataclasses.fields(obj)}:
        raise ConfigError(f"override {key}: unknown setting {head!r}")
    tp, current = typing.get_type_hints(type(obj))[head], getattr(obj, head)
    if not rest:
        setattr(obj, head, _coerce(value, tp, key, current))
    elif isinstance(current, list):
        (item,) = typing.get_args(tp)
        index, rest = rest[0], rest[1:]
        if index == "*":
            targets = range(len(current))
        elif index.isdigit() and int(index) < len(current):
            targets = [int(index)]
        else:
            raise ConfigError(f"override {key}: {index!r} is not an index below {len(current)} or *")
        for i in targets:
            if rest:
                _set_path(current[i], rest, value, key)
            else:
                current[i] = _coerce(value, item, key, current[i])
    else:
        _set_path(current, rest, value, key)
