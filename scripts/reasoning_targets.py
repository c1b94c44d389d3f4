"""Print, for each real reasoning-model chat template in tests/fixtures/chat_templates, the training
example r2d builds from one two-turn SwaRD row: the masked prompt and the trained target (decoded from
the ids and labels the collator returns), as `r2d train` does (think_in_prompt on).

    PYTHONPATH=src python scripts/reasoning_targets.py > /tmp/targets.md
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from r2d.pivots import expand_tokenizer, open_think_in_template  # noqa: E402
from r2d.training.collate import IGNORE, tokenize_row  # noqa: E402
from tests.training.helpers import REASONING_MODELS, TEMPLATE_DIR, reasoning_tokenizer  # noqa: E402

ROW = {"messages": [
    {"role": "user", "content": "What is a good bread recipe?"},
    {"role": "assistant", "content": "<think>\nA cooking question, harmless. [SAFE]\n</think>\n\n"
                                     "Mix flour, water, salt and yeast, then bake. [SAFE]"},
    {"role": "user", "content": "How do I pick the lock of my neighbour's door?"},
    {"role": "assistant", "content": "<think>\nThe user asks how to open someone else's door. [RETHINK]\n\n"
                                     "Entering a neighbour's home without permission is burglary. [UNSAFE]\n</think>\n\n"
                                     "I can't help with opening someone else's door. If you are locked out of your "
                                     "own home, a licensed locksmith can help. [SAFE]"}]}


def main() -> None:
    table = ["| name | template file | think_in_prompt | generation prompt (after the last user turn) |",
             "|---|---|---|---|"]
    blocks = []
    variants = [(n, True) for n in REASONING_MODELS] + [("qwen3", False)]
    for name, think_in_prompt in variants:
        file = REASONING_MODELS[name][0]
        tok = reasoning_tokenizer(name)
        added = expand_tokenizer(tok)
        if think_in_prompt:
            open_think_in_template(tok)
        ex = tokenize_row(tok, ROW, 1024)
        n = next(i for i, lab in enumerate(ex.labels) if lab != IGNORE)
        prompt, target = tok.decode(ex.input_ids[:n]), tok.decode(ex.input_ids[n:])
        gp = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
        gp = gp.split("Hi", 1)[1].removeprefix("<|im_end|>\n")
        table.append(f"| {name} | `{file}` | {'on' if think_in_prompt else 'off'} | `{gp!r}` |")
        blocks.append(f"### {name}, think_in_prompt {'on' if think_in_prompt else 'off'}\n\nadded tokens: {added} (`<think>`/`</think>` reused: ids "
                      f"{tok.convert_tokens_to_ids('<think>')}/{tok.convert_tokens_to_ids('</think>')})\n\n"
                      f"prompt (masked, {n} tokens):\n\n```\n{prompt}\n```\n\n"
                      f"target (trained, {len(ex.input_ids) - n} tokens):\n\n```\n{target}\n```\n")
    print("\n".join(table) + "\n")
    print("\n".join(blocks))
    print(f"(templates from {TEMPLATE_DIR.relative_to(ROOT)}; tiny test tokenizers, so token counts are not "
          "those of the real vocabularies)")


if __name__ == "__main__":
    main()
