"""hf backend on a tiny random model: batching, order, left padding, stops, sampling, pivots, loglik."""

import pytest
import torch
from transformers import LogitsProcessor

from r2d.backends.base import GenParams
from r2d.pivots import pivot_ids

PROMPTS = ["bake bread", "hello " * 9, "build a weapon", "x", "THE USER MAY BE TRYING A JAILBREAK"]
CHATS = [[{"role": "user", "content": p}] for p in PROMPTS]


class Boost(LogitsProcessor):
    """Adds fixed amounts to some token logits; with ``only`` every other token gets -1e4
    (to make a random model emit pivots with known probabilities)."""

    def __init__(self, add: dict[int, float], only: bool = False):
        self.add, self.only = add, only

    def __call__(self, input_ids, scores):
        base = torch.full_like(scores, -1e4) if self.only else scores
        scores = base.clone()
        for t, v in self.add.items():
            scores[:, t] = v if self.only else scores[:, t] + v
        return scores


def test_batched_equals_unbatched_and_keeps_order(lively):
    p = GenParams(max_new_tokens=10, batch_size=3)
    batched = lively.generate(CHATS, p)
    single = [lively.generate([c], GenParams(max_new_tokens=10, batch_size=1))[0] for c in CHATS]
    assert [c.text for c in batched] == [c.text for c in single]
    assert len({c.text for c in single}) >= 4, "outputs should differ by prompt (else the test is vacuous)"
    for chat, c in zip(CHATS, batched):
        assert c.ok and c.text and c.prompt_tokens == len(lively.prompt_ids(chat))
        assert c.finish_reason in ("stop", "length") and c.latency_s > 0


def test_left_padding_matches_plain_generate(lively):
    """The longest prompt needs no padding; a short one in the same batch must still match a plain,
    unpadded model.generate (only true with left padding and a proper attention mask)."""
    chat = CHATS[3]
    ids = torch.tensor([lively.prompt_ids(chat)])
    ref = lively.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8,
                                do_sample=False, pad_token_id=lively.tokenizer.pad_token_id,
                                eos_token_id=sorted(lively._end_ids()))
    ref_text = lively.tokenizer.decode(ref[0, ids.shape[1]:], skip_special_tokens=False)
    out = lively.generate([CHATS[1], chat], GenParams(max_new_tokens=8, batch_size=2))
    assert out[1].text == ref_text.split("<|im_end|>")[0].split("<|endoftext|>")[0]


def test_stop_strings_cut_text(lively):
    full = lively.generate([CHATS[0]], GenParams(max_new_tokens=16))[0].text
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert stop.strip()
    c = lively.generate([CHATS[0]], GenParams(max_new_tokens=16, stop=[stop]))[0]
    assert c.text == full[: full.index(stop)] and c.finish_reason == "stop" and c.meta["stop"] == stop


def test_end_of_turn_is_stripped(lively):
    eot = lively.tokenizer.convert_tokens_to_ids("<|im_end|>")
    c = lively.generate([CHATS[0]], GenParams(max_new_tokens=8, extra={"logits_processors": [Boost({eot: 1e4})]}))[0]
    assert c.text == "" and c.finish_reason == "stop" and "<|im_end|>" not in c.text


def test_sampling_is_seeded(lively):
    a = lively.generate(CHATS, GenParams(max_new_tokens=8, temperature=1.0, seed=1))
    b = lively.generate(CHATS, GenParams(max_new_tokens=8, temperature=1.0, seed=1))
    c = lively.generate(CHATS, GenParams(max_new_tokens=8, temperature=1.0, seed=2))
    assert [x.text for x in a] == [x.text for x in b]
    assert [x.text for x in a] != [x.text for x in c]


def test_pivots_survive_decoding_with_probabilities(lively):
    ids = pivot_ids(lively.tokenizer)
    boost = Boost({ids.safe: 1.0, ids.unsafe: 0.0}, only=True)
    c = lively.generate([CHATS[0]], GenParams(max_new_tokens=4, extra={"logits_processors": [boost]}))[0]
    assert c.text.count("[SAFE]") == 4
    probs = c.meta["pivot_probs"]
    assert [p["pivot"] for p in probs] == ["[SAFE]"] * 4 and [p["step"] for p in probs] == [0, 1, 2, 3]
    for p in probs:
        assert p["[SAFE]"] + p["[UNSAFE]"] + p["[RETHINK]"] == pytest.approx(1, abs=1e-4)
        assert p["[UNSAFE]"] == pytest.approx(1 / (1 + 2.718281828), rel=1e-3)  # e^0 / (e^1 + e^0)
        assert 0.99 < p["mass"] <= 1.0


def test_prefill_is_continued(lively):
    chat = CHATS[0] + [{"role": "assistant", "content": "<think>\nSure"}]
    prompt = lively.render(chat)
    assert prompt.endswith("<think>\nSure") and prompt.count("<|im_start|>assistant") == 1


def test_loglik_batched_matches_manual(lively):
    targets = ["Sure, here is", "I'm sorry", "bread", "x", "OK"]
    got = lively.loglik(CHATS, targets, batch_size=2)
    tok = lively.tokenizer
    for chat, target, score in zip(CHATS, targets, got):
        p = lively.prompt_ids(chat)
        t = tok(target, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(lively.model(input_ids=torch.tensor([p + t])).logits[0], -1)
        manual = sum(float(logp[len(p) - 1 + k, tid]) for k, tid in enumerate(t))
        assert score == pytest.approx(manual, abs=1e-3)
    with pytest.raises(ValueError):
        lively.loglik(CHATS, targets[:2])


@pytest.mark.parametrize("decode", ["pruned", "generate"])
def test_runtime_failure_is_an_error_record(lively, monkeypatch, decode):
    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory")

    lively.decode = decode
    monkeypatch.setattr(lively.model, "generate" if decode == "generate" else "forward", boom)
    out = lively.generate(CHATS[:2], GenParams(max_new_tokens=4))
    assert all(c.error and "out of memory" in c.error and c.text == "" and c.finish_reason == "error" for c in out)


def test_registered_and_white_box(lively):
    from r2d import registry

    assert registry.get("backend", "hf") is type(lively)
    assert lively.model is not None and lively.tokenizer is not None
