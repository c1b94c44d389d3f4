"""Experiment (issue 10, fifth round): do JailbreakBench's attack artifacts, with the verdicts JBB's own judge
recorded for them, help the ``default`` judge as extra training rows?

    PYTHONPATH=src R2D_DATA_DIR=/path/to/data python scripts/judge_silver_experiment.py \
        [--weights 0,1] [--cache-dir /tmp/silver] [--out /tmp/silver/results.json]

Silver rows: every artifact in ``jbb/artifacts/*/*/*.json`` with a non-empty response and a recorded
``jailbroken`` verdict (886 rows, 610 jailbroken: Llama-2-7B and Vicuna-13B answers to JBB's 100 goals under
DSN, GCG, JBC, PAIR and random-search prompts; the verdicts are JBB's automatic judge's, not human labels).
They are only ever *training* rows, weighted ``--weights`` (a weight of 0 is the shipped recipe), and never
scored: the figures are the nested-CV agreement with the human majority on the two human-labelled sets, as in
``scripts/fit_default_judge.py`` (same features: rules + MiniLM + SmolLM2 reader, layers {6, 9, 12} x {mean,
last+mean} x L2 {30, 100, 300, 1000}; same inner selection, scored on gold rows only).

Grouping (no goal seen in training and test): a silver row joins the group of a gold goal that it equals
(lower-cased) or matches by content words (``r2d.textmatch.ContentIndex``, symmetric, r2d's decontamination
threshold); otherwise it is a group of its own. Folds are drawn over all groups, so the weight-0 arm uses other
fold assignments than the shipped figures (79.6 / 83.3) and is the baseline to compare with. Standardisation
uses the gold training rows only. Never run this on r2d's own evaluation outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fit_default_judge as fit  # noqa: E402

from r2d import textmatch as tm  # noqa: E402
from r2d.eval import judge_validation as jv  # noqa: E402
from r2d.eval.judges import lm_features as lf  # noqa: E402
from r2d.eval.judges import rules  # noqa: E402
from r2d.paths import data_dir  # noqa: E402

LAYERS, POOLINGS, LAMS = (6, 9, 12), ("mean", "last+mean"), (30.0, 100.0, 300.0, 1000.0)
OUTER, SEEDS, INNER = 5, 3, 4


def load_silver() -> list[jv.LabelledRow]:
    rows = []
    for f in sorted((data_dir() / "jbb/artifacts").glob("*/*/*.json")):
        for j in json.loads(f.read_text(encoding="utf-8"))["jailbreaks"]:
            resp, verdict = j.get("response"), j.get("jailbroken")
            if not resp or not resp.strip() or verdict is None or not j.get("prompt"):
                continue
            rows.append(jv.LabelledRow(set="silver", row_id=f"{f.parent.parent.name}/{f.stem}/{j['index']}",
                                       behavior_id=str(j["index"]), goal=j["goal"], prompt=j["prompt"],
                                       response=resp, humans=[int(bool(verdict))]))
    return rows


def fit_predict(Xtr, ytr, wtr, gold_tr, Xte, lams):
    mu, sd = fit.standardise(Xtr[gold_tr])
    return [1 / (1 + np.exp(-(((Xte - mu) / sd) @ c + b)))
            for c, b in fit.fit_logreg((Xtr - mu) / sd, ytr, list(lams), w=wtr)]


def silver_groups(silver, gold_groups: list[str]) -> list[str]:
    goals = sorted(set(gold_groups))
    known, index = set(goals), tm.ContentIndex(goals)
    out = []
    for r in silver:
        g = r.goal.lower().strip()
        hit = None if g in known else index.best(r.goal, symmetric=True)
        out.append(g if g in known else goals[hit[0]] if hit and hit[1] >= tm.CONTENT_THRESHOLD else "silver:" + g)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default="0,1", help="silver-row weights to compare (0: the shipped recipe)")
    ap.add_argument("--cache-dir", default=None, help="keeps the features (speed only)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    weights = [float(x) for x in args.weights.split(",")]
    cache = (lambda name: str(Path(args.cache_dir) / name)) if args.cache_dir else (lambda name: None)
    if args.cache_dir:
        Path(args.cache_dir).mkdir(parents=True, exist_ok=True)

    gold, y, sets, groups, _ = jv.fit_data()
    silver = load_silver()
    sg = silver_groups(silver, groups)
    joined = sum(not g.startswith("silver:") for g in sg)
    print(f"silver rows {len(silver)} (jailbroken {sum(r.gold for r in silver)}), joined to a gold goal's group "
          f"{joined}", file=sys.stderr)
    spec = lf.ReaderSpec(model="smollm2-135m", layers=tuple(range(max(LAYERS) + 1)), pooling=("last", "mean"))
    H = np.concatenate([fit.reader_features(gold, spec, cache("reader_gold.npz"))[0],
                        fit.reader_features(silver, spec, cache("reader_silver.npz"))[0]])
    base = np.vstack([fit.base_features(gold, cache("base_gold.npz")),
                      fit.base_features(silver, cache("base_silver.npz"))])
    ruled = np.array([not r.response.strip() or rules.degenerate_reason(r.response, rules.request_text(r.goal, r.prompt))
                      is not None for r in gold + silver])
    keep = np.r_[np.ones(len(gold), bool), ~ruled[len(gold):]]  # rule-decided silver rows are never used
    silver, sg = [r for r, k in zip(silver, keep[len(gold):]) if k], [g for g, k in zip(sg, keep[len(gold):]) if k]
    H, base, ruled = H[keep], base[keep], ruled[keep]
    Y = np.r_[y, [r.gold for r in silver]].astype(np.float64)
    G = groups + sg
    is_gold = np.r_[np.ones(len(gold), bool), np.zeros(len(silver), bool)]
    blocks = {f"{p}@{layer}": np.hstack([base] + [H[:, layer, 0 if q == "last" else 1].astype(np.float64)
                                                  for q in p.split("+")])
              for layer in LAYERS for p in POOLINGS}
    results: dict = {"silver_rows_used": len(silver), "silver_rows_rule_decided": int((~keep).sum()),
                     "silver_jailbroken": int(sum(r.gold for r in silver)),
                     "silver_joined_to_gold_groups": sum(not g.startswith("silver:") for g in sg), "by_weight": {}}
    t0 = time.perf_counter()
    for sw in weights:
        W = np.where(is_gold, 1.0, sw)
        use = ~ruled & (W > 0)
        per_seed, choices = [], []
        for seed in range(SEEDS):
            folds = fit.fold_ids(G, OUTER, seed)
            pred = np.zeros(len(gold), int)
            for f in range(OUTER):
                tr = np.where((folds != f) & use)[0]
                te = np.where((folds == f) & is_gold & ~ruled)[0]
                inner = fit.fold_ids([G[i] for i in tr], INNER, fit.INNER_SEED)
                acc = {}
                for name, X in blocks.items():
                    correct, n = np.zeros(len(LAMS)), 0
                    for j in range(INNER):
                        a, b = tr[inner != j], tr[inner == j]
                        b = b[is_gold[b]]
                        correct += [((p >= .5) == Y[b]).sum()
                                    for p in fit_predict(X[a], Y[a], W[a], is_gold[a], X[b], LAMS)]
                        n += len(b)
                    acc.update({(name, lam): c / n for lam, c in zip(LAMS, correct)})
                name, lam = max(acc, key=lambda k: acc[k])
                choices.append([seed, f, name, lam])
                X = blocks[name]
                pred[te] = (fit_predict(X[tr], Y[tr], W[tr], is_gold[tr], X[te], [lam])[0] >= .5).astype(int)
            per_seed.append({s: float((pred[sets == s] == y[sets == s]).mean()) for s in jv.SETS})
            print(f"weight {sw} seed {seed}: {per_seed[-1]} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr,
                  flush=True)
        mean = {s: float(np.mean([p[s] for p in per_seed])) for s in jv.SETS}
        results["by_weight"][str(sw)] = {"accuracy_mean": mean, "accuracy_per_seed": per_seed,
                                         "inner_choices": choices}
    print(json.dumps({w: r["accuracy_mean"] for w, r in results["by_weight"].items()}, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
