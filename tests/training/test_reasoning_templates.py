"""Training targets under the real chat templates of reasoning models (R1 distills, QwQ, Qwen3):
the final reply keeps its reasoning, the prompt is the generation prompt the model expects, the
tokenizer's own <think> ids are reused and history is rendered as the template renders it."""

import pytest

from r2d.backends.base import render_prompt
from r2d.pivots import expand_tokenizer, open_think_in_template, pivot_ids
from r2d.testing import tiny_model
from r2d.training.collate import IGNORE, render_row, tokenize_row
from tests.training.helpers import REASONING_MODELS, multi_turn_row, reasoning_tokenizer, synthetic_rows

# name -> the generation prompt the template writes for a one-turn chat (before r2d touches it)
GENERATION_PROMPT = {
    "r1-distill-qwen": "<｜begin▁of▁sentence｜><｜User｜>Hello<｜Assistant｜><think>\n",
    "r1-distill-llama": "<｜begin▁of▁sentence｜><｜User｜>Hello<｜Assistant｜><think>\n",
    "qwq-32b": "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n<think>\n",
    "qwen3": "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
}
END = {"r1-distill-qwen": "<｜end▁of▁sentence｜>", "r1-distill-llama": "<｜end▁of▁sentence｜>",
       "qwq-32b": "<|im_end|>", "qwen3": "<|im_end|>"}
CASES = list(REASONING_MODELS)


def _ready(name, think_in_prompt=False):
    tok = reasoning_tokenizer(name)
    think = (tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>"))
    model = tiny_model(tok, arch=REASONING_MODELS[name][2])
    added = expand_tokenizer(tok, model)
    if think_in_prompt:
        open_think_in_template(tok)
    return tok, think, added


def _split(tok, ex):
    n = next(i for i, lab in enumerate(ex.labels) if lab != IGNORE)
    return tok.decode(ex.input_ids[:n]), tok.decode(ex.input_ids[n:])


@pytest.mark.parametrize("name", CASES)
def test_generation_prompt_is_the_models_own(name):
    tok = reasoning_tokenizer(name)
    assert render_prompt(tok, [{"role": "user", "content": "Hello"}]) == GENERATION_PROMPT[name]


@pytest.mark.parametrize("name", CASES)
def test_existing_think_ids_are_reused(name):
    tok, think, added = _ready(name)
    assert added == ["[SAFE]", "[UNSAFE]", "[RETHINK]"]  # <think>/</think> were already there
    ids = pivot_ids(tok)
    assert (ids.think_open, ids.think_close) == think


@pytest.mark.parametrize("think_in_prompt", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_target_keeps_reasoning(name, think_in_prompt):
    tok, _, _ = _ready(name, think_in_prompt)
    row = synthetic_rows(2)[1]
    reply = row["messages"][-1]["content"]
    ex = tokenize_row(tok, row, 512)
    prompt, target = _split(tok, ex)
    reasoning = reply.split("</think>")[0].replace("<think>", "").strip()
    answer = reply.split("</think>")[1].strip()
    assert reasoning in target and answer in target and "</think>" in target
    assert target.endswith(END[name])
    # the prompt the model is trained on is the prompt it is served with
    served = render_prompt(tok, row["messages"][:-1])
    assert prompt == served
    if served.endswith("<think>\n"):  # the template opened the block: the target continues it
        assert not target.lstrip().startswith("<think>")
        assert (prompt + target).count("<think>") == 1
    else:
        assert target.startswith("<think>\n")


@pytest.mark.parametrize("name", CASES)
def test_history_rendered_as_the_template_does(name):
    tok, _, _ = _ready(name)
    row = multi_turn_row(synthetic_rows(1)[0])
    ex = tokenize_row(tok, row, 512)
    prompt, target = _split(tok, ex)
    # every one of these templates drops the reasoning of an assistant turn before the last query
    assert "OLD-REASONING-NOT-SHOWN" not in prompt + target
    assert "Earlier answer. [SAFE]" in prompt
    assert prompt == render_prompt(tok, row["messages"][:-1])
    assert row["messages"][-1]["content"].split("</think>")[0].replace("<think>", "").strip() in target


def test_r1_template_alone_drops_the_reasoning():
    """The reason for the fallback: rendering the final turn through the R1 template loses it."""
    tok = reasoning_tokenizer("r1-distill-qwen")
    row = synthetic_rows(1)[0]
    full = tok.apply_chat_template(row["messages"], tokenize=False)
    assert "</think>" not in full and "Step 0" not in full
    prompt, text = render_row(tok, row["messages"])
    assert text.startswith(prompt) and "Step 0" in text and text.endswith("<｜end▁of▁sentence｜>")
