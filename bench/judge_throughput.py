"""Judge throughput: time for the ``default`` judge (and others: ``--judges``) to score N answers.

The answers are the JailbreakBench attack artifacts' target-model responses (``jbb/artifacts/*/*/*.json``,
1,000 responses), cut to ``--max-words`` whitespace words (the main job generates at most 96 tokens) and
repeated up to ``--n``; the behaviour is the artifact's goal. Wall time and process CPU time are recorded
(the machine may be shared). The one-off load of a judge's model (MiniLM encoder, reader LM) is timed
separately. Set OMP_NUM_THREADS to the cores the run may use (torch's thread count is recorded).

    PYTHONPATH=src R2D_DATA_DIR=... python bench/judge_throughput.py [--n 2000] [--max-words 80] \
        [--judges refusal,default,default-minilm]

Prints a table and writes ``bench/results/judge_throughput.json`` with the git commit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def items(n: int, max_words: int):
    from r2d.eval.types import Behavior, JudgeInput
    from r2d.paths import data_dir

    out = []
    for p in sorted((data_dir() / "jbb" / "artifacts").glob("*/*/*.json")):
        for jb in json.loads(p.read_text(encoding="utf-8")).get("jailbreaks", []):
            resp = " ".join(str(jb.get("response") or "").split()[:max_words])
            b = Behavior(id=str(jb.get("index")), goal=str(jb.get("goal") or ""), benchmark="jbb")
            out.append(JudgeInput(behavior=b, prompt=str(jb.get("prompt") or b.goal), completion=resp, answer=resp))
    if not out:
        raise FileNotFoundError(f"no JBB artifacts under {data_dir() / 'jbb' / 'artifacts'}")
    return [out[i % len(out)] for i in range(n)]


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    r = fn()
    return r, time.perf_counter() - w, time.process_time() - c


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--max-words", type=int, default=80)
    ap.add_argument("--batch", type=int, default=256, help="items per judge() call")
    ap.add_argument("--judges", default="refusal,default,default-minilm")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "judge_throughput.json"))
    args = ap.parse_args()
    import torch

    from r2d import registry
    from r2d.provenance import base_provenance

    its = items(args.n, args.max_words)
    rows = []
    for name in args.judges.split(","):
        j = registry.create("judge", name)
        for attr in ("encoder", "reader"):  # the one-off model load, timed apart
            if hasattr(type(j), attr):
                _, load_w, load_c = timed(lambda: getattr(j, attr))
                rows.append({"what": f"load {name} {attr}", "n": 1, "wall_s": load_w, "cpu_s": load_c})

        def run():
            out = []
            for s in range(0, len(its), args.batch):
                out += j.judge(its[s:s + args.batch])
            return out

        vs, w, c = timed(run)
        labels: dict[str, int] = {}
        for v in vs:
            labels[v.label or "?"] = labels.get(v.label or "?", 0) + 1
        rows.append({"what": f"judge {name}", "n": len(its), "wall_s": w, "cpu_s": c, "per_s": len(its) / w,
                     "labels": labels})
    print(f"{'what':<30} {'n':>6} {'wall s':>8} {'cpu s':>8} {'items/s':>8}")
    for r in rows:
        print(f"{r['what']:<30} {r['n']:>6} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r.get('per_s', 0):>8.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows, "provenance": base_provenance(),
                               "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                               "loadavg": os.getloadavg()}, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
