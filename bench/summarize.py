"""Render the benchmark JSON files under ``bench/results/`` as the markdown tables of docs/benchmarks.md.

    python bench/summarize.py            # print
    python bench/summarize.py --write    # replace the generated block in docs/benchmarks.md

Every number comes from a JSON file written by a bench script; the commit each was measured at is printed
beside it (a ``-dirty`` suffix: uncommitted edits were present).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _load(name: str) -> dict | None:
    p = RES / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _commit(d: dict) -> str:
    prov = d.get("provenance", d)
    commit = str(prov.get("git_commit", "?"))
    dirty = " with uncommitted changes" if commit.endswith("-dirty") else ""  # measured on a work tree, not a commit
    return f"`{commit[:12]}`{dirty}, {str(prov.get('time', '?'))[:16]}"


TRAIN_ARMS = {"trl": "TRL `SFTTrainer` (activation checkpointing on, its default; fp32; no CPO, no new-token rows)",
              "r2d": "r2d `R2DTrainer` (its defaults: checkpointing off; SwaRD + CPO, new-token rows)",
              "r2d-ckpt": "r2d, `gradient_checkpointing: true` (every layer, as TRL)",
              "r2d-ckpt-every2": "r2d, `gradient_checkpointing: true`, `gradient_checkpointing_every: 2`",
              "r2d-ckpt-every3": "r2d, `gradient_checkpointing: true`, `gradient_checkpointing_every: 3`"}


def train(d: dict) -> list[str]:
    r = d["results"]
    ratios = d.get("ratios_over_trl", {})
    rows = []
    cpu = "tokens_per_cpu_s" in r["trl"]
    for k, v in r.items():
        q = ratios.get(k)
        rel = "1 | 1" if q is None else f"{q['speed_ratio']:.3f} | {q['rss_ratio']:.3f}"
        hit = " **meets target**" if q and q.get("meets_target") else ""
        speed = f"{v['tokens_per_cpu_s']:.1f} | {v['tokens_per_s']:.1f}" if cpu else f"{v['tokens_per_s']:.1f}"
        rows.append(f"| {TRAIN_ARMS.get(k, k)}{hit} | {speed} | {v['peak_rss_mb']:.0f} | {rel} |")
    head = ("| trainer | tokens / CPU s | tokens / wall s | peak RSS (MB) | speed vs TRL | RSS vs TRL |",
            "|---|---|---|---|---|---|") if cpu else (
            "| trainer | tokens/s | peak RSS (MB) | tokens/s vs TRL | RSS vs TRL |", "|---|---|---|---|---|")
    threads = d.get("omp_num_threads")
    load = d.get("load_average_at_start")
    out = [f"### Training throughput (`bench/train_throughput.py`; {_commit(d)})", "",
           f"smollm2-135m, LoRA r16, batch {d['batch_size']}, {d['steps']} steps, fp32 on CPU"
           + (f", OMP_NUM_THREADS={threads}" if threads else "")
           + (f" (load average at start {load[0]:.1f}: a shared machine)" if load else "")
           + "; each trainer in its own process, one after the other."
           + (" Speed vs TRL compares tokens per CPU second of the training loop (wall time on a shared CPU "
              "follows the other jobs)." if d.get("speed_measure") == "tokens_per_cpu_s" else ""), "",
           *head, *rows, ""]
    if "ratios_over_trl" not in d:  # results written before the per-arm ratios
        out.append(f"Defaults: speed r2d/TRL **{d['speed_ratio_r2d_over_trl']:.2f}×**, peak RSS r2d/TRL "
                   f"**{d['rss_ratio_r2d_over_trl']:.2f}×**.")
    else:
        out.append(f"Meeting the target: {', '.join(d['meeting_target']) or 'none'}. Wall-clock ratios (not compared, "
                   "shared CPU): " + ", ".join(f"{k} {q['wall_speed_ratio']:.2f}x" for k, q in ratios.items()) + ".")
    return out + [f"(Target: {d['target']}.)", ""]


def generate(d: dict) -> list[str]:
    h, o, p, s = d["hf"], d["openai_mock"], d["policies"], d["settings"]
    if "batched" in h:  # results written before the old-vs-pruned comparison
        return [f"### Generation throughput (`bench/generate_throughput.py`; {_commit(d)})", "",
                f"hf batched {h['batched']['tok_per_s']} tok/s vs a per-prompt loop {h['loop']['tok_per_s']} tok/s "
                f"(**{h['speedup']}×**).", ""]
    old, new, es = h["old_generate"]["median"], h["new_pruned"]["median"], h.get("early_stop") or {}
    mix = h["mix"]
    rows = [f"| hf, `model.generate` (bs {s['batch_size']}, {mix['prompts']} prompts of the main job's mix, "
            f"{s['new_tokens']} new tokens) | {old['tok_per_s']} tok/s wall, {old['tok_per_cpu_s']} tok/CPU-s |",
            f"| hf, `decode: pruned` (same prompts) | {new['tok_per_s']} tok/s wall, {new['tok_per_cpu_s']} tok/CPU-s |",
            f"| pruned vs generate | **{h['speedup_wall']}×** wall, **{h['speedup_cpu_time']}×** CPU time; greedy "
            f"outputs identical: {h['exact_match']['identical']} ({h['exact_match']['compared']} compared) |",
            f"| plain per-prompt `model.generate` loop ({h['loop']['prompts']} prompts) | {h['loop']['tok_per_s']} tok/s "
            f"(pruned batch {h['new_vs_loop_tok_per_s']}× faster) |"]
    if es.get("skipped"):
        rows.append(f"| opt-in early stop | not measured: {es['skipped']} |")
    elif es:
        rows.append(f"| early stop after {es['stop_after_answer_words']} answer words | {es['speedup_wall_vs_old']}× wall, "
                    f"{es['speedup_cpu_vs_old']}× CPU time vs generate; verdicts identical "
                    f"{es['verdicts_identical']}/{es['verdicts_compared']} |")
    rows.append(f"| openai backend vs mock server ({o['latency_s']} s latency), concurrency 32 vs 1 | **{o['speedup']}×** |")
    rows += [f"| policy `{k}` overhead vs raw | {v['overhead_pct']}% |" for k, v in p.items() if k != "raw"]
    load = d["provenance"].get("load_avg_at_end")
    return [f"### Generation throughput (`bench/generate_throughput.py`; {_commit(d)})", "",
            f"Wall-clock figures follow the machine's load (load average {load}); CPU-time figures do not.", "",
            "| what | result |", "|---|---|", *rows, "", f"Targets: {d['targets']}.", ""]


def synthesis(d: dict) -> list[str]:
    rows = ["| concurrency | examples | teacher s | rows/s | speed-up | vs ideal (= concurrency) |", "|---|---|---|---|---|---|"]
    for r in d["openai_mock"]:
        rows.append(f"| {r['concurrency']} | {r['examples']} | {r['teacher_s']} | {r['rows_per_s']} | {r['speedup']}× | "
                    f"{r['speedup_vs_ideal']} |")
    t = d["template_quickstart"]
    load = d["provenance"].get("load_avg_at_start")
    return [f"### SwaRD synthesis (`bench/synthesis_throughput.py`; {_commit(d)})", "",
            f"`openai` teacher against the local mock server ({d['latency_s']} s latency per call), {d['n']} examples "
            f"({d.get('note', '')}); load average at start {[round(x, 1) for x in load] if load else '?'}.", "", *rows, "",
            f"Offline template teacher, quickstart config: {t['accepted']} rows accepted, {t['rejected']} rejected, "
            f"in {t['seconds']} s.", ""]


def gpu(d: dict) -> list[str]:
    rows = ["| what | result |", "|---|---|"]
    for t in d["train"]:
        rows.append(f"| train {t['mode']}, bs {t['batch_size']}, {t['steps']} steps, bf16={t['bf16']} | "
                    f"~{t['tokens_per_s_approx']} tok/s, peak {t['peak_gpu_mem_mb']} MB |")
    for k in ("generate_base_bs32", "generate_lora_adapter_bs32", "generate_base_bs1"):
        g = d[k]
        rows.append(f"| `{k}` ({g['dtype']}, {g['prompts']} prompts, {g['max_new_tokens']} tokens) | "
                    f"{g['tok_per_s']} tok/s, {g['errors']} errors |")
    return [f"### GPU path check (`bench/gpu_check.py`; {d['gpu']}, torch {d['torch']}; {_commit(d)})", "",
            f"Model: {d['model']}. `dtype: auto` chose bf16 on CUDA for training and generation.", "", *rows, ""]


def kv_cache(d: dict) -> list[str]:
    m, pr, s = d["mix"], d["profile"], d["settings"]
    em = m["exact_match"]
    rows = ["| pruned loop's cache | tokens | CPU s | tok / CPU s | tok / wall s |", "|---|---|---|---|---|"]
    for kind, label in (("dynamic", "transformers `DynamicCache` (`kv_cache: dynamic`)"),
                        ("buffer", "r2d `BufferLayer`, in place (`kv_cache: buffer`, default)")):
        v = m["median"][kind]
        rows.append(f"| {label} | {v['tokens']} | {v['cpu_seconds']} | {v['tok_per_cpu_s']} | {v['tok_per_s']} |")
    prof = ["| cache | step CPU ms | `aten::cat` ms | `aten::mm` ms | attention ms | `aten::copy_` ms |",
            "|---|---|---|---|---|---|"]
    for kind in ("dynamic", "buffer"):
        v = pr[kind]
        ops, share = v["self_cpu_ms_per_step"], v["self_cpu_share_pct"]
        prof.append(f"| {kind} | {v['step_cpu_ms_median']} | "
                    + " | ".join(f"{ops[k]} ({share[k]}%)" for k in ("cat", "mm", "attention", "copy_")) + " |")
    load = d["provenance"].get("load_avg_at_end")
    runs = ", ".join(f"{k}: " + "/".join(str(r["tok_per_cpu_s"]) for r in rs) for k, rs in m["runs"].items())
    return [f"### KV cache of the pruned loop (`bench/kv_cache.py`; {_commit(d)})", "",
            f"{d['provenance']['model']}, greedy, {m['prompts']} prompts of the main job's mix (`--mix-limit "
            f"{s['mix_limit']}`), bs {s['batch_size']}, {s['new_tokens']} new tokens, "
            f"{len(next(iter(m['runs'].values())))} interleaved round(s), torch threads "
            f"{d['provenance'].get('torch_threads')}, load average at end {load}.", "",
            *rows, "",
            f"BufferLayer / DynamicCache: **{m['buffer_over_dynamic_tok_per_cpu_s']}×** tokens per CPU second "
            f"({m['buffer_over_dynamic_tok_per_s']}× wall; runs {runs}). Generated ids and completions identical: "
            f"{em['identical']} ({em['compared']} prompts compared).", "",
            f"One decode step at batch {pr['batch']} over a {pr['kv_tokens']}-token KV ({pr['padded_rows']} rows "
            f"left-padded by {pr['pad_width']}): step CPU time without the profiler (median of {pr['timed_steps']}), "
            f"and `torch.profiler` self-CPU time per step (mean of {pr['profiled_steps']}; share of the profiled "
            f"step; attention = the `scaled_dot_product` ops). The profiler's times are wall time inside each op, so on a "
            f"shared CPU they include time spent on other jobs; the step CPU ms column is process CPU time.", "",
            *prof, "",
            f"Step CPU time buffer / dynamic: **{pr['buffer_over_dynamic_step_cpu']}×**.", ""]


def prefill(d: dict) -> list[str]:
    t, pre, lp, s = d["tokens"], d["prefill"], d["loop"], d["settings"]
    pm, lm, pt, em = pre["median"], lp["median"], lp["per_token"], lp["exact_match"]
    labels = {"old": "padded prompt forward, no trimming (`prefill: padded, trim_padding: false`, the old loop)",
              "grouped": "length groups (`prefill: grouped`, default; `trim_padding: false`, default)",
              "grouped+trim": "length groups + trimmed decode KV (`prefill: grouped, trim_padding: true`)"}
    rows = ["| pruned loop | tokens | CPU s | CPU s / token | vs old | tok / wall s |", "|---|---|---|---|---|---|"]
    for arm, v in lm.items():
        rows.append(f"| {labels.get(arm, arm)} | {v['tokens']} | {v['cpu_seconds']:.2f} | {pt[arm]['cpu_s_per_token']} | "
                    f"{pt[arm]['speedup_cpu_per_token']}× | {v['tok_per_s']} |")
    miss = "; ".join(f"{m['arm']} row {m['row']} differs from step {m['step']} (logit margin {m['margin_old_minus_new']})"
                     for m in lp.get("mismatches", [])) or "none"
    load = d["provenance"].get("load_avg_at_end")
    return [f"### Padding in the pruned loop (`bench/prefill.py`; {_commit(d)})", "",
            f"{d['provenance']['model']}, greedy, {pre['prompts']} prompts of the main job's mix (`--mix-limit "
            f"{s['mix_limit']}`), bs {s['batch_size']}, torch threads {d['provenance'].get('torch_threads')}, "
            f"load average at end {load}.", "",
            f"Prompt forward: {t['real']} real prompt tokens, {t['padded']} as padded batches, {t['grouped']} in length "
            f"groups. CPU s of the prompt forward alone (median of {s['prefill_repeats']}): padded {pm['padded']['cpu_seconds']:.2f}, "
            f"grouped {pm['grouped']['cpu_seconds']:.2f} (**{d['prefill_padded_over_grouped_cpu']}×** less); first tokens "
            f"identical: {pre['exact_match']['identical']} ({pre['exact_match']['compared']} compared).", "",
            f"Whole loop, {s['new_tokens']} new tokens, {s['repeats']} interleaved round(s):", "", *rows, "",
            f"Generated ids and completions identical to the old loop: {em['identical']} ({em['compared']} rows "
            f"compared over the other arms); mismatches: {miss}.", "", *_trim(d)]


def _trim(d: dict) -> list[str]:
    e, s = d.get("long_rows_end_early"), d["settings"]
    if not e:
        return []
    rows = ["| pruned loop, long rows ending early | tokens | CPU s | CPU s / token | vs untrimmed |", "|---|---|---|---|---|"]
    rows += [f"| `trim_padding: {str(arm == 'grouped+trim').lower()}` | {v['tokens']} | {v['cpu_seconds']:.2f} | "
             f"{e['per_token'][arm]['cpu_s_per_token']} | {e['per_token'][arm]['speedup_cpu_per_token']}× |"
             for arm, v in e["median"].items()]
    miss = "; ".join(f"row {m['row']} differs from step {m['step']} (logit margin {m['margin_old_minus_new']})"
                     for m in e.get("mismatches", [])) or "none"
    return [f"Long rows ending early (the {e['prompts']} longest prompts of the mix, {e['long_rows']} of them with "
            f"at least {s['long_prompt']} tokens forced to end from step {s['long_end_step']}; grouped prefill):", "",
            *rows, "", f"Generated ids identical with and without trimming: {e['exact_match']['identical']} "
            f"({e['exact_match']['compared']} rows compared); mismatches: {miss}.", ""]


def eval_stage(d: dict) -> list[str]:
    s, sp, same = d["settings"], d["speedup"], d["identical"]
    rows = ["| hf path | samples | generated tokens | generation CPU s | judging CPU s | stage CPU s | stage wall s |",
            "|---|---|---|---|---|---|---|"]
    for name, v in d["arms"].items():
        t = v["times"]
        rows.append(f"| {name}: `{s['arms'][name]}` | {v['samples']} | {v['generated_tokens']} | {t['generate']['cpu_s']} | "
                    f"{t['judge']['cpu_s']} | {round(t['generate']['cpu_s'] + t['judge']['cpu_s'], 1)} | "
                    f"{round(t['generate']['wall_s'] + t['judge']['wall_s'], 1)} |")
    return [f"### The evaluation stage, old vs new hf path (`bench/eval_stage.py`; {_commit(d)})", "",
            f"{d['provenance']['model']} over the main job's grid (`configs/quickstart/eval.yaml` without the cells of "
            f"trained models: {', '.join(s['benchmarks'])}; at most {s['limit']} behaviours or prompts per benchmark), greedy, "
            f"{s['max_new_tokens']} new tokens, bs {s['batch_size']}, torch threads {d['provenance'].get('torch_threads')}, "
            f"load average at end {d['provenance'].get('load_avg_at_end')}; each arm a fresh `r2d eval` (generation, "
            f"then its judges), {s.get('rounds', 1)} interleaved round(s), medians.", "", *rows, "",
            f"New / old: generation **{sp['generate_cpu_s']}×** CPU ({sp['generate_wall_s']}× wall), whole stage "
            f"**{sp['all_cpu_s']}×** CPU ({sp['all_wall_s']}× wall). Samples identical: {same['samples_identical']}/"
            f"{same['samples_compared']}; verdicts identical: {same['verdicts_identical']}/{same['verdicts_compared']}.", ""]


def decode_roofline(d: dict) -> list[str]:
    s, st, b = d["settings"], d["step"], d["bounds"]
    lb, lm, at = d["linears_at_batch"], d["linears_at_big_m"], d["attention"]
    sq = d["square_sgemm"]
    rows = ["| piece of one decode step | measured CPU ms | rate reached | best on this CPU | bound ms |",
            "|---|---|---|---|---|",
            f"| all linear maps at {s['batch']} rows ({lb['gflop']} GFLOP, {b['weights_mb']} MB of weights) | {lb['cpu_ms']} "
            f"| {lb['gflop_per_s']} GFLOP/s | {b['peak_gflop_per_s']} GFLOP/s (same weights at {lm['rows']} rows: "
            f"{lm['gflop_per_s']}; sgemm {sq['n']}: {sq['gflop_per_s']}) | {b['linears_bound_ms']} |",
            f"| SDPA over every layer's KV ({at['kv_mb_read']} MB) | {at['cpu_ms']} | {at['gb_per_s']} GB/s "
            f"| {d['read_bandwidth_gb_per_s']} GB/s (sum over {d['read_bandwidth_mb']} MB) | {b['attention_bound_ms']} |",
            f"| the rest (step - linears - SDPA) | {b['other_ms']} | | | kept / 0 |",
            f"| **whole step** (profiler: mm {st['profiled_mm_ms']}, attention {st['profiled_attention_ms']}) | "
            f"**{st['cpu_ms']}** | | | {b['best_step_ms_other_kept']} / {b['best_step_ms_other_dropped']} |"]
    out = [f"### The decode step against this CPU's limits (`bench/decode_roofline.py`; {_commit(d)})", "",
           f"{d['provenance']['model']}, one decode step at batch {s['batch']} over a {s['kv']}-token KV (in-place cache, "
           f"a quarter of the rows left-padded), torch threads {d['provenance'].get('torch_threads')}, load average at "
           f"end {d['provenance'].get('load_avg_at_end')}; best of {s['repeats']} runs for the pieces.", "", *rows, "",
           f"A decode step could be at most **{b['max_step_speedup_other_kept']}×** faster with the rest kept, "
           f"{b['max_step_speedup_other_dropped']}× with it gone (kernels at the best rate measured here, the KV and "
           f"weights read once at the measured bandwidth; such kernels would also round differently)."]
    g = d.get("generation")
    if g:
        out += ["", f"On the prefill bench's mix ({g['source']}, `{g['git_commit'][:12]}`: old loop {g['old_loop_cpu_s']} "
                f"CPU s, grouped loop {g['grouped_loop_cpu_s']}, of which prompt forward {g['prompt_forward_cpu_s']}), "
                f"generation is now **{g['now_generation_vs_old']}×** the old loop; with every decode step at its bound "
                f"it could reach {g['best_generation_vs_old_other_kept']}× (rest kept) or "
                f"{g['best_generation_vs_old_other_dropped']}× (rest gone)."]
    return out + [""]


def derive_policy(d: dict) -> list[str]:
    s, same = d["settings"], d["identical"]
    r, g, v, b = d["raw_arm"], d["policy_generated"], d["policy_derived"], d["generation_both_arms"]
    rows = ["| arm | samples generated | derived | CPU s | wall s |", "|---|---|---|---|---|",
            f"| raw (`r2d`) | {r['generated']} | | {r['cpu_s']} | {r['wall_s']} |",
            f"| `{s['policy']}`, generated | {g['generated']} | | {g['cpu_s']} | {g['wall_s']} |",
            f"| `{s['policy']}`, derived from the raw arm | {v['generated']} | {v['derived']} | {v['cpu_s']} | {v['wall_s']} |"]
    return [f"### A policy arm derived from the raw arm (`bench/derive_policy.py`; {_commit(d)})", "",
            f"`{d['provenance']['model']}` over the main job's grid (at most {s['limit']} behaviours per benchmark), "
            f"generation only, torch threads {d['provenance'].get('torch_threads')}, load average at end "
            f"{d['provenance'].get('load_avg_at_end')}.", "", *rows, "",
            f"Generation of both arms: {b['generated_cpu_s']} -> **{b['derived_cpu_s']}** CPU s. Policy samples identical "
            f"({', '.join(same['fields'])}): {same['identical']}/{same['compared']}; the first pivot's probabilities differ "
            f"by at most {same['first_pivot_max_abs_diff']:.1e} (the raw arm's pruned loop vs `model.generate`).", ""]


def render() -> str:
    out: list[str] = []
    for name, fn in (("train_throughput", train), ("generate_throughput", generate), ("kv_cache", kv_cache), ("prefill", prefill),
                     ("eval_stage", eval_stage), ("eval_stage_1thread", eval_stage),
                     ("eval_stage_interleaved", eval_stage), ("decode_roofline", decode_roofline),
                     ("derive_policy", derive_policy),
                     ("synthesis_throughput", synthesis), ("gpu_check", gpu)):
        d = _load(name)
        out += fn(d) if d else [f"### {name}: no results file yet", ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="replace the generated block in docs/benchmarks.md")
    a = ap.parse_args()
    text = render()
    if not a.write:
        print(text)
        return 0
    doc = DOC.read_text()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{DOC}: no {BEGIN} ... {END} block to replace")
    head, rest = doc.split(BEGIN, 1)
    DOC.write_text(head + BEGIN + "\n" + text + END + rest.split(END, 1)[1])
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
