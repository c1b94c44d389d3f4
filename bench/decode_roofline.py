"""The pruned loop's decode step against this CPU's own limits: how much faster could it get at all?

Issue 15 asks for the evaluation stage 2x faster with identical outputs. After the in-place KV cache and the
grouped prompt forward, generation is mostly decode steps (one token for every live row), and each step is
matrix products at M = batch rows plus attention over the KV. This bench puts numbers on the headroom:

1. The real decode step (``bench/kv_cache.py``'s step: r2d's in-place cache, ``--batch`` rows over a
   ``--kv``-token KV, a quarter of the rows left-padded), CPU ms per step, and the profiler's split into
   ``aten::mm`` and attention.
2. The same step's pieces in isolation: every linear layer of the model (the real weights, the LM head
   included) applied to ``--batch`` rows, and SDPA at the step's decode shapes (query heads grouped on the
   key/value heads, as transformers runs GQA for one new token) over the KV, for every layer.
3. What this CPU can do, measured here: the same linears on ``--big-m`` rows (the best GFLOP/s these weight
   shapes reach), one square 2048 sgemm, and the read bandwidth of a 512 MB tensor.

Bounds: the linears can at best run at the big-M rate (and can never beat reading their weights once per
step at the measured bandwidth); attention can at best read the KV once at that bandwidth. ``best step`` =
those two bounds, with the rest of the step (norms, rotary, sampling) kept as measured or dropped entirely.
With the prompt-forward share from ``bench/results/prefill.json`` (same mix, same threads) this gives the
largest speed-up of the whole generation that any faster decode kernel could buy on this machine, to set
beside the 2x target. Faster kernels would also change float rounding, which greedy identity forbids unless
re-checked: the bound is optimistic on both counts.

CPU time (``time.process_time``) throughout; run with ``OMP_NUM_THREADS=1`` (as the prefill bench was).

    OMP_NUM_THREADS=1 python bench/decode_roofline.py [--batch 32] [--kv 500] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_throughput as gt  # noqa: E402  (the table printer)
import kv_cache as kvb  # noqa: E402  (the real decode step, timed and profiled)

RESULTS = Path(__file__).parent / "results"


def _best_cpu(fn, repeats: int) -> float:
    """The smallest CPU time of ``repeats`` calls after one warm-up call (seconds)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def linears(model) -> list:
    """The weight of every linear map a decode step applies: the projections and the LM head (one ``Linear``
    module, tied to the embedding or not; the embedding itself is a lookup, not a product)."""
    import torch

    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]


