"""A policy arm generated vs derived from the raw arm (``derive_policy_samples``), on the main job's grid.

For one R2D model and one derivable policy (default ``refuse-on-unsafe``, the main job's usual choice), over the
main job's grid (``configs/quickstart/eval.yaml``'s benchmarks without the cells restricted to trained models,
``--limit`` behaviours per benchmark), generation only (judging is the same work either way):
1. the raw arm alone (``r2d``), timed;
2. the policy arm generated (``r2d@policy``, derivation off) in the same directory (the raw rows are reused), timed;
3. the policy arm derived, in a fresh directory holding a copy of the raw rows, timed;
then every policy sample of 2 and 3 compared (completion, visible text, answer, finish reason, error, pivots exactly;
the first pivot's probabilities to 1e-4).
Prints a table and writes ``bench/results/derive_policy.json`` with the git commit. Runs on the CPU.

    R2D_DATA_DIR=/path/to/data OMP_NUM_THREADS=2 python bench/derive_policy.py --model runs/X/models/r2d [--limit 25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).parent))
import generate_throughput as gt  # noqa: E402  (the main job's grid and the table printer)

FIELDS = ("completion", "visible", "answer", "finish_reason", "error", "pivots")
# The first pivot's recorded probabilities are compared apart, to a tolerance: with hf the raw arm runs the pruned
# loop and the policy arm (a stop string) model.generate, whose logits round differently in the 6th decimal.
PIVOT_TOL = 1e-4


def runner(model: str, policy: str, derive: bool, with_policy: bool, limit: int, out: Path):
    from r2d.eval.runner import EvalConfig, Runner

    raw, benches = gt.main_job_grid(limit)
    models = [{"label": "r2d", "model": model, "backend": "hf", "backend_kwargs": {"decode": "pruned", "device": "cpu"}}]
    if with_policy:
        models.append({**models[0], "label": "r2d@policy", "policy": policy})
    cfg = EvalConfig(models=models, benchmarks=benches, max_new_tokens=raw["max_new_tokens"],
                     batch_size=raw["batch_size"], temperature=raw["temperature"], output=str(out), progress=False,
                     derive_policy_samples=derive)
    return Runner(cfg)


def timed_generate(r) -> dict:
    t, c = time.perf_counter(), time.process_time()
    r.generate()
    return {"wall_s": round(time.perf_counter() - t, 1), "cpu_s": round(time.process_time() - c, 1),
            "generated": r.stats["generated"], "derived": r.stats["derived"], "skipped": r.stats["skipped"]}


def policy_rows(out: Path) -> dict:
    rows = {}
    for line in (out / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["model"] == "r2d@policy":
            rows[r["key"]] = r
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an R2D model directory")
    ap.add_argument("--policy", default="refuse-on-unsafe")
    ap.add_argument("--limit", type=int, default=25, help="behaviours per benchmark (the main job: 25)")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "derive_policy.json"))
    a = ap.parse_args()

    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        gen, der = Path(tmp) / "generated", Path(tmp) / "derived"
        raw_arm = timed_generate(runner(a.model, a.policy, False, False, a.limit, gen))
        print(f"raw arm: {raw_arm}", file=sys.stderr, flush=True)
        der.mkdir()
        shutil.copy(gen / "samples.jsonl", der / "samples.jsonl")
        generated = timed_generate(runner(a.model, a.policy, False, True, a.limit, gen))
        print(f"policy arm generated: {generated}", file=sys.stderr, flush=True)
        derived = timed_generate(runner(a.model, a.policy, True, True, a.limit, der))
        print(f"policy arm derived: {derived}", file=sys.stderr, flush=True)
        g, d = policy_rows(gen), policy_rows(der)
    diff = sorted(k for k in g if k not in d or any(g[k].get(f) != d[k].get(f) for f in FIELDS))
    by_field = {f: sum(k in d and g[k].get(f) != d[k].get(f) for k in g) for f in (*FIELDS, "first_pivot")}
    pivot_gap = max((abs(float(v) - float(d[k]["first_pivot"][p])) for k in g if k in d
                     and g[k].get("first_pivot") and d[k].get("first_pivot")
                     for p, v in g[k]["first_pivot"].items() if p.startswith("[")), default=0.0)
    n_derived = sum("derived_from" in r["meta"] for r in d.values())
    saved = {k: round(generated[k] - derived[k], 1) for k in ("wall_s", "cpu_s")}
    result = {"provenance": gt.cpu_provenance(a.model),
              "settings": vars(a), "raw_arm": raw_arm, "policy_generated": generated, "policy_derived": derived,
              "saved": saved,
              "generation_both_arms": {"generated_cpu_s": round(raw_arm["cpu_s"] + generated["cpu_s"], 1),
                                       "derived_cpu_s": round(raw_arm["cpu_s"] + derived["cpu_s"], 1)},
              "identical": {"compared": len(g), "identical": len(g) - len(diff), "derived_rows": n_derived,
                            "mismatched": diff[:20], "fields": list(FIELDS), "differing_by_field": by_field,
                            "first_pivot_max_abs_diff": pivot_gap, "first_pivot_within_tol": pivot_gap <= PIVOT_TOL},
              "total_seconds": round(time.perf_counter() - t_all, 1)}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))
    rows = [("raw arm (r2d), generated", f"{raw_arm['cpu_s']} CPU s / {raw_arm['wall_s']} s, {raw_arm['generated']} samples"),
            (f"policy arm ({a.policy}), generated", f"{generated['cpu_s']} CPU s / {generated['wall_s']} s"),
            (f"policy arm ({a.policy}), derived", f"{derived['cpu_s']} CPU s / {derived['wall_s']} s, "
                                                  f"{n_derived} derived, {derived['generated']} generated"),
            ("both arms, generated -> derived", f"{result['generation_both_arms']['generated_cpu_s']} -> "
                                                f"{result['generation_both_arms']['derived_cpu_s']} CPU s"),
            ("policy samples identical", f"{len(g) - len(diff)}/{len(g)} ({', '.join(FIELDS)})"),
            ("first pivot's probabilities", f"max |diff| {pivot_gap:.1e} (tolerance {PIVOT_TOL:g})")]
    gt.print_table(rows, result, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
