"""The teacher interface: seeds in, raw teacher replies (text with ``<think>`` and pivots) out.

A teacher is registered with ``@register("teacher", name)`` and has ``name``, ``cache_params()`` (what,
besides the prompt, decides its reply: model, system prompt, sampling), ``provenance()`` and the
coroutine ``agenerate(seeds) -> list[TeacherReply]`` (one per seed, in order; a failure is a reply
with ``error`` set, never an empty "safe" text). Concurrency and retries live inside each teacher.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib.resources import files
from typing import Any, Protocol, runtime_checkable

from r2d.data.seeds import Seed


@dataclass
class TeacherReply:
    text: str = ""  # full text: "<think>...</think> answer", pivots as the teacher wrote them
    error: str | None = None
    retryable: bool = False  # the failure may go away on a rerun (timeout, 429, 5xx)
    meta: dict[str, Any] = field(default_factory=dict)  # latency, tokens, finish reason

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class Teacher(Protocol):
    name: str

    def cache_params(self) -> dict: ...

    def provenance(self) -> dict: ...

    async def agenerate(self, seeds: list[Seed]) -> list[TeacherReply]: ...


def paper_system_prompt() -> str:
    """The R2D paper's safety-aware teacher instruction (App. A.1), verbatim, typos included."""
    return files("r2d").joinpath("resources/sward_teacher_system_prompt.txt").read_text(encoding="utf-8").strip()


def join_reasoning(content: str, reasoning: str | None) -> str:
    """One text from an OpenAI-style reply: server-split ``reasoning_content`` is put back inside
    ``<think>``; a reply that already has ``<think>`` in its content is kept as is."""
    content = content or ""
    if reasoning and reasoning.strip() and "<think>" not in content:
        return f"<think>\n{reasoning.strip()}\n</think>\n\n{content.lstrip()}"
    return content
