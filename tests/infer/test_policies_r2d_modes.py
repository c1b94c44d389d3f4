"""R2D-p and R2D-n (issue 14): inference modes on any backend, through the Backend protocol only."""

import json

import pytest

from r2d.backends.base import GenParams, render_prompt
from r2d.backends.mock import MockBackend
from r2d.infer.policies import R2D_P_PROMPT, cut_words, generate_with_policy, get_policy
from r2d.pivots import SAFE, UNSAFE

LONG = " ".join(f"w{i}" for i in range(80))
REPLY = f"<think>\n{LONG} [SAFE]\n</think>\n\nHere is the answer. [SAFE]"


def test_r2d_p_puts_the_instructions_in_a_trusted_system_prompt(byte_tok):
    be = MockBackend()
    out = generate_with_policy(be, [[{"role": "user", "content": "say [UNSAFE]"}],
                                    [{"role": "system", "content": "Be brief [SAFE]"}, {"role": "user", "content": "hi"}]],
                               GenParams(), "r2d-p")
    first, second = be.calls
    assert first[0] == {"role": "system", "content": R2D_P_PROMPT} and SAFE in first[0]["content"]
    assert first[1]["content"] == "say (UNSAFE)"  # the user's pivot is still neutralised
    assert second[0]["content"].startswith(R2D_P_PROMPT) and second[0]["content"].endswith("Be brief (SAFE)")
    assert len(second) == 2 and out[0].ok and out[0].meta["policy"] == "r2d-p"
    # the pivots of the instructions survive the guard in a real chat template too
    chat = get_policy("r2d-p").prepare([[{"role": "user", "content": "[UNSAFE] hi"}]])[0]
    text = render_prompt(byte_tok, chat)
    assert UNSAFE in text.split("<|im_start|>user")[0] and "(UNSAFE) hi" in text


def test_cut_words_keeps_text_up_to_the_budget():
    assert cut_words("a  b\nc d", 3) == ("a  b\nc", 3, True)
    assert cut_words("a b", 3) == ("a b", 2, False)


def test_r2d_n_ends_reasoning_at_the_word_budget_and_lets_the_model_answer():
    be = MockBackend(default=REPLY)
    (c,) = generate_with_policy(be, [[{"role": "user", "content": "q"}]], GenParams(max_new_tokens=200), "r2d-n",
                                words=30)
    assert len(be.calls) == 2
    prefill = be.calls[1][-1]
    assert prefill["role"] == "assistant" and prefill["content"].endswith("w29\n</think>\n\n")
    assert c.text == prefill["content"] + "Here is the answer. [SAFE]"
    assert c.meta["r2d_n"] == {"budget_words": 30, "reasoning_words": 30, "cut": True, "closed_by_model": False}
    from r2d.reasoning import parse

    assert len(parse(c.text).reasoning.split()) == 30 and parse(c.text).answer.startswith("Here is the answer")


def test_r2d_n_keeps_a_short_reasoning_and_passes_errors_and_plain_answers():
    short = "<think>\nBenign. [SAFE]\n</think>\n\nSure. [SAFE]"
    be = MockBackend(rules=[("short", short), ("fail", "!error"), ("plain", "Just an answer.")])
    chats = [[{"role": "user", "content": w}] for w in ("short", "fail", "plain")]
    out = generate_with_policy(be, chats, GenParams(max_new_tokens=200), "r2d-n")
    assert out[0].text == short and out[0].meta["r2d_n"]["cut"] is False and out[0].meta["r2d_n"]["closed_by_model"]
    assert out[1].error and out[2].text == "Just an answer." and out[2].meta["r2d_n"]["no_reasoning"]
    assert len(be.calls) == 4  # the plain answer ended (stop) in phase 1: no second call for it


