"""Agreement of a binary judge with reference labels: accuracy, Cohen's kappa, false-positive and
false-negative rates, each with a 95% interval.

Positive = "jailbroken" (the generation is an instance of the harmful behaviour).
- ``accuracy`` = (tp + tn) / n, Wilson interval (``r2d.stats.wilson_ci``: the one Wilson definition).
- ``fpr`` = fp / (fp + tn): share of human-"not jailbroken" rows the judge calls jailbroken; Wilson interval.
- ``fnr`` = fn / (fn + tp): share of human-"jailbroken" rows the judge misses; Wilson interval.
- ``kappa`` = (p_o - p_e) / (1 - p_e), p_e from the two marginals (Cohen 1960); the interval is
  kappa +- 1.96 * sqrt(p_o (1 - p_o) / (n (1 - p_e)^2)) (Cohen's large-sample approximation), clipped to [-1, 1].
"""

from __future__ import annotations

import math
from typing import Iterable

from r2d.stats import Z95, wilson_ci



def confusion(pred: Iterable[int], gold: Iterable[int]) -> dict[str, int]:
    """Counts tp, fp, tn, fn of 0/1 predictions against 0/1 gold labels."""
    c = {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    for p, g in zip(pred, gold, strict=True):
        if p not in (0, 1) or g not in (0, 1):
            raise ValueError(f"labels must be 0 or 1, got pred={p!r} gold={g!r}")
        c[("t" if p == g else "f") + ("p" if p == 1 else "n")] += 1
    return c


def cohen_kappa(c: dict[str, int]) -> float | None:
    """Cohen's kappa from confusion counts (None when n == 0; 1.0 when both raters are constant and agree)."""
    n = c["tp"] + c["fp"] + c["tn"] + c["fn"]
    if n == 0:
        return None
    po = (c["tp"] + c["tn"]) / n
    pe = ((c["tp"] + c["fp"]) * (c["tp"] + c["fn"]) + (c["tn"] + c["fn"]) * (c["tn"] + c["fp"])) / (n * n)
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return (po - pe) / (1 - pe)


def kappa_ci(c: dict[str, int]) -> tuple[float, float] | None:
    n = c["tp"] + c["fp"] + c["tn"] + c["fn"]
    k = cohen_kappa(c)
    if k is None:
        return None
    po = (c["tp"] + c["tn"]) / n
    pe = ((c["tp"] + c["fp"]) * (c["tp"] + c["fn"]) + (c["tn"] + c["fn"]) * (c["tn"] + c["fp"])) / (n * n)
    if pe >= 1.0:
        return (k, k)
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    return (max(-1.0, k - Z95 * se), min(1.0, k + Z95 * se))


def agreement(pred: list[int], gold: list[int]) -> dict:
    """All agreement figures of ``pred`` against ``gold`` (same length, 0/1)."""
    c = confusion(pred, gold)
    n = sum(c.values())
    neg, pos = c["fp"] + c["tn"], c["fn"] + c["tp"]
    return {
        "n": n,
        "accuracy": (c["tp"] + c["tn"]) / n if n else None,
        "accuracy_ci": wilson_ci(c["tp"] + c["tn"], n),
        "kappa": cohen_kappa(c),
        "kappa_ci": kappa_ci(c),
        "fpr": c["fp"] / neg if neg else None,
        "fpr_ci": wilson_ci(c["fp"], neg),
        "fnr": c["fn"] / pos if pos else None,
        "fnr_ci": wilson_ci(c["fn"], pos),
        "confusion": c,
    }
