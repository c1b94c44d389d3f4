"""The SwaRD example format and its validator.

One example is a chat: ``{"messages": [{"role": "user", "content": ...}, {"role": "assistant",
"content": "<think>\\nstep [PIVOT]\\n\\nstep [PIVOT]\\n</think>\\n\\nanswer [PIVOT]"}], ...}``.
Optional fields: ``id``, ``label`` (benign / harmful / jailbreak), ``source``, ``meta``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from r2d.pivots import PIVOTS, R2D_TOKENS
from r2d.reasoning import parse

ROLES = {"system", "user", "assistant", "tool"}
# Bracketed upper-case words that look like a pivot but are not one ([UN-SAFE], [CAUTION], [safe]...)
_PIVOT_LIKE = re.compile(r"\[(?:UN-?SAFE|SAFE|RETHINK|[A-Z][A-Z_-]{2,15})\]", re.IGNORECASE)


@dataclass
class RowError:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


def row_problems(row: object) -> list[str]:
    """Every reason ``row`` is not a valid SwaRD example (empty list: valid)."""
    if not isinstance(row, dict):
        return [f"not a JSON object (got {type(row).__name__})"]
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return ["not a chat row: missing or empty 'messages' list"]
    out: list[str] = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ROLES:
            out.append(f"messages[{i}]: needs 'role' in {sorted(ROLES)} and a string 'content'")
    if out:
        return out
    if msgs[-1]["role"] != "assistant":
        return ["last message is not an assistant turn"]
    if not any(m["role"] == "user" for m in msgs[:-1]):
        out.append("no user turn before the assistant turn")
    for i, m in enumerate(msgs[:-1]):
        if m["role"] != "assistant" and any(t in m["content"] for t in R2D_TOKENS):
            out.append(f"messages[{i}] ({m['role']}) contains an R2D token; neutralise untrusted text")
    text = msgs[-1]["content"]
    unknown = sorted({m.group(0) for m in _PIVOT_LIKE.finditer(text)} - set(PIVOTS))
    if unknown:
        out.append(f"unknown pivot {', '.join(unknown)}")
    p = parse(text)
    for prob in p.problems:
        if prob == "unclosed <think>":
            out.append("unclosed <think>")
        elif prob == "no <think>":
            out.append("missing <think> reasoning block")
        elif prob == "reasoning step without pivot":
            out.append("missing pivot: a reasoning step has no pivot token")
        elif prob == "answer without pivot":
            out.append("missing pivot: the answer does not end with a pivot token")
        elif prob == "empty answer":
            out.append("empty answer after </think>")
        else:
            out.append(prob)
    if not p.pivots and "no <think>" not in p.problems:
        out.append("missing pivots: no pivot token at all")
    return out


def validate_rows(rows, file: str = "<rows>") -> list[RowError]:
    """``rows``: iterable of (line_no, row_or_exception)."""
    errors = []
    for line, row in rows:
        if isinstance(row, Exception):
            errors.append(RowError(file, line, f"invalid JSON: {row}"))
            continue
        errors += [RowError(file, line, r) for r in row_problems(row)]
    return errors
