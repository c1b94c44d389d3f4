"""Training time of the quickstart recipe on rows shaped like the real-reasoning data (issue 11):
3-4 reasoning steps of <= 45 words each and a <= 60-word answer (about 250 tokens a row). Runs
``r2d train`` with ``configs/quickstart/train.yaml`` for a few steps on such synthetic rows, measures
tokens/s (non-pad tokens of the trained rows / ``train_runtime``) and extrapolates one variant's time
for ``--rows`` rows and the config's epochs. Writes ``bench/results/quickstart_train_budget.json``.

    python bench/quickstart_train_budget.py [--steps 6] [--rows 300]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "quickstart_train_budget.json"
WORDS = ("the user asks about a chemistry topic and I should consider whether any part of this request could "
         "cause real harm to people or whether it is ordinary curiosity that deserves a clear helpful answer "
         "with safety context where it matters").split()


def _text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."


def make_rows(n: int, seed: int = 0) -> list[dict]:
    from r2d.pivots import RETHINK, SAFE, UNSAFE
    from r2d.reasoning import render_parts

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        harmful = rng.random() < 0.5
        k = rng.randint(3, 4)
        pivots = [rng.choice([SAFE, RETHINK, UNSAFE] if harmful else [SAFE, SAFE, RETHINK]) for _ in range(k)]
        steps = [(_text(rng, 30, 45), p) for p in pivots]
        content = render_parts(steps, _text(rng, 40, 60), UNSAFE if harmful else SAFE)
        rows.append({"messages": [{"role": "user", "content": _text(rng, 10, 25)},
                                  {"role": "assistant", "content": content}],
                     "label": "harmful" if harmful else "benign"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--rows", type=int, default=300, help="rows of the real job, for the extrapolation")
    ap.add_argument("--config", default=str(ROOT / "configs" / "quickstart" / "train.yaml"))
    ap.add_argument("--flags", nargs="*", default=[], help="extra r2d train flags (e.g. --no-reasoning)")
    args = ap.parse_args()

    from r2d.cli import main as r2d

    cfg = yaml.safe_load(Path(args.config).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in make_rows(max(args.steps * cfg["batch_size"], 32))))
        t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
        rc = r2d(["train", "--config", args.config, "--data", str(data), "--output", str(Path(tmp) / "m"),
                  "--max-steps", str(args.steps), "--save-steps", "0", "--logging-steps", "1", *args.flags])
        wall, c1 = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF)
        cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        assert rc == 0
        meta = json.loads((Path(tmp) / "m" / "r2d_train_meta.json").read_text())
    per_row = meta["n_tokens"] / meta["n_examples"]
    trained = per_row * args.steps * cfg["batch_size"]
    tps = trained / meta["metrics"]["train_runtime"]
    est = args.rows * cfg["epochs"] * per_row / tps
    res = {"steps": args.steps, "batch_size": cfg["batch_size"], "max_seq_len": cfg["max_seq_len"],
           "epochs": cfg["epochs"], "flags": args.flags, "tokens_per_row": round(per_row, 1),
           "label_tokens_per_row": round(meta["n_label_tokens"] / meta["n_examples"], 1),
           "train_runtime_s": meta["metrics"]["train_runtime"], "wall_s": round(wall, 1),
           "tokens_per_s": round(tps, 1), "rows": args.rows, "estimated_variant_s": round(est),
           "cpu_s": round(cpu, 1), "cpu_share": round(cpu / wall, 2),
           "note": "cpu_share < torch threads means a shared CPU: unshared time ~ wall * cpu_share / threads"}
    print("| tokens/row | tokens/s | steps x batch | est. one variant (rows x epochs) | CPU s / wall s |")
    print("|---|---|---|---|---|")
    print(f"| {per_row:.0f} | {tps:.0f} | {args.steps} x {cfg['batch_size']} | {est / 60:.1f} min "
          f"({args.rows} x {cfg['epochs']}) | {cpu:.0f} / {wall:.0f} |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
