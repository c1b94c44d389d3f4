"""Fit the ``default`` judge (rules + a small LM's reading of (behaviour, answer)) and write its weights.

    PYTHONPATH=src R2D_DATA_DIR=/work/shared/data python scripts/fit_default_judge.py \
        [--reader-cache /tmp/reader_feats.npz] [--out src/r2d/resources/default_judge.json]

Data: the two human-labelled judge-validation sets (HarmBench classifier validation set, 602 rows; JBB
classifier comparison, 100 rows), gold = human majority. Rows the judge decides by rule (empty, degenerate)
never reach the classifier: they are left out of every fit and counted "not jailbroken" in the figures.

Features: the base features (``--base minilm``, the default: the 17 rule features, the behaviour/answer
cosine and the answer's MiniLM-L6 embedding, as ``default-minilm``; ``--base rules``: the 16 rule features
alone, ``default.HAND_FEATURES_LM``) and the reader LM's features
(``lm_features``: SmolLM2-135M-Instruct reads a judging prompt with the behaviour and the answer's first 192
tokens; hidden state at the last token and/or mean over the answer's tokens at one layer; only the layers up
to the deepest in the grid are run; ``--model`` picks another reader, e.g. ``qwen2.5-coder-0.5b``).
``--yes-no on|grid`` adds the reader's yes/no logit difference at the last token as one more feature, in
every block or as a grid axis (it runs the whole reader model). Reading all rows takes about 10 CPU-minutes
for SmolLM2's first 12 layers (about 38 for Qwen2.5-Coder-0.5B's 24 layers); ``--reader-cache`` keeps them
(every layer up to the deepest, both poolings, the yes/no logit when asked for, keyed by the reader settings,
the prompt and the rows; a cache made with the logit also serves runs without it).

Model: L2-regularised logistic regression (intercept unpenalised), features standardised with the training
rows' mean/std, fitted exactly in the span of the training rows (thin SVD, Newton steps; numpy only).
The grid (``--layers`` x ``--poolings`` x ``--lams`` [x yes/no]) is fixed before looking at any result.

Figures: nested cross-validation. Outer: ``--folds``-fold grouped by behaviour text (lower-cased, across
both sets; the fold assignment of scripts/fit_default_minilm_judge.py), ``--seeds`` assignments; in each
outer training part, an inner 4-fold grouped CV picks (layer, pooling, lambda); the outer test rows are
scored once by a model fitted on the outer training part with that choice. The shipped choice is picked by
the same inner procedure on all rows, and its coefficients are fitted on all rows. Never run this on
r2d's own evaluation outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from r2d.eval import judge_validation as jv
from r2d.eval.judges import default as dj
from r2d.eval.judges import lm_features as lf
from r2d.eval.judges import rules

INNER_FOLDS, INNER_SEED = 4, 100


def fit_logreg(X: np.ndarray, y: np.ndarray, lams: list[float], iters: int = 50,
               w: np.ndarray | None = None) -> list[tuple[np.ndarray, float]]:
    """L2 logistic regression for each lambda (same order), exactly, in the row space of ``X`` (thin SVD);
    ``w``: per-row weights on the log-likelihood (default: all 1)."""
    n = X.shape[0]
    w = np.ones(n) if w is None else w
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    Zb = np.hstack([U * S, np.ones((n, 1))])
    r = Zb.shape[1] - 1
    beta = np.zeros(r + 1)
    fits: dict[float, tuple[np.ndarray, float]] = {}
    for lam in sorted(lams, reverse=True):  # warm start from strong to weak regularisation
        reg = lam * np.r_[np.ones(r), 0.0]
        for _ in range(iters):
            p = 1.0 / (1.0 + np.exp(-np.clip(Zb @ beta, -30, 30)))
            step = np.linalg.solve((Zb * (w * p * (1 - p))[:, None]).T @ Zb + np.diag(reg),
                                   Zb.T @ (w * (p - y)) + reg * beta)
            beta = beta - step
            if np.abs(step).max() < 1e-7:
                break
        fits[lam] = (Vt.T @ beta[:-1], float(beta[-1]))
    return [fits[lam] for lam in lams]


def standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = X.mean(0), X.std(0)
    sd[sd < 1e-6] = 1.0
    return mu, sd


def fit_predict(Xtr, ytr, Xte, lams):
    mu, sd = standardise(Xtr)
    return [1 / (1 + np.exp(-(((Xte - mu) / sd) @ w + b))) for w, b in fit_logreg((Xtr - mu) / sd, ytr, list(lams))]


def fold_ids(groups: list[str], k: int, seed: int) -> np.ndarray:
    ug = sorted(set(groups))
    perm = np.random.default_rng(seed).permutation(len(ug))
    f = {g: int(perm[i] % k) for i, g in enumerate(ug)}
    return np.array([f[g] for g in groups])


def select(blocks: dict[str, np.ndarray], y, groups, rows: np.ndarray, lams) -> tuple[tuple[str, float], dict]:
    """(block, lambda) with the best inner grouped-CV accuracy on ``rows`` (indices), ties to the first."""
    f = fold_ids([groups[i] for i in rows], INNER_FOLDS, INNER_SEED)
    acc = {}
    for name, X in blocks.items():
        correct = np.zeros(len(lams))
        for j in range(INNER_FOLDS):
            tr, te = rows[f != j], rows[f == j]
            correct += [((p >= 0.5) == y[te]).sum() for p in fit_predict(X[tr], y[tr], X[te], lams)]
        for lam, c in zip(lams, correct):
            acc[(name, lam)] = float(c / len(rows))
    return max(acc, key=lambda k: acc[k]), acc


def reader_cache_key(spec: lf.ReaderSpec, rows) -> str:
    h = hashlib.sha256(json.dumps([spec.to_json(), lf.SYSTEM, lf.QUESTION]).encode())
    for r in rows:
        h.update(json.dumps([r.goal, r.context, r.response]).encode())
    return h.hexdigest()


def reader_features(rows, spec: lf.ReaderSpec, cache: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, yes_no): H (n, layers, 2 (last, mean), d) hidden states at every layer of ``spec.layers``; yes_no (n,)
    the yes/no logit difference when ``spec.yes_no`` (else None). A cache made with the yes/no logit also serves
    the same settings without it (the hidden states are the same)."""
    key = reader_cache_key(spec, rows)
    if cache and Path(cache).is_file():
        z = np.load(cache)
        if str(z["key"]) == key:
            return z["H"], (z["yes_no"] if spec.yes_no else None)
        if not spec.yes_no and str(z["key"]) == reader_cache_key(replace(spec, yes_no=True), rows):
            return z["H"], None
        print(f"{cache}: made with other settings or rows; recomputing", file=sys.stderr)
    t0, c0 = time.perf_counter(), time.process_time()
    reader = lf.LMReader(spec)
    F = reader.features([r.goal for r in rows], [r.context for r in rows],
                        [r.response[:dj.MAX_CHARS] for r in rows])
    yes_no = F[:, -1].astype(np.float32) if spec.yes_no else None
    H = (F[:, :-1] if spec.yes_no else F).reshape(len(rows), len(spec.layers), 2, -1).astype(np.float32)
    print(f"reader features {H.shape} in {time.perf_counter() - t0:.0f}s wall, "
          f"{time.process_time() - c0:.0f}s CPU", file=sys.stderr)
    if cache:
        np.savez(cache, H=H, key=key, **({"yes_no": yes_no} if spec.yes_no else {}))
    return H, yes_no


