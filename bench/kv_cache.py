"""The pruned greedy loop's KV cache: transformers' ``DynamicCache`` vs r2d's in-place ``BufferLayer``.

1. A/B on the main job's prompt mix (the same mix, order and batching as ``bench/generate_throughput.py``,
   whose helpers are imported; ``--mix-limit`` behaviours per benchmark, needs ``R2D_DATA_DIR``): the hf
   backend with ``decode="pruned"`` and ``kv_cache="dynamic"`` vs ``kv_cache="buffer"``, interleaved
   ``--repeats`` times; tokens, CPU seconds, tokens per CPU second, their ratio, and an exact-match check of
   the generated token ids (captured from the loop) and of the completions (text, token count, finish reason).
2. ``torch.profiler`` of single decode steps at ``--profile-batch`` rows over a ``--profile-kv``-token KV
   (one prompt's prefill repeated to every row; the first ``batch // 4`` rows left-padded by a fifth of the
   width, as in a mixed batch), for each cache: self-CPU time per step of ``aten::cat``, ``aten::mm``,
   attention (``scaled_dot_product`` ops) and ``aten::copy_``, and the step's CPU time measured without the
   profiler (median of ``--timed-steps``).

CPU time (``time.process_time``) is the measure: the machine is shared, wall time follows the other jobs
(recorded, with the load average). Prints a table and writes ``bench/results/kv_cache.json`` with the git commit.

    R2D_DATA_DIR=/path/to/data OMP_NUM_THREADS=1 python bench/kv_cache.py [--mix-limit 8] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_throughput as gt  # noqa: E402  (the mix and the runner-like batching, shared with that bench)

CACHES = ("dynamic", "buffer")  # old first: the order of each interleaved round
OPS = {"cat": ("aten::cat",), "mm": ("aten::mm",), "attention": ("scaled_dot_product",), "copy_": ("aten::copy_",)}


def compare_arms(backend, mix: list, params, repeats: int, arms: dict[str, dict]) -> dict:
    """The hf backend's pruned loop on ``mix`` (``gt.main_job_mix``'s tuples) under each arm (backend attributes
    to set), interleaved ``repeats`` times: tokens, CPU and wall seconds per run and their medians, and an
    exact-match check of the generated ids (captured from the loop) and of the completions against the first
    arm's (shared with bench/prefill.py)."""
    from r2d.backends.base import GenParams

    chats, batch = [c for _, c, _, _ in mix], params.batch_size
    ids: list[list[int]] = []
    prompt_ids: list[list[int]] = []
    real = backend._greedy_pruned

    def recording(input_ids, attention, *a, **k):  # the prompt and generated ids of every batch row, in call order
        seqs = real(input_ids, attention, *a, **k)
        ids.extend(seqs[:, input_ids.shape[1]:].tolist())
        prompt_ids.extend(r[m.bool()].tolist() for r, m in zip(input_ids, attention))
        return seqs

    backend._greedy_pruned = recording
    backend.generate(chats[:2], GenParams(max_new_tokens=4, batch_size=2))  # warm-up
    runs: dict[str, list] = {a: [] for a in arms}
    outs: dict[str, tuple] = {}
    text_mismatch: dict[str, list[int]] = {a: [] for a in arms}
    id_mismatch: dict[str, list[int]] = {a: [] for a in arms}
    first = next(iter(arms))
    for _ in range(repeats):  # interleaved so drifting machine load hits every arm alike
        for name, attrs in arms.items():
            for k, v in attrs.items():
                setattr(backend, k, v)
            ids.clear()
            prompt_ids.clear()
            out, dt, cpu = gt._run(backend, chats, params, batch)
            if len(ids) != len(chats):
                raise SystemExit(f"bench: the pruned loop ran for {len(ids)} of {len(chats)} prompts "
                                 "(the backend fell back to model.generate)")
            runs[name].append({**gt._stats(out, dt, cpu), "load_avg_1m": round(os.getloadavg()[0], 1)})
            outs.setdefault(name, (out, list(ids), list(prompt_ids)))
            ref_out, ref_ids, _ = outs[first]
            text_mismatch[name] += gt._same(ref_out, out)
            id_mismatch[name] += [i for i, (x, y) in enumerate(zip(ref_ids, ids)) if x != y]
    backend._greedy_pruned = real
    med = {a: {k: statistics.median(r[k] for r in rs) for k in ("tokens", "seconds", "cpu_seconds", "tok_per_s", "tok_per_cpu_s")}
           for a, rs in runs.items()}
    lengths = [c.completion_tokens or 0 for c in outs[first][0]]
    bad_ids = sorted({i for m in id_mismatch.values() for i in m})
    bad_text = sorted({i for m in text_mismatch.values() for i in m})
    return {"prompts": len(chats),
            "per_attack": {k: sum(1 for a, *_ in mix if a == k) for k in dict.fromkeys(a for a, *_ in mix)},
            "completion_tokens_min_median_max": [min(lengths), statistics.median(lengths), max(lengths)],
            "arms": arms, "runs": runs, "median": med,
            "exact_match": {"identical": not bad_ids and not bad_text,
                            "compared": len(chats) * repeats * (len(arms) - 1),  # every other arm against the first
                            "mismatched_ids": bad_ids, "mismatched_completions": bad_text,
                            "per_arm": {a: {"mismatched_ids": sorted(set(id_mismatch[a])),
                                            "mismatched_completions": sorted(set(text_mismatch[a]))}
                                        for a in list(arms)[1:]}},
            "ids": {a: o[1] for a, o in outs.items()},  # each arm's first run: generated ids per row (call order)
            "prompt_ids": outs[first][2]}  # the prompt ids of those rows (for diagnosing a mismatch)


