"""Decontamination against every registered evaluation benchmark.

Method: both sides are normalised (lower case, punctuation dropped) and cut into word n-grams
(``n``, default 8; an item shorter than n words is one gram). A training prompt is contaminated by a
benchmark item when the share of the ITEM's n-grams found in the prompt (containment) is at least
``threshold`` (default 0.5). Containment catches an eval request copied into a longer prompt (a
jailbreak wrapper around a JBB goal) as well as verbatim copies. The benchmark prompts come from
``r2d.eval.benchmarks.all_eval_prompts()``; ``exclude`` leaves some out (e.g. ``advbench`` when
AdvBench is the harmful training source, as in the R2D paper).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from r2d.data.dedup import normalize


@dataclass
class Match:
    benchmark: str
    item: str
    score: float

    def to_dict(self) -> dict:
        return {"benchmark": self.benchmark, "item": self.item, "score": round(self.score, 3)}


def ngrams(text: str, n: int) -> set[str]:
    w = normalize(text).split()
    if len(w) < n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def eval_prompts(benchmarks: list[str] | None = None, exclude: list[str] | None = None) -> dict[str, list[str]]:
    from r2d.eval.benchmarks import all_eval_prompts

    allp = all_eval_prompts()
    if benchmarks:
        missing = sorted(set(benchmarks) - set(allp))
        if missing:
            raise ValueError(f"decontam: unknown or unavailable benchmarks {missing}; have {sorted(allp)}")
        allp = {k: v for k, v in allp.items() if k in benchmarks}
    return {k: v for k, v in allp.items() if k not in set(exclude or [])}


class Decontaminator:
    def __init__(self, prompts: dict[str, list[str]], n: int = 8, threshold: float = 0.5) -> None:
        self.n, self.threshold = n, threshold
        self.items: list[tuple[str, str, int]] = []  # (benchmark, text, number of n-grams)
        self.index: dict[str, list[int]] = defaultdict(list)
        self.short: dict[str, int] = {}  # normalised item shorter than n words -> item index
        for bench, texts in prompts.items():
            for t in texts:
                words = normalize(t).split()
                if not words:
                    continue
                idx = len(self.items)
                if len(words) < n:
                    self.items.append((bench, t, 1))
                    self.short.setdefault(" ".join(words), idx)
                    continue
                g = ngrams(t, n)
                self.items.append((bench, t, len(g)))
                for x in g:
                    self.index[x].append(idx)
        self.benchmarks = {b: len(v) for b, v in prompts.items()}

    def check(self, text: str) -> Match | None:
        """The best-matching benchmark item at or above the threshold, else None."""
        w = normalize(text).split()
        hits: dict[int, int] = defaultdict(int)
        for g in {" ".join(w[i:i + self.n]) for i in range(len(w) - self.n + 1)}:
            for idx in self.index.get(g, ()):
                hits[idx] += 1
        best: Match | None = None
        for idx, h in hits.items():
            bench, item, total = self.items[idx]
            if h / total >= self.threshold and (best is None or h / total > best.score):
                best = Match(bench, item, h / total)
        if best is None and self.short:  # short items: whole-item containment
            for k in range(1, self.n):
                for i in range(len(w) - k + 1):
                    idx = self.short.get(" ".join(w[i:i + k]))
                    if idx is not None and k >= 3:  # a 1-2 word item would match everything
                        return Match(self.items[idx][0], self.items[idx][1], 1.0)
        return best
