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


def _merge(args: argparse.Namespace) -> int:
    """An ``r2d train`` adapter directory -> one full model + tokenizer (what vLLM and any
    transformers loader read; vLLM's LoRA path cannot carry the adapter's new token rows)."""
    import json
    from pathlib import Path

    from r2d.models import load_model
    from r2d.models import is_adapter_dir

    if not is_adapter_dir(args.adapter):
        print(f"r2d merge: {args.adapter}: not an r2d adapter directory (no r2d_adapter.json)")
        return 2
    out = Path(args.output)
    if out.exists() and any(out.iterdir()):
        print(f"r2d merge: {out}: exists and is not empty")
        return 2
    model, tok = load_model(args.adapter, dtype=args.dtype, device=None, expand=False)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    meta = json.loads((Path(args.adapter) / "r2d_adapter.json").read_text())
    (out / "r2d_merged.json").write_text(json.dumps({"merged_from": str(Path(args.adapter).resolve()),
                                                     "base_model": meta.get("base_model"),
                                                     "dtype": args.dtype}, indent=2) + "\n")
    print(f"r2d merge: wrote {out} (a full model: vllm serve {out})")
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

    m = sub.add_parser("merge", help="merge an r2d adapter directory into a full model (for vLLM)",
                       description="Base + new token rows + LoRA, merged and saved as one model directory with "
                       "its tokenizer and chat template; `vllm serve DIR` and any transformers loader read it.")
    m.add_argument("adapter", help="an `r2d train` output directory saved as an adapter")
    m.add_argument("output", help="new directory for the merged model")
    m.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                   help="weights dtype of the merged save (default bfloat16, as served)")
    m.set_defaults(func=_merge)
