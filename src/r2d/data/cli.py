"""``r2d data``: validate, convert (and build/stats from the synthesis pipeline)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _validate(args: argparse.Namespace) -> int:
    from r2d.data.io import iter_jsonl
    from r2d.data.schema import validate_rows

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    n = 0
    errors = []
    for line, row in iter_jsonl(path):
        n += 1
        errors += validate_rows([(line, row)], str(path))
    for e in errors:
        print(e)
    bad = len({e.line for e in errors})
    print(f"{path}: {n} rows, {n - bad} valid, {bad} invalid", file=sys.stderr)
    return 1 if errors or n == 0 else 0


def _convert(args: argparse.Namespace) -> int:
    from r2d.data.io import load_sward, write_jsonl

    rows = load_sward(args.input, split=args.split, validate=False)
    if args.strip_pivots:
        from r2d.pivots import strip_pivots

        for r in rows:
            r["messages"][-1]["content"] = strip_pivots(r["messages"][-1]["content"])
    write_jsonl(args.output, rows)
    print(f"wrote {len(rows)} rows to {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="SwaRD data: build, validate, stats, convert")
    dsub = p.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    v = dsub.add_parser("validate", help="check a SwaRD JSONL file; one line per bad row, exit 1 if any")
    v.add_argument("file")
    v.set_defaults(func=_validate)
    c = dsub.add_parser("convert", help="import instruction/input/output (chuhac/R2D-R1) or prompt/response rows")
    c.add_argument("input", help="a .jsonl/.json/.parquet file or a Hub dataset id")
    c.add_argument("output", help="SwaRD chat JSONL to write")
    c.add_argument("--split", default="train")
    c.add_argument("--strip-pivots", action="store_true", help="remove pivot tokens (the w/o-pivot ablation)")
    c.set_defaults(func=_convert)
    from importlib.util import find_spec

    if find_spec("r2d.data.build_cli"):  # the synthesis pipeline adds `build` and `stats`
        from r2d.data import build_cli

        build_cli.register(dsub)
