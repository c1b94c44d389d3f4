"""Generation throughput of r2d's backends (one run, about 5 minutes on 2 CPU cores).

1. hf backend, batched (64 prompts x 128 new tokens, batch 32) vs a plain per-prompt
   ``model.generate`` loop (subsampled to ``--loop-prompts`` prompts; tok/s is comparable).
2. openai backend against a local mock server with 200 ms latency: concurrency 1 vs 32 (requests/s).
3. Policy overhead on the hf backend: raw vs refuse-on-unsafe (stop string) vs pivot-threshold
   (logits processor), same prompts, greedy, interleaved repeats, the median time of each.

Wall time and process CPU time are both recorded: on a shared machine the CPU-time ratios are the
steadier comparison. Prints a table and writes ``bench/results/generate_throughput.json`` with the git commit.

    python bench/generate_throughput.py [--model smollm2-135m] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

TOPICS = ["bake sourdough bread", "learn the guitar", "pick a laptop", "write a cover letter", "start running",
          "grow tomatoes", "explain photosynthesis", "plan a trip to Kyoto", "fix a leaking tap", "save for retirement",
          "train a puppy", "make a pivot table", "write a haiku about rain", "understand black holes",
          "prepare for an interview", "pick a houseplant"]
FORMS = ["How do I {}?", "Give me three tips to {}.", "Explain briefly how to {} for a complete beginner who has "
         "never tried it and is a little nervous about getting it wrong.", "What is the fastest way to {}?"]


def prompts(n: int) -> list[list[dict]]:
    texts = [f.format(t) for f in FORMS for t in TOPICS][:n]
    return [[{"role": "user", "content": t}] for t in texts]


def bench_hf(model_name: str, n: int, new_tokens: int, batch: int, loop_n: int) -> dict:
    import torch

    from r2d.backends.base import GenParams
    from r2d.backends.hf import HFBackend

    backend = HFBackend(model_name, progress=False)
    chats = prompts(n)
    params = GenParams(max_new_tokens=new_tokens, batch_size=batch)
    backend.generate(chats[:2], GenParams(max_new_tokens=4, batch_size=2))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    out = backend.generate(chats, params)
    dt_b, cpu_b = time.perf_counter() - t0, time.process_time() - c0
    tok_b = sum(c.completion_tokens or 0 for c in out)
    errors = sum(c.error is not None for c in out)

    model, tok = backend.model, backend.tokenizer
    t0, c0, tok_l = time.perf_counter(), time.process_time(), 0
    for chat in chats[:loop_n]:
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            seq = model.generate(**ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        tok_l += seq.shape[1] - ids["input_ids"].shape[1]
    dt_l, cpu_l = time.perf_counter() - t0, time.process_time() - c0
    return {"batched": {"prompts": n, "batch_size": batch, "tokens": tok_b, "seconds": round(dt_b, 2),
                        "tok_per_s": round(tok_b / dt_b, 1), "cpu_seconds": round(cpu_b, 2),
                        "tok_per_cpu_s": round(tok_b / cpu_b, 1), "errors": errors},
            "loop": {"prompts": loop_n, "tokens": tok_l, "seconds": round(dt_l, 2), "tok_per_s": round(tok_l / dt_l, 1),
                     "cpu_seconds": round(cpu_l, 2), "tok_per_cpu_s": round(tok_l / cpu_l, 1)},
            "speedup": round((tok_b / dt_b) / (tok_l / dt_l), 2),
            "speedup_cpu_time": round((tok_b / cpu_b) / (tok_l / cpu_l), 2), "backend": backend}


def bench_policies(backend, n: int, new_tokens: int, batch: int, repeats: int) -> dict:
    from r2d.backends.base import GenParams
    from r2d.infer.policies import generate_with_policy

    chats = prompts(n)
    params = GenParams(max_new_tokens=new_tokens, batch_size=batch)
    policies = {"raw": {}, "refuse-on-unsafe": {}, "pivot-threshold": {"tau": 0.5}}
    times: dict[str, list[float]] = {p: [] for p in policies}
    cpu: dict[str, list[float]] = {p: [] for p in policies}
    tokens: dict[str, int] = {}
    for _ in range(repeats):  # interleaved so drifting machine load hits every policy alike
        for name, kw in policies.items():
            t0, c0 = time.perf_counter(), time.process_time()
            out = generate_with_policy(backend, chats, params, name, **kw)
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
            tokens[name] = sum(c.completion_tokens or 0 for c in out)
    med = {p: statistics.median(t) for p, t in times.items()}
    mcpu = {p: statistics.median(t) for p, t in cpu.items()}
    return {p: {"median_s": round(med[p], 2), "runs_s": [round(x, 2) for x in times[p]], "tokens": tokens[p],
                "overhead_pct": round(100 * (med[p] / med["raw"] - 1), 1),
                "median_cpu_s": round(mcpu[p], 2), "overhead_cpu_pct": round(100 * (mcpu[p] / mcpu["raw"] - 1), 1)}
            for p in policies}


def bench_openai(n: int, latency: float) -> dict:
    from r2d.backends.base import GenParams
    from r2d.backends.openai_backend import OpenAIBackend
    from r2d.backends.mock_server import MockOpenAIServer

    res = {}
    with MockOpenAIServer(delay_s=latency) as srv:
        for conc in (1, 32):
            b = OpenAIBackend(model="mock", base_url=srv.url, concurrency=conc)
            t0 = time.perf_counter()
            out = b.generate(prompts(n), GenParams(max_new_tokens=16))
            dt = time.perf_counter() - t0
            res[f"concurrency_{conc}"] = {"requests": n, "seconds": round(dt, 2), "req_per_s": round(n / dt, 2),
                                          "errors": sum(c.error is not None for c in out)}
    res["speedup"] = round(res["concurrency_32"]["req_per_s"] / res["concurrency_1"]["req_per_s"], 2)
    res["latency_s"] = latency
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--loop-prompts", type=int, default=8)
    ap.add_argument("--policy-prompts", type=int, default=16)
    ap.add_argument("--policy-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (numbers meaningless)")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "generate_throughput.json"))
    a = ap.parse_args()
    if a.quick:
        a.prompts, a.new_tokens, a.loop_prompts, a.policy_prompts, a.policy_tokens, a.repeats = 8, 8, 2, 4, 4, 1

    import torch

    from r2d.provenance import base_provenance

    t_all = time.perf_counter()

    def stage(msg: str) -> None:
        print(f"[{time.perf_counter() - t_all:6.1f}s] {msg}", file=sys.stderr, flush=True)

    stage("openai mock server: concurrency 1 vs 32")
    openai_res = bench_openai(64 if not a.quick else 8, 0.2)
    stage(f"hf batched vs loop: {openai_res}")
    hf = bench_hf(a.model, a.prompts, a.new_tokens, a.batch_size, a.loop_prompts)
    backend = hf.pop("backend")
    stage(f"policy overhead: {hf}")
    pol = bench_policies(backend, a.policy_prompts, a.policy_tokens, a.batch_size, a.repeats)
    stage("done")
    result = {"provenance": {**base_provenance(), "model": a.model, "torch_threads": torch.get_num_threads(),
                             "cpu": platform.processor() or platform.machine(), "device": "cpu", "dtype": "float32"},
              "settings": vars(a), "hf": hf, "policies": pol, "openai_mock": openai_res,
              "targets": {"batched_vs_loop_ge_5x": hf["speedup"] >= 5,
                          "concurrency32_ge_0.8x32": openai_res["speedup"] >= 0.8 * 32,
                          "policy_overhead_le_5pct": all(v["overhead_pct"] <= 5 for v in pol.values())},
              "total_seconds": round(time.perf_counter() - t_all, 1)}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))

    rows = [("hf batched (bs %d, %d prompts)" % (a.batch_size, a.prompts), f"{hf['batched']['tok_per_s']} tok/s"),
            ("hf per-prompt model.generate loop (%d prompts)" % a.loop_prompts, f"{hf['loop']['tok_per_s']} tok/s"),
            ("  batched / loop", f"{hf['speedup']}x wall, {hf['speedup_cpu_time']}x CPU time (target >= 5x)"),
            ("openai mock 200 ms, concurrency 1", f"{openai_res['concurrency_1']['req_per_s']} req/s"),
            ("openai mock 200 ms, concurrency 32", f"{openai_res['concurrency_32']['req_per_s']} req/s"),
            ("  c32 / c1", f"{openai_res['speedup']}x (target >= 25.6x)")]
    rows += [(f"policy {p} ({a.policy_prompts} prompts x {a.policy_tokens} tok)",
              f"{v['median_s']} s, {v['overhead_pct']:+}% wall, {v['overhead_cpu_pct']:+}% CPU vs raw")
             for p, v in pol.items()]
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  result\n{'-' * w}  {'-' * 30}")
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print(f"\ncommit {result['provenance']['git_commit']}, {result['total_seconds']} s -> {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
