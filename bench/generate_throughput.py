"""Generation throughput of r2d's backends (one run, a few minutes on 2 CPU cores).

1. hf backend on the main job's real prompt mix (``configs/quickstart/eval.yaml``: JBB harmful goals direct,
   in the aim / hj-76 jailbreak templates, PAIR and GCG artifacts, JBB benign, XSTest safe and unsafe;
   ``--mix-limit`` behaviours per benchmark, stratified; needs ``R2D_DATA_DIR``), ordered and chunked as the
   eval runner does (longest first, ``--batch-size`` per call), greedy, ``--new-tokens`` new tokens:
   the new decode path (``decode="pruned"``, opt-in: drops finished rows) vs the old one (``decode="generate"``, default:
   ``model.generate``), interleaved ``--repeats`` times, with an exact-match check that every completion
   (text, token count, finish reason) is identical; a plain per-prompt ``model.generate`` loop on
   ``--loop-prompts`` of the prompts; and the opt-in early stopping (``stop_after_answer_words`` = the
   prefix judges' word count) with the judges' verdicts compared to those on the full answers.
2. openai backend against a local mock server with 200 ms latency: concurrency 1 vs 32 (requests/s).
3. Policy overhead on the hf backend: raw vs refuse-on-unsafe (stop string) vs pivot-threshold
   (logits processor), same prompts, greedy, interleaved repeats, the median time of each.

Wall time and process CPU time are both recorded: on a shared machine the CPU-time ratios are the
steadier comparison (the load average is recorded too). Prints a table and writes
``bench/results/generate_throughput.json`` with the git commit.

    R2D_DATA_DIR=/path/to/data python bench/generate_throughput.py [--model R2D_MODEL_DIR | --skip-policies] [--quick]
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


def main_job_grid(limit: int) -> tuple[dict, list[dict]]:
    """The main job's eval config (``configs/quickstart/eval.yaml``) and its benchmarks without the cells restricted
    to trained models, each cut to at most ``limit`` behaviours (shared with bench/eval_stage.py)."""
    import yaml

    raw = yaml.safe_load((Path(__file__).parents[1] / "configs" / "quickstart" / "eval.yaml").read_text())
    return raw, [{**b, "limit": min(int(b.get("limit") or limit), limit)} for b in raw["benchmarks"] if not b.get("models")]


def main_job_mix(limit: int) -> list[tuple[str, list[dict], object]]:
    """(attack label, chat, behavior) of the main job's generation grid for the base model, ``limit``
    behaviours per benchmark (the adaptive GCG cell, which attacks the trained model, is left out)."""
    from r2d.eval.runner import EvalConfig, Runner

    _, benches = main_job_grid(limit)
    cfg = EvalConfig(models=[{"label": "base", "model": "smollm2-135m", "backend": "hf"}], benchmarks=benches,
                     output=os.devnull, progress=False)
    runner = Runner(cfg)
    cases = runner.cases(runner.models[0], None)
    judges = {b.spec.label + "/" + str(b.subset): runner.component("judge", runner.judges_for(b)[0]) for b, _, _ in cases}
    return [(f"{b.spec.label}/{b.subset}/{a.label}", c.messages, c.behavior, judges[b.spec.label + "/" + str(b.subset)])
            for b, a, c in cases]


def _run(backend, chats, params, batch: int) -> tuple[list, float, float]:
    """Generate as the eval runner does: longest prompts first, one backend call per ``batch`` chats."""
    order = sorted(range(len(chats)), key=lambda i: -sum(len(m["content"]) for m in chats[i]))
    out: list = [None] * len(chats)
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        for i, c in zip(idx, backend.generate([chats[i] for i in idx], params)):
            out[i] = c
    return out, time.perf_counter() - t0, time.process_time() - c0


def _same(a, b) -> list[int]:
    """Indices where two runs' completions differ (text, token count or finish reason)."""
    return [i for i, (x, y) in enumerate(zip(a, b))
            if (x.text, x.completion_tokens, x.finish_reason, x.error) != (y.text, y.completion_tokens, y.finish_reason, y.error)]


def _stats(outs, dt, cpu) -> dict:
    tok = sum(c.completion_tokens or 0 for c in outs)
    return {"tokens": tok, "seconds": round(dt, 2), "tok_per_s": round(tok / dt, 1), "cpu_seconds": round(cpu, 2),
            "tok_per_cpu_s": round(tok / cpu, 1), "errors": sum(c.error is not None for c in outs)}


