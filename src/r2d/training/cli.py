"""``r2d train``: SwaRD SFT + CPO. Every ``TrainConfig`` field is a flag; flags override the YAML
file given with ``--config``. Imports torch/transformers only when the command runs."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from r2d.config import build_config
    from r2d.training.config import TrainConfig
    from r2d.training.trainer import train

    cfg = build_config(TrainConfig, getattr(args, "config", None), args)
    train(cfg)
    print(f"r2d train: saved to {cfg.output} (load with r2d.models.load_model({cfg.output!r}))")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from r2d.config import add_dataclass_args
    from r2d.training.config import TrainConfig

    p = sub.add_parser("train", help="train a model with SwaRD (+ CPO) on chat data",
                       description="SwaRD SFT + CPO (Reasoning-to-Defend). Defaults < --config YAML < flags. "
                       "Reruns resume from the newest checkpoint in --output.")
    p.add_argument("--config", help="YAML file with TrainConfig fields")
    add_dataclass_args(p, TrainConfig)
    p.set_defaults(func=_run)
