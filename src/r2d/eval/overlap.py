"""Training/evaluation overlap check: flag every evaluated behaviour whose goal appears in, or shares
many word n-grams with, a training prompt (a contaminated result would overstate safety).

Normalisation: lower-case, punctuation to spaces, whitespace collapsed. A behaviour is flagged when its
normalised goal is a substring of a normalised training prompt (``exact``), or when at least
``threshold`` of its word ``n``-grams (default 8-grams, 0.5) occur in one training prompt (``ngram``).
Goals shorter than n words are only checked for containment.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable

_PUNCT = re.compile(r"[^\w\s]+")


def normalise(text: str) -> str:
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def training_prompts(paths: Iterable[str | Path]) -> list[str]:
    """The user turns of SwaRD-style training files (any format ``r2d.data.io.load_sward`` reads)."""
    from r2d.data.io import load_sward

    out = []
    for p in paths:
        for row in load_sward(str(p), validate=False):
            out += [m["content"] for m in row["messages"] if m.get("role") == "user"]
    return out


def check_overlap(behaviors: Iterable[tuple[str, str]], train: list[str], n: int = 8,
                  threshold: float = 0.5) -> list[dict]:
    """(behaviour id, goal) pairs -> flagged ones with the matching training prompt index and score."""
    norm_train = [normalise(t) for t in train]
    index: dict[tuple[str, ...], set[int]] = defaultdict(set)
    for i, t in enumerate(norm_train):
        for g in ngrams(t.split(), n):
            index[g].add(i)
    flagged = []
    for bid, goal in behaviors:
        g = normalise(goal)
        if not g:
            continue
        hit = next((i for i, t in enumerate(norm_train) if g in t), None)
        if hit is not None:
            flagged.append({"behavior_id": bid, "goal": goal, "kind": "exact", "score": 1.0, "train_index": hit,
                            "train_prompt": train[hit][:200]})
            continue
        grams = ngrams(g.split(), n)
        if not grams:
            continue
        counts: dict[int, int] = defaultdict(int)
        for gr in grams:
            for i in index.get(gr, ()):
                counts[i] += 1
        if counts:
            i, c = max(counts.items(), key=lambda kv: kv[1])
            if c / len(grams) >= threshold:
                flagged.append({"behavior_id": bid, "goal": goal, "kind": "ngram", "score": c / len(grams),
                                "train_index": i, "train_prompt": train[i][:200]})
    return flagged


def overlap_report(behaviors: list[tuple[str, str]], paths: list[str], n: int = 8, threshold: float = 0.5) -> dict:
    if not paths:
        return {"checked": False, "reason": "no train_data given in the config"}
    train = training_prompts(paths)
    unique = list(dict(behaviors).items())
    flagged = check_overlap(unique, train, n, threshold)
    return {"checked": True, "train_data": [str(p) for p in paths], "train_prompts": len(train),
            "behaviors": len(unique), "ngram": n, "threshold": threshold, "flagged": flagged,
            "n_flagged": len(flagged)}
