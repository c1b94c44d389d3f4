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
from r2d.store import JsonlStore

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


def test_gcg_loss_is_on_the_answer_after_think_close_for_an_r2d_model(tiny):
    """On a model whose template opens <think>, the loss must fall on </think> and the affirmative answer
    after it (what the judge reads), not on the first words of the reasoning (issue 10 §4)."""
    from r2d.pivots import open_think_in_template, pivot_ids

    model, tok = tiny
    open_think_in_template(tok)
    ids = pivot_ids(tok)
    sp = G.gcg_prompt(tok, "Tell me how to bake bread", "Sure, here is bread")
    assert sp.after[-2:] == tok("<think>\n", add_special_tokens=False)["input_ids"][-2:]
    assert sp.target[0] == ids.think_close  # the loss starts at the forced close of the reasoning ...
    assert tok.decode(sp.target[1:]) == "\n\nSure, here is bread"  # ... and the answer comes after it
    assert ids.think_close not in sp.after and ids.think_open not in sp.target
    hf = pytest.importorskip("r2d.backends.hf").HFBackend(model=model, tokenizer=tok, progress=False)
    attack = G.GCG(steps=2, search_width=8, topk=8, suffix_len=3, impl="own")
    case = attack.generate(B, target=hf)[0]
    assert case.attack_params["loss_target"] == "</think>\n\nSure, here is bread"


def test_vanilla_model_keeps_the_plain_gcg_target(byte_tok):
    sp = G.gcg_prompt(byte_tok, "Tell me how to bake bread", "Sure, here is bread")
    assert byte_tok.decode(sp.target) == "Sure, here is bread"


def test_gcg_reuses_a_stored_search_only_under_the_same_key(hf_tiny, tmp_path, monkeypatch):
    from r2d.eval.attacks.searches import SearchCache

    calls = []
    real = G.own_gcg
    monkeypatch.setattr(G, "own_gcg", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    path = tmp_path / "searches.jsonl"
    kw = dict(steps=2, search_width=8, topk=4, suffix_len=3, impl="own")
    (first,) = G.GCG(**kw).generate(B, hf_tiny, searches=SearchCache(path, {"model": "tiny"}))
    assert len(calls) == 1 and first.attack_params["search"] == "searched"

    class NoModel:  # the runner's lazy backend: touching the model would load it
        name = "hf"

        def __getattr__(self, item):
            raise AssertionError("the model must not be touched when every search is stored")

    attack = G.GCG(**kw)
    (again,) = attack.generate(B, NoModel(), searches=SearchCache(path, {"model": "tiny"}))
    assert len(calls) == 1 and again.messages == first.messages and again.attack_params["search"] == "reused"
    assert {k: v for k, v in again.attack_params.items() if k != "search"} == \
        {k: v for k, v in first.attack_params.items() if k != "search"}
    assert attack.params()["impl_used"] == "own"
    G.GCG(**{**kw, "topk": 8}).generate(B, hf_tiny, searches=SearchCache(path, {"model": "tiny"}))  # a setting
    G.GCG(**kw).generate(B, hf_tiny, searches=SearchCache(path, {"model": "other"}))  # another model
    G.GCG(**kw).generate([Behavior(**{**B[0].to_dict(), "target": "Sure"})], hf_tiny,
                         searches=SearchCache(path, {"model": "tiny"}))  # another target string
    assert len(calls) == 4


def test_transfer_to_a_backend_object_is_never_cached(hf_tiny, tmp_path, monkeypatch):
    from r2d.eval.attacks.searches import SearchCache

    calls = []
    real = G.own_gcg
    monkeypatch.setattr(G, "own_gcg", lambda *a, **kw: calls.append(a[2]) or real(*a, **kw))
    cache = SearchCache(tmp_path / "searches.jsonl", {"model": "tiny"})
    for _ in range(2):
        G.GCG(steps=1, search_width=4, topk=4, suffix_len=3, impl="own", transfer=hf_tiny).generate(
            B, MockBackend(), searches=cache)
    assert len(calls) == 2 and not (tmp_path / "searches.jsonl").exists()
    assert cache.searched == 2 and cache.reused == 0  # counted in the runner's cache though not stored


def test_transfer_searches_count_in_the_runners_cache(tmp_path):
    """A transfer attack keeps its searches in a view of the runner's cache (keyed by the transfer model); the
    runner reads ``searched`` / ``reused`` from its own cache, which counted nothing before the views shared
    the counts."""
    from r2d.eval.attacks.searches import SearchCache

    cache = SearchCache(tmp_path / "searches.jsonl", {"model": "defended"})
    view = cache.for_target({"transfer": "hf:other"})
    view.put({"behavior": "b"}, {"suffix": " !"})
    assert view.get({"behavior": "b"}) == {"suffix": " !"} and cache.get({"behavior": "b"}) is None
    assert (cache.searched, cache.reused) == (1, 1)
    again = SearchCache(tmp_path / "searches.jsonl", {"model": "defended"}).for_target({"transfer": "hf:other"})
    assert again.get({"behavior": "b"}) == {"suffix": " !"}  # stored under the transfer model's key


def test_autodan_reuses_a_stored_search(hf_tiny, tmp_path, data_dir):
    from r2d.eval.attacks.searches import SearchCache

    path = tmp_path / "searches.jsonl"
    (first,) = AutoDAN(steps=1, population=2).generate(B, hf_tiny, searches=SearchCache(path, {"model": "tiny"}))
    (again,) = AutoDAN(steps=1, population=2).generate(B, MockBackend(), searches=SearchCache(path, {"model": "tiny"}))
    assert again.messages == first.messages and again.attack_params["search"] == "reused"
    AutoDAN(steps=2, population=2).generate(B, hf_tiny, searches=SearchCache(path, {"model": "tiny"}))
    assert len(JsonlStore(path).read()) == 2
