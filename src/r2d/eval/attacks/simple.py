"""Attacks that need no search: the plain request, an assistant prefill, and few-shot compliance."""

from __future__ import annotations

import random

from r2d.backends.base import Backend
from r2d.eval.attacks.base import make_case, request_text, target_text, user
from r2d.eval.types import Behavior, TestCase
from r2d.registry import register


@register("attack", "direct")
class Direct:
    """The behaviour as one user turn (the no-attack baseline)."""

    name = "direct"

    def generate(self, behaviors: list[Behavior], target: Backend | None = None) -> list[TestCase]:
        return [make_case(b, self.name, user(request_text(b)), mode="static") for b in behaviors]

    def params(self) -> dict:
        return {"attack": self.name}


@register("attack", "prefill")
class Prefill:
    """The assistant turn is pre-filled with the affirmative target; the model continues from it.
    Backends must continue a final assistant turn rather than open a new one."""

    name = "prefill"

    def __init__(self, prefill: str | None = None) -> None:
        self.prefill = prefill  # fixed text for every behaviour; default: the behaviour's target

    def generate(self, behaviors: list[Behavior], target: Backend | None = None) -> list[TestCase]:
        out = []
        for b in behaviors:
            text = self.prefill or target_text(b)
            msgs = user(request_text(b)) + [{"role": "assistant", "content": text}]
            out.append(make_case(b, self.name, msgs, mode="static", prefill=text))
        return out

    def params(self) -> dict:
        return {"attack": self.name, "prefill": self.prefill or "behavior.target"}


@register("attack", "fewshot")
class FewShot:
    """``k`` in-context user/assistant pairs in which the assistant complies (AdvBench goals with their
    "Sure, here is ..." targets, none equal to an evaluated goal), then the behaviour."""

    name = "fewshot"

    def __init__(self, k: int = 3, seed: int = 0) -> None:
        if k < 1:
            raise ValueError(f"attack fewshot: k must be >= 1, got {k}")
        self.k, self.seed = k, seed
        self._pool: list[tuple[str, str]] | None = None

    def pool(self) -> list[tuple[str, str]]:
        if self._pool is None:
            from r2d.eval.benchmarks import AdvBench

            self._pool = [(b.goal, b.target) for b in AdvBench().load()]
        return self._pool

    def generate(self, behaviors: list[Behavior], target: Backend | None = None) -> list[TestCase]:
        banned = {b.goal.strip().lower() for b in behaviors}
        pool = [p for p in self.pool() if p[0].strip().lower() not in banned]
        out = []
        for b in behaviors:
            rng = random.Random(f"{self.seed}:{b.id}")
            shots = rng.sample(pool, self.k)
            msgs = []
            for q, a in shots:
                msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a + "."}]
            msgs += user(request_text(b))
            out.append(make_case(b, self.name, msgs, variant=f"k{self.k}", mode="static", k=self.k,
                                 shots=[q for q, _ in shots]))
        return out

    def params(self) -> dict:
        return {"attack": self.name, "k": self.k, "seed": self.seed, "pool": "advbench/harmful_behaviors.csv"}
