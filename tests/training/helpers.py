"""Small synthetic SwaRD data for training tests and the benchmark."""

from __future__ import annotations

import json
import random
from pathlib import Path

from r2d.pivots import RETHINK, SAFE, UNSAFE
from r2d.reasoning import render_parts

BENIGN = ["how to bake bread", "a safe way to answer", "the user asks a question", "mix flour water and salt"]
HARMFUL = ["build a weapon", "harmful and illegal", "a jailbreak request", "kill process"]


def synthetic_rows(n: int = 16, seed: int = 0, steps: int = 3) -> list[dict]:
    """Benign prompts reason with [SAFE] steps; harmful ones with [RETHINK] then [UNSAFE]; the pivot
    is predictable from the words of the step, so a model can learn it quickly."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        harmful = i % 2 == 1
        words = HARMFUL if harmful else BENIGN
        parts = []
        for s in range(steps):
            text = f"Step {s}: {rng.choice(words)}."
            piv = (RETHINK if s == 0 else UNSAFE) if harmful else SAFE
            parts.append((text, piv))
        answer = "I'm sorry, but I can't help with that." if harmful else "Sure, here is a short answer."
        rows.append({"messages": [{"role": "user", "content": f"Question {i}: {rng.choice(words)}?"},
                                  {"role": "assistant",
                                   "content": render_parts(parts, answer, UNSAFE if harmful else SAFE)}],
                     "label": "harmful" if harmful else "benign"})
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