def bench_mix(backend, limit: int, new_tokens: int, batch: int, repeats: int) -> dict:
    from r2d.backends.base import GenParams

    res = compare_arms(backend, gt.main_job_mix(limit), GenParams(max_new_tokens=new_tokens, batch_size=batch), repeats,
                       {c: {"kv_cache": c} for c in CACHES})
    res.pop("ids"), res.pop("prompt_ids")
    med = res["median"]
    return {**res,
            "buffer_over_dynamic_tok_per_cpu_s": round(med["buffer"]["tok_per_cpu_s"] / med["dynamic"]["tok_per_cpu_s"], 3),
            "buffer_over_dynamic_tok_per_s": round(med["buffer"]["tok_per_s"] / med["dynamic"]["tok_per_s"], 3)}


def _cache(kind: str, config, layers: int, capacity: int):
    from transformers import DynamicCache

    from r2d.backends.kv_cache import buffer_cache

    return DynamicCache(config=config) if kind == "dynamic" else buffer_cache(layers, capacity)


def bench_profile(backend, batch: int, kv: int, warm: int, timed: int, profiled: int,
                  kinds: tuple[str, ...] = CACHES) -> dict:
    """Decode steps as ``HFBackend._greedy_pruned`` runs them (one new token per row, growing mask, position
    ids, the cache written by the model), over a KV of ``kv`` positions built from one prefill, for each cache
    kind in ``kinds``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    model = backend.model
    n_layers = model.config.num_hidden_layers
    torch.manual_seed(0)
    prompt = torch.randint(0, model.config.vocab_size, (1, kv))
    with torch.inference_mode():
        pre = _cache("dynamic", model.config, n_layers, kv)
        c0 = time.process_time()
        model(input_ids=prompt, cache=pre, use_cache=True, logits_to_keep=1)
        prefill_cpu = time.process_time() - c0
        kvs = [(layer.keys, layer.values) for layer in pre.layers]
    mask0 = torch.ones(batch, kv, dtype=torch.long)
    mask0[: batch // 4, : kv // 5] = 0  # some left-padded rows, as in a mixed batch
    steps = warm + timed + profiled
    res: dict = {"batch": batch, "kv_tokens": kv, "padded_rows": batch // 4, "pad_width": kv // 5,
                 "prefill_cpu_s_one_row": round(prefill_cpu, 2), "warmup_steps": warm, "timed_steps": timed,
                 "profiled_steps": profiled}
    for kind in kinds:
        with torch.inference_mode():
            cache = _cache(kind, model.config, n_layers, kv + steps)
            for i, (k, v) in enumerate(kvs):  # the prefill's keys/values, repeated to every row
                cache.layers[i].update(k.expand(batch, -1, -1, -1).contiguous(), v.expand(batch, -1, -1, -1).contiguous())
            mask, last = mask0, (mask0.cumsum(-1) - 1)[:, -1]
            nxt = torch.randint(0, model.config.vocab_size, (batch,))

            def step():
                nonlocal mask, last
                mask = torch.cat([mask, mask.new_ones((batch, 1))], dim=1)
                last = last + 1
                model(input_ids=nxt[:, None], attention_mask=mask, position_ids=last[:, None], cache=cache, use_cache=True)

            for _ in range(warm):
                step()
            times = []
            for _ in range(timed):
                c0 = time.process_time()
                step()
                times.append(time.process_time() - c0)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(profiled):
                    step()
            assert cache.get_seq_length() == kv + steps, (kind, cache.get_seq_length())
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        per_step = lambda us: round(us / profiled / 1000, 2)  # microseconds over the run -> ms per step
        ops = {name: per_step(sum(e.self_cpu_time_total for e in events if any(p in e.key for p in pats)))
               for name, pats in OPS.items()}
        top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
        res[kind] = {"step_cpu_ms_median": round(1000 * statistics.median(times), 1),
                     "step_cpu_ms_runs": [round(1000 * t, 1) for t in times],
                     "profiled_self_cpu_ms_per_step": per_step(total),
                     "self_cpu_ms_per_step": ops,
                     "self_cpu_share_pct": {k: round(100 * v / per_step(total), 1) for k, v in ops.items()},
                     "top_ops": [{"op": e.key, "self_cpu_ms_per_step": per_step(e.self_cpu_time_total),
                                  "calls_per_step": e.count / profiled} for e in top]}
        del cache
    if set(CACHES) <= set(kinds):
        d, b = res["dynamic"], res["buffer"]
        res["buffer_over_dynamic_step_cpu"] = round(b["step_cpu_ms_median"] / d["step_cpu_ms_median"], 3)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gt.add_mix_args(ap)
    ap.add_argument("--repeats", type=int, default=1, help="interleaved A/B rounds on the mix")
    ap.add_argument("--profile-batch", type=int, default=32)
    ap.add_argument("--profile-kv", type=int, default=500, help="KV positions before the profiled steps")
    ap.add_argument("--warmup-steps", type=int, default=2)
    ap.add_argument("--timed-steps", type=int, default=6)
    ap.add_argument("--profiled-steps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (numbers meaningless)")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "kv_cache.json"))
    a = ap.parse_args()
    if a.quick:
        a.mix_limit, a.new_tokens, a.profile_batch, a.profile_kv, a.timed_steps = 1, 8, 4, 64, 2

    from r2d.backends.hf import HFBackend

    t_all = time.perf_counter()

    def stage(msg: str) -> None:
        print(f"[{time.perf_counter() - t_all:6.1f}s] {msg}", file=sys.stderr, flush=True)

    backend = HFBackend(a.model, progress=False, decode="pruned")
    stage(f"profile: decode steps at batch {a.profile_batch} over a {a.profile_kv}-token KV, dynamic vs buffer")
    prof = bench_profile(backend, a.profile_batch, a.profile_kv, a.warmup_steps, a.timed_steps, a.profiled_steps)
    stage("pruned loop on the main job's mix: dynamic vs buffer")
    mix = bench_mix(backend, a.mix_limit, a.new_tokens, a.batch_size, a.repeats)
    stage("done")
    result = {"provenance": gt.cpu_provenance(
                  a.model, attn_implementation=getattr(backend.model.config, "_attn_implementation", None)),
              "settings": vars(a), "mix": mix, "profile": prof, "total_seconds": round(time.perf_counter() - t_all, 1)}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))

    md, mb = mix["median"]["dynamic"], mix["median"]["buffer"]
    em = mix["exact_match"]
    rows = [(f"pruned loop, DynamicCache ({mix['prompts']} prompts, bs {a.batch_size}, {a.new_tokens} new)",
             f"{md['tokens']} tok, {md['cpu_seconds']} CPU s, {md['tok_per_cpu_s']} tok/CPU-s ({md['tok_per_s']} tok/s wall)"),
            ("pruned loop, BufferLayer (same prompts)",
             f"{mb['tokens']} tok, {mb['cpu_seconds']} CPU s, {mb['tok_per_cpu_s']} tok/CPU-s ({mb['tok_per_s']} tok/s wall)"),
            ("  buffer / dynamic", f"{mix['buffer_over_dynamic_tok_per_cpu_s']}x tok/CPU-s, "
                                   f"{mix['buffer_over_dynamic_tok_per_s']}x tok/s wall"),
            ("  outputs identical (ids and completions)",
             f"{em['identical']} ({em['compared']} prompt pairs; mismatched ids {em['mismatched_ids']}, "
             f"completions {em['mismatched_completions']})")]
    for kind in CACHES:
        p = prof[kind]
        ops = ", ".join(f"{k} {v} ms ({p['self_cpu_share_pct'][k]}%)" for k, v in p["self_cpu_ms_per_step"].items())
        rows.append((f"decode step, {kind}, bs {prof['batch']}, KV {prof['kv_tokens']}",
                     f"{p['step_cpu_ms_median']} CPU ms/step; profiled self-CPU per step: {ops}"))
    rows.append(("  buffer / dynamic step CPU time", f"{prof['buffer_over_dynamic_step_cpu']}x"))
    gt.print_table(rows, result, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
