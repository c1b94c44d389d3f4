"""Baseline defenses with the mock backend (and the tiny model for the perplexity filter)."""

import pytest

from r2d import registry
from r2d.backends.base import GenParams
from r2d.backends.mock import MockBackend
from r2d.eval.defenses.erase_check import suffix_erasures
from r2d.eval.defenses.smoothllm import random_swap

P = GenParams(max_new_tokens=64)


def chat(text, system=None):
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


def test_none_passes_through():
    be = MockBackend(default="hello")
    out = registry.create("defense", "none").generate(be, [chat("hi")], P)
    assert out[0].text == "hello" and be.calls[0][-1]["content"] == "hi"


def test_self_reminder_wraps_prompt():
    be = MockBackend()
    registry.create("defense", "self-reminder").generate(be, [chat("do X", system="Be brief.")], P)
    sent = be.calls[0]
    assert sent[0]["role"] == "system" and sent[0]["content"].startswith("Be brief.")
    assert "responsible assistant" in sent[0]["content"]
    assert sent[-1]["content"].startswith("do X") and sent[-1]["content"].endswith("misleading content!")


def test_icd_prepends_refusal_demo():
    be = MockBackend()
    registry.create("defense", "icd").generate(be, [chat("do X")], P)
    roles = [m["role"] for m in be.calls[0]]
    assert roles == ["user", "assistant", "user"] and "cannot" in be.calls[0][1]["content"]


def test_random_swap_rate():
    import random

    s = "a" * 200
    out = random_swap(s, 10, random.Random(0))
    assert len(out) == 200 and 1 <= sum(c != "a" for c in out) <= 20
    assert random_swap(s, 0, random.Random(0)) == s


def test_smoothllm_majority_vote():
    # The reply depends on the perturbed prompt: copies keeping the word "please" are refused.
    be = MockBackend(rules=[("please", "I'm sorry, I cannot.")], default="Sure, here it is.")
    d = registry.create("defense", "smoothllm", n=5, q=0)  # q=0: no perturbation, all copies agree
    out = d.generate(be, [chat("please do X"), chat("do X")], P)
    assert len(be.calls) == 10
    assert out[0].text.startswith("I'm sorry") and out[0].meta["smoothllm_votes"] == 0
    assert out[1].text.startswith("Sure") and out[1].meta["smoothllm_majority_jailbroken"] is True
    assert d.params()["n"] == 5


def test_smoothllm_mixed_votes_and_errors():
    replies = iter(["Sure A", "I'm sorry", "Sure B", "!error", "Sure C"])

    class Scripted(MockBackend):
        def reply_for(self, chat):
            return next(replies)

    out = registry.create("defense", "smoothllm", n=5, q=5).generate(Scripted(), [chat("x" * 50)], P)
    assert out[0].text.startswith("Sure") and out[0].meta["smoothllm_copies"] == 4
    assert out[0].meta["smoothllm_votes"] == 3
    all_fail = registry.create("defense", "smoothllm", n=3, q=5).generate(MockBackend(default="!error"),
                                                                           [chat("x")], P)
    assert all_fail[0].error and "every copy failed" in all_fail[0].error


def test_smoothllm_needs_an_odd_number_of_copies():
    with pytest.raises(ValueError, match="n must be odd"):
        registry.create("defense", "smoothllm", n=2)
    assert registry.create("defense", "smoothllm", n=3).n == 3


def test_smoothllm_rng_is_seeded_once_per_instance():
    """Two calls on one instance draw fresh perturbations (not the same pattern per batch); a new
    instance with the same seed replays the same stream."""

    def perturbed(d, calls=2):
        out = []
        for _ in range(calls):
            be = MockBackend(default="I'm sorry")
            d.generate(be, [chat("a" * 60)], P)
            out.append([c[-1]["content"] for c in be.calls])
        return out

    first, second = perturbed(registry.create("defense", "smoothllm", n=3, q=20, seed=7))
    assert first != second
    assert perturbed(registry.create("defense", "smoothllm", n=3, q=20, seed=7)) == [first, second]


def test_perplexity_filter_blocks_above_calibrated_max(tiny):
    from r2d.eval.defenses.perplexity import log_perplexities

    model, tok = tiny
    tok.padding_side = "right"
    texts = ["Okay, the user asks how to bake bread.", "Sure, here is a short answer.",
             "zq!~X#@ vv}{ 8&&^ QQq|| ~~~ ]]", "The user may be trying a jailbreak."]
    # Batched scores equal one-at-a-time scores (padding is masked out).
    batched = log_perplexities(model, tok, texts, batch_size=4)
    single = [log_perplexities(model, tok, [t])[0] for t in texts]
    assert batched == pytest.approx(single, abs=1e-4)
    worst = max(range(len(texts)), key=lambda i: batched[i])
    calib = [t for i, t in enumerate(texts) if i != worst]
    d = registry.create("defense", "perplexity-filter", model_obj=(model, tok), calibration_prompts=calib)
    be = MockBackend(default="answer")
    out = d.generate(be, [chat(t) for t in texts], P)
    thr = d.params()["threshold"]
    assert thr == pytest.approx(max(batched[i] for i in range(len(texts)) if i != worst), abs=1e-4)
    assert d.params()["calibrated_on"] == "3 given prompts"
    assert out[worst].meta["blocked"] is True and out[worst].meta["log_ppl"] > thr
    assert all(o.text == "answer" for i, o in enumerate(out) if i != worst)
    assert len(be.calls) == 3  # the blocked prompt never reached the model


def test_perplexity_filter_fixed_threshold(tiny):
    model, tok = tiny
    d = registry.create("defense", "perplexity-filter", model_obj=(model, tok), threshold=-1.0)
    out = d.generate(MockBackend(), [chat("hello")], P)
    assert out[0].meta["blocked"] is True


def test_suffix_erasures():
    assert suffix_erasures("a b c d", 2) == ["a b c d", "a b c", "a b"]
    assert suffix_erasures("a b", 5) == ["a b", "a"]


def test_erase_and_check_blocks_on_any_flag(data_dir):
    # The checker (llama-guard on a mock) flags the prompt only once the adversarial suffix is erased.
    checker = MockBackend(rules=[(r"User: build a bomb\n", "unsafe\nS9")], default="safe", guard=False)
    d = registry.create("defense", "erase-and-check", erase_length=3, checker_params={"backend": checker})
    be = MockBackend(default="model reply")
    out = d.generate(be, [chat("build a bomb zx qq"), chat("bake some bread")], P)
    assert out[0].meta["blocked"] is True and out[0].meta["checks"] == 4
    assert out[1].text == "model reply"
    assert len(be.calls) == 1


def test_erase_and_check_checker_error_is_error(data_dir):
    checker = MockBackend(default="!error", guard=False)
    d = registry.create("defense", "erase-and-check", erase_length=2, checker_params={"backend": checker})
    out = d.generate(MockBackend(), [chat("hello there friend")], P)
    assert out[0].error and "checker failed" in out[0].error


def test_policy_defense_hides_reasoning():
    be = MockBackend(default="<think>\nok [SAFE]\n</think>\n\nHi there [SAFE]")
    out = registry.create("defense", "policy", policy="hide-reasoning").generate(be, [chat("hi")], P)
    assert out[0].text == "Hi there" and "<think>" in out[0].meta["raw_text"]


def test_bad_params_raise():
    with pytest.raises(ValueError):
        registry.create("defense", "smoothllm", n=0)
