"""Training/evaluation overlap audit: flag every evaluated behaviour whose goal appears in, or is a
paraphrase of, a training prompt (a contaminated result would overstate safety).

The audit is an independent check of the data build's decontamination (``r2d.data.decontam``: 8-gram
containment, then content-word containment with a hand-made list of request-framing words), so it uses
other measures, each reported per behaviour with the best-matching training prompt:
- ``exact``: the normalised goal is a substring of a normalised training prompt;
- ``ngram``: at least ``threshold`` of the goal's word ``n``-grams (default 5-grams, 0.5) occur in one
  training prompt;
- ``weighted``: IDF-weighted word containment: the goal's words (stop words dropped, light stemming, no
  framing list) weighted by their inverse document frequency over the training prompts, and the weighted
  share found in one training prompt >= ``weighted_threshold`` (default 0.6). Words that many training
  prompts share ("write", "tutorial", "provide") weigh little, the topic ("bomb") much.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable

from r2d.textmatch import STOP_WORDS, NgramIndex, normalize, stem, words

WEIGHTED_THRESHOLD = 0.6


def training_prompts(paths: Iterable[str | Path]) -> list[str]:
    """The user turns of SwaRD-style training files (any format ``r2d.data.io.load_sward`` reads)."""
    from r2d.data.io import load_sward

    out = []
    for p in paths:
        for row in load_sward(str(p), validate=False):
            out += [m["content"] for m in row["messages"] if m.get("role") == "user"]
    return out


def _terms(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in STOP_WORDS and len(w) > 2 and not w.isdigit()}


class WeightedIndex:
    def __init__(self, train: list[str]) -> None:
        self.sets = [_terms(t) for t in train]
        df: dict[str, int] = defaultdict(int)
        self.index: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(self.sets):
            for w in s:
                df[w] += 1
                self.index[w].append(i)
        n = len(train)
        self.idf = lambda w: math.log((n + 1) / max(1, df.get(w, 0)))  # a word no prompt has: the most weight

    def best(self, goal: str) -> tuple[int, float] | None:
        terms = _terms(goal)
        if len(terms) < 2:
            return None
        weight = {w: self.idf(w) for w in terms}
        total = sum(weight.values())
        got: dict[int, float] = defaultdict(float)
        shared: dict[int, int] = defaultdict(int)
        for w in terms:
            for i in self.index.get(w, ()):
                got[i] += weight[w]
                shared[i] += 1
        scored = [(i, g / total) for i, g in got.items() if shared[i] >= 2]
        return max(scored, key=lambda t: t[1], default=None)


def check_overlap(behaviors: Iterable[tuple[str, str]], train: list[str], n: int = 5, threshold: float = 0.5,
                  weighted_threshold: float = WEIGHTED_THRESHOLD) -> list[dict]:
    """(behaviour id, goal) pairs -> flagged ones, each with every measure that flagged it."""
    norm_train = [normalize(t) for t in train]
    ngram = NgramIndex(train, n)
    weighted = WeightedIndex(train)
    flagged = []
    for bid, goal in behaviors:
        g = normalize(goal)
        if not g:
            continue
        matches = []
        hit = next((i for i, t in enumerate(norm_train) if g in t), None)
        if hit is not None:
            matches.append(("exact", 1.0, hit))
        best = ngram.containing(goal)
        if best and best[1] >= threshold:
            matches.append(("ngram", best[1], best[0]))
        best = weighted.best(goal)
        if best and best[1] >= weighted_threshold:
            matches.append(("weighted", best[1], best[0]))
        if matches:
            kind, score, i = matches[0]
            flagged.append({"behavior_id": bid, "goal": goal, "kind": kind, "score": round(score, 3),
                            "train_index": i, "train_prompt": train[i][:200],
                            "matches": [{"measure": k, "score": round(s, 3), "train_index": j,
                                         "train_prompt": train[j][:200]} for k, s, j in matches]})
    return flagged


def overlap_report(behaviors: list[tuple[str, str]], paths: list[str], n: int = 5, threshold: float = 0.5,
                   weighted_threshold: float = WEIGHTED_THRESHOLD) -> dict:
    if not paths:
        return {"checked": False, "reason": "no train_data given in the config"}
    train = training_prompts(paths)
    unique = list(dict(behaviors).items())
    flagged = check_overlap(unique, train, n, threshold, weighted_threshold)
    by_measure: dict[str, int] = defaultdict(int)
    for f in flagged:
        for m in f["matches"]:
            by_measure[m["measure"]] += 1
    return {"checked": True, "train_data": [str(p) for p in paths], "train_prompts": len(train),
            "behaviors": len(unique), "ngram": n, "threshold": threshold,
            "weighted_threshold": weighted_threshold,
            "method": f"exact substring; word {n}-gram containment >= {threshold}; IDF-weighted word "
                      f"containment >= {weighted_threshold} (independent of the data build's filter)",
            "flagged": flagged, "n_flagged": len(flagged), "by_measure": dict(by_measure)}
