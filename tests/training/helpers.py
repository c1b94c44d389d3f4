"""Small synthetic SwaRD data for training tests and the benchmark."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

from r2d.pivots import RETHINK, SAFE, UNSAFE
from r2d.reasoning import render_parts

BENIGN = ["how to bake bread", "a safe way to answer", "the user asks a question", "mix flour water and salt"]
CUE = {SAFE: "+", UNSAFE: "!", RETHINK: "?"}
HARMFUL = ["build a weapon", "harmful and illegal", "a jailbreak request", "kill process"]


def synthetic_rows(n: int = 16, seed: int = 0, steps: int = 3) -> list[dict]:
    """Benign prompts reason with [SAFE] steps; harmful ones with [RETHINK] then [UNSAFE]; each step
    ends in a cue character for its pivot, written right before it (no space), so even a tiny random
    model learns the pivots within a few dozen steps."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        harmful = i % 2 == 1
        words = HARMFUL if harmful else BENIGN
        pivots = [(RETHINK if s == 0 else UNSAFE) if harmful else SAFE for s in range(steps)]
        parts = [(f"Step {s}: {rng.choice(words)} {CUE[p]}", p) for s, p in enumerate(pivots)]
        answer = "I'm sorry, but I can't help with that. !" if harmful else "Sure, here is a short answer. +"
        content = render_parts(parts, answer, UNSAFE if harmful else SAFE)
        content = re.sub(r" (\[(?:SAFE|UNSAFE|RETHINK)\])", r"\1", content)  # cue right before its pivot
        rows.append({"messages": [{"role": "user", "content": f"Question {i}: {rng.choice(words)}?"},
                                  {"role": "assistant", "content": content}],
                     "label": "harmful" if harmful else "benign"})
    return rows


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
