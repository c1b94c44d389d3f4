"""``r2d quickstart``: the main job (orchestration only)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
