"""Padding work in the pruned greedy loop: the prompt forward per length group and the trimmed decode KV.

On the main job's prompt mix (the same mix, order and batching as ``bench/generate_throughput.py``; the A/B
runner and id capture of ``bench/kv_cache.py``; ``--mix-limit`` behaviours per benchmark, needs ``R2D_DATA_DIR``):

1. The prompt forward alone (the loop with one new token): ``prefill="padded"`` (one forward over the left-padded
   batch, as ``model.generate``) vs ``"grouped"`` (``r2d.backends.prefill``), interleaved ``--repeats`` times;
   CPU seconds, and the padded, real and grouped token counts of every batch.
2. The whole loop (``--new-tokens``): old (padded, no trimming) vs grouped prefill vs grouped prefill with
   ``trim_padding`` (the decode KV loses the columns that are padding for every live row), interleaved; tokens,
   CPU seconds, CPU seconds per generated token, ratios, and an exact-match check of the generated ids and
   completions against the old arm. A row whose ids differ is reported with its first differing step and the
   logit margin there (a batch-1 forward of the prompt and the old arm's tokens: old token minus new token).
3. Long prompts that end early: on the mix, the base model runs most rows to the token limit, so rows are rarely
   dropped and the long (jailbreak-template) rows, whose padding-free columns every other row carries, are the
   last to go; trimming has nothing to cut. A model that refuses templates briefly (as a trained R2D model may)
   ends them first. Simulated on the mix's ``--batch-size`` longest prompts: a logits processor forces the end
   token for rows of at least ``--long-prompt`` tokens from step ``--long-end-step`` on; grouped prefill with
   vs without ``trim_padding``, interleaved, with the same exact-match check.

CPU time (``time.process_time``) is the measure (a shared machine: wall time is recorded with the load average).
Prints a table and writes ``bench/results/prefill.json`` with the git commit.

    R2D_DATA_DIR=/path/to/data OMP_NUM_THREADS=1 python bench/prefill.py [--mix-limit 8] [--new-tokens 160] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_throughput as gt  # noqa: E402  (the mix flags and the table printer)
import kv_cache as kvb  # noqa: E402  (the interleaved A/B runner with id capture)

PREFILL_ARMS = {"padded": {"prefill": "padded", "trim_padding": False},
                "grouped": {"prefill": "grouped", "trim_padding": False}}
TRIM_ARMS = {"grouped": {"prefill": "grouped", "trim_padding": False},
             "grouped+trim": {"prefill": "grouped", "trim_padding": True}}
LOOP_ARMS = {"old": {"prefill": "padded", "trim_padding": False},
             "grouped": {"prefill": "grouped", "trim_padding": False},
             "grouped+trim": {"prefill": "grouped", "trim_padding": True}}


def token_counts(backend, limit: int, batch: int) -> dict:
    """Per batch of the mix: rows, padded width, real prompt tokens, padded tokens, and the tokens of the
    grouped forwards (each group padded to its own longest row)."""
    import r2d.backends.prefill as prefill
    from r2d.backends.base import GenParams

    seen: list[dict] = []
    real = prefill.grouped_prefill

    def recording(model, input_ids, attention, position, cache, groups):
        lengths = attention.sum(-1).tolist()
        seen.append({"rows": len(lengths), "width": input_ids.shape[1], "real": sum(lengths),
                     "padded": len(lengths) * input_ids.shape[1],
                     "grouped": sum(len(g) * max(lengths[i] for i in g) for g in groups),
                     "groups": [len(g) for g in groups]})
        return real(model, input_ids, attention, position, cache, groups)

    prefill.grouped_prefill = recording
    backend.prefill, backend.trim_padding = "grouped", False
    try:
        gt._run(backend, [c for _, c, _, _ in gt.main_job_mix(limit)], GenParams(max_new_tokens=1, batch_size=batch), batch)
    finally:
        prefill.grouped_prefill = real
    return {"batches": seen, **{k: sum(b[k] for b in seen) for k in ("real", "padded", "grouped")}}


def end_long_rows(min_prompt: int, after: int, pad: int, eot: int):
    """A logits-processor factory (one processor per batch): the end token for rows whose prompt has at least
    ``min_prompt`` tokens (counted from the first non-pad column), from the ``after``-th generated token on."""
    from transformers import LogitsProcessor

    class EndLong(LogitsProcessor):
        width = None

        def __call__(self, input_ids, scores):
            self.width = self.width or input_ids.shape[1]
            if input_ids.shape[1] - self.width < after:
                return scores
            long = self.width - (input_ids[:, :self.width] != pad).int().argmax(-1) >= min_prompt
            scores = scores.clone()
            scores[long, eot] = float("inf")
            return scores

    return lambda tok: EndLong()


def margin(backend, prompt: list[int], old: list[int], new: list[int]) -> dict:
    """Where two generations first differ, and the logit margin there (old token minus new token) from a
    batch-1 forward of the prompt and the old generation's tokens up to that step."""
    import torch

    step = next(k for k, (a, b) in enumerate(zip(old, new)) if a != b)
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([prompt + old[:step]])).logits[0, -1].float()
    top2 = logits.topk(2).values
    return {"step": step, "old_token": old[step], "new_token": new[step],
            "margin_old_minus_new": round(float(logits[old[step]] - logits[new[step]]), 6),
            "top2_gap": round(float(top2[0] - top2[1]), 6)}