def bench_hf(model_name: str, limit: int, new_tokens: int, batch: int, loop_n: int, repeats: int) -> dict:
    import torch

    from r2d.backends.base import GenParams
    from r2d.backends.hf import HFBackend
    from r2d.eval.types import JudgeInput
    from r2d.reasoning import visible_answer

    mix = main_job_mix(limit)
    chats = [c for _, c, _, _ in mix]
    backend = HFBackend(model_name, progress=False)
    params = GenParams(max_new_tokens=new_tokens, batch_size=batch)
    backend.generate(chats[:2], GenParams(max_new_tokens=4, batch_size=2))  # warm-up
    runs: dict[str, list] = {"generate": [], "pruned": []}
    outs: dict[str, list] = {}
    mismatches: list[int] = []
    for _ in range(repeats):  # interleaved so drifting machine load hits both paths alike
        for mode in ("generate", "pruned"):
            backend.decode = mode
            out, dt, cpu = _run(backend, chats, params, batch)
            runs[mode].append({**_stats(out, dt, cpu), "load_avg_1m": round(os.getloadavg()[0], 1)})
            outs.setdefault(mode, out)
            mismatches += _same(outs["generate"], out)
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "cpu_seconds", "tok_per_s", "tok_per_cpu_s")}
           for m, rs in runs.items()}

    # the opt-in early stopping, at the word count the prefix judges read; verdicts compared with the full answers
    # (left out when no judge of the mix reads only a prefix: there is no word count to stop at)
    n_words = max(j.answer_words_read or 0 for _, _, _, j in mix)
    early_res = {"skipped": "no judge of the mix reads only a prefix of the answer"}
    if n_words:
        backend.decode = "pruned"
        early, dt, cpu = _run(backend, chats, GenParams(max_new_tokens=new_tokens, batch_size=batch,
                                                        stop_after_answer_words=n_words), batch)

        def verdict(item, comp):
            _, chat, behavior, judge = item
            v = judge.judge_one(JudgeInput(behavior, chat[-1]["content"], comp.text, visible_answer(comp.text)))
            return (v.label, v.refused, v.jailbroken)

        agree = [verdict(it, f) == verdict(it, e) for it, f, e in zip(mix, outs["pruned"], early)]
        early_res = {"stop_after_answer_words": n_words, **_stats(early, dt, cpu),
                     "load_avg_1m": round(os.getloadavg()[0], 1),
                     "stopped": sum("stopped_after_answer_words" in c.meta for c in early),
                     "verdicts_identical": sum(agree), "verdicts_compared": len(agree),
                     "speedup_wall_vs_old": round(med["generate"]["seconds"] / dt, 2),
                     "speedup_cpu_vs_old": round(med["generate"]["cpu_seconds"] / cpu, 2)}

    # plain per-prompt model.generate on every k-th prompt (the same rendered prompts)
    model, tok = backend.model, backend.tokenizer
    picked = list(range(0, len(chats), max(1, len(chats) // max(1, loop_n))))[:loop_n]
    t0, c0, tok_l = time.perf_counter(), time.process_time(), 0
    for i in picked:
        ids = torch.tensor([backend.prompt_ids(chats[i])])
        with torch.inference_mode():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=sorted(backend._end_ids()))
        tok_l += seq.shape[1] - ids.shape[1]
    loop = _stats([type("C", (), {"completion_tokens": tok_l, "error": None})()], time.perf_counter() - t0,
                  time.process_time() - c0)
    lengths = [c.completion_tokens or 0 for c in outs["generate"]]
    return {"mix": {"prompts": len(chats), "per_attack": {k: sum(1 for a, *_ in mix if a == k) for k in dict.fromkeys(a for a, *_ in mix)},
                    "prompt_tokens": [min(c.prompt_tokens for c in outs["generate"]), max(c.prompt_tokens for c in outs["generate"])],
                    "completion_tokens_min_median_max": [min(lengths), statistics.median(lengths), max(lengths)],
                    "ran_to_max_new_tokens": sum(c.finish_reason == "length" for c in outs["generate"])},
            "old_generate": {"runs": runs["generate"], "median": med["generate"]},
            "new_pruned": {"runs": runs["pruned"], "median": med["pruned"]},
            "speedup_wall": round(med["generate"]["seconds"] / med["pruned"]["seconds"], 2),
            "speedup_cpu_time": round(med["generate"]["cpu_seconds"] / med["pruned"]["cpu_seconds"], 2),
            "exact_match": {"identical": not mismatches, "mismatched_prompts": sorted(set(mismatches)),
                            "compared": len(chats) * repeats},
            "early_stop": early_res,
            "loop": {"prompts": len(picked), **loop},
            "new_vs_loop_tok_per_s": round(med["pruned"]["tok_per_s"] / loop["tok_per_s"], 2),
            "backend": backend}


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


def add_mix_args(ap: argparse.ArgumentParser) -> None:
    """The flags that pick the model and the main job's prompt mix (shared with bench/kv_cache.py)."""
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--mix-limit", type=int, default=8, help="behaviours per benchmark of the main job's mix")
    ap.add_argument("--new-tokens", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_mix_args(ap)
    ap.add_argument("--loop-prompts", type=int, default=6)
    ap.add_argument("--policy-prompts", type=int, default=16)
    ap.add_argument("--policy-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-policies", action="store_true", help="leave out the policy-overhead section")
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (numbers meaningless)")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "generate_throughput.json"))
    a = ap.parse_args()
    if a.quick:
        a.mix_limit, a.new_tokens, a.loop_prompts, a.policy_prompts, a.policy_tokens, a.repeats = 1, 8, 2, 4, 4, 1

    t_all = time.perf_counter()

    def stage(msg: str) -> None:
        print(f"[{time.perf_counter() - t_all:6.1f}s] {msg}", file=sys.stderr, flush=True)

    if not a.skip_policies:  # the policy section needs the R2D tokens: say so now, not after the long part
        from r2d.models import load_tokenizer
        from r2d.pivots import pivot_ids

        try:
            pivot_ids(load_tokenizer(a.model))
        except ValueError:
            print(f"bench/generate_throughput.py: --model {a.model} has no R2D tokens, which the policy section needs: "
                  f"pass an R2D model directory or --skip-policies", file=sys.stderr)
            return 2
    stage("openai mock server: concurrency 1 vs 32")
    openai_res = bench_openai(64 if not a.quick else 8, 0.2)
    stage("hf on the main job's prompt mix: new (pruned) vs old (generate) vs a per-prompt loop")
    hf = bench_hf(a.model, a.mix_limit, a.new_tokens, a.batch_size, a.loop_prompts, a.repeats)
    backend = hf.pop("backend")
    stage(f"policy overhead: {hf}")
    pol = {} if a.skip_policies else bench_policies(backend, a.policy_prompts, a.policy_tokens, a.batch_size, a.repeats)
    stage("done")
    result = {"provenance": cpu_provenance(a.model),
              "settings": vars(a), "hf": hf, "policies": pol, "openai_mock": openai_res,
              "targets": {"new_vs_old_ge_2x_wall": hf["speedup_wall"] >= 2, "greedy_outputs_identical": hf["exact_match"]["identical"],
                          "concurrency32_ge_0.8x32": openai_res["speedup"] >= 0.8 * 32,
                          "policy_overhead_le_5pct": all(v["overhead_pct"] <= 5 for v in pol.values()) if pol else None},
              "total_seconds": round(time.perf_counter() - t_all, 1)}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))

    old_m, new_m, es = hf["old_generate"]["median"], hf["new_pruned"]["median"], hf["early_stop"]
    mix = f"{hf['mix']['prompts']} prompts, bs {a.batch_size}, {a.new_tokens} new"
    rows = [(f"hf old: model.generate ({mix})", f"{old_m['tok_per_s']} tok/s, {old_m['seconds']} s"),
            (f"hf new: pruned loop ({mix})", f"{new_m['tok_per_s']} tok/s, {new_m['seconds']} s"),
            ("  new / old (same work)", f"{hf['speedup_wall']}x wall, {hf['speedup_cpu_time']}x CPU time"),
            ("  greedy outputs identical", f"{hf['exact_match']['identical']} ({hf['exact_match']['compared']} compared, "
                                           f"mismatches {hf['exact_match']['mismatched_prompts']})"),
            (f"hf per-prompt model.generate loop ({hf['loop']['prompts']} prompts)", f"{hf['loop']['tok_per_s']} tok/s"),
            ("  new / loop (tok/s)", f"{hf['new_vs_loop_tok_per_s']}x"),
            (f"opt-in stop_after_answer_words={es.get('stop_after_answer_words', '-')}",
             es["skipped"] if "skipped" in es else
             f"{es['seconds']} s ({es['speedup_wall_vs_old']}x wall vs old), {es['stopped']} stopped early, "
             f"verdicts identical {es['verdicts_identical']}/{es['verdicts_compared']}"),
            ("openai mock 200 ms, concurrency 1", f"{openai_res['concurrency_1']['req_per_s']} req/s"),
            ("openai mock 200 ms, concurrency 32", f"{openai_res['concurrency_32']['req_per_s']} req/s"),
            ("  c32 / c1", f"{openai_res['speedup']}x (target >= 25.6x)")]
    rows += [(f"policy {p} ({a.policy_prompts} prompts x {a.policy_tokens} tok)",
              f"{v['median_s']} s, {v['overhead_pct']:+}% wall, {v['overhead_cpu_pct']:+}% CPU vs raw")
             for p, v in pol.items()]
    print_table(rows, result, a.output)
    return 0


def cpu_provenance(model: str, **extra) -> dict:
    """What every CPU bench records: r2d's provenance (commit, time), the model, thread settings, the CPU, float32,
    anything bench-specific, and the load average when it ends (call it at the end)."""
    import torch

    from r2d.provenance import base_provenance

    return {**base_provenance(), "model": model, "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), **extra,
            "cpu": platform.processor() or platform.machine(), "device": "cpu", "dtype": "float32",
            "load_avg_at_end": [round(x, 1) for x in os.getloadavg()]}


def print_table(rows: list[tuple[str, str]], result: dict, output) -> None:
    """The bench's two-column table on stdout, then where the JSON went (stderr)."""
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  result\n{'-' * w}  {'-' * 30}")
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    print(f"\ncommit {result['provenance']['git_commit']}, {result['total_seconds']} s -> {output}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
