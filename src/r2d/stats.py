"""Statistics shared by the eval runner and the report (one definition of each).

- ``wilson_ci``: 95% Wilson score interval, exact at 0 and n (lo <= k/n <= hi always); None when n == 0.
- ``mean_std``: mean and SAMPLE standard deviation (n - 1 in the denominator; 0.0 for one value;
  (None, None) for none). results.json and the report both use it.
- ``mcnemar_exact`` / ``paired_diff_ci`` / ``PairedResult``: two systems on the same cases; the exact
  McNemar test on the discordant pairs and Newcombe's (1998) method-10 interval for the difference.
- ``cluster_paired_test``: the same comparison when cases are clustered (several attacks share one
  behaviour, so their outcomes are not independent): a sign-flip permutation test that swaps the two
  systems' outcomes for ALL cases of a behaviour together (exact for <= 16 informative clusters, else
  ``rounds`` seeded Monte-Carlo flips), and a cluster bootstrap percentile interval for the ASR difference.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable, Sequence

Z95 = 1.959963984540054


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for k successes in n trials (None when n == 0)."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact at the ends (floating point leaves 1 - 1e-16 and 7e-18 there otherwise): lo <= p <= hi always
    lo = 0.0 if k == 0 else min(p, max(0.0, centre - half))
    hi = 1.0 if k == n else max(p, min(1.0, centre + half))
    return (lo, hi)


def mean_std(xs: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n - 1); std 0.0 for a single value, (None, None) for none."""
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: P(X <= min(b, c)) * 2 for X ~ Binomial(b + c, 1/2), capped at 1."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_diff_ci(a: int, b: int, c: int, d: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe method-10 interval for p2 - p1 with p1 = (a+b)/n (first system), p2 = (a+c)/n.

    a: both jailbroken, b: only the first, c: only the second, d: neither.
    """
    n = a + b + c + d
    if n == 0:
        return (math.nan, math.nan)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_ci(a + b, n, z)
    l2, u2 = wilson_ci(a + c, n, z)
    # Newcombe's correlation estimate, with ad - bc shrunk by n/2 when positive (0 if it drops below)
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    cross = a * d - b * c
    cross = cross - n / 2 if cross > n / 2 else (0.0 if cross >= 0 else cross)
    phi = cross / math.sqrt(denom) if denom > 0 else 0.0
    delta = p2 - p1
    lower = delta - math.sqrt(max(0.0, (p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2))
    upper = delta + math.sqrt(max(0.0, (u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2))
    return (max(-1.0, lower), min(1.0, upper))


@dataclass
class ClusterTest:
    clusters: int  # behaviours with at least one paired case
    informative: int  # clusters whose summed difference is not 0
    p_value: float
    diff_ci: tuple[float, float]
    exact: bool


def cluster_paired_test(first: Sequence[bool], second: Sequence[bool], clusters: Sequence[Hashable],
                        rounds: int = 20000, seed: int = 0, z_level: float = 0.95) -> ClusterTest:
    """Cluster sign-flip permutation test of ASR(second) - ASR(first) and a cluster bootstrap interval.

    Under H0 the two systems are exchangeable within each behaviour, so the per-cluster difference
    d_c = sum over its cases of (second - first) keeps its size and flips its sign with probability 1/2;
    p = P(|sum of flipped d_c| >= |sum d_c|)."""
    if not (len(first) == len(second) == len(clusters)):
        raise ValueError("paired outcome and cluster lists differ in length")
    diffs: dict[Hashable, int] = defaultdict(int)
    sizes: dict[Hashable, int] = defaultdict(int)
    for x, y, c in zip(first, second, clusters):
        diffs[c] += int(bool(y)) - int(bool(x))
        sizes[c] += 1
    n = len(first)
    if n == 0:
        return ClusterTest(0, 0, 1.0, (math.nan, math.nan), True)
    d = [v for v in diffs.values() if v != 0]
    obs = abs(sum(d))
    exact = len(d) <= 16
    if not d:
        p = 1.0
    elif exact:
        hits = sum(1 for signs in itertools.product((1, -1), repeat=len(d))
                   if abs(sum(s * v for s, v in zip(signs, d))) >= obs)
        p = hits / 2 ** len(d)
    else:
        rng = random.Random(seed)
        hits = sum(1 for _ in range(rounds) if abs(sum(v if rng.random() < 0.5 else -v for v in d)) >= obs)
        p = (hits + 1) / (rounds + 1)
    keys = list(diffs)
    rng = random.Random(seed + 1)
    boots = []
    for _ in range(2000):
        pick = [keys[rng.randrange(len(keys))] for _ in keys]
        m = sum(sizes[k] for k in pick)
        boots.append(sum(diffs[k] for k in pick) / m)
    boots.sort()
    alpha = (1 - z_level) / 2
    lo, hi = boots[int(alpha * len(boots))], boots[min(len(boots) - 1, int((1 - alpha) * len(boots)))]
    return ClusterTest(len(keys), len(d), min(1.0, p), (lo, hi), exact)


@dataclass
class PairedResult:
    """A paired comparison of two systems on the same n cases (first = baseline)."""

    n: int
    both: int  # a
    only_first: int  # b
    only_second: int  # c
    neither: int  # d
    cluster: ClusterTest | None = None  # set when the cases' behaviours are known

    @classmethod
    def from_outcomes(cls, first: list[bool], second: list[bool],
                      clusters: Sequence[Hashable] | None = None) -> "PairedResult":
        if len(first) != len(second):
            raise ValueError("paired outcome lists differ in length")
        a = sum(1 for x, y in zip(first, second) if x and y)
        b = sum(1 for x, y in zip(first, second) if x and not y)
        c = sum(1 for x, y in zip(first, second) if y and not x)
        ct = cluster_paired_test(first, second, clusters) if clusters is not None else None
        return cls(len(first), a, b, c, len(first) - a - b - c, ct)

    @property
    def asr_first(self) -> float:
        return (self.both + self.only_first) / self.n if self.n else math.nan

    @property
    def asr_second(self) -> float:
        return (self.both + self.only_second) / self.n if self.n else math.nan

    @property
    def diff(self) -> float:
        """ASR(second) - ASR(first); negative means the second system is safer."""
        return self.asr_second - self.asr_first

    @property
    def diff_ci(self) -> tuple[float, float]:
        """The cluster bootstrap interval when clustered, else Newcombe's."""
        if self.cluster is not None:
            return self.cluster.diff_ci
        return paired_diff_ci(self.both, self.only_first, self.only_second, self.neither)

    @property
    def p_value(self) -> float:
        """The cluster permutation p when clustered, else the exact McNemar p."""
        if self.cluster is not None:
            return self.cluster.p_value
        return mcnemar_exact(self.only_first, self.only_second)


def auroc(pos: list[float], neg: list[float]) -> float | None:
    """Area under the ROC curve of a score that should be higher for ``pos``: P(s+ > s-) + P(tie) / 2
    (the Mann-Whitney statistic); None without both classes."""
    if not pos or not neg:
        return None
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


def auroc_ci(a: float | None, n_pos: int, n_neg: int, z: float = Z95) -> list[float] | None:
    """Hanley & McNeil (1982) normal interval for an AUROC ``a`` from n_pos positives and n_neg
    negatives, clipped to [0, 1]."""
    if a is None or n_pos < 1 or n_neg < 1:
        return None
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    half = z * math.sqrt(max(var, 0.0))
    return [max(0.0, a - half), min(1.0, a + half)]
