"""Parse and render R2D completions: ``<think> step [PIVOT] step [PIVOT] ... </think> answer [PIVOT]``.

``parse`` never raises: whatever the text (no ``<think>``, a missing ``</think>``, text after the last
pivot, pivots inside the answer, repeated tokens, truncation) it returns a ``Parsed`` with the
problems listed. ``render`` writes the canonical form; on canonical text ``render(parse(t)) == t``
and for any valid structure ``parse(render(p)) == p``. ``StreamParser`` does the same over chunks
and reports each step as soon as its pivot arrives.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from r2d.pivots import PIVOTS, THINK_CLOSE, THINK_OPEN, UNSAFE

_PIVOT_SPLIT = re.compile("(" + "|".join(re.escape(p) for p in PIVOTS) + ")")


@dataclass
class Step:
    text: str
    pivot: str | None  # None: the step ended without a pivot (truncated or malformed)


@dataclass
class Parsed:
    steps: list[Step] = field(default_factory=list)
    answer: str = ""
    answer_pivot: str | None = None
    well_formed: bool = True
    problems: list[str] = field(default_factory=list)
    has_think: bool = False

    @property
    def pivots(self) -> list[str]:
        """Every pivot in order: the steps' then the answer's."""
        out = [s.pivot for s in self.steps if s.pivot]
        return out + ([self.answer_pivot] if self.answer_pivot else [])

    @property
    def reasoning(self) -> str:
        return "\n\n".join(f"{s.text} {s.pivot}" if s.pivot else s.text for s in self.steps)

    def first_unsafe(self) -> int | None:
        """Index of the first step tagged [UNSAFE] (len(steps) if only the answer is), else None."""
        for i, s in enumerate(self.steps):
            if s.pivot == UNSAFE:
                return i
        return len(self.steps) if self.answer_pivot == UNSAFE else None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = [[s.text, s.pivot] for s in self.steps]
        d["pivots"] = self.pivots
        return d


def _segments(text: str) -> tuple[list[Step], list[str]]:
    """Split on pivots into steps; empty segments (repeated pivots) and a pivot-less tail are noted."""
    parts = _PIVOT_SPLIT.split(text)
    steps: list[Step] = []
    problems: list[str] = []
    for i in range(0, len(parts) - 1, 2):
        seg, piv = parts[i].strip(), parts[i + 1]
        if not seg:
            problems.append(f"repeated pivot {piv}" if steps else f"pivot {piv} without text")
            if steps:  # a repeated pivot: the last one wins
                steps[-1].pivot = piv
                continue
        steps.append(Step(seg, piv))
    tail = parts[-1].strip()
    if tail:
        steps.append(Step(tail, None))
    return steps, problems


def parse(text: str) -> Parsed:
    p = Parsed()
    if not isinstance(text, str):
        return Parsed(well_formed=False, problems=["not a string"])
    n_open, n_close = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if n_open > 1:
        p.problems.append("repeated <think>")
    if n_close > 1:
        p.problems.append("repeated </think>")
    if n_close:
        head, _, answer_part = text.partition(THINK_CLOSE)
        answer_part = answer_part.replace(THINK_CLOSE, "")
        if n_open:
            pre, _, reasoning = head.partition(THINK_OPEN)
            if pre.strip():
                p.problems.append("text before <think>")
        else:
            reasoning = head
            p.problems.append("missing <think>")
    elif n_open:
        pre, _, reasoning = text.partition(THINK_OPEN)
        if pre.strip():
            p.problems.append("text before <think>")
        answer_part = None
        p.problems.append("unclosed <think>")
    else:
        reasoning, answer_part = "", text
        p.problems.append("no <think>")
    p.has_think = bool(n_open or n_close)
    reasoning = reasoning.replace(THINK_OPEN, "")

    p.steps, probs = _segments(reasoning)
    p.problems += probs
    if any(s.pivot is None for s in p.steps):
        p.problems.append("reasoning step without pivot")
    if answer_part is not None:
        ans_steps, probs = _segments(answer_part)
        p.problems += probs
        if ans_steps and ans_steps[-1].pivot is not None:
            p.answer_pivot = ans_steps[-1].pivot
        elif ans_steps:
            p.problems.append("answer without pivot")
        if len([s for s in ans_steps if s.pivot]) > 1:
            p.problems.append("pivot inside answer")
        p.answer = " ".join(s.text for s in ans_steps)
        if not p.answer:
            p.problems.append("empty answer")
    if p.has_think and not p.steps:
        p.problems.append("empty reasoning")
    p.well_formed = not p.problems
    return p


def render(p: Parsed) -> str:
    """Canonical text: ``<think>\\nS1 P1\\n\\nS2 P2\\n</think>\\n\\nANSWER P``."""
    out = ""
    if p.steps or p.has_think:
        out = f"{THINK_OPEN}\n{p.reasoning}\n{THINK_CLOSE}\n\n"
    out += p.answer
    if p.answer_pivot:
        out += f" {p.answer_pivot}"
    return out


def render_parts(steps: list[tuple[str, str]], answer: str, answer_pivot: str) -> str:
    return render(Parsed([Step(t, piv) for t, piv in steps], answer, answer_pivot, has_think=True))


def visible_answer(text: str) -> str:
    """What a user or a refusal judge should read: the answer with the think block and pivots removed.
    With an unclosed think block there is no answer (the empty string)."""
    return parse(text).answer


class StreamParser:
    """Incremental parser: ``feed`` chunks, get each newly completed step back as soon as its pivot
    arrives; ``result()`` equals ``parse`` of the concatenated text."""

    def __init__(self) -> None:
        self.text = ""
        self._pos = 0  # offset in the reasoning up to which steps were reported
        self.completed: list[Step] = []

    def feed(self, chunk: str) -> list[Step]:
        self.text += chunk
        start = self.text.find(THINK_OPEN)
        if start < 0:
            return []
        body_start = start + len(THINK_OPEN)
        end = self.text.find(THINK_CLOSE, body_start)
        body = self.text[body_start:] if end < 0 else self.text[body_start:end]
        new: list[Step] = []
        for m in _PIVOT_SPLIT.finditer(body, self._pos):
            seg = body[self._pos:m.start()].replace(THINK_OPEN, "").strip()
            if seg:
                new.append(Step(seg, m.group(1)))
            elif self.completed or new:
                (new or self.completed)[-1].pivot = m.group(1)
            self._pos = m.end()
        self.completed += new
        return new

    @property
    def in_reasoning(self) -> bool:
        return THINK_OPEN in self.text and THINK_CLOSE not in self.text

    def result(self) -> Parsed:
        return parse(self.text)
