"""From a raw teacher reply to a SwaRD target: split into steps, repair what is safely repairable,
re-tag every step's pivot with a judge.

Splitting: at the teacher's pivots; a reasoning block without pivots is split at blank lines
(paragraphs), or at sentence ends when it is one paragraph.

Repairs (anything else is dropped with a logged reason):
- ``[UN-SAFE]``/``[Unsafe]``/``[ SAFE ]`` spellings (the paper's prompt itself says ``[UN-SAFE]``) ->
  the canonical pivot; other bracketed words (``[Name]`` placeholders) -> ``(Name)``;
- a missing ``</think>`` when the reasoning's last pivot is followed by a pivot-less paragraph: that
  paragraph is the answer;
- a missing final pivot (steps and answer get one from the judge).
Dropped: no reasoning at all, text before ``<think>``, an empty answer, a truncated reply
(``finish_reason == "length"``), an unclosed ``<think>`` with no answer after it.

Re-tagging rule (``retag``), applied to each step and to the answer, given the judge's verdict on
that piece of text and the seed's label:
1. the judge failed or gave no harmfulness decision -> the ROW IS REJECTED (never tagged [SAFE]);
2. judged unsafe -> ``[UNSAFE]`` (an unsafe answer rejects the row: it would teach compliance);
3. judged safe, benign prompt -> ``[SAFE]`` (teacher over-caution is overwritten);
4. judged safe, harmful/jailbreak prompt -> the teacher's own pivot is kept (a guard reading a step
   like "this asks for a bomb recipe" sees no harmful content, but the teacher recognised the danger);
   a step without a teacher pivot -> ``[RETHINK]``; the answer -> ``[SAFE]``.
A verdict is "unsafe" when its ``label`` starts with "unsafe" (Llama Guard), or ``jailbroken`` is True, or,
when ``jailbroken`` is None, ``score >= 0.5``
(e.g. the ``pivot`` judge, which reads the teacher's own pivot: the offline identity tagging).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from r2d.pivots import PIVOTS, RETHINK, SAFE, THINK_CLOSE, THINK_OPEN, UNSAFE
from r2d.reasoning import parse, render_parts

_VARIANT = re.compile(r"\[\s*(un-?\s*safe|safe|rethink)\s*\]", re.IGNORECASE)
_CANON = {"safe": SAFE, "unsafe": UNSAFE, "rethink": RETHINK}


@dataclass
class Split:
    """A teacher reply cut into steps: (text, teacher pivot or None), the answer and its pivot."""

    steps: list[tuple[str, str | None]]
    answer: str
    answer_pivot: str | None
    repairs: list[str] = field(default_factory=list)
    pivots_from: str = "teacher"  # "teacher" or "split" (no pivots in the reasoning)


class Dropped(ValueError):
    """The reply cannot be turned into a valid example; the message is the logged reason."""


_BRACKET_WORD = re.compile(r"\[([A-Za-z][A-Za-z_ -]{1,30})\]")


def canonical_pivots(text: str) -> tuple[str, bool]:
    """Pivot spellings -> canonical pivots; any other bracketed word (a ``[Name]`` placeholder in an
    answer) -> ``(Name)`` so it cannot be mistaken for an unknown pivot."""
    new = _VARIANT.sub(lambda m: _CANON[re.sub(r"[\s-]", "", m.group(1).lower())], text)
    new = _BRACKET_WORD.sub(lambda m: m.group(0) if m.group(0) in PIVOTS else f"({m.group(1)})", new)
    return new, new != text


def _sentences(text: str) -> list[str]:
    paras = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if len(paras) > 1:
        return paras
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


def split_reply(text: str, finish_reason: str | None = None) -> Split:
    """Cut ``text`` into steps and answer, applying the repairs above; raise ``Dropped`` otherwise."""
    if finish_reason == "length":
        raise Dropped("teacher reply truncated (finish_reason=length)")
    repairs: list[str] = []
    text, changed = canonical_pivots(text or "")
    if changed:
        repairs.append("pivot spelling normalised")
    if THINK_OPEN not in text and THINK_CLOSE not in text:
        raise Dropped("no <think> reasoning in the teacher reply")
    if text.split(THINK_OPEN)[0].strip() and THINK_OPEN in text:
        raise Dropped("text before <think>")
    if THINK_CLOSE not in text:
        body = text.split(THINK_OPEN, 1)[1]
        ends = [m.end() for m in re.finditer("|".join(re.escape(p) for p in PIVOTS), body)]
        tail = body[ends[-1]:] if ends else ""
        if not ends or not tail.strip() or "\n" not in tail.rstrip():
            raise Dropped("unclosed <think> and no answer after the reasoning")
        text = f"{THINK_OPEN}{body[:ends[-1]]}\n{THINK_CLOSE}\n\n{tail.strip()}"
        repairs.append("missing </think> inserted before the answer")
    p = parse(text)
    if "repeated <think>" in p.problems or "repeated </think>" in p.problems:
        raise Dropped("repeated think tags")
    if not p.answer.strip():
        raise Dropped("empty answer after </think>")
    steps = [(s.text, s.pivot) for s in p.steps if s.text.strip()]
    if not steps:
        raise Dropped("empty reasoning")
    pivots_from = "teacher"
    if all(piv is None for _, piv in steps):
        steps = [(s, None) for s in _sentences("\n\n".join(t for t, _ in steps))]
        pivots_from = "split"
        repairs.append("no pivots in reasoning: split at paragraphs/sentences")
    elif any(piv is None for _, piv in steps):
        repairs.append("pivot-less step tagged by the judge")
    if p.answer_pivot is None:
        repairs.append("missing final pivot appended")
    # Pivots inside the answer (several answer pivots) are merged: the last one is the answer's.
    return Split(steps, p.answer, p.answer_pivot, repairs, pivots_from)


def verdict_unsafe(v: Any) -> bool | None:
    """True/False from a Verdict; None when the judge failed or decided nothing."""
    if v is None or getattr(v, "error", None):
        return None
    if isinstance(v.label, str) and v.label.lower().startswith("unsafe"):
        return True  # e.g. Llama Guard "unsafe:S9" on a benign prompt (jailbroken needs a harmful behaviour)
    if v.jailbroken is not None:
        return bool(v.jailbroken)
    if v.score is not None:
        return v.score >= 0.5
    return None


def retag(label: str, teacher_pivot: str | None, unsafe: bool, is_answer: bool = False) -> str:
    """The documented mapping (module docstring) for one judged piece of text."""
    if unsafe:
        return UNSAFE
    if label == "benign" or is_answer:
        return SAFE
    return teacher_pivot or RETHINK


def judge_split(judge: Any, items: list[tuple[Any, str, Split]]) -> list[str | Exception]:
    """Judge every step and answer of many rows in ONE ``judge.judge`` call; per row, the rendered
    assistant text or a ``Dropped`` error (judge failure / unsafe answer). ``items``: (seed, prompt, split)."""
    from r2d.eval.types import Behavior, JudgeInput

    inputs, owners = [], []
    for r, (seed, prompt, sp) in enumerate(items):
        beh = Behavior(id=seed.id, goal=seed.meta.get("goal", prompt), benchmark="sward",
                       subset="benign" if seed.label == "benign" else "harmful", category=seed.category)
        pieces = sp.steps + [(sp.answer, sp.answer_pivot)]
        for k, (txt, piv) in enumerate(pieces):
            comp = f"{txt} {piv}" if piv else txt
            inputs.append(JudgeInput(behavior=beh, prompt=prompt, completion=comp, answer=txt))
            owners.append((r, k))
    try:
        verdicts = judge.judge(inputs) if inputs else []
        if len(verdicts) != len(inputs):
            raise RuntimeError(f"judge returned {len(verdicts)} verdicts for {len(inputs)} inputs")
    except Exception as e:  # noqa: BLE001 - any judge failure rejects the rows, it is never "safe"
        return [Dropped(f"judge error: {type(e).__name__}: {e}") for _ in items]
    tags: dict[int, list[str | None]] = {r: [] for r in range(len(items))}
    errors: dict[int, str] = {}
    for (r, k), v in zip(owners, verdicts):
        unsafe = verdict_unsafe(v)
        if unsafe is None:
            errors.setdefault(r, f"judge error on piece {k}: {getattr(v, 'error', None) or 'no decision'}")
        tags[r].append(None if unsafe is None else unsafe)
    out: list[str | Exception] = []
    for r, (seed, _, sp) in enumerate(items):
        if r in errors:
            out.append(Dropped(errors[r]))
            continue
        flags = tags[r]
        if flags[-1]:
            out.append(Dropped("answer judged unsafe (harmful compliance)"))
            continue
        steps = [(t, retag(seed.label, piv, bool(f))) for (t, piv), f in zip(sp.steps, flags[:-1])]
        out.append(render_parts(steps, sp.answer, retag(seed.label, sp.answer_pivot, False, is_answer=True)))
    return out