def test_r2d_n_on_hf_continues_from_the_closed_think_block(lively):
    from r2d.pivots import open_think_in_template

    open_think_in_template(lively.tokenizer)
    (c,) = generate_with_policy(lively, [[{"role": "user", "content": "bake bread"}]],
                                GenParams(max_new_tokens=24), "r2d-n", words=3)
    assert c.ok and c.text.startswith("<think>") and "</think>" in c.text
    assert c.meta["r2d_n"]["reasoning_words"] <= 3
    assert c.completion_tokens > 0


def test_generate_and_eval_cli_accept_the_modes(tmp_path):
    from r2d.cli import main

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": 1, "prompt": "hello"}) + "\n")
    rules = tmp_path / "mock.json"
    rules.write_text(json.dumps({"default": REPLY}))
    for policy in ("r2d-p", "r2d-n"):
        out = tmp_path / f"{policy}.jsonl"
        assert main(["generate", "--backend", "mock", "--model", str(rules), "--policy", policy, "--think-words", "10",
                     "--input", str(inp), "--output", str(out)]) == 0
        row = json.loads(out.read_text())
        assert row["reasoning_words"] is not None and row["answer_words"] == 4
    assert row["reasoning_words"] == 10 and row["r2d_n"]["budget_words"] == 10
    res_dir = tmp_path / "ev"
    inp.write_text(json.dumps({"id": 1, "goal": "hello"}) + "\n")
    assert main(["eval", "--backend", "mock", "--model", str(rules), "--policy", "r2d-n", "--think-words", "10",
                 "--prompts", str(inp), "--output", str(res_dir)]) == 0
    res = json.loads((res_dir / "results.json").read_text())
    assert res["cells"][0]["policy"] == "r2d-n(words=10)"
    assert res["cells"][0]["reasoning_words_mean"] == 10 and res["words"][0]["reasoning_words_mean"] == 10


def test_r2d_n_gives_a_model_without_reasoning_no_more_tokens_than_plain_generation():
    # a model that opens no think block and is cut at the reasoning budget (3 x 30 + 16 = 106 tokens) is left to
    # answer: its continuation gets the rest of max_new_tokens, not a fresh max_new_tokens (which made the
    # base + R2D-n arm's replies up to 266 tokens long against the plain arm's 160)
    long_plain = " ".join(f"a{i}" for i in range(300))
    be = MockBackend(default=long_plain)
    (c,) = generate_with_policy(be, [[{"role": "user", "content": "q"}]], GenParams(max_new_tokens=160), "r2d-n",
                                words=30)
    assert len(be.calls) == 2 and c.meta["r2d_n"]["no_reasoning"]
    assert 150 <= c.completion_tokens <= 160 and c.finish_reason == "length"
    # a reply already at the whole budget after the first call is not continued
    be2 = MockBackend(default=long_plain)
    (c2,) = generate_with_policy(be2, [[{"role": "user", "content": "q"}]], GenParams(max_new_tokens=50), "r2d-n",
                                 words=30)
    assert len(be2.calls) == 1 and c2.completion_tokens <= 50 and c2.meta["r2d_n"]["no_reasoning"]


def test_eval_samples_keep_the_r2d_n_record(tmp_path):
    # samples.jsonl dropped every non-scalar meta value, so meta["r2d_n"] (words kept, cut, closed by the model)
    # never reached the eval's samples although the docs point there
    from r2d.cli import main

    rules = tmp_path / "mock.json"
    rules.write_text(json.dumps({"default": REPLY}))
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": 1, "goal": "hello"}) + "\n")
    assert main(["eval", "--backend", "mock", "--model", str(rules), "--policy", "r2d-n", "--think-words", "10",
                 "--prompts", str(inp), "--output", str(tmp_path / "ev")]) == 0
    row = json.loads((tmp_path / "ev" / "samples.jsonl").read_text().splitlines()[0])
    assert row["meta"]["r2d_n"] == {"budget_words": 10, "reasoning_words": 10, "cut": True, "closed_by_model": False}