def ratios(med: dict, first: str) -> dict:
    """Per arm: CPU seconds per generated token, and the old arm's CPU s/token over its own (>1: faster)."""
    base = med[first]["cpu_seconds"] / med[first]["tokens"]
    return {a: {"cpu_s_per_token": round(m["cpu_seconds"] / m["tokens"], 5),
                "speedup_cpu_per_token": round(base / (m["cpu_seconds"] / m["tokens"]), 3)} for a, m in med.items()}


def arm_rows(res: dict, arms: dict, label: str, base: str) -> list[tuple[str, str]]:
    """Table rows of an A/B section: per arm (``label`` formats ``{arm}``) tokens, CPU s and CPU s per token."""
    med, per = res["median"], res["per_token"]
    return [(label.format(arm=arm), f"{med[arm]['tokens']} tok, {med[arm]['cpu_seconds']:.2f} CPU s, "
                                    f"{per[arm]['cpu_s_per_token']} CPU s/tok ({per[arm]['speedup_cpu_per_token']}x vs "
                                    f"{base}), {med[arm]['tok_per_s']} tok/s wall") for arm in arms]


def diagnose(backend, res: dict, first: str) -> list[dict]:
    out = []
    for arm, mm in res["exact_match"]["per_arm"].items():
        for row in mm["mismatched_ids"]:
            out.append({"arm": arm, "row": row, "prompt_tokens": len(res["prompt_ids"][row]),
                        **margin(backend, res["prompt_ids"][row], res["ids"][first][row], res["ids"][arm][row])})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    gt.add_mix_args(ap)
    ap.set_defaults(new_tokens=160)
    ap.add_argument("--long-prompt", type=int, default=300, help="section 3: prompt tokens of a 'long' row")
    ap.add_argument("--long-end-step", type=int, default=32, help="section 3: the step from which long rows end")
    ap.add_argument("--repeats", type=int, default=1, help="interleaved A/B rounds of the whole loop")
    ap.add_argument("--prefill-repeats", type=int, default=2, help="interleaved A/B rounds of the prompt forward")
    ap.add_argument("--quick", action="store_true", help="a tiny smoke run (numbers meaningless)")
    ap.add_argument("--output", default=str(Path(__file__).parent / "results" / "prefill.json"))
    a = ap.parse_args()
    if a.quick:
        a.mix_limit, a.new_tokens, a.repeats, a.prefill_repeats = 1, 8, 1, 1

    from r2d.backends.base import GenParams
    from r2d.backends.hf import HFBackend

    t_all = time.perf_counter()

    def stage(msg: str) -> None:
        print(f"[{time.perf_counter() - t_all:6.1f}s] {msg}", file=sys.stderr, flush=True)

    backend = HFBackend(a.model, progress=False, decode="pruned", device="cpu")  # the provenance says cpu
    mix = gt.main_job_mix(a.mix_limit)
    stage("token counts of the mix's prompt forwards")
    counts = token_counts(backend, a.mix_limit, a.batch_size)
    stage("prompt forward only (1 new token): padded vs grouped")
    pre = kvb.compare_arms(backend, mix, GenParams(max_new_tokens=1, batch_size=a.batch_size), a.prefill_repeats,
                           PREFILL_ARMS)
    pre.pop("prompt_ids"), pre.pop("ids")
    stage(f"whole loop ({a.new_tokens} new tokens): old vs grouped vs grouped+trim")
    loop = kvb.compare_arms(backend, mix, GenParams(max_new_tokens=a.new_tokens, batch_size=a.batch_size), a.repeats,
                            LOOP_ARMS)
    loop["mismatches"] = diagnose(backend, loop, "old")
    loop.pop("prompt_ids"), loop.pop("ids")
    loop["per_token"] = ratios(loop["median"], "old")
    stage(f"long prompts ending at step {a.long_end_step}: grouped vs grouped+trim")
    longest = sorted(mix, key=lambda m: -len(backend.prompt_ids(m[1])))[:a.batch_size]
    end = end_long_rows(a.long_prompt, a.long_end_step, backend.tokenizer.pad_token_id,
                        backend.tokenizer.convert_tokens_to_ids("<|im_end|>"))
    early = kvb.compare_arms(backend, longest, GenParams(max_new_tokens=a.new_tokens, batch_size=a.batch_size,
                                                         extra={"logits_processors": [end]}), a.repeats, TRIM_ARMS)
    early["long_rows"] = sum(len(p) >= a.long_prompt for p in early["prompt_ids"])
    early["mismatches"] = diagnose(backend, early, "grouped")
    early.pop("prompt_ids"), early.pop("ids")
    early["per_token"] = ratios(early["median"], "grouped")
    stage("done")
    pm = pre["median"]
    result = {"provenance": gt.cpu_provenance(
                  a.model, attn_implementation=getattr(backend.model.config, "_attn_implementation", None)),
              "settings": vars(a), "tokens": counts, "prefill": pre,
              "prefill_padded_over_grouped_cpu": round(pm["padded"]["cpu_seconds"] / pm["grouped"]["cpu_seconds"], 3),
              "loop": loop, "long_rows_end_early": early, "total_seconds": round(time.perf_counter() - t_all, 1)}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=2))

    em = loop["exact_match"]
    rows = [(f"prompt tokens of the mix ({pre['prompts']} prompts, bs {a.batch_size})",
             f"real {counts['real']}, padded batch {counts['padded']}, grouped {counts['grouped']}"),
            ("prompt forward, padded batch", f"{pm['padded']['cpu_seconds']:.2f} CPU s"),
            ("prompt forward, length groups", f"{pm['grouped']['cpu_seconds']:.2f} CPU s "
                                              f"({result['prefill_padded_over_grouped_cpu']}x less CPU)"),
            ("  first tokens identical", f"{pre['exact_match']['identical']} ({pre['exact_match']['compared']} compared)")]
    rows += arm_rows(loop, LOOP_ARMS, f"whole loop, {{arm}} ({a.new_tokens} new)", "old")
    rows.append(("  generated ids identical to old", f"{em['identical']} ({em['compared']} rows compared; mismatched "
                                                     f"ids {em['mismatched_ids']}, completions {em['mismatched_completions']})"))
    rows += arm_rows(early, TRIM_ARMS, f"{early['long_rows']} long rows end at step {a.long_end_step}, {{arm}}", "untrimmed")
    rows.append(("  generated ids identical (trim vs not)", f"{early['exact_match']['identical']} "
                                                            f"({early['exact_match']['compared']} rows compared)"))
    rows += [(f"  mismatch: {m['arm']} row {m['row']}", f"step {m['step']}, margin {m['margin_old_minus_new']}")
             for m in loop["mismatches"] + early["mismatches"]]
    gt.print_table(rows, result, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
