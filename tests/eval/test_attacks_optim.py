"""GCG, AutoDAN and PAIR on tiny models and scripted backends (a few steps each)."""

from types import SimpleNamespace

import pytest

from r2d import registry
from r2d.backends.mock import MockBackend
from r2d.eval.attacks import gcg as G
from r2d.eval.attacks.autodan import AutoDAN, crossover, mutate
from r2d.eval.attacks.pair import PAIR, parse_attacker
from r2d.eval.attacks.whitebox import target_losses
from r2d.eval.types import Behavior
from r2d.pivots import contains_r2d_token

B = [Behavior(id="x-0", goal="Tell me how to bake bread", benchmark="x", target="Sure, here is bread")]


@pytest.fixture
def hf_tiny(tiny):
    hf = pytest.importorskip("r2d.backends.hf")
    model, tok = tiny
    return hf.HFBackend(model=model, tokenizer=tok, progress=False)


def test_whitebox_loss_matches_backend_loglik(hf_tiny):
    chats = [[{"role": "user", "content": "hi there"}], [{"role": "user", "content": "a longer question here"}]]
    targets = ["Sure, here", "I'm sorry"]
    bare = SimpleNamespace(model=hf_tiny.model, tokenizer=hf_tiny.tokenizer, name="bare")  # no loglik
    assert target_losses(hf_tiny, chats, targets) == pytest.approx(target_losses(bare, chats, targets), rel=1e-4)
    with pytest.raises(ValueError, match="hf backend"):
        target_losses(MockBackend(), chats, targets)


def test_own_gcg_lowers_loss(hf_tiny):
    attack = G.GCG(steps=3, search_width=16, topk=8, suffix_len=5, impl="own")
    (case,) = attack.generate(B, hf_tiny)
    p = case.attack_params
    assert len(p["losses"]) == 4 and p["best_loss"] < p["losses"][0]
    assert case.messages[0]["content"] == B[0].goal + p["suffix"] and not contains_r2d_token(p["suffix"])
    assert attack.params()["impl_used"] == "own" and p["mode"] == "adaptive"


def test_gcg_transfer_mode_and_needs_whitebox(hf_tiny):
    attack = G.GCG(steps=1, search_width=4, topk=4, suffix_len=3, impl="own", transfer=hf_tiny)
    (case,) = attack.generate(B, MockBackend())  # optimised on the transfer model, not the (mock) target
    assert case.attack_params["mode"] == "transfer" and attack.params()["transfer"]
    with pytest.raises(ValueError, match="hf backend"):
        G.GCG(steps=1, impl="own").generate(B, MockBackend())
    with pytest.raises(ValueError, match="needs a target"):
        G.GCG(steps=1, impl="own").generate(B, None)


@pytest.mark.slow
def test_nanogcg_runs_if_installed(hf_tiny):
    pytest.importorskip("nanogcg")
    attack = G.GCG(steps=2, search_width=8, topk=4, suffix_len=4, impl="nanogcg")
    (case,) = attack.generate(B, hf_tiny)
    assert attack.params()["impl_used"] == "nanogcg" and case.attack_params["best_loss"] > 0
    assert not contains_r2d_token(case.attack_params["suffix"])


def test_autodan_runs_and_records_trajectory(hf_tiny, data_dir):
    attack = AutoDAN(steps=2, population=2, model_display="TinyLM")
    (case,) = attack.generate(B, hf_tiny)
    losses = case.attack_params["losses"]
    assert len(losses) == 3 and all(b <= a for a, b in zip(losses, losses[1:]))
    text = case.messages[0]["content"]
    assert B[0].goal in text and "[PROMPT]" not in text and "ChatGPT" not in text
    assert attack.params()["references_sha256"] and case.attack_params["mode"] == "adaptive"


def test_ga_operators_are_deterministic():
    import random

    a, b = "One. Two. Three.", "Uno. Dos. Tres. Cuatro."
    c1, c2 = crossover(a, b, random.Random(1)), crossover(a, b, random.Random(1))
    assert c1 == c2 and len(c1.split(". ")) == 4
    assert mutate("Ignore the instructions", random.Random(0), 1.0) != "Ignore the instructions"
    assert mutate("Ignore the instructions", random.Random(0), 0.0) == "Ignore the instructions"


ATTACKER = '{"improvement": "roleplay", "prompt": "Write a story where a baker explains: bake bread"}'


def test_pair_finds_jailbreak_with_mock_backends(data_dir):
    attacker = MockBackend(rules=[(".", ATTACKER)])
    target = MockBackend(rules=[("story", "Sure, here is bread: flour, water.")], default="I'm sorry, I can't.")
    attack = registry.create("attack", "pair", streams=2, iterations=3, attacker_backend=attacker)
    (case,) = attack.generate(B, target)
    p = case.attack_params
    assert p["best_score"] == 10 and not p["fallback"] and p["queries"] == 2  # stopped after iteration 0
    assert case.messages[0]["content"] == "Write a story where a baker explains: bake bread"
    assert attacker.calls[0][0]["role"] == "system" and B[0].goal in attacker.calls[0][0]["content"]
    assert attack.params()["judge"] == "refusal-string-match" and p["mode"] == "adaptive"


def test_pair_refusals_keep_iterating_and_errors_are_not_scores(data_dir):
    attacker = MockBackend(rules=[(".", ATTACKER)])
    refusing = MockBackend(default="I cannot help with that.")
    (case,) = PAIR(streams=2, iterations=2, attacker_backend=attacker).generate(B, refusing)
    assert case.attack_params["best_score"] == 1 and case.attack_params["queries"] == 4
    failing = MockBackend(default="!error")
    (case,) = PAIR(streams=1, iterations=2, attacker_backend=attacker).generate(B, failing)
    p = case.attack_params
    assert p["best_score"] is None and p["fallback"] and case.messages[0]["content"] == B[0].goal
    assert all(e["score"] is None and e["error"] for e in p["log"])
    (case,) = PAIR(streams=1, iterations=1, attacker_backend=MockBackend(default="no json")).generate(B, refusing)
    assert case.attack_params["fallback"] and "not parseable" in case.attack_params["log"][0]["error"]


def test_pair_custom_judge_callable(data_dir):
    seen = []

    def judge(goal, prompt, reply):
        seen.append((goal, prompt, reply))
        return 7.0

    attacker = MockBackend(rules=[(".", ATTACKER)])
    (case,) = PAIR(streams=1, iterations=2, attacker_backend=attacker, judge=judge).generate(B, MockBackend())
    assert case.attack_params["best_score"] == 7.0 and len(seen) == 2 and seen[0][0] == B[0].goal


def test_parse_attacker():
    assert parse_attacker('Here: {"improvement": "a", "prompt": "P1"} ok')["prompt"] == "P1"
    assert parse_attacker('{"improvement": "a", "prompt": "P \\"2\\"", broken')["prompt"] == 'P "2"'
    assert parse_attacker("nothing") is None
