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


# --- real reasoning-model chat templates (tests/fixtures/chat_templates, sources in its README) ---
TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "chat_templates"
# name -> (template file, tokenizer family, model architecture, tied embeddings, chat_template kwargs)
REASONING_MODELS = {
    "r1-distill-qwen": ("deepseek-r1-distill.jinja", "deepseek", "qwen2", False),
    "r1-distill-llama": ("deepseek-r1-distill.jinja", "deepseek", "llama", False),
    "qwq-32b": ("qwq-32b.jinja", "qwen", "qwen2", False),
    "qwen3": ("qwen3.jinja", "qwen", "qwen3", True),
}


def reasoning_tokenizer(name: str):
    """A tiny tokenizer carrying the real chat template of ``name`` and holding ``<think>``."""
    from r2d.testing import reasoning_tokenizer as make

    file, family, _, _ = REASONING_MODELS[name]
    return make((TEMPLATE_DIR / file).read_text(encoding="utf-8"), family)


def save_reasoning_model(name: str, path: Path) -> str:
    """A tiny random model of ``name``'s architecture with its tokenizer and real template."""
    from r2d.testing import tiny_model

    _, _, arch, tied = REASONING_MODELS[name]
    tok = reasoning_tokenizer(name)
    tiny_model(tok, arch=arch, tie=tied).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def multi_turn_row(row: dict, old_reasoning: str = "OLD-REASONING-NOT-SHOWN") -> dict:
    """``row`` behind an earlier exchange whose assistant turn carries reasoning."""
    history = [{"role": "user", "content": "Earlier question?"},
               {"role": "assistant", "content": f"<think>\n{old_reasoning} [SAFE]\n</think>\n\nEarlier answer. [SAFE]"}]
    return {**row, "messages": history + row["messages"]}
