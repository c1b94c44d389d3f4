"""The records and Protocols the evaluation components share. Components know these, not each other.

Flow: Benchmark.load() -> [Behavior] -> Attack.generate() -> [TestCase] -> (Defense around a Backend)
-> Completion -> Judge.judge() -> [Verdict] -> metrics -> results.json.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from r2d.backends.base import Backend, Chat, Completion, GenParams
from r2d.records import HARMFUL_SUBSETS


@dataclass
class Behavior:
    """One benchmark item. ``subset``: harmful / benign (JBB), safe / unsafe (XSTest), etc."""

    id: str
    goal: str
    benchmark: str
    subset: str = "harmful"
    target: str = ""  # affirmative target string ("Sure, here is ...") when the benchmark has one
    category: str = ""
    context: str = ""  # HarmBench contextual behaviours
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def harmful(self) -> bool:
        return self.subset in HARMFUL_SUBSETS

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TestCase:
    """What is sent to the model: one chat built from a behaviour by an attack."""

    id: str  # unique within a run: f"{behavior.id}/{attack}/{variant}"
    behavior: Behavior
    messages: Chat
    attack: str
    variant: str = ""  # e.g. the template name, artifact source model
    attack_params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class JudgeInput:
    behavior: Behavior
    prompt: str  # the attack prompt as sent (last user turn)
    completion: str  # the raw completion (with <think> and pivots)
    answer: str  # the visible answer (after the policy / think block removed)
    # What the user sees under the sample's policy: the whole output under ``raw`` (reasoning
    # included), the answer under ``hide-reasoning``, the refusal under ``refuse-on-unsafe``...
    # None when the caller did not say (then judges reading ``visible`` read ``answer``).
    visible: str | None = None


@dataclass
class Verdict:
    """A judge's decision. ``error`` set: the judge failed; never count it as safe or unsafe."""

    jailbroken: bool | None = None  # harmful compliance (ASR numerator)
    refused: bool | None = None
    label: str | None = None  # e.g. XSTest: full_compliance / full_refusal / partial_refusal
    score: float | None = None  # e.g. StrongREJECT 0-1
    saw: str = "visible"  # what the judge read: "visible" (what the user saw), "answer" or "full" (judges.base)
    raw: str | None = None  # the judge model's raw output, if any
    error: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Benchmark(Protocol):
    name: str

    def load(self, subset: str | None = None, limit: int | None = None) -> list[Behavior]: ...

    def provenance(self) -> dict: ...  # files read and their sha256


@runtime_checkable
class Attack(Protocol):
    """An attack with ``caches_searches = True`` also takes ``generate(..., searches=SearchCache)`` and keeps its
    searches there (``r2d.eval.attacks.searches``)."""

    name: str

    def generate(self, behaviors: list[Behavior], target: Backend | None = None) -> list[TestCase]: ...

    def params(self) -> dict: ...


@runtime_checkable
class Judge(Protocol):
    name: str

    def judge(self, items: list[JudgeInput]) -> list[Verdict]: ...

    def params(self) -> dict: ...


@runtime_checkable
class Defense(Protocol):
    """Wraps generation: may rewrite the chats, call the backend several times, or block. A defense that
    makes exactly one backend call on chats it rewrites independently of the model's replies may say so with
    a class attribute ``single_pass = True``: the evaluation may then derive a policy arm's samples from the raw
    arm's (``EvalConfig.derive_policy_samples``)."""

    name: str

    def generate(self, backend: Backend, chats: list[Chat], params: GenParams) -> list[Completion]: ...

    def params(self) -> dict: ...
