"""``r2d data build`` and ``r2d data stats`` (registered by ``r2d.data.cli``). No heavy imports here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from r2d.config import build_config, save_config
    from r2d.data.build import BuildConfig, build

    cfg = build_config(BuildConfig, args.config, args)
    if not cfg.output:
        raise ValueError("data build: --output DIR is required (or `output:` in the config)")
    res = build(cfg)
    save_config(cfg, Path(cfg.output) / "config.yaml")
    print(f"{cfg.output}: {res.accepted} train rows, {res.rejected} rejected {res.stages}; "
          f"teacher calls this run: {res.teacher_calls}, cache hits: {res.cache_hits}, {res.seconds}s",
          file=sys.stderr)
    return 0 if res.accepted else 1


def _stats(args: argparse.Namespace) -> int:
    from r2d.data.card import render_card
    from r2d.data.io import load_sward

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    rows = load_sward(str(path), validate=False)
    rej = path.parent / "rejected.jsonl"
    prov = path.parent / "provenance.json"
    import json

    from r2d.data.io import read_jsonl

    print(render_card(rows, read_jsonl(rej) if rej.is_file() and rej != path else None,
                      json.loads(prov.read_text()) if prov.is_file() else None, title=f"SwaRD dataset: {path}"))
    return 0


def _tagger_agreement(args: argparse.Namespace) -> int:
    import json

    from r2d.data.tagger_eval import render, tagger_agreement
    from r2d.paths import data_dir

    star = Path(args.star1) if args.star1 else data_dir() / "star1" / "STAR-1.json"
    res = tagger_agreement(star, args.labels)
    print(render(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


def register(dsub: argparse._SubParsersAction) -> None:
    from r2d.config import add_dataclass_args
    from r2d.data.build import BuildConfig

    b = dsub.add_parser("build", help="synthesise a SwaRD dataset: seeds -> teacher -> pivots -> filters")
    b.add_argument("--config", help="YAML file with BuildConfig fields (flags override it)")
    add_dataclass_args(b, BuildConfig)
    b.set_defaults(func=_build)
    s = dsub.add_parser("stats", help="print the dataset card of any SwaRD JSONL file")
    s.add_argument("file")
    s.set_defaults(func=_stats)
    t = dsub.add_parser("tagger-agreement", help="agreement of the offline pivot tagger with the STAR-1 hand labels")
    t.add_argument("--star1", help="STAR-1.json (default: DATA_DIR/star1/STAR-1.json)")
    t.add_argument("--labels", help="hand label JSONL (default: the packaged star1_hand_labels.jsonl)")
    t.add_argument("--json", help="also write the full result (confusion matrices) to this file")
    t.set_defaults(func=_tagger_agreement)
