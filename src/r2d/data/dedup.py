"""Exact and near-duplicate detection over prompts.

Exact: the normalised text (``r2d.textmatch.normalize``) is hashed.
Near: word n-gram shingles, a MinHash signature (one blake2b hash per shingle, ``num_perm`` random
affine permutations mod 2^61-1) bucketed by LSH
bands; every candidate pair sharing a band is confirmed with the exact Jaccard similarity of the
shingle sets (``threshold``). The first occurrence (in seed order) is kept; later ones are reported
with the id of the row they duplicate.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict

from r2d.textmatch import jaccard, normalize
from r2d.textmatch import ngrams as shingles

_P = (1 << 61) - 1  # a Mersenne prime: the permutations are (a*h + b) mod P over one 64-bit hash per shingle


def _h(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


class Deduplicator:
    """Streaming dedup: ``check(id, text)`` returns None (new, now remembered) or the id it duplicates."""

    def __init__(self, threshold: float = 0.8, ngram: int = 3, num_perm: int = 32, bands: int = 16) -> None:
        if num_perm % bands:
            raise ValueError("dedup: num_perm must be a multiple of bands")
        self.threshold, self.ngram, self.num_perm, self.bands = threshold, ngram, num_perm, bands
        self.rows = num_perm // bands
        rng = random.Random(1234)
        self.perms = [(rng.randrange(1, _P), rng.randrange(0, _P)) for _ in range(num_perm)]
        self.exact: dict[str, str] = {}
        self.sets: dict[str, set[str]] = {}
        self.buckets: list[dict[tuple, list[str]]] = [defaultdict(list) for _ in range(bands)]

    def signature(self, sh: set[str]) -> list[int]:
        if not sh:
            return [0] * self.num_perm
        hs = [_h(s) for s in sh]
        return [min((a * h + b) % _P for h in hs) for a, b in self.perms]

    def check(self, rid: str, text: str) -> tuple[str, str, float] | None:
        """None if ``text`` is new; else (kind "exact"|"near", duplicated id, similarity)."""
        key = hashlib.sha256(normalize(text).encode()).hexdigest()
        if key in self.exact:
            return "exact", self.exact[key], 1.0
        sh = shingles(text, self.ngram)
        sig = self.signature(sh)
        keys = [tuple(sig[b * self.rows:(b + 1) * self.rows]) for b in range(self.bands)]
        best: tuple[str, float] | None = None
        seen: set[str] = set()
        for b, k in enumerate(keys):
            for other in self.buckets[b].get(k, ()):
                if other in seen:
                    continue
                seen.add(other)
                sim = jaccard(sh, self.sets[other])
                if sim >= self.threshold and (best is None or sim > best[1]):
                    best = (other, sim)
        if best:
            return "near", best[0], round(best[1], 3)
        self.exact[key] = rid
        self.sets[rid] = sh
        for b, k in enumerate(keys):
            self.buckets[b][k].append(rid)
        return None
