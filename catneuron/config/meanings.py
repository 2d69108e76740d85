"""What each setting means, read from the comments beside its field in the schema, so that
`catneuron config show` and the code cannot disagree: a field's trailing comment, else the comment
lines right above it."""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import tokenize

from catneuron.config.schema import Config
from catneuron.nn.config import StageConfig


def _field_comments(cls) -> dict[str, str]:
    source = inspect.getsource(cls)
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    out = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign):
            line, above = node.lineno, []
            k = line - 1
            while k in comments and not source.splitlines()[k - 1].split("#")[0].strip():
                above.insert(0, comments[k])
                k -= 1
            out[node.target.id] = comments.get(line) or " ".join(above)
    return out


@functools.lru_cache(maxsize=None)
def meanings() -> dict[str, str]:
    """'section.key' (stages: 'model.stages.*.key') -> its meaning; '' where the schema says nothing."""
    out = {}
    for section in dataclasses.fields(Config):
        cls = section.default_factory().__class__ if section.default_factory is not dataclasses.MISSING else None
        if cls is None:
            continue
        for key, text in _field_comments(cls).items():
            out[f"{section.name}.{key}"] = text
    for key, text in _field_comments(StageConfig).items():
        out[f"model.stages.*.{key}"] = text
    out.pop("model.stages", None)
    out["preset"] = "the named configuration these settings started from"
    return out


def rows(cfg: Config) -> list[tuple[str, object, object, str]]:
    """(key, value, the preset's value, meaning) for every setting of `cfg`, stages one by one."""
    from catneuron.config.presets import preset
    base = preset(cfg.preset).to_dict()
    ours = cfg.to_dict()
    text = meanings()
    out = [("preset", cfg.preset, cfg.preset, text["preset"])]
    for section in ("model", "data", "train", "probe", "classify", "distributed"):
        for key, value in ours[section].items():
            if key == "stages":
                for k, stage in enumerate(value):
                    below = base["model"]["stages"][k] if k < len(base["model"]["stages"]) else {}
                    out += [(f"model.stages.{k}.{name}", v, below.get(name), text[f"model.stages.*.{name}"])
                            for name, v in stage.items()]
            else:
                out.append((f"{section}.{key}", value, base[section].get(key), text[f"{section}.{key}"]))
    return out

