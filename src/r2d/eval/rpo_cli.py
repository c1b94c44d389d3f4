"""``r2d rpo optimize``: optimise an RPO defensive suffix on a model and save it as JSON (see
``r2d.eval.defenses.rpo``). Nothing heavy is imported until the command runs."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rpo", help="RPO defensive suffix (robust prompt optimisation)")
    s = p.add_subparsers(dest="rpo_command", metavar="SUBCOMMAND", required=True)
    o = s.add_parser("optimize", help="optimise a suffix against training jailbreaks on a model, save JSON")
    o.add_argument("--model", default=None, help="alias, local path or Hub id (default smollm2-135m)")
    o.add_argument("--output", required=True, help="JSON file to write (read by --defense rpo suffix_file=...)")
    o.add_argument("--prompts", type=int, default=8, help="training jailbreaks (AdvBench goals x TRAIN templates)")
    o.add_argument("--max-template-words", type=int, default=120)
    o.add_argument("--steps", type=int, default=10)
    o.add_argument("--search-width", type=int, default=32)
    o.add_argument("--topk", type=int, default=32)
    o.add_argument("--suffix-len", type=int, default=12)
    o.add_argument("--target", default=None, help="refusal target (default: a plain refusal)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default="auto")
    o.add_argument("--dtype", default="auto")
    o.set_defaults(func=cmd_optimize)


def checkpoint_path(output: str) -> "Path":
    from pathlib import Path

    return Path(str(output) + ".partial")


def cmd_optimize(args: argparse.Namespace) -> int:
    import json

    from r2d.eval.defenses.rpo import REFUSAL_TARGET, optimize_rpo, save_suffix, training_prompts
    from r2d.models import load_model

    prompts = training_prompts(args.prompts, args.seed, args.max_template_words)
    target = args.target or REFUSAL_TARGET
    # everything that changes the search besides --steps: a checkpoint is resumed only under the same settings
    settings = {"model": args.model or "smollm2-135m", "prompts": [p["prompt"] for p in prompts], "target": target,
                "suffix_len": args.suffix_len, "search_width": args.search_width, "topk": args.topk,
                "seed": args.seed}
    ckpt = checkpoint_path(args.output)
    state = None
    if ckpt.is_file():
        try:
            saved = json.loads(ckpt.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            print(f"r2d rpo: {ckpt}: not valid JSON ({e.msg}); delete it to start over", file=sys.stderr)
            return 2
        if saved.get("settings") != settings:
            diff = sorted(k for k in settings if (saved.get("settings") or {}).get(k) != settings[k])
            print(f"r2d rpo: {ckpt} was made with other settings ({', '.join(diff)}); use the same settings to "
                  "resume it, or delete it to start over", file=sys.stderr)
            return 2
        state = saved["state"]
        print(f"r2d rpo: resuming {ckpt} after step {len(state['losses']) - 1}", file=sys.stderr)
    model, tok = load_model(args.model, dtype=args.dtype, device=args.device)
    for p in model.parameters():
        p.requires_grad_(False)

    def progress(step: int, loss: float, best: float) -> None:
        print(f"r2d rpo: step {step}/{args.steps} loss {loss:.4f} (best {best:.4f})", file=sys.stderr, flush=True)

    def keep(st: dict) -> None:  # written after every step: a killed search resumes where it stopped
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        tmp = ckpt.with_name(ckpt.name + ".tmp")
        tmp.write_text(json.dumps({"settings": settings, "state": st}))
        tmp.replace(ckpt)

    r = optimize_rpo(model, tok, settings["prompts"], target, args.suffix_len, args.steps, args.search_width,
                     args.topk, args.seed, on_step=progress, state=state, on_state=keep)
    out = save_suffix(args.output, r, settings["model"], prompts)
    ckpt.unlink(missing_ok=True)
    print(f"r2d rpo: loss {r['loss_before']:.3f} -> {r['loss']:.3f} in {args.steps} steps, {r['seconds']} s; "
          f"suffix {r['suffix']!r} -> {out}", file=sys.stderr)
    return 0
