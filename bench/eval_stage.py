"""The evaluation stage of the main job, old hf path vs new, on the same grid (issue 15's target).

Runs ``r2d eval`` (the ``Runner``: generation, then every judge) twice for one model over the main job's grid
(``configs/quickstart/eval.yaml``'s benchmarks and judges, without the cells restricted to trained models;
``--limit`` behaviours per benchmark), each into its own fresh directory:
- old: ``backend_kwargs: {decode: generate}`` (``model.generate``, the hf backend's default),
- new: ``backend_kwargs: {decode: pruned}`` (the main job's setting: rows dropped when they end, the in-place KV
  cache and the prompt forward in length groups, their defaults).
Records process CPU time and wall time of each stage (generation, judging) and compares every sample's
completion (text, token count, finish reason) and every verdict. Needs ``R2D_DATA_DIR``; the model is an alias
or a path (an R2D model directory to measure a reasoning student). Prints a table and writes
``bench/results/eval_stage.json`` with the git commit.

    R2D_DATA_DIR=/path/to/data OMP_NUM_THREADS=2 python bench/eval_stage.py [--model smollm2-135m] [--limit 25]

``--rounds N`` interleaves N runs of each arm (old/new, then new/old, ...) and reports the medians; every run's
samples and verdicts are compared with the first old run's. Judging does the same work in both arms: its CPU time
shows the measurement's noise. Runs on the CPU (``device: cpu``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).parent))
import generate_throughput as gt  # noqa: E402  (the main job's grid and the table printer)

ARMS = {"old": {"decode": "generate", "device": "cpu"}, "new": {"decode": "pruned", "device": "cpu"}}


def grid(limit: int) -> dict:
    raw, benches = gt.main_job_grid(limit)
    return {"benchmarks": benches, "max_new_tokens": raw["max_new_tokens"], "batch_size": raw["batch_size"],
            "temperature": raw["temperature"]}


def run_arm(model: str, kwargs: dict, g: dict, out: Path) -> dict:
    """One ``Runner`` over the grid; CPU and wall seconds of its generation and judging stages."""
    from r2d.eval.runner import EvalConfig, Runner

    cfg = EvalConfig(models=[{"label": "m", "model": model, "backend": "hf", "backend_kwargs": kwargs}],
                     benchmarks=g["benchmarks"], max_new_tokens=g["max_new_tokens"], batch_size=g["batch_size"],
                     temperature=g["temperature"], output=str(out), progress=False)
    runner = Runner(cfg)
    out.mkdir(parents=True, exist_ok=True)
    times = {}
    for stage in ("generate", "judge"):
        t, c = time.perf_counter(), time.process_time()
        getattr(runner, stage)()
        times[stage] = {"wall_s": round(time.perf_counter() - t, 1), "cpu_s": round(time.process_time() - c, 1)}
    samples = {r["key"]: r for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())}
    verdicts = {(r["key"], r["judge"]): r["verdict"] for r in map(json.loads, (out / "judgments.jsonl").read_text().splitlines())}
    tokens = sum(int(s.get("completion_tokens") or 0) for s in samples.values())
    return {"times": times, "samples": samples, "verdicts": verdicts, "tokens": tokens}


def median_times(rounds: list[dict]) -> dict:
    """Per stage and measure, the median over rounds."""
    import statistics

    return {st: {k: round(statistics.median(r[st][k] for r in rounds), 1) for k in rounds[0][st]} for st in rounds[0]}


def compare(old: dict, new: dict) -> dict:
    def completion(s: dict) -> tuple:
        return s.get("completion"), s.get("completion_tokens"), s.get("finish_reason"), s.get("error")

    keys = sorted(old["samples"])
    diff = [k for k in keys if k not in new["samples"] or completion(old["samples"][k]) != completion(new["samples"][k])]
    vkeys = sorted(old["verdicts"])
    vdiff = [k for k in vkeys if old["verdicts"][k].get("label") != new["verdicts"].get(k, {}).get("label")]
    return {"samples_compared": len(keys), "samples_identical": len(keys) - len(diff), "mismatched": diff[:20],
            "verdicts_compared": len(vkeys), "verdicts_identical": len(vkeys) - len(vdiff)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--limit", type=int, default=25, help="behaviours per benchmark (the main job: 25)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (old/new, then new/old, ...); medians")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "eval_stage.json"))
    a = ap.parse_args()

    t_all = time.perf_counter()
    g = grid(a.limit)
    runs: dict[str, list[dict]] = {name: [] for name in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):  # interleaved: old, new, then new, old, ...
            for name in (list(ARMS) if r % 2 == 0 else list(ARMS)[::-1]):
                print(f"[{time.perf_counter() - t_all:7.1f}s] round {r + 1}, arm {name}: {ARMS[name]}", file=sys.stderr,
                      flush=True)
                runs[name].append(run_arm(a.model, ARMS[name], g, Path(tmp) / f"{name}-{r}"))
    arms = {name: {**rs[0], "times": median_times([x["times"] for x in rs]), "rounds": [x["times"] for x in rs]}
            for name, rs in runs.items()}
    checks = [compare(runs["old"][0], x) for x in runs["new"] + runs["old"][1:]]
    same = {k: (sum(c[k] for c in checks) if k != "mismatched" else sorted({m for c in checks for m in c[k]}))
            for k in checks[0]}
    t_old, t_new = arms["old"]["times"], arms["new"]["times"]

    def ratio(stage: str, key: str) -> float:
        o = t_old[stage][key] if stage != "all" else t_old["generate"][key] + t_old["judge"][key]
        n = t_new[stage][key] if stage != "all" else t_new["generate"][key] + t_new["judge"][key]
        return round(o / n, 3) if n else float("nan")

    result = {"provenance": gt.cpu_provenance(a.model),
              "settings": vars(a) | {"arms": ARMS, "max_new_tokens": g["max_new_tokens"], "batch_size": g["batch_size"],
                                     "benchmarks": [f"{b['name']}/{b.get('subset')}" for b in g["benchmarks"]]},
              "arms": {n: {"times": v["times"], "rounds": v["rounds"], "samples": len(v["samples"]),
                           "generated_tokens": v["tokens"]}
                       for n, v in arms.items()},
              "speedup": {f"{s}_{k}": ratio(s, k) for s in ("generate", "all") for k in ("cpu_s", "wall_s")},
              "identical": same, "total_seconds": round(time.perf_counter() - t_all, 1)}
    result["targets"] = {"stage_ge_2x_cpu": result["speedup"]["all_cpu_s"] >= 2,
                         "samples_identical": same["samples_identical"] == same["samples_compared"]}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))
    rows = [(f"{n}: {ARMS[n]} ({result['arms'][n]['samples']} samples, {result['arms'][n]['generated_tokens']} tokens)",
             f"generate {v['generate']['cpu_s']} CPU s / {v['generate']['wall_s']} s, judge {v['judge']['cpu_s']} CPU s "
             f"/ {v['judge']['wall_s']} s") for n, v in (("old", t_old), ("new", t_new))]
    rows += [("  new / old, generation", f"{result['speedup']['generate_cpu_s']}x CPU, {result['speedup']['generate_wall_s']}x wall"),
             ("  new / old, whole stage", f"{result['speedup']['all_cpu_s']}x CPU, {result['speedup']['all_wall_s']}x wall"),
             ("  samples identical", f"{same['samples_identical']}/{same['samples_compared']}"),
             ("  verdicts identical", f"{same['verdicts_identical']}/{same['verdicts_compared']}")]
    gt.print_table(rows, result, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
