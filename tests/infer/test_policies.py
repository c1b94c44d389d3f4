"""Each policy on hand-written completions, and generate_with_policy end to end."""

import pytest
import torch

from r2d.backends.base import Completion, GenParams, get_backend
from r2d.infer.policies import DEFAULT_REFUSAL, drop_unsafe_segments, generate_with_policy, get_policy
from r2d.backends.processors import PivotThresholdProcessor
from r2d.pivots import PivotIds
from r2d import registry

MIXED = ("<think>\nThe user asks about chemistry. [SAFE]\n\nHere are synthesis steps for a toxin. [UNSAFE]\n\n"
         "I should refuse instead. [RETHINK]\n</think>\n\nI can't help with that. [SAFE]")
CLEAN = "<think>\nA cooking question. [SAFE]\n</think>\n\nMix flour and water. [SAFE]"


def test_all_registered():
    assert {"raw", "hide-reasoning", "drop-unsafe-steps", "refuse-on-unsafe", "pivot-threshold"} <= set(
        registry.names("policy"))


def test_raw_keeps_everything():
    c = get_policy("raw").apply(Completion(text=MIXED))
    assert c.text == MIXED and c.meta["raw_text"] == MIXED and c.meta["policy"] == "raw"


def test_hide_reasoning_shows_only_the_answer():
    assert get_policy("hide-reasoning").apply(Completion(text=MIXED)).text == "I can't help with that."
    split = Completion(text="Fine. [SAFE]", reasoning="Benign. [SAFE]")
    assert get_policy("hide-reasoning").apply(split).text == "Fine."
    assert get_policy("hide-reasoning").apply(Completion(text="<think>\nstill going")).text == ""


def test_drop_unsafe_steps_is_the_harmbench_filter():
    out = get_policy("drop-unsafe-steps").apply(Completion(text=MIXED)).text
    assert "toxin" not in out and "[" not in out
    assert "chemistry" in out and "refuse instead" in out and "I can't help with that." in out
    assert drop_unsafe_segments("no pivots at all") == "no pivots at all"
    assert drop_unsafe_segments("a [SAFE] b [UNSAFE] trailing tail") == "a"  # untagged tail dropped


def test_refuse_on_unsafe():
    pol = get_policy("refuse-on-unsafe", refusal="Nope.")
    assert pol.stop_strings() == ["[UNSAFE]"]
    stopped = Completion(text="<think>\nsteps for a toxin. ", finish_reason="stop", meta={"stop": "[UNSAFE]"})
    assert pol.apply(stopped).text == "Nope." and pol.apply(stopped).meta["policy_refused"] is True
    assert pol.apply(Completion(text=MIXED)).text == "Nope."
    ok = pol.apply(Completion(text=CLEAN))
    assert ok.text == CLEAN and ok.meta["policy_refused"] is False


def test_errors_pass_through_every_policy():
    err = Completion(error="HTTP 500", finish_reason="error")
    for name in registry.names("policy"):
        out = get_policy(name).apply(err)
        assert out.error == "HTTP 500" and out.text == ""


def test_generate_with_policy_on_mock_stops_at_unsafe():
    b = get_backend("mock", rules=[("toxin", MIXED)])
    chats = [[{"role": "user", "content": "make a toxin"}], [{"role": "user", "content": "bread"}]]
    out = generate_with_policy(b, chats, GenParams(), "refuse-on-unsafe")
    assert out[0].text == DEFAULT_REFUSAL and "toxin" in out[0].meta["raw_text"] and "[UNSAFE]" not in out[0].meta["raw_text"]
    assert out[1].meta["policy_refused"] is False and "helpful answer" in out[1].text


def test_pivot_threshold_needs_logits():
    with pytest.raises(ValueError, match="needs logits access"):
        generate_with_policy(get_backend("mock"), [[{"role": "user", "content": "x"}]], GenParams(), "pivot-threshold")


IDS = PivotIds(safe=5, unsafe=6, rethink=7, think_open=8, think_close=9)


def _scores(rows):
    s = torch.zeros(len(rows), 10)
    for i, r in enumerate(rows):
        for t, v in r.items():
            s[i, t] = v
    return s


def test_threshold_processor_on_crafted_scores():
    # row 0: argmax SAFE, P(UNSAFE | pivots) = e^1/(e^2+e^1+e^0) ~ 0.245; row 1: argmax is not a pivot
    scores = _scores([{5: 2.0, 6: 1.0, 7: 0.0}, {0: 9.0, 5: 2.0, 6: 1.5}])
    forced = PivotThresholdProcessor(IDS, 0.2)(None, scores.clone())
    assert forced[0].argmax() == 6 and torch.isinf(forced[0, 5]) and torch.equal(forced[1], scores[1])
    kept = PivotThresholdProcessor(IDS, 0.3)(None, scores.clone())
    assert torch.equal(kept, scores)
    never = PivotThresholdProcessor(IDS, 1.01)
    assert torch.equal(never(None, _scores([{6: 5.0}])), _scores([{6: 5.0}])) and never.forced == 0
