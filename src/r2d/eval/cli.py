"""``r2d eval``: run an evaluation grid from a YAML config, or a single cell from flags.

    r2d eval --config configs/eval/baseline_smollm2.yaml --output runs/baseline
    r2d eval --model smollm2-135m --backend hf --benchmark jbb --attack direct --judge refusal --limit 5 --output DIR

Writes DIR/samples.jsonl, DIR/judgments.jsonl and DIR/results.json; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate models x defenses x benchmarks/attacks x judges (resumable)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML grid config (configs/eval/*.yaml); flags below override it")
    p.add_argument("--output", help="output directory (default: the config's output, else runs/eval)")
    p.add_argument("--model", help="single cell: model alias/path/Hub id (or mock rules JSON)")
    p.add_argument("--label", help="single cell: model label in the results (default: --model)")
    p.add_argument("--backend", default=None, help="single cell: backend (hf, openai, vllm, mock); default hf")
    p.add_argument("--backend-kwargs", type=json.loads, default=None, help="single cell: backend kwargs (JSON)")
    p.add_argument("--policy", default=None, help="R2D inference policy (raw, hide-reasoning, drop-unsafe-steps, "
                   "refuse-on-unsafe, pivot-threshold, r2d-p, r2d-n; r2d-n's budget: models[].policy_params {words: N} in a config)")
    p.add_argument("--think-words", type=int, default=None,
                   help="r2d-n: words of reasoning before </think> (default 30)")
    p.add_argument("--defense", default=None, help="defense name (none, self-reminder, icd, smoothllm, ...)")
    p.add_argument("--defense-params", type=json.loads, default=None, help="defense params (JSON)")
    p.add_argument("--benchmark", default=None, help="single cell: benchmark (jbb, harmbench, xstest, ...)")
    p.add_argument("--subset", default=None, help="benchmark subset (e.g. harmful / benign)")
    p.add_argument("--prompts", help="single cell: JSONL behaviours with 'goal' (and optional 'target')")
    p.add_argument("--attack", nargs="+", default=None, help="attack name(s) (direct, template, artifact, ...)")
    p.add_argument("--attack-params", type=json.loads, default=None, help="params for the attack(s) (JSON)")
    p.add_argument("--templates", help="JSON list of jailbreak templates holding {goal} (template attack)")
    p.add_argument("--judge", nargs="+", default=None, help="judge name(s) (refusal, llm-jbb, xstest-strmatch, ...)")
    p.add_argument("--judge-params", type=json.loads, default=None, help="params for the judge(s) (JSON)")
    p.add_argument("--limit", type=int, default=None, help="first N behaviours of each benchmark")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--data-dir", default=None, help="benchmark data directory (else $R2D_DATA_DIR)")
    p.add_argument("--train-data", nargs="+", default=None, help="training files for the overlap check")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    register_judge(sub)


def register_judge(sub: argparse._SubParsersAction) -> None:
    """``r2d judge validate``: agreement of a judge with human labels (r2d.eval.judge_validation)."""
    p = sub.add_parser("judge", help="judge tools (validate a judge against human labels)")
    jsub = p.add_subparsers(dest="judge_command", metavar="SUBCOMMAND")
    v = jsub.add_parser("validate", help="score a judge against the human-labelled HarmBench and JBB sets",
                        description="Writes DIR/judge_validation.json (one entry per labelled set) and prints a "
                                    "table with the reference judges scored on the same rows.")
    v.add_argument("--judge", required=True, help="judge name (default, refusal, refusal-gcg, llm-harmbench, ...)")
    v.add_argument("--judge-params", type=json.loads, default=None, help="judge params (JSON)")
    v.add_argument("--output", required=True, help="output directory")
    v.add_argument("--data-dir", default=None, help="data directory (else $R2D_DATA_DIR)")
    v.add_argument("--set", nargs="+", default=None, choices=("harmbench", "jbb", "overrefusal"),
                   help="labelled sets (default harmbench and jbb, the jailbreak question; overrefusal: did the "
                        "model decline a benign request, hand labels shipped with r2d)")
    v.add_argument("--limit", type=int, default=None, help="first N rows of each set")
    v.set_defaults(func=run_validate)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def run_validate(args: argparse.Namespace) -> int:
    from r2d import registry
    from r2d.eval import judge_validation as jv
    from r2d.paths import set_data_dir

    if args.data_dir:
        set_data_dir(args.data_dir)
    judge = registry.create("judge", args.judge, **(args.judge_params or {}))
    entries = jv.validate(judge, args.judge, args.judge_params, sets=tuple(args.set or jv.SETS), limit=args.limit)
    path = jv.write(entries, args.output)
    print(jv.format_table(entries))
    print(f"r2d judge validate: wrote {path}", file=sys.stderr)
    return 0


def _first_row_has(path: str, key: str) -> bool:
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--prompts file not found: {p}")
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                return key in json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}: line 1 is not valid JSON ({e.msg})") from None
    raise ValueError(f"{p}: no rows")


def _with_params(name: str, params: dict | None) -> object:
    return {"name": name, "params": params} if params else name


def build_eval_config(args: argparse.Namespace):
    from r2d.config import check_keys, load_yaml
    from r2d.eval.runner import EvalConfig

    data = load_yaml(args.config) if args.config else {}
    check_keys(EvalConfig, data, args.config)
    single = any(getattr(args, k) for k in ("model", "benchmark", "prompts"))
    if not args.config and not single:
        raise ValueError("give --config FILE, or --model and --benchmark/--prompts for a single cell")
    if args.model or not data.get("models"):
        data["models"] = [{"label": args.label or args.model or "smollm2-135m", "model": args.model or "smollm2-135m",
                           "backend": args.backend or "hf", "backend_kwargs": args.backend_kwargs or {},
                           "policy": args.policy or "raw",
                           "policy_params": {"words": args.think_words} if args.think_words else {}}]
    else:
        for m in data["models"]:
            if isinstance(m, dict):
                if args.policy:
                    m["policy"] = args.policy
                if args.think_words:
                    m["policy_params"] = {**(m.get("policy_params") or {}), "words": args.think_words}
                if args.backend:
                    m["backend"] = args.backend
    if args.defense:
        data["defenses"] = [_with_params(args.defense, args.defense_params)]
    if args.judge:
        data["judges"] = [_with_params(j, args.judge_params) for j in args.judge]
    # a config that only measures ability (``ability:``, ``benchmarks: []``) gets no default benchmark
    if args.benchmark or args.prompts or not (data.get("benchmarks") or (args.config and data.get("ability"))):
        attacks = [_with_params(a, args.attack_params) for a in (args.attack or [])]
        if args.templates:
            attacks = [a for a in attacks if a != "template"] + [{"name": "template",
                                                                 "params": {"templates_file": args.templates}}]
        if args.benchmark == "mmlu":  # general ability: scored by letter log-likelihood, not generated
            data["ability"] = {"mmlu": {"n": args.limit or 1000}}
            data["benchmarks"] = []
        elif args.prompts:
            bench = {"name": "file", "label": "prompts", "params": {
                "path": args.prompts, "goal": "goal", "name": "prompts",
                "target": "target" if _first_row_has(args.prompts, "target") else None}}
        else:
            bench = {"name": args.benchmark or "jbb"}
        if args.benchmark != "mmlu":
            bench.update(subset=args.subset, limit=args.limit, attacks=attacks or ["direct"])
            data["benchmarks"] = [bench]
    elif args.limit is not None:
        for b in data["benchmarks"]:
            if isinstance(b, dict):
                b["limit"] = args.limit
    for k in ("max_new_tokens", "batch_size", "temperature", "data_dir", "train_data"):
        if getattr(args, k) is not None:
            data[k] = getattr(args, k)
    if args.output:
        data["output"] = args.output
    if args.no_progress:
        data["progress"] = False
    return EvalConfig(**data)


def run(args: argparse.Namespace) -> int:
    from r2d.eval.runner import run_eval

    cfg = build_eval_config(args)
    res = run_eval(cfg)
    for c in res["cells"]:
        asr = "-" if c.get("asr") is None else f"{c['asr']:.3f}"
        ref = "-" if c.get("refusal_rate") is None else f"{c['refusal_rate']:.3f}"
        print(f"{c['model']}\t{c['defense']}\t{c['policy']}\t{c['benchmark']}/{c['subset']}\t{c['attack']}\t"
              f"{c['judge']}\tn={c['n']}\tASR={asr}\trefusal={ref}\terrors={c['errors']}\tno_answer={c['no_answer']}"
              f"\tdegenerate={c.get('n_degenerate', 0)}")
    mmlu = (res.get("general_ability") or {}).get("mmlu")
    for label, m in (mmlu or {}).get("models", {}).items():
        lo, hi = m["accuracy_ci"]
        paired = m.get("paired")
        extra = (f"\tvs {paired['reference']}: {paired['diff']:+.3f} [{paired['diff_ci'][0]:+.3f}, "
                 f"{paired['diff_ci'][1]:+.3f}]") if paired else ""
        print(f"{label}\tmmlu\tn={m['n']}\taccuracy={m['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]{extra}")
    print(f"r2d eval: wrote {cfg.output}/results.json", file=sys.stderr)
    if res["samples"] and res.get("sample_errors") == res["samples"]:
        print(f"r2d eval: error: every sample failed ({res['samples']}); first error: {res['first_error']}",
              file=sys.stderr)
        return 1
    return 0
