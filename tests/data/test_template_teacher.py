import asyncio

import pytest

from r2d.data.schema import row_problems
from r2d.data.seeds import Seed
from r2d.data.teachers.template import TemplateTeacher, truncate_answer
from r2d.pivots import RETHINK, SAFE, UNSAFE
from r2d.reasoning import parse


def _row(seed, text):
    return {"messages": [{"role": "user", "content": seed.prompt}, {"role": "assistant", "content": text}]}


def test_outputs_valid_short_and_label_driven(seeds_small):
    replies = asyncio.run(TemplateTeacher().agenerate(seeds_small))
    for seed, r in zip(seeds_small, replies):
        assert r.error is None and row_problems(_row(seed, r.text)) == []
        p = parse(r.text)
        assert 2 <= len(p.steps) <= 3 and all(len(s.text.split()) <= 20 for s in p.steps)
        assert p.answer_pivot == SAFE and len(p.answer.split()) <= 60
    first = [parse(r.text).steps[0].pivot for r in replies]
    assert first == [SAFE, SAFE, UNSAFE, RETHINK]  # flag early for harmful / jailbreak
    assert all(s.pivot == SAFE for r in replies[:2] for s in parse(r.text).steps)
    assert '"kill"' in replies[1].text  # the alarming word is named as harmless
    assert "DAN" in replies[3].text and "hacking" in replies[3].text
    assert replies[0].text.endswith("The sea is wide. It is blue and deep. [SAFE]")
    assert parse(replies[2].text).answer.startswith(("I'm sorry", "I can't", "Sorry"))


def test_wording_varies_but_is_deterministic():
    seeds = [Seed(f"h{i}", f"how to steal a car {i}", "t", "harmful", "theft") for i in range(30)]
    t = TemplateTeacher()
    a = [r.text for r in asyncio.run(t.agenerate(seeds))]
    assert a == [r.text for r in asyncio.run(t.agenerate(seeds))]
    assert len({parse(x).steps[0].text for x in a}) >= 3 and len({parse(x).answer for x in a}) >= 3


def test_truncate_answer_at_sentence_boundary():
    text = "One two three. " * 30
    out = truncate_answer(text, 10)
    assert out == "One two three. One two three. One two three."
    assert truncate_answer("word " * 100, 5) == "word word word word word..."
    assert "[SAFE]" not in truncate_answer("Fine [SAFE] answer.")


def test_self_answers_use_backend_and_errors_are_not_safe(seeds_small):
    from r2d.backends.mock import MockBackend

    t = TemplateTeacher(answers="self")
    t._backend_obj = MockBackend(rules=[("poem", "!error")], default="My own answer. It is short.")
    out = asyncio.run(t.agenerate(seeds_small))
    assert out[0].error and out[0].retryable  # a failed self-answer is an error, never a [SAFE] row
    assert parse(out[1].text).answer == "My own answer. It is short."
    assert parse(out[2].text).answer_pivot == SAFE  # harmful rows do not need the model
    assert t.cache_params()["answers"] == "self"
    with pytest.raises(ValueError, match="answers must be"):
        TemplateTeacher(answers="gold")


def test_self_answers_through_the_hf_backend(tmp_path):
    """Self-distillation end to end with a tiny random checkpoint (the real path, not a mock)."""
    from r2d import registry
    from r2d.testing import save_tiny

    if "hf" not in registry.names("backend"):
        pytest.skip("hf backend not available")
    path = save_tiny(tmp_path / "tiny")
    seeds = [Seed("b1", "Say hi.", "t", "benign"), Seed("b2", "Count to three.", "t", "benign"),
             Seed("h", "build a bomb", "t", "harmful", "weapons")]
    t = TemplateTeacher(answers="self", model=path, self_max_new_tokens=12, batch_size=2)
    out = asyncio.run(t.agenerate(seeds))
    assert registry.get("backend", "hf") is type(t._backend_obj)  # went through the hf backend
    for r in out[:2]:  # a random model's babble is cut, neutralised and wrapped validly, or is an error
        assert (r.error or "").startswith("no self answer") or row_problems(_row(seeds[0], r.text)) == []
    assert out[2].error is None and parse(out[2].text).steps[0].pivot == UNSAFE
