"""``r2d generate`` (prompts JSONL -> outputs JSONL, resumable) and ``r2d chat`` (interactive).
Nothing heavy is imported here: each command imports torch/transformers when it runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="alias, local path or Hub id (default smollm2-135m); "
                   "for --backend openai the served model name")
    p.add_argument("--backend", default="hf", help="hf | openai | vllm | mock (default hf)")
    p.add_argument("--policy", default="raw", help="raw | hide-reasoning | drop-unsafe-steps | refuse-on-unsafe | "
                   "pivot-threshold | r2d-p (R2D instructions as system prompt) | r2d-n (reasoning ended after "
                   "--think-words words) (default raw)")
    p.add_argument("--think-words", type=int, default=30, help="r2d-n: words of reasoning before </think> (default 30)")
    p.add_argument("--tau", type=float, default=0.5, help="pivot-threshold: force [UNSAFE] when P([UNSAFE]) >= tau")
    p.add_argument("--refusal", default=None, help="refusal text for refuse-on-unsafe / pivot-threshold")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--system", default=None, help="system prompt added to every chat")
    p.add_argument("--no-guard", action="store_true", help="do NOT neutralise pivot/think tokens in user turns")
    g = p.add_argument_group("hf / vllm")
    g.add_argument("--dtype", default="auto", help="auto (bf16 on a GPU, fp32 on CPU), float32, bfloat16, ...")
    g.add_argument("--device", default="auto", help="auto (cuda when visible, else cpu), cpu, cuda:1, ...")
    g.add_argument("--tensor-parallel-size", type=int, default=1)
    g = p.add_argument_group("openai-compatible endpoint")
    g.add_argument("--base-url", default=None)
    g.add_argument("--api-key", default=None, help="default: $R2D_API_KEY or $OPENAI_API_KEY")
    g.add_argument("--concurrency", type=int, default=8)
    g.add_argument("--timeout", type=float, default=120.0)
    g.add_argument("--max-retries", type=int, default=4)
    g.add_argument("--local-template", action="store_true", help="render the chat template in r2d, use /v1/completions")


def register(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="generate completions for a prompts JSONL (resumable)")
    _common(g)
    g.add_argument("--input", required=True, help="JSONL rows with id and prompt or messages")
    g.add_argument("--output", required=True, help="JSONL to append to (rows of the same run already there are "
                   "skipped, failed ones retried; rows of another model/policy/settings: an error)")
    g.add_argument("--overwrite", action="store_true", help="start the output afresh")
    g.set_defaults(func=cmd_generate)
    c = sub.add_parser("chat", help="interactive chat (reasoning dimmed or hidden)")
    _common(c)
    c.add_argument("--reasoning", choices=("dim", "plain", "hide"), default="dim")
    c.set_defaults(func=cmd_chat)


def backend_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    guard = not args.no_guard
    if args.backend == "openai":
        return dict(base_url=args.base_url, api_key=args.api_key, concurrency=args.concurrency, timeout=args.timeout,
                    max_retries=args.max_retries, local_template=args.local_template, guard=guard)
    if args.backend == "vllm":
        return dict(tensor_parallel_size=args.tensor_parallel_size, dtype=args.dtype,
                    guard=guard)
    if args.backend == "hf":
        return dict(dtype=args.dtype, device=args.device, guard=guard)
    return dict(guard=guard)


def _setup(args: argparse.Namespace):
    from r2d.backends.base import GenParams, get_backend
    from r2d.infer.policies import get_policy

    policy_kw: dict[str, Any] = {}
    if args.policy == "pivot-threshold":
        policy_kw["tau"] = args.tau
    if args.policy == "r2d-n":
        policy_kw["words"] = args.think_words
    if args.refusal is not None:
        policy_kw["refusal"] = args.refusal
    policy = get_policy(args.policy, **policy_kw)
    if policy.logits_processors() and args.backend != "hf":
        raise ValueError(f"policy {args.policy!r} needs --backend hf (logits access)")
    for k in ("batch_size", "max_new_tokens", "concurrency"):
        if getattr(args, k) < 1:
            raise ValueError(f"--{k.replace('_', '-')} must be a positive integer, got {getattr(args, k)}")
    params = GenParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                       stop=list(args.stop), seed=args.seed, batch_size=args.batch_size)
    backend = get_backend(args.backend, model=args.model, **backend_kwargs(args))
    return backend, params, policy


def cmd_generate(args: argparse.Namespace) -> int:
    import sys

    from r2d.infer.generate import read_prompts, run_generate
    from r2d.models import ALIASES
    from r2d.provenance import base_provenance, model_fingerprint, sha256_file
    from r2d.store import fingerprint

    rows = read_prompts(args.input, system=args.system, trust_assistant=args.no_guard)  # before loading a model
    backend, params, policy = _setup(args)
    model_label = getattr(backend, "model_name", None) or getattr(backend, "model", None) or args.model
    identity = {"alias": args.model} if args.model in ALIASES else model_fingerprint(args.model)
    run_fp = fingerprint({"model": args.model, "weights": identity, "backend": args.backend,
                          "backend_kwargs": {k: v for k, v in backend_kwargs(args).items() if k != "api_key"},
                          "policy": policy.describe(), "system": args.system,
                          "generation": {k: v for k, v in params.provenance().items() if k not in ("batch_size", "extra")}})
    run_info = {"model": str(model_label), "backend": args.backend, "policy": policy.name, "run_fingerprint": run_fp}
    prov = {**base_provenance(), **run_info, "weights": identity, "policy_params": policy.describe(), "gen": params.provenance(),
            "guard": not args.no_guard, "input": str(args.input), "input_sha256": sha256_file(args.input)}
    out = Path(args.output)
    if args.overwrite:
        out.unlink(missing_ok=True)
    chunk = max(args.batch_size, args.concurrency) if args.backend == "openai" else args.batch_size
    stats = run_generate(backend, rows, out, params, policy, run_info, chunk_size=chunk)
    prov["stats"] = stats
    Path(str(out) + ".provenance.json").write_text(json.dumps(prov, indent=2))
    print(f"r2d generate: {stats['written']} written, {stats['skipped']} already done, {stats['errors']} errors "
          f"-> {out}", file=sys.stderr)
    return 1 if stats["errors"] and stats["errors"] == stats["written"] else 0


def cmd_chat(args: argparse.Namespace) -> int:
    from r2d.infer.chat import chat_loop

    backend, params, policy = _setup(args)
    chat_loop(backend, params, policy, reasoning=args.reasoning, system=args.system)
    return 0
