"""The stream filter against the whole-reply view: same result for every chunking, and what each
policy must never let out early."""

import pytest

from r2d.backends.base import Completion
from r2d.infer.policies import DEFAULT_REFUSAL, get_policy
from r2d.serve.present import StreamFilter, present, split_think, vetted_prefix

from .conftest import SAFE_REPLY, UNSAFE_REPLY

MIXED = ("<think>\nThe user asks about chemistry. [SAFE]\n\nHere are synthesis steps for a toxin. [UNSAFE]\n\n"
         "I should refuse instead. [RETHINK]\n</think>\n\nI can't help with that. [SAFE]")
TEXTS = [SAFE_REPLY, UNSAFE_REPLY, MIXED, "no think block at all, just text",
         "<think>\nunclosed reasoning [SAFE] and more", "<think>\nA [SAFE]\n</think>\n\nPart one [SAFE]\nPart two [SAFE]",
         "<think>\n[SAFE] odd\n</think>\n\nans", "<think>\nA [SAFE]\n</think>\n\nanswer without pivot", ""]
POLICIES = ["raw", "hide-reasoning", "drop-unsafe-steps", "refuse-on-unsafe"]


def run_stream(policy, text, size, meta=None):
    f = StreamFilter(get_policy(policy))
    sent = []  # (channel, delta, text fed so far)
    fed = ""
    for i in range(0, len(text), size):
        fed += text[i:i + size]
        dr, dc = f.feed(text[i:i + size])
        sent += [("r", dr, fed)] if dr else []
        sent += [("c", dc, fed)] if dc else []
    dr, dc, view = f.finish(Completion(text=text, meta=meta or {}))
    sent += [("r", dr, text)] if dr else []
    sent += [("c", dc, text)] if dc else []
    return f, sent, view


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("text", TEXTS)
def test_stream_joins_to_the_whole_view_for_every_chunk_size(policy, text):
    whole = present(get_policy(policy), Completion(text=text))
    for size in (1, 2, 3, 5, 7, 13, max(1, len(text))):
        f, sent, view = run_stream(policy, text, size)
        assert view == whole
        assert "".join(d for ch, d, _ in sent if ch == "r") == (whole.reasoning or "")
        assert "".join(d for ch, d, _ in sent if ch == "c") == whole.content
        assert not f.diverged


@pytest.mark.parametrize("text", TEXTS)
def test_hide_reasoning_never_sends_reasoning(text):
    for size in (1, 4, 9):
        _, sent, _ = run_stream("hide-reasoning", text, size)
        assert all(ch == "c" for ch, _, _ in sent)
        for _, d, fed in sent:
            assert "<think>" not in d and "[SAFE]" not in d and "[UNSAFE]" not in d
            if fed.lstrip().startswith("<think>"):
                assert "</think>" in fed  # nothing went out while the think block was open


def test_refuse_on_unsafe_never_sends_answer_text_of_a_flagged_reply():
    for text in (UNSAFE_REPLY, MIXED):
        for size in (1, 3, 8, len(text)):
            _, sent, view = run_stream("refuse-on-unsafe", text, size)
            content = "".join(d for ch, d, _ in sent if ch == "c")
            assert content == DEFAULT_REFUSAL and view.refused
            reasoning = "".join(d for ch, d, _ in sent if ch == "r")
            assert "[UNSAFE]" not in reasoning and "synthesis" not in reasoning and "Giving steps" not in reasoning
    # with [UNSAFE] as a stop string the text ends before it; the stop reason flags it
    cut = "<think>\nA harmless start. [SAFE]\n\nNow the harmful step"
    _, sent, view = run_stream("refuse-on-unsafe", cut, 4, meta={"stop": "[UNSAFE]"})
    assert view.refused and view.content == DEFAULT_REFUSAL and view.reasoning == "A harmless start. [SAFE]"
    assert "harmful" not in "".join(d for _, d, _ in sent)


def test_refuse_on_unsafe_answer_waits_for_the_whole_reply():
    _, sent, _ = run_stream("refuse-on-unsafe", SAFE_REPLY, 2)
    first_content = next(fed for ch, _, fed in sent if ch == "c")
    assert first_content == SAFE_REPLY  # released only at the end


def test_views():
    assert split_think(SAFE_REPLY) == ("The user wants ordinary help. [SAFE]", "Here is a helpful answer. [SAFE]")
    assert split_think("plain") == (None, "plain")
    assert vetted_prefix(MIXED) == "<think>\nThe user asks about chemistry. [SAFE]"
    v = present(get_policy("drop-unsafe-steps"), Completion(text=MIXED))
    assert "toxin" not in (v.reasoning or "") and "chemistry" in v.reasoning and v.content == "I can't help with that."
    v = present(get_policy("refuse-on-unsafe", refusal="No."), Completion(text=UNSAFE_REPLY))
    assert v.content == "No." and v.refused