def linear_rate(weights: list, m: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    xs = {w.shape[1]: torch.randn(m, w.shape[1]) for w in weights}

    def run():
        for w in weights:
            F.linear(xs[w.shape[1]], w)

    s = _best_cpu(run, repeats)
    flops = sum(2 * m * w.shape[0] * w.shape[1] for w in weights)
    return {"rows": m, "cpu_ms": round(1000 * s, 1), "gflop": round(flops / 1e9, 2),
            "gflop_per_s": round(flops / s / 1e9, 1)}


def square_sgemm(n: int, repeats: int) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    s = _best_cpu(lambda: a @ b, repeats)
    return round(2 * n ** 3 / s / 1e9, 1)


def read_bandwidth(mb: int, repeats: int) -> float:
    import torch

    t = torch.ones(mb * 2 ** 20 // 4)
    s = _best_cpu(lambda: t.sum(), repeats)
    return round(t.numel() * 4 / s / 1e9, 2)


def attention(config, batch: int, kv: int, repeats: int) -> dict:
    """SDPA over all layers at the decode step's shapes: one query per row, its heads grouped on the key/value
    heads, a float mask over ``kv`` positions with a quarter of the rows left-padded by a fifth."""
    import torch
    import torch.nn.functional as F

    heads, kvh = config.num_attention_heads, config.num_key_value_heads
    hd = getattr(config, "head_dim", None) or config.hidden_size // heads
    layers = config.num_hidden_layers
    q = torch.randn(batch, kvh, heads // kvh, hd)
    ks = [torch.randn(batch, kvh, kv, hd) for _ in range(layers)]  # one KV per layer: none stays in cache
    vs = [torch.randn(batch, kvh, kv, hd) for _ in range(layers)]
    mask = torch.zeros(batch, 1, 1, kv)
    mask[: batch // 4, ..., : kv // 5] = float("-inf")

    def run():
        for k, v in zip(ks, vs):
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

    s = _best_cpu(run, repeats)
    nbytes = 2 * layers * batch * kvh * kv * hd * 4
    return {"cpu_ms": round(1000 * s, 1), "kv_mb_read": round(nbytes / 2 ** 20, 1),
            "gb_per_s": round(nbytes / s / 1e9, 2)}


def generation_share(path: Path) -> dict | None:
    """The prompt forward's and the decode loop's CPU seconds of the grouped arm in ``prefill.json``."""
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    try:
        old = d["loop"]["median"]["old"]["cpu_seconds"]
        loop = d["loop"]["median"]["grouped"]["cpu_seconds"]
        pre = d["prefill"]["median"]["grouped"]["cpu_seconds"]
    except KeyError:
        return None
    return {"source": str(path.relative_to(Path(__file__).parent.parent)), "git_commit": d["provenance"]["git_commit"],
            "old_loop_cpu_s": old, "grouped_loop_cpu_s": loop, "prompt_forward_cpu_s": round(pre, 2),
            "decode_cpu_s": round(loop - pre, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--kv", type=int, default=500)
    ap.add_argument("--big-m", type=int, default=512, help="rows for the linears' best rate")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (numbers meaningless)")
    ap.add_argument("--output", default=str(RESULTS / "decode_roofline.json"))
    a = ap.parse_args()
    if a.quick:
        a.batch, a.kv, a.big_m, a.repeats = 4, 64, 32, 1

    import torch

    from r2d.backends.hf import HFBackend

    t_all = time.perf_counter()
    backend = HFBackend(a.model, progress=False, decode="pruned")
    model, config = backend.model, backend.model.config
    with torch.inference_mode():
        step = kvb.bench_profile(backend, a.batch, a.kv, warm=2, timed=a.repeats, profiled=2, kinds=("buffer",))
        weights = linears(model)
        small = linear_rate(weights, a.batch, a.repeats)
        big = linear_rate(weights, a.big_m, max(1, a.repeats // 2))
        attn = attention(config, a.batch, a.kv, a.repeats)
    n_sq, bw_mb = (256, 64) if a.quick else (2048, 512)
    sgemm = square_sgemm(n_sq, a.repeats)
    bw = read_bandwidth(bw_mb, a.repeats)

    buf = step["buffer"]
    step_ms = buf["step_cpu_ms_median"]
    mm_ms, attn_prof_ms = buf["self_cpu_ms_per_step"]["mm"], buf["self_cpu_ms_per_step"]["attention"]
    other_ms = max(0.0, round(step_ms - small["cpu_ms"] - attn["cpu_ms"], 1))
    weight_bytes = sum(w.numel() * w.element_size() for w in weights)
    peak = max(big["gflop_per_s"], sgemm)
    lin_bound = round(max(1000 * small["gflop"] / peak, 1000 * weight_bytes / 1e9 / bw), 1)
    attn_bound = round(1000 * attn["kv_mb_read"] * 2 ** 20 / 1e9 / bw, 1)
    best_keep = round(lin_bound + attn_bound + other_ms, 1)
    best_drop = round(lin_bound + attn_bound, 1)
    bounds = {"peak_gflop_per_s": peak, "weights_mb": round(weight_bytes / 2 ** 20, 1),
              "linears_bound_ms": lin_bound, "attention_bound_ms": attn_bound, "other_ms": other_ms,
              "best_step_ms_other_kept": best_keep, "best_step_ms_other_dropped": best_drop,
              "max_step_speedup_other_kept": round(step_ms / best_keep, 2),
              "max_step_speedup_other_dropped": round(step_ms / best_drop, 2)}
    share = generation_share(RESULTS / "prefill.json")
    if share:
        for tag, best in (("other_kept", best_keep), ("other_dropped", best_drop)):
            gen = share["prompt_forward_cpu_s"] + share["decode_cpu_s"] * best / step_ms
            share[f"best_generation_vs_old_{tag}"] = round(share["old_loop_cpu_s"] / gen, 2)
        share["now_generation_vs_old"] = round(share["old_loop_cpu_s"] / share["grouped_loop_cpu_s"], 2)
    result = {"provenance": gt.cpu_provenance(a.model),
              "settings": vars(a),
              "step": {"cpu_ms": step_ms, "profiled_mm_ms": mm_ms, "profiled_attention_ms": attn_prof_ms,
                       "runs_ms": buf["step_cpu_ms_runs"]},
              "linears_at_batch": small, "linears_at_big_m": big, "attention": attn,
              "square_sgemm": {"n": n_sq, "gflop_per_s": sgemm},
              "read_bandwidth_mb": bw_mb, "read_bandwidth_gb_per_s": bw, "bounds": bounds,
              "generation": share, "total_seconds": round(time.perf_counter() - t_all, 1)}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))

    rows = [(f"decode step, bs {a.batch}, KV {a.kv} (in-place cache)",
             f"{step_ms} CPU ms (profiler: mm {mm_ms} ms, attention {attn_prof_ms} ms)"),
            (f"all linears at {a.batch} rows (real weights, LM head once)",
             f"{small['cpu_ms']} ms, {small['gflop']} GFLOP, {small['gflop_per_s']} GFLOP/s"),
            (f"same linears at {a.big_m} rows", f"{big['gflop_per_s']} GFLOP/s"),
            (f"square sgemm {n_sq}", f"{sgemm} GFLOP/s"),
            (f"read bandwidth ({bw_mb} MB sum)", f"{bw} GB/s"),
            ("SDPA, all layers, decode shapes", f"{attn['cpu_ms']} ms, {attn['kv_mb_read']} MB of KV, "
                                                 f"{attn['gb_per_s']} GB/s"),
            ("bound: linears (best rate, or weights read once)", f"{lin_bound} ms"),
            ("bound: attention (KV read once)", f"{attn_bound} ms"),
            ("rest of the step (measured step - linears - SDPA)", f"{other_ms} ms"),
            ("best step (rest kept / rest dropped)",
             f"{best_keep} / {best_drop} ms: at most {bounds['max_step_speedup_other_kept']}x / "
             f"{bounds['max_step_speedup_other_dropped']}x faster")]
    if share:
        rows.append(("generation vs the old loop (prefill.json mix): now / best possible",
                     f"{share['now_generation_vs_old']}x / {share['best_generation_vs_old_other_kept']}x "
                     f"(rest kept), {share['best_generation_vs_old_other_dropped']}x (rest dropped)"))
    gt.print_table(rows, result, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
