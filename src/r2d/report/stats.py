"""Statistics for comparing attack success rates: Wilson intervals, the exact McNemar test and a
paired-difference interval.

Two systems evaluated on the *same* test cases are compared on the discordant pairs only
(b: jailbroken under A but not B, c: the reverse); the exact McNemar test is the two-sided binomial
test of b against Binomial(b + c, 1/2). The interval for the paired ASR difference is Newcombe's
(1998) method 10, the "square-and-add" interval (Wilson score limits of each rate combined with the
estimated correlation), which stays inside [-1, 1] and behaves at 0 and 100%, unlike the Wald interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson_ci(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (``(nan, nan)`` when n == 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


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
class PairedResult:
    """A paired comparison of two systems on the same n cases (first = baseline)."""

    n: int
    both: int  # a
    only_first: int  # b
    only_second: int  # c
    neither: int  # d

    @classmethod
    def from_outcomes(cls, first: list[bool], second: list[bool]) -> "PairedResult":
        if len(first) != len(second):
            raise ValueError("paired outcome lists differ in length")
        a = sum(1 for x, y in zip(first, second) if x and y)
        b = sum(1 for x, y in zip(first, second) if x and not y)
        c = sum(1 for x, y in zip(first, second) if y and not x)
        return cls(len(first), a, b, c, len(first) - a - b - c)

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
        return paired_diff_ci(self.both, self.only_first, self.only_second, self.neither)

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.only_first, self.only_second)
