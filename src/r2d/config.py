"""Dataclass configs usable from YAML and from CLI flags (TRL style).

    parser = argparse.ArgumentParser()
    add_dataclass_args(parser, TrainConfig)         # --max-steps, --no-cpo, --lora-r ...
    cfg = build_config(TrainConfig, args.config, args)  # defaults < YAML file < flags given

Only flags the user actually passed override the file (argparse.SUPPRESS defaults). The effective
config is written next to outputs with ``save_config``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(inner type, is_list) for X, Optional[X], list[X]."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else (str, False)
    if origin in (list, tuple):
        inner = typing.get_args(tp)
        return (inner[0] if inner else str), True
    if origin is dict:
        return dict, False
    return tp, False


def _parse_bool(v: str) -> bool:
    if v.lower() in ("1", "true", "yes", "on"):
        return True
    if v.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean, got {v!r}")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or f.metadata.get("cli") is False:
            continue
        flag = "--" + f.name.replace("_", "-")
        tp, is_list = _base_type(hints[f.name])
        help_ = f.metadata.get("help", "")
        if tp is bool:
            parser.add_argument(flag, dest=f.name, nargs="?", const=True, type=_parse_bool,
                                default=argparse.SUPPRESS, help=help_)
            parser.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                                default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        elif tp is dict:
            parser.add_argument(flag, dest=f.name, type=json.loads, default=argparse.SUPPRESS, help=help_ + " (JSON)")
        else:
            parser.add_argument(flag, dest=f.name, type=tp if tp in (int, float, str) else str,
                                nargs="+" if is_list else None, default=argparse.SUPPRESS, help=help_)


def load_yaml(path: str | Path | None) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a config file must hold a mapping, got {type(data).__name__}")
    return data


def check_keys(cls: type, data: dict, where: Any, allow: tuple[str, ...] = ()) -> None:
    """The one unknown-key check for every config and spec: a key naming no field of ``cls`` is a
    one-line error naming ``where`` (the file or the config entry)."""
    names = {f.name for f in dataclasses.fields(cls)} | set(allow)
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown config key(s) {', '.join(map(str, unknown))} for {cls.__name__}")


def build_config(cls: type[C], path: str | Path | None = None, args: argparse.Namespace | dict | None = None,
                 **overrides: Any) -> C:
    """defaults < YAML ``path`` < ``args`` (only keys naming fields) < ``overrides``."""
    names = {f.name for f in dataclasses.fields(cls)}
    data = load_yaml(path)
    check_keys(cls, data, path)
    given = vars(args) if isinstance(args, argparse.Namespace) else (args or {})
    data.update({k: v for k, v in given.items() if k in names})
    data.update({k: v for k, v in overrides.items() if k in names})
    return cls(**data)


def config_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(config_dict(cfg), sort_keys=False))
