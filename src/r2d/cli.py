"""The ``r2d`` command: data, train, merge, generate, chat, eval, rpo, report, quickstart, serve.

Each stage package owns its subcommands in a ``cli`` module with ``register(subparsers)``; those
modules import nothing heavy at import time, so ``r2d --help`` is instant. Errors a user can fix
(bad files, unknown names, unreachable endpoints) print one line and exit non-zero; set
``R2D_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from r2d import __version__

STAGE_CLIS = ("r2d.data.cli", "r2d.training.cli", "r2d.infer.cli", "r2d.eval.cli", "r2d.eval.rpo_cli",
              "r2d.eval.select_policy", "r2d.report.cli", "r2d.quickstart", "r2d.serve.cli")


class R2DError(Exception):
    """An error with a message meant for the user (one line, names the file/row/field)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="r2d", description="Reasoning-to-Defend: safety-aware reasoning "
                                     "with pivot tokens (SwaRD data, SwaRD+CPO training, inference, evaluation).")
    parser.add_argument("--version", action="version", version=f"r2d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in STAGE_CLIS:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2 if args.command is None else 0
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        print("r2d: interrupted (rerun the same command to resume)", file=sys.stderr)
        return 130
    except (R2DError, ValueError, KeyError, OSError) as e:  # OSError: FileNotFound/Exists, Connection, Timeout
        if os.environ.get("R2D_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"r2d {args.command}: error: {msg}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