def base_features(rows, cache: str | None) -> np.ndarray:
    """The MiniLM judge's features (``default.feature_matrix``: rules, cosine, 384-d embedding)."""
    h = hashlib.sha256(json.dumps(["minilm", list(dj.FEATURE_NAMES)]).encode())
    for r in rows:
        h.update(json.dumps([r.goal, r.prompt, r.response]).encode())
    key = h.hexdigest()
    if cache and Path(cache).is_file():
        z = np.load(cache)
        if str(z["key"]) == key:
            return z["X"]
        print(f"{cache}: made with other settings or rows; recomputing", file=sys.stderr)
    from r2d.eval.judges.encoder import get_encoder

    X = dj.feature_matrix([r.goal for r in rows], [r.prompt for r in rows], [r.response for r in rows], get_encoder())
    if cache:
        np.savez(cache, X=X, key=key)
    return X


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "src/r2d/resources/default_judge.json"))
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", default="6,9,12")
    ap.add_argument("--poolings", default="mean,last+mean")
    ap.add_argument("--lams", default="30,100,300,1000")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--yes-no", choices=("off", "on", "grid"), default="off",
                    help="the reader's yes/no logit difference as one more feature: never, in every block, or a grid "
                         "axis (each block with and without it); on/grid run the whole reader model")
    ap.add_argument("--base", choices=sorted(dj.BASES), default="minilm",
                    help="base features: the rule features alone, or the MiniLM judge's (rules + MiniLM-L6)")
    ap.add_argument("--reader-cache", default=None, help="npz keeping the reader's features (speed only)")
    ap.add_argument("--base-cache", default=None, help="npz keeping the MiniLM base features (speed only)")
    args = ap.parse_args()
    layers = [int(x) for x in args.layers.split(",")]
    poolings = args.poolings.split(",")
    lams = [float(x) for x in args.lams.split(",")]

    rows, y, sets, groups, set_info = jv.fit_data()
    ruled = np.array([not r.response.strip() or rules.degenerate_reason(r.response, rules.request_text(r.goal, r.prompt))
                      is not None for r in rows])
    all_layers = tuple(range(max(layers) + 1))
    spec_all = lf.ReaderSpec(model=args.model, layers=all_layers, pooling=("last", "mean"),
                             yes_no=args.yes_no != "off")
    H, yes_no = reader_features(rows, spec_all, args.reader_cache)
    if args.base == "rules":
        hand = np.array([dj.hand_features_lm(r.goal, r.prompt, r.response) for r in rows], dtype=np.float64)
    else:
        hand = base_features(rows, args.base_cache)

    def block(layer: int, pooling: str, yn: bool) -> np.ndarray:
        li = all_layers.index(layer)
        parts = [H[:, li, 0 if p == "last" else 1].astype(np.float64) for p in pooling.split("+")]
        return np.hstack([hand] + parts + ([yes_no[:, None].astype(np.float64)] if yn else []))

    yn_axis = {"off": [False], "on": [True], "grid": [False, True]}[args.yes_no]
    blocks = {f"{p}@{layer}" + ("+yn" if yn else ""): block(layer, p, yn)
              for layer in layers for p in poolings for yn in yn_axis}
    t0 = time.perf_counter()
    per_seed, choices, pred0 = [], [], None
    for seed in range(args.seeds):
        folds = fold_ids(groups, args.folds, seed)
        pred = np.zeros(len(rows), dtype=int)
        for f in range(args.folds):
            tr, te = (folds != f) & ~ruled, (folds == f) & ~ruled
            (name, lam), _ = select(blocks, y, groups, np.where(tr)[0], lams)
            choices.append({"seed": seed, "fold": f, "block": name, "lambda": lam})
            pred[te] = (fit_predict(blocks[name][tr], y[tr], blocks[name][te], [lam])[0] >= 0.5).astype(int)
        per_seed.append({s: float((pred[sets == s] == y[sets == s]).mean()) for s in jv.SETS})
        print(f"seed {seed}: {per_seed[-1]} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr, flush=True)
        if seed == 0:
            pred0 = pred
    cv = {"method": f"nested cross-validation: outer {args.folds}-fold grouped by behaviour text over both sets, "
                    f"{args.seeds} fold assignments (seeds 0..{args.seeds - 1}), held-out rows only; inner "
                    f"{INNER_FOLDS}-fold grouped CV on each outer training part picks layer, pooling and lambda",
          "grid": {"layers": layers, "poolings": poolings, "lambdas": lams, "yes_no": args.yes_no},
          "accuracy_mean": {s: float(np.mean([p[s] for p in per_seed])) for s in jv.SETS},
          "accuracy_per_seed": per_seed, "inner_choices": choices, "seed0": {}}
    cv["seed0"] = jv.per_set_agreement(pred0, y, sets)
    fit_rows = np.where(~ruled)[0]
    (name, lam), inner = select(blocks, y, groups, fit_rows, lams)
    pooling, layer = name.removesuffix("+yn").split("@")
    spec = lf.ReaderSpec(model=args.model, layers=(int(layer),), pooling=tuple(pooling.split("+")),
                         yes_no=name.endswith("+yn"))
    X = blocks[name][fit_rows]
    mu, sd = standardise(X)
    coef, b = fit_logreg((X - mu) / sd, y[fit_rows], [lam])[0]
    out = {"base": args.base, "base_features": list(dj.BASES[args.base]), "reader": spec.to_json(),
           "blocks": spec.names(),
           "mean": [round(float(v), 7) for v in mu], "std": [round(float(v), 7) for v in sd],
           "coef": [round(float(v), 7) for v in coef], "intercept": round(b, 7), "threshold": 0.5, "lambda": lam,
           "selection": {"block": name, "lambda": lam, "inner_accuracy": inner[(name, lam)],
                         "method": f"{INNER_FOLDS}-fold grouped CV on all fitted rows over the grid"},
           "fitted_on": {"rows": int(len(fit_rows)), "rule_decided_rows_left_out": int(ruled.sum()),
                         "sets": set_info,
                         "note": "all rows of both sets (HarmBench val set behaviours overlap HarmBench's test split; "
                                 "JBB rows hold JBB/AdvBench-style goals)"},
          "cv": cv,
          "script": "scripts/fit_default_judge.py"}
    sha = jv.write_weights(out, args.out)
    print(json.dumps({"cv_accuracy_mean": cv["accuracy_mean"], "per_seed": per_seed, "shipped": [name, lam]}, indent=1))
    print(f"wrote {args.out} sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
